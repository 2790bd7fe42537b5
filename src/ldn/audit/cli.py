"""`ldn audit`: verify the chains, sign checkpoints, export for a supervisor, purge by retention.

Exit codes: 0 fine, 1 a chain is broken (verify) or a purge was refused, 2 bad input.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ldn.audit.catalogue import EventTypes, render_markdown
from ldn.audit.context import audit_store, system_user
from ldn.audit.export import ExportFormat, export_stream, parse_period
from ldn.audit.model import AuditEvent, AuditObject, AuditSource, AuditUser, Outcome
from ldn.audit.retention import purge
from ldn.audit.settings import AuditSettings
from ldn.audit.store import AuditStore
from ldn.audit.verify import verify_database
from ldn.core.config import CoreSettings
from ldn.core.errors import BadRequest
from ldn.core.identifiers import URA, IdentifierError
from ldn.core.logging import TraceContext
from ldn.core.storage import Database, open_database
from ldn.core.topology import Topology, load_topology

app = typer.Typer(help="NEN 7513 audit log: verify, checkpoint, export, purge.", no_args_is_help=True)
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True)


def _open() -> tuple[CoreSettings, AuditSettings, Database, AuditStore]:
    core = CoreSettings()
    settings = AuditSettings()
    database = open_database(core.resolved_database_url(), echo=core.sql_echo)
    return core, settings, database, audit_store(settings, core.data_dir)


def _topology(core: CoreSettings) -> Topology:
    return load_topology(core.topology)


def _cli_user(topology: Topology) -> AuditUser:
    operator = topology.operator_of("audit")
    return system_user("ldn-cli", operator.ura if operator else None)


def _record_admin_event(database: Database, store: AuditStore, topology: Topology, event: AuditEvent) -> None:
    """Log what the command line did in the audit service's own chain."""
    operator = topology.operator_of("audit")
    if operator is None:
        return
    source = AuditSource("audit", "cli", operator.ura, "ldn audit (command line)")
    completed = event.completed(source, TraceContext.new().trace_id)
    with database.transaction() as session:
        store.append(session, [completed])


@app.command("verify")
def verify(source: Annotated[str | None, typer.Option(help="Verify only this log source.")] = None) -> None:
    """Walk every chain; name the first broken record of each source (exit 1 when any is broken)."""
    _, _, database, store = _open()
    try:
        report = verify_database(database, store.keys.signer, source=source)
    finally:
        database.dispose()
    table = Table(title=f"audit chains: {report.records} records in {report.elapsed:.2f} s")
    for column in ("source", "records", "from", "to", "checkpoints", "anchor", "status"):
        table.add_column(column)
    for item in report.sources:
        status = "[green]ok[/green]" if item.ok else f"[red]BROKEN at #{item.breakage.seq}[/red]"  # type: ignore[union-attr]
        table.add_row(
            item.source,
            str(item.records),
            str(item.first_seq or ""),
            str(item.last_seq or ""),
            str(item.checkpoints),
            str(item.anchored_at or ""),
            status,
        )
    console.print(table)
    if source is not None and not report.sources:
        err_console.print(f"[red]no log source {source!r}[/red]")
        raise typer.Exit(2)
    for breakage in report.breakages:
        console.print(f"[red]first broken record[/red] {breakage}", highlight=False)
    raise typer.Exit(0 if report.ok else 1)


@app.command("checkpoint")
def checkpoint(source: Annotated[str | None, typer.Option(help="Only this log source.")] = None) -> None:
    """Sign a checkpoint at the head of each source with new records."""
    _, _, database, store = _open()
    try:
        with database.transaction() as session:
            made = store.checkpoint(session, source)
    finally:
        database.dispose()
    for item in made:
        console.print(f"checkpoint {item.source} #{item.seq} {item.record_hash[:16]}... (key {item.key_id})")
    console.print(f"{len(made)} checkpoint(s) signed")


@app.command("export")
def export(
    since: Annotated[str, typer.Option("--from", help="Start: YYYY-MM-DD or ISO date-time with timezone.")],
    until: Annotated[str, typer.Option("--to", help="End: YYYY-MM-DD (inclusive) or date-time (exclusive).")],
    org: Annotated[str | None, typer.Option("--org", help="URA of the organisation (default: all).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="fhir (AuditEvent Bundle) or jsonl.")] = "fhir",
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of standard output.")] = None,
) -> None:
    """Export records of a period for a supervisor (BSNs decrypted; the export itself is logged)."""
    try:
        period = parse_period(since, until)
        organization = URA.parse(org).value if org is not None else None
    except (BadRequest, IdentifierError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if fmt not in ("fhir", "jsonl"):
        err_console.print("[red]--format must be fhir or jsonl[/red]")
        raise typer.Exit(2)
    core, _, database, store = _open()
    topology = _topology(core)
    counter: list[int] = []
    try:
        chunks = export_stream(database, period, organization, fmt_cast(fmt), store.keys.bsn, topology, counter)
        if output is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
            sys.stdout.flush()
        else:
            with output.open("w", encoding="utf-8") as handle:
                for chunk in chunks:
                    handle.write(chunk)
        query = f"from={period.since}&to={period.until}&organization={organization or '*'}&format={fmt}"
        _record_admin_event(
            database,
            store,
            topology,
            AuditEvent(
                type=EventTypes.AUDIT_EXPORT,
                outcome=Outcome.SUCCESS,
                users=[_cli_user(topology)],
                objects=[AuditObject("export", f"{counter[0] if counter else 0} records", "query", query=query)],
            ),
        )
    finally:
        database.dispose()
    if output is not None:
        console.print(f"{counter[0] if counter else 0} record(s) written to {output}")


def fmt_cast(value: str) -> ExportFormat:
    return "jsonl" if value == "jsonl" else "fhir"


@app.command("purge")
def purge_command(
    source: Annotated[str | None, typer.Option(help="Only this log source.")] = None,
    retention_years: Annotated[
        int | None, typer.Option(help="Override LDN_AUDIT_RETENTION_YEARS (at least 1).", min=1)
    ] = None,
    now: Annotated[str | None, typer.Option(help="Reference time (ISO, with timezone); default: now.")] = None,
) -> None:
    """Remove records older than the retention period, up to a signed checkpoint per source."""
    core, settings, database, store = _open()
    years = retention_years or settings.retention_years
    try:
        moment = datetime.fromisoformat(now.replace("Z", "+00:00")) if now else datetime.now(UTC)
    except ValueError:
        err_console.print("[red]--now must be an ISO 8601 date-time[/red]")
        raise typer.Exit(2) from None
    if moment.tzinfo is None:
        err_console.print("[red]--now needs a timezone[/red]")
        raise typer.Exit(2)
    try:
        results = purge(database, store, now=moment, years=years, source=source)
        removed = sum(r.removed for r in results)
        if removed:
            topology = _topology(core)
            _record_admin_event(
                database,
                store,
                topology,
                AuditEvent(
                    type=EventTypes.AUDIT_PURGE,
                    outcome=Outcome.SUCCESS,
                    users=[_cli_user(topology)],
                    objects=[
                        AuditObject(
                            "log-source", r.source, "system", description=f"{r.removed} removed up to #{r.anchored_at}"
                        )
                        for r in results
                        if r.removed
                    ],
                ),
            )
    finally:
        database.dispose()
    refused = [r for r in results if r.refused is not None]
    for r in results:
        if r.removed:
            console.print(f"{r.source}: {r.removed} record(s) removed; chain anchored at #{r.anchored_at}")
    for r in refused:
        console.print(f"[red]{r.source}: purge refused, chain broken: {r.refused}[/red]", highlight=False)
    console.print(f"{sum(r.removed for r in results)} record(s) removed (retention {years} years)")
    raise typer.Exit(1 if refused else 0)


@app.command("catalogue")
def catalogue(
    output: Annotated[Path | None, typer.Option(help="Write to this file (docs/audit-events.md).")] = None,
) -> None:
    """Print (or write) the event catalogue as Markdown."""
    text = render_markdown()
    if output is None:
        console.print(text, markup=False, highlight=False)
    else:
        output.write_text(text, encoding="utf-8")
