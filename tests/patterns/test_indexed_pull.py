"""Ongericht bevragen (indexed pull, LAS-TA-PULL-002): localize at the NVI, ask every holder at once,
merge; holders that refuse, fail or are slow are reported and do not block the others."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ldn.core.fhir import validate_resource
from ldn.core.logging import TraceContext
from ldn.node import fhir_store
from ldn.patterns.driver import NetworkDriver
from ldn.patterns.identity import authenticator_for
from ldn.patterns.raadplegen import QueryRequest, QueryService, holder_statuses
from ldn.patterns.settings import PatternsSettings
from tests.patterns.conftest import (
    GP,
    GP2,
    GP2_DOCTOR,
    HOSPITAL,
    INTERNIST,
    NURSING,
    PHARMACIST,
    PHARMACY,
    details,
    node_ctx,
    resources,
    statuses,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANNA = "999990007"  # GP, hospital, pharmacy, nursing home: four holders for a GP of another practice
EVA = "999990044"  # GP2, hospital, pharmacy, nursing home: refuses the nursing home
NOAH = "999990159"  # GP2, hospital, pharmacy, nursing home: objects to primary use
WOUT = "999990238"  # GP, hospital, pharmacy, nursing home: asked about by the pharmacist
HASAN = "999990081"  # GP2, hospital, pharmacy: for the fault tests
ANNA_HOLDERS = {GP, HOSPITAL, PHARMACY, NURSING}


def _holdings(net: Any, ura: str, bsn: str) -> set[str]:
    with net.database.transaction(readonly=True) as session:
        return fhir_store.stored_holdings(session, ura)[bsn]


async def test_results_from_all_holders_are_merged(driver: NetworkDriver, net: Any) -> None:
    await driver.permit_all(ANNA)
    response = await driver.query(GP2_DOCTOR, ANNA)
    found = statuses(response)
    assert set(found) == ANNA_HOLDERS
    assert {s["status"] for s in found.values()} == {"ok"}
    bundle = response.json()
    validate_resource(bundle, "Bundle")
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert bundle["total"] == len(matches) > 0
    assert len({e["fullUrl"] for e in matches}) == len(matches)  # de-duplicated
    by_source: dict[str, int] = {}
    for entry in matches:
        by_source[entry["resource"]["meta"]["source"]] = by_source.get(entry["resource"]["meta"]["source"], 0) + 1
    assert set(by_source) == {f"{driver.node_url(u)}/fhir" for u in ANNA_HOLDERS}
    provenance = {
        e["resource"]["agent"][0]["who"]["identifier"]["value"]: e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Provenance"
    }
    assert set(provenance) == ANNA_HOLDERS
    for ura, prov in provenance.items():
        assert len(prov["target"]) == by_source[f"{driver.node_url(ura)}/fhir"]
    # Each holder returned what it holds: every category it registered at the NVI.
    categories = {"Patient": "Patient", "Condition": "Condition", "MedicationStatement": "MedicationUse"}
    for ura in ANNA_HOLDERS:
        base = f"{driver.node_url(ura)}/fhir"
        types = {e["resource"]["resourceType"] for e in matches if e["resource"]["meta"]["source"] == base}
        expected = {t for t, c in categories.items() if c in _holdings(net, ura, ANNA)}
        assert expected <= types
    assert {p["identifier"][0]["value"] for p in resources(bundle, "Patient")} == {ANNA}


async def test_categories_narrow_the_query(driver: NetworkDriver) -> None:
    await driver.permit_all(ANNA)
    response = await driver.query(GP2_DOCTOR, ANNA, categories=["MedicationUse"])
    found = statuses(response)
    assert set(found) == {PHARMACY} or PHARMACY in found  # only holders of medication use are asked
    assert {r["resourceType"] for r in resources(response.json())} == {"MedicationStatement"}


async def test_holder_down_does_not_block_others(driver: NetworkDriver) -> None:
    await driver.permit_all(ANNA)
    with driver.fault(PHARMACY, "down"):
        response = await driver.query(GP2_DOCTOR, ANNA)
    found = statuses(response)
    assert found[PHARMACY]["status"] == "unreachable"
    assert {found[u]["status"] for u in ANNA_HOLDERS - {PHARMACY}} == {"ok"}
    sources = {r["meta"]["source"] for r in resources(response.json())}
    assert f"{driver.node_url(PHARMACY)}/fhir" not in sources and len(sources) == 3


async def test_holder_timeout_follows_release(driver: NetworkDriver, net: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ldn.afspraken import governed

    original = governed.governed

    def release(name: str, **kwargs: Any) -> Any:
        return 1.5 if name == "holder_timeout" else original(name, **kwargs)

    monkeypatch.setattr(governed, "governed", release)
    settings = PatternsSettings()
    assert settings.holder_timeout == 1.5  # the default is the release's value, not a constant
    monkeypatch.undo()
    assert PatternsSettings().holder_timeout == governed.holder_timeout() == 10.0
    ctx = node_ctx(net, GP2)
    service = QueryService(ctx, GP2, settings)
    professional = await authenticator_for(ctx, GP2).verify(driver.declaration(GP2_DOCTOR))
    await driver.permit_all(HASAN)
    await service.run(professional, QueryRequest(patient=HASAN))  # tokens and decisions warm
    started = time.perf_counter()
    with driver.fault(PHARMACY, "hang"):
        bundle = await service.run(professional, QueryRequest(patient=HASAN, budget_ms=8000))
    elapsed = time.perf_counter() - started
    found = holder_statuses(bundle)
    assert found[PHARMACY]["status"] == "timeout"
    assert found[HOSPITAL]["status"] == "ok"
    assert 1.4 < elapsed < 6.0  # the holder's timeout, not the budget


async def test_the_time_budget_bounds_the_whole_query(driver: NetworkDriver) -> None:
    await driver.permit_all(HASAN)
    assert statuses(await driver.query(GP2_DOCTOR, HASAN))[PHARMACY]["status"] == "ok"  # warm
    started = time.perf_counter()
    with driver.fault(HOSPITAL, "hang"):
        response = await driver.query(GP2_DOCTOR, HASAN, budget_ms=1500)
    elapsed = time.perf_counter() - started
    found = statuses(response)
    assert found[HOSPITAL]["status"] == "timeout"
    assert found[PHARMACY]["status"] == "ok"
    assert 1.4 < elapsed < 5.0


async def test_garbage_from_a_holder_is_an_invalid_response(driver: NetworkDriver) -> None:
    await driver.permit_all(HASAN)
    with driver.fault(PHARMACY, "garbage"):
        response = await driver.query(GP2_DOCTOR, HASAN)
    found = statuses(response)
    assert found[PHARMACY]["status"] == "invalid-response"
    assert found[HOSPITAL]["status"] == "ok"
    assert not any(r["meta"]["source"].startswith(driver.node_url(PHARMACY)) for r in resources(response.json()))


async def test_pharmacist_is_refused_a_category_it_may_not_see(driver: NetworkDriver) -> None:
    await driver.permit_all(WOUT)
    response = await driver.query(PHARMACIST, WOUT, categories=["Condition", "MedicationRequest", "MedicationUse"])
    found = statuses(response)
    refused = {u for u, s in found.items() if "role-not-allowed-category:Condition" in s["reasons"]}
    assert refused, found
    for ura in refused:
        assert found[ura]["status"] in ("partial", "refused")
    types = {r["resourceType"] for r in resources(response.json())}
    assert "Condition" not in types and types & {"MedicationRequest", "MedicationStatement"}


async def test_consent_refused_for_one_holder_is_not_shared_from_it(driver: NetworkDriver) -> None:
    await driver.permit_all(EVA)
    await driver.refuse_holder(EVA, NURSING)
    response = await driver.query(INTERNIST, EVA)
    found = statuses(response)
    assert found[NURSING]["status"] == "refused" and found[NURSING]["reasons"] == ["consent-not-permit"]
    assert {found[u]["status"] for u in found if u != NURSING} == {"ok"}
    assert not any(r["meta"]["source"].startswith(driver.node_url(NURSING)) for r in resources(response.json()))


async def test_primary_use_objection_blocks_all_but_the_logged_vital_interest(driver: NetworkDriver) -> None:
    await driver.permit_all(NOAH)
    await driver.opt_out(NOAH, "primary")
    refused = statuses(await driver.query(INTERNIST, NOAH))
    assert refused and {s["status"] for s in refused.values()} == {"refused"}
    assert all(s["reasons"] == ["ehds-primary-optout"] for s in refused.values())
    trace = TraceContext.new()
    reason = "bewusteloos binnengebracht op de SEH"
    overridden = await driver.query(INTERNIST, NOAH, vital_interest_reason=reason, trace=trace)
    assert {s["status"] for s in statuses(overridden).values()} == {"ok"}
    assert resources(overridden.json())
    overrides = await driver.overrides(NOAH)
    assert overrides and any(reason in str(o) for o in overrides)
    keys = {(e["source"]["id"], e["type"]["key"]) for e in await driver.audit_events(trace.trace_id)}
    assert (f"node-{HOSPITAL}", "consent.vital-interest") in keys
    assert (f"node-{HOSPITAL}", "fhir.search.requester") in keys


async def test_own_organisation_is_not_asked_unless_requested(driver: NetworkDriver) -> None:
    await driver.permit_all(ANNA)
    found = statuses(await driver.query(INTERNIST, ANNA, categories=["Condition"]))
    assert HOSPITAL not in found


async def test_localization_failure_is_a_502(driver: NetworkDriver, monkeypatch: pytest.MonkeyPatch, net: Any) -> None:
    monkeypatch.setitem(net.directory.services, "nvi", "http://127.0.0.1:9/nvi")
    response = await driver.query(INTERNIST, ANNA)
    assert response.status_code == 502 and details(response) == "localization-failed"
    assert ANNA not in response.text


async def test_bad_requests_are_refused(driver: NetworkDriver, http: Any) -> None:
    url = f"{driver.node_url(HOSPITAL)}/patterns/query"
    good = {"Authorization": f"Bearer {driver.declaration(INTERNIST)}"}
    cases = [
        ({"as": INTERNIST, "patient": "123456789"}, good, 400, "invalid-patient"),
        ({"as": INTERNIST, "patient": ANNA, "categories": ["Horoscope"]}, good, 400, "invalid-query"),
        ({"as": INTERNIST, "patient": ANNA, "holders": ["12"]}, good, 400, "invalid-query"),
        ({"as": INTERNIST, "patient": ANNA, "budget_ms": 10**6}, good, 400, "budget-too-large"),
        ({"as": INTERNIST, "patient": ANNA, "colour": "blue"}, good, 400, None),
        ({"as": INTERNIST, "patient": ANNA}, {}, 401, "professional-not-authenticated"),
        ({"as": INTERNIST, "patient": ANNA}, {"Authorization": "Bearer not.a.jwt"}, 401, None),
        ({"as": "900000032", "patient": ANNA}, good, 403, "as-mismatch"),
    ]
    for body, headers, status, code in cases:
        response = await http.post(url, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
        if code is not None:
            assert details(response) == code, body
        assert ANNA not in response.text
    # A professional of another organisation cannot use this node.
    other = await http.post(
        url,
        json={"as": PHARMACIST, "patient": ANNA},
        headers={"Authorization": f"Bearer {driver.declaration(PHARMACIST)}"},
    )
    assert other.status_code == 403 and details(other) == "not-this-organisation"
    malformed = await http.post(url, content=b"{", headers={**good, "Content-Type": "application/json"})
    assert malformed.status_code == 400
    oversized = await http.post(
        url,
        content=b" " * (driver.network.settings.max_body_bytes + 1),
        headers={**good, "Content-Type": "application/json"},
    )
    assert oversized.status_code == 413


async def test_concurrent_queries_all_answer(driver: NetworkDriver) -> None:
    await driver.permit_all(ANNA)
    answers = await asyncio.gather(*(driver.query(GP2_DOCTOR, ANNA, categories=["Condition"]) for _ in range(8)))
    for answer in answers:
        assert {s["status"] for s in statuses(answer).values()} == {"ok"}
