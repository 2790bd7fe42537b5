"""Real tokens for tests: the full RFC 7523 flow against the embedded network's authorization servers.

    token = await token_for(client, network, org="00000020", scope="nvi:read", user="900000011")
    response = await client.get(url, headers=token.headers("GET", url))

`audience` is "auth" (the national authorization server, for national services) or a node's URA
(that node's own authorization server, for its FHIR API).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from ldn.auth.client import AccessToken, TokenClient
from ldn.auth.dezi_service import dezi_issuer, issue_declaration_for
from ldn.auth.trust_store import trust_store


def token_endpoint(network: Any, audience: str) -> str:
    if audience == "auth":
        return f"{network.directory.service_url('auth')}/token"
    return f"{network.directory.node_url(audience)}/auth/token"


def token_client(client: httpx.AsyncClient, network: Any, org: str, *, dpop: bool = False) -> TokenClient:
    pki = Path(os.environ["LDN_AUTH_PKI_DIR"])
    credential = trust_store(pki, network.topology).credential(org)
    return TokenClient(credential, client, use_dpop=dpop)


def declaration_for(network: Any, uzi: str) -> str:
    issuer = dezi_issuer(network.settings.data_dir, network.directory.service_url("dezi"))
    return issue_declaration_for(issuer, network.topology, uzi)


async def token_for(
    client: httpx.AsyncClient,
    network: Any,
    *,
    org: str,
    scope: str,
    audience: str = "auth",
    user: str | None = None,
    patient: str | None = None,
    authorization_base: str | None = None,
    dezi: bool = False,
    dpop: bool = False,
) -> AccessToken:
    """An access token obtained through the real token endpoint (raises TokenRequestError if refused)."""
    tokens = token_client(client, network, org, dpop=dpop)
    return await tokens.token(
        token_endpoint(network, audience),
        scope,
        user_id=None if dezi else user,
        patient=patient,
        authorization_base=authorization_base,
        dezi_declaration=declaration_for(network, user) if (dezi and user) else None,
    )


async def citizen_token_for(client: httpx.AsyncClient, network: Any, bsn: str) -> AccessToken:
    """A citizen token from the test citizen login (stand-in for DigiD)."""
    url = f"{network.directory.service_url('auth')}/citizen/token"
    response = await client.post(url, data={"bsn": bsn})
    response.raise_for_status()
    body = response.json()
    return AccessToken(value=body["access_token"], token_type="Bearer", scope=body["scope"], expires_at=0)
