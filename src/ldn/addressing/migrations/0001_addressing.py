"""addressing: mCSD directory (resources, history, search index), LRZa register and mandates,
node replicas (resources, index, sync state).

Revision ID: addressing_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "addressing_0001"
down_revision = None
branch_labels = ("addressing",)
depends_on = None


def _c(length: int) -> sa.types.TypeEngine:  # type: ignore[type-arg]
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "addressing_mcsd_resource",
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.BigInteger, nullable=False),
        sa.Column("publisher_ura", sa.String(8), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index("ix_addressing_mcsd_resource_lu", "addressing_mcsd_resource", ["resource_type", "last_updated"])
    op.create_table(
        "addressing_mcsd_history",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.UniqueConstraint("resource_type", "id", "version_id", name="uq_addressing_mcsd_history_version"),
    )
    op.create_index("ix_addressing_mcsd_history_lu", "addressing_mcsd_history", ["last_updated", "seq"])
    op.create_index(
        "ix_addressing_mcsd_history_type_lu", "addressing_mcsd_history", ["resource_type", "last_updated", "seq"]
    )
    op.create_table(
        "addressing_mcsd_search",
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("param", sa.String(64), primary_key=True),
        sa.Column("value", _c(255), primary_key=True),
        sa.Column("system", _c(255), primary_key=True),
        sa.Column("res_id", sa.String(64), primary_key=True),
    )
    op.create_index(
        "ix_addressing_mcsd_search_resource",
        "addressing_mcsd_search",
        ["resource_type", "res_id", "param", "value", "system"],
    )
    op.create_table(
        "addressing_lrza_provider",
        sa.Column("ura", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_norm", _c(200), nullable=False),
        sa.Column("org_type", sa.String(40), nullable=False),
        sa.Column("kvk", sa.String(8), nullable=True),
        sa.Column("agb", sa.String(8), nullable=True),
        sa.Column("city", sa.String(100), nullable=True),
        sa.Column("vendor_name", sa.String(200), nullable=True),
        sa.Column("vendor_kvk", sa.String(8), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_addressing_lrza_provider_name", "addressing_lrza_provider", ["name_norm"])
    op.create_index("ix_addressing_lrza_provider_lu", "addressing_lrza_provider", ["last_updated"])
    op.create_index("ix_addressing_lrza_provider_agb", "addressing_lrza_provider", ["agb"])
    op.create_index("ix_addressing_lrza_provider_kvk", "addressing_lrza_provider", ["kvk"])
    op.create_table(
        "addressing_lrza_mandate",
        sa.Column("ura", sa.String(8), primary_key=True),
        sa.Column("publisher_ura", sa.String(8), primary_key=True),
        sa.Column("affiliation_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_addressing_lrza_mandate_affiliation", "addressing_lrza_mandate", ["affiliation_id"])
    op.create_table(
        "addressing_replica_resource",
        sa.Column("replica_owner", sa.String(8), primary_key=True),
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.BigInteger, nullable=False),
        sa.Column("source_ura", sa.String(8), nullable=True),
        sa.Column("owner_ura", sa.String(8), nullable=True),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_addressing_replica_resource_owner",
        "addressing_replica_resource",
        ["replica_owner", "owner_ura", "resource_type"],
    )
    op.create_table(
        "addressing_replica_index",
        sa.Column("replica_owner", sa.String(8), primary_key=True),
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("param", sa.String(64), primary_key=True),
        sa.Column("value", _c(255), primary_key=True),
        sa.Column("system", _c(255), primary_key=True),
        sa.Column("res_id", sa.String(64), primary_key=True),
    )
    op.create_index(
        "ix_addressing_replica_index_resource",
        "addressing_replica_index",
        ["replica_owner", "resource_type", "res_id", "param"],
    )
    if op.get_bind().dialect.name == "postgresql":
        # Type, parameter and value are strongly correlated ("Endpoint/status/active" is most
        # rows); without multivariate statistics the planner multiplies their selectivities and
        # badly underestimates broad conditions.
        op.execute(
            "CREATE STATISTICS addressing_mcsd_search_stats (dependencies, mcv) "
            "ON resource_type, param, value FROM addressing_mcsd_search"
        )
        op.execute(
            "CREATE STATISTICS addressing_replica_index_stats (dependencies, mcv) "
            "ON replica_owner, resource_type, param, value FROM addressing_replica_index"
        )
    op.create_table(
        "addressing_replica_state",
        sa.Column("replica_owner", sa.String(8), primary_key=True),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("watermark", sa.BigInteger, nullable=True),
        sa.Column("initial_t0", sa.BigInteger, nullable=True),
        sa.Column("initial_type", sa.String(40), nullable=True),
        sa.Column("initial_next", sa.Text, nullable=True),
        sa.Column("applied", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("dropped", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "addressing_replica_state",
        "addressing_replica_index",
        "addressing_replica_resource",
        "addressing_lrza_mandate",
        "addressing_lrza_provider",
        "addressing_mcsd_search",
        "addressing_mcsd_history",
        "addressing_mcsd_resource",
    ):
        op.drop_table(table)
