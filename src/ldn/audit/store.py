"""SQL of the audit log: append to the chain, checkpoints, reads. Gets a Session, never commits.

Appends for one source are serialised by locking its chain head (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite writers already queue on `BEGIN IMMEDIATE`, and within a process on a lock
first), so concurrent writers, even in other processes, extend the chain one after the other.
Appends are idempotent per `event_id`: a batch delivered twice (a retry after a lost answer) is
stored once. Rows go to the database through the driver directly (COPY on PostgreSQL), because
this is the hot path of every access in the network.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ldn.audit.chain import (
    GENESIS_HASH,
    RECORD_COLUMNS,
    ProtectedEvent,
    StoredRecord,
    canonical_record,
    jcs,
    protect_event,
    record_hash,
)
from ldn.audit.keys import AuditKeys
from ldn.audit.model import AuditEvent, format_time
from ldn.audit.tables import audit_anchor, audit_chain_head, audit_checkpoint, audit_record
from ldn.core.storage import Database

__all__ = [
    "AppendResult",
    "AuditQuery",
    "AuditStore",
    "Checkpoint",
    "SourceMismatch",
    "checkpoint_payload",
]


class SourceMismatch(ValueError):
    """A source's events must all come from the organisation that owns the source."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: int
    duplicates: int
    last_seq: dict[str, int]
    checkpoints: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    source: str
    seq: int
    record_hash: str
    created_at: str
    key_id: str
    signature: str

    def payload(self) -> bytes:
        return checkpoint_payload(self.source, self.seq, self.record_hash, self.created_at)


def checkpoint_payload(source: str, seq: int, hash_: str, created_at: str) -> bytes:
    return jcs(
        {"kind": "ldn-audit-checkpoint", "source": source, "seq": seq, "record_hash": hash_, "created_at": created_at}
    )


def anchor_payload(source: str, seq: int, hash_: str, purged_before: str, created_at: str) -> bytes:
    return jcs(
        {
            "kind": "ldn-audit-anchor",
            "source": source,
            "seq": seq,
            "record_hash": hash_,
            "purged_before": purged_before,
            "created_at": created_at,
        }
    )


@dataclass(frozen=True, slots=True)
class Anchor:
    source: str
    seq: int
    record_hash: str
    purged_before: str
    created_at: str
    key_id: str
    signature: str

    def payload(self) -> bytes:
        return anchor_payload(self.source, self.seq, self.record_hash, self.purged_before, self.created_at)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of a record query; results newest first, paged with `before` (a record's position)."""

    patient_hash: str | None = None
    organization_ura: str | None = None
    user_id: str | None = None
    trace_id: str | None = None
    event_codes: tuple[str, ...] = ()
    exclude_codes: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    limit: int = 100
    before: tuple[str, str, int] | None = None


_INSERT_COLUMNS = ("source", *RECORD_COLUMNS)


def _insert_rows(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert on the session's own connection and transaction, straight through the driver.

    Going past SQLAlchemy's per-row parameter processing matters here: the chain is the hot path
    of every access in the network. PostgreSQL gets COPY, SQLite one `executemany`.
    """
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    columns = ", ".join(_INSERT_COLUMNS)
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(f"COPY audit_record ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    cursor = raw.cursor()
    try:
        # SQLite's default page cache (2 MiB) is too small for the chain's indexes once the log
        # grows; and checkpointing the WAL every 1000 pages rewrites the same index pages often.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        marks = ", ".join("?" for _ in _INSERT_COLUMNS)
        cursor.executemany(f"INSERT INTO audit_record ({columns}) VALUES ({marks})", rows)  # noqa: S608
    finally:
        cursor.close()


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(database: Database) -> AbstractContextManager[Any]:
    if not database.is_sqlite:
        return contextlib.nullcontext()
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(database.engine)
        if lock is None:
            lock = _WRITE_LOCKS[database.engine] = threading.Lock()
    return lock


def _existing_event_ids(session: Session, ids: list[str]) -> set[str]:
    """Which of `ids` are stored already: one array (PostgreSQL) or JSON (SQLite) parameter, not N binds."""
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    cursor = raw.cursor()
    try:
        if connection.dialect.name == "postgresql":
            cursor.execute("SELECT event_id FROM audit_record WHERE event_id = ANY(%s)", (ids,))
        else:
            cursor.execute(
                "SELECT event_id FROM audit_record WHERE event_id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            )
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _now() -> str:
    return format_time(datetime.now(UTC))


class AuditStore:
    """The chain's SQL; keys protect BSNs and sign checkpoints."""

    def __init__(self, keys: AuditKeys, *, checkpoint_every: int = 10_000) -> None:
        self.keys = keys
        self.checkpoint_every = checkpoint_every

    # --- append -------------------------------------------------------------------------

    def prepare(self, events: Sequence[AuditEvent]) -> list[ProtectedEvent]:
        """Protect BSNs and serialise details; done before the transaction to keep locks short."""
        return [protect_event(event, self.keys.bsn) for event in events]

    def append(self, session: Session, events: Sequence[AuditEvent]) -> AppendResult:
        return self.append_prepared(session, self.prepare(events))

    def append_to(self, database: Database, prepared: Sequence[ProtectedEvent]) -> AppendResult:
        """Append in a transaction of its own (blocking; run it in a worker thread).

        On SQLite, appenders in this process queue on a lock first: SQLite's own busy handler
        makes a waiting writer sleep 1, 2, 5, 10 ... ms, which wastes most of the time under
        steady load, while a lock hands over at once. Preparing the next batch meanwhile (BSN
        protection, JSON) overlaps with the insert, which runs without the GIL.
        """
        with _write_lock(database), database.transaction() as session:
            return self.append_prepared(session, prepared)

    def append_prepared(self, session: Session, prepared: Sequence[ProtectedEvent]) -> AppendResult:
        by_source: dict[str, list[ProtectedEvent]] = {}
        for item in prepared:
            by_source.setdefault(item.source, []).append(item)
        stored = duplicates = checkpoints = 0
        last: dict[str, int] = {}
        recorded_at = _now()
        for source, items in by_source.items():
            fresh = self._drop_duplicates(session, items)
            duplicates += len(items) - len(fresh)
            seq, prev, organization = self._lock_head(session, source, items[0].organization_ura)
            if not fresh:
                last[source] = seq
                continue
            for item in fresh:
                if item.organization_ura != organization:
                    raise SourceMismatch(f"source {source} belongs to organisation {organization}")
            start = seq
            rows: list[tuple[Any, ...]] = []
            for item in fresh:
                seq += 1
                canonical = canonical_record(
                    source,
                    seq,
                    item.event_id,
                    item.event_code,
                    item.action,
                    item.outcome,
                    item.occurred_at,
                    recorded_at,
                    item.organization_ura,
                    item.user_id,
                    item.patient_hash,
                    item.trace_id,
                    prev,
                    item.detail,
                )
                current = record_hash(canonical)
                rows.append(
                    (
                        source,
                        seq,
                        item.event_id,
                        item.event_code,
                        item.action,
                        item.outcome,
                        item.occurred_at,
                        recorded_at,
                        item.organization_ura,
                        item.user_id,
                        item.patient_hash,
                        item.trace_id,
                        prev,
                        current,
                        item.detail,
                    )
                )
                prev = current
            _insert_rows(session, rows)
            session.execute(
                audit_chain_head.update()
                .where(audit_chain_head.c.source == source)
                .values(last_seq=seq, last_hash=prev, updated_at=recorded_at)
            )
            stored += len(rows)
            last[source] = seq
            if start // self.checkpoint_every != seq // self.checkpoint_every:
                self._write_checkpoint(session, source, seq, prev)
                checkpoints += 1
        return AppendResult(stored, duplicates, last, checkpoints)

    def _drop_duplicates(self, session: Session, items: list[ProtectedEvent]) -> list[ProtectedEvent]:
        seen = _existing_event_ids(session, [i.event_id for i in items])
        fresh: list[ProtectedEvent] = []
        for item in items:
            if item.event_id not in seen:
                seen.add(item.event_id)
                fresh.append(item)
        return fresh

    def _lock_head(self, session: Session, source: str, organization: str) -> tuple[int, str, str]:
        values = {
            "source": source,
            "organization_ura": organization,
            "last_seq": 0,
            "last_hash": GENESIS_HASH,
            "updated_at": _now(),
        }
        dialect = _dialect(session)
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(audit_chain_head).values(**values).on_conflict_do_nothing(index_elements=["source"]))
        query = select(audit_chain_head.c.last_seq, audit_chain_head.c.last_hash, audit_chain_head.c.organization_ura)
        query = query.where(audit_chain_head.c.source == source)
        if dialect == "postgresql":
            query = query.with_for_update()
        row = session.execute(query).one()
        return int(row[0]), str(row[1]), str(row[2])

    # --- checkpoints --------------------------------------------------------------------

    def _write_checkpoint(self, session: Session, source: str, seq: int, hash_: str) -> Checkpoint:
        signer = self.keys.signer
        created = _now()
        checkpoint = Checkpoint(
            source, seq, hash_, created, signer.key_id, signer.sign(checkpoint_payload(source, seq, hash_, created))
        )
        session.execute(
            audit_checkpoint.insert().values(
                source=source,
                seq=seq,
                record_hash=hash_,
                created_at=created,
                key_id=checkpoint.key_id,
                signature=checkpoint.signature,
            )
        )
        return checkpoint

    def checkpoint(self, session: Session, source: str | None = None) -> list[Checkpoint]:
        """Sign a checkpoint at the head of each source (or one) that has records since its last one."""
        made: list[Checkpoint] = []
        for head in self.heads(session):
            if source is not None and head["source"] != source:
                continue
            if head["last_seq"] == 0:
                continue
            latest = session.execute(
                select(func.max(audit_checkpoint.c.seq)).where(audit_checkpoint.c.source == head["source"])
            ).scalar()
            if latest is not None and latest >= head["last_seq"]:
                continue
            row = session.execute(
                select(audit_record.c.record_hash).where(
                    audit_record.c.source == head["source"], audit_record.c.seq == head["last_seq"]
                )
            ).first()
            if row is None or row[0] != head["last_hash"]:
                # The head disagrees with the records: never sign over a chain that verify would reject.
                continue
            made.append(self._write_checkpoint(session, head["source"], head["last_seq"], head["last_hash"]))
        return made

    def checkpoint_at(self, session: Session, source: str, seq: int, hash_: str) -> Checkpoint:
        existing = self.checkpoints(session, source, seq_from=seq, seq_to=seq)
        if existing:
            return existing[0]
        return self._write_checkpoint(session, source, seq, hash_)

    # --- reads --------------------------------------------------------------------------

    @staticmethod
    def heads(session: Session) -> list[dict[str, Any]]:
        rows = session.execute(select(audit_chain_head).order_by(audit_chain_head.c.source)).mappings()
        return [dict(r) for r in rows]

    @staticmethod
    def sources(session: Session) -> list[str]:
        """Every source that has a head, records or an anchor."""
        names = set(session.execute(select(audit_chain_head.c.source)).scalars())
        # Distinct sources by walking the primary key (a loose index scan): a plain DISTINCT
        # would read every record, and verify must also find records of unknown sources.
        walk = text(
            "WITH RECURSIVE s(source) AS ("
            " SELECT min(source) FROM audit_record"
            " UNION ALL"
            " SELECT (SELECT min(r.source) FROM audit_record r WHERE r.source > s.source) FROM s"
            " WHERE s.source IS NOT NULL"
            ") SELECT source FROM s WHERE source IS NOT NULL"
        )
        names.update(session.execute(walk).scalars())
        names.update(session.execute(select(audit_anchor.c.source)).scalars())
        return sorted(names)

    @staticmethod
    def checkpoints(
        session: Session, source: str, *, seq_from: int | None = None, seq_to: int | None = None
    ) -> list[Checkpoint]:
        query = select(audit_checkpoint).where(audit_checkpoint.c.source == source)
        if seq_from is not None:
            query = query.where(audit_checkpoint.c.seq >= seq_from)
        if seq_to is not None:
            query = query.where(audit_checkpoint.c.seq <= seq_to)
        rows = session.execute(query.order_by(audit_checkpoint.c.seq)).mappings()
        return [Checkpoint(**dict(r)) for r in rows]

    @staticmethod
    def anchor(session: Session, source: str) -> Anchor | None:
        row = session.execute(select(audit_anchor).where(audit_anchor.c.source == source)).mappings().first()
        return Anchor(**dict(row)) if row else None

    @staticmethod
    def canonical_batches(
        session: Session, source: str, *, after_seq: int = 0, upto_seq: int | None = None, batch: int = 20_000
    ) -> Iterator[list[tuple[int, str, str, str]]]:
        """(seq, prev_hash, record_hash, canonical text) of one source in chain order, for verify.

        The canonical text (see `chain.canonical_record`) is assembled by the database with `||`,
        so the driver hands over four values per record instead of fifteen: reading, not hashing,
        is what limits verification speed.
        """
        connection = session.connection()
        raw: Any = connection.connection.driver_connection
        mark = "%s" if connection.dialect.name == "postgresql" else "?"
        canonical = (
            """'{"action":"' || action || '","detail":' || detail || ',"event_code":"' || event_code"""
            """ || '","event_id":"' || event_id || '","occurred_at":"' || occurred_at"""
            """ || '","organization_ura":"' || organization_ura || '","outcome":"' || outcome"""
            """ || '","patient_hash":' || COALESCE('"' || patient_hash || '"', 'null')"""
            """ || ',"prev_hash":"' || prev_hash || '","recorded_at":"' || recorded_at"""
            """ || '","seq":' || CAST(seq AS VARCHAR(20)) || ',"source":"' || source"""
            """ || '","trace_id":"' || trace_id || '","user_id":' || COALESCE('"' || user_id || '"', 'null') || '}'"""
        )
        upper = f" AND seq <= {mark}" if upto_seq is not None else ""
        statement = (
            f"SELECT seq, prev_hash, record_hash, {canonical} FROM audit_record "  # noqa: S608
            f"WHERE source = {mark} AND seq > {mark}{upper} ORDER BY seq"
        )
        if connection.dialect.name == "postgresql":
            # One server-side cursor: a plan per page could be a full scan and sort each time
            # (right after a bulk load the statistics do not know the table yet).
            with raw.cursor(name=f"ldn_audit_verify_{secrets.token_hex(4)}") as named:
                named.itersize = batch
                named.execute(statement, (source, after_seq) if upto_seq is None else (source, after_seq, upto_seq))
                while True:
                    page = named.fetchmany(batch)
                    if not page:
                        return
                    yield page
        statement += f" LIMIT {int(batch)}"
        last = after_seq
        cursor = raw.cursor()
        try:
            while True:
                params: tuple[Any, ...] = (source, last) if upto_seq is None else (source, last, upto_seq)
                cursor.execute(statement, params)
                rows = cursor.fetchall()
                if not rows:
                    return
                yield rows
                last = rows[-1][0]
                if len(rows) < batch:
                    return
        finally:
            cursor.close()

    @staticmethod
    def window(session: Session, source: str, first: int, last: int) -> list[StoredRecord]:
        columns = [audit_record.c[name] for name in RECORD_COLUMNS]
        query = (
            select(*columns)
            .where(audit_record.c.source == source, audit_record.c.seq >= first, audit_record.c.seq <= last)
            .order_by(audit_record.c.seq)
        )
        return [StoredRecord.from_row(source, r) for r in session.execute(query)]

    @staticmethod
    def query(session: Session, q: AuditQuery) -> list[StoredRecord]:
        columns = [audit_record.c.source, *(audit_record.c[name] for name in RECORD_COLUMNS)]
        query = select(*columns)
        c = audit_record.c
        if q.patient_hash is not None:
            query = query.where(c.patient_hash == q.patient_hash)
        if q.organization_ura is not None:
            query = query.where(c.organization_ura == q.organization_ura)
        if q.user_id is not None:
            query = query.where(c.user_id == q.user_id)
        if q.trace_id is not None:
            query = query.where(c.trace_id == q.trace_id)
        if q.event_codes:
            query = query.where(c.event_code.in_(q.event_codes))
        if q.exclude_codes:
            query = query.where(c.event_code.not_in(q.exclude_codes))
        if q.since is not None:
            query = query.where(c.occurred_at >= q.since)
        if q.until is not None:
            query = query.where(c.occurred_at < q.until)
        if q.before is not None:
            query = query.where(tuple_(c.occurred_at, c.source, c.seq) < tuple_(*q.before))
        query = query.order_by(c.occurred_at.desc(), c.source.desc(), c.seq.desc()).limit(q.limit)
        return [StoredRecord(*r) for r in session.execute(query)]

    @staticmethod
    def period_batches(
        session: Session, since: str, until: str, organization_ura: str | None, *, batch: int = 5_000
    ) -> Iterator[list[StoredRecord]]:
        """Records with `since <= occurred_at < until` (of one organisation), oldest first, in batches."""
        c = audit_record.c
        columns = [c.source, *(c[name] for name in RECORD_COLUMNS)]
        position: tuple[str, str, int] | None = None
        while True:
            query = select(*columns).where(c.occurred_at >= since, c.occurred_at < until)
            if organization_ura is not None:
                query = query.where(c.organization_ura == organization_ura)
            if position is not None:
                query = query.where(tuple_(c.occurred_at, c.source, c.seq) > tuple_(*position))
            query = query.order_by(c.occurred_at, c.source, c.seq).limit(batch)
            rows = [StoredRecord(*r) for r in session.execute(query)]
            if not rows:
                return
            yield rows
            if len(rows) < batch:
                return
            position = (rows[-1].occurred_at, rows[-1].source, rows[-1].seq)
