"""Fixtures for the communication patterns: one embedded network per test module, ready to use.

Building a network, loading every node's address book and registering every node's holdings at the
NVI takes a few seconds, so each module shares one (`net`, `driver`); tests in a module use
different citizens where they change consent or referral state, so their order does not matter.
Modules using them are marked ``pytestmark = pytest.mark.asyncio(loop_scope="module")``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from ldn.core.topology import load_topology
from ldn.patterns.driver import NetworkDriver
from tests.conftest import BACKEND, NETWORK_BASE

# The default topology, as the patterns use it.
GP, GP2, HOSPITAL, PHARMACY, NURSING, GGZ = "00000020", "00000030", "00000040", "00000050", "00000060", "00000070"
GP_DOCTOR = "900000011"  # huisarts at GP
GP2_DOCTOR = "900000021"  # huisarts at GP2
INTERNIST = "900000031"  # hospital
PHARMACIST = "900000041"  # pharmacy
PSYCHOTHERAPIST = "900000061"  # GGZ
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def net(
    _template_database: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    from ldn.network.runtime import build_network

    directory = tmp_path_factory.mktemp("patterns")
    pg: Any = None
    name = ""
    if BACKEND == "postgres":
        pg = request.getfixturevalue("postgres")
        name = f"ldn_p_{uuid.uuid4().hex[:12]}"
        url = pg.create(name, template=_template_database)
    else:
        shutil.copyfile(_template_database, directory / "ldn.db")
        url = f"sqlite:///{directory / 'ldn.db'}"
    database = Database(url)
    settings = CoreSettings(data_dir=directory / "var", database_url=url, log_format="json")
    network = build_network(settings, load_topology(), database, base_url=NETWORK_BASE)
    try:
        async with network.app.router.lifespan_context(network.app):
            yield network
    finally:
        database.dispose()
        if pg is not None:
            pg.drop(name)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(net: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=net.app, raise_app_exceptions=False), base_url=NETWORK_BASE, timeout=30
    ) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def driver(net: Any, http: httpx.AsyncClient) -> NetworkDriver:
    made = NetworkDriver(net, http)
    await made.ready()
    return made


def statuses(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """URA -> {status, reasons, text} of a query answer (asserting it is a 200 Bundle)."""
    from ldn.patterns.raadplegen import holder_statuses

    assert response.status_code == 200, response.text
    return holder_statuses(response.json())


def resources(bundle: dict[str, Any], resource_type: str | None = None) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if (e.get("search") or {}).get("mode") == "match"
        and (resource_type is None or e["resource"]["resourceType"] == resource_type)
    ]


def details(response: httpx.Response) -> str:
    """The details code of an OperationOutcome answer."""
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["details"]["coding"][0]["code"])


def node_ctx(net: Any, ura: str) -> Any:
    return net.apps[f"node-{ura}"].state.ctx
