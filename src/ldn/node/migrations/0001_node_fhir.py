"""node: the care-provider nodes' FHIR store (resources and their token search values).

Revision ID: node_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "node_0001"
down_revision = None
branch_labels = ("node",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_fhir_resource",
        sa.Column("node_ura", sa.String(8), primary_key=True),
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        # HMAC-SHA256 of the BSN under the node's key: the BSN itself is never indexed.
        sa.Column("patient_bsn_hash", sa.LargeBinary(32), nullable=True),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("sensitivity", sa.String(32), nullable=True),
        sa.Column("clinical_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resource", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_node_fhir_patient",
        "node_fhir_resource",
        ["node_ura", "patient_bsn_hash", "resource_type", "last_updated"],
    )
    op.create_table(
        "node_fhir_token",
        sa.Column("node_ura", sa.String(8), primary_key=True),
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("param", sa.String(32), primary_key=True),
        sa.Column("system", sa.String(255), primary_key=True),
        sa.Column("code", sa.String(255), primary_key=True),
        sa.ForeignKeyConstraint(
            ["node_ura", "resource_type", "resource_id"],
            ["node_fhir_resource.node_ura", "node_fhir_resource.resource_type", "node_fhir_resource.resource_id"],
            ondelete="CASCADE",
            name="fk_node_fhir_token_resource",
        ),
    )
    op.create_index("ix_node_fhir_token_code", "node_fhir_token", ["node_ura", "resource_type", "param", "code"])


def downgrade() -> None:
    op.drop_index("ix_node_fhir_token_code", table_name="node_fhir_token")
    op.drop_table("node_fhir_token")
    op.drop_index("ix_node_fhir_patient", table_name="node_fhir_resource")
    op.drop_table("node_fhir_resource")
