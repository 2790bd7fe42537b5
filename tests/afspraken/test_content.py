"""The shipped agreement system: it passes every governance check and covers what the memo asks."""

from __future__ import annotations

from collections import Counter

from ldn.afspraken import AgreementRepository, Kind, Layer, Plateau, ReleaseStatus, harmonisation_summary, run_checks
from tests.afspraken.las_helpers import REPO_ROOT, TODAY


def test_shipped_content_passes_checks(shipped: AgreementRepository) -> None:
    problems = run_checks(shipped, TODAY, REPO_ROOT)
    errors = [str(p) for p in problems if p.is_error]
    assert errors == [], "\n".join(errors)
    # The only warnings allowed are conformance tests for areas that are not built yet.
    assert {p.code for p in problems} <= {"conformance-test-planned"}


def test_at_least_35_agreements_in_all_four_layers(shipped: AgreementRepository) -> None:
    assert len(shipped) >= 35
    current = shipped.current_release()
    assert len(current) >= 35
    assert {a.layer for a in current} == set(Layer)
    assert {a.plateau for a in shipped} == set(Plateau)
    kinds = Counter(a.kind for a in current)
    assert kinds[Kind.PRINCIPLE] >= 7 and kinds[Kind.GOVERNANCE_RULE] >= 5
    assert kinds[Kind.TECHNICAL_AGREEMENT] >= 20 and kinds[Kind.STANDARD_REFERENCE] >= 8


def test_at_least_four_temporary_agreements(shipped: AgreementRepository) -> None:
    temporary = [a for a in shipped.current_release() if a.temporary is not None]
    assert len(temporary) >= 4
    binding = [a for a in temporary if a.status.is_binding]
    assert len(binding) >= 4
    for a in temporary:
        assert a.temporary is not None
        assert a.temporary.valid_until > TODAY
        assert len(a.temporary.replaced_by_expected) > 40, a.id
    # The one that was re-evaluated names its national replacement.
    replaced = shipped.get("LAS-TA-ADDR-004")
    assert replaced.temporary is not None and replaced.temporary.replaced_by == "LAS-TA-ADDR-001"
    assert "LAS-TA-ADDR-004" in shipped.get("LAS-TA-ADDR-001").supersedes


def test_every_technical_agreement_lists_conformance_tests(shipped: AgreementRepository) -> None:
    for a in shipped.all_versions():
        if a.kind is Kind.TECHNICAL_AGREEMENT:
            assert a.conformance_tests, a.id
            assert all(t.startswith(("tests/", "NTV-")) for t in a.conformance_tests)


def test_standard_references_name_their_owner(shipped: AgreementRepository) -> None:
    refs = shipped.find(kind=Kind.STANDARD_REFERENCE)
    owners = {a.owner for a in refs}
    assert {"Nictiz", "NEN", "IETF", "IHE International", "HL7 International", "MinVWS", "CIBG"} <= owners
    assert all(a.reference is not None for a in refs)
    assert shipped.get("LAS-REF-BGZ-001").owner == "Nictiz"
    assert shipped.get("LAS-REF-TANP-001").owner == "Nictiz"


def test_shipped_releases(shipped: AgreementRepository) -> None:
    statuses = {v: shipped.releases[v].status for v in shipped.release_versions()}
    assert statuses == {
        "1.0.0": ReleaseStatus.PREVIOUS,
        "1.1.0": ReleaseStatus.CURRENT,
        "2.0.0": ReleaseStatus.PLANNED,
    }
    assert shipped.releases["2.0.0"].date.year == 2027


def test_memo_topics_have_their_governed_parameters(shipped: AgreementRepository) -> None:
    expected = {
        "access_token_lifetime": ("LAS-TA-AUTH-002", 900, "s"),
        "clock_skew": ("LAS-TA-AUTH-001", 5, "s"),
        "max_assertion_lifetime": ("LAS-TA-AUTH-001", 300, "s"),
        "sync_interval": ("LAS-TA-ADDR-001", 900, "s"),
        "sync_jitter": ("LAS-TA-ADDR-001", 120, "s"),
        "retention_years": ("LAS-TA-LOG-001", 5, "a"),
        "restriction_period": ("LAS-TA-NOTIF-001", 30, "d"),
        "oprf_suite": ("LAS-TA-PRS-001", "ristretto255-SHA512", "text"),
        "hkdf_info_format": ("LAS-TA-PRS-001", "{recipient_organization}|{recipient_scope}|v1", "text"),
        "max_feature_releases_per_year": ("LAS-G-RELEASE-001", 2, "1"),
    }
    for name, (agreement_id, value, unit) in expected.items():
        info = shipped.parameter_info(name)
        assert (info.agreement_id, info.value, info.unit) == (agreement_id, value, unit), name
    assert shipped.parameter("policy_release")


def test_harmonisation_summary_counts(shipped: AgreementRepository) -> None:
    summary = harmonisation_summary(shipped)
    assert set(summary) == {"Twiin", "Nuts", "MedMij", "AORTA/LSP"}
    assert summary["Twiin"] == {"own": 0, "refers": 7, "transition": 0}
    assert shipped.harmonisation is not None
    tracked = shipped.harmonisation.topics
    assert tracked == [
        "identification",
        "authentication",
        "authorization",
        "consent",
        "localization",
        "addressing",
        "logging",
    ]
    for name, counts in summary.items():
        assert sum(counts.values()) == len(tracked), name
    assert summary["Nuts"]["transition"] > 0 and summary["MedMij"]["own"] > 0
