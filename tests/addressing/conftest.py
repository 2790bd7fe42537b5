"""Fixtures for addressing: a fast LRZa + mCSD stack in process, with a stand-in for the token check.

`stack` mounts the real LRZa and mCSD apps (real routers, service layer, storage, publication)
under one origin; only `require_caller` is replaced, by a function that takes the calling
organisation from an `X-Test-Org` header. Tests of authentication itself use the embedded network
with real tokens (test_network.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.routing import Mount

from ldn.addressing import api_lrza, api_mcsd
from ldn.addressing.directory import DirectoryService
from ldn.addressing.service import create_lrza_app, create_mcsd_app
from ldn.auth.resource_server import Caller
from ldn.core.config import CoreSettings
from ldn.core.errors import OAuthError
from ldn.core.http import HttpClientFactory
from ldn.core.service import NetworkDirectory, ServiceContext
from ldn.core.storage import Database
from ldn.core.topology import Topology

BASE = "http://addressing.test"
MCSD = f"{BASE}/mcsd"
LRZA = f"{BASE}/lrza"
ALL_SCOPES = frozenset({"mcsd:read", "mcsd:write", "lrza:read"})


async def test_caller(request: Request) -> Caller:
    org = request.headers.get("x-test-org")
    if not org:
        raise OAuthError("invalid_token", "no access token", scheme="Bearer")
    scopes = request.headers.get("x-test-scopes")
    return Caller(
        client_id=org,
        organization_ura=org,
        organization_name=f"org {org}",
        scopes=frozenset(scopes.split()) if scopes else ALL_SCOPES,
    )


def as_org(ura: str) -> dict[str, str]:
    return {"X-Test-Org": ura}


def if_match(resource: dict[str, Any]) -> dict[str, str]:
    """The `If-Match` header for changing `resource` as it was read (LAS-TA-ADDR-002)."""
    return {"If-Match": f'W/"{resource["meta"]["versionId"]}"'}


@dataclass
class Stack:
    app: Any
    mcsd_app: FastAPI
    lrza_app: FastAPI
    database: Database
    directory: NetworkDirectory
    client: httpx.AsyncClient
    service: DirectoryService

    def http(self, org: str = "00000020") -> httpx.AsyncClient:
        """A client that calls as organisation `org` (for the replica under test)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=BASE, headers=as_org(org), timeout=30
        )


def network_directory(topology: Topology) -> NetworkDirectory:
    directory = NetworkDirectory(services={"mcsd": MCSD, "lrza": LRZA})
    for org in topology.organizations:
        node = f"{BASE}/nodes/{org.ura}"
        directory.nodes[org.ura] = {"name": org.name, "base": node, "fhir": f"{node}/fhir"}
    return directory


def build_stack_apps(
    settings: CoreSettings, topology: Topology, database: Database
) -> tuple[Any, FastAPI, FastAPI, NetworkDirectory]:
    directory = network_directory(topology)
    http = HttpClientFactory()

    def ctx(name: str, url: str) -> ServiceContext:
        return ServiceContext(name, url, settings, topology, database, http, directory)

    mcsd_app = create_mcsd_app(ctx("mcsd", MCSD))
    lrza_app = create_lrza_app(ctx("lrza", LRZA))
    mcsd_app.dependency_overrides[api_mcsd.MCSD_READ] = test_caller
    mcsd_app.dependency_overrides[api_mcsd.MCSD_WRITE] = test_caller
    lrza_app.dependency_overrides[api_lrza.LRZA_READ] = test_caller
    root = Starlette(routes=[Mount("/lrza", app=lrza_app), Mount("/mcsd", app=mcsd_app)])
    return root, mcsd_app, lrza_app, directory


@pytest.fixture
async def stack(settings: CoreSettings, topology: Topology, database: Database) -> AsyncIterator[Stack]:
    root, mcsd_app, lrza_app, directory = build_stack_apps(settings, topology, database)
    async with AsyncExitStack() as exit_stack:
        for app in (lrza_app, mcsd_app):
            await exit_stack.enter_async_context(app.router.lifespan_context(app))
        client = await exit_stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=root, raise_app_exceptions=False), base_url=BASE)
        )
        service = mcsd_app.state.ctx.extras["mcsd_directory"]
        yield Stack(root, mcsd_app, lrza_app, database, directory, client, service)
