"""Tables of the audit log (Alembic branch `audit`, see migrations/0001_audit_log.py).

`audit_record` is append-only: database triggers refuse every UPDATE, and every DELETE unless a
row in `audit_purge_permit` allows it for that source and sequence range (only the retention
purge writes one, inside its own transaction). The hash chain is what proves integrity; the
triggers stop accidents and careless tools.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text, text

from ldn.core.storage import Base

TIME = String(27)  # YYYY-MM-DDTHH:MM:SS.ffffffZ (sorts as text in time order)

audit_record = Table(
    "audit_record",
    Base.metadata,
    Column("source", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(32), nullable=False),
    Column("event_code", String(6), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", String(8), nullable=False),
    Column("occurred_at", TIME, nullable=False),
    Column("recorded_at", TIME, nullable=False),
    Column("organization_ura", String(8), nullable=False),
    Column("user_id", String(128)),
    Column("patient_hash", String(64)),
    Column("trace_id", String(32), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Index("uq_audit_record_event_id", "event_id", unique=True),
    Index(
        "ix_audit_record_patient",
        "patient_hash",
        "occurred_at",
        sqlite_where=text("patient_hash IS NOT NULL"),
        postgresql_where=text("patient_hash IS NOT NULL"),
    ),
    Index("ix_audit_record_org", "organization_ura", "occurred_at"),
    Index("ix_audit_record_user", "user_id", "occurred_at"),
    Index("ix_audit_record_trace", "trace_id"),
)

audit_chain_head = Table(
    "audit_chain_head",
    Base.metadata,
    Column("source", String(64), primary_key=True),
    Column("organization_ura", String(8), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("updated_at", TIME, nullable=False),
)

audit_checkpoint = Table(
    "audit_checkpoint",
    Base.metadata,
    Column("source", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_hash", String(64), nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", Text, nullable=False),
)

audit_anchor = Table(
    "audit_anchor",
    Base.metadata,
    Column("source", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("record_hash", String(64), nullable=False),
    Column("purged_before", TIME, nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", Text, nullable=False),
)

audit_purge_permit = Table(
    "audit_purge_permit",
    Base.metadata,
    Column("source", String(64), primary_key=True),
    Column("upto_seq", BigInteger, nullable=False),
)
