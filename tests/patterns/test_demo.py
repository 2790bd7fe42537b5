"""`ldn demo`: every scenario's outcome, on a shared network (the scenarios check themselves, and here
each outcome is asserted again from the facts they report); and the command itself, end to end."""

from __future__ import annotations

import time
from typing import Any

import pytest
from typer.testing import CliRunner

from ldn.cli import app
from ldn.patterns.demo import SCENARIOS, run_scenarios
from ldn.patterns.driver import NetworkDriver
from tests.patterns.conftest import GP, HOSPITAL, NURSING, PHARMACY


@pytest.mark.asyncio(loop_scope="module")
async def test_every_demo_scenario_comes_out_as_expected(driver: NetworkDriver) -> None:
    results = {r.key: r for r in await run_scenarios(driver)}
    assert set(results) == {key for key, _, _ in SCENARIOS}
    for result in results.values():
        assert result.passed, (result.key, result.lines)
    # (a) referral: pulled from the GP, completed, logged on both sides
    a = results["a"].facts
    assert a["workflow_status"] == "completed" and a["pulled"][GP].startswith("ok")
    assert a["audit_events"] >= 4
    # (b) everything from every holder but the asking hospital itself
    b = results["b"].facts
    assert set(b["holders"]) == {GP, PHARMACY, NURSING} and all(v.startswith("ok") for v in b["holders"].values())
    assert b["total"] > 0
    # (c) the pharmacist: no conditions, medication yes
    c = results["c"].facts
    assert "Condition" not in c["types"] and {"MedicationRequest", "MedicationStatement"} & set(c["types"])
    assert any("role-not-allowed-category:Condition" in v for v in c["holders"].values())
    # (d) the refused holder does not share, the others do
    d = results["d"].facts["holders"]
    assert d[NURSING].startswith("refused (consent-not-permit)")
    assert all(v.startswith("ok") for u, v in d.items() if u != NURSING)
    # (e) objection: everyone refused, then the logged override
    e = results["e"].facts
    assert e["refused"] >= 3 and e["overrides"] >= 1
    # (f) the GP is down: reported, the rest answered
    f = results["f"].facts["holders"]
    assert f[GP].startswith("unreachable") and HOSPITAL not in f
    assert all(v.startswith("ok") for u, v in f.items() if u != GP)


@pytest.mark.slow
def test_ldn_demo_command_runs_in_under_a_minute(tmp_path: Any) -> None:
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["demo", "--keep", str(tmp_path / "demo")])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    assert "6/6 scenarios as expected" in result.output
    assert elapsed < 60
    assert "999990" not in result.output  # no BSN on screen
