"""`ldn afspraken`: list, show, diff and check the agreement system from the command line.

    ldn afspraken list [--json] [--layer L] [--status S] [--plateau P] [--kind K] [--release X.Y.Z]
    ldn afspraken show LAS-TA-AUTH-002 [--version V] [--json]
    ldn afspraken diff 1.1.0 2.0.0 [--json] [--no-text]
    ldn afspraken check [--today YYYY-MM-DD] [--root DIR] [--json] [--no-network]
    ldn afspraken releases [--json]
    ldn afspraken parameters [--release X.Y.Z] [--json]

`check` exits 1 when any problem is an error and lists every problem; warnings are shown but do
not fail. Other commands exit 2 for a broken agreement system or an unknown release and 1 for an
unknown agreement.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ldn.afspraken.checks import harmonisation_summary, run_checks
from ldn.afspraken.diff import diff_releases
from ldn.afspraken.governed import active_release, check_network_parameters, network_parameters
from ldn.afspraken.model import Agreement, HarmonisationStatus, Kind, Layer, Plateau, Problem, Status
from ldn.afspraken.repository import (
    AfsprakenError,
    AgreementRepository,
    RepositoryError,
    UnknownReleaseError,
    default_repository,
    find_root,
)
from ldn.afspraken.service import AfsprakenService, agreement_json, agreement_summary, release_summary
from ldn.core.errors import ServiceError

app = typer.Typer(
    help="The Landelijk afsprakenstelsel (agreement system): agreements, releases, diffs and governance checks.",
    no_args_is_help=True,
)
console = Console(width=None if Console().is_terminal else 160)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root", help="Agreement system directory (default: $LDN_AFSPRAKENSTELSEL or the shipped afsprakenstelsel/)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table or text.")]


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _service(root: Path | None) -> AfsprakenService:
    """A strict load: commands other than `check` refuse to work on a broken agreement system."""
    try:
        repo = default_repository(root)
    except RepositoryError as exc:
        _fail(f"{exc}\nrun `ldn afspraken check` for the full report")
    except AfsprakenError as exc:
        _fail(str(exc))
    return AfsprakenService(repo)


@app.command("list")
def list_agreements(
    as_json: JsonOption = False,
    layer: Annotated[Layer | None, typer.Option(help="Only this layer.")] = None,
    status: Annotated[Status | None, typer.Option(help="Only this status.")] = None,
    plateau: Annotated[Plateau | None, typer.Option(help="Only this plateau.")] = None,
    kind: Annotated[Kind | None, typer.Option(help="Only this kind.")] = None,
    release: Annotated[str | None, typer.Option(help="Release x.y.z (default: the active release).")] = None,
    root: RootOption = None,
) -> None:
    """List the agreements of a release (default: the active one), optionally filtered."""
    service = _service(root)
    shown = release or service.active_version
    try:
        found = service.repo.find(layer=layer, status=status, plateau=plateau, kind=kind, release=shown)
    except UnknownReleaseError as exc:
        _fail(str(exc))
    if as_json:
        _echo_json({"release": shown, "total": len(found), "agreements": [agreement_summary(a) for a in found]})
        return
    table = Table(title=f"LAS release {shown}: {len(found)} agreements")
    for column in ("id", "version", "status", "layer", "plateau", "title"):
        table.add_column(column, no_wrap=column in ("id", "version", "status"))
    for a in found:
        title = a.title + (" (tussentijds)" if a.temporary else "")
        table.add_row(a.id, a.version, a.status.value, a.layer.value, a.plateau.value, title)
    console.print(table)


def _text(service: AfsprakenService, a: Agreement) -> str:
    lines = [
        f"{a.id} {a.title}",
        f"version {a.version} | {a.status.value} | layer {a.layer.value} | kind {a.kind.value}"
        f" | plateau {a.plateau.value}",
        f"topic: {a.topic}",
    ]
    if a.owner:
        lines.append(f"owner: {a.owner}")
    if a.reference is not None:
        lines.append(f"reference: {a.reference.title} {a.reference.url or a.reference.identifier or ''}".rstrip())
    releases = service.releases_of(a.id)
    lines.append("releases: " + (", ".join(f"{r} (v{v})" for r, v in releases.items()) or "none"))
    if a.temporary is not None:
        t = a.temporary
        lines.append(
            f"temporary: valid {t.valid_from} until {t.valid_until}; expected replacement: {t.replaced_by_expected}"
        )
        if t.replaced_by:
            lines.append(f"  replaced by {t.replaced_by}")
    lines += ["", a.text.rstrip()]
    if a.rationale:
        lines += ["", "Toelichting:", a.rationale.rstrip()]
    if a.parameters:
        lines += ["", "parameters:"]
        lines += [f"  {name} = {p.value} {p.unit}" for name, p in a.parameters.items()]
    for label, ids in (("references", a.references), ("supersedes", a.supersedes)):
        if ids:
            lines.append(f"{label}: {', '.join(ids)}")
    if a.conformance_tests:
        lines += ["", "conformance tests:"]
        lines += [f"  [{t.state}] {t.node_id}" for t in service.tests_of(a)]
    lines += ["", "history:"]
    lines += [f"  {h.version} ({h.date}): {h.change}" for h in a.history]
    return "\n".join(lines)


@app.command()
def show(
    agreement_id: Annotated[str, typer.Argument(metavar="ID", help="Agreement id, e.g. LAS-TA-AUTH-002.")],
    version: Annotated[str | None, typer.Option(help="A specific version (default: the active release's).")] = None,
    as_json: JsonOption = False,
    root: RootOption = None,
) -> None:
    """Show one agreement: metadata, text, parameters, tests, history and the releases it is in."""
    service = _service(root)
    if agreement_id not in service.repo:
        _fail(f"unknown agreement {agreement_id!r}", 1)
    try:
        a = service.agreement(agreement_id, version)
    except ServiceError as exc:  # NotFound or BadRequest from the service layer
        _fail(exc.diagnostics, 1)
    if as_json:
        _echo_json(agreement_json(service, a))
    else:
        typer.echo(_text(service, a))


@app.command()
def diff(
    old: Annotated[str, typer.Argument(metavar="A", help="Older release, e.g. 1.1.0.")],
    new: Annotated[str, typer.Argument(metavar="B", help="Newer release, e.g. 2.0.0.")],
    as_json: JsonOption = False,
    text: Annotated[bool, typer.Option("--text/--no-text", help="Include text diffs.")] = True,
    root: RootOption = None,
) -> None:
    """What changed between two releases: added, removed and changed agreements and parameters."""
    service = _service(root)
    try:
        result = diff_releases(service.repo, old, new)
    except UnknownReleaseError as exc:
        _fail(f"{exc}; known releases: {', '.join(service.repo.release_versions())}")
    if as_json:
        _echo_json(result.to_dict())
    else:
        typer.echo(result.format(with_text=text))


def harmonisation_lines(repo: AgreementRepository) -> list[str]:
    """Per existing agreement system: the generic topics it still defines itself and those it refers."""
    if repo.harmonisation is None:
        return ["harmonisation: no harmonisation.yaml"]
    counts = harmonisation_summary(repo)
    lines = [f"harmonisation (updated {repo.harmonisation.updated}):"]
    for name, system in sorted(repo.harmonisation.systems.items()):
        c = counts[name]
        lines.append(f"  {name}: refers {c['refers']}, transition {c['transition']}, own {c['own']}")
        for status, label in (
            (HarmonisationStatus.OWN, "defines itself"),
            (HarmonisationStatus.TRANSITION, "in transition"),
            (HarmonisationStatus.REFERS, "refers to the LAS"),
        ):
            topics = [t for t, entry in system.topics.items() if entry.status is status]
            if topics:
                lines.append(f"    {label}: {', '.join(topics)}")
    return lines


@app.command()
def check(
    today: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Date for expiry checks (default: today).")
    ] = None,
    root: RootOption = None,
    as_json: JsonOption = False,
    network: Annotated[
        bool,
        typer.Option(
            "--network/--no-network",
            help="Also check that every parameter the ldn network reads is in the current and previous release.",
        ),
    ] = True,
) -> None:
    """Run every governance check; exit 1 when any problem is an error (all problems are listed)."""
    on = today.date() if today is not None else date.today()
    try:
        directory = root if root is not None else find_root()
        repo = AgreementRepository.load(directory)
    except AfsprakenError as exc:
        _fail(str(exc))
    problems: list[Problem] = run_checks(repo, on, repo.root.resolve().parent)
    if network:
        problems = sorted(
            [*problems, *check_network_parameters(repo)],
            key=lambda p: (p.severity != "error", p.location, p.code, p.message),
        )
    errors = [p for p in problems if p.is_error]
    warnings = [p for p in problems if not p.is_error]
    if as_json:
        _echo_json(
            {
                "root": str(repo.root),
                "today": on.isoformat(),
                "passes": not errors,
                "errors": len(errors),
                "warnings": len(warnings),
                "problems": [
                    {"severity": p.severity, "code": p.code, "location": p.location, "message": p.message}
                    for p in problems
                ],
                "harmonisation": harmonisation_summary(repo),
            }
        )
    else:
        for p in problems:
            typer.echo(str(p))
        if problems:
            typer.echo("")
        for line in harmonisation_lines(repo):
            typer.echo(line)
        typer.echo("")
        verdict = "FAILED" if errors else "passed"
        typer.echo(
            f"check {verdict}: {len(errors)} error(s), {len(warnings)} warning(s) in {len(repo)} agreements,"
            f" {len(repo.releases)} releases ({on})"
        )
    if errors:
        raise typer.Exit(1)


@app.command()
def releases(as_json: JsonOption = False, root: RootOption = None) -> None:
    """List the releases: version, date, status, validity (n-1) and compatibility with current."""
    service = _service(root)
    views = service.releases()
    if as_json:
        _echo_json(
            {
                "current": service.repo.current_release().version,
                "active": service.active_version,
                "releases": [release_summary(v) for v in views],
            }
        )
        return
    table = Table(title=f"LAS releases (active: {service.active_version})")
    for column in ("version", "date", "status", "agreements", "valid", "compatible", "title"):
        table.add_column(column, no_wrap=column != "title")
    for v in views:
        r = v.release.release
        table.add_row(
            r.version,
            r.date.isoformat(),
            r.status.value,
            str(len(v.release)),
            "yes" if v.valid else "no",
            "yes" if v.compatible_with_current else "no",
            r.title or "",
        )
    console.print(table)


@app.command()
def parameters(
    release: Annotated[str | None, typer.Option(help="Release x.y.z (default: the active release).")] = None,
    as_json: JsonOption = False,
    root: RootOption = None,
) -> None:
    """Governed parameters of a release; for the active one also what this process uses."""
    service = _service(root)
    shown = release or active_release(service.repo)
    try:
        rows = service.parameters(shown)
    except ServiceError as exc:
        _fail(exc.diagnostics)
    network = [p.to_dict() for p in network_parameters(service.repo)] if shown == service.active_version else []
    if as_json:
        _echo_json({"release": shown, "parameters": rows, "network": network})
        return
    table = Table(title=f"Governed parameters in LAS release {shown}")
    for column in ("parameter", "value", "unit", "agreement", "network"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], str(r["value"]), r["unit"], r["agreement"], "yes" if r["used_by_network"] else "")
    console.print(table)
    if network:
        used = Table(title="Read by the network (effective values in this process)")
        for column in ("parameter", "agreed", "setting", "effective", "state"):
            used.add_column(column)
        for p in network:
            used.add_row(p["name"], str(p["value"]), p["setting"] or "", str(p["effective"] or ""), p["state"])
        console.print(used)
