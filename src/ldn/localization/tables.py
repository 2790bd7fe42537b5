"""Tables of the localization function: PRS recipients and key versions, NVI records and storage keys.

The PRS tables hold only what identifies a *recipient* (organisation, scope, public key, key
version numbers); nothing about patients. The NVI's `nvi_record` holds, per record, a keyed hash
of the unblinded OPRF element (`pseudonym`, indexed together with custodian and category) and the
element sealed with the NVI's data key (`sealed_element`), so the storage key can be rotated
without the BSN and without re-registration (see `ldn.localization.nvi.rekey`).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from ldn.core.storage import Base

prs_recipient = Table(
    "prs_recipient",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organization", String(64), nullable=False),  # e.g. "ura:90000901"
    Column("scope", String(255), nullable=False),  # e.g. "nationale-verwijsindex"
    Column("public_jwk", Text, nullable=False),  # the recipient's public P-256 JWK (JSON)
    Column("kid", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("organization", "scope", name="uq_prs_recipient"),
)

prs_key_version = Table(
    "prs_key_version",
    Base.metadata,
    Column("recipient_id", Integer, ForeignKey("prs_recipient.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # active | retired
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)

nvi_storage_key = Table(
    "nvi_storage_key",
    Base.metadata,
    Column("version", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # active | retired
    # HMAC(key, fixed text), truncated: proves the keyring file holds the key this row means.
    Column("check_value", LargeBinary(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)

nvi_record = Table(
    "nvi_record",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column("pseudonym", LargeBinary(32), nullable=False),  # HMAC-SHA256(storage key vN, element)
    Column("storage_key_version", SmallInteger, nullable=False),
    Column("custodian_ura", String(8), nullable=False),
    Column("category", String(64), nullable=False),
    Column("oprf_key_version", String(64), nullable=False),
    Column("source_client_id", String(255), nullable=False),
    Column("sealed_element", LargeBinary(64), nullable=False),  # AES-256-GCM: nonce | ciphertext | tag
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Serves lookups (leading pseudonym column) and makes a duplicate registration impossible.
    UniqueConstraint("pseudonym", "custodian_ura", "category", name="uq_nvi_record_subject"),
    Index("ix_nvi_record_custodian", "custodian_ura", "id"),
)
