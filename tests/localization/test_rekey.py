"""Online storage-key rotation: registrations and lookups keep working, no record is orphaned."""

from __future__ import annotations

import asyncio
import hmac
import random
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from hashlib import sha256
from typing import Any

import anyio.to_thread
import pytest

from ldn.localization.nvi import store
from ldn.localization.nvi.keys import NviKeyMaterial, key_check_value
from ldn.localization.nvi.rekey import rekey
from ldn.localization.settings import NviSettings
from tests.localization.conftest import Loc, make_bsn

ORG = "00000020"


def _material(loc: Loc) -> NviKeyMaterial:
    return NviKeyMaterial(NviSettings().resolved_key_dir(loc.network.settings.data_dir))


def _versions(loc: Loc) -> dict[int, int]:
    with loc.network.database.transaction(readonly=True) as session:
        return store.count_by_storage_version(session)


def _key_rows(loc: Loc) -> list[store.StorageKeyRow]:
    with loc.network.database.transaction(readonly=True) as session:
        return store.storage_key_rows(session)


@pytest.mark.slow
async def test_rekey_while_registering_and_searching(fast_loc: Loc) -> None:
    loc = fast_loc
    writer, reader = loc.node_client(ORG), loc.node_client("00000050")
    expected: dict[str, int] = {}
    initial = [make_bsn(1000 + i) for i in range(60)]
    await writer.register_many([(bsn, ["Condition", "Procedure"]) for bsn in initial])
    expected.update(dict.fromkeys(initial, 2))
    assert _versions(loc) == {1: 120}

    def slow_progress(_: int) -> None:
        time.sleep(0.02)  # stretch the conversion so that traffic overlaps every phase of it

    job = asyncio.ensure_future(
        anyio.to_thread.run_sync(
            partial(
                rekey,
                loc.network.database,
                _material(loc),
                grace_seconds=0.3,
                batch_size=5,
                key_state_seconds=0.05,
                progress=slow_progress,
            )
        )
    )
    lookups = registrations = 0
    rng = random.Random(7)
    n = 0
    while not job.done():
        n += 1
        bsn = make_bsn(2000 + n)
        summary = await writer.register(bsn, ["Condition"])
        assert summary.created == 1
        expected[bsn] = 1
        registrations += 1
        # Re-registering a record that exists (possibly under the other key version) is a no-op.
        again = rng.choice(initial)
        assert (await writer.register(again, ["Condition"])).existing == 1
        probe = rng.choice(list(expected))
        found = await reader.search(probe)
        assert len(found) == expected[probe], f"lookup lost records during rotation (round {n})"
        lookups += 1
    report = await job
    assert registrations >= 5 and lookups >= 5, "the traffic did not overlap the rotation"
    assert report.new_version == 2 and report.old_versions == (1,)
    assert report.converted >= 120

    # Every row is under the new key, nothing was duplicated or lost, and all are found.
    assert _versions(loc) == {2: sum(expected.values())}
    assert [(r.version, r.status) for r in _key_rows(loc)] == [(1, "retired"), (2, "active")]
    await asyncio.sleep(0.1)  # past the key-state interval: processes now read only v2
    for bsn, count in expected.items():
        assert len(await reader.search(bsn)) == count


async def test_rekey_merges_a_duplicate_written_under_the_new_key(fast_loc: Loc) -> None:
    """A registration racing the rotation can leave the same record under both versions; the
    rotation keeps one."""
    loc = fast_loc
    client = loc.node_client(ORG)
    bsn = make_bsn(3000)
    await client.register(bsn, ["Alert"])
    material = _material(loc)
    with loc.network.database.transaction() as session:
        [row] = session.execute(store.nvi_record.select()).mappings().all()
        element = loc.nvi.keys.element_sealer.open(bytes(row["sealed_element"]), row["id"].bytes)
        key2 = material.add_storage_key(2)
        store.insert_storage_key(session, 2, key_check_value(key2), datetime.now(UTC))
        duplicate_id = uuid.uuid4()
        store.insert_records(
            session,
            [
                {
                    **dict(row),
                    "id": duplicate_id,
                    "pseudonym": hmac.new(key2, element, sha256).digest(),
                    "storage_key_version": 2,
                    "sealed_element": loc.nvi.keys.element_sealer.seal(element, duplicate_id.bytes),
                }
            ],
        )
    await asyncio.sleep(0.1)
    assert len(await loc.node_client("00000050").search(bsn)) == 1  # answered once even now
    report = await anyio.to_thread.run_sync(
        partial(rekey, loc.network.database, material, grace_seconds=0.0, key_state_seconds=0.05)
    )
    assert report.new_version == 3 and report.merged_duplicates == 1
    assert _versions(loc) == {3: 1}
    await asyncio.sleep(0.1)
    assert len(await loc.node_client("00000050").search(bsn)) == 1


async def test_a_keyring_that_does_not_match_the_database_is_refused(fast_loc: Loc, tmp_path: Any) -> None:
    from ldn.localization.nvi.keys import KeyringError, StorageKeyManager

    manager = StorageKeyManager(loc_db := fast_loc.network.database, NviKeyMaterial(tmp_path / "other"), 0.05)
    with pytest.raises(KeyringError), loc_db.transaction() as session:
        manager.refresh(session)
