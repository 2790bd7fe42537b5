from __future__ import annotations

import httpx

from tests.auth_helpers import citizen_token_for, token_for


async def test_smoke(client: httpx.AsyncClient, network) -> None:  # type: ignore[no-untyped-def]
    t = await token_for(client, network, org="00000020", scope="nvi:read", user="900000011")
    assert t.token_type == "Bearer"
    t2 = await token_for(
        client,
        network,
        org="00000020",
        scope="fhir:read",
        audience="00000040",
        user="900000011",
        dezi=True,
        dpop=True,
        patient="999990019",
    )
    assert t2.token_type == "DPoP"
    c = await citizen_token_for(client, network, "999990019")
    assert c.value
