"""The closed question over HTTP (JSON): a decision table of the precedence rules through the whole
service (register, cache, decision core), Indeterminate for missing or invalid input, who may ask,
and the EHDS primary-use opt-out with its vital-interest override."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ldn.consent.model import ChoiceSource

from .service_helpers import (
    CITIZEN_BSN,
    GP,
    HOSPITAL,
    OPERATOR,
    PHARMACY,
    ConsentApi,
    question,
    synthetic_bsn,
)


@pytest.fixture
def api(client: httpx.AsyncClient, network: Any) -> ConsentApi:
    return ConsentApi(client, network)


NOW = datetime.now(UTC)
PAST = (NOW - timedelta(days=30)).isoformat()
RECENT = (NOW - timedelta(days=1)).isoformat()
FUTURE = (NOW + timedelta(days=30)).isoformat()


def c(
    decision: str, holder: str = f"ura:{GP}", requester: str = "any", category: str = "GGC013", **kw: Any
) -> dict[str, Any]:
    return {"holder": holder, "requester": requester, "data_category": category, "decision": decision, **kw}


@dataclass
class Case:
    name: str
    citizen: list[dict[str, Any]]
    expected: str
    q: dict[str, Any] = field(default_factory=dict)
    implied: list[dict[str, Any]] = field(default_factory=list)  # provider-recorded by the GP
    rule_contains: str = ""


CASES = [
    Case("nothing recorded: NotApplicable", [], "NotApplicable", rule_contains="no matching choice"),
    Case("a matching permit", [c("permit")], "Permit"),
    Case("a matching deny", [c("deny")], "Deny"),
    Case(
        "named holder beats holder facility type",
        [c("permit", holder=f"ura:{GP}"), c("deny", holder="type:Z3")],
        "Permit",
    ),
    Case(
        "holder facility type beats holder group",
        [c("deny", holder="type:Z3"), c("permit", holder="group:RPZAC001")],
        "Deny",
    ),
    Case(
        "named requester beats requester group",
        [c("permit", requester="group:RPZAC005"), c("deny", requester=f"ura:{PHARMACY}")],
        "Deny",
    ),
    Case(
        "requester facility type beats any",
        [c("deny", requester="any"), c("permit", requester="type:J8")],
        "Permit",
    ),
    Case(
        "holder specificity outranks requester specificity",
        [c("permit", holder=f"ura:{GP}", requester="any"), c("deny", holder="type:Z3", requester=f"ura:{PHARMACY}")],
        "Permit",
    ),
    Case(
        "exact data category beats its parent",
        [c("permit", category="GGC002"), c("deny", category="GGC013")],
        "Deny",
    ),
    Case(
        "a sibling category is not affected",
        [c("permit", category="GGC002"), c("deny", category="GGC013")],
        "Permit",
        q={"data_category": "GGC012"},
    ),
    Case(
        "a permit for the parent is narrowed by a refused sub-category",
        [c("permit", category="GGC002"), c("deny", category="GGC012")],
        "Deny",
        q={"data_category": "GGC002"},
        rule_contains="sub-category GGC012",
    ),
    Case(
        "equal specificity: the refusal wins over an implied consent",
        [c("deny")],
        "Deny",
        implied=[c("permit", implied=True)],
        rule_contains="deny wins on equal specificity",
    ),
    Case("implied consent alone permits", [], "Permit", implied=[c("permit", implied=True)]),
    Case("validity ended: NotApplicable", [c("permit", valid_from=PAST, valid_until=RECENT)], "NotApplicable"),
    Case("validity not yet started: NotApplicable", [c("permit", valid_from=FUTURE)], "NotApplicable"),
    Case("a choice about another holder does not match", [c("deny", holder=f"ura:{HOSPITAL}")], "NotApplicable"),
    Case("purpose outside consent: NotApplicable", [c("permit")], "NotApplicable", q={"purpose_of_use": "HRESCH"}),
    Case("an NVI category is mapped to its Mitz category", [c("deny")], "Deny", q={"data_category": "MedicationUse"}),
]


async def test_decision_table(api: ConsentApi) -> None:
    """Each case on its own patient, all asked over HTTP through one running service."""
    failures = []
    for index, case in enumerate(CASES):
        bsn = synthetic_bsn(index)
        if case.citizen:
            await api.record(bsn, *case.citizen)
        if case.implied:
            await api.record(bsn, *case.implied, source=ChoiceSource.PROVIDER_RECORDED, recorded_by=GP)
        answer = await api.decision(question(bsn, **case.q))
        if answer["decision"] != case.expected or case.rule_contains not in answer["rule"]:
            failures.append(f"{case.name}: got {answer['decision']} ({answer['rule']})")
    assert not failures, "\n".join(failures)


async def test_answer_names_the_deciding_choice(api: ConsentApi) -> None:
    [record] = await api.record(CITIZEN_BSN, c("permit", requester="type:J8"))
    answer = await api.decision(question())
    assert answer["decision"] == "Permit" and answer["permitted"] is True
    assert answer["matched"] == [{"id": record.choice.id, "version": 1, "decision": "permit"}]
    assert answer["specificity"] == "h3r2c1"
    assert record.choice.id in answer["rule"]


async def test_a_change_takes_effect_at_once(api: ConsentApi) -> None:
    """The per-citizen cache is invalidated by every change: no stale Permit after a revocation."""
    headers = await api.citizen()
    response = await api.client.post(f"{api.base}/citizen/choices", headers=headers, json={"choices": [c("permit")]})
    assert response.status_code == 201
    choice_id = response.json()["choices"][0]["id"]
    assert (await api.decision(question()))["decision"] == "Permit"
    assert (await api.decision(question()))["decision"] == "Permit"  # now from the cache
    changed = await api.client.put(f"{api.base}/citizen/choices/{choice_id}", headers=headers, json=c("deny"))
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert (await api.decision(question()))["decision"] == "Deny"
    revoked = await api.client.delete(f"{api.base}/citizen/choices/{choice_id}", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["status"] == "withdrawn"
    assert (await api.decision(question()))["decision"] == "NotApplicable"


REQUIRED = [
    "bsn",
    "holder_ura",
    "holder_facility_type",
    "data_category",
    "requester_ura",
    "requester_facility_type",
    "professional_id",
    "professional_role",
    "purpose_of_use",
]


async def test_missing_input_is_indeterminate_never_permit(api: ConsentApi) -> None:
    await api.record(CITIZEN_BSN, c("permit", holder="any", category="GGC002"))
    assert (await api.decision(question()))["decision"] == "Permit"
    for name in REQUIRED:
        body = question()
        body.pop(name)  # without holder_ura there is no holder to check the caller against: still answered
        answer = await api.decision(body)
        assert answer["decision"] == "Indeterminate", name
        assert answer["permitted"] is False
        assert answer["missing"] == [name]
        assert name in answer["rule"]
    empty = await api.decision({})
    assert empty["decision"] == "Indeterminate" and set(empty["missing"]) == set(REQUIRED)


INVALID = [
    ("bsn", "999990018"),  # fails the 11-check
    ("bsn", "12345"),
    ("requester_ura", "0000005"),
    ("requester_ura", "0000005X"),
    ("holder_ura", "１２３４５６７８"),  # non-ASCII digits
    ("data_category", "GGC999"),
    ("holder_facility_type", "ZZ"),
    ("professional_id", "12"),
    ("professional_role", "1.015"),
    ("purpose_of_use", "treat me"),
]


async def test_invalid_input_is_indeterminate_and_named(api: ConsentApi) -> None:
    await api.record(CITIZEN_BSN, c("permit", holder="any", category="GGC002"))
    for name, value in INVALID:
        answer = await api.decision(question(**{name: value}))
        assert answer["decision"] == "Indeterminate", (name, value)
        assert answer["invalid"] == [name]
        assert value not in answer["rule"]  # names the input, never echoes its value


async def test_malformed_requests_are_400(api: ConsentApi) -> None:
    headers = await api.provider()
    url = f"{api.base}/closed-question"
    bad_json = await api.client.post(url, content=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["issue"][0]["code"] == "structure"
    wrong_type = await api.client.post(url, json={**question(), "bsn": 999990019}, headers=headers)
    assert wrong_type.status_code == 400
    assert "999990019" not in wrong_type.text
    unknown = await api.client.post(url, json={**question(), "bsnn": "x"}, headers=headers)
    assert unknown.status_code == 400 and "bsnn" in unknown.text
    not_object = await api.client.post(url, json=[question()], headers=headers)
    assert not_object.status_code == 400
    form = await api.client.post(url, data={"bsn": "999990019"}, headers=headers)
    assert form.status_code == 415


async def test_oversized_request_is_413(api: ConsentApi, settings: Any) -> None:
    headers = await api.provider()
    huge = b'{"bsn": "' + b"9" * (settings.max_body_bytes + 10) + b'"}'
    response = await api.client.post(
        f"{api.base}/closed-question", content=huge, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_only_the_holder_asks(api: ConsentApi) -> None:
    response = await api.ask(question(holder_ura=HOSPITAL, holder_facility_type="V4"), org=GP)
    assert response.status_code == 403
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "not-the-holder"
    # The operator (consent:admin) may ask for any holder, e.g. for support.
    headers = await api.provider(OPERATOR, scope="consent:admin consent:read", user=None)
    allowed = await api.client.post(
        f"{api.base}/closed-question", json=question(holder_ura=HOSPITAL, holder_facility_type="V4"), headers=headers
    )
    assert allowed.status_code == 200


async def test_unauthenticated_and_wrong_scope(api: ConsentApi) -> None:
    url = f"{api.base}/closed-question"
    none = await api.client.post(url, json=question())
    assert none.status_code == 401 and none.json()["error"] == "invalid_token"
    bogus = await api.client.post(url, json=question(), headers={"Authorization": "Bearer not-a-token"})
    assert bogus.status_code == 401
    subscribe_only = await api.client.post(url, json=question(), headers=await api.provider(scope="consent:subscribe"))
    assert subscribe_only.status_code == 403 and subscribe_only.json()["error"] == "insufficient_scope"
    citizen = await api.client.post(url, json=question(), headers=await api.citizen())
    assert citizen.status_code == 403


async def test_primary_use_objection_and_vital_interest_override(api: ConsentApi) -> None:
    await api.record(CITIZEN_BSN, c("permit", holder="any", category="GGC002"))
    assert (await api.decision(question()))["decision"] == "Permit"
    citizen = await api.citizen()
    objected = await api.client.post(f"{api.base}/citizen/opt-out/primary", headers=citizen)
    assert objected.status_code == 200 and objected.json()["objected"] is True

    refused = await api.decision(question())
    assert refused["decision"] == "Deny" and "ehds-primary-use-optout" in refused["rule"]

    blank = await api.ask(question(vital_interest_reason="   "))
    assert blank.status_code == 400 and "reason" in blank.text

    reason = "Bewusteloos binnengebracht op de SEH; medicatie nodig voor behandeling"
    overridden = await api.decision(question(vital_interest_reason=reason))
    assert overridden["decision"] == "Permit" and overridden["override"] is True

    # Logged, and shown to the citizen afterwards.
    shown = await api.client.get(f"{api.base}/citizen/overrides", headers=citizen)
    assert shown.status_code == 200
    [entry] = shown.json()["overrides"]
    assert entry["reason"] == reason and entry["holder_ura"] == GP and entry["requester_ura"] == PHARMACY
    assert entry["via"] == "closed-question"

    # Withdrawing the objection restores the choices.
    await api.client.delete(f"{api.base}/citizen/opt-out/primary", headers=citizen)
    assert (await api.decision(question()))["decision"] == "Permit"


async def test_override_without_objection_is_not_logged(api: ConsentApi) -> None:
    await api.record(CITIZEN_BSN, c("permit"))
    answer = await api.decision(question(vital_interest_reason="spoed"))
    assert answer["decision"] == "Permit" and answer["override"] is False
    assert await api.register.overrides(CITIZEN_BSN) == []


async def test_secondary_use_objection_does_not_affect_care(api: ConsentApi) -> None:
    await api.record(CITIZEN_BSN, c("permit"))
    citizen = await api.citizen()
    await api.client.post(f"{api.base}/citizen/opt-out/secondary", headers=citizen)
    assert (await api.decision(question()))["decision"] == "Permit"


async def test_decisions_and_changes_are_audited(api: ConsentApi, database: Any) -> None:
    headers = await api.citizen()
    await api.client.post(f"{api.base}/citizen/choices", headers=headers, json={"choices": [c("permit")]})
    await api.decision(question())
    await api.client.post(f"{api.base}/citizen/opt-out/primary", headers=headers)
    await api.decision(question(vital_interest_reason="reanimatie"))
    audit = api.network.apps["consent"].state.ctx.extras["ldn.audit.logger"]
    await audit.flush()
    with database.transaction(readonly=True) as session:
        rows = session.execute(
            text(
                "SELECT event_code, outcome, patient_hash, detail FROM audit_record "
                "WHERE source = 'consent' ORDER BY seq"
            )
        ).all()
    codes = [r[0] for r in rows]
    assert codes == ["040200", "040100", "040300", "040400", "040100"]
    assert all(r[2] for r in rows)  # every one names the patient (by keyed hash)
    assert all(CITIZEN_BSN not in r[3] for r in rows)


async def test_a_patient_bound_token_asks_only_about_that_patient(api: ConsentApi) -> None:
    from tests.auth_helpers import token_for

    token = await token_for(
        api.client, api.network, org=GP, scope="consent:read", user="900000011", patient=CITIZEN_BSN
    )
    headers = {"Authorization": f"Bearer {token.value}"}
    url = f"{api.base}/closed-question"
    same = await api.client.post(url, json=question(), headers=headers)
    assert same.status_code == 200
    other = await api.client.post(url, json=question(synthetic_bsn(1)), headers=headers)
    assert other.status_code == 403 and "patient-mismatch" in other.text
