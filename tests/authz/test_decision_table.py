"""Decision tables for every policy through the PDP, plus the cache, explain and fail-closed paths.

These run the production path (compiled bundle, set_input, no Rego `with`), so they also check
the Rego unit tests' answers against an evaluation that does not depend on `with`.
"""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from regopy import Interpreter

from ldn.authz.model import AuthzInput, Decision
from ldn.authz.pdp import DecisionCache, PolicyDecisionPoint, PolicyLoadError, cache_key
from tests.authz.inputs import (
    BSN,
    CARDIOLOGIST,
    CARER,
    GP,
    HOLDER_URA,
    OTHER_BSN,
    OTHER_URA,
    PHARMACIST,
    POLICY_DIR,
    REQUESTER_URA,
    mcsd,
    merge,
    notified,
    nvi_register,
    nvi_search,
    pull,
)

LAB = {"patient": ["Patient/p1"], "category": ["laboratory"]}

# (case id, input, allow, a reason the decision must carry, the policy that decided)
CASES: list[tuple[str, dict[str, Any], bool, str, str | None]] = [
    # pull
    ("gp reads Condition", pull(GP, "Condition"), True, "allowed-by:pull", "pull"),
    ("cardiologist reads Procedure", pull(CARDIOLOGIST, "Procedure"), True, "allowed-by:pull", "pull"),
    ("pharmacist reads Condition", pull(PHARMACIST, "Condition"), False, "role-not-allowed-category:Condition", "pull"),
    ("pharmacist reads MedicationRequest", pull(PHARMACIST, "MedicationRequest"), True, "allowed-by:pull", "pull"),
    ("pharmacist reads MedicationStatement", pull(PHARMACIST, "MedicationStatement"), True, "allowed-by:pull", "pull"),
    (
        "pharmacist reads lab values",
        pull(PHARMACIST, "Observation", action={"fhir_rest": {"search_params": LAB}}),
        True,
        "allowed-by:pull",
        "pull",
    ),
    (
        "pharmacist reads all observations",
        pull(PHARMACIST, "Observation"),
        False,
        "role-not-allowed-category:ObservationVitalSigns",
        "pull",
    ),
    ("non-BIG carer reads Condition", pull(CARER, "Condition"), False, "role-not-allowed-category", "pull"),
    ("non-BIG carer reads allergies", pull(CARER, "AllergyIntolerance"), True, "allowed-by:pull", "pull"),
    ("unknown role", pull("99.999", "Condition"), False, "unknown-role", "pull"),
    (
        "patient mismatch",
        pull(GP, "Condition", context={"patient_bsn_from_token": OTHER_BSN}),
        False,
        "patient-mismatch",
        "pull",
    ),
    ("consent Deny", pull(GP, "Condition", context={"mitz_consent": "Deny"}), False, "consent-not-permit", "pull"),
    (
        "consent Indeterminate",
        pull(GP, "Condition", context={"mitz_consent": "Indeterminate"}),
        False,
        "consent-not-permit",
        "pull",
    ),
    (
        "consent missing",
        pull(GP, "Condition", context={"mitz_consent": None}),
        False,
        "missing-input:context.mitz_consent",
        "pull",
    ),
    (
        "purpose not TREAT",
        pull(GP, "Condition", context={"purpose_of_use": "HRESCH"}),
        False,
        "purpose-not-allowed",
        "pull",
    ),
    (
        "no patient",
        pull(GP, "Condition", context={"patient_bsn": None, "patient_id": None}),
        False,
        "patient-missing",
        "pull",
    ),
    (
        "write interaction",
        pull(GP, "Condition", action={"request": {"method": "POST"}, "fhir_rest": {"interaction_type": "create"}}),
        False,
        "interaction-not-allowed",
        "pull",
    ),
    ("unknown resource type", pull(GP, "Basic"), False, "unknown-resource-type", "pull"),
    (
        "include of another category",
        pull(PHARMACIST, "MedicationRequest", action={"fhir_rest": {"revinclude": ["Condition:evidence-detail"]}}),
        False,
        "role-not-allowed-category:Condition",
        "pull",
    ),
    # notified pull
    ("notified pull of a listed query", notified(), True, "allowed-by:notified_pull", "notified_pull"),
    ("notified pull of a listed read", notified("/Patient/p1", {}), True, "allowed-by:notified_pull", "notified_pull"),
    (
        "notified pull outside listed queries",
        notified("/Condition", {"patient": ["Patient/p1"]}),
        False,
        "query-not-in-referral",
        "notified_pull",
    ),
    (
        "notified pull with an extra parameter",
        notified(params={"patient": ["Patient/p1"], "category": ["laboratory"], "code": ["x"]}),
        False,
        "query-not-in-referral",
        "notified_pull",
    ),
    (
        "notified pull after restriction end",
        notified(context={"now": "2026-03-08T00:00:00+01:00"}),
        False,
        "restriction-ended",
        "notified_pull",
    ),
    (
        "notified pull by a non-owner",
        notified(subject={"subject_organization_id": OTHER_URA}),
        False,
        "not-referral-owner",
        "notified_pull",
    ),
    (
        "notified pull of a cancelled referral",
        notified(context={"referral": {"status": "cancelled"}}),
        False,
        "referral-cancelled",
        "notified_pull",
    ),
    # localization (NVI)
    ("NVI search by a GP", nvi_search(GP), True, "allowed-by:localization", "localization"),
    ("NVI search by a pharmacist", nvi_search(PHARMACIST), True, "allowed-by:localization", "localization"),
    ("NVI search by a carer", nvi_search(CARER), False, "role-not-allowed-localization", "localization"),
    (
        "NVI search after a Mitz Deny",
        nvi_search(GP, context={"mitz_consent": "Deny"}),
        False,
        "consent-not-permit",
        "localization",
    ),
    ("NVI registration by the custodian", nvi_register(), True, "allowed-by:localization", "localization"),
    (
        "NVI registration for another custodian",
        nvi_register(custodians=[OTHER_URA]),
        False,
        "not-custodian",
        "localization",
    ),
    # mCSD
    ("mCSD query", mcsd(), True, "allowed-by:mcsd", "mcsd"),
    ("mCSD update of own organisation", mcsd("update", target=REQUESTER_URA), True, "allowed-by:mcsd", "mcsd"),
    (
        "mCSD update for a mandating organisation",
        mcsd("update", target=HOLDER_URA, mandated=[HOLDER_URA]),
        True,
        "allowed-by:mcsd",
        "mcsd",
    ),
    (
        "mCSD update for a non-mandated organisation",
        mcsd("update", target=OTHER_URA, mandated=[HOLDER_URA]),
        False,
        "not-mandated",
        "mcsd",
    ),
    ("mCSD delete", mcsd("delete", target=REQUESTER_URA), False, "delete-not-allowed", "mcsd"),
    # EHDS opt-out and the vital-interest override
    (
        "opt-out without a reason",
        pull(GP, "Condition", context={"ehds_primary_optout": True}),
        False,
        "ehds-primary-optout",
        "vital_interest",
    ),
    (
        "opt-out with a blank reason",
        pull(GP, "Condition", context={"ehds_primary_optout": True, "vital_interest": {"reason": " "}}),
        False,
        "vital-interest-reason-missing",
        "vital_interest",
    ),
    (
        "opt-out with a reason",
        pull(GP, "Condition", context={"ehds_primary_optout": True, "vital_interest": {"reason": "anaphylaxis"}}),
        True,
        "allowed-by:vital_interest",
        "vital_interest",
    ),
    (
        "override does not widen a role",
        pull(
            PHARMACIST, "Condition", context={"ehds_primary_optout": True, "vital_interest": {"reason": "anaphylaxis"}}
        ),
        False,
        "role-not-allowed-category:Condition",
        "vital_interest",
    ),
    # everything else
    ("unknown service", pull(GP, "Condition", context={"service": "prs"}), False, "no-applicable-policy", None),
]


@pytest.mark.parametrize(("case", "raw", "allow", "reason", "policy"), CASES, ids=[c[0] for c in CASES])
def test_decision_table(
    pdp: PolicyDecisionPoint, case: str, raw: dict[str, Any], allow: bool, reason: str, policy: str | None
) -> None:
    decision = pdp.decide(raw)
    assert decision.allow is allow, decision.reasons
    assert decision.has_reason(reason), decision.reasons
    assert decision.policy == policy
    assert decision.policy_release == "1.1.0"
    if not allow:
        assert not any(r.startswith("allowed-by:") for r in decision.reasons)


def test_override_is_flagged(pdp: PolicyDecisionPoint) -> None:
    raw = pull(GP, "Condition", context={"ehds_primary_optout": True, "vital_interest": {"reason": "anaphylaxis"}})
    decision = pdp.decide(raw)
    assert decision.allow
    assert decision.flags == ["vital-interest-override"]
    assert pdp.decide(pull(GP, "Condition")).flags == []
    assert pdp.decide(merge(raw, {"context": {"vital_interest": None}})).flags == []


def test_decision_outputs(pdp: PolicyDecisionPoint) -> None:
    decision = pdp.decide(pull(PHARMACIST, "MedicationRequest"))
    assert decision.allowed_categories == [
        "AllergyIntolerance",
        "MedicationRequest",
        "MedicationUse",
        "ObservationLaboratory",
        "Patient",
    ]
    assert decision.agreements == ["LAS-TA-AUTHZ-000", "LAS-TA-AUTHZ-001"]
    assert "policy:pull" in decision.rules_matched
    assert "pull:consent-permit" in decision.rules_matched
    assert decision.reasons == ["allowed-by:pull"]
    assert pdp.decide(mcsd("update", target=REQUESTER_URA)).rules_matched == [
        "mcsd:client-authenticated",
        "mcsd:own-or-mandated-organization",
        "policy:mcsd",
    ]
    referral = pdp.decide(notified())
    assert referral.allowed_queries == sorted(["Patient/p1", "Observation?patient=Patient/p1&category=laboratory"])


def test_only_the_applicable_policy_reports(pdp: PolicyDecisionPoint) -> None:
    # mcsd would allow this read; the pull policy decides and only its reasons show.
    decision = pdp.decide(pull(GP, "Condition", context={"mitz_consent": "Deny"}))
    assert decision.reasons == ["consent-not-permit"]
    assert all(m.startswith(("policy:pull", "pull:")) for m in decision.rules_matched)


# --- invalid input --------------------------------------------------------------------------------


def test_missing_subject_is_a_deny(pdp: PolicyDecisionPoint) -> None:
    decision = pdp.decide(merge(pull(), {"subject": None}))
    assert not decision.allow
    assert decision.reasons == ["missing-input:subject"]
    assert decision.policy is None


def test_missing_nested_field_is_a_deny(pdp: PolicyDecisionPoint) -> None:
    decision = pdp.decide(merge(pull(), {"subject": {"client_id": None}, "context": {"service": None}}))
    assert not decision.allow
    assert decision.reasons == ["missing-input:context.service", "missing-input:subject.client_id"]


def test_invalid_values_deny_without_echoing_them(pdp: PolicyDecisionPoint) -> None:
    raw = pull(context={"patient_bsn": "123456789", "now": "not a time"}, subject={"subject_role": ["huisarts"]})
    decision = pdp.decide(raw)
    assert not decision.allow
    assert decision.reasons == [
        "invalid-input:context.now",
        "invalid-input:context.patient_bsn",
        "invalid-input:subject.subject_role.0",
    ]
    assert "123456789" not in decision.model_dump_json()


def test_unknown_field_is_refused(pdp: PolicyDecisionPoint) -> None:
    # A misspelt opt-out flag must not be ignored into an allow.
    decision = pdp.decide(pull(context={"ehds_opt_out": True}))
    assert not decision.allow
    assert decision.reasons == ["invalid-input:context.ehds_opt_out"]


def test_nuts_ig_boolean_consent_and_purpose_are_mapped(pdp: PolicyDecisionPoint) -> None:
    assert pdp.decide(pull(context={"mitz_consent": True, "purpose_of_use": "treatment"})).allow
    assert pdp.decide(pull(context={"mitz_consent": False})).has_reason("consent-not-permit")


def test_model_instance_accepted(pdp: PolicyDecisionPoint) -> None:
    assert pdp.decide(AuthzInput.model_validate(pull())).allow


def test_now_defaults_to_clock_and_rounds_up() -> None:
    moment = datetime(2026, 3, 7, 22, 59, 59, 1, tzinfo=UTC)  # 1 µs before the end second
    pdp = PolicyDecisionPoint(POLICY_DIR, clock=lambda: moment)
    raw = notified(context={"now": None, "referral": {"restriction_end": "2026-03-07T23:00:00Z"}})
    prepared = pdp.prepare(raw)
    assert not isinstance(prepared, Decision)
    assert prepared.document["context"]["now"] == "2026-03-07T23:00:00+00:00"
    # rounded up onto the end second: already past, so denied (errs towards deny)
    assert pdp.decide(raw).has_reason("restriction-ended")


# --- explain ---------------------------------------------------------------------------------------


def test_explain_lists_true_rules(pdp: PolicyDecisionPoint) -> None:
    explanation = pdp.explain(pull(PHARMACIST, "MedicationRequest"))
    assert explanation.decision == pdp.decide(pull(PHARMACIST, "MedicationRequest"))
    rules = explanation.true_rules
    assert "data.ldn.authz.allow" in rules
    assert "data.ldn.authz.pull.allow" in rules
    assert "data.ldn.authz.lib.consent_permit" in rules
    assert "data.ldn.authz.notified_pull.allow" not in rules
    assert all(r.startswith("data.ldn.authz.") for r in rules)


def test_explain_of_invalid_input(pdp: PolicyDecisionPoint) -> None:
    explanation = pdp.explain({"subject": {}})
    assert not explanation.decision.allow
    assert explanation.true_rules == []


# --- cache -----------------------------------------------------------------------------------------


class Ticker:
    """A settable monotonic clock for TTL tests."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_hit_returns_same_decision(pdp: PolicyDecisionPoint) -> None:
    cache = DecisionCache(pdp)
    first = cache.decide(pull(GP, "Condition"))
    second = cache.decide(pull(GP, "Condition", context={"request_id": "r-2", "now": "2026-03-01T13:00:00+00:00"}))
    assert first == second == pdp.decide(pull(GP, "Condition"))
    assert (cache.hits, cache.misses) == (1, 1)
    second.reasons.append("tampered")
    assert cache.decide(pull(GP, "Condition")).reasons == ["allowed-by:pull"]


def test_cache_key_covers_what_decides(pdp: PolicyDecisionPoint) -> None:
    def key(raw: dict[str, Any]) -> str:
        prepared = pdp.prepare(raw)
        assert not isinstance(prepared, Decision)
        return cache_key(prepared)

    base = key(pull())
    assert key(pull(context={"request_id": "x", "traceparent": "00-ab-cd-01"})) == base
    assert key(pull(context={"now": "2027-01-01T00:00:00+00:00"})) == base  # pull does not read the time
    assert key(pull(context={"mitz_consent": "Deny"})) != base
    assert key(pull(subject={"subject_role": [GP, PHARMACIST]})) == key(
        pull(subject={"subject_role": [PHARMACIST, GP]})
    )
    # a referral makes the decision time-dependent: now (to the second) is part of the key
    assert key(notified(context={"now": "2026-03-01T12:00:00.2Z"})) == key(
        notified(context={"now": "2026-03-01T12:00:01Z"})
    )
    assert key(notified(context={"now": "2026-03-01T12:00:01.2Z"})) != key(
        notified(context={"now": "2026-03-01T12:00:01Z"})
    )


def test_cache_ttl_and_bound(pdp: PolicyDecisionPoint) -> None:
    ticker = Ticker()
    cache = DecisionCache(pdp, maxsize=2, ttl_seconds=10, clock=ticker)
    cache.decide(pull(GP, "Condition"))
    cache.decide(pull(GP, "Procedure"))
    cache.decide(pull(GP, "Encounter"))
    assert len(cache) == 2
    cache.decide(pull(GP, "Condition"))  # evicted (least recently used): a miss
    assert cache.hits == 0
    cache.decide(pull(GP, "Condition"))
    assert cache.hits == 1
    ticker.now += 11
    cache.decide(pull(GP, "Condition"))
    assert cache.hits == 1


def test_cache_does_not_store_invalid_input(pdp: PolicyDecisionPoint) -> None:
    cache = DecisionCache(pdp)
    assert not cache.decide({"subject": {}}).allow
    assert len(cache) == 0


def _copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, target, ignore=shutil.ignore_patterns("*_test.rego"))
    return target


def _set_release(policies: Path, release: str) -> None:
    for path in policies.glob("*.rego"):
        text = path.read_text(encoding="utf-8").replace('release := "1.1.0"', f'release := "{release}"')
        path.write_text(text, encoding="utf-8")


def test_cache_cleared_when_release_changes(tmp_path: Path) -> None:
    policies = _copy_policies(tmp_path)
    pdp = PolicyDecisionPoint(policies, strict=True)
    cache = DecisionCache(pdp)
    assert cache.decide(pull()).policy_release == "1.1.0"
    assert len(cache) == 1
    _set_release(policies, "1.2.0")
    assert pdp.reload()
    assert pdp.policy_release == "1.2.0"
    decision = cache.decide(pull())
    assert decision.policy_release == "1.2.0"
    assert (cache.hits, len(cache)) == (0, 1)


# --- failing closed --------------------------------------------------------------------------------


def test_interpreter_exception_is_a_deny(pdp: PolicyDecisionPoint, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Interpreter, bundle: object, entrypoint: str) -> None:
        raise RuntimeError("injected failure for 999990019")

    monkeypatch.setattr(Interpreter, "query_bundle_entrypoint", boom)
    decision = pdp.decide(pull())
    assert not decision.allow
    assert decision.reasons == ["pdp-error"]
    assert not pdp.explain(pull()).decision.allow
    cache = DecisionCache(pdp)
    assert cache.decide(pull()).reasons == ["pdp-error"]
    assert len(cache) == 0


def test_error_logs_no_bsn(
    pdp: PolicyDecisionPoint, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(self: Interpreter, bundle: object, entrypoint: str) -> None:
        raise RuntimeError(f"input was {BSN}")

    monkeypatch.setattr(Interpreter, "query_bundle_entrypoint", boom)
    pdp.decide(pull())
    assert BSN not in caplog.text
    assert "pdp" in caplog.text or "authz" in caplog.text


def test_corrupt_policy_dir_denies(tmp_path: Path) -> None:
    policies = _copy_policies(tmp_path)
    (policies / "pull.rego").write_text("package ldn.authz.pull\n\nthis is not rego {{{\n", encoding="utf-8")
    pdp = PolicyDecisionPoint(policies)
    assert pdp.load_error
    assert pdp.policy_release == ""
    decision = pdp.decide(pull())
    assert not decision.allow
    assert decision.reasons == ["pdp-error"]
    with pytest.raises(PolicyLoadError):
        PolicyDecisionPoint(policies, strict=True)


def test_policies_of_mixed_releases_deny(tmp_path: Path) -> None:
    policies = _copy_policies(tmp_path)
    pull_rego = policies / "pull.rego"
    pull_rego.write_text(pull_rego.read_text(encoding="utf-8").replace('"1.1.0"', '"1.2.0"'), encoding="utf-8")
    pdp = PolicyDecisionPoint(policies, strict=True)
    decision = pdp.decide(pull())
    assert not decision.allow
    assert decision.reasons == ["policy-release-mismatch"]
    override = pull(context={"ehds_primary_optout": True, "vital_interest": {"reason": "anaphylaxis"}})
    assert pdp.decide(override).flags == []


def test_empty_policy_dir_denies(tmp_path: Path) -> None:
    pdp = PolicyDecisionPoint(tmp_path)
    assert pdp.decide(pull()).reasons == ["pdp-error"]


def test_failed_reload_keeps_previous_policies(tmp_path: Path) -> None:
    policies = _copy_policies(tmp_path)
    pdp = PolicyDecisionPoint(policies, strict=True)
    (policies / "main.rego").write_text("package ldn.authz\n\nbroken {{{\n", encoding="utf-8")
    assert not pdp.reload()
    assert pdp.load_error
    assert pdp.decide(pull()).allow


def _policies_with_main(tmp_path: Path, decision_body: str) -> PolicyDecisionPoint:
    target = tmp_path / "policies"
    target.mkdir()
    (target / "main.rego").write_text(
        f'package ldn.authz\n\nimport rego.v1\n\nrelease := "1.1.0"\n\n{decision_body}\n', encoding="utf-8"
    )
    return PolicyDecisionPoint(target, strict=True)


@pytest.mark.parametrize(
    "body",
    [
        'decision := {"allow": "true", "reasons": [], "allowed_categories": [], "allowed_queries": [],'
        ' "flags": [], "policy": "x", "release": "1.1.0", "agreements": [], "rules_matched": []}',
        'decision := {"allow": true, "release": "1.1.0", "policy": "x"}',
        'decision := {"allow": true, "reasons": [], "allowed_categories": [], "allowed_queries": [],'
        ' "flags": [], "policy": "x", "release": "9.9.9", "agreements": [], "rules_matched": []}',
        "decision := true",
        "decision := 1 if false",
        'decision := x if { x := sprintf("m:%s", [upper(input.context.service)]) }',
    ],
    ids=["allow-as-string", "missing-fields", "release-mismatch", "not-an-object", "undefined", "odd-output"],
)
def test_malformed_policy_output_never_allows(tmp_path: Path, body: str) -> None:
    pdp = _policies_with_main(tmp_path, body)
    decision = pdp.decide(pull())
    assert not decision.allow
    assert decision.reasons == ["pdp-error"]


# --- threads ---------------------------------------------------------------------------------------


def test_threads_get_their_own_answers(pdp: PolicyDecisionPoint) -> None:
    inputs = [pull(GP, "Condition"), pull(PHARMACIST, "Condition"), nvi_search(CARER), mcsd()]
    expected = [pdp.decide(raw) for raw in inputs]
    mismatches: list[int] = []

    def work(offset: int) -> None:
        for i in range(12):
            k = (i + offset) % len(inputs)
            if pdp.decide(inputs[k]) != expected[k]:
                mismatches.append(k)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mismatches == []


def test_release_of_repository_policies(pdp: PolicyDecisionPoint) -> None:
    assert pdp.policy_release == "1.1.0"
    assert pdp.load_error is None


def test_role_table_is_consistent() -> None:
    table = json.loads((POLICY_DIR / "data" / "role_categories.json").read_text(encoding="utf-8"))
    categories = json.loads((POLICY_DIR / "data" / "resource_categories.json").read_text(encoding="utf-8"))
    known = set(categories["resource_types"].values()) | set(categories["observation"]["all_categories"])
    for code, role in table["roles"].items():
        assert role["group"] in table["groups"], code
    for name, group in table["groups"].items():
        assert set(group["categories"]) <= known | {"AdvanceDirective"}, name
