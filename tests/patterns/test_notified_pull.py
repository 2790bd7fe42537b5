"""Verwijzen (notified pull, LAS-TA-NOTIF-001, LAS-SPEC-TASK-001, LAS-TA-AUTHZ-002): workflow Task at
the sender, notification at the receiver, pull of only the listed queries within the restriction
period, status back, cancellation, idempotent receipt, and every bad input refused clearly."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from ldn.core.fhir import validate_resource
from ldn.core.logging import TraceContext
from ldn.patterns import store
from ldn.patterns.driver import NetworkDriver
from ldn.patterns.tasks import IDENTIFIER_SYSTEM, STU3_JSON, fhir_instant
from tests.auth_helpers import token_for
from tests.patterns.conftest import (
    BSN_SYSTEM,
    GP,
    GP_DOCTOR,
    HOSPITAL,
    INTERNIST,
    PHARMACIST,
    PHARMACY,
    details,
    resources,
    statuses,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

BRAM = "999990019"  # GP, hospital, pharmacy
SEM = "999990196"  # GP, hospital, pharmacy
JOOST = "999990111"  # GP, hospital
MILA = "999990147"  # GP, hospital, GGZ
PIETER = "999990172"  # GP, pharmacy
FINN = "999990056"  # GP only
DAAN = "999990032"  # GP2 and hospital: unknown at the GP


# ---- helpers ---------------------------------------------------------------------------------------


async def _refer(driver: NetworkDriver, bsn: str, **kwargs: Any) -> dict[str, Any]:
    response = await driver.refer(GP_DOCTOR, HOSPITAL, bsn, "ziekenhuiszorg", **kwargs)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


async def _inbox_item(driver: NetworkDriver, workflow_id: str) -> dict[str, Any]:
    response = await driver.inbox(INTERNIST)
    assert response.status_code == 200, response.text
    items = [
        e["resource"] for e in response.json()["entry"] if e["resource"]["focus"]["reference"] == f"Task/{workflow_id}"
    ]
    assert len(items) == 1, items
    return items[0]


def _sender_row(net: Any, referral_id: str) -> store.OutboxRow:
    with net.database.transaction(readonly=True) as session:
        row = store.get_outgoing(session, GP, referral_id)
    assert row is not None
    return row


def _listed(task: dict[str, Any]) -> list[str]:
    return [i["valueString"] for i in task["input"] if i["type"]["coding"][0]["code"].endswith("-resource")]


async def _pull_token(http: httpx.AsyncClient, net: Any, base: str, *, patient: str, org: str = HOSPITAL) -> Any:
    user = INTERNIST if org == HOSPITAL else PHARMACIST
    return await token_for(
        http, net, org=org, scope="fhir:read", audience=GP, user=user, patient=patient, authorization_base=base
    )


async def _get(http: httpx.AsyncClient, url: str, token: Any) -> httpx.Response:
    return await http.get(url, headers=token.headers("GET", url))


async def _notify(
    http: httpx.AsyncClient, net: Any, task: dict[str, Any], *, org: str = GP, method: str = "POST", query: str = ""
) -> httpx.Response:
    url = f"{net.directory.node_url(HOSPITAL)}/fhir/Task{query}"
    token = await token_for(http, net, org=org, scope="notification:write", audience=HOSPITAL, user=None)
    return await http.request(
        method,
        url,
        content=json.dumps(task).encode(),
        headers={**token.headers(method, url), "Content-Type": STU3_JSON},
    )


def _fresh(notification: dict[str, Any], **changes: Any) -> dict[str, Any]:
    task = copy.deepcopy(notification)
    task["identifier"][0]["value"] = f"urn:uuid:{uuid.uuid4()}"
    task.update(changes)
    return task


# ---- the happy path ---------------------------------------------------------------------------------


async def test_notification_accepted_with_201(driver: NetworkDriver, net: Any) -> None:
    workflow = await _refer(driver, BRAM)
    validate_resource(workflow, "Task", version="STU3")
    assert workflow["status"] == "requested" and workflow["intent"] == "order"
    row = _sender_row(net, workflow["id"])
    assert row.delivery == "delivered"
    notification = row.notification
    validate_resource(notification, "Task", version="STU3")
    assert notification["status"] == "requested" and notification["intent"] == "proposal"
    assert notification["code"]["coding"][0] == {
        "system": "http://fhir.nl/fhir/NamingSystem/TaskCode",
        "code": "pull-notification",
    }
    codes = [i["type"]["coding"][0]["code"] for i in notification["input"]]
    assert codes[:2] == ["authorization-base", "get-workflow-task"] and "search-resource" in codes
    assert notification["requester"]["agent"]["identifier"]["value"] == GP
    assert notification["owner"]["identifier"]["value"] == HOSPITAL
    item = await _inbox_item(driver, workflow["id"])
    assert item["status"] == "requested"
    assert item["for"]["identifier"]["value"] == BRAM


async def test_full_referral_round_trip(driver: NetworkDriver, net: Any) -> None:
    workflow = await _refer(driver, SEM)
    item = await _inbox_item(driver, workflow["id"])
    accepted = await driver.act(INTERNIST, item["id"], "accept")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert (await driver.referral(GP_DOCTOR, workflow["id"])).json()["status"] == "accepted"
    pulled = await driver.act(INTERNIST, item["id"], "pull")
    found = statuses(pulled)
    assert found[GP]["status"] == "ok", found
    bundle = pulled.json()
    assert resources(bundle, "Patient")[0]["identifier"][0]["value"] == SEM
    assert {r["meta"]["source"] for r in resources(bundle)} == {f"{driver.node_url(GP)}/fhir"}
    assert len(resources(bundle)) == bundle["total"] > 1
    completed = await driver.act(INTERNIST, item["id"], "complete")
    assert completed.status_code == 200 and completed.json()["status"] == "completed"
    assert (await driver.referral(GP_DOCTOR, workflow["id"])).json()["status"] == "completed"
    data = await driver.http.get(
        f"{driver.node_url(HOSPITAL)}/patterns/inbox/{item['id']}/data",
        headers={"Authorization": f"Bearer {driver.declaration(INTERNIST)}"},
    )
    assert data.status_code == 200 and data.json()["total"] == bundle["total"]


async def test_full_referral_leaves_matching_audit_events_on_both_sides(driver: NetworkDriver) -> None:
    trace = TraceContext.new()
    response = await driver.refer(GP_DOCTOR, HOSPITAL, JOOST, "ziekenhuiszorg", trace=trace)
    assert response.status_code == 201
    item = await _inbox_item(driver, response.json()["id"])
    for action in ("accept", "pull", "complete"):
        assert (await driver.act(INTERNIST, item["id"], action, trace=trace)).status_code == 200
    events = await driver.audit_events(trace.trace_id)
    assert events and {e["trace_id"] for e in events} == {trace.trace_id}
    sender = {e["type"]["key"] for e in events if e["source"]["id"] == f"node-{GP}"}
    receiver = {e["type"]["key"] for e in events if e["source"]["id"] == f"node-{HOSPITAL}"}
    assert {"notification.sent", "fhir.read.holder", "fhir.search.holder"} <= sender
    assert {"notification.received", "referral.pull"} <= receiver
    by_key = {(e["source"]["id"], e["type"]["key"]): e for e in events}
    sent, received = by_key[(f"node-{GP}", "notification.sent")], by_key[(f"node-{HOSPITAL}", "notification.received")]
    assert sent["counterpart"]["ura"] == HOSPITAL and received["counterpart"]["ura"] == GP
    assert sent["objects"][0]["bsn_hash"] == received["objects"][0]["bsn_hash"]
    pull, served = by_key[(f"node-{HOSPITAL}", "referral.pull")], by_key[(f"node-{GP}", "fhir.search.holder")]
    assert pull["objects"][0]["bsn_hash"] == served["objects"][0]["bsn_hash"]
    assert pull["users"][0]["user_id"] == served["users"][0]["user_id"] == INTERNIST
    assert all(e["outcome"] == "success" for e in events)
    assert JOOST not in str(events)


async def test_same_identifier_twice_creates_one_referral(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, MILA)
    notification = _sender_row(net, workflow["id"]).notification
    before = len((await driver.inbox(INTERNIST)).json()["entry"])
    replay = await _notify(http, net, notification)
    assert replay.status_code == 200, replay.text
    again = await _notify(http, net, notification)
    assert again.status_code == 200
    assert len((await driver.inbox(INTERNIST)).json()["entry"]) == before
    first = await _inbox_item(driver, workflow["id"])
    assert replay.json()["id"] == again.json()["id"] == first["id"]
    # A newer notification with the same identifier updates the referral (still one).
    newer = copy.deepcopy(notification)
    later = datetime.now(UTC) + timedelta(days=20)
    newer["restriction"]["period"]["end"] = fhir_instant(later)
    newer["lastModified"] = fhir_instant(datetime.now(UTC) + timedelta(seconds=1))
    updated = await _notify(http, net, newer)
    assert updated.status_code == 200 and updated.json()["id"] == first["id"]
    assert updated.json()["restriction"]["period"]["end"] == fhir_instant(later)
    assert len((await driver.inbox(INTERNIST)).json()["entry"]) == before
    # An older one arriving late changes nothing.
    stale = copy.deepcopy(notification)
    stale["lastModified"] = "2020-01-01T00:00:00.000Z"
    assert (await _notify(http, net, stale)).json()["restriction"]["period"]["end"] == fhir_instant(later)


async def test_status_updates_come_only_from_the_owner_along_the_lifecycle(
    driver: NetworkDriver, http: Any, net: Any
) -> None:
    workflow = await _refer(driver, PIETER)
    url = f"{driver.node_url(GP)}/fhir/Task/{workflow['id']}"

    async def put(task: dict[str, Any], org: str = HOSPITAL, base: str | None = None) -> httpx.Response:
        token = await token_for(
            http,
            net,
            org=org,
            scope="notification:write",
            audience=GP,
            user=None,
            authorization_base=base or workflow["id"],
        )
        return await http.put(
            url, content=json.dumps(task).encode(), headers={**token.headers("PUT", url), "Content-Type": STU3_JSON}
        )

    done = dict(workflow, status="completed")
    assert (await put(done, org=PHARMACY)).status_code == 403  # not the owner
    assert details(await put(done, base=str(uuid.uuid4()))) == "authorization-base-mismatch"
    sneaky = dict(workflow, status="accepted", owner={"identifier": {"system": "x", "value": PHARMACY}})
    assert details(await put(sneaky)) == "only-status-may-change"
    assert details(await put(dict(workflow, status="draft"))) == "invalid-transition"
    accepted = await put(dict(workflow, status="accepted"))
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert (await put(dict(workflow, status="completed"))).json()["status"] == "completed"
    assert details(await put(dict(workflow, status="accepted"))) == "referral-not-active"


# ---- restriction period and cancellation ----------------------------------------------------------------


async def test_restriction_period_over_maximum_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    too_long = await driver.refer(GP_DOCTOR, HOSPITAL, BRAM, "ziekenhuiszorg", restriction_days=31)
    assert too_long.status_code == 400 and details(too_long) == "restriction-too-long"
    workflow = await _refer(driver, BRAM, restriction_days=30)
    notification = _sender_row(net, workflow["id"]).notification
    stretched = _fresh(notification)
    stretched["restriction"]["period"]["end"] = fhir_instant(datetime.now(UTC) + timedelta(days=40))
    refused = await _notify(http, net, stretched)
    assert refused.status_code == 422 and details(refused) == "restriction-too-long"


async def test_expired_restriction_notification_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, BRAM)
    expired = _fresh(_sender_row(net, workflow["id"]).notification)
    expired["restriction"]["period"]["end"] = "2020-01-01T00:00:00Z"
    refused = await _notify(http, net, expired)
    assert refused.status_code == 422 and details(refused) == "restriction-expired"


async def test_pull_after_restriction_period_refused(driver: NetworkDriver, net: Any) -> None:
    workflow = await _refer(driver, FINN)
    item = await _inbox_item(driver, workflow["id"])
    with net.database.transaction() as session:
        store.update_outgoing(session, GP, workflow["id"], restriction_end=datetime.now(UTC) - timedelta(minutes=1))
    pulled = await driver.act(INTERNIST, item["id"], "pull")
    found = statuses(pulled)[GP]
    assert found["status"] == "refused" and "restriction-ended" in found["reasons"]
    assert not resources(pulled.json())


async def test_cancellation_stops_pull(driver: NetworkDriver) -> None:
    workflow = await _refer(driver, BRAM)
    item = await _inbox_item(driver, workflow["id"])
    cancelled = await driver.cancel(GP_DOCTOR, workflow["id"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await _inbox_item(driver, workflow["id"]))["status"] == "cancelled"
    refused = await driver.act(INTERNIST, item["id"], "pull")
    assert refused.status_code == 409 and details(refused) == "referral-cancelled"
    again = await driver.cancel(GP_DOCTOR, workflow["id"])  # idempotent
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


async def test_pull_after_cancellation_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, SEM)
    item = await _inbox_item(driver, workflow["id"])
    # The sender cancels, but the receiver is not told (its conditional update never arrived).
    with net.database.transaction() as session:
        store.update_outgoing(session, GP, workflow["id"], status="cancelled")
    token = await _pull_token(http, net, workflow["id"], patient=SEM)
    listed = _listed(workflow)[1]
    direct = await _get(http, f"{driver.node_url(GP)}/fhir/{listed}", token)
    assert direct.status_code == 403 and details(direct) == "referral-cancelled"
    # The receiver's own pull reads the workflow Task first, sees it is cancelled, and stops.
    pulled = await driver.act(INTERNIST, item["id"], "pull")
    assert statuses(pulled)[GP]["status"] == "refused"
    assert (await _inbox_item(driver, workflow["id"]))["status"] == "cancelled"


async def test_replayed_notification_after_cancellation_does_not_revive(
    driver: NetworkDriver, http: Any, net: Any
) -> None:
    workflow = await _refer(driver, JOOST)
    original = _sender_row(net, workflow["id"]).notification
    assert (await driver.cancel(GP_DOCTOR, workflow["id"])).status_code == 200
    replay = await _notify(http, net, original)
    assert replay.status_code == 200 and replay.json()["status"] == "cancelled"


# ---- the sender's enforcement point ---------------------------------------------------------------------


async def test_pull_outside_listed_queries_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, BRAM, categories=["Condition"])
    listed = _listed(workflow)
    assert any(q.startswith("Condition?") for q in listed)
    assert not any(q.startswith("MedicationRequest") for q in listed)
    token = await _pull_token(http, net, workflow["id"], patient=BRAM)
    base = f"{driver.node_url(GP)}/fhir"
    for query in listed:
        allowed = await _get(http, f"{base}/{query}", token)
        assert allowed.status_code == 200, (query, allowed.text)
    patient_id = listed[0].removeprefix("Patient/")
    outside = [
        f"MedicationRequest?patient=Patient/{patient_id}",
        f"Condition?patient=Patient/{patient_id}&_count=5",
        f"Condition?patient.identifier={BSN_SYSTEM}|{BRAM}",
        f"Patient/$bgz?patient.identifier={BSN_SYSTEM}|{BRAM}",
    ]
    for query in outside:
        refused = await _get(http, f"{base}/{query}", token)
        assert refused.status_code == 403, query
        assert details(refused) == "query-not-in-referral", query
    workflow_read = await _get(http, f"{base}/Task/{workflow['id']}", token)
    assert workflow_read.status_code == 200 and workflow_read.json()["id"] == workflow["id"]


async def test_token_bound_to_another_patient_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, BRAM, categories=["Condition"])
    token = await _pull_token(http, net, workflow["id"], patient=PIETER)
    base = f"{driver.node_url(GP)}/fhir"
    for query in _listed(workflow):
        refused = await _get(http, f"{base}/{query}", token)
        assert refused.status_code == 403 and details(refused) == "patient-mismatch", query
    read = await _get(http, f"{base}/Task/{workflow['id']}", token)
    assert read.status_code == 403 and details(read) == "patient-mismatch"


async def test_only_the_owner_may_pull(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, BRAM, categories=["Condition"])
    token = await _pull_token(http, net, workflow["id"], patient=BRAM, org=PHARMACY)
    refused = await _get(http, f"{driver.node_url(GP)}/fhir/{_listed(workflow)[1]}", token)
    assert refused.status_code == 403 and details(refused) == "not-referral-owner"


async def test_unknown_authorization_base_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, BRAM, categories=["Condition"])
    for base in (str(uuid.uuid4()), "not-a-referral"):
        token = await _pull_token(http, net, base, patient=BRAM)
        refused = await _get(http, f"{driver.node_url(GP)}/fhir/{_listed(workflow)[1]}", token)
        assert refused.status_code == 403 and details(refused) == "unknown-authorization-base"
        task = await _get(http, f"{driver.node_url(GP)}/fhir/Task/{workflow['id']}", token)
        assert task.status_code == 403 and details(task) == "authorization-base-mismatch"


# ---- bad notifications ----------------------------------------------------------------------------------


async def test_notification_task_outside_profile_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, BRAM)
    good = _sender_row(net, workflow["id"]).notification

    def variant(change: Any) -> dict[str, Any]:
        task = _fresh(good)
        change(task)
        return task

    def inputs(task: dict[str, Any], keep: Any) -> None:
        task["input"] = [i for i in task["input"] if keep(i["type"]["coding"][0]["code"])]

    cases: list[tuple[str, Any, str]] = [
        ("status", lambda t: t.update(status="accepted"), "Task.status"),
        ("intent", lambda t: t.update(intent="order"), "Task.intent"),
        ("code", lambda t: t.update(code={"coding": [{"system": "x", "code": "pull-notification"}]}), "Task.code"),
        (
            "identifier",
            lambda t: t.update(identifier=[{"system": IDENTIFIER_SYSTEM, "value": "not-a-urn"}]),
            "Task.identifier.value",
        ),
        ("group", lambda t: t.pop("groupIdentifier"), "Task.groupIdentifier.system"),
        ("owner", lambda t: t.update(owner={"display": "somebody"}), "Task.owner.identifier"),
        (
            "requester",
            lambda t: t["requester"].update(onBehalfOf={"identifier": {"system": "x", "value": "1"}}),
            "Task.requester.onBehalfOf.identifier",
        ),
        (
            "patient",
            lambda t: t.update(**{"for": {"identifier": {"system": BSN_SYSTEM, "value": "123456789"}}}),
            "Task.for.identifier.value",
        ),
        ("period", lambda t: t.update(restriction={"period": {"end": "2030-01-01"}}), "Task.restriction.period.end"),
        ("base", lambda t: inputs(t, lambda c: c != "authorization-base"), "Task.input"),
        (
            "absolute",
            lambda t: t["input"].append(
                {
                    "type": {
                        "coding": [
                            {"system": "http://fhir.nl/fhir/NamingSystem/TaskParameter", "code": "search-resource"}
                        ]
                    },
                    "valueString": "https://evil.example/Patient?x=1",
                }
            ),
            f"Task.input[{len(good['input'])}]",
        ),
        (
            "parameter",
            lambda t: t["input"].append(
                {
                    "type": {
                        "coding": [{"system": "http://fhir.nl/fhir/NamingSystem/TaskParameter", "code": "delete"}]
                    },
                    "valueString": "x",
                }
            ),
            f"Task.input[{len(good['input'])}].type",
        ),
        ("r4-requester", lambda t: t.update(requester={"reference": "Organization/x"}), None),
        ("not-a-task", lambda t: t.update(resourceType="Patient"), "resourceType"),
    ]
    for name, change, expression in cases:
        response = await _notify(http, net, variant(change))
        assert response.status_code == 400, (name, response.text)
        body = response.json()
        assert body["resourceType"] == "OperationOutcome", name
        if expression is not None:
            assert body["issue"][0]["expression"] == [expression], (name, body)
        assert BRAM not in response.text, name
    not_json = await http.post(
        f"{driver.node_url(HOSPITAL)}/fhir/Task",
        content=b"{",
        headers={
            **(await token_for(http, net, org=GP, scope="notification:write", audience=HOSPITAL)).headers(
                "POST", f"{driver.node_url(HOSPITAL)}/fhir/Task"
            ),
            "Content-Type": STU3_JSON,
        },
    )
    assert not_json.status_code == 400


async def test_notification_for_unknown_receiver_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    unknown = await driver.refer(GP_DOCTOR, "00000099", BRAM, "ziekenhuiszorg")
    assert unknown.status_code == 422 and details(unknown) == "unknown-receiver"
    not_offered = await driver.refer(GP_DOCTOR, HOSPITAL, BRAM, "ggz")
    assert not_offered.status_code == 422 and details(not_offered) == "service-not-offered"
    workflow = await _refer(driver, BRAM)
    elsewhere = _fresh(_sender_row(net, workflow["id"]).notification)
    elsewhere["owner"]["identifier"]["value"] = PHARMACY
    refused = await _notify(http, net, elsewhere)
    assert refused.status_code == 422 and details(refused) == "unknown-receiver"


async def test_notification_from_another_sender_refused(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, BRAM)
    forged = _fresh(_sender_row(net, workflow["id"]).notification)
    refused = await _notify(http, net, forged, org=PHARMACY)
    assert refused.status_code == 403 and details(refused) == "sender-mismatch"
    url = f"{driver.node_url(HOSPITAL)}/fhir/Task"
    wrong_scope = await token_for(http, net, org=GP, scope="fhir:read", audience=HOSPITAL)
    response = await http.post(url, json=forged, headers=wrong_scope.headers("POST", url))
    assert response.status_code == 403
    assert (await http.post(url, json=forged)).status_code == 401


async def test_conditional_update_needs_a_known_identifier(driver: NetworkDriver, http: Any, net: Any) -> None:
    workflow = await _refer(driver, BRAM)
    notification = _sender_row(net, workflow["id"]).notification
    unknown = _fresh(notification, status="cancelled")
    condition = quote(f"{IDENTIFIER_SYSTEM}|{unknown['identifier'][0]['value']}", safe=":|")
    missing = await _notify(http, net, unknown, method="PUT", query=f"?identifier={condition}")
    assert missing.status_code == 404 and details(missing) == "unknown-referral"
    assert (await _notify(http, net, notification, method="PUT")).status_code == 400  # no identifier
    other = quote(f"{IDENTIFIER_SYSTEM}|urn:uuid:{uuid.uuid4()}", safe=":|")
    mismatch = await _notify(http, net, notification, method="PUT", query=f"?identifier={other}")
    assert mismatch.status_code == 400


async def test_referral_bad_input(driver: NetworkDriver) -> None:
    unknown_patient = await driver.refer(GP_DOCTOR, HOSPITAL, DAAN, "ziekenhuiszorg")
    assert unknown_patient.status_code == 422 and details(unknown_patient) == "patient-unknown"
    to_self = await driver.refer(GP_DOCTOR, GP, BRAM, "huisartsenzorg")
    assert to_self.status_code == 400 and details(to_self) == "self-referral"
    bad_category = await driver.refer(GP_DOCTOR, HOSPITAL, BRAM, "ziekenhuiszorg", categories=["Horoscope"])
    assert bad_category.status_code == 400 and details(bad_category) == "unknown-data-category"
    assert (await driver.refer(GP_DOCTOR, "123", BRAM, "ziekenhuiszorg")).status_code == 400
    assert (await driver.referral(GP_DOCTOR, str(uuid.uuid4()))).status_code == 404
    assert (await driver.act(INTERNIST, str(uuid.uuid4()), "pull")).status_code == 404
    assert (await driver.act(INTERNIST, str(uuid.uuid4()), "explode")).status_code == 404


async def test_receiver_unreachable_marks_the_referral_failed(driver: NetworkDriver, net: Any) -> None:
    with driver.fault(HOSPITAL, "down"):
        response = await driver.refer(GP_DOCTOR, HOSPITAL, BRAM, "ziekenhuiszorg")
    assert response.status_code == 502 and details(response) == "notification-failed"
    sent = (
        await driver.http.get(
            f"{driver.node_url(GP)}/patterns/referrals",
            headers={"Authorization": f"Bearer {driver.declaration(GP_DOCTOR)}"},
        )
    ).json()
    assert any(e["resource"]["status"] == "failed" for e in sent["entry"])
