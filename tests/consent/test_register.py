"""The register's storage: append-only versions, no BSN in plain text anywhere, keys generated with
mode 0600, and a cache that never serves state older than a committed change."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from ldn.consent.cache import CitizenState, StateCache
from ldn.consent.decision import ClosedQuestion, OptOut, Result
from ldn.consent.keys import BsnKeys, ConsentKeyError, load_keys
from ldn.consent.model import ChoiceSource
from ldn.consent.register import Actor, ConsentRegister
from ldn.consent.schemas import ChoiceDraft
from ldn.consent.settings import ConsentSettings
from ldn.core.errors import BadRequest, Conflict
from ldn.core.storage import Database
from ldn.core.topology import Topology

from .service_helpers import CITIZEN_BSN, GP, PHARMACIST, PHARMACY

CITIZEN = Actor(recorded_by="citizen", client_id="test")


@pytest.fixture
def register(database: Database, topology: Topology, tmp_path: Path) -> ConsentRegister:
    settings = ConsentSettings()
    return ConsentRegister(
        database=database,
        topology=topology,
        settings=settings,
        keys=load_keys(settings, tmp_path),
        base_url="http://ldn.test/consent",
    )


def draft(decision: str = "permit", **kw: Any) -> ChoiceDraft:
    data = {"holder": f"ura:{GP}", "requester": "type:J8", "data_category": "GGC013", "decision": decision, **kw}
    return ChoiceDraft.model_validate(data)


def dump_tables(database: Database) -> str:
    with database.transaction(readonly=True) as session:
        parts = []
        for table in (
            "consent_choices",
            "consent_optouts",
            "consent_overrides",
            "consent_subscriptions",
            "consent_outbox",
        ):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608 - fixed table names
            parts.append(json.dumps([[str(v) for v in row] for row in rows]))
        return "\n".join(parts)


def test_keys_are_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_keys(ConsentSettings(), tmp_path)
    for name in ("bsn-hash.key", "encryption.key"):
        mode = stat.S_IMODE((tmp_path / "consent" / name).stat().st_mode)
        assert mode == 0o600, name
    second = load_keys(ConsentSettings(), tmp_path)
    assert first.bsn_hash(CITIZEN_BSN) == second.bsn_hash(CITIZEN_BSN)
    assert first.bsn_hash(CITIZEN_BSN) != load_keys(ConsentSettings(), tmp_path / "other").bsn_hash(CITIZEN_BSN)
    sealed = first.seal(b"999990019", "subscription")
    assert second.open(sealed, "subscription") == b"999990019"
    with pytest.raises(ConsentKeyError):
        second.open(sealed, "outbox")  # bound to its purpose
    assert "999990019" not in sealed
    assert repr(first) == f"BsnKeys(key_id={first.key_id})"  # no key material in reprs


def test_configured_keys_are_used_and_checked(tmp_path: Path) -> None:
    settings = ConsentSettings(bsn_hash_key=SecretStr("ab" * 32), encryption_key=SecretStr("cd" * 32))
    keys = load_keys(settings, tmp_path)
    assert not (tmp_path / "consent").exists()
    assert keys.bsn_hash(CITIZEN_BSN) == BsnKeys(bytes.fromhex("ab" * 32), bytes.fromhex("cd" * 32)).bsn_hash(
        CITIZEN_BSN
    )
    with pytest.raises(ConsentKeyError):
        load_keys(ConsentSettings(bsn_hash_key=SecretStr("short")), tmp_path)
    with pytest.raises(ConsentKeyError):
        load_keys(ConsentSettings(encryption_key=SecretStr("ab" * 40)), tmp_path)


async def test_versions_are_appended_never_overwritten(register: ConsentRegister, database: Database) -> None:
    [first] = await register.record_choices(CITIZEN_BSN, [draft()], source=ChoiceSource.CITIZEN, actor=CITIZEN)
    await register.record_choices(CITIZEN_BSN, [draft("deny")], source=ChoiceSource.CITIZEN, actor=CITIZEN)
    await register.withdraw_choice(first.choice.id, bsn=CITIZEN_BSN, actor=CITIZEN, allow_any_recorder=True)
    with database.transaction(readonly=True) as session:
        rows = session.execute(
            text(
                "SELECT version, status, superseded, body FROM consent_choices WHERE choice_id = :id ORDER BY version"
            ),
            {"id": first.choice.id},
        ).all()
    assert [(r[0], r[1], bool(r[2])) for r in rows] == [
        (1, "active", True),
        (2, "active", True),
        (3, "withdrawn", False),
    ]
    assert [json.loads(r[3])["decision"] for r in rows] == ["permit", "deny", "deny"]
    history = await register.choices(CITIZEN_BSN, history=True)
    assert [(h.choice.version, h.status, h.current) for h in history] == [
        (1, "active", False),
        (2, "active", False),
        (3, "withdrawn", True),
    ]
    assert await register.choices(CITIZEN_BSN) == []


async def test_no_bsn_in_plain_text_in_any_table(register: ConsentRegister, database: Database) -> None:
    from ldn.consent.notifications import Subscriptions
    from ldn.consent.subscriptions import SubscriptionRequest

    subs = Subscriptions(database=database, keys=register.keys)
    await subs.create(
        SubscriptionRequest(CITIZEN_BSN, "http://127.0.0.1:9/hook", (), "test", None),
        subscriber_ura=PHARMACY,
        client_id="x",
    )
    await register.record_choices(CITIZEN_BSN, [draft()], source=ChoiceSource.CITIZEN, actor=CITIZEN)
    await register.set_optout(CITIZEN_BSN, "primary", objected=True, actor=CITIZEN)
    await register.log_override(
        bsn=CITIZEN_BSN,
        via="override",
        holder_ura=GP,
        requester_ura=PHARMACY,
        requester_facility_type="J8",
        data_category="GGC013",
        professional_id=PHARMACIST,
        professional_role="17.000",
        reason="spoed",
        actor=CITIZEN,
    )
    dump = dump_tables(database)
    assert register.bsn_hash(CITIZEN_BSN) in dump
    assert dump.count("v1:") == 3  # the subscription and two queued notifications, sealed
    assert CITIZEN_BSN not in dump


async def test_a_race_between_load_and_change_never_caches_old_state(register: ConsentRegister) -> None:
    """A load that began before a change committed must not put its (old) result in the cache."""
    key = register.bsn_hash(CITIZEN_BSN)
    token = register.cache.token()
    old = register.state_sync(CITIZEN_BSN)  # loads and caches the empty state
    register.cache.invalidate(key)
    await register.record_choices(CITIZEN_BSN, [draft()], source=ChoiceSource.CITIZEN, actor=CITIZEN)
    register.cache.put(key, old, token)  # a slow reader finishing late
    assert len((await register.state(CITIZEN_BSN)).choices) == 1


def test_cache_bounds_and_ttl() -> None:
    cache = StateCache(size=2, ttl=0)
    empty = CitizenState((), OptOut())
    for key in ("a", "b", "c"):
        cache.put(key, empty, cache.token())
    assert cache.get("a") is None and cache.get("c") is empty and len(cache) == 2
    disabled = StateCache(size=0, ttl=0)
    disabled.put("a", empty, 0)
    assert disabled.get("a") is None
    expired = StateCache(size=10, ttl=1e-9)
    expired.put("a", empty, 0)
    assert expired.get("a") is None
    many = StateCache(size=10, ttl=0)
    token = many.token()
    for i in range(5000):  # more invalidations than marks are kept: old tokens are refused
        many.invalidate(f"k{i}")
    many.put("fresh", empty, token)
    assert many.get("fresh") is None


async def test_conflict_detection_and_concurrent_versions(register: ConsentRegister) -> None:
    with pytest.raises(BadRequest):
        await register.record_choices(CITIZEN_BSN, [draft(), draft("deny")], source=ChoiceSource.CITIZEN, actor=CITIZEN)
    [record] = await register.record_choices(CITIZEN_BSN, [draft()], source=ChoiceSource.CITIZEN, actor=CITIZEN)
    # Two writers replacing the same version: the second one loses with a 409.
    await register.replace_choice(
        record.choice.id, draft("deny"), bsn=CITIZEN_BSN, source=ChoiceSource.CITIZEN, actor=CITIZEN, expected_version=1
    )

    def stale_supersede(session: Any) -> bool:
        from ldn.consent import store

        return store.supersede_choice(session, record.choice.id, 1)

    assert await register.database.run(stale_supersede) is False
    with pytest.raises(Conflict):

        def duplicate_version(session: Any) -> None:
            from ldn.consent import store

            store.insert_choice(
                session,
                choice_id=record.choice.id,
                version=2,
                bsn_hash=register.bsn_hash(CITIZEN_BSN),
                status="active",
                body="{}",
                recorded_at=record.choice.recorded_at,
                recorded_by="citizen",
            )

        await register._write(duplicate_version)


async def test_sync_and_async_paths_agree(register: ConsentRegister) -> None:
    await register.record_choices(CITIZEN_BSN, [draft("deny")], source=ChoiceSource.CITIZEN, actor=CITIZEN)
    from datetime import UTC, datetime

    q = ClosedQuestion(
        bsn=CITIZEN_BSN,
        holder_ura=GP,
        holder_facility_type="Z3",
        data_category="GGC013",
        requester_ura=PHARMACY,
        requester_facility_type="J8",
        professional_id=PHARMACIST,
        professional_role="17.000",
        purpose_of_use="TREAT",
        at=datetime.now(UTC),
    )
    assert register.closed_question_sync(q).result is Result.DENY
    assert (await register.closed_question(q, actor=CITIZEN)).result is Result.DENY
    assert register.closed_question_sync(ClosedQuestion()).result is Result.INDETERMINATE


async def test_delivery_lease_is_exclusive_and_released(register: ConsentRegister, database: Database) -> None:
    from datetime import UTC, datetime, timedelta

    from ldn.consent import store
    from ldn.consent.notifications import Subscriptions
    from ldn.consent.subscriptions import SubscriptionRequest

    resource = await Subscriptions(database=database, keys=register.keys).create(
        SubscriptionRequest(CITIZEN_BSN, "http://127.0.0.1:9/hook", (), "test", None),
        subscriber_ura=PHARMACY,
        client_id="x",
    )
    sid = resource["id"]
    now = datetime.now(UTC)
    soon = now + timedelta(seconds=30)
    with database.transaction() as session:
        assert store.claim_subscription(session, sid, "a", now, soon) is not None
        assert store.claim_subscription(session, sid, "b", now, soon) is None  # held by a
        assert store.claim_subscription(session, sid, "a", now, soon) is not None  # a renews
        # A crashed holder's lease runs out.
        assert store.claim_subscription(session, sid, "b", soon + timedelta(seconds=1), soon + timedelta(seconds=60))
        store.release_leases(session, "a")  # not a's any more: nothing happens
        assert store.claim_subscription(session, sid, "a", now, soon) is None
        store.release_leases(session, "b")
        assert store.claim_subscription(session, sid, "a", now, soon) is not None
