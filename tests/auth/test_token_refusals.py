"""Every refusal of the token endpoint, each with the right OAuth error and no leak of internals."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ldn.auth.client import TokenClient
from ldn.auth.dezi_service import revoke_declaration
from ldn.auth.dpop import DPoPKey
from ldn.auth.jose import sign_jwt
from ldn.auth.token_service import CLIENT_ASSERTION_TYPE, JWT_BEARER
from ldn.auth.trust_store import Credential
from ldn.trust.uzi import uzi_other_name
from tests.auth_helpers import declaration_for, token_client, token_endpoint


def _claims(iss: str, audience: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": iss, "sub": iss, "aud": audience, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


class Forms:
    def __init__(self, tokens: TokenClient, endpoint: str) -> None:
        self.tokens = tokens
        self.endpoint = endpoint
        self.issuer = endpoint.rsplit("/token", 1)[0]

    def client_assertion(self, **over: Any) -> str:
        c = self.tokens.credential
        return sign_jwt(_claims(c.ura, self.endpoint, **over), c.key, x5c_chain=c.chain)

    def assertion(self, **over: Any) -> str:
        c = self.tokens.credential
        return sign_jwt(_claims(c.ura, self.issuer, **over), c.key, x5c_chain=c.chain)

    def form(self, **over: Any) -> dict[str, str]:
        form = {
            "grant_type": JWT_BEARER,
            "assertion": self.assertion(),
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
            "scope": "nvi:read",
        }
        form.update(over)
        return {k: v for k, v in form.items() if v is not None}


@pytest.fixture
def forms(client: httpx.AsyncClient, network: Any) -> Forms:
    return Forms(token_client(client, network, "00000020"), token_endpoint(network, "auth"))


async def refused(
    client: httpx.AsyncClient, forms: Forms, form: dict[str, str], error: str, *, headers: dict[str, str] | None = None
) -> str:
    response = await client.post(forms.endpoint, data=form, headers=headers or {})
    assert response.status_code in (400, 401), response.text
    body = response.json()
    assert body["error"] == error, body
    assert set(body) == {"error", "error_description"}
    assert "Traceback" not in response.text and "BEGIN" not in response.text and "PRIVATE" not in response.text
    assert response.headers["cache-control"] == "no-store"
    return str(body["error_description"])


async def test_valid_form_is_accepted(client: httpx.AsyncClient, forms: Forms) -> None:
    response = await client.post(forms.endpoint, data=forms.form())
    assert response.status_code == 200, response.text


async def test_wrong_signature(client: httpx.AsyncClient, forms: Forms) -> None:
    c = forms.tokens.credential
    other = ec.generate_private_key(ec.SECP256R1())
    bad = sign_jwt(_claims(c.ura, forms.endpoint), other, x5c_chain=c.chain)
    assert "signature" in await refused(client, forms, forms.form(client_assertion=bad), "invalid_client")
    bad_grant = sign_jwt(_claims(c.ura, forms.issuer), other)
    assert "signature" in await refused(client, forms, forms.form(assertion=bad_grant), "invalid_grant")


def _self_made_uzi_chain(ura: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, x509.Certificate]:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ldn Test UZI Server CA")])  # lookalike name
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spoof")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([uzi_other_name(uzi_number="900000020", ura=ura, agb="01000020")]), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, leaf, ca


async def test_untrusted_ca(client: httpx.AsyncClient, forms: Forms) -> None:
    key, leaf, ca = _self_made_uzi_chain("00000020")
    spoof = TokenClient(Credential("00000020", leaf, (leaf, ca), key, Path(), Path(), Path()), client)
    form = forms.form(client_assertion=spoof.client_assertion(forms.endpoint), assertion=spoof.assertion(forms.issuer))
    assert "untrusted" in await refused(client, forms, form, "invalid_client")


async def test_expired_assertion(client: httpx.AsyncClient, forms: Forms) -> None:
    now = int(time.time())
    old = forms.assertion(iat=now - 120, exp=now - 60)
    assert "expired" in await refused(client, forms, forms.form(assertion=old), "invalid_grant")
    old_client = forms.client_assertion(iat=now - 120, exp=now - 60)
    assert "expired" in await refused(client, forms, forms.form(client_assertion=old_client), "invalid_client")


async def test_iat_in_the_future(client: httpx.AsyncClient, forms: Forms) -> None:
    now = int(time.time())
    future = forms.assertion(iat=now + 30, exp=now + 90)
    assert "future" in await refused(client, forms, forms.form(assertion=future), "invalid_grant")
    # within the 5 s skew is fine
    response = await client.post(forms.endpoint, data=forms.form(assertion=forms.assertion(iat=now + 3, exp=now + 60)))
    assert response.status_code == 200, response.text


async def test_assertion_lifetime_too_long(client: httpx.AsyncClient, forms: Forms) -> None:
    now = int(time.time())
    long_lived = forms.assertion(iat=now, exp=now + 3600)
    assert "lifetime" in await refused(client, forms, forms.form(assertion=long_lived), "invalid_grant")


async def test_replayed_jti(client: httpx.AsyncClient, forms: Forms) -> None:
    form = forms.form()
    assert (await client.post(forms.endpoint, data=form)).status_code == 200
    assert "replay" in await refused(client, forms, form, "invalid_client")
    # the same grant assertion with a fresh client assertion is a replay of the grant
    again = dict(form, client_assertion=forms.client_assertion())
    assert "replay" in await refused(client, forms, again, "invalid_grant")


async def test_jti_replay_survives_restart(
    client: httpx.AsyncClient, forms: Forms, settings: Any, topology: Any, database: Any
) -> None:
    from ldn.network.runtime import build_network
    from tests.conftest import NETWORK_BASE

    form = forms.form()
    assert (await client.post(forms.endpoint, data=form)).status_code == 200
    restarted = build_network(settings, topology, database, base_url=NETWORK_BASE)
    async with (
        restarted.app.router.lifespan_context(restarted.app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=restarted.app), base_url=NETWORK_BASE) as fresh,
    ):
        response = await fresh.post(forms.endpoint, data=form)
    assert response.status_code == 401
    assert "replay" in response.json()["error_description"]


async def test_wrong_audience(client: httpx.AsyncClient, forms: Forms, network: Any) -> None:
    elsewhere = token_endpoint(network, "00000040")
    form = forms.form(client_assertion=forms.client_assertion(aud=elsewhere))
    assert "aud" in await refused(client, forms, form, "invalid_client")
    form = forms.form(assertion=forms.assertion(aud=elsewhere.rsplit("/token", 1)[0]))
    assert "aud" in await refused(client, forms, form, "invalid_grant")


async def test_missing_client_assertion(client: httpx.AsyncClient, forms: Forms) -> None:
    assert "missing" in await refused(client, forms, forms.form(client_assertion=None), "invalid_client")
    assert "client_assertion_type" in await refused(
        client, forms, forms.form(client_assertion_type="urn:other"), "invalid_client"
    )


async def test_malformed_requests(client: httpx.AsyncClient, forms: Forms) -> None:
    await refused(client, forms, forms.form(grant_type=None), "invalid_request")
    await refused(client, forms, forms.form(grant_type="client_credentials"), "unsupported_grant_type")
    await refused(client, forms, forms.form(assertion=None), "invalid_request")
    await refused(client, forms, forms.form(assertion="not.a.jwt"), "invalid_grant")
    await refused(client, forms, forms.form(client_assertion="garbage"), "invalid_client")
    await refused(client, forms, forms.form(scope=None), "invalid_scope")
    response = await client.post(forms.endpoint, json=forms.form())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    repeated = await client.post(
        forms.endpoint, content="scope=a&scope=b", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert repeated.json()["error"] == "invalid_request"


async def test_oversized_request(client: httpx.AsyncClient, forms: Forms) -> None:
    big = forms.form(assertion="x" * (11 * 1024 * 1024))
    response = await client.post(forms.endpoint, data=big)
    assert response.status_code == 413


async def test_ura_in_dezi_declaration_must_match_certificate(
    client: httpx.AsyncClient, forms: Forms, network: Any
) -> None:
    # A hospital professional's declaration presented by the GP practice's certificate.
    declaration = declaration_for(network, "900000031")
    form = forms.form(assertion=forms.assertion(dezi_declaration=declaration))
    assert "URA in the Dezi declaration differs" in await refused(client, forms, form, "invalid_grant")


async def test_organization_ura_claim_must_match_certificate(client: httpx.AsyncClient, forms: Forms) -> None:
    form = forms.form(assertion=forms.assertion(organization_ura="00000040"))
    assert "organization_ura" in await refused(client, forms, form, "invalid_grant")


async def test_professional_of_another_organisation_refused(client: httpx.AsyncClient, forms: Forms) -> None:
    form = forms.form(assertion=forms.assertion(sub="900000031"))
    assert "not employed" in await refused(client, forms, form, "invalid_grant")


async def test_revoked_declaration(client: httpx.AsyncClient, forms: Forms, network: Any) -> None:
    import json

    from ldn.auth.jose import b64url_decode

    declaration = declaration_for(network, "900000011")
    verklaring_id = json.loads(b64url_decode(declaration.split(".")[1]))["verklaring_id"]
    assert revoke_declaration(network.database, verklaring_id)
    form = forms.form(assertion=forms.assertion(dezi_declaration=declaration))
    assert "revoked" in await refused(client, forms, form, "invalid_grant")


async def test_dpop_proof_with_wrong_htm_or_htu(client: httpx.AsyncClient, forms: Forms) -> None:
    key = DPoPKey.generate()
    wrong_method = key.proof("GET", forms.endpoint)
    await refused(client, forms, forms.form(), "invalid_dpop_proof", headers={"DPoP": wrong_method})
    wrong_url = key.proof("POST", forms.endpoint.replace("/token", "/other"))
    await refused(client, forms, forms.form(), "invalid_dpop_proof", headers={"DPoP": wrong_url})
    stale = key.proof("POST", forms.endpoint, iat=int(time.time()) - 3600)
    await refused(client, forms, forms.form(), "invalid_dpop_proof", headers={"DPoP": stale})


async def test_replayed_dpop_proof_at_token_endpoint(client: httpx.AsyncClient, forms: Forms) -> None:
    proof = DPoPKey.generate().proof("POST", forms.endpoint)
    assert (await client.post(forms.endpoint, data=forms.form(), headers={"DPoP": proof})).status_code == 200
    assert "replay" in await refused(client, forms, forms.form(), "invalid_dpop_proof", headers={"DPoP": proof})


async def test_dpop_at_resource_server(client: httpx.AsyncClient, network: Any, probe_url: str) -> None:
    from tests.auth_helpers import token_for

    token = await token_for(client, network, org="00000020", scope="nvi:read", dpop=True)
    key = token.dpop_key
    assert key is not None
    good = key.proof("GET", probe_url, access_token=token.value)
    headers = {"Authorization": f"DPoP {token.value}", "DPoP": good}
    assert (await client.get(probe_url, headers=headers)).status_code == 200
    replay = await client.get(probe_url, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_dpop_proof"
    for bad in (
        key.proof("POST", probe_url, access_token=token.value),
        key.proof("GET", probe_url + "/elsewhere", access_token=token.value),
        key.proof("GET", probe_url),  # no ath
        DPoPKey.generate().proof("GET", probe_url, access_token=token.value),
    ):  # other key
        response = await client.get(probe_url, headers={"Authorization": f"DPoP {token.value}", "DPoP": bad})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_dpop_proof"
