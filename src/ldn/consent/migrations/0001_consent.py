"""consent: choices and opt-outs (append-only versions), override log, subscriptions, outbox.

Revision ID: consent_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "consent_0001"
down_revision = None
branch_labels = ("consent",)
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_choices",
        sa.Column("row_id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("choice_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("bsn_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(80), nullable=False),
        sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("choice_id", "version", name="uq_consent_choices_id_version"),
    )
    op.create_index("ix_consent_choices_current", "consent_choices", ["bsn_hash", "superseded"])

    op.create_table(
        "consent_optouts",
        sa.Column("row_id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("bsn_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("objected", sa.Boolean, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(80), nullable=False),
        sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("bsn_hash", "kind", "version", name="uq_consent_optouts_version"),
    )
    op.create_index("ix_consent_optouts_current", "consent_optouts", ["bsn_hash", "superseded"])

    op.create_table(
        "consent_overrides",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("bsn_hash", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(32), nullable=False),
        sa.Column("holder_ura", sa.String(8), nullable=False),
        sa.Column("requester_ura", sa.String(8), nullable=True),
        sa.Column("requester_facility_type", sa.String(8), nullable=True),
        sa.Column("data_category", sa.String(8), nullable=True),
        sa.Column("professional_id", sa.String(9), nullable=True),
        sa.Column("professional_role", sa.String(6), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_consent_overrides_bsn", "consent_overrides", ["bsn_hash", "occurred_at"])

    op.create_table(
        "consent_subscriptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subscriber_ura", sa.String(8), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("bsn_hash", sa.String(64), nullable=False),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(32), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
    )
    op.create_index("ix_consent_subscriptions_bsn", "consent_subscriptions", ["bsn_hash", "status"])

    op.create_table(
        "consent_outbox",
        sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "subscription_id",
            sa.String(36),
            sa.ForeignKey("consent_subscriptions.id", name="fk_consent_outbox_subscription"),
            nullable=False,
        ),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
    )
    op.create_index("ix_consent_outbox_pending", "consent_outbox", ["state", "subscription_id", "id"])


def downgrade() -> None:
    op.drop_table("consent_outbox")
    op.drop_table("consent_subscriptions")
    op.drop_table("consent_overrides")
    op.drop_table("consent_optouts")
    op.drop_table("consent_choices")
