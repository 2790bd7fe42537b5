"""`ldn afspraken list|show|diff|check|releases|parameters` through the real `ldn` entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldn.afspraken import AgreementRepository
from ldn.cli import app
from tests.afspraken.las_helpers import TODAY, LasBuilder

runner = CliRunner()


@pytest.fixture(autouse=True)
def _shipped_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDN_LAS_RELEASE", raising=False)
    monkeypatch.delenv("LDN_AFSPRAKENSTELSEL", raising=False)


def ldn(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["afspraken", *args])
    return result.exit_code, result.output


def test_list_json_filters_by_layer_and_status(shipped: AgreementRepository) -> None:
    code, out = ldn("list", "--json")
    assert code == 0
    data = json.loads(out)
    current = shipped.current_release()
    assert data["release"] == "1.1.0" and data["total"] == len(current)
    assert {a["id"] for a in data["agreements"]} == set(current.agreements)

    code, out = ldn("list", "--json", "--layer", "technisch", "--status", "normative")
    data = json.loads(out)
    assert data["total"] > 10
    assert all(a["layer"] == "technisch" and a["status"] == "normative" for a in data["agreements"])
    assert "LAS-TA-ADDR-001" in {a["id"] for a in data["agreements"]}
    assert "LAS-TA-ADDR-004" not in {a["id"] for a in data["agreements"]}  # phased out in 1.1.0


def test_list_table_and_other_release(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = ldn("list", "--plateau", "2028-2030", "--release", "2.0.0")
    assert code == 0
    assert "LAS release 2.0.0" in out
    assert "LAS-JUR-SECUSE-001" in out and "LAS-TA-AUTH-002" not in out
    # The pinned release is the default for listing too.
    monkeypatch.setenv("LDN_LAS_RELEASE", "2.0.0")
    code, out = ldn("list", "--json", "--kind", "technical-agreement")
    assert json.loads(out)["release"] == "2.0.0"
    assert {a["version"] for a in json.loads(out)["agreements"] if a["id"] == "LAS-TA-AUTH-002"} == {"2.0.0"}


def test_list_refuses_bad_input() -> None:
    code, out = ldn("list", "--layer", "juridical")
    assert code == 2 and "juridical" in out
    code, out = ldn("list", "--release", "7.0.0")
    assert code == 2 and "unknown release 7.0.0" in out


def test_show_text_json_and_versions() -> None:
    code, out = ldn("show", "LAS-TA-AUTH-002")
    assert code == 0
    assert out.startswith("LAS-TA-AUTH-002 Access tokens")
    assert "access_token_lifetime = 900 s" in out
    assert "releases: 1.0.0 (v1.0.0), 1.1.0 (v1.1.0), 2.0.0 (v2.0.0)" in out
    assert "[exists] tests/auth/test_token_flow.py::test_token_after_expiry_is_refused" in out
    assert "2.0.0 (2026-11-02): Levensduur verkort van 900 naar 600 seconden" not in out  # newer than shown

    code, out = ldn("show", "LAS-TA-AUTH-002", "--version", "2.0.0")
    assert "access_token_lifetime = 600 s" in out
    assert "2.0.0 (2026-11-02): Levensduur verkort" in out

    code, out = ldn("show", "LAS-TA-ADDR-004", "--json")
    data = json.loads(out)
    assert data["status"] == "phased-out"
    assert data["temporary"]["replaced_by"] == "LAS-TA-ADDR-001"
    assert data["releases"] == {"1.0.0": "1.0.0", "1.1.0": "1.1.0"}
    assert data["versions"] == ["1.0.0", "1.1.0"]
    assert data["superseded_by"] == ["LAS-TA-ADDR-001"]


def test_show_unknown_agreement_or_version() -> None:
    code, out = ldn("show", "LAS-TA-NOPE-001")
    assert code == 1 and "unknown agreement 'LAS-TA-NOPE-001'" in out
    code, out = ldn("show", "LAS-TA-AUTH-002", "--version", "9.9.9")
    assert code == 1 and "has no version 9.9.9" in out


def test_diff_text_and_json() -> None:
    code, out = ldn("diff", "1.1.0", "2.0.0")
    assert code == 0
    assert "LAS release 1.1.0 -> 2.0.0" in out
    assert "parameter access_token_lifetime: 900 s -> 600 s" in out
    assert "- LAS-TA-ADDR-004@1.1.0" in out
    assert "+ ... ten hoogste access_token_lifetime (600 seconden)" not in out
    assert "(600 seconden)" in out  # the text diff is included by default

    code, out = ldn("diff", "1.1.0", "2.0.0", "--no-text")
    assert "(600 seconden)" not in out and "text changed" in out

    code, out = ldn("diff", "1.0.0", "1.1.0", "--json")
    data = json.loads(out)
    assert [a["id"] for a in data["added"]] == ["LAS-TA-AUTH-003", "LAS-TA-OPTOUT-001"]
    change = next(c for c in data["changed"] if c["id"] == "LAS-TA-ADDR-001")
    assert change["status"] == {"old": "candidate", "new": "normative"}


def test_diff_unknown_release() -> None:
    code, out = ldn("diff", "1.1.0", "3.0.0")
    assert code == 2
    assert "unknown release 3.0.0" in out and "known releases: 1.0.0, 1.1.0, 2.0.0" in out


def test_releases_table_and_json() -> None:
    code, out = ldn("releases")
    assert code == 0
    assert "1.1.0" in out and "current" in out and "planned" in out
    code, out = ldn("releases", "--json")
    data = json.loads(out)
    assert data["current"] == "1.1.0"
    by_version = {r["version"]: r for r in data["releases"]}
    assert by_version["1.0.0"]["valid"] and by_version["1.1.0"]["valid"] and not by_version["2.0.0"]["valid"]
    assert by_version["1.0.0"]["compatible_with_current"] and not by_version["2.0.0"]["compatible_with_current"]


def test_parameters_show_network_use(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = ldn("parameters", "--json")
    data = json.loads(out)
    assert code == 0 and data["release"] == "1.1.0"
    network = {p["name"]: p for p in data["network"]}
    assert network["access_token_lifetime"]["state"] == "governed"
    assert network["access_token_lifetime"]["setting"] == "LDN_AUTH_ACCESS_TOKEN_LIFETIME"
    monkeypatch.setenv("LDN_AUTH_CLOCK_SKEW", "30")
    code, out = ldn("parameters")
    assert "Read by the network" in out and "deviation" in out
    code, out = ldn("parameters", "--release", "2.0.0", "--json")
    data = json.loads(out)
    assert data["network"] == []
    assert {p["name"]: p["value"] for p in data["parameters"]}["access_token_lifetime"] == 600
    code, out = ldn("parameters", "--release", "x")
    assert code == 2 and "not a release version" in out


def test_check_passes_on_shipped_content() -> None:
    code, out = ldn("check", "--today", TODAY.isoformat())
    assert code == 0, out
    assert "check passed: 0 error(s)" in out
    assert "error:" not in out
    # The harmonisation status: what each existing system still defines itself, what it refers.
    assert "  Twiin: refers 7, transition 0, own 0" in out
    assert "    defines itself: authentication, authorization, consent, localization" in out  # MedMij
    assert "    refers to the LAS: identification, consent, logging" in out  # AORTA/LSP


def _broken(las: LasBuilder) -> None:
    """One crafted system breaking every governance rule at once."""
    # schema: a status outside the lifecycle
    las.agreement("LAS-ORG-TEST-001", status="approved")
    # dangling reference
    las.agreement("LAS-P-TEST-001", references=["LAS-TA-GHOST-001"])
    # a technical agreement without a conformance test, and a missing test function
    las.agreement("LAS-TA-TEST-002", topic="test.shared", conformance_tests=[])
    # two normative agreements on one topic
    las.agreement("LAS-TA-TEST-003", topic="test.shared")
    # an expired temporary agreement, still normative
    las.agreement(
        "LAS-TA-TEST-004",
        temporary={
            "valid_from": "2025-06-01",
            "valid_until": "2026-06-01",
            "replaced_by_expected": "Een landelijke afspraak over het onderwerp van deze test.",
        },
    )
    ids = dict.fromkeys(("LAS-P-TEST-001", "LAS-TA-TEST-001", "LAS-TA-TEST-002", "LAS-TA-TEST-003"), "1.0.0")
    las.release("1.0.0", {**ids, "LAS-TA-TEST-004": "1.0.0"}, status="retired", date="2026-01-01")
    # three minor releases take effect in 2026 (cadence); 1.2.0 drops LAS-TA-TEST-001 within
    # major 1 (compatibility) and names an agreement that does not exist
    las.release("1.1.0", {**ids, "LAS-TA-TEST-004": "1.0.0"}, status="previous", date="2026-04-01")
    current = {k: v for k, v in ids.items() if k != "LAS-TA-TEST-001"}
    las.release("1.2.0", {**current, "LAS-TA-TEST-004": "1.0.0", "LAS-ORG-GHOST-001": "1.0.0"}, date="2026-09-01")
    # not semver
    las.release("1.3", {"LAS-P-TEST-001": "1.0.0"}, status="planned", date="2027-01-01")
    # harmonisation naming an unknown agreement
    las.harmonisation(
        {
            "Twiin": {
                "description": "Twiin afsprakenstelsel",
                "beheerder": "Stichting Twiin",
                "topics": {"identification": {"status": "refers", "las": ["LAS-SEM-NOPE-001"]}},
            }
        }
    )


def test_check_fails_naming_every_problem(las: LasBuilder) -> None:
    _broken(las)
    code, out = ldn("check", "--root", str(las.root), "--today", TODAY.isoformat(), "--no-network")
    assert code == 1
    lines = out.splitlines()
    expected = {
        "schema": "las/agreements/LAS-ORG-TEST-001.yaml:$.status",
        "dangling-reference": "LAS-TA-GHOST-001",
        "ta-without-tests": "LAS-TA-TEST-002",
        "duplicate-normative-topic": "'test.shared'",
        "temporary-expired": "LAS-TA-TEST-004 expired on 2026-06-01",
        "release-cadence": "3 major/minor releases in 2026",
        "release-semver": "'1.3'",
        "release-unknown-agreement": "LAS-ORG-GHOST-001",
        "release-compat-removed": "release 1.2.0 drops LAS-TA-TEST-001",
        "harmonisation-unknown-id": "LAS-SEM-NOPE-001",
    }
    for code_name, detail in expected.items():
        matching = [line for line in lines if f"error: [{code_name}]" in line]
        assert matching, f"{code_name} not reported:\n{out}"
        assert any(detail in line for line in matching), (code_name, matching)
    summary = lines[-1]
    errors = sum(1 for line in lines if line.startswith("error: ["))
    assert summary.startswith(f"check FAILED: {errors} error(s)")


def test_check_json_and_network_parameters(las: LasBuilder) -> None:
    code, out = ldn("check", "--root", str(las.root), "--no-network", "--json", "--today", "2026-11-22")
    assert code == 0, out
    data = json.loads(out)
    assert data["passes"] is True and data["errors"] == 0 and data["today"] == "2026-11-22"
    # The same crafted system cannot drive the network: the parameters it reads are absent.
    code, out = ldn("check", "--root", str(las.root), "--json")
    data = json.loads(out)
    assert code == 1 and not data["passes"]
    assert {p["code"] for p in data["problems"] if p["severity"] == "error"} == {"network-parameter-missing"}


def test_check_warnings_do_not_fail(las: LasBuilder) -> None:
    las.agreement("LAS-TA-TEST-001", conformance_tests=["tests/planned/test_later.py::test_something"])
    code, out = ldn("check", "--root", str(las.root), "--no-network", "--today", TODAY.isoformat())
    assert code == 0
    assert "warning: [conformance-test-planned]" in out
    assert "check passed: 0 error(s), 1 warning(s)" in out


def test_check_bad_root_or_date(tmp_path: Path) -> None:
    code, out = ldn("check", "--root", str(tmp_path))
    assert code == 2 and "is not an agreement system" in out
    code, out = ldn("check", "--today", "22-11-2026")
    assert code == 2 and "22-11-2026" in out


def test_commands_refuse_a_broken_system(las: LasBuilder) -> None:
    las.agreement("LAS-ORG-TEST-001", status="approved")
    code, out = ldn("list", "--root", str(las.root))
    assert code == 2
    assert "schema" in out and "ldn afspraken check" in out
