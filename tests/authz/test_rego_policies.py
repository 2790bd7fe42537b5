"""Every ``test_*`` rule in ``policies/*_test.rego`` must evaluate to true (one pytest case each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ldn.authz.rego_tests import RegoTest, RegoTestResult, discover, run_isolated
from tests.authz.inputs import POLICY_DIR

TESTS = discover(POLICY_DIR)


@pytest.fixture(scope="module")
def results() -> dict[str, RegoTestResult]:
    # One child process per test file: a rego-cpp crash fails tests instead of killing pytest.
    return {r.test.id: r for r in run_isolated(POLICY_DIR)}


def test_every_policy_has_tests() -> None:
    policies = {p.stem for p in POLICY_DIR.glob("*.rego") if not p.name.endswith("_test.rego")}
    tested = {Path(t.file).stem.removesuffix("_test") for t in TESTS}
    assert policies == tested


@pytest.mark.parametrize("rego_test", TESTS, ids=[t.id for t in TESTS])
def test_rego(rego_test: RegoTest, results: dict[str, RegoTestResult]) -> None:
    result = results.get(rego_test.id)
    assert result is not None, "not run"
    assert result.passed, result.error


def _probe_dir(tmp_path: Path, test_source: str) -> Path:
    # A one-module policy set: the runner is under test here, not the real policies.
    target = tmp_path / "policies"
    target.mkdir()
    (target / "probe.rego").write_text(
        'package ldn.authz.probe\n\nimport rego.v1\n\nrelease := "1.1.0"\n\nupper_x if upper(input.x) == "A"\n',
        encoding="utf-8",
    )
    (target / "probe_test.rego").write_text(test_source, encoding="utf-8")
    return target


def test_runner_reports_failing_and_passing(tmp_path: Path) -> None:
    policies = _probe_dir(
        tmp_path,
        "package ldn.authz.probe_test\n\nimport rego.v1\n\nimport data.ldn.authz.probe\n\n"
        'test_holds if probe.release == "1.1.0"\n\n'
        'test_fails if probe.release == "0.0.0"\n',
    )
    by_name = {r.test.name: r for r in run_isolated(policies)}
    assert by_name["test_holds"].passed
    assert not by_name["test_fails"].passed
    assert "undefined" in (by_name["test_fails"].error or "")


def test_runner_survives_interpreter_crash(tmp_path: Path) -> None:
    # `with input as {...}` plus a built-in on input segfaults regopy 1.5.2.
    policies = _probe_dir(
        tmp_path,
        "package ldn.authz.probe_test\n\nimport rego.v1\n\nimport data.ldn.authz.probe\n\n"
        'test_crashes if probe.upper_x with input as {"x": "a"}\n',
    )
    (result,) = run_isolated(policies)
    assert not result.passed
    assert result.error
