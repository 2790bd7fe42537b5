"""Loading, querying and governed-parameter lookup on the shipped agreement system."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ldn.afspraken import (
    AfsprakenError,
    AgreementRepository,
    AmbiguousParameterError,
    Layer,
    Plateau,
    ReleaseStatus,
    RepositoryError,
    SemVer,
    Status,
    UnknownAgreementError,
    UnknownParameterError,
    UnknownReleaseError,
    default_repository,
    is_compatible,
)
from tests.afspraken.las_helpers import SHIPPED, LasBuilder


def test_parameter_lookup_current_release(shipped: AgreementRepository) -> None:
    value = shipped.parameter("LAS-TA-AUTH-002", "access_token_lifetime")
    assert value == 900
    assert type(value) is int
    assert shipped.parameter("LAS-TA-AUTH-001", "clock_skew", expect=int) == 5
    assert shipped.parameter("LAS-TA-AUTH-001", "max_assertion_lifetime", expect=int) == 300
    assert shipped.parameter("LAS-TA-ADDR-001", "sync_interval", expect=int) == 900
    assert shipped.parameter("LAS-TA-ADDR-001", "sync_jitter", expect=int) == 120
    assert shipped.parameter("LAS-TA-LOG-001", "retention_years", expect=int) == 5
    assert shipped.parameter("LAS-TA-AUTHZ-001", "policy_release", expect=str) == "2026.2"


def test_parameter_differs_between_1_1_0_and_2_0_0(shipped: AgreementRepository) -> None:
    assert shipped.parameter("LAS-TA-AUTH-002", "access_token_lifetime", release="1.1.0") == 900
    assert shipped.parameter("LAS-TA-AUTH-002", "access_token_lifetime", release="2.0.0") == 600
    assert shipped.parameter("policy_release", release="2.0.0") == "2027.1"


def test_parameter_by_name_alone_and_provenance(shipped: AgreementRepository) -> None:
    assert shipped.parameter("access_token_lifetime") == 900
    info = shipped.parameter_info("restriction_period")
    assert (info.agreement_id, info.value, info.unit, info.release) == ("LAS-TA-NOTIF-001", 30, "d", "1.1.0")
    # An agreement with exactly one parameter needs no name.
    assert shipped.parameter("LAS-TA-LOG-001") == 5


def test_parameter_errors_are_specific(shipped: AgreementRepository) -> None:
    with pytest.raises(UnknownAgreementError, match=r"not part of release 1\.0\.0"):
        shipped.parameter("LAS-TA-AUTH-003", "dpop_proof_max_age", release="1.0.0")
    with pytest.raises(UnknownParameterError, match="has no parameter 'lifetime'"):
        shipped.parameter("LAS-TA-AUTH-002", "lifetime")
    with pytest.raises(UnknownParameterError, match="name the one you want"):
        shipped.parameter("LAS-TA-AUTH-001")
    with pytest.raises(UnknownParameterError, match="no agreement in release"):
        shipped.parameter("no_such_parameter")
    with pytest.raises(UnknownReleaseError):
        shipped.parameter("access_token_lifetime", release="9.9.9")
    with pytest.raises(TypeError, match="expected str"):
        shipped.parameter("access_token_lifetime", expect=str)
    # A flag is a bool, and a bool must never pass as a number.
    assert shipped.parameter("revocation_fail_closed", expect=bool) is True
    with pytest.raises(TypeError):
        shipped.parameter("revocation_fail_closed", expect=int)
    assert shipped.parameter("access_token_lifetime", expect=float) == 900.0


def test_ambiguous_parameter_name(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-002", parameters={"timeout": {"value": 60, "unit": "s"}})
    las.release("1.0.0", {"LAS-TA-TEST-001": "1.0.0", "LAS-TA-TEST-002": "1.0.0"})
    repo = las.load()
    with pytest.raises(AmbiguousParameterError, match="LAS-TA-TEST-001, LAS-TA-TEST-002"):
        repo.parameter("timeout")
    assert repo.parameter("LAS-TA-TEST-002", "timeout") == 60


def test_pinned_release_switches_parameters() -> None:
    repo = AgreementRepository.load(SHIPPED, release="2.0.0")
    assert repo.parameter("LAS-TA-AUTH-002", "access_token_lifetime") == 600
    assert repo.parameter("LAS-TA-AUTH-002", "access_token_lifetime", release="1.1.0") == 900
    with pytest.raises(UnknownReleaseError):
        AgreementRepository.load(SHIPPED, release="3.0.0")


def test_default_repository_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDN_AFSPRAKENSTELSEL", str(SHIPPED))
    monkeypatch.delenv("LDN_LAS_RELEASE", raising=False)
    assert default_repository().parameter("access_token_lifetime") == 900
    monkeypatch.setenv("LDN_LAS_RELEASE", "2.0.0")
    assert default_repository().parameter("access_token_lifetime") == 600


def test_release_resolves_frozen_versions(shipped: AgreementRepository) -> None:
    assert shipped.get("LAS-TA-AUTH-002").version == "2.0.0"  # the newest text
    assert shipped.release("1.0.0").get("LAS-TA-AUTH-002").version == "1.0.0"
    assert shipped.release("1.1.0").get("LAS-TA-AUTH-002").version == "1.1.0"
    assert shipped.get("LAS-TA-AUTH-002", "1.0.0").parameters["access_token_lifetime"].value == 900
    assert shipped.release("1.0.0").get("LAS-TA-ADDR-001").status is Status.CANDIDATE
    assert shipped.release("1.1.0").get("LAS-TA-ADDR-001").status is Status.NORMATIVE
    assert "LAS-TA-ADDR-004" not in shipped.release("2.0.0")
    for version in shipped.release_versions():
        assert shipped.release(version).missing == ()
    with pytest.raises(UnknownAgreementError):
        shipped.get("LAS-TA-NOPE-001")


def test_active_release_by_date(shipped: AgreementRepository) -> None:
    assert shipped.active_release(date(2026, 2, 1)) is None
    assert shipped.active_release(date(2026, 5, 1)).version == "1.0.0"  # type: ignore[union-attr]
    assert shipped.active_release(date(2026, 11, 22)).version == "1.1.0"  # type: ignore[union-attr]
    # A planned release is an announcement, not in force, until it is made current.
    assert shipped.active_release(date(2027, 6, 1)).version == "1.1.0"  # type: ignore[union-attr]
    planned = shipped.active_release(date(2027, 6, 1), include_planned=True)
    assert planned is not None and planned.version == "2.0.0"


def test_valid_releases_are_current_and_previous(shipped: AgreementRepository) -> None:
    valid = shipped.valid_releases()
    assert [(r.version, r.status) for r in valid] == [
        ("1.1.0", ReleaseStatus.CURRENT),
        ("1.0.0", ReleaseStatus.PREVIOUS),
    ]
    assert shipped.current_release().version == "1.1.0"


def test_is_compatible_by_major(shipped: AgreementRepository) -> None:
    current = shipped.releases["1.1.0"]
    assert is_compatible("1.0.0", current)
    assert is_compatible("1.1.3", "1.0.0")
    assert not is_compatible("2.0.0", current)
    assert not is_compatible("1.1.0", shipped.releases["2.0.0"])
    with pytest.raises(ValueError, match="semantic version"):
        is_compatible("1.1", current)


def test_semver_parsing_is_strict() -> None:
    assert SemVer.parse("1.10.0") > SemVer.parse("1.9.9")
    assert str(SemVer.parse("2.0.1")) == "2.0.1"
    assert SemVer.parse("1.0.1").is_patch and not SemVer.parse("1.1.0").is_patch
    for bad in ("1.2", "01.0.0", "1.0.0-rc1", "v1.0.0", "1.0.0 "):
        assert not SemVer.is_valid(bad)


def test_queries_by_layer_plateau_status(shipped: AgreementRepository) -> None:
    technisch = shipped.by_layer(Layer.TECHNISCH)
    assert technisch and all(a.layer is Layer.TECHNISCH for a in technisch)
    assert {a.id for a in shipped.by_plateau(Plateau.P2028_2030)} == {"LAS-JUR-OPTOUT-002", "LAS-JUR-SECUSE-001"}
    assert "LAS-TA-ADDR-004" in {a.id for a in shipped.by_status("phased-out")}
    # Frozen view of an older release: in 1.0.0 the LRZa directory was still a candidate.
    assert [a.id for a in shipped.find(topic="addressing.directory", status="normative", release="1.0.0")] == [
        "LAS-TA-ADDR-004"
    ]
    temporary_now = shipped.find(temporary=True, release="1.1.0")
    assert {a.id for a in temporary_now} >= {"LAS-TA-TLS-001", "LAS-TA-DEZI-001", "LAS-TA-AUTHZ-001"}


def test_dates_are_validated_as_strings_and_typed_in_the_model(shipped: AgreementRepository) -> None:
    rel = shipped.releases["1.1.0"]
    assert rel.date == date(2026, 9, 1)
    temporary = shipped.get("LAS-TA-DEZI-001").temporary
    assert temporary is not None and temporary.valid_until == date(2027, 12, 31)


def test_strict_load_raises_with_every_error(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-001", status="approved")
    las.agreement("LAS-P-TEST-001", layer="sociaal")
    with pytest.raises(RepositoryError) as info:
        AgreementRepository.load(las.root, strict=True)
    locations = {p.location for p in info.value.problems}
    assert locations == {
        "las/agreements/LAS-TA-TEST-001.yaml:$.status",
        "las/agreements/LAS-P-TEST-001.yaml:$.layer",
    }
    # A lenient load keeps going and reports the same problems.
    assert len(AgreementRepository.load(las.root).problems) == 2


def test_loading_something_that_is_not_an_agreement_system(tmp_path: Path) -> None:
    with pytest.raises(AfsprakenError, match="not an agreement system"):
        AgreementRepository.load(tmp_path)


def test_invalid_calendar_date_is_a_schema_error(las: LasBuilder) -> None:
    las.release("1.0.0", {"LAS-P-TEST-001": "1.0.0"}, date="2026-02-30")
    (problem,) = AgreementRepository.load(las.root).problems
    assert problem.location == "las/releases/1.0.0.yaml:$.date"


def test_find_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ldn.afspraken import find_root

    monkeypatch.setenv("LDN_AFSPRAKENSTELSEL", str(tmp_path))
    assert find_root() == tmp_path
    monkeypatch.delenv("LDN_AFSPRAKENSTELSEL")
    assert find_root() == SHIPPED
