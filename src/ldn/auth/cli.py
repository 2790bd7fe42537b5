"""Commands of the authentication function: `ldn pki`, `ldn dezi` and `ldn token`."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from ldn.auth.client import TokenClient, TokenRequestError
from ldn.auth.dezi_service import dezi_issuer, issue_declaration_for, revoke_declaration
from ldn.auth.settings import AuthSettings
from ldn.auth.trust_store import ensure_pki, trust_store
from ldn.core.config import CoreSettings
from ldn.core.identifiers import URA, IdentifierError
from ldn.core.service import NetworkDirectory
from ldn.core.storage import open_database
from ldn.core.topology import Topology, load_topology

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

pki_app = typer.Typer(help="The test PKI (UZI-format server certificates).", no_args_is_help=True)
dezi_app = typer.Typer(help="The Dezi test identity provider.", no_args_is_help=True)


def _settings() -> tuple[CoreSettings, AuthSettings, Topology]:
    core = CoreSettings()
    return core, AuthSettings(), load_topology(core.topology)


@pki_app.command("init")
def pki_init() -> None:
    """Create the CA and a certificate for every organisation (idempotent)."""
    core, auth, topology = _settings()
    directory = auth.resolved_pki_dir(core.data_dir)
    pki = ensure_pki(directory, topology)
    console.print(f"PKI ready in {directory}: {len(pki.records)} certificate(s), CRL number {pki.crl_number}")


@pki_app.command("revoke")
def pki_revoke(
    ura: Annotated[str, typer.Argument(help="URA of the organisation whose certificate to revoke.")],
) -> None:
    """Revoke an organisation's certificate and publish a new CRL (a running network picks it up)."""
    core, auth, topology = _settings()
    try:
        URA.parse(ura)
    except IdentifierError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    pki = ensure_pki(auth.resolved_pki_dir(core.data_dir), topology)
    serials = pki.revoke_ura(ura)
    if not serials:
        err.print(f"[yellow]no valid certificate for URA {ura}[/yellow]")
        raise typer.Exit(1)
    pki.make_crl()
    console.print(f"revoked {len(serials)} certificate(s) of {ura}; CRL number {pki.crl_number}")


@dezi_app.command("revoke")
def dezi_revoke(verklaring_id: Annotated[str, typer.Argument(help="verklaring_id of the declaration.")]) -> None:
    """Revoke a Dezi declaration; verifiers see it at its status URI at once."""
    core = CoreSettings()
    database = open_database(core.resolved_database_url(), upgrade=True)
    if revoke_declaration(database, verklaring_id):
        console.print(f"declaration {verklaring_id} revoked")
    else:
        console.print(f"declaration {verklaring_id} was already revoked")


@dezi_app.command("declaration")
def dezi_declaration(uzi: Annotated[str, typer.Argument(help="UZI/Dezi number of a topology professional.")]) -> None:
    """Print a signed declaration for a professional (test helper; the browser login gives the same)."""
    core, _, topology = _settings()
    directory = _directory(core)
    try:
        console.print(issue_declaration_for(dezi_issuer(core.data_dir, directory.service_url("dezi")), topology, uzi))
    except KeyError:
        err.print(f"[red]no professional with UZI number {uzi}[/red]")
        raise typer.Exit(2) from None


def _directory(core: CoreSettings) -> NetworkDirectory:
    path = core.data_dir / "network.json"
    if not path.exists():
        err.print(f"[red]{path} not found: start the network first (ldn up)[/red]")
        raise typer.Exit(2)
    return NetworkDirectory.from_json(json.loads(path.read_text(encoding="utf-8")))


def resolve_token_endpoint(directory: NetworkDirectory, aud: str) -> str:
    """The token endpoint for an audience: a node URA or node URL means that node's own
    authorization server; a national service name or URL means the national one."""
    if aud in directory.nodes:
        return f"{directory.nodes[aud]['base']}/auth/token"
    if aud.startswith(("http://", "https://")):
        for node in directory.nodes.values():
            if aud.startswith(node["base"]):
                return f"{node['base']}/auth/token"
        if not any(aud.startswith(url) for url in directory.services.values()):
            raise LookupError(f"{aud} is not a service of this network")
        return f"{directory.service_url('auth')}/token"
    directory.service_url(aud)  # must be a known service
    return f"{directory.service_url('auth')}/token"


async def _obtain(core: CoreSettings, auth: AuthSettings, topology: Topology, args: dict[str, Any]) -> dict[str, Any]:
    directory = _directory(core)
    endpoint = resolve_token_endpoint(directory, args["aud"])
    store = trust_store(auth.resolved_pki_dir(core.data_dir), topology)
    credential = store.credential(args["org"])
    verify: ssl.SSLContext | bool = True
    if endpoint.startswith("https://"):
        verify = ssl.create_default_context(cafile=str(store.ca_bundle))
        verify.load_cert_chain(str(credential.chain_file), str(credential.key_file))
    declaration = None
    if args["user"]:
        declaration = issue_declaration_for(
            dezi_issuer(core.data_dir, directory.service_url("dezi")), topology, args["user"]
        )
    async with httpx.AsyncClient(verify=verify, timeout=core.http_timeout) as http:
        tokens = TokenClient(credential, http, use_dpop=args["dpop"])
        token = await tokens.token(endpoint, args["scope"], patient=args["patient"], dezi_declaration=declaration)
    answer: dict[str, Any] = {
        "access_token": token.value,
        "token_type": token.token_type,
        "scope": token.scope,
        "expires_at": int(token.expires_at),
        "token_endpoint": endpoint,
    }
    return answer


def token_command(
    org: Annotated[str, typer.Option("--org", help="URA of the organisation asking.")],
    aud: Annotated[str, typer.Option("--aud", help="Service name (e.g. nvi), service URL, or a node's URA.")],
    scope: Annotated[str, typer.Option("--scope", help="Space-separated scopes.")],
    user: Annotated[str | None, typer.Option("--as", help="UZI number of the professional acting.")] = None,
    patient: Annotated[str | None, typer.Option("--patient", help="BSN the token is bound to.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole token response.")] = False,
    dpop: Annotated[bool, typer.Option("--dpop", help="Bind the token to a DPoP key (not usable from curl).")] = False,
) -> None:
    """Run the real token flow against the running network and print the access token."""
    core, auth, topology = _settings()
    try:
        answer = asyncio.run(
            _obtain(
                core,
                auth,
                topology,
                {"org": org, "aud": aud, "scope": scope, "user": user, "patient": patient, "dpop": dpop},
            )
        )
    except TokenRequestError as exc:
        err.print(f"[red]refused: {exc.error}: {exc.description}[/red]")
        raise typer.Exit(1) from None
    except (LookupError, KeyError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except httpx.HTTPError as exc:
        err.print(f"[red]network not reachable: {exc.__class__.__name__}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(data=answer)
    else:
        print(answer["access_token"])


def register(app: typer.Typer) -> None:
    app.add_typer(pki_app, name="pki")
    app.add_typer(dezi_app, name="dezi")
    app.command("token")(token_command)
