"""Tables of addressing: the central mCSD directory, the LRZa register, and the nodes' replicas.

Resources are stored as JSON text (exactly what the directory serves) next to indexed columns;
searchable values live in a separate index table. History is append-only and indexed on
(last_updated, seq) so `_history` pages are cursor range scans, never OFFSET scans. Times are
integer microseconds since the epoch. Index values use the "C" collation on PostgreSQL so a
prefix search is a plain range scan, as on SQLite.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ldn.core.storage import Base


def _c_string(length: int) -> String:
    return String(length).with_variant(String(length, collation="C"), "postgresql")  # type: ignore[return-value]


SEQ = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY

# ---- central mCSD directory -------------------------------------------------------------------

mcsd_resources = Table(
    "addressing_mcsd_resource",
    Base.metadata,
    Column("resource_type", String(40), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("publisher_ura", String(8), nullable=False),
    Column("content", Text, nullable=False),
    Index("ix_addressing_mcsd_resource_lu", "resource_type", "last_updated"),
)

mcsd_history = Table(
    "addressing_mcsd_history",
    Base.metadata,
    Column("seq", SEQ, primary_key=True, autoincrement=True),
    Column("resource_type", String(40), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("method", String(8), nullable=False),
    Column("content", Text, nullable=False),
    UniqueConstraint("resource_type", "id", "version_id", name="uq_addressing_mcsd_history_version"),
    Index("ix_addressing_mcsd_history_lu", "last_updated", "seq"),
    Index("ix_addressing_mcsd_history_type_lu", "resource_type", "last_updated", "seq"),
)

# The primary key leads with what a search filters on, so the key itself is the search index;
# the second index serves replacing a resource's rows and `_include`.
mcsd_search = Table(
    "addressing_mcsd_search",
    Base.metadata,
    Column("resource_type", String(40), primary_key=True),
    Column("param", String(64), primary_key=True),
    Column("value", _c_string(255), primary_key=True),
    Column("system", _c_string(255), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Index("ix_addressing_mcsd_search_resource", "resource_type", "res_id", "param", "value", "system"),
)

# ---- LRZa register ----------------------------------------------------------------------------

lrza_providers = Table(
    "addressing_lrza_provider",
    Base.metadata,
    Column("ura", String(8), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("name_norm", _c_string(200), nullable=False),
    Column("org_type", String(40), nullable=False),
    Column("kvk", String(8), nullable=True),
    Column("agb", String(8), nullable=True),
    Column("city", String(100), nullable=True),
    Column("vendor_name", String(200), nullable=True),
    Column("vendor_kvk", String(8), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Index("ix_addressing_lrza_provider_name", "name_norm"),
    Index("ix_addressing_lrza_provider_lu", "last_updated"),
    Index("ix_addressing_lrza_provider_agb", "agb"),
    Index("ix_addressing_lrza_provider_kvk", "kvk"),
)

# An active mandate: `ura` lets `publisher_ura` publish its addressing data (from an
# OrganizationAffiliation with code lrza-careprovider-admin that `ura` registered).
lrza_mandates = Table(
    "addressing_lrza_mandate",
    Base.metadata,
    Column("ura", String(8), primary_key=True),
    Column("publisher_ura", String(8), primary_key=True),
    Column("affiliation_id", String(64), primary_key=True),
    Index("ix_addressing_lrza_mandate_affiliation", "affiliation_id"),
)

# ---- node replicas (one table set, keyed by the owning node's URA) --------------------------

replica_resources = Table(
    "addressing_replica_resource",
    Base.metadata,
    Column("replica_owner", String(8), primary_key=True),
    Column("resource_type", String(40), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", BigInteger, nullable=False),
    Column("source_ura", String(8), nullable=True),
    Column("owner_ura", String(8), nullable=True),
    Column("content", Text, nullable=False),
    Index("ix_addressing_replica_resource_owner", "replica_owner", "owner_ura", "resource_type"),
)

replica_index = Table(
    "addressing_replica_index",
    Base.metadata,
    Column("replica_owner", String(8), primary_key=True),
    Column("resource_type", String(40), primary_key=True),
    Column("param", String(64), primary_key=True),
    Column("value", _c_string(255), primary_key=True),
    Column("system", _c_string(255), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Index("ix_addressing_replica_index_resource", "replica_owner", "resource_type", "res_id", "param"),
)

replica_state = Table(
    "addressing_replica_state",
    Base.metadata,
    Column("replica_owner", String(8), primary_key=True),
    Column("phase", String(16), nullable=False),  # initial | ready
    Column("watermark", BigInteger, nullable=True),  # last applied lastUpdated (µs), incremental phase
    Column("initial_t0", BigInteger, nullable=True),  # directory high-water mark when the load began
    Column("initial_type", String(40), nullable=True),  # resource type being loaded
    Column("initial_next", Text, nullable=True),  # next page URL of that type (resume point)
    Column("applied", BigInteger, nullable=False, default=0),
    Column("dropped", BigInteger, nullable=False, default=0),
    Column("last_success_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
