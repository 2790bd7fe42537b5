"""patterns: referrals sent (workflow Tasks) and received (the inbox) for notified pull.

Revision ID: patterns_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "patterns_0001"
down_revision = None
branch_labels = ("patterns",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patterns_referral_out",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("sender_ura", sa.String(8), nullable=False),
        sa.Column("receiver_ura", sa.String(8), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("restriction_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("notification_identifier", sa.String(100), nullable=False),
        sa.Column("group_identifier", sa.String(100), nullable=False),
        sa.Column("professional_id", sa.String(9), nullable=False),
        sa.Column("allowed_queries", sa.Text, nullable=False),
        sa.Column("get_workflow_task", sa.Integer, nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("notification", sa.Text, nullable=False),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.Column("delivery_error", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_patterns_referral_out_sender", "patterns_referral_out", ["sender_ura", "created_at"])
    op.create_table(
        "patterns_referral_in",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("receiver_ura", sa.String(8), nullable=False),
        sa.Column("sender_ura", sa.String(8), nullable=False),
        sa.Column("notification_identifier", sa.String(100), nullable=False),
        sa.Column("group_identifier", sa.String(100), nullable=False),
        sa.Column("authorization_base", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("restriction_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=True),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("last_modified", sa.String(40), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pulled_by", sa.String(9), nullable=True),
        sa.Column("pull_result", sa.Text, nullable=True),
        sa.UniqueConstraint(
            "receiver_ura", "sender_ura", "notification_identifier", name="uq_patterns_referral_in_ident"
        ),
    )
    op.create_index("ix_patterns_referral_in_receiver", "patterns_referral_in", ["receiver_ura", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_patterns_referral_in_receiver", table_name="patterns_referral_in")
    op.drop_table("patterns_referral_in")
    op.drop_index("ix_patterns_referral_out_sender", table_name="patterns_referral_out")
    op.drop_table("patterns_referral_out")
