"""Alembic environment shared by every component's migration branch."""
