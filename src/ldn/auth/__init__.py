"""Identification and authentication: organisation credentials (UZI-format certificates),
the RFC 7523 token service with DPoP and introspection, the Dezi-style identity provider, and the
resource-server helper that is the one way services learn who is calling."""
