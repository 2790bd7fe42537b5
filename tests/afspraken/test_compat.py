"""Compatibility by major version (LAS-G-COMPAT-001), checked between consecutive releases.

A minor or patch release may add agreements and move them through the lifecycle, but must not drop
an agreement, raise an agreement's major version, or remove a parameter or change its unit or type:
an application built for x.a.b has to keep working with x.c.d.
"""

from __future__ import annotations

from typing import Any

from ldn.afspraken import passes
from tests.afspraken.las_helpers import LasBuilder, codes, only


def _two_versions(las: LasBuilder, new_version: str, **new_fields: Any) -> None:
    """LAS-TA-TEST-001 at 1.0.0 (in history/) and ``new_version`` (main file)."""
    history = [
        {"version": "1.0.0", "date": "2026-03-01", "change": "Eerste vaststelling."},
        {"version": new_version, "date": "2026-08-01", "change": "Gewijzigd."},
    ]
    las.agreement(
        "LAS-TA-TEST-001",
        in_history=True,
        parameters={"timeout": {"value": 30, "unit": "s"}},
        history=history[:1],
    )
    fields: dict[str, Any] = {"parameters": {"timeout": {"value": 30, "unit": "s"}}}
    fields.update(new_fields)
    las.agreement("LAS-TA-TEST-001", version=new_version, history=history, **fields)


def _releases(las: LasBuilder, second: str, second_agreements: dict[str, str]) -> None:
    las.release("1.0.0", {"LAS-P-TEST-001": "1.0.0", "LAS-TA-TEST-001": "1.0.0"}, status="previous")
    las.release(second, second_agreements, date="2026-09-01", status="current")


def test_compatible_minor_release_passes(las: LasBuilder) -> None:
    _two_versions(
        las, "1.1.0", parameters={"timeout": {"value": 20, "unit": "s"}, "retries": {"value": 3, "unit": "1"}}
    )
    las.agreement("LAS-P-TEST-002")
    _releases(las, "1.1.0", {"LAS-P-TEST-001": "1.0.0", "LAS-TA-TEST-001": "1.1.0", "LAS-P-TEST-002": "1.0.0"})
    problems = las.check()
    assert passes(problems), problems
    assert not {c for c in codes(problems) if c.startswith("release-compat")}


def test_dropping_an_agreement_in_a_minor_release_fails(las: LasBuilder) -> None:
    _releases(las, "1.1.0", {"LAS-TA-TEST-001": "1.0.0"})
    (problem,) = only(las.check(), "release-compat-removed")
    assert problem.is_error
    assert problem.location == "las/releases/1.1.0.yaml:$.agreements"
    assert "drops LAS-P-TEST-001" in problem.message and "new major release" in problem.message


def test_dropping_an_agreement_in_a_major_release_is_allowed(las: LasBuilder) -> None:
    _releases(las, "2.0.0", {"LAS-TA-TEST-001": "1.0.0"})
    assert "release-compat-removed" not in codes(las.check())


def test_agreement_major_bump_needs_a_major_release(las: LasBuilder) -> None:
    _two_versions(las, "2.0.0", parameters={"timeout": {"value": 10, "unit": "s"}})
    _releases(las, "1.1.0", {"LAS-P-TEST-001": "1.0.0", "LAS-TA-TEST-001": "2.0.0"})
    (problem,) = only(las.check(), "release-compat-agreement-major")
    assert problem.location == "las/releases/1.1.0.yaml:$.agreements.LAS-TA-TEST-001"
    assert "from 1.0.0 in release 1.0.0 to 2.0.0 in 1.1.0" in problem.message
    assert "release 2.0.0" in problem.message

    _releases(las, "2.0.0", {"LAS-P-TEST-001": "1.0.0", "LAS-TA-TEST-001": "2.0.0"})
    (las.root / "releases" / "1.1.0.yaml").unlink()
    assert "release-compat-agreement-major" not in codes(las.check())


def test_parameter_removed_or_changed_unit_or_type_fails(las: LasBuilder) -> None:
    _two_versions(las, "1.1.0", parameters={"retries": {"value": 3, "unit": "1"}})
    _releases(las, "1.1.0", {"LAS-P-TEST-001": "1.0.0", "LAS-TA-TEST-001": "1.1.0"})
    (removed,) = only(las.check(), "release-compat-parameter")
    assert "parameter timeout of LAS-TA-TEST-001 is removed between releases 1.0.0 and 1.1.0" in removed.message

    _two_versions(las, "1.1.0", parameters={"timeout": {"value": 30000, "unit": "ms"}})
    (unit,) = only(las.check(), "release-compat-parameter")
    assert "changes unit from 's' to 'ms'" in unit.message

    _two_versions(las, "1.1.0", parameters={"timeout": {"value": "30", "unit": "s"}})
    (kind,) = only(las.check(), "release-compat-parameter")
    assert "changes type from number to text" in kind.message

    # A number stays a number: 30 -> 12.5 seconds is a compatible change of value.
    _two_versions(las, "1.1.0", parameters={"timeout": {"value": 12.5, "unit": "s"}})
    assert "release-compat-parameter" not in codes(las.check())


def test_shipped_releases_are_compatible_within_their_major(shipped: Any) -> None:
    from ldn.afspraken import run_checks
    from tests.afspraken.las_helpers import REPO_ROOT, TODAY

    problems = run_checks(shipped, TODAY, REPO_ROOT)
    assert not {p.code for p in problems if p.code.startswith("release-compat")}
