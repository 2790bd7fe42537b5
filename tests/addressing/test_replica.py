"""A node's replica: initial load, `_history` catch-up, lookups, anti-spoofing, 429, crash and resume."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ldn.addressing import store
from ldn.addressing.codes import source_uri
from ldn.addressing.model import instant_to_us, us_to_instant
from ldn.addressing.replica import (
    AddressNotFound,
    NoToken,
    ReplicaLookups,
    ReplicaStore,
    ReplicaSyncer,
    SyncDeferred,
    SyncError,
    load_state,
    retry_after_seconds,
)
from ldn.addressing.searchparams import extract
from ldn.addressing.settings import AddressingSettings
from ldn.addressing.tables import mcsd_resources, replica_resources
from ldn.core.storage import Database
from tests.addressing.conftest import BASE, LRZA, MCSD, Stack, as_org
from tests.addressing.factories import endpoint, organization, service

NODE = "00000020"
W40 = {**as_org("00000040"), "Content-Type": "application/fhir+json"}
FIRST = {"If-Match": 'W/"1"'}  # changing what publication wrote (version 1)


class Hooked(httpx.AsyncBaseTransport):
    """Passes requests to the app, letting a test answer or break some of them."""

    def __init__(self, app: Any, hook: Callable[[httpx.Request, int], httpx.Response | None] | None = None) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.hook = hook
        self.calls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(str(request.url))
        if self.hook is not None:
            answer = self.hook(request, len(self.calls))
            if answer is not None:
                return answer
        return await self.inner.handle_async_request(request)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_syncer(
    stack: Stack,
    *,
    owner: str = NODE,
    hook: Callable[[httpx.Request, int], httpx.Response | None] | None = None,
    page_size: int = 1000,
    **settings: Any,
) -> tuple[ReplicaSyncer, Hooked, Sleeps]:
    transport = Hooked(stack.app, hook)
    http = httpx.AsyncClient(transport=transport, base_url=BASE, headers=as_org(owner))
    sleeps = Sleeps()
    syncer = ReplicaSyncer(
        stack.database,
        owner,
        mcsd_url=MCSD,
        lrza_url=LRZA,
        http=http,
        tokens=NoToken(),
        settings=AddressingSettings(sync_page_size=page_size, **settings),
        sleep=sleeps,
    )
    return syncer, transport, sleeps


def assert_replica_equals_directory(database: Database, owner: str = NODE) -> None:
    with database.transaction(readonly=True) as session:
        source = {
            (r.resource_type, r.id): (r.version_id, json.loads(r.content))
            for r in session.execute(select(mcsd_resources))
        }
        replica = {
            (r.resource_type, r.id): (r.version_id, json.loads(r.content))
            for r in session.execute(select(replica_resources).where(replica_resources.c.replica_owner == owner))
        }
    assert replica.keys() == source.keys()
    for key, value in source.items():
        assert replica[key] == value, key


async def test_initial_load_then_incremental_sync(stack: Stack) -> None:
    syncer, transport, _ = make_syncer(stack, page_size=7)
    report = await syncer.sync_once()
    assert report.applied == 36 and report.dropped == 0 and report.phase == "ready"
    assert_replica_equals_directory(stack.database)
    # Initial load is by search per type; the catch-up by _history from T0, oldest first.
    assert any("/Organization?_count=7" in c for c in transport.calls)
    assert any("/_history?_since=" in c and "_sort=_lastUpdated" in c for c in transport.calls)

    lookups = ReplicaLookups(stack.database, NODE)
    node40 = stack.directory.nodes["00000040"]
    assert await lookups.fhir_base("00000040") == node40["fhir"]
    assert await lookups.notification_endpoint("00000040") == f"{node40['fhir']}/Task"
    assert await lookups.token_endpoint("00000040") == f"{node40['base']}/auth/token"
    assert [e.id for e in await lookups.endpoints("00000040", "fhir-query-bgz")] == ["ep-00000040-fhir"]
    assert len(await lookups.endpoints("00000040")) == 3
    gps = await lookups.services("huisartsenzorg")
    assert [(s.organization_ura, s.organization_name) for s in gps] == [
        ("00000020", "Huisartsenpraktijk De Linde"),
        ("00000030", "Gezondheidscentrum Oost"),
    ]
    assert gps[0].endpoints[0].address == stack.directory.nodes["00000020"]["fhir"]
    referral = await lookups.services("verwijzing-ontvangen", ura="00000070")
    assert len(referral) == 1 and referral[0].endpoints[0].serves("pull-notification")
    org = await lookups.organization("00000050")
    assert org is not None and org.name == "Apotheek Centrum" and org.active
    status = await lookups.status()
    assert status.ready and status.resources == 36 and status.applied == 36

    # Changes at the source: a new address, a deactivated service, a new service.
    ep = (await stack.client.get(f"{MCSD}/Endpoint/ep-00000040-fhir", headers=W40)).json()
    ep["address"] = "https://rijnstad.example.org/fhir"
    changed = await stack.client.put(f"{MCSD}/Endpoint/ep-00000040-fhir", headers={**W40, **FIRST}, json=ep)
    assert changed.status_code == 200, changed.text
    deactivated = await stack.client.delete(
        f"{MCSD}/HealthcareService/hs-00000040-verwijzing", headers={**W40, **FIRST}
    )
    assert deactivated.status_code == 200, deactivated.text
    new = service("hs-40-lab", "org-00000040", code="laboratoriumonderzoek", endpoint_id="ep-00000040-fhir")
    assert (await stack.client.put(f"{MCSD}/HealthcareService/hs-40-lab", headers=W40, json=new)).status_code == 201
    transport.calls.clear()
    report = await syncer.sync_once()
    assert report.applied == 3 and report.skipped == 1  # `_since` is inclusive: one known version again
    assert_replica_equals_directory(stack.database)
    assert await lookups.fhir_base("00000040") == "https://rijnstad.example.org/fhir"
    assert await lookups.services("verwijzing-ontvangen", ura="00000040") == []
    assert len(await lookups.services("verwijzing-ontvangen", ura="00000040", active_only=False)) == 1
    assert [s.id for s in await lookups.services("laboratoriumonderzoek")] == ["hs-40-lab"]
    assert not any("/Organization?" in c for c in transport.calls if c.startswith(MCSD))  # no new initial load


async def test_lookups_for_unknown_or_inactive(stack: Stack) -> None:
    syncer, _, _ = make_syncer(stack)
    lookups = ReplicaLookups(stack.database, NODE)
    with pytest.raises(AddressNotFound):
        await lookups.fhir_base("00000040")  # nothing synced yet
    await syncer.sync_once()
    with pytest.raises(AddressNotFound):
        await lookups.fhir_base("12345678")
    assert await lookups.organization("12345678") is None
    deleted = await stack.client.delete(f"{MCSD}/Endpoint/ep-00000040-token", headers={**W40, **FIRST})
    assert deleted.status_code == 200, deleted.text
    await syncer.sync_once()
    with pytest.raises(AddressNotFound):
        await lookups.token_endpoint("00000040")
    assert [e.status for e in await lookups.endpoints("00000040", "oauth-token", active_only=False)] == ["off"]
    # Replicas of different nodes are separate.
    assert await ReplicaLookups(stack.database, "00000030").endpoints("00000040") == []


def _plant(session: Any, rtype: str, rid: str, content: dict[str, Any], publisher: str, base: str = MCSD) -> None:
    """Write straight into the directory's tables, as a compromised or misbehaving source would."""
    store.write_lock(session)
    current = store.get_current(session, rtype, rid)
    version = current.version_id + 1 if current else 1
    stamp = store.next_timestamp(session)
    content = {
        **content,
        "id": rid,
        "meta": {"versionId": str(version), "lastUpdated": us_to_instant(stamp), "source": source_uri(publisher)},
    }
    store.put(
        session,
        resource_type=rtype,
        resource_id=rid,
        version_id=version,
        last_updated=stamp,
        publisher_ura=publisher,
        content=content,
        index_rows=extract(rtype, content, base),
        created=current is None,
    )


async def test_spoofed_entries_are_dropped_and_logged(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    syncer, _, _ = make_syncer(stack)
    await syncer.sync_once()
    legit = (await stack.client.get(f"{MCSD}/Organization/org-00000040", headers=W40)).json()

    def plant(session: Any) -> None:
        # 00000030 re-publishes the hospital's Organization, pointing at its own endpoint.
        hijacked = {**legit, "endpoint": [{"reference": "Endpoint/evil"}]}
        hijacked.pop("meta")
        _plant(session, "Organization", "org-00000040", hijacked, "00000030")
        # An Organization for a URA the LRZa does not know.
        _plant(session, "Organization", "ghost", organization("ghost", ura="87654321", name="Ghost"), "00000030")
        # An endpoint claiming to be the hospital's (custodian URA) published by someone else.
        _plant(session, "Endpoint", "evil", endpoint("evil", custodian="00000040", address="https://evil"), "00000030")
        # A service of the hospital's by the hospital itself: fine.
        _plant(session, "HealthcareService", "hs-ok", service("hs-ok", "org-00000040", code="ggz"), "00000040")

    await stack.database.run(plant)
    with caplog.at_level(logging.WARNING, logger="ldn.addressing.replica"):
        report = await syncer.sync_once()
    assert report.dropped == 3 and report.applied == 1
    dropped_lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped_lines) == 3
    assert any("Organization/org-00000040" in line and "00000030" in line for line in dropped_lines)
    lookups = ReplicaLookups(stack.database, NODE)
    org = await lookups.organization("00000040")
    assert org is not None and org.endpoint_ids == ("ep-00000040-fhir", "ep-00000040-notification", "ep-00000040-token")
    assert all(e.address != "https://evil" for e in await lookups.endpoints("00000040"))
    assert await lookups.organization("87654321") is None
    assert [s.id for s in await lookups.services("ggz", ura="00000040")] == ["hs-ok"]
    state = await stack.database.run(load_state, NODE)
    assert state.dropped == 3


async def test_a_mandated_publisher_is_accepted_by_the_replica(stack: Stack) -> None:
    from tests.addressing.factories import mandate

    syncer, _, _ = make_syncer(stack)
    await syncer.sync_once()  # the replica's LRZa view predates the mandate below
    made = await stack.client.put(
        f"{MCSD}/OrganizationAffiliation/m", headers=W40, json=mandate("m", "org-00000040", "00000050")
    )
    assert made.status_code == 201
    by_vendor = endpoint("ep-by-50", custodian="00000040", payload="fhir-query-bgz", address="https://vendor/fhir")
    response = await stack.client.put(
        f"{MCSD}/Endpoint/ep-by-50",
        headers={**as_org("00000050"), "Content-Type": "application/fhir+json"},
        json=by_vendor,
    )
    assert response.status_code == 201
    report = await syncer.sync_once()
    assert report.dropped == 0
    found = await ReplicaLookups(stack.database, NODE).endpoints("00000040", "fhir-query-bgz")
    assert "ep-by-50" in [e.id for e in found]


async def test_child_organisations_arriving_before_their_parent(stack: Stack) -> None:
    # Ids sort the child before the parent, so the initial load meets the child first.
    await stack.client.put(
        f"{MCSD}/Organization/b-parent",
        headers={**as_org("00000060"), "Content-Type": "application/fhir+json"},
        json=organization("b-parent", name="Afdeling", part_of="org-00000060"),
    )
    await stack.client.put(
        f"{MCSD}/Organization/a-child",
        headers={**as_org("00000060"), "Content-Type": "application/fhir+json"},
        json=organization("a-child", name="Team", part_of="b-parent"),
    )
    await stack.client.put(
        f"{MCSD}/HealthcareService/hs-team",
        headers={**as_org("00000060"), "Content-Type": "application/fhir+json"},
        json=service("hs-team", "a-child", code="ggz"),
    )
    syncer, _, _ = make_syncer(stack, page_size=2)
    await syncer.sync_once()
    assert_replica_equals_directory(stack.database)
    services = await ReplicaLookups(stack.database, NODE).services("ggz")
    assert [(s.id, s.organization_ura) for s in services] == [
        ("hs-00000070-ggz", "00000070"),
        ("hs-team", "00000060"),
    ]


async def test_429_and_retry_after_are_honoured(stack: Stack) -> None:
    def throttle(request: httpx.Request, n: int) -> httpx.Response | None:
        if "/_history" in request.url.path and n <= 12 and not getattr(throttle, "done", False):
            throttle.done = True  # type: ignore[attr-defined]
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"resourceType": "OperationOutcome"})
        return None

    syncer, _transport, sleeps = make_syncer(stack, hook=throttle)
    await syncer.sync_once()
    assert 7.0 in sleeps.delays
    assert_replica_equals_directory(stack.database)

    def long_wait(request: httpx.Request, n: int) -> httpx.Response | None:
        if "/_history" in request.url.path:
            return httpx.Response(503, headers={"Retry-After": "3600"})
        return None

    before = await stack.database.run(load_state, NODE)
    deleted = await stack.client.delete(f"{MCSD}/Endpoint/ep-00000040-token", headers={**W40, **FIRST})
    assert deleted.status_code == 200, deleted.text
    deferring, _, _ = make_syncer(stack, hook=long_wait)
    with pytest.raises(SyncDeferred) as deferred:
        await deferring.sync_once()
    assert deferred.value.delay >= 3599
    after = await stack.database.run(load_state, NODE)
    assert after.watermark == before.watermark  # nothing advanced
    assert (after.last_error and "3600" in after.last_error) or "retry" in (after.last_error or "")


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert (retry_after_seconds("Fri, 31 Dec 2100 23:59:59 GMT") or 0) > 3000


async def test_transient_errors_are_retried_then_reported(stack: Stack) -> None:
    def flaky(request: httpx.Request, n: int) -> httpx.Response | None:
        if n in (2, 3):
            return httpx.Response(502)
        if n == 4:
            raise httpx.ConnectError("connection refused")
        return None

    syncer, _, sleeps = make_syncer(stack, hook=flaky)
    await syncer.sync_once()
    assert len(sleeps.delays) == 3
    assert_replica_equals_directory(stack.database)

    def broken(request: httpx.Request, n: int) -> httpx.Response | None:
        return httpx.Response(500)

    failing, _, _ = make_syncer(stack, hook=broken, sync_max_retries=2)
    with pytest.raises(SyncError):
        await failing.sync_once()

    def refused(request: httpx.Request, n: int) -> httpx.Response | None:
        return httpx.Response(403, json={"resourceType": "OperationOutcome", "issue": [{"diagnostics": "no"}]})

    forbidden, _, _ = make_syncer(stack, hook=refused)
    with pytest.raises(SyncError, match="403"):
        await forbidden.sync_once()


async def test_a_next_link_elsewhere_is_not_followed(stack: Stack) -> None:
    def redirect(request: httpx.Request, n: int) -> httpx.Response | None:
        if request.url.path.endswith("/Organization") and "_cursor" not in str(request.url):
            bundle = {
                "resourceType": "Bundle",
                "type": "searchset",
                "meta": {"lastUpdated": "2026-01-01T00:00:00.000000Z"},
                "link": [{"relation": "next", "url": "https://attacker.example/mcsd/Organization?_cursor=x"}],
                "entry": [],
            }
            return httpx.Response(200, json=bundle)
        return None

    syncer, transport, _ = make_syncer(stack, hook=redirect)
    with pytest.raises(SyncError, match="away from the directory"):
        await syncer.sync_once()
    assert not any("attacker" in c for c in transport.calls)


async def test_crash_mid_initial_load_resumes_where_it_stopped(stack: Stack) -> None:
    class Crash(Exception):
        pass

    def crash_on_seventh(request: httpx.Request, n: int) -> httpx.Response | None:
        if n == 7:
            raise Crash("process killed")
        return None

    syncer, first_transport, _ = make_syncer(stack, hook=crash_on_seventh, page_size=4)
    with pytest.raises(Crash):
        await syncer.sync_once()
    state = await stack.database.run(load_state, NODE)
    assert state.phase == "initial" and state.initial_next is not None and state.initial_t0 is not None
    loaded_before = [c for c in first_transport.calls[:-1] if c.startswith(MCSD)]  # the last one crashed

    # A change while the node is down is caught up by `_history?_since=T0` afterwards.
    deleted = await stack.client.delete(f"{MCSD}/Organization/org-00000020", headers={**as_org("00000020"), **FIRST})
    assert deleted.status_code == 200, deleted.text

    resumed, second_transport, _ = make_syncer(stack, page_size=4)
    report = await resumed.sync_once()
    assert report.phase == "ready"
    loaded_after = [c for c in second_transport.calls if c.startswith(MCSD) and "_history" not in c]
    assert loaded_after[0] == state.initial_next  # straight to the saved next page
    # Every page of the initial load was fetched exactly once over the two runs.
    assert sorted(loaded_before + loaded_after) == sorted(await _all_pages(stack, 4))
    assert_replica_equals_directory(stack.database)


async def _all_pages(stack: Stack, size: int) -> list[str]:
    urls = []
    for rtype in ("Organization", "Location", "HealthcareService", "Endpoint", "OrganizationAffiliation"):
        url: str | None = f"{MCSD}/{rtype}?_count={size}&_total=none"
        while url:
            urls.append(url)
            body = (await stack.client.get(url, headers=as_org(NODE))).json()
            url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
    return urls


async def test_crash_while_applying_a_page_rolls_that_page_back(stack: Stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    syncer, _, _ = make_syncer(stack, page_size=5)
    await syncer.sync_once()
    # Twelve changes, then a crash while the second `_history` page is being written.
    for suffix in ("fhir", "notification", "token"):
        for ura in ("00000020", "00000030", "00000040", "00000050"):
            deleted = await stack.client.delete(f"{MCSD}/Endpoint/ep-{ura}-{suffix}", headers={**as_org(ura), **FIRST})
            assert deleted.status_code == 200, deleted.text
    original = ReplicaStore._write
    calls = {"n": 0}

    def failing_write(self: ReplicaStore, session: Any, latest: Any, replaced: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            original(self, session, latest, replaced)  # half the work is done in the transaction ...
            raise RuntimeError("disk full")  # ... and then the process dies
        original(self, session, latest, replaced)

    monkeypatch.setattr(ReplicaStore, "_write", failing_write)
    with pytest.raises(RuntimeError):
        await syncer.sync_once()
    state = await stack.database.run(load_state, NODE)
    monkeypatch.setattr(ReplicaStore, "_write", original)
    lookups = ReplicaLookups(stack.database, NODE)
    offs = [
        e
        for ura in ("00000020", "00000030", "00000040", "00000050")
        for e in await lookups.endpoints(ura, active_only=False)
        if e.status == "off"
    ]
    assert len(offs) == 4  # only the first page (the boundary version plus four changes) was kept
    resumed, _, _ = make_syncer(stack, page_size=5)
    report = await resumed.sync_once()
    assert report.applied == 8
    assert_replica_equals_directory(stack.database)
    after = await stack.database.run(load_state, NODE)
    assert after.watermark is not None and state.watermark is not None and after.watermark > state.watermark


async def test_a_directory_paging_newest_first_loses_nothing_on_a_crash(stack: Stack) -> None:
    """A directory that ignores `_sort=_lastUpdated` (FHIR's default order is newest first): the
    watermark must not jump to the newest change while older pages are still to come."""
    syncer, _, _ = make_syncer(stack, page_size=5)
    await syncer.sync_once()
    before = await stack.database.run(load_state, NODE)
    for suffix in ("fhir", "notification", "token"):
        for ura in ("00000020", "00000030", "00000040", "00000050"):
            deleted = await stack.client.delete(f"{MCSD}/Endpoint/ep-{ura}-{suffix}", headers={**as_org(ura), **FIRST})
            assert deleted.status_code == 200, deleted.text

    class Crash(Exception):
        pass

    history_calls = {"n": 0}

    def newest_first(crash_on: int | None) -> Callable[[httpx.Request, int], httpx.Response | None]:
        def hook(request: httpx.Request, n: int) -> httpx.Response | None:
            if "/_history" in request.url.path:
                history_calls["n"] += 1
                if history_calls["n"] == crash_on:
                    raise Crash("process killed between pages")
                request.url = request.url.copy_set_param("_sort", "-_lastUpdated")
            return None

        return hook

    crashing, _, _ = make_syncer(stack, page_size=5, hook=newest_first(crash_on=2))
    with pytest.raises(Crash):
        await crashing.sync_once()
    mid = await stack.database.run(load_state, NODE)
    assert mid.watermark == before.watermark  # the newest page was applied, the watermark kept
    history_calls["n"] = 0
    resumed, _, _ = make_syncer(stack, page_size=5, hook=newest_first(crash_on=None))
    await resumed.sync_once()
    assert_replica_equals_directory(stack.database)
    after = await stack.database.run(load_state, NODE)
    newest = (await stack.client.get(f"{MCSD}/_history?_count=1", headers=as_org(NODE))).json()
    assert after.watermark == instant_to_us(newest["entry"][0]["response"]["lastModified"])


async def test_run_forever_keeps_the_interval_with_jitter(stack: Stack) -> None:
    syncer, _, sleeps = make_syncer(stack, sync_interval=900, sync_jitter=120, sync_initial_delay=1)
    runs = {"n": 0}
    original = syncer.sync_once

    async def counting() -> Any:
        runs["n"] += 1
        if runs["n"] == 2:
            raise SyncDeferred(42)
        if runs["n"] == 3:
            raise RuntimeError("boom")
        if runs["n"] == 5:
            raise KeyboardInterrupt
        return await original()

    syncer.sync_once = counting  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        await syncer.run_forever()
    first, after_ok, after_deferred, after_error, after_ok2 = sleeps.delays
    assert 1 <= first <= 2
    assert 900 <= after_ok <= 1020 and 900 <= after_ok2 <= 1020  # interval plus 0..jitter
    assert after_deferred == 42
    assert 0 < after_error <= 900


async def test_a_version_without_meta_is_an_error(stack: Stack) -> None:
    def broken(request: httpx.Request, n: int) -> httpx.Response | None:
        if request.url.path.endswith("/Organization"):
            bundle = {
                "resourceType": "Bundle",
                "type": "searchset",
                "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
                "link": [],
                "entry": [{"resource": {"resourceType": "Organization", "id": "x"}, "search": {"mode": "match"}}],
            }
            return httpx.Response(200, json=bundle)
        return None

    syncer, _, _ = make_syncer(stack, hook=broken)
    with pytest.raises(SyncError, match="meta"):
        await syncer.sync_once()
    # The replica stays empty rather than guessing.
    assert (await ReplicaLookups(stack.database, NODE).status()).resources == 0
