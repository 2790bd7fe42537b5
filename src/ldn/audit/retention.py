"""Retention: remove records older than the retention period, keeping the rest verifiable.

Per source, the purge boundary S is the record just before the first one that is still within the
retention period (records are appended in time order, so everything up to S is old; a late,
spooled record that is older than its predecessors simply stays a little longer). The purge
1. verifies the chain up to S (never destroy the evidence of tampering),
2. makes sure a signed checkpoint exists at S,
3. deletes records (and older checkpoints) up to S through a purge permit, the only way past
   the append-only triggers, and
4. stores a signed anchor (S, hash of record S, cut-off), from which `verify` starts.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ldn.audit.model import format_time
from ldn.audit.store import AuditStore, anchor_payload
from ldn.audit.tables import audit_anchor, audit_checkpoint, audit_purge_permit, audit_record
from ldn.audit.verify import Breakage, verify_source
from ldn.core.storage import Database

__all__ = ["PurgeResult", "purge", "retention_cutoff"]

_DELETE_CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class PurgeResult:
    source: str
    removed: int
    anchored_at: int | None
    refused: Breakage | None = None


def retention_cutoff(now: datetime, years: int) -> datetime:
    """`now` minus `years` calendar years (29 February becomes 28 February)."""
    year = now.year - years
    day = min(now.day, calendar.monthrange(year, now.month)[1])
    return now.replace(year=year, day=day).astimezone(UTC)


def _boundary(session: Session, source: str, cutoff: str, after: int) -> int:
    """The last sequence number before the first record that is still within retention."""
    first_young = session.execute(
        select(func.min(audit_record.c.seq)).where(
            audit_record.c.source == source, audit_record.c.seq > after, audit_record.c.occurred_at >= cutoff
        )
    ).scalar()
    if first_young is not None:
        return int(first_young) - 1
    last = session.execute(
        select(func.max(audit_record.c.seq)).where(audit_record.c.source == source, audit_record.c.seq > after)
    ).scalar()
    return int(last) if last is not None else after


def purge_source(session: Session, store: AuditStore, source: str, cutoff: str) -> PurgeResult:
    anchor = store.anchor(session, source)
    start = anchor.seq if anchor else 0
    boundary = _boundary(session, source, cutoff, start)
    if boundary <= start:
        return PurgeResult(source, 0, anchor.seq if anchor else None)
    checked = verify_source(session, store.keys.signer, source, upto_seq=boundary)
    if checked.breakage is not None:
        return PurgeResult(source, 0, anchor.seq if anchor else None, refused=checked.breakage)
    last_hash = session.execute(
        select(audit_record.c.record_hash).where(audit_record.c.source == source, audit_record.c.seq == boundary)
    ).scalar_one()
    store.checkpoint_at(session, source, boundary, last_hash)
    dialect = session.get_bind().dialect.name
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        upsert(audit_purge_permit)
        .values(source=source, upto_seq=boundary)
        .on_conflict_do_update(index_elements=["source"], set_={"upto_seq": boundary})
    )
    removed = 0
    low = start
    while low < boundary:
        high = min(low + _DELETE_CHUNK, boundary)
        result = session.execute(
            delete(audit_record).where(
                audit_record.c.source == source, audit_record.c.seq > low, audit_record.c.seq <= high
            )
        )
        removed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        low = high
    session.execute(
        delete(audit_checkpoint).where(audit_checkpoint.c.source == source, audit_checkpoint.c.seq < boundary)
    )
    session.execute(delete(audit_purge_permit).where(audit_purge_permit.c.source == source))
    created = format_time(datetime.now(UTC))
    signer = store.keys.signer
    values = {
        "source": source,
        "seq": boundary,
        "record_hash": last_hash,
        "purged_before": cutoff,
        "created_at": created,
        "key_id": signer.key_id,
        "signature": signer.sign(anchor_payload(source, boundary, last_hash, cutoff, created)),
    }
    session.execute(delete(audit_anchor).where(audit_anchor.c.source == source))
    session.execute(insert(audit_anchor).values(**values))
    return PurgeResult(source, removed, boundary)


def purge(
    database: Database, store: AuditStore, *, now: datetime, years: int, source: str | None = None
) -> list[PurgeResult]:
    """Purge every source (or one), each in its own transaction."""
    cutoff = format_time(retention_cutoff(now, years))
    with database.transaction(readonly=True) as session:
        names = store.sources(session)
    results: list[PurgeResult] = []
    for name in names:
        if source is not None and name != source:
            continue
        with database.transaction() as session:
            results.append(purge_source(session, store, name, cutoff))
    return results
