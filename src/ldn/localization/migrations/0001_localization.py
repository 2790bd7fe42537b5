"""localization: PRS recipients and key versions; NVI records and storage keys.

Revision ID: localization_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "localization_0001"
down_revision = None
branch_labels = ("localization",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prs_recipient",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("organization", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("organization", "scope", name="uq_prs_recipient"),
    )
    op.create_table(
        "prs_key_version",
        sa.Column("recipient_id", sa.Integer, sa.ForeignKey("prs_recipient.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "nvi_storage_key",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("check_value", sa.LargeBinary(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "nvi_record",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("pseudonym", sa.LargeBinary(32), nullable=False),
        sa.Column("storage_key_version", sa.SmallInteger, nullable=False),
        sa.Column("custodian_ura", sa.String(8), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("oprf_key_version", sa.String(64), nullable=False),
        sa.Column("source_client_id", sa.String(255), nullable=False),
        sa.Column("sealed_element", sa.LargeBinary(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("pseudonym", "custodian_ura", "category", name="uq_nvi_record_subject"),
    )
    op.create_index("ix_nvi_record_custodian", "nvi_record", ["custodian_ura", "id"])


def downgrade() -> None:
    op.drop_index("ix_nvi_record_custodian", table_name="nvi_record")
    op.drop_table("nvi_record")
    op.drop_table("nvi_storage_key")
    op.drop_table("prs_key_version")
    op.drop_table("prs_recipient")
