"""`ldn demo`: the communication patterns end to end on a fresh embedded network.

The demo builds its own network in a temporary directory (SQLite, a new test PKI, every service
in this process; no ports), waits until every node has loaded its address book and registered
its holdings at the NVI, and then plays six scenarios through the public HTTP APIs only
(`NetworkDriver`): professionals call their own node with their Dezi declaration, citizens set
their consent in the consent service's citizen API.

a. Verwijzen: a GP refers a patient to a hospital (notified pull); the hospital accepts, pulls the
   listed data, and completes; both sides' audit events share the scenario's trace id.
b. Raadplegen: a hospital doctor asks for everything about a patient from all holders (indexed pull).
c. A pharmacist asks for conditions and medication: conditions are refused (role), medication shown.
d. A citizen refused consent for one holder: that holder does not share; the others do.
e. A citizen objected to primary use: nobody shares, until a doctor states a vital interest; the
   override is logged and the citizen sees it.
f. One holder is down: the query still answers with the others and names the one that failed
   (the node's mount answers 503, as a load balancer in front of a stopped node would).

Each scenario checks its own outcome; the tests run the same scenarios (`run_scenarios`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ldn.core.logging import TraceContext
from ldn.patterns.driver import NetworkDriver
from ldn.patterns.raadplegen import holder_statuses

__all__ = ["SCENARIOS", "ScenarioResult", "build_demo_network", "run_demo", "run_scenarios"]

GP, HOSPITAL, PHARMACY, NURSING = "00000020", "00000040", "00000050", "00000060"
GP_DOCTOR, INTERNIST, PHARMACIST = "900000011", "900000031", "900000041"
BRAM, ANNA, WOUT, EVA, NOAH = "999990019", "999990007", "999990238", "999990044", "999990159"
DEMO_BASE = "http://ldn.demo"


@dataclass
class ScenarioResult:
    """What one scenario did and whether it came out as it should."""

    key: str
    title: str
    passed: bool = False
    lines: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    trace_id: str = ""

    def check(self, condition: bool, line: str) -> None:
        self.lines.append(("ok   " if condition else "FAIL ") + line)
        if not condition:
            self.passed = False


def _name(driver: NetworkDriver, ura: str) -> str:
    try:
        return str(driver.network.topology.organization(ura).name)
    except KeyError:
        return ura


def _citizen(driver: NetworkDriver, bsn: str) -> str:
    person = driver.network.topology.citizen(bsn)
    return f"{person.given_name} {person.family_name}"


def _per_holder(driver: NetworkDriver, bundle: dict[str, Any]) -> dict[str, str]:
    counts: dict[str, int] = {}
    for entry in bundle.get("entry", []):
        if (entry.get("search") or {}).get("mode") == "match":
            source = entry["resource"]["meta"]["source"]
            counts[source] = counts.get(source, 0) + 1
    out = {}
    for ura, status in holder_statuses(bundle).items():
        n = counts.get(f"{driver.node_url(ura)}/fhir", 0)
        reasons = f" ({', '.join(status['reasons'])})" if status["reasons"] else ""
        out[ura] = f"{status['status']}{reasons}, {n} resource(s)"
    return out


async def _referral(driver: NetworkDriver, result: ScenarioResult, trace: TraceContext) -> None:
    who = f"{_citizen(driver, BRAM)} from {_name(driver, GP)} to {_name(driver, HOSPITAL)}"
    sent = await driver.refer(GP_DOCTOR, HOSPITAL, BRAM, "ziekenhuiszorg", trace=trace)
    result.check(sent.status_code == 201, f"GP refers {who}: workflow Task {sent.status_code}")
    if sent.status_code != 201:
        return
    workflow = sent.json()
    inbox = (await driver.inbox(INTERNIST)).json()
    items = [
        e["resource"] for e in inbox.get("entry", []) if e["resource"]["focus"]["reference"] == f"Task/{workflow['id']}"
    ]
    result.check(len(items) == 1, "the notification arrived once in the hospital's inbox")
    if not items:
        return
    item = items[0]
    accepted = await driver.act(INTERNIST, item["id"], "accept", trace=trace)
    result.check(accepted.status_code == 200, "the hospital accepts; the GP's workflow Task says accepted")
    pulled = await driver.act(INTERNIST, item["id"], "pull", trace=trace)
    summary = _per_holder(driver, pulled.json()) if pulled.status_code == 200 else {}
    ok = pulled.status_code == 200 and holder_statuses(pulled.json()).get(GP, {}).get("status") == "ok"
    listed = [i for i in workflow.get("input", []) if i["type"]["coding"][0]["code"].endswith("-resource")]
    result.check(ok, f"the hospital pulls the {len(listed)} listed queries: {summary.get(GP, pulled.status_code)}")
    completed = await driver.act(INTERNIST, item["id"], "complete", trace=trace)
    status = (await driver.referral(GP_DOCTOR, workflow["id"])).json().get("status")
    result.check(completed.status_code == 200 and status == "completed", f"status back at the GP: {status}")
    events = await driver.audit_events(trace.trace_id)
    sides = {e["source"]["id"] for e in events}
    result.check(
        {f"node-{GP}", f"node-{HOSPITAL}"} <= sides,
        f"{len(events)} NEN 7513 events on both sides, one trace id {trace.trace_id[:12]}...",
    )
    result.facts.update(referral=workflow["id"], pulled=summary, workflow_status=status, audit_events=len(events))


async def _everything(driver: NetworkDriver, result: ScenarioResult, trace: TraceContext) -> None:
    await driver.permit_all(ANNA)
    response = await driver.query(INTERNIST, ANNA, trace=trace)
    found = holder_statuses(response.json()) if response.status_code == 200 else {}
    result.facts["holders"] = _per_holder(driver, response.json()) if found else {}
    result.check(bool(found) and all(s["status"] == "ok" for s in found.values()), "every holder answered")
    for ura, text in result.facts["holders"].items():
        result.lines.append(f"     {_name(driver, ura)}: {text}")
    result.check(
        {GP, PHARMACY, NURSING} <= set(found), f"the NVI pointed to {len(found)} holders of {_citizen(driver, ANNA)}"
    )
    result.facts["total"] = response.json().get("total", 0) if response.status_code == 200 else 0


async def _pharmacist(driver: NetworkDriver, result: ScenarioResult, trace: TraceContext) -> None:
    await driver.permit_all(WOUT)
    categories = ["Condition", "MedicationRequest", "MedicationUse"]
    response = await driver.query(PHARMACIST, WOUT, categories=categories, trace=trace)
    bundle = response.json()
    found = holder_statuses(bundle) if response.status_code == 200 else {}
    refused = sorted(u for u, s in found.items() if "role-not-allowed-category:Condition" in s["reasons"])
    types = {
        e["resource"]["resourceType"] for e in bundle.get("entry", []) if (e.get("search") or {}).get("mode") == "match"
    }
    result.check(bool(refused), f"conditions refused by {', '.join(_name(driver, u) for u in refused) or 'nobody'}")
    result.check("Condition" not in types, "no condition reached the pharmacist")
    result.check(
        bool(types & {"MedicationRequest", "MedicationStatement"}),
        f"medication was shared ({', '.join(sorted(types))})",
    )
    result.facts.update(holders=_per_holder(driver, bundle) if found else {}, types=sorted(types))


async def _consent_refused(driver: NetworkDriver, result: ScenarioResult, trace: TraceContext) -> None:
    await driver.permit_all(EVA)
    await driver.refuse_holder(EVA, NURSING)
    response = await driver.query(INTERNIST, EVA, trace=trace)
    found = holder_statuses(response.json()) if response.status_code == 200 else {}
    nursing = found.get(NURSING, {})
    result.check(
        nursing.get("status") == "refused" and nursing.get("reasons") == ["consent-not-permit"],
        f"{_name(driver, NURSING)} does not share ({nursing.get('status')}: {', '.join(nursing.get('reasons', []))})",
    )
    others = {u: s["status"] for u, s in found.items() if u != NURSING}
    result.check(bool(others) and set(others.values()) == {"ok"}, f"{len(others)} other holder(s) share")
    result.facts["holders"] = _per_holder(driver, response.json()) if found else {}


async def _optout(driver: NetworkDriver, result: ScenarioResult, trace: TraceContext) -> None:
    await driver.permit_all(NOAH)
    await driver.opt_out(NOAH, "primary")
    refused = await driver.query(INTERNIST, NOAH, trace=trace)
    found = holder_statuses(refused.json()) if refused.status_code == 200 else {}
    result.check(
        bool(found) and all(s["reasons"] == ["ehds-primary-optout"] for s in found.values()),
        f"objection to primary use: {len(found)} holder(s) refuse (ehds-primary-optout)",
    )
    reason = "bewusteloos binnengebracht op de spoedeisende hulp"
    overridden = await driver.query(INTERNIST, NOAH, vital_interest_reason=reason, trace=trace)
    after = holder_statuses(overridden.json()) if overridden.status_code == 200 else {}
    result.check(bool(after) and all(s["status"] == "ok" for s in after.values()), "vital interest stated: shared")
    overrides = await driver.overrides(NOAH)
    result.check(
        any(reason in str(o) for o in overrides),
        f"the override is logged; the citizen sees {len(overrides)} entry(ies)",
    )
    result.facts.update(refused=len(found), overrides=len(overrides))


async def _holder_down(driver: NetworkDriver, result: ScenarioResult, trace: TraceContext) -> None:
    await driver.permit_all(ANNA)
    started = time.perf_counter()
    with driver.fault(GP, "down"):
        response = await driver.query(INTERNIST, ANNA, trace=trace)
    elapsed = time.perf_counter() - started
    found = holder_statuses(response.json()) if response.status_code == 200 else {}
    result.check(found.get(GP, {}).get("status") == "unreachable", f"{_name(driver, GP)} is reported unreachable")
    others = {u: s["status"] for u, s in found.items() if u != GP}
    result.check(bool(others) and set(others.values()) == {"ok"}, f"{len(others)} other holder(s) answered")
    result.check(response.status_code == 200, f"one answer in {elapsed * 1000:.0f} ms")
    result.facts["holders"] = _per_holder(driver, response.json()) if found else {}


Scenario = Callable[[NetworkDriver, ScenarioResult, TraceContext], Awaitable[None]]

SCENARIOS: tuple[tuple[str, str, Scenario], ...] = (
    ("a", "Verwijzen: a GP refers a patient to a hospital (notified pull)", _referral),
    ("b", "Raadplegen: a hospital doctor asks all holders (indexed pull)", _everything),
    ("c", "A pharmacist is refused a category it may not see", _pharmacist),
    ("d", "Consent refused for one holder: not shared from there", _consent_refused),
    ("e", "Objection to primary use; the logged vital-interest override", _optout),
    ("f", "One holder is down: the others still answer", _holder_down),
)


async def run_scenarios(
    driver: NetworkDriver, on_done: Callable[[ScenarioResult], None] | None = None
) -> list[ScenarioResult]:
    """Play every scenario on a ready network; each result says whether it came out right."""
    results = []
    for key, title, play in SCENARIOS:
        result = ScenarioResult(key, title, passed=True)
        trace = TraceContext.new()
        result.trace_id = trace.trace_id
        started = time.perf_counter()
        try:
            await play(driver, result, trace)
        except Exception as exc:  # noqa: BLE001 - a broken scenario is reported, the demo goes on
            result.check(False, f"the scenario broke: {exc.__class__.__name__}: {str(exc)[:200]}")
        result.seconds = time.perf_counter() - started
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


def build_demo_network(directory: Path, database_url: str | None = None) -> Any:
    """A fresh embedded network rooted in `directory` (its own SQLite database and test PKI)."""
    from ldn.core.config import CoreSettings
    from ldn.core.storage import open_database
    from ldn.core.topology import load_topology
    from ldn.network.runtime import build_network

    url = database_url or f"sqlite:///{(directory / 'ldn.db').as_posix()}"
    settings = CoreSettings(data_dir=directory / "var", database_url=url, log_level="WARNING")
    database = open_database(url, upgrade=True)
    return build_network(settings, load_topology(), database, base_url=DEMO_BASE)


async def _run(console: Console, directory: Path, database_url: str | None) -> list[ScenarioResult]:
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        setup = progress.add_task("Building the embedded network (database, PKI, services)", total=3)
        network = await asyncio.to_thread(build_demo_network, directory, database_url)
        progress.advance(setup)
        async with network.app.router.lifespan_context(network.app):
            progress.update(setup, description="Address books and NVI registrations")
            progress.advance(setup)
            transport = httpx.ASGITransport(app=network.app)
            async with httpx.AsyncClient(transport=transport, base_url=DEMO_BASE, timeout=60) as http:
                driver = NetworkDriver(network, http)
                await driver.ready()
                progress.update(setup, description="Network ready")
                progress.advance(setup)
                play = progress.add_task("Scenarios", total=len(SCENARIOS))

                def done(result: ScenarioResult) -> None:
                    mark = "[green]passed[/green]" if result.passed else "[red]FAILED[/red]"
                    console.print(f"[bold]({result.key}) {result.title}[/bold]: {mark} in {result.seconds:.1f} s")
                    for line in result.lines:
                        style = "red" if line.startswith("FAIL") else "dim"
                        console.print(f"    [{style}]{line}[/{style}]", highlight=False)
                    progress.advance(play)

                results = await run_scenarios(driver, done)
        network.database.dispose()
    return results


def run_demo(console: Console, *, keep: Path | None = None, database_url: str | None = None) -> int:
    """Build a network, play the scenarios, print a summary; the exit code (0 when all passed)."""
    started = time.perf_counter()
    directory = keep or Path(tempfile.mkdtemp(prefix="ldn-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("LDN_AUTH_PKI_DIR")
    # A fresh test PKI inside the demo's directory, whatever the surrounding configuration says.
    os.environ["LDN_AUTH_PKI_DIR"] = str(directory / "pki")
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        results = asyncio.run(_run(console, directory, database_url))
    finally:
        quiet.setLevel(level)
        if saved is None:
            os.environ.pop("LDN_AUTH_PKI_DIR", None)
        else:
            os.environ["LDN_AUTH_PKI_DIR"] = saved
        if keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    table = Table(title="ldn demo: communication patterns")
    table.add_column("scenario")
    table.add_column("outcome")
    table.add_column("seconds", justify="right")
    table.add_column("trace id")
    for result in results:
        table.add_row(
            f"({result.key}) {result.title}",
            "[green]as expected[/green]" if result.passed else "[red]not as expected[/red]",
            f"{result.seconds:.2f}",
            result.trace_id,
        )
    console.print(table)
    total = time.perf_counter() - started
    passed = sum(r.passed for r in results)
    console.print(f"{passed}/{len(results)} scenarios as expected; whole demo {total:.1f} s")
    if keep is not None:
        console.print(f"network data kept in {directory}")
    return 0 if passed == len(results) else 1
