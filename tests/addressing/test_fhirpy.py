"""A real FHIR client library (fhirpy) against the directory, over a real loopback socket.

fhirpy speaks aiohttp only, so the embedded network runs under uvicorn on a free port in a
background thread for this file.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, MultipleResourcesFound, OperationOutcome, ResourceNotFound

from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from ldn.core.topology import Topology
from tests.auth_helpers import token_for


@pytest.fixture
def live(settings: CoreSettings, topology: Topology, database: Database) -> Iterator[Any]:
    from ldn.network.runtime import build_network

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    net = build_network(settings, topology, database, base_url=base)
    server = uvicorn.Server(uvicorn.Config(net.app, lifespan="on", log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield net
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


async def fhir_client(live: Any, org: str, scope: str, **headers: str) -> AsyncFHIRClient:
    async with httpx.AsyncClient(timeout=30) as http:
        token = await token_for(http, live, org=org, scope=scope)
    return AsyncFHIRClient(
        live.directory.service_url("mcsd"),
        authorization=f"Bearer {token.value}",
        extra_headers={"Accept": "application/fhir+json", **headers},
    )


@pytest.mark.slow
async def test_fhirpy_queries_and_writes_the_directory(live: Any) -> None:
    reader = await fhir_client(live, "00000020", "mcsd:read")
    hospital = await reader.resources("Organization").search(identifier="00000040").get()
    assert hospital["name"] == "Ziekenhuis Rijnstad"
    assert hospital["meta"]["versionId"] == "1"

    endpoints = await reader.resources("Endpoint").limit(5).fetch_all()  # follows `next` links
    assert len(endpoints) == 18 and len({e["id"] for e in endpoints}) == 18
    assert await reader.resources("Endpoint").search(status="active").count() == 18

    bundle = (
        await reader.resources("HealthcareService")
        .search(**{"service-type": "verwijzing-ontvangen"})
        .include("HealthcareService", "endpoint")
        .fetch_raw()
    )
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("HealthcareService") == 6 and kinds.count("Endpoint") == 6

    read = await reader.get("Endpoint", "ep-00000040-notification")
    assert read["address"].endswith("/nodes/00000040/fhir/Task")
    with pytest.raises(ResourceNotFound):
        await reader.get("Organization", "does-not-exist")
    with pytest.raises(OperationOutcome):
        await reader.resources("Organization").search(_count="5000").fetch()

    writer = await fhir_client(live, "00000040", "mcsd:read mcsd:write")
    department = writer.resource(
        "Organization", name="Polikliniek Cardiologie", active=True, partOf={"reference": "Organization/org-00000040"}
    )
    await department.save()
    assert department["id"] and department["meta"]["versionId"] == "1"
    department["name"] = "Poli Cardiologie"
    # fhirpy sends no If-Match of its own; the directory requires it for updates (LAS-TA-ADDR-002).
    with pytest.raises(OperationOutcome, match="If-Match"):
        await department.save()
    locking = await fhir_client(live, "00000040", "mcsd:read mcsd:write", **{"If-Match": 'W/"1"'})
    update = locking.resource("Organization", **department.serialize())
    await update.save()
    assert update["meta"]["versionId"] == "2"
    # The same If-Match again: version 1 is no longer current. fhirpy reads any 412 as the
    # conditional-update "multiple matches"; the body says what happened.
    with pytest.raises(MultipleResourcesFound, match="version-conflict"):
        await update.save()
    found = await reader.resources("Organization").search(partof="Organization/org-00000040").fetch()
    assert [o["name"] for o in found] == ["Poli Cardiologie"]
    history = await reader.execute(f"Organization/{department['id']}/_history", method="get")
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]

    intruder = await fhir_client(live, "00000030", "mcsd:write mcsd:read")
    foreign = intruder.resource("Organization", name="Niet van mij", partOf={"reference": "Organization/org-00000040"})
    with pytest.raises(ForbiddenError, match="no-mandate"):
        await foreign.save()
