"""Gericht bevragen (pull, LAS-TA-PULL-001): a professional's node asks one named holder, with a token
of that holder, through the holder's PEP (consent, authorization), and both sides log it."""

from __future__ import annotations

from typing import Any

import pytest

from ldn.core.fhir import validate_resource
from ldn.core.logging import TraceContext
from ldn.patterns.driver import NetworkDriver
from ldn.patterns.raadplegen import HOLDER_STATUS_SYSTEM
from tests.auth_helpers import token_for
from tests.patterns.conftest import BSN_SYSTEM, GP, HOSPITAL, INTERNIST, details, resources, statuses

pytestmark = pytest.mark.asyncio(loop_scope="module")

BRAM = "999990019"  # GP, hospital, pharmacy
CHANTAL = "999990020"  # GP, pharmacy, GGZ: never consents here


async def test_pull_with_consent_returns_data(driver: NetworkDriver) -> None:
    await driver.permit_all(BRAM)
    response = await driver.query(INTERNIST, BRAM, holders=[GP])
    assert statuses(response)[GP]["status"] == "ok"
    bundle = response.json()
    validate_resource(bundle, "Bundle")
    conditions = resources(bundle, "Condition")
    assert conditions and bundle["total"] == len(resources(bundle))
    gp_base = f"{driver.node_url(GP)}/fhir"
    assert all(r["meta"]["source"] == gp_base for r in resources(bundle))
    assert all(e["fullUrl"].startswith(gp_base) for e in bundle["entry"] if e["search"]["mode"] == "match")
    # The patient in the answer is this patient, and nobody else's data is in it.
    patients = resources(bundle, "Patient")
    assert [p["identifier"][0]["value"] for p in patients] == [BRAM]
    provenance = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
    assert len(provenance) == 1 and provenance[0]["agent"][0]["who"]["identifier"]["value"] == GP
    assert len(provenance[0]["target"]) == bundle["total"]


async def test_pull_without_consent_refused_with_operation_outcome(driver: NetworkDriver, http: Any, net: Any) -> None:
    response = await driver.query(INTERNIST, CHANTAL, holders=[GP])
    status = statuses(response)[GP]
    assert status["status"] == "refused"
    assert status["reasons"] == ["consent-not-permit"]
    bundle = response.json()
    assert bundle["total"] == 0 and not resources(bundle)
    outcome = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "OperationOutcome")
    assert outcome["issue"][0]["details"]["coding"][0] == {"system": HOLDER_STATUS_SYSTEM, "code": "refused"}
    assert CHANTAL not in response.text.replace(f"{BSN_SYSTEM}|{CHANTAL}", "")  # only in the query echo
    # The holder itself answers the refusal as a FHIR OperationOutcome with the reason.
    url = f"{driver.node_url(GP)}/fhir/Condition?patient.identifier={BSN_SYSTEM}|{CHANTAL}"
    token = await token_for(http, net, org=HOSPITAL, scope="fhir:read", audience=GP, user=INTERNIST)
    direct = await http.get(url, headers=token.headers("GET", url))
    assert direct.status_code == 403 and details(direct) == "consent-not-permit"
    assert CHANTAL not in direct.text


async def test_pull_logged_on_both_sides_with_same_trace_id(driver: NetworkDriver) -> None:
    await driver.permit_all(BRAM)
    trace = TraceContext.new()
    response = await driver.query(INTERNIST, BRAM, holders=[GP], categories=["Condition"], trace=trace)
    assert statuses(response)[GP]["status"] == "ok"
    events = await driver.audit_events(trace.trace_id)
    by_key = {(e["source"]["id"], e["type"]["key"]): e for e in events}
    requester = by_key[(f"node-{HOSPITAL}", "fhir.search.requester")]
    holder = by_key[(f"node-{GP}", "fhir.search.holder")]
    assert requester["trace_id"] == holder["trace_id"] == trace.trace_id
    assert requester["counterpart"]["ura"] == GP and holder["counterpart"]["ura"] == HOSPITAL
    assert requester["users"][0]["user_id"] == holder["users"][0]["user_id"] == INTERNIST
    assert requester["objects"][0]["bsn_hash"] == holder["objects"][0]["bsn_hash"]
    assert holder["outcome"] == requester["outcome"] == "success"
    assert BRAM not in str(events)


async def test_refused_pull_is_logged_as_refused_on_both_sides(driver: NetworkDriver) -> None:
    trace = TraceContext.new()
    response = await driver.query(INTERNIST, CHANTAL, holders=[GP], categories=["Condition"], trace=trace)
    assert statuses(response)[GP]["status"] == "refused"
    events = {(e["source"]["id"], e["type"]["key"]): e for e in await driver.audit_events(trace.trace_id)}
    assert events[(f"node-{GP}", "fhir.search.holder")]["outcome"] == "refused"
    assert events[(f"node-{HOSPITAL}", "fhir.search.requester")]["outcome"] == "refused"


async def test_no_bsn_reaches_the_logs(driver: NetworkDriver, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    await driver.permit_all(BRAM)
    caplog.set_level(logging.DEBUG)
    assert (await driver.query(INTERNIST, BRAM)).status_code == 200
    assert (await driver.query(INTERNIST, CHANTAL, holders=[GP])).status_code == 200
    referral = await driver.refer("900000011", HOSPITAL, BRAM, "ziekenhuiszorg")
    assert referral.status_code == 201
    ours = [r for r in caplog.records if r.name.startswith("ldn")]
    assert any(r.name == "ldn.access" for r in ours)
    text = "\n".join(r.getMessage() + str(r.__dict__) for r in ours)
    assert BRAM not in text and CHANTAL not in text
