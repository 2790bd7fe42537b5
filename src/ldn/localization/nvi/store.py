"""SQL of the NVI: records and storage-key versions. Functions take a Session and never commit.

Every lookup is ``pseudonym IN (...)`` on the unique index (pseudonym, custodian_ura, category),
so its cost depends on the number of matching rows, not on the size of the table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from ldn.localization.tables import nvi_record, nvi_storage_key

ACTIVE = "active"
RETIRED = "retired"
# Bound parameters per IN list: far below SQLite's limit, large enough to keep round trips few.
IN_CHUNK = 900


@dataclass(frozen=True)
class StorageKeyRow:
    version: int
    status: str
    check_value: bytes
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class Record:
    id: uuid.UUID
    custodian_ura: str
    category: str
    source_client_id: str
    oprf_key_version: str
    storage_key_version: int
    created_at: datetime


_RECORD_COLUMNS = (
    nvi_record.c.id,
    nvi_record.c.custodian_ura,
    nvi_record.c.category,
    nvi_record.c.source_client_id,
    nvi_record.c.oprf_key_version,
    nvi_record.c.storage_key_version,
    nvi_record.c.created_at,
)


def _record(row: Any) -> Record:
    return Record(
        id=row.id,
        custodian_ura=row.custodian_ura,
        category=row.category,
        source_client_id=row.source_client_id,
        oprf_key_version=row.oprf_key_version,
        storage_key_version=row.storage_key_version,
        created_at=row.created_at,
    )


def _chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# ---------------------------------------------------------------------- storage keys


def storage_key_rows(session: Session) -> list[StorageKeyRow]:
    rows = session.execute(select(nvi_storage_key).order_by(nvi_storage_key.c.version)).all()
    return [StorageKeyRow(r.version, r.status, bytes(r.check_value), r.created_at, r.retired_at) for r in rows]


def insert_storage_key(session: Session, version: int, check_value: bytes, now: datetime) -> None:
    session.execute(
        insert(nvi_storage_key).values(version=version, status=ACTIVE, check_value=check_value, created_at=now)
    )


def retire_storage_keys_except(session: Session, keep_version: int, now: datetime) -> list[int]:
    rows = session.execute(
        select(nvi_storage_key.c.version).where(
            nvi_storage_key.c.status == ACTIVE, nvi_storage_key.c.version != keep_version
        )
    ).scalars()
    versions = list(rows)
    if versions:
        session.execute(
            update(nvi_storage_key)
            .where(nvi_storage_key.c.version.in_(versions))
            .values(status=RETIRED, retired_at=now)
        )
    return versions


# ---------------------------------------------------------------------- records


def find_by_pseudonyms(
    session: Session, pseudonyms: Sequence[bytes], *, categories: Iterable[str] | None = None, limit: int
) -> list[Record]:
    """Records of any custodian for these lookup hashes (one patient, every storage version)."""
    query = select(*_RECORD_COLUMNS).where(nvi_record.c.pseudonym.in_(list(pseudonyms)))
    if categories is not None:
        query = query.where(nvi_record.c.category.in_(sorted(categories)))
    query = query.order_by(nvi_record.c.custodian_ura, nvi_record.c.category, nvi_record.c.id).limit(limit)
    return [_record(r) for r in session.execute(query)]


def existing_for_custodian(
    session: Session, custodian_ura: str, pseudonyms: Sequence[bytes]
) -> dict[tuple[bytes, str], uuid.UUID]:
    """(pseudonym, category) -> record id for this custodian's records among ``pseudonyms``."""
    found: dict[tuple[bytes, str], uuid.UUID] = {}
    unique = list(dict.fromkeys(pseudonyms))
    for chunk in _chunks(unique):
        rows = session.execute(
            select(nvi_record.c.pseudonym, nvi_record.c.category, nvi_record.c.id).where(
                nvi_record.c.pseudonym.in_(list(chunk)), nvi_record.c.custodian_ura == custodian_ura
            )
        )
        for row in rows:
            found[(bytes(row.pseudonym), row.category)] = row.id
    return found


def insert_records(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(nvi_record), list(rows))


def get_record(session: Session, record_id: uuid.UUID) -> Record | None:
    row = session.execute(select(*_RECORD_COLUMNS).where(nvi_record.c.id == record_id)).first()
    return None if row is None else _record(row)


def delete_record(session: Session, record_id: uuid.UUID) -> bool:
    result = session.execute(delete(nvi_record).where(nvi_record.c.id == record_id))
    return bool(getattr(result, "rowcount", 0))


def delete_for_subject(
    session: Session, custodian_ura: str, pseudonyms: Sequence[bytes], categories: Iterable[str] | None
) -> int:
    """Delete one custodian's records for a patient (optionally only some categories)."""
    condition = and_(nvi_record.c.pseudonym.in_(list(pseudonyms)), nvi_record.c.custodian_ura == custodian_ura)
    if categories is not None:
        condition = and_(condition, nvi_record.c.category.in_(sorted(categories)))
    result = session.execute(delete(nvi_record).where(condition))
    return int(getattr(result, "rowcount", 0) or 0)


def own_records(
    session: Session,
    custodian_ura: str,
    *,
    source_client_id: str | None,
    categories: Iterable[str] | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[Record]:
    """A custodian's records in id order (keyset paging on the (custodian, id) index)."""
    query = select(*_RECORD_COLUMNS).where(nvi_record.c.custodian_ura == custodian_ura)
    if source_client_id is not None:
        query = query.where(nvi_record.c.source_client_id == source_client_id)
    if categories is not None:
        query = query.where(nvi_record.c.category.in_(sorted(categories)))
    if after is not None:
        query = query.where(nvi_record.c.id > after)
    return [_record(r) for r in session.execute(query.order_by(nvi_record.c.id).limit(limit))]


def count_records(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(nvi_record)).scalar_one())


def count_by_storage_version(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(nvi_record.c.storage_key_version, func.count()).group_by(nvi_record.c.storage_key_version)
    )
    return {int(v): int(n) for v, n in rows}


# ---------------------------------------------------------------------- rekey and purge


@dataclass(frozen=True)
class RekeyRow:
    id: uuid.UUID
    storage_key_version: int
    custodian_ura: str
    category: str
    sealed_element: bytes


def rows_to_rekey(session: Session, target_version: int, after: uuid.UUID | None, limit: int) -> list[RekeyRow]:
    """The next rows (in id order) not yet under ``target_version``: a linear walk of the key."""
    query = select(
        nvi_record.c.id,
        nvi_record.c.storage_key_version,
        nvi_record.c.custodian_ura,
        nvi_record.c.category,
        nvi_record.c.sealed_element,
    ).where(nvi_record.c.storage_key_version != target_version)
    if after is not None:
        query = query.where(nvi_record.c.id > after)
    rows = session.execute(query.order_by(nvi_record.c.id).limit(limit))
    return [RekeyRow(r.id, r.storage_key_version, r.custodian_ura, r.category, bytes(r.sealed_element)) for r in rows]


def existing_at_version(
    session: Session, version: int, keys: Sequence[tuple[bytes, str, str]]
) -> set[tuple[bytes, str, str]]:
    """Which (pseudonym, custodian, category) already exist under ``version`` (rekey duplicates)."""
    found: set[tuple[bytes, str, str]] = set()
    pseudonyms = list(dict.fromkeys(k[0] for k in keys))
    for chunk in _chunks(pseudonyms):
        rows = session.execute(
            select(nvi_record.c.pseudonym, nvi_record.c.custodian_ura, nvi_record.c.category).where(
                nvi_record.c.pseudonym.in_(list(chunk)), nvi_record.c.storage_key_version == version
            )
        )
        found.update((bytes(r.pseudonym), r.custodian_ura, r.category) for r in rows)
    return found & set(keys)


def rekey_rows(session: Session, updates: Sequence[dict[str, Any]], version: int) -> None:
    """Move rows to ``version``: each update is {b_id, b_old, pseudonym}; a row changed meanwhile
    (deleted, or already moved) is left alone."""
    if not updates:
        return
    statement = (
        update(nvi_record)
        .where(nvi_record.c.id == bindparam("b_id"), nvi_record.c.storage_key_version == bindparam("b_old"))
        .values(pseudonym=bindparam("b_pseudonym"), storage_key_version=version)
    )
    session.execute(statement, list(updates))


def delete_ids(session: Session, ids: Sequence[uuid.UUID]) -> int:
    deleted = 0
    for chunk in _chunks(list(ids)):
        result = session.execute(delete(nvi_record).where(nvi_record.c.id.in_(list(chunk))))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


def count_not_at_version(session: Session, version: int) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(nvi_record).where(nvi_record.c.storage_key_version != version)
        ).scalar_one()
    )


def purge_oprf_version_batch(session: Session, oprf_key_version: str, limit: int) -> int:
    """Delete up to ``limit`` records made under a (retired) PRS key version."""
    ids = list(
        session.execute(
            select(nvi_record.c.id).where(nvi_record.c.oprf_key_version == oprf_key_version).limit(limit)
        ).scalars()
    )
    return delete_ids(session, ids)
