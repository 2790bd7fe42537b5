"""Commands of the communication patterns: `ldn query`, `ldn refer`, `ldn inbox` and `ldn demo`.

`query`, `refer` and `inbox` talk to a running network (`ldn up`; `var/network.json` says where),
to the node of the professional named by `--as`. They authenticate that professional the way a
node's EHR would: with a Dezi declaration, issued here with the local Dezi test key (as `ldn token
--as` does). `demo` builds a network of its own and needs nothing running.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from ldn.auth.dezi_service import dezi_issuer, issue_declaration_for
from ldn.auth.settings import AuthSettings
from ldn.auth.trust_store import trust_store
from ldn.core.config import CoreSettings
from ldn.core.identifiers import BSN, IdentifierError
from ldn.core.service import NetworkDirectory
from ldn.core.topology import Topology, load_topology
from ldn.patterns.raadplegen import holder_statuses

__all__ = ["register"]

# Wide enough for the tables when output is not a terminal (logs, CI), as `ldn up` does.
console = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True, soft_wrap=True)


class _Failed(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _context() -> tuple[CoreSettings, Topology, NetworkDirectory]:
    core = CoreSettings()
    path = core.data_dir / "network.json"
    if not path.exists():
        raise _Failed(f"{path} not found: start the network first (ldn up)", 2)
    directory = NetworkDirectory.from_json(json.loads(path.read_text(encoding="utf-8")))
    return core, load_topology(core.topology), directory


def http_client(core: CoreSettings, topology: Topology, ura: str, base: str) -> httpx.AsyncClient:
    """The client for a node's API (mutual TLS with the organisation's certificate under `ldn up --tls`).
    Tests replace this function to reach an in-process network."""
    verify: ssl.SSLContext | bool = True
    if base.startswith("https://"):
        store = trust_store(AuthSettings().resolved_pki_dir(core.data_dir), topology)
        credential = store.credential(ura)
        verify = ssl.create_default_context(cafile=str(store.ca_bundle))
        verify.load_cert_chain(str(credential.chain_file), str(credential.key_file))
    return httpx.AsyncClient(verify=verify, timeout=max(core.http_timeout, 35.0))


async def _call(uzi: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    core, topology, directory = _context()
    try:
        _, employer = topology.professional(uzi)
    except KeyError:
        raise _Failed(f"no professional with UZI number {uzi} in the topology", 2) from None
    if employer.ura not in directory.nodes:
        raise _Failed(f"organisation {employer.ura} has no node in this network", 2)
    base = directory.nodes[employer.ura]["base"]
    declaration = issue_declaration_for(dezi_issuer(core.data_dir, directory.service_url("dezi")), topology, uzi)
    headers = {"Authorization": f"Bearer {declaration}"}
    async with http_client(core, topology, employer.ura, base) as http:
        try:
            return await http.request(method, f"{base}{path}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _Failed(f"network not reachable: {exc.__class__.__name__}", 2) from None


def _run(coro: Any) -> httpx.Response:
    try:
        response: httpx.Response = asyncio.run(coro)
    except _Failed as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(exc.code) from None
    if response.status_code >= 400:
        try:
            issue = response.json()["issue"][0]
            code = (issue.get("details") or {}).get("coding", [{}])[0].get("code", issue.get("code"))
            err.print(f"[red]{response.status_code} {code}: {issue.get('diagnostics', '')}[/red]")
        except (ValueError, KeyError, IndexError, TypeError):
            err.print(f"[red]{response.status_code}: {response.text[:300]}[/red]")
        raise typer.Exit(1)
    return response


def _bsn(value: str) -> str:
    try:
        return BSN.parse(value).value
    except IdentifierError:
        err.print("[red]--patient must be a valid BSN[/red]")
        raise typer.Exit(2) from None


AsOption = Annotated[str, typer.Option("--as", help="UZI/Dezi number of the professional acting.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the FHIR answer as JSON.")]


def query_command(
    uzi: AsOption,
    patient: Annotated[str, typer.Option("--patient", help="BSN of the patient.")],
    category: Annotated[list[str] | None, typer.Option("--category", help="NVI data category (repeatable).")] = None,
    holder: Annotated[
        list[str] | None, typer.Option("--holder", help="Ask only this URA (repeatable): pull without the NVI.")
    ] = None,
    budget_ms: Annotated[int | None, typer.Option("--budget-ms", help="Total time budget (ms).")] = None,
    vital_interest: Annotated[
        str | None, typer.Option("--vital-interest", help="State a vital interest (EHDS opt-out override; logged).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Raadplegen: everything (or some categories) about a patient, from every holder."""
    body: dict[str, Any] = {"as": uzi, "patient": _bsn(patient)}
    if category:
        body["categories"] = category
    if holder:
        body["holders"] = holder
    if budget_ms is not None:
        body["budget_ms"] = budget_ms
    if vital_interest:
        body["vital_interest_reason"] = vital_interest
    bundle = _run(_call(uzi, "POST", "/patterns/query", body)).json()
    if as_json:
        console.print_json(data=bundle)
        return
    table = Table(title=f"{bundle.get('total', 0)} resource(s)")
    table.add_column("holder")
    table.add_column("status")
    table.add_column("why")
    table.add_column("resources", justify="right")
    counts: dict[str, dict[str, int]] = {}
    for entry in bundle.get("entry", []):
        if (entry.get("search") or {}).get("mode") == "match":
            resource = entry["resource"]
            per = counts.setdefault(resource["meta"]["source"], {})
            per[resource["resourceType"]] = per.get(resource["resourceType"], 0) + 1
    for ura, status in sorted(holder_statuses(bundle).items()):
        text = str(status.get("text") or ura)
        found = next((c for source, c in counts.items() if f"/nodes/{ura}/" in source), {})
        shown = ", ".join(f"{n} {t}" for t, n in sorted(found.items())) or "-"
        colour = {"ok": "green", "partial": "yellow"}.get(str(status["status"]), "red")
        table.add_row(
            text.split(":")[0], f"[{colour}]{status['status']}[/{colour}]", ", ".join(status["reasons"]), shown
        )
    console.print(table)


def refer_command(
    uzi: AsOption,
    to: Annotated[str, typer.Option("--to", help="URA of the receiving organisation.")],
    patient: Annotated[str, typer.Option("--patient", help="BSN of the patient.")],
    service: Annotated[str, typer.Option("--service", help="HealthcareService type, e.g. ziekenhuiszorg.")],
    category: Annotated[list[str] | None, typer.Option("--category", help="Limit the shared categories.")] = None,
    days: Annotated[int | None, typer.Option("--days", help="Restriction period in days.")] = None,
    cancel: Annotated[str | None, typer.Option("--cancel", help="Cancel this referral id instead.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Verwijzen: refer a patient to another organisation (notified pull), or cancel a referral."""
    if cancel:
        task = _run(_call(uzi, "POST", f"/patterns/referrals/{cancel}/cancel", {"as": uzi})).json()
    else:
        body: dict[str, Any] = {"as": uzi, "to": to, "patient": _bsn(patient), "service": service}
        if category:
            body["categories"] = category
        if days is not None:
            body["restriction_days"] = days
        task = _run(_call(uzi, "POST", "/patterns/referrals", body)).json()
    if as_json:
        console.print_json(data=task)
        return
    listed = [i["valueString"] for i in task.get("input", []) if "valueString" in i]
    owner = task["owner"].get("display", to)
    console.print(
        f"referral [bold]{task['id']}[/bold] to {owner}: status [bold]{task['status']}[/bold], "
        f"pull until {task['restriction']['period']['end']}, {len(listed)} listed queries"
    )


def inbox_command(
    uzi: AsOption,
    accept: Annotated[str | None, typer.Option("--accept", help="Accept this referral.")] = None,
    reject: Annotated[str | None, typer.Option("--reject", help="Reject this referral.")] = None,
    pull: Annotated[str | None, typer.Option("--pull", help="Pull the listed data of this referral.")] = None,
    complete: Annotated[str | None, typer.Option("--complete", help="Complete this referral.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The referrals your organisation received; act on one with --accept, --pull, --complete."""
    actions = [(a, i) for a, i in (("accept", accept), ("reject", reject), ("pull", pull), ("complete", complete)) if i]
    if len(actions) > 1:
        err.print("[red]one action at a time[/red]")
        raise typer.Exit(2)
    if actions:
        action, referral = actions[0]
        answer = _run(_call(uzi, "POST", f"/patterns/inbox/{referral}/{action}", {"as": uzi})).json()
        if as_json:
            console.print_json(data=answer)
        elif action == "pull":
            for ura, status in holder_statuses(answer).items():
                console.print(f"pulled from {ura}: {status['status']} {', '.join(status['reasons'])}")
            console.print(f"{answer.get('total', 0)} resource(s)")
        else:
            console.print(f"referral {referral}: {answer['status']}")
        return
    bundle = _run(_call(uzi, "GET", f"/patterns/inbox?as={uzi}")).json()
    if as_json:
        console.print_json(data=bundle)
        return
    table = Table(title="inbox")
    for column in ("id", "from", "patient", "service", "status", "pull until"):
        table.add_column(column)
    for entry in bundle.get("entry", []):
        task = entry["resource"]
        bsn = str(task.get("for", {}).get("identifier", {}).get("value", ""))
        table.add_row(
            task["id"],
            str(
                task["requester"]["onBehalfOf"].get("display") or task["requester"]["onBehalfOf"]["identifier"]["value"]
            ),
            BSN(bsn).masked() if bsn else "-",
            str(((task.get("reason") or {}).get("coding") or [{}])[0].get("code", "-")),
            task["status"],
            task["restriction"]["period"]["end"],
        )
    console.print(table)


def demo_command(
    keep: Annotated[
        Path | None, typer.Option("--keep", help="Keep the network's data in this directory (default: removed).")
    ] = None,
) -> None:
    """Play the communication patterns on a fresh embedded network (no running network needed)."""
    from ldn.patterns.demo import run_demo

    raise typer.Exit(run_demo(console, keep=keep))


def register(app: typer.Typer) -> None:
    app.command("query")(query_command)
    app.command("refer")(refer_command)
    app.command("inbox")(inbox_command)
    app.command("demo")(demo_command)
