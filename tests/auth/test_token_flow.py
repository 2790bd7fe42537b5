"""The token service end to end: happy paths, binding, introspection, and the resource-server helper."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ldn.auth.client import TokenRequestError
from tests.auth_helpers import citizen_token_for, token_client, token_endpoint, token_for


async def test_bearer_token_then_call_a_service(client: httpx.AsyncClient, network: Any, probe_url: str) -> None:
    token = await token_for(
        client, network, org="00000020", scope="nvi:read mcsd:read", user="900000011", patient="999990019"
    )
    assert token.token_type == "Bearer"
    response = await client.get(probe_url, headers=token.headers("GET", probe_url))
    assert response.status_code == 200, response.text
    caller = response.json()
    assert caller["organization_ura"] == "00000020"
    assert caller["organization_name"] == "Huisartsenpraktijk De Linde"
    assert caller["user_id"] == "900000011"
    assert caller["user_role"] == "01.015"
    assert caller["user_assurance"] == "organization"
    assert caller["patient"] == "999990019"
    assert caller["scopes"] == ["mcsd:read", "nvi:read"]


async def test_dezi_declaration_and_dpop_binding(client: httpx.AsyncClient, network: Any, probe_url: str) -> None:
    token = await token_for(client, network, org="00000040", scope="nvi:read", user="900000031", dezi=True, dpop=True)
    assert token.token_type == "DPoP"
    response = await client.get(probe_url, headers=token.headers("GET", probe_url))
    assert response.status_code == 200, response.text
    assert response.json()["user_assurance"] == "dezi"
    assert response.json()["user_name"] == "S. van Dijk"
    # The same token without its proof, or as a plain Bearer token, is refused.
    bare = await client.get(probe_url, headers={"Authorization": f"DPoP {token.value}"})
    assert bare.status_code == 401
    assert bare.json()["error"] == "invalid_dpop_proof"
    as_bearer = await client.get(probe_url, headers={"Authorization": f"Bearer {token.value}"})
    assert as_bearer.status_code == 401
    assert as_bearer.json()["error"] == "invalid_token"


async def test_introspection_answers_the_spec_claims(client: httpx.AsyncClient, network: Any) -> None:
    token = await token_for(
        client,
        network,
        org="00000020",
        scope="nvi:read",
        user="900000011",
        dpop=True,
        patient="999990019",
        authorization_base="referral-123",
    )
    introspecting = token_client(client, network, "90000901")
    url = f"{network.directory.service_url('auth')}/introspect"
    form = {
        "token": token.value,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": introspecting.client_assertion(url),
    }
    data = (await client.post(url, data=form)).json()
    assert data["active"] is True
    for claim in (
        "client_id",
        "scope",
        "exp",
        "iat",
        "iss",
        "organization_ura",
        "organization_name",
        "user_id",
        "user_role",
        "patient",
        "cnf",
    ):
        assert claim in data, claim
    assert data["exp"] - data["iat"] <= 900
    assert data["authorization_base"] == "referral-123"
    assert "jkt" in data["cnf"]
    # unknown tokens are simply inactive
    form["client_assertion"] = introspecting.client_assertion(url)
    form["token"] = "not-a-token"
    assert (await client.post(url, data=form)).json() == {"active": False}


async def test_introspection_requires_client_authentication(client: httpx.AsyncClient, network: Any) -> None:
    url = f"{network.directory.service_url('auth')}/introspect"
    response = await client.post(url, data={"token": "x"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_metadata_and_jwks(client: httpx.AsyncClient, network: Any) -> None:
    base = network.directory.service_url("auth")
    metadata = (await client.get(f"{base}/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == base
    assert metadata["token_endpoint"] == f"{base}/token"
    assert "urn:ietf:params:oauth:grant-type:jwt-bearer" in metadata["grant_types_supported"]
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]
    jwks = (await client.get(metadata["jwks_uri"])).json()
    assert jwks["keys"][0]["kty"] == "EC"
    assert "d" not in jwks["keys"][0]
    node_meta = (
        await client.get(f"{network.directory.node_url('00000040')}/auth/.well-known/oauth-authorization-server")
    ).json()
    assert node_meta["issuer"].endswith("/nodes/00000040/auth")


async def test_node_tokens_only_work_at_that_node(client: httpx.AsyncClient, network: Any) -> None:
    token = await token_for(client, network, org="00000020", scope="fhir:read", audience="00000040", user="900000011")
    own = f"{network.directory.node_url('00000040')}/auth/whoami"
    other = f"{network.directory.node_url('00000050')}/auth/whoami"
    national = f"{network.directory.service_url('auth')}/whoami"
    assert (await client.get(own, headers=token.headers("GET", own))).status_code == 200
    assert (await client.get(other, headers=token.headers("GET", other))).status_code == 401
    assert (await client.get(national, headers=token.headers("GET", national))).status_code == 401


async def test_scope_not_granted_is_insufficient_scope(client: httpx.AsyncClient, network: Any, probe_url: str) -> None:
    token = await token_for(client, network, org="00000020", scope="mcsd:read")
    response = await client.get(probe_url, headers=token.headers("GET", probe_url))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_scope_not_allowed_for_client_is_invalid_scope(client: httpx.AsyncClient, network: Any) -> None:
    with pytest.raises(TokenRequestError) as info:
        await token_for(client, network, org="00000020", scope="prs:admin")
    assert info.value.error == "invalid_scope"
    # ...while the operator of the PRS may have it
    token = await token_for(client, network, org="90000902", scope="prs:admin")
    assert token.scope == "prs:admin"
    # national operators have no business at a care-provider node
    with pytest.raises(TokenRequestError) as info:
        await token_for(client, network, org="90000902", scope="fhir:read", audience="00000020")
    assert info.value.error == "invalid_scope"


async def test_token_after_expiry_is_refused(client: httpx.AsyncClient, network: Any, probe_url: str) -> None:
    """A token whose exp has passed is inactive at introspection and refused by the resource server."""
    import json
    import time

    from sqlalchemy import update

    from ldn.auth.tables import access_tokens
    from ldn.auth.token_service import token_hash

    token = await token_for(client, network, org="00000020", scope="nvi:read")
    with network.database.transaction() as session:
        row = session.execute(access_tokens.select().where(access_tokens.c.token_hash == token_hash(token.value))).one()
        claims = json.loads(row.claims)
        claims["exp"] = int(time.time()) - 1  # as if 15 minutes had passed
        session.execute(
            update(access_tokens).where(access_tokens.c.token_hash == row.token_hash).values(claims=json.dumps(claims))
        )
    response = await client.get(probe_url, headers=token.headers("GET", probe_url))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "not active" in response.json()["error_description"]


async def test_missing_or_malformed_authorization(client: httpx.AsyncClient, probe_url: str) -> None:
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer a b"},
        {"Authorization": "Bearer " + "x" * 5000},
    ):
        response = await client.get(probe_url, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_citizen_login(client: httpx.AsyncClient, network: Any) -> None:
    token = await citizen_token_for(client, network, "999990019")
    url = f"{network.directory.service_url('auth')}/whoami"
    me = (await client.get(url, headers=token.headers("GET", url))).json()
    assert me["scopes"] == ["citizen"]
    assert "999990019" not in str(me)  # whoami never echoes a BSN
    refused = await client.post(f"{network.directory.service_url('auth')}/citizen/token", data={"bsn": "999990018"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


async def test_token_cache_reuses_until_expiry(client: httpx.AsyncClient, network: Any) -> None:
    tokens = token_client(client, network, "00000020")
    endpoint = token_endpoint(network, "auth")
    first = await tokens.token(endpoint, "nvi:read", patient="999990019")
    assert await tokens.token(endpoint, "nvi:read", patient="999990019") is first
    other_patient = await tokens.token(endpoint, "nvi:read", patient="999990020")
    assert other_patient.value != first.value
