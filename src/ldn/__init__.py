"""ldn: the Dutch national health-data network (Landelijk dekkend netwerk) in one package."""

__version__ = "0.1.0"
