"""`ldn prs ...` and `ldn nvi ...`: key administration of the localization services.

They work on the configured database and key material directly (like `ldn db upgrade`), so run
them where the services' data directory and database are reachable; a running service notices
the change within its cache interval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ldn.core.config import CoreSettings
from ldn.core.errors import ServiceError
from ldn.core.storage import Database, open_database
from ldn.localization.nvi import store as nvi_store
from ldn.localization.nvi.keys import NviKeyMaterial
from ldn.localization.nvi.rekey import rekey
from ldn.localization.prs.keys import PrsKeyring, load_master_secret
from ldn.localization.prs.service import PrsService
from ldn.localization.settings import NviSettings, PrsSettings

prs_app = typer.Typer(help="Pseudonymisation service (PRS): recipients and OPRF key versions.", no_args_is_help=True)
nvi_app = typer.Typer(help="National referral index (NVI): storage keys and records.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

RecipientArg = Annotated[str, typer.Argument(help="Recipient organisation, e.g. ura:90000901.")]
ScopeOption = Annotated[
    str | None, typer.Option("--scope", help="Recipient scope (default: its only scope, e.g. nationale-verwijsindex).")
]


def _database() -> tuple[CoreSettings, Database]:
    settings = CoreSettings()
    return settings, open_database(settings.resolved_database_url(), upgrade=True)


def _prs_service() -> PrsService:
    settings, database = _database()
    prs_settings = PrsSettings()
    keyring = PrsKeyring(load_master_secret(prs_settings, settings.data_dir))
    return PrsService(database, keyring, prs_settings, prs_settings.resolved_recipients_dir(settings.data_dir))


def _fail(exc: ServiceError) -> typer.Exit:
    err_console.print(f"[red]{exc.diagnostics}[/red]")
    return typer.Exit(1)


def _resolve_scope(service: PrsService, organization: str, scope: str | None) -> str:
    if scope is not None:
        return scope
    scopes = [r.scope for r in service.recipients() if r.organization == organization]
    if len(scopes) != 1:
        err_console.print(f"[red]{organization} has {len(scopes)} registered scopes; name one with --scope[/red]")
        raise typer.Exit(2)
    return scopes[0]


@prs_app.command("recipients")
def prs_recipients() -> None:
    """List registered recipients and their key versions."""
    service = _prs_service()
    table = Table(title="PRS recipients")
    for column in ("organisation", "scope", "kid", "current", "key versions"):
        table.add_column(column)
    for r in service.recipients():
        versions = ", ".join(f"{v.version} ({v.status})" for v in r.versions)
        current = str(r.current_version) if r.active_versions else "-"
        table.add_row(r.organization, r.scope, r.kid, current, versions)
    console.print(table)


@prs_app.command("rotate")
def prs_rotate(recipient: RecipientArg, scope: ScopeOption = None) -> None:
    """Start a new OPRF key version for a recipient; older versions stay active until retired."""
    service = _prs_service()
    chosen = _resolve_scope(service, recipient, scope)
    try:
        version = service.rotate(recipient, chosen)
    except ServiceError as exc:
        raise _fail(exc) from None
    console.print(f"{recipient}|{chosen}: current OPRF key version is now [bold]{version}[/bold]")


@prs_app.command("retire")
def prs_retire(
    recipient: RecipientArg,
    version: Annotated[int, typer.Option("--version", help="The key version to retire.")],
    scope: ScopeOption = None,
) -> None:
    """End the transition of an old key version: evaluations under it are refused."""
    service = _prs_service()
    chosen = _resolve_scope(service, recipient, scope)
    try:
        service.retire(recipient, chosen, version)
    except ServiceError as exc:
        raise _fail(exc) from None
    console.print(f"{recipient}|{chosen}: key version {version} retired")


@prs_app.command("register")
def prs_register(
    recipient: RecipientArg,
    jwk: Annotated[Path, typer.Option("--jwk", help="File with the recipient's public P-256 JWK.")],
    scope: Annotated[str, typer.Option("--scope", help="Recipient scope.")],
) -> None:
    """Register (or update) a recipient's public key (the operator's bootstrap path)."""
    service = _prs_service()
    try:
        document = json.loads(jwk.read_text(encoding="utf-8"))
        registered, created = service.register_recipient(recipient, scope, document)
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]cannot read {jwk}: {exc}[/red]")
        raise typer.Exit(2) from None
    except ServiceError as exc:
        raise _fail(exc) from None
    console.print(f"{recipient}|{scope} {'registered' if created else 'updated'} (kid {registered.kid})")


def _nvi_material(settings: CoreSettings) -> NviKeyMaterial:
    return NviKeyMaterial(NviSettings().resolved_key_dir(settings.data_dir))


@nvi_app.command("rekey")
def nvi_rekey(
    grace_seconds: Annotated[
        float | None, typer.Option(help="Wait after publishing the new key (default from LDN_NVI_*).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per transaction.")] = None,
) -> None:
    """Rotate the storage key online: lookups keep working, no record is orphaned."""
    settings, database = _database()
    nvi = NviSettings()
    material = _nvi_material(settings)
    report = rekey(
        database,
        material,
        grace_seconds=nvi.resolved_rekey_grace() if grace_seconds is None else grace_seconds,
        batch_size=batch_size or nvi.rekey_batch_size,
        key_state_seconds=nvi.key_state_seconds,
        progress=lambda n: console.print(f"  {n} rows converted", end="\r") if n % 100000 == 0 else None,
    )
    console.print(
        f"storage key v{report.new_version} active (was {', '.join(f'v{v}' for v in report.old_versions)}): "
        f"{report.converted} rows converted, {report.merged_duplicates} duplicates merged, "
        f"{report.passes} pass(es), {report.seconds:.1f} s"
    )


@nvi_app.command("keys")
def nvi_keys() -> None:
    """Show storage key versions and how many records each keys."""
    _, database = _database()
    with database.transaction(readonly=True) as session:
        rows = nvi_store.storage_key_rows(session)
        counts = nvi_store.count_by_storage_version(session)
    table = Table(title="NVI storage keys")
    for column in ("version", "status", "created", "records"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row.version), row.status, row.created_at.isoformat(), str(counts.get(row.version, 0)))
    console.print(table)


@nvi_app.command("purge-oprf-version")
def nvi_purge(
    version: Annotated[str, typer.Argument(help="PRS key version whose records to delete (after re-registration).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete records registered under a retired PRS key version (after custodians re-registered)."""
    if not yes:
        typer.confirm(f"Delete every NVI record made under PRS key version {version}?", abort=True)
    _, database = _database()
    total = 0
    while True:
        with database.transaction() as session:
            deleted = nvi_store.purge_oprf_version_batch(session, version, 10000)
        total += deleted
        if deleted == 0:
            break
    console.print(f"deleted {total} record(s) of PRS key version {version}")
