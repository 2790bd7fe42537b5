"""Assemble services into a running network: embedded (all in one process) or one alone.

`build_network` collects every component's `ServiceDefinition`s, works out each base URL,
creates the apps with one shared database, topology and HTTP client factory, and mounts them
under their prefixes on a root app. Calls between services on the same origin go through the
in-process ASGI transport. `serve` runs the root app with uvicorn and writes `var/network.json`
once the socket listens.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.routing import Mount

from ldn import __version__
from ldn.core.config import CoreSettings
from ldn.core.errors import install_error_handlers
from ldn.core.http import HttpClientFactory
from ldn.core.service import NetworkDirectory, RequestContextMiddleware, ServiceContext, ServiceDefinition
from ldn.core.storage import Database
from ldn.core.topology import Topology
from ldn.network.components import COMPONENTS

logger = logging.getLogger("ldn.network")


def all_definitions(topology: Topology) -> list[ServiceDefinition]:
    definitions: list[ServiceDefinition] = []
    for module_name in COMPONENTS:
        module = importlib.import_module(module_name)
        definitions.extend(module.service_definitions(topology))
    names = [d.name for d in definitions]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise RuntimeError(f"duplicate service names: {sorted(duplicates)}")
    return definitions


def build_directory(
    definitions: list[ServiceDefinition], topology: Topology, base_url: str, *, mounted: bool = True
) -> NetworkDirectory:
    """Directory entries for `definitions`; `mounted=False` when one service runs at the root."""
    directory = NetworkDirectory()
    for definition in definitions:
        url = f"{base_url}{definition.prefix}" if mounted else base_url
        if definition.kind == "node" and definition.node_ura:
            org = topology.organization(definition.node_ura)
            directory.nodes[definition.node_ura] = {"name": org.name, "base": url, "fhir": f"{url}/fhir"}
        else:
            directory.services[definition.name] = url
            operator = topology.operator_of(definition.name)
            if operator is not None:
                directory.national[definition.name] = {"ura": operator.ura, "name": operator.name}
    return directory


@dataclass
class Network:
    """A built network: the root app, the directory and the per-service apps."""

    app: FastAPI
    directory: NetworkDirectory
    apps: dict[str, FastAPI]
    definitions: list[ServiceDefinition]
    http: HttpClientFactory
    database: Database
    settings: CoreSettings
    topology: Topology


def build_network(
    settings: CoreSettings,
    topology: Topology,
    database: Database,
    *,
    base_url: str | None = None,
    only: str | None = None,
    known_directory: NetworkDirectory | None = None,
    extras: dict[str, Any] | None = None,
) -> Network:
    """Build the embedded network, or with `only`, a single service mounted at the root.

    For a single service, `known_directory` (usually read from `var/network.json`) tells it
    where the other services are; its own entry is replaced by its new URL.
    """
    base = (base_url or settings.base_url()).rstrip("/")
    definitions = all_definitions(topology)
    if only is not None:
        selected = [d for d in definitions if d.name == only]
        if not selected:
            raise LookupError(f"unknown service {only!r}; known: {', '.join(d.name for d in definitions)}")
        definitions = selected
    http = HttpClientFactory(timeout=settings.http_timeout)
    if only is None:
        directory = build_directory(definitions, topology, base)
    else:
        directory = known_directory or NetworkDirectory()
        own = build_directory(definitions, topology, base, mounted=False)
        directory.services.update(own.services)
        directory.nodes.update(own.nodes)
        directory.national.update(own.national)

    apps: dict[str, FastAPI] = {}
    routes = []
    for definition in definitions:
        prefix = "" if only is not None else definition.prefix
        ctx = ServiceContext(
            name=definition.name,
            base_url=f"{base}{prefix}",
            settings=settings,
            topology=topology,
            database=database,
            http=http,
            directory=directory,
            extras=dict(extras or {}),
        )
        app = definition.factory(ctx)
        apps[definition.name] = app
        if only is not None:
            root = app
            http.register_local(base, root)
            return Network(root, directory, apps, definitions, http, database, settings, topology)
        routes.append(Mount(definition.prefix, app=app, name=definition.name))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            try:
                yield
            finally:
                await http.aclose()

    root = FastAPI(
        title="ldn embedded network",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(root)

    @root.get("/", summary="Index of the network's services")
    async def index() -> dict[str, Any]:
        return {"name": topology.name, "version": __version__, **directory.to_json()}

    @root.get("/health", summary="Liveness of the embedded network process")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "services": len(apps)}

    root.router.routes.extend(routes)
    root.add_middleware(RequestContextMiddleware, service="network", max_body_bytes=settings.max_body_bytes)
    http.register_local(base, root)
    return Network(root, directory, apps, definitions, http, database, settings, topology)


def write_network_json(directory: NetworkDirectory, data_dir: Path) -> Path:
    """Write `network.json` atomically, so a reader never sees half a file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / "network.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(directory.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def read_network_json(data_dir: Path) -> NetworkDirectory | None:
    path = data_dir / "network.json"
    if not path.exists():
        return None
    return NetworkDirectory.from_json(json.loads(path.read_text(encoding="utf-8")))


async def serve(
    app: Any,
    *,
    host: str,
    port: int,
    on_started: Callable[[], None] | None = None,
    ssl_options: dict[str, Any] | None = None,
) -> None:
    """Run uvicorn until interrupted; call `on_started` once the socket accepts connections."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
        **(ssl_options or {}),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started and on_started is not None:
        on_started()
    await task
