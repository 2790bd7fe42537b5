"""auth: used jti values, issued access tokens (hashed), Dezi declaration revocations.

Revision ID: auth_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "auth_0001"
down_revision = None
branch_labels = ("auth",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_used_jti",
        sa.Column("namespace", sa.String(200), primary_key=True),
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_auth_used_jti_expires", "auth_used_jti", ["expires_at"])
    op.create_table(
        "auth_access_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("issuer", sa.String(300), nullable=False),
        sa.Column("claims", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_auth_access_tokens_expires", "auth_access_tokens", ["expires_at"])
    op.create_table(
        "auth_dezi_revocations",
        sa.Column("verklaring_id", sa.String(100), primary_key=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("auth_dezi_revocations")
    op.drop_table("auth_access_tokens")
    op.drop_table("auth_used_jti")
