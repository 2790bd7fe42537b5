"""Tables of the authentication function: used assertion/proof ids, issued tokens, revocations."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table, Text

from ldn.core.storage import Base

used_jti = Table(
    "auth_used_jti",
    Base.metadata,
    Column("namespace", String(200), primary_key=True),  # issuer or audience the jti is unique within
    Column("jti", String(200), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_auth_used_jti_expires", "expires_at"),
)

access_tokens = Table(
    "auth_access_tokens",
    Base.metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 of the token: the token itself is never stored
    Column("issuer", String(300), nullable=False),
    Column("claims", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_auth_access_tokens_expires", "expires_at"),
)

dezi_revocations = Table(
    "auth_dezi_revocations",
    Base.metadata,
    Column("verklaring_id", String(100), primary_key=True),
    Column("revoked_at", DateTime(timezone=True), nullable=False),
)
