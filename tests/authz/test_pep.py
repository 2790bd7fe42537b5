"""The enforcement point with the real policies and a scripted consent service: pass or 403 with a
reason, bad input, the opt-out and its override, $bgz, the cache, and refusal whenever the decision
point or the consent service fails or is slow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ldn.authz.model import Decision
from ldn.authz.pep import (
    CONSENT_UNAVAILABLE,
    PDP_UNAVAILABLE,
    AccessDenied,
    ConsentAnswer,
    ConsentClient,
    DecisionEngine,
    primary_reason,
)
from ldn.authz.settings import AuthzSettings
from ldn.core.errors import BadRequest, error_response
from ldn.core.service import ServiceContext
from ldn.core.topology import Topology
from tests.authz.inputs import POLICY_DIR, REFERRAL
from tests.authz.pep_support import (
    BSN,
    BSN_SYSTEM,
    GP_URA,
    HOSPITAL_URA,
    OTHER_BSN,
    PHARMACIST_UZI,
    PHARMACY_URA,
    Patients,
    ScriptedConsent,
    caller,
    make_pep,
    node_context,
    request,
)

OPTOUT = ConsentAnswer("Deny", "ehds-primary-use-optout", False)
OVERRIDE = ConsentAnswer("Permit", "ehds-primary-use-optout overridden: vital interest", True)


@pytest.fixture(scope="module")
def engine() -> Iterator[DecisionEngine]:
    loaded = DecisionEngine.load(AuthzSettings(policy_dir=POLICY_DIR))
    yield loaded
    loaded.executor.shutdown(wait=False)


@pytest.fixture
def ctx(topology: Topology, tmp_path: Path) -> ServiceContext:
    return node_context(topology, tmp_path)


@pytest.fixture
def consent(ctx: ServiceContext) -> ScriptedConsent:
    return ScriptedConsent(ctx)


async def enforce(pep: Any, *, req: Any = None, who: Any = None, **kw: Any) -> Decision:
    params: dict[str, Any] = {
        "resource_type": "Condition",
        "interaction": "search-type",
        "patient_bsn": BSN,
        "patient_id": None,
        "categories": {"Condition"},
    }
    params.update(kw)
    decision: Decision = await pep.enforce(req or request(), who or caller(), **params)
    return decision


async def refused(pep: Any, **kw: Any) -> AccessDenied:
    with pytest.raises(AccessDenied) as info:
        await enforce(pep, **kw)
    return info.value


# --- pass and refuse ---------------------------------------------------------------------------------


async def test_allowed_request_passes_with_the_closed_question_asked_as_the_holder(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    pep = make_pep(ctx, engine, consent)
    req = request()
    decision = await enforce(pep, req=req)
    assert decision.allow and decision.reasons == ["allowed-by:pull"]
    assert req.state.authz_decision == decision
    assert consent.questions == [
        {
            "bsn": BSN,
            "holder_ura": GP_URA,
            "holder_facility_type": "Z3",
            "requester_ura": HOSPITAL_URA,
            "requester_facility_type": "V4",
            "professional_id": "900000031",
            "professional_role": "01.016",
            "purpose_of_use": "TREAT",
            "data_category": "GGC002",
        }
    ]


async def test_refusal_is_a_403_operation_outcome_with_the_reason(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    consent.default = ConsentAnswer("NotApplicable", "no matching choice", False)
    req = request()
    error = await refused(make_pep(ctx, engine, consent), req=req)
    assert error.status == 403 and error.details_code == "consent-not-permit"
    assert not error.decision.allow and req.state.authz_decision == error.decision
    response = error_response(None, error)
    assert response.status_code == 403
    body = response.body.decode()
    assert '"code":"forbidden"' in body and "consent-not-permit" in body
    assert BSN not in body


async def test_every_mitz_category_must_permit(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    pep = make_pep(ctx, engine, consent)
    categories = {"ObservationLaboratory", "MedicationRequest"}
    lab = "category=laboratory"
    req = request(f"/nodes/{GP_URA}/fhir/Observation", f"patient.identifier={BSN_SYSTEM}|{BSN}&{lab}")
    assert (await enforce(pep, req=req, resource_type="Observation", categories=categories)).allow
    assert sorted(q["data_category"] for q in consent.questions) == ["GGC012", "GGC013"]
    consent.answers["GGC013"] = ConsentAnswer("Deny", "choice c2 v1 deny (specificity h3r0c1)", False)
    req = request(f"/nodes/{GP_URA}/fhir/Observation", f"patient.identifier={BSN_SYSTEM}|{BSN}&{lab}")
    error = await refused(pep, req=req, resource_type="Observation", categories=categories)
    assert error.details_code == "consent-not-permit"


async def test_pharmacist_is_refused_treatment_notes(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    pharmacist = caller(PHARMACY_URA, PHARMACIST_UZI, "17.000", client_id="client-pharmacy")
    pep = make_pep(ctx, engine, consent)
    error = await refused(pep, who=pharmacist)
    assert error.details_code == "role-not-allowed-category:Condition"
    req = request(f"/nodes/{GP_URA}/fhir/MedicationRequest")
    decision = await enforce(pep, req=req, who=pharmacist, resource_type="MedicationRequest", categories=set())
    assert decision.allow


# --- bad input: each a deny with its reason -----------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "kw", "reason"),
    [
        pytest.param(caller(role=None), {}, "missing-input:subject.subject_role", id="no role in the token"),
        pytest.param(caller(client_id=""), {}, "invalid-input:subject.client_id", id="empty client id"),
        pytest.param(caller(role="99.999"), {}, "unknown-role", id="unknown role code"),
        pytest.param(caller(role="huisarts"), {}, "invalid-input:subject.subject_role.0", id="malformed role code"),
        pytest.param(caller(patient=OTHER_BSN), {}, "patient-mismatch", id="token bound to another patient"),
        pytest.param(caller(), {"patient_id": "p2"}, "patient-mismatch", id="patient id of another patient"),
        pytest.param(caller(), {"patient_id": "unknown"}, "patient-mismatch", id="patient id not known here"),
        pytest.param(
            caller(), {"resource_type": "Basic", "categories": set()}, "unknown-resource-type:Basic", id="unknown type"
        ),
        pytest.param(
            caller(), {"interaction": "create"}, "interaction-not-allowed", id="interaction the policy does not allow"
        ),
    ],
)
async def test_bad_input_is_refused_with_a_reason(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent, who: Any, kw: dict[str, Any], reason: str
) -> None:
    pep = make_pep(ctx, engine, consent, Patients({"p1": BSN, "p2": OTHER_BSN}))
    error = await refused(pep, who=who, **kw)
    assert error.details_code == reason, error.decision.reasons
    assert error.status == 403


async def test_patient_id_is_resolved_in_the_nodes_own_data(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    patients = Patients({"p1": BSN})
    pep = make_pep(ctx, engine, consent, patients)
    req = request(query="patient=Patient/p1")
    decision = await enforce(pep, req=req, patient_bsn=None, patient_id="p1")
    assert decision.allow
    assert patients.asked == ["p1"]
    assert consent.questions[0]["bsn"] == BSN  # the BSN the node's data gave


async def test_malformed_patient_id_is_refused(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    async def resolver(patient_id: str) -> str | None:
        raise BadRequest("patient reference must be Patient/<id> on this server")

    pep = make_pep(ctx, engine, consent)
    pep._resolve_patient = resolver
    error = await refused(pep, patient_id="x/../y")
    assert error.details_code == "invalid-input:context.patient_id"


async def test_without_a_bsn_consent_is_not_asked_and_access_refused(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    pep = make_pep(ctx, engine, consent, Patients({}))
    error = await refused(pep, patient_bsn=None, patient_id="p9")
    assert consent.questions == []
    assert error.decision.has_reason("consent-not-permit")


# --- EHDS opt-out and the vital-interest override ------------------------------------------------------


async def test_optout_refuses_and_override_is_allowed_and_flagged(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    pep = make_pep(ctx, engine, consent)
    consent.default = OPTOUT
    error = await refused(pep)
    assert error.details_code == "ehds-primary-optout"
    assert error.decision.policy == "vital_interest"
    consent.default = OVERRIDE
    decision = await enforce(pep, vital_interest_reason="anafylaxie, bewusteloos binnengebracht")
    assert decision.allow and decision.flags == ["vital-interest-override"]
    assert consent.questions[-1]["vital_interest_reason"] == "anafylaxie, bewusteloos binnengebracht"


async def test_override_does_not_widen_what_the_role_may_see(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    consent.default = OVERRIDE
    pharmacist = caller(PHARMACY_URA, PHARMACIST_UZI, "17.000")
    error = await refused(make_pep(ctx, engine, consent), who=pharmacist, vital_interest_reason="spoed")
    assert error.details_code == "role-not-allowed-category:Condition"


# --- $bgz and referrals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "categories", "allow", "reason"),
    [
        ("01.015", {"Patient", "Condition", "MedicationUse"}, True, "allowed-by:pull"),
        ("17.000", {"Patient", "MedicationUse", "MedicationRequest"}, True, "allowed-by:pull"),
        ("17.000", {"Patient", "Condition", "MedicationUse"}, False, "role-not-allowed-category:Condition"),
        ("01.015", {"Patient", "Imaging"}, False, "unknown-resource-type:Imaging"),
    ],
)
async def test_bgz_is_decided_as_the_search_it_equals(
    ctx: ServiceContext,
    engine: DecisionEngine,
    consent: ScriptedConsent,
    role: str,
    categories: set[str],
    allow: bool,
    reason: str,
) -> None:
    from ldn.authz.input_builder import bgz_record_types

    pep = make_pep(ctx, engine, consent)
    req = request(f"/nodes/{GP_URA}/fhir/Patient/$bgz")
    decision = await pep.decide(
        req,
        caller(role=role),
        resource_type="Patient",
        interaction="operation",
        patient_bsn=BSN,
        patient_id=None,
        categories=categories,
        record_types=bgz_record_types(categories),
    )
    assert decision.allow is allow
    assert decision.has_reason(reason), decision.reasons


async def test_referral_is_its_own_basis_no_consent_question(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    end = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    referral = {**REFERRAL, "owner_ura": HOSPITAL_URA, "restriction_end": end}
    pep = make_pep(ctx, engine, consent)
    req = request(f"/nodes/{GP_URA}/fhir/Patient/p1", "")
    decision = await enforce(
        pep, req=req, resource_type="Patient", interaction="read", resource_id="p1", referral=referral
    )
    assert decision.allow and decision.policy == "notified_pull"
    assert consent.questions == []
    req = request(f"/nodes/{GP_URA}/fhir/Condition", "patient=Patient/p1")
    error = await refused(pep, req=req, referral=referral)
    assert error.details_code == "query-not-in-referral"


# --- the decision cache ------------------------------------------------------------------------------


async def test_second_identical_request_is_answered_from_the_cache(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    pep = make_pep(ctx, engine, consent)
    who = caller(user="900000032", role="01.010")  # a request no other test makes
    first = await enforce(pep, who=who)
    hits = engine.cache.hits
    second = await enforce(pep, who=who, req=request(headers={"x-request-id": "another"}))
    assert engine.cache.hits == hits + 1
    assert first == second
    consent.default = ConsentAnswer("Deny", "choice c3 v1 deny", False)
    assert not (
        await pep.decide(
            request(),
            who,
            resource_type="Condition",
            interaction="search-type",
            patient_bsn=BSN,
            patient_id=None,
            categories={"Condition"},
        )
    ).allow


# --- failing closed ---------------------------------------------------------------------------------------


def _broken_policies(tmp_path: Path) -> Path:
    target = tmp_path / "broken-policies"
    target.mkdir()
    (target / "main.rego").write_text("package ldn.authz\n\nthis is not rego {\n", encoding="utf-8")
    return target


async def test_pdp_that_failed_to_load_refuses(ctx: ServiceContext, consent: ScriptedConsent, tmp_path: Path) -> None:
    broken = DecisionEngine.load(AuthzSettings(policy_dir=_broken_policies(tmp_path)))
    assert broken.pdp.load_error is not None
    error = await refused(make_pep(ctx, broken, consent))
    assert error.details_code == PDP_UNAVAILABLE
    assert error.decision.reasons == [PDP_UNAVAILABLE]
    missing = DecisionEngine.load(AuthzSettings(policy_dir=tmp_path / "nowhere"))
    assert (await refused(make_pep(ctx, missing, consent))).details_code == PDP_UNAVAILABLE


async def test_pdp_that_raises_refuses(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(raw: Any) -> Decision:
        raise RuntimeError("rego crashed")

    monkeypatch.setattr(engine.cache, "decide", boom)
    error = await refused(make_pep(ctx, engine, consent))
    assert error.details_code == PDP_UNAVAILABLE


async def test_pdp_slower_than_the_decision_timeout_refuses(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.cache.decide

    def slow(raw: Any) -> Decision:
        time.sleep(1.0)
        return real(raw)

    monkeypatch.setattr(engine.cache, "decide", slow)
    started = time.monotonic()
    error = await refused(make_pep(ctx, engine, consent, decision_timeout_ms=50))
    assert error.details_code == PDP_UNAVAILABLE
    assert time.monotonic() - started < 0.9  # refused at the timeout, not after the evaluation


async def test_consent_service_error_refuses(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    consent.unavailable()
    error = await refused(make_pep(ctx, engine, consent))
    assert error.details_code == CONSENT_UNAVAILABLE


async def test_slow_consent_service_refuses_at_the_total_timeout(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    consent.delay = 5.0
    started = time.monotonic()
    error = await refused(make_pep(ctx, engine, consent, enforce_timeout=0.2))
    assert error.details_code == CONSENT_UNAVAILABLE
    assert time.monotonic() - started < 2


async def test_unreachable_consent_service_refuses(ctx: ServiceContext, engine: DecisionEngine) -> None:
    # The directory of this bare context names no consent service (and no authorization server).
    real = ConsentClient(ctx, GP_URA, dpop=False)
    error = await refused(make_pep(ctx, engine, real))
    assert error.details_code == CONSENT_UNAVAILABLE


async def test_consent_answer_of_the_wrong_shape_refuses(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    consent.default = ConsentAnswer("Maybe", "?", False)
    error = await refused(make_pep(ctx, engine, consent))
    assert error.details_code == CONSENT_UNAVAILABLE


async def test_patient_lookup_failure_refuses(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    async def down(patient_id: str) -> str | None:
        raise ConnectionError("database gone")

    pep = make_pep(ctx, engine, consent)
    pep._resolve_patient = down
    error = await refused(pep, patient_id="p1")
    assert error.details_code == "patient-lookup-failed"


async def test_concurrent_requests_each_get_their_own_decision(
    ctx: ServiceContext, engine: DecisionEngine, consent: ScriptedConsent
) -> None:
    pep = make_pep(ctx, engine, consent)
    roles = ["01.015", "17.000", "01.016", "86.000"] * 5
    results = await asyncio.gather(
        *(
            pep.decide(
                request(),
                caller(role=r),
                resource_type="Condition",
                interaction="search-type",
                patient_bsn=BSN,
                patient_id=None,
                categories={"Condition"},
            )
            for r in roles
        )
    )
    assert [d.allow for d in results] == [r in {"01.015", "01.016"} for r in roles]


def test_primary_reason_names_the_most_telling_reason() -> None:
    deny = Decision.deny(["consent-not-permit", "ehds-primary-optout", "vital-interest-reason-missing"], "1.1.0")
    assert primary_reason(deny) == "ehds-primary-optout"
    assert primary_reason(Decision.deny(["zzz", "aaa"], "1.1.0")) == "aaa"
    assert primary_reason(Decision.deny([], "1.1.0")) == "access-denied"
