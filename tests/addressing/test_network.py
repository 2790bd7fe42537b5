"""Addressing in the embedded network, with real tokens: scopes, mandates, and each node's replica."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ldn.addressing.replica import ReplicaLookups, lookups_for
from tests.addressing.factories import endpoint, mandate
from tests.auth_helpers import token_for


async def auth(client: httpx.AsyncClient, network, org: str, scope: str, method: str, url: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    token = await token_for(client, network, org=org, scope=scope)
    return {**token.headers(method, url), "Content-Type": "application/fhir+json"}


async def test_reading_and_writing_need_tokens_with_the_right_scope(network, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    mcsd = network.directory.service_url("mcsd")
    lrza = network.directory.service_url("lrza")
    url = f"{mcsd}/Organization"
    assert (await client.get(url)).status_code == 401
    bogus = await client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert bogus.status_code == 401
    wrong_scope = await client.get(url, headers=await auth(client, network, "00000020", "nvi:read", "GET", url))
    assert wrong_scope.status_code == 403
    ok = await client.get(url, headers=await auth(client, network, "00000020", "mcsd:read", "GET", url))
    assert ok.status_code == 200 and ok.json()["total"] == 6
    register = await client.get(
        f"{lrza}/Organization/00000040",
        headers=await auth(client, network, "00000020", "lrza:read", "GET", f"{lrza}/Organization/00000040"),
    )
    assert register.status_code == 200 and register.json()["name"] == "Ziekenhuis Rijnstad"
    write_url = f"{mcsd}/Endpoint"
    read_only = await client.post(
        write_url,
        headers=await auth(client, network, "00000040", "mcsd:read", "POST", write_url),
        json=endpoint("e", owner_org="org-00000040"),
    )
    assert read_only.status_code == 403
    assert read_only.json()["error"] == "insufficient_scope"


async def test_mandate_allowed_and_refused_with_real_tokens(network, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    mcsd = network.directory.service_url("mcsd")
    create = f"{mcsd}/Endpoint"
    body = endpoint("e", owner_org="org-00000040", address="https://partner.example/fhir")
    refused = await client.post(
        create, headers=await auth(client, network, "00000050", "mcsd:write", "POST", create), json=body
    )
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "no-mandate"
    mandate_url = f"{mcsd}/OrganizationAffiliation/m-40-50"
    granted = await client.put(
        mandate_url,
        headers=await auth(client, network, "00000040", "mcsd:write", "PUT", mandate_url),
        json=mandate("m-40-50", "org-00000040", "00000050"),
    )
    assert granted.status_code == 201, granted.text
    allowed = await client.post(
        create, headers=await auth(client, network, "00000050", "mcsd:write", "POST", create), json=body
    )
    assert allowed.status_code == 201, allowed.text
    still_refused = await client.post(
        create, headers=await auth(client, network, "00000060", "mcsd:write", "POST", create), json=body
    )
    assert still_refused.status_code == 403


async def test_every_node_runs_a_replica_with_lookups(network, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    # The nodes started their update clients with the network; force one run each and wait.
    for ura in network.directory.nodes:
        app = network.apps[f"node-{ura}"]
        lookups = lookups_for(app.state.ctx)
        assert isinstance(lookups, ReplicaLookups) and app.state.addressing is lookups
        syncer = app.state.ctx.extras["addressing_syncer"]
        await asyncio.wait_for(syncer.sync_once(), timeout=60)
    lookups = lookups_for(network.apps["node-00000020"].state.ctx)
    hospital = network.directory.nodes["00000040"]
    assert await lookups.fhir_base("00000040") == hospital["fhir"]
    assert await lookups.notification_endpoint("00000040") == f"{hospital['fhir']}/Task"
    assert await lookups.token_endpoint("00000040") == f"{hospital['base']}/auth/token"
    pharmacies = await lookups.services("farmaceutische-zorg")
    assert [s.organization_ura for s in pharmacies] == ["00000050"]
    status = await lookups.status()
    assert status.ready and status.resources == 36


@pytest.mark.parametrize("path", ["/lrza/health", "/mcsd/health", "/mcsd/metadata", "/lrza/metadata"])
async def test_services_are_mounted(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200


async def test_a_replayed_dpop_proof_is_refused(network, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    url = f"{network.directory.service_url('mcsd')}/Organization/org-00000040"
    token = await token_for(client, network, org="00000030", scope="mcsd:read", dpop=True)
    headers = token.headers("GET", url)
    first = await client.get(url, headers=headers)
    assert first.status_code == 200
    replay = await client.get(url, headers=headers)
    assert replay.status_code == 401
