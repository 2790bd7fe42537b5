"""Tables of the consent service. No BSN is stored in plain text anywhere: rows carry the keyed
hash `bsn_hash` (see `keys.py`); where a BSN must be recovered it is sealed with AES-GCM.

Choices and opt-outs are append-only: a change inserts a new version and only flips the
`superseded` flag of the version it replaces, so the full history stays readable and the
current state is one indexed query (`bsn_hash = ? AND superseded = false`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ldn.core.storage import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
RowId = BigInteger().with_variant(Integer(), "sqlite")

choices = Table(
    "consent_choices",
    Base.metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("choice_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("bsn_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # active | withdrawn
    Column("body", Text, nullable=False),  # the choice without its BSN, JSON
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(80), nullable=False),  # "citizen" or the recording organisation's URA
    Column("superseded", Boolean, nullable=False, default=False),
    UniqueConstraint("choice_id", "version", name="uq_consent_choices_id_version"),
    Index("ix_consent_choices_current", "bsn_hash", "superseded"),
)

optouts = Table(
    "consent_optouts",
    Base.metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("bsn_hash", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # primary | secondary
    Column("version", Integer, nullable=False),
    Column("objected", Boolean, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(80), nullable=False),
    Column("superseded", Boolean, nullable=False, default=False),
    UniqueConstraint("bsn_hash", "kind", "version", name="uq_consent_optouts_version"),
    Index("ix_consent_optouts_current", "bsn_hash", "superseded"),
)

overrides = Table(
    "consent_overrides",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("bsn_hash", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("via", String(32), nullable=False),  # closed-question | override
    Column("holder_ura", String(8), nullable=False),
    Column("requester_ura", String(8), nullable=True),
    Column("requester_facility_type", String(8), nullable=True),
    Column("data_category", String(8), nullable=True),
    Column("professional_id", String(9), nullable=True),
    Column("professional_role", String(6), nullable=True),
    Column("reason", Text, nullable=False),
    Column("recorded_by", String(200), nullable=False),  # client id of the recording system
    Index("ix_consent_overrides_bsn", "bsn_hash", "occurred_at"),
)

subscriptions = Table(
    "consent_subscriptions",
    Base.metadata,
    Column("id", String(36), primary_key=True),
    Column("subscriber_ura", String(8), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("bsn_hash", String(64), nullable=False),
    Column("sealed", Text, nullable=False),  # AES-GCM: {"bsn", "headers"}
    Column("endpoint", String(2000), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # active | error | off
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),  # one deliverer at a time
    Column("lease_owner", String(32), nullable=True),
    Column("last_error", String(300), nullable=True),
    Index("ix_consent_subscriptions_bsn", "bsn_hash", "status"),
)

outbox = Table(
    "consent_outbox",
    Base.metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),  # delivery order
    Column(
        "subscription_id",
        String(36),
        ForeignKey("consent_subscriptions.id", name="fk_consent_outbox_subscription"),
        nullable=False,
    ),
    Column("payload", Text, nullable=False),  # AES-GCM sealed notification Bundle (it names the patient)
    Column("state", String(16), nullable=False),  # pending | delivered | cancelled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("last_error", String(300), nullable=True),
    Index("ix_consent_outbox_pending", "state", "subscription_id", "id"),
)
