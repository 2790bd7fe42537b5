"""The Dezi test identity provider: OIDC authorization code with PKCE, declarations and their status."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ldn.trust.dezi import DeclarationVerifier

REDIRECT = "http://127.0.0.1:9999/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def login(client: httpx.AsyncClient, base: str, challenge: str, uzi: str = "900000011") -> str:
    params = {
        "response_type": "code",
        "client_id": "00000020",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "n1",
    }
    page = await client.get(f"{base}/authorize", params=params)
    assert page.status_code == 200
    assert "Inloggen met Dezi" in page.text
    assert 'value="900000011"' in page.text
    done = await client.post(f"{base}/authorize", data={**params, "uzi": uzi})
    assert done.status_code == 302
    location = urlsplit(done.headers["location"])
    assert location.path == "/callback"
    query = parse_qs(location.query)
    assert query["state"] == ["s1"]
    return query["code"][0]


async def test_authorization_code_flow_with_pkce(client: httpx.AsyncClient, network: Any) -> None:
    base = network.directory.service_url("dezi")
    discovery = (await client.get(f"{base}/.well-known/openid-configuration")).json()
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    verifier, challenge = pkce()
    code = await login(client, base, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "00000020",
        "code_verifier": verifier,
    }
    answer = (await client.post(f"{base}/token", data=form)).json()
    jwks = (await client.get(discovery["jwks_uri"])).json()
    verifier_ = DeclarationVerifier(jwks, lambda _id: False, issuer=base)
    declaration = verifier_.verify(answer["declaration"])
    assert declaration.dezi_nummer == "900000011"
    assert declaration.abonnee_nummer == "00000020"
    assert declaration.rol_code == "01.015"
    status = (await client.get(declaration.status_uri)).json()
    assert status["status"] == "valid"
    assert answer["id_token"].count(".") == 2
    # a code is single use
    reuse = await client.post(f"{base}/token", data=form)
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"


async def test_wrong_code_verifier_refused(client: httpx.AsyncClient, network: Any) -> None:
    base = network.directory.service_url("dezi")
    _, challenge = pkce()
    code = await login(client, base, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "00000020",
        "code_verifier": secrets.token_urlsafe(48),
    }
    response = await client.post(f"{base}/token", data=form)
    assert response.status_code == 400
    assert "code_verifier" in response.json()["error_description"]


async def test_authorize_refuses_bad_requests(client: httpx.AsyncClient, network: Any) -> None:
    base = network.directory.service_url("dezi")
    _, challenge = pkce()
    good = {
        "response_type": "code",
        "client_id": "x",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    for change, error in (
        ({"redirect_uri": "https://evil.example.com/cb"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
    ):
        response = await client.get(f"{base}/authorize", params={**good, **change})
        assert response.status_code == 400, change
        assert response.json()["error"] == error
    unknown = await client.post(f"{base}/authorize", data={**good, "uzi": "123456789"})
    assert unknown.json()["error"] == "access_denied"
