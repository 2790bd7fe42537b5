"""SQL of the central mCSD directory. Functions take a Session and never commit.

Writers serialise on one lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped
advisory lock) and stamp each version with a strictly increasing `last_updated`, so the history
order is the commit order: a replica that has applied everything up to time T can never later
meet an older, late-committed change (the reason `_since` polling is safe).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from ldn.addressing.model import now_us
from ldn.addressing.tables import mcsd_history, mcsd_resources, mcsd_search

R, H, S = mcsd_resources, mcsd_history, mcsd_search
_LOCK_KEY = 0x6C646E6D637364  # "ldnmcsd"


def dumps(content: dict[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"), check_circular=False)


@dataclass(frozen=True)
class Stored:
    resource_type: str
    id: str
    version_id: int
    last_updated: int
    publisher_ura: str
    content: dict[str, Any]

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'


def write_lock(session: Session) -> None:
    """Serialise directory writers for the rest of this transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def custom_plans(session: Session, *, time_limit: float | None = None) -> None:
    """Plan each statement of this transaction for its actual values (PostgreSQL), and stop any
    that runs longer than `time_limit` seconds (the caller then gets 503 `timeout`).

    The driver prepares statements it sees repeatedly, and PostgreSQL may then reuse one generic
    plan for every value: for `status=active` (most rows) and `identifier=...` (one row) alike,
    or one made while a table was still nearly empty. Searches and replica pages need the plan
    that fits their values. The time limit is a last line behind the size limits on a search
    (`search.check_request_size`); SQLite has no such setting, and needs none for bounded queries.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        if time_limit is not None:
            # SET takes no bind parameters; the value is a number we computed.
            session.execute(text(f"SET LOCAL statement_timeout = {int(time_limit * 1000)}"))


def next_timestamp(session: Session) -> int:
    """A version time later than every stored one (call with the write lock held)."""
    last = session.info.get("mcsd_last_ts")
    if last is None:
        last = session.execute(select(func.max(H.c.last_updated))).scalar() or 0
    stamp = max(now_us(), int(last) + 1)
    session.info["mcsd_last_ts"] = stamp
    return stamp


def high_water_mark(session: Session) -> int:
    """The newest version time in the directory (0 when empty)."""
    return int(session.execute(select(func.max(H.c.last_updated))).scalar() or 0)


def _stored(row: Any) -> Stored:
    return Stored(
        row.resource_type, row.id, row.version_id, row.last_updated, row.publisher_ura, json.loads(row.content)
    )


def get_current(session: Session, resource_type: str, resource_id: str) -> Stored | None:
    row = session.execute(select(R).where(R.c.resource_type == resource_type, R.c.id == resource_id)).first()
    return None if row is None else _stored(row)


def get_version(session: Session, resource_type: str, resource_id: str, version_id: int) -> dict[str, Any] | None:
    row = session.execute(
        select(H.c.content).where(
            H.c.resource_type == resource_type, H.c.id == resource_id, H.c.version_id == version_id
        )
    ).first()
    return None if row is None else dict(json.loads(row[0]))


def ids_with_token(session: Session, resource_type: str, param: str, system: str, value: str) -> list[str]:
    rows = session.execute(
        select(S.c.res_id).where(
            S.c.resource_type == resource_type, S.c.param == param, S.c.value == value, S.c.system == system
        )
    ).all()
    return [r[0] for r in rows]


def put(
    session: Session,
    *,
    resource_type: str,
    resource_id: str,
    version_id: int,
    last_updated: int,
    publisher_ura: str,
    content: dict[str, Any],
    index_rows: Sequence[tuple[str, str, str]],
    created: bool,
) -> None:
    """Store a new current version, append it to the history and replace its index rows."""
    body = dumps(content)
    values = {
        "version_id": version_id,
        "last_updated": last_updated,
        "publisher_ura": publisher_ura,
        "content": body,
    }
    if created:
        session.execute(insert(R).values(resource_type=resource_type, id=resource_id, **values))
    else:
        session.execute(update(R).where(R.c.resource_type == resource_type, R.c.id == resource_id).values(**values))
        session.execute(delete(S).where(S.c.resource_type == resource_type, S.c.res_id == resource_id))
    session.execute(
        insert(H).values(
            resource_type=resource_type,
            id=resource_id,
            version_id=version_id,
            last_updated=last_updated,
            method="POST" if created else "PUT",
            content=body,
        )
    )
    if index_rows:
        session.execute(
            insert(S),
            [
                {"resource_type": resource_type, "res_id": resource_id, "param": p, "system": s, "value": v}
                for p, s, v in index_rows
            ],
        )


def fetch_many(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Current content (JSON text, as stored) of many (type, id) pairs."""
    by_type: dict[str, set[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, set()).add(rid)
    out: dict[tuple[str, str], str] = {}
    for rtype, ids in by_type.items():
        id_list = sorted(ids)
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            for row in session.execute(
                select(R.c.id, R.c.content).where(R.c.resource_type == rtype, R.c.id.in_(chunk))
            ).all():
                out[(rtype, row[0])] = row[1]
    return out


@dataclass(frozen=True)
class HistoryRow:
    seq: int
    resource_type: str
    id: str
    version_id: int
    last_updated: int
    method: str
    content: str  # the version as stored (JSON text): pages are spliced, never re-encoded


def history_page(
    session: Session,
    *,
    resource_type: str | None,
    resource_id: str | None,
    since: int | None,
    cursor: tuple[int, int] | None,
    ascending: bool,
    limit: int,
) -> list[HistoryRow]:
    """One page of versions in (last_updated, seq) order after `cursor`, at most `limit` + 1."""
    query = select(H.c.seq, H.c.resource_type, H.c.id, H.c.version_id, H.c.last_updated, H.c.method, H.c.content)
    conditions: list[ColumnElement[bool]] = []
    if resource_type is not None:
        conditions.append(H.c.resource_type == resource_type)
    if resource_id is not None:
        conditions.append(H.c.id == resource_id)
    if since is not None:
        conditions.append(H.c.last_updated >= since)
    if cursor is not None:
        lu, seq = cursor
        if ascending:
            conditions.append(or_(H.c.last_updated > lu, and_(H.c.last_updated == lu, H.c.seq > seq)))
        else:
            conditions.append(or_(H.c.last_updated < lu, and_(H.c.last_updated == lu, H.c.seq < seq)))
    if conditions:
        query = query.where(*conditions)
    if ascending:
        query = query.order_by(H.c.last_updated, H.c.seq)
    else:
        query = query.order_by(H.c.last_updated.desc(), H.c.seq.desc())
    rows = session.execute(query.limit(limit + 1)).all()
    return [HistoryRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]
