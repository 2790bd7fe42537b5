"""The embedded network: every service of ldn assembled into one process."""
