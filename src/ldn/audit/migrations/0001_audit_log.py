"""audit: append-only NEN 7513 records with a hash chain per source, checkpoints, anchors.

Revision ID: audit_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = ("audit",)
depends_on = None

TIME = sa.String(27)

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON audit_record
       BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON audit_record
       WHEN NOT EXISTS (SELECT 1 FROM audit_purge_permit p WHERE p.source = OLD.source AND OLD.seq <= p.upto_seq)
       BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END""",
    """CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
       BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END""",
    """CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
       WHEN NOT EXISTS (SELECT 1 FROM audit_purge_permit p WHERE p.source = OLD.source AND OLD.seq <= p.upto_seq)
       BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END""",
)

_POSTGRES_TRIGGERS = (
    """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'DELETE' AND EXISTS (
             SELECT 1 FROM audit_purge_permit p WHERE p.source = OLD.source AND OLD.seq <= p.upto_seq) THEN
           RETURN OLD;
         END IF;
         RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = '42501';
       END $$""",
    """CREATE FUNCTION audit_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = '42501'; END $$""",
    """CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record
       FOR EACH ROW EXECUTE FUNCTION audit_append_only()""",
    """CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record
       FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate()""",
    """CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
       FOR EACH ROW EXECUTE FUNCTION audit_append_only()""",
    """CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
       FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate()""",
)


def upgrade() -> None:
    op.create_table(
        "audit_record",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("event_code", sa.String(6), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.Column("organization_ura", sa.String(8), nullable=False),
        sa.Column("user_id", sa.String(128)),
        sa.Column("patient_hash", sa.String(64)),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("uq_audit_record_event_id", "audit_record", ["event_id"], unique=True)
    op.create_index(
        "ix_audit_record_patient",
        "audit_record",
        ["patient_hash", "occurred_at"],
        sqlite_where=sa.text("patient_hash IS NOT NULL"),
        postgresql_where=sa.text("patient_hash IS NOT NULL"),
    )
    op.create_index("ix_audit_record_org", "audit_record", ["organization_ura", "occurred_at"])
    op.create_index("ix_audit_record_user", "audit_record", ["user_id", "occurred_at"])
    op.create_index("ix_audit_record_trace", "audit_record", ["trace_id"])
    op.create_table(
        "audit_chain_head",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("organization_ura", sa.String(8), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_anchor",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.Column("purged_before", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_purge_permit",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("upto_seq", sa.BigInteger, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    for statement in _POSTGRES_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_append_only() CASCADE")
        op.execute("DROP FUNCTION IF EXISTS audit_no_truncate() CASCADE")
    for table in ("audit_purge_permit", "audit_anchor", "audit_checkpoint", "audit_chain_head", "audit_record"):
        op.drop_table(table)
