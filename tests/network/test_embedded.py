"""The embedded network: every service mounted and healthy, the directory in the agreed shape."""

from __future__ import annotations

import httpx

from tests.conftest import NETWORK_BASE


async def test_every_service_and_node_is_healthy(network, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    directory = network.directory
    assert "registry" in directory.services
    urls = list(directory.services.values()) + [n["base"] for n in directory.nodes.values()]
    for url in urls:
        response = await client.get(f"{url}/health")
        assert response.status_code == 200, url
        assert response.json()["status"] == "ok"
        assert response.json()["checks"]["database"] == "ok"


async def test_directory_shape(network, topology) -> None:  # type: ignore[no-untyped-def]
    data = network.directory.to_json()
    assert set(data) == {"services", "nodes", "national"}
    assert data["services"]["registry"] == f"{NETWORK_BASE}/registry"
    assert set(data["nodes"]) == {o.ura for o in topology.organizations}
    node = data["nodes"]["00000020"]
    assert node["name"] == "Huisartsenpraktijk De Linde"
    assert node["base"] == f"{NETWORK_BASE}/nodes/00000020"
    for name, entry in data["national"].items():
        assert entry["ura"] == topology.operator_of(name).ura


async def test_registry_lists_organisations_but_no_citizens(client: httpx.AsyncClient, topology) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/registry/organizations")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == len(topology.national) + len(topology.organizations)
    for citizen in topology.citizens:
        assert citizen.bsn not in response.text
    one = await client.get("/registry/organizations/00000040")
    assert one.json()["name"] == "Ziekenhuis Rijnstad"
    missing = await client.get("/registry/organizations/12345678")
    assert missing.status_code == 404


async def test_fhir_services_publish_a_capability_statement(client: httpx.AsyncClient) -> None:
    response = await client.get("/nodes/00000040/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json()["resourceType"] == "CapabilityStatement"
    plain = await client.get("/registry/metadata")
    assert plain.json()["service"] == "registry"
