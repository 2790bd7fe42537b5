"""The `ldn` command line: run the network, one service, migrations and the tools of each component.

Component command groups (for example `ldn pki`, `ldn afspraken`) are listed in
`COMMAND_GROUPS` and attached here, so the entry point stays one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ldn import __version__
from ldn.core.config import CoreSettings, settings_table_markdown
from ldn.core.logging import configure_logging
from ldn.core.storage import open_database
from ldn.core.topology import Topology, TopologyError, load_topology

# (command name, "module:attribute" of a typer.Typer) for each component's commands.
COMMAND_GROUPS: tuple[tuple[str, str], ...] = (
    ("prs", "ldn.localization.cli:prs_app"),
    ("nvi", "ldn.localization.cli:nvi_app"),
    ("afspraken", "ldn.afspraken.cli:app"),
    ("audit", "ldn.audit.cli:app"),
)

# Modules with a `register(app)` function, for components whose commands are not one group.
COMMAND_MODULES: tuple[str, ...] = ("ldn.auth.cli", "ldn.patterns.cli")

app = typer.Typer(
    name="ldn",
    help="ldn: the Dutch national health-data network (Landelijk dekkend netwerk) on one machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration reference.", no_args_is_help=True)
topology_app = typer.Typer(help="Network topology files.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(topology_app, name="topology")

# Wide enough that service URLs are never cut when output is not a terminal (logs, CI).
console = Console(width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, soft_wrap=True)

TopologyOption = Annotated[
    Path | None, typer.Option("--topology", help="Topology YAML (default: the one shipped with ldn).", exists=False)
]


def load_settings(**overrides: object) -> CoreSettings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return CoreSettings(**values)  # type: ignore[arg-type]


def load_topology_or_exit(path: Path | None) -> Topology:
    try:
        return load_topology(path)
    except TopologyError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def version() -> None:
    """Print the version of ldn."""
    console.print(f"ldn {__version__}")


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8080).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    topology: TopologyOption = None,
    tls: Annotated[
        bool, typer.Option("--tls", help="Serve with mutual TLS (client certificates from the test CA).")
    ] = False,
) -> None:
    """Start the whole network in one process: every service under its own path prefix."""
    from ldn.network.runtime import build_network, serve, write_network_json

    settings = load_settings(port=port, host=host, topology=topology)
    configure_logging(settings.log_level, settings.log_format)
    topo = load_topology_or_exit(settings.topology)
    database = open_database(settings.resolved_database_url(), echo=settings.sql_echo, upgrade=True)
    ssl_options = None
    if tls:
        from ldn.network.tls import enable_tls

        settings, ssl_options = enable_tls(settings, topo)
    network = build_network(settings, topo, database)
    if tls:
        from ldn.network.tls import protect_with_client_certificates

        protect_with_client_certificates(network, settings, topo)

    table = Table(title=f"ldn {__version__}: {topo.name} on {settings.base_url()}")
    table.add_column("service")
    table.add_column("operator / organisation")
    table.add_column("base URL", no_wrap=True, overflow="ignore")
    for name, url in network.directory.services.items():
        operator = network.directory.national.get(name, {})
        table.add_row(name, f"{operator.get('name', '')} {operator.get('ura', '')}".strip(), url)
    for ura, node in network.directory.nodes.items():
        table.add_row("node", f"{node['name']} {ura}", node["base"])
    console.print(table)

    def started() -> None:
        path = write_network_json(network.directory, settings.data_dir)
        console.print(f"[green]network up[/green]: {len(network.apps)} services; directory written to {path}")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(network.app, host=settings.host, port=settings.port, on_started=started, ssl_options=ssl_options)
        )


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="Service name, e.g. registry or node-00000020.")],
    port: Annotated[int, typer.Option(help="Port for this service alone.")] = 8090,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    topology: TopologyOption = None,
) -> None:
    """Run one service alone on its own port (it finds the others through var/network.json)."""
    from ldn.network.runtime import build_network, read_network_json
    from ldn.network.runtime import serve as run_server

    settings = load_settings(port=port, host=host, topology=topology)
    configure_logging(settings.log_level, settings.log_format)
    topo = load_topology_or_exit(settings.topology)
    database = open_database(settings.resolved_database_url(), echo=settings.sql_echo, upgrade=True)
    try:
        network = build_network(
            settings, topo, database, only=service, known_directory=read_network_json(settings.data_dir)
        )
    except LookupError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"serving [bold]{service}[/bold] at {settings.base_url()}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_server(network.app, host=settings.host, port=settings.port))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations (every component's branch) to the configured database."""
    settings = load_settings()
    database = open_database(settings.resolved_database_url())
    database.upgrade()
    console.print(f"database up to date: {', '.join(sorted(database.current_heads()))}")
    database.dispose()


@config_app.command("docs")
def config_docs(
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of standard output.")] = None,
) -> None:
    """Print (or write) the configuration reference for docs/CONFIGURATION.md."""
    text = render_configuration_doc()
    if output is None:
        console.print(text, markup=False, highlight=False)
    else:
        output.write_text(text, encoding="utf-8")


def render_configuration_doc() -> str:
    _load_command_groups_and_services()
    header = (
        "# Configuration\n\n"
        "Every setting is an environment variable. This file is generated by `ldn config docs "
        "--output docs/CONFIGURATION.md`; a test fails when it is out of date.\n\n"
    )
    return header + settings_table_markdown()


@topology_app.command("check")
def topology_check(
    path: Annotated[Path | None, typer.Argument(help="Topology file (default: shipped).")] = None,
) -> None:
    """Validate a topology file and list every problem with its line."""
    topo = load_topology_or_exit(path)
    console.print(
        f"[green]ok[/green]: {len(topo.national)} national organisations, {len(topo.organizations)} "
        f"participants, {len(topo.citizens)} citizens"
    )


def _load_command_groups_and_services() -> None:
    """Import every component's `settings` module so that all settings classes are registered,
    whatever else happens to be imported (the reference must not depend on import order)."""
    import pkgutil

    import ldn

    for module in pkgutil.iter_modules(ldn.__path__):
        if module.ispkg:
            try:
                importlib.import_module(f"ldn.{module.name}.settings")
            except ModuleNotFoundError as exc:
                if exc.name != f"ldn.{module.name}.settings":
                    raise


for _name, _target in COMMAND_GROUPS:
    _module, _attr = _target.split(":")
    app.add_typer(getattr(importlib.import_module(_module), _attr), name=_name)


for _module_name in COMMAND_MODULES:
    importlib.import_module(_module_name).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
