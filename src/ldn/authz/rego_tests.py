"""Runs the policies' own Rego unit tests (``policies/*_test.rego``) with regopy.

regopy has no ``opa test``: this module finds every top-level ``test_*`` rule in a test file by
reading the source (a failing test is *undefined* in rego-cpp's output, so it cannot be found by
querying the package), compiles the policies, the data tables and that one test file into a
bundle with every test rule as an entrypoint, and evaluates each: it passes only when it
evaluates to ``true``.

regopy 1.5.2 can crash the whole process on some inputs (a segfault, seen with
``with input as {...}``), so :func:`run_isolated` runs the tests in a child process and reports
a crash as a failure of every test in the crashing file instead of taking the caller down.

    python -m ldn.authz.rego_tests [policy_dir] [--json] [--isolated]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regopy import Interpreter

__all__ = [
    "DATA_MOUNT",
    "RegoTest",
    "RegoTestResult",
    "discover",
    "find_test_files",
    "load_tables",
    "main",
    "run_file",
    "run_isolated",
    "run_tests",
]

# Where data/*.json is mounted; shared with the PDP (which imports it from here so this module,
# run as a child process, stays free of pydantic and starts fast).
DATA_MOUNT = ("ldn", "tables")

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
# Top-level rules start in column 0; `test_x if {`, `test_x {`, `test_x := ...` all count.
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RegoTest:
    """One ``test_*`` rule: the file it is in, its package and its name."""

    file: str
    package: str
    name: str

    @property
    def id(self) -> str:
        return f"{Path(self.file).stem}::{self.name}"


@dataclass(frozen=True, slots=True)
class RegoTestResult:
    """Outcome of one Rego test; ``error`` holds the interpreter's message, if any."""

    test: RegoTest
    passed: bool
    error: str | None = None


def load_tables(policy_dir: Path) -> dict[str, Any]:
    """``data/*.json`` under the policy directory, mounted at ``data.ldn.tables.<stem>``."""
    tables: dict[str, Any] = {}
    data_dir = policy_dir / "data"
    if data_dir.is_dir():
        for path in sorted(data_dir.glob("*.json")):
            tables[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    mounted: dict[str, Any] = tables
    for key in reversed(DATA_MOUNT):
        mounted = {key: mounted}
    return mounted


def _policy_modules(policy_dir: Path) -> list[Path]:
    return sorted(p for p in policy_dir.glob("*.rego") if not p.name.endswith("_test.rego"))


def find_test_files(policy_dir: Path) -> list[Path]:
    """Every ``*_test.rego`` in the policy directory, sorted."""
    return sorted(policy_dir.glob("*_test.rego"))


def discover(policy_dir: Path) -> list[RegoTest]:
    """Every ``test_*`` rule of every test file (each name once per file)."""
    tests: list[RegoTest] = []
    for path in find_test_files(policy_dir):
        source = path.read_text(encoding="utf-8")
        package = _PACKAGE.search(source)
        if package is None:
            raise ValueError(f"{path.name}: no package declaration")
        names = dict.fromkeys(_TEST_RULE.findall(source))
        tests.extend(RegoTest(file=path.name, package=package.group(1), name=name) for name in names)
    return tests


def run_file(policy_dir: Path, file_name: str) -> list[RegoTestResult]:
    """Run the tests of one file in this process."""
    tests = [t for t in discover(policy_dir) if t.file == file_name]
    interpreter = Interpreter()
    try:
        for path in _policy_modules(policy_dir):
            interpreter.add_module(path.name, path.read_text(encoding="utf-8"))
        interpreter.add_module(file_name, (policy_dir / file_name).read_text(encoding="utf-8"))
        interpreter.add_data(load_tables(policy_dir))
    except Exception as exc:  # noqa: BLE001 - reported as test failures
        return [RegoTestResult(t, passed=False, error=f"load failed: {exc}") for t in tests]
    # Interpreter.query() recompiles every module per call (~1 s with a test file loaded);
    # one bundle with every test as an entrypoint compiles once and runs each test in ms.
    entrypoints = [f"{t.package.replace('.', '/')}/{t.name}" for t in tests]
    try:
        bundle = interpreter.build(None, entrypoints)
        if not bundle.ok():
            raise RuntimeError("bundle build failed")
    except Exception as exc:  # noqa: BLE001 - reported as test failures
        return [RegoTestResult(t, passed=False, error=f"compile failed: {exc}") for t in tests]
    runner = Interpreter()
    results: list[RegoTestResult] = []
    for test, entrypoint in zip(tests, entrypoints, strict=True):
        try:
            output = runner.query_bundle_entrypoint(bundle, entrypoint)
        except Exception as exc:  # noqa: BLE001 - reported as a test failure
            results.append(RegoTestResult(test, passed=False, error=str(exc)))
            continue
        if not output.ok():
            results.append(RegoTestResult(test, passed=False, error=str(output)))
            continue
        values = [e for result in output.results for e in result.expressions]
        passed = values == [True]
        results.append(
            RegoTestResult(test, passed=passed, error=None if passed else f"evaluated to {values or 'undefined'}")
        )
    return results


def run_tests(policy_dir: Path) -> list[RegoTestResult]:
    """Run every test file in this process."""
    return [r for path in find_test_files(policy_dir) for r in run_file(policy_dir, path.name)]


def run_isolated(policy_dir: Path, *, timeout: float = 120.0) -> list[RegoTestResult]:
    """Run every test file in a child process; a crash fails only the crashing file's tests.

    All files first run in one child (one interpreter start-up); only when that child dies are
    the files re-run one child each, in parallel, to pin the failure to its file.
    """
    files = [path.name for path in find_test_files(policy_dir)]
    combined = _run_child(policy_dir, None, timeout)
    if combined is not None:
        return combined
    with ThreadPoolExecutor(max_workers=max(1, min(len(files), os.cpu_count() or 1))) as pool:
        per_file = list(pool.map(lambda name: _run_child(policy_dir, name, timeout / 2), files))
    results: list[RegoTestResult] = []
    for name, outcome in zip(files, per_file, strict=True):
        if outcome is None:
            error = "interpreter process crashed or timed out"
            outcome = [RegoTestResult(t, passed=False, error=error) for t in discover(policy_dir) if t.file == name]
        results.extend(outcome)
    return results


def _run_child(policy_dir: Path, file_name: str | None, timeout: float) -> list[RegoTestResult] | None:
    """Results from a child process, or None when it crashed or timed out."""
    command = [sys.executable, "-m", "ldn.authz.rego_tests", str(policy_dir), "--json"]
    if file_name is not None:
        command += ["--file", file_name]
    # The child must import this very copy of ldn, installed or not.
    source_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")])))
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)  # noqa: S603
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode not in (0, 1):
        return None
    return [
        RegoTestResult(RegoTest(**row["test"]), passed=row["passed"], error=row["error"])
        for row in json.loads(proc.stdout)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy_dir", nargs="?", default="policies", type=Path)
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--file", help="run only this test file (name inside policy_dir)")
    parser.add_argument("--isolated", action="store_true", help="run in a child process, surviving crashes")
    args = parser.parse_args(argv)
    if args.file:
        results = run_file(args.policy_dir, args.file)
    elif args.isolated:
        results = run_isolated(args.policy_dir)
    else:
        results = run_tests(args.policy_dir)
    if args.json:
        print(json.dumps([asdict(r) for r in results]))
    else:
        for r in results:
            print(f"{'PASS' if r.passed else 'FAIL'} {r.test.id}" + (f"  {r.error}" if r.error else ""))
        failed = sum(not r.passed for r in results)
        print(f"{len(results) - failed} passed, {failed} failed")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
