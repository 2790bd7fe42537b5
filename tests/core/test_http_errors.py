"""The shared error model: every failure is an OperationOutcome with a fitting code and status."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import APIRouter

from ldn.core.config import CoreSettings
from ldn.core.errors import OAuthError
from ldn.core.http import HttpClientFactory
from ldn.core.service import NetworkDirectory, ServiceContext, create_service_app
from ldn.core.storage import Database
from ldn.core.topology import Topology

FHIR = "application/fhir+json"
VALIDATE = "/nodes/00000020/fhir/$validate"


def issue(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"].startswith(FHIR)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]  # type: ignore[no-any-return]


async def test_unknown_route_is_404_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert issue(response)["code"] == "not-found"
    response = await client.get("/registry/no-such-thing")
    assert response.status_code == 404
    assert issue(response)["code"] == "not-found"


async def test_malformed_json_is_400_structure(client: httpx.AsyncClient) -> None:
    response = await client.post(VALIDATE, content=b'{"resourceType": "Patient",', headers={"content-type": FHIR})
    assert response.status_code == 400
    assert issue(response)["code"] == "structure"


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(VALIDATE, content=b"<Patient/>", headers={"content-type": "application/xml"})
    assert response.status_code == 415
    assert issue(response)["code"] == "not-supported"


async def test_oversized_body_declared_is_413(client: httpx.AsyncClient, settings: CoreSettings) -> None:
    body = b"{" + b" " * settings.max_body_bytes + b"}"
    response = await client.post(VALIDATE, content=body, headers={"content-type": FHIR})
    assert response.status_code == 413
    assert issue(response)["code"] == "too-long"


async def test_oversized_body_streamed_without_length_is_413(client: httpx.AsyncClient, settings: CoreSettings) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    response = await client.post(VALIDATE, content=chunks(), headers={"content-type": FHIR})
    assert response.status_code == 413
    assert issue(response)["code"] == "too-long"


async def test_invalid_resource_is_400_with_expression(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/nodes/00000020/fhir/Patient/$validate",
        content=json.dumps({"resourceType": "Patient", "birthDate": "yesterday"}),
        headers={"content-type": FHIR},
    )
    assert response.status_code == 400
    found = issue(response)
    assert found["code"] == "structure"
    assert any("birthDate" in e for e in found["expression"])  # type: ignore[attr-defined]


async def test_wrong_resource_type_for_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/nodes/00000020/fhir/Patient/$validate",
        content=json.dumps({"resourceType": "Observation"}),
        headers={"content-type": FHIR},
    )
    assert response.status_code == 400
    assert issue(response)["code"] == "invalid"


async def test_valid_resource_passes(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/nodes/00000020/fhir/Patient/$validate",
        content=json.dumps({"resourceType": "Patient", "birthDate": "1980-01-01"}),
        headers={"content-type": FHIR},
    )
    assert response.status_code == 200
    assert issue(response)["severity"] == "information"


async def test_method_not_allowed_is_an_outcome(client: httpx.AsyncClient) -> None:
    response = await client.delete("/registry/organizations")
    assert response.status_code == 405
    assert issue(response)["code"] == "not-supported"


async def test_invalid_identifier_in_path_is_400_value(client: httpx.AsyncClient) -> None:
    response = await client.get("/registry/organizations/12AB")
    assert response.status_code == 400
    assert issue(response)["code"] == "value"


@pytest.fixture
def bare_app(settings: CoreSettings, topology: Topology, database: Database):  # type: ignore[no-untyped-def]
    ctx = ServiceContext(
        "probe", "http://probe.test", settings, topology, database, HttpClientFactory(), NetworkDirectory()
    )
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret key material 999990019 must not leak")

    @router.post("/token")
    async def token() -> None:
        raise OAuthError("invalid_grant", "assertion expired")

    @router.get("/protected")
    async def protected() -> None:
        raise OAuthError("invalid_token", "token expired", scheme="DPoP")

    return create_service_app(ctx, title="probe", routers=[router])


async def test_unexpected_error_is_500_without_details(bare_app) -> None:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=bare_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe.test") as c:
        response = await c.get("/boom")
    assert response.status_code == 500
    found = issue(response)
    assert found["code"] == "exception"
    assert "secret" not in response.text and "999990019" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"] in str(found["diagnostics"])


async def test_oauth_errors_use_the_oauth_body(bare_app) -> None:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=bare_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe.test") as c:
        token = await c.post("/token")
        protected = await c.get("/protected")
    assert token.status_code == 400
    assert token.json() == {"error": "invalid_grant", "error_description": "assertion expired"}
    assert token.headers["cache-control"] == "no-store"
    assert protected.status_code == 401
    assert protected.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
