"""Online rotation of the NVI storage key (`ldn nvi rekey`), without orphaning a record.

A lookup hash ``HMAC(storage_key_vN, element)`` cannot be converted by itself. The NVI therefore
keeps each record's element sealed under its data key, and a rotation recomputes the hash:

1. Add key vN+1 to the keyring file and mark it active in `nvi_storage_key`. From then on every
   NVI process, within `key_state_seconds`, *writes* vN+1 and *reads* vN and vN+1 (a lookup
   queries ``pseudonym IN (hash_vN, hash_vN+1)``), so lookups find rows of either version.
2. Wait a grace period longer than that refresh interval, so that no process still writes vN.
3. Walk the table in primary-key order, in batches of one transaction each: open the element,
   hash it under vN+1, update the row; where a vN+1 row for the same (patient, custodian,
   category) already exists (a registration raced the rotation), delete the vN duplicate.
4. Count the rows not yet under vN+1; repeat the walk until there are none.
5. Retire vN: processes stop reading it within `key_state_seconds`.

Lookups and registrations keep running throughout: every row is always findable under a version
every process reads, and no step ever leaves a row under a key nobody reads.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ldn.core.storage import Database
from ldn.localization.nvi import store
from ldn.localization.nvi.keys import NviKeyMaterial, StorageKeyManager, key_check_value

logger = logging.getLogger("ldn.nvi.rekey")
_MAX_CONFLICT_RETRIES = 10


@dataclass(frozen=True)
class RekeyReport:
    old_versions: tuple[int, ...]
    new_version: int
    converted: int
    merged_duplicates: int
    passes: int
    seconds: float


def _start(session: Session, material: NviKeyMaterial) -> tuple[int, tuple[int, ...]]:
    rows = store.storage_key_rows(session)
    if not rows:
        raise RuntimeError("the NVI has no storage key yet; start the NVI once first")
    old = tuple(r.version for r in rows if r.status == store.ACTIVE)
    version = max(r.version for r in rows) + 1
    key = material.add_storage_key(version)
    store.insert_storage_key(session, version, key_check_value(key), datetime.now(UTC))
    return version, old


def _convert_batch(
    session: Session, manager: StorageKeyManager, version: int, key: bytes, after: uuid.UUID | None, limit: int
) -> tuple[uuid.UUID | None, int, int]:
    rows = store.rows_to_rekey(session, version, after, limit)
    if not rows:
        return None, 0, 0
    sealer = manager.element_sealer
    hashed = [(row, hmac.new(key, sealer.open(row.sealed_element, row.id.bytes), sha256).digest()) for row in rows]
    targets = [(h, row.custodian_ura, row.category) for row, h in hashed]
    # A target that exists under the new version already, or twice in this batch, is a duplicate
    # record: keep one row, delete the others.
    taken = store.existing_at_version(session, version, targets)
    to_delete: list[uuid.UUID] = []
    updates: list[dict[str, object]] = []
    for (row, h), target in zip(hashed, targets, strict=True):
        if target in taken:
            to_delete.append(row.id)
        else:
            taken.add(target)
            updates.append({"b_id": row.id, "b_old": row.storage_key_version, "b_pseudonym": h})
    store.delete_ids(session, to_delete)
    store.rekey_rows(session, updates, version)
    return rows[-1].id, len(updates), len(to_delete)


def rekey(
    database: Database,
    material: NviKeyMaterial,
    *,
    grace_seconds: float,
    batch_size: int = 1000,
    key_state_seconds: float = 1.0,
    progress: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RekeyReport:
    """Rotate the storage key online (see the module doc); returns what was done."""
    started = time.monotonic()
    manager = StorageKeyManager(database, material, key_state_seconds)
    with database.transaction() as session:
        manager.initialize(session)
        version, old = _start(session, material)
    key = material.storage_key(version)
    assert key is not None
    logger.info("storage key v%d published; waiting %.1f s before converting", version, grace_seconds)
    sleep(grace_seconds)

    converted = merged = passes = 0
    while True:
        passes += 1
        after: uuid.UUID | None = None
        conflicts = 0
        while True:
            try:
                with database.transaction() as session:
                    last, done, dropped = _convert_batch(session, manager, version, key, after, batch_size)
            except IntegrityError:
                # A registration inserted the same record under the new version between our
                # duplicate check and the update: redo the batch, which now sees it.
                conflicts += 1
                if conflicts > _MAX_CONFLICT_RETRIES:
                    raise
                continue
            conflicts = 0
            if last is None:
                break
            after = last
            converted += done
            merged += dropped
            if progress is not None:
                progress(converted)
        with database.transaction(readonly=True) as session:
            remaining = store.count_not_at_version(session, version)
        if remaining == 0:
            break
        # Rows written under the old version by a process whose view was stale: walk again.
        sleep(min(grace_seconds, 1.0))

    with database.transaction() as session:
        store.retire_storage_keys_except(session, version, datetime.now(UTC))
    seconds = time.monotonic() - started
    logger.info("storage key rotated to v%d: %d rows converted, %d duplicates merged", version, converted, merged)
    return RekeyReport(old, version, converted, merged, passes, seconds)
