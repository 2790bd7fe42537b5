"""HTTP routes of an authorization server (national, or a node's own under `<node>/auth`).

Thin: parse the form, hand it to `TokenService`, shape the RFC 6749 / 7662 / 8414 answers.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse

from ldn.auth.resource_server import Caller, require_caller
from ldn.auth.settings import AuthSettings
from ldn.auth.tls import tls_client_certificate
from ldn.auth.token_service import TokenService
from ldn.auth.trust_store import trust_store
from ldn.core.errors import OAuthError
from ldn.core.service import ServiceContext
from ldn.trust.dezi import Declaration, DeclarationError, DeclarationVerifier
from ldn.trust.uzi import UziServerIdentity
from ldn.trust.validation import to_x5c

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def read_form(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != FORM:
        raise OAuthError("invalid_request", f"content type must be {FORM}")
    try:
        form = await request.form()
    except Exception:  # noqa: BLE001 - any parse failure is the client's
        raise OAuthError("invalid_request", "malformed form body") from None
    values: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise OAuthError("invalid_request", "file uploads are not accepted")
        if key in values:
            raise OAuthError("invalid_request", f"parameter {key} is repeated")  # RFC 6749 §3.1
        values[key] = value
    return values


class DeziDeclarationChecker:
    """Verifies Dezi declarations against the identity provider's JWKS and status endpoint."""

    def __init__(self, ctx: ServiceContext, settings: AuthSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._jwks: dict[str, Any] | None = None
        self._jwks_fetched = 0.0

    def _base(self) -> str:
        return self.ctx.directory.service_url("dezi").rstrip("/")

    async def _get(self, url: str) -> Any:
        try:
            response = await self.ctx.http.client().get(url)
        except httpx.HTTPError:
            raise DeclarationError("revocation_unknown", "identity provider unreachable") from None
        if response.status_code != 200:
            raise DeclarationError("revocation_unknown", f"identity provider answered {response.status_code}")
        return response.json()

    async def __call__(self, token: str, presented_by: UziServerIdentity) -> Declaration:
        base = self._base()
        if self._jwks is None or time.monotonic() - self._jwks_fetched > 300:
            self._jwks = await self._get(f"{base}/.well-known/jwks.json")
            self._jwks_fetched = time.monotonic()
        # Signature, claims and URA binding first; the revocation status is fetched after, and only
        # from the identity provider we trust: a token must not make us call arbitrary URLs.
        unverified = DeclarationVerifier(
            self._jwks, lambda _id: False, issuer=base, jku=f"{base}/.well-known/jwks.json"
        )
        declaration = unverified.verify(token, presented_by=presented_by)
        if not declaration.status_uri.startswith(f"{base}/status/"):
            raise DeclarationError("invalid_claims", "status_uri is not at the identity provider")
        status = await self._get(declaration.status_uri)
        revoked = not isinstance(status, dict) or status.get("status") != "valid"
        if revoked:
            raise DeclarationError("revoked", "declaration has been revoked")
        return declaration


def authorization_server_router(ctx: ServiceContext, service: TokenService, *, citizen_login: bool) -> APIRouter:
    router = APIRouter(tags=["authorization server"])

    @router.post("/token", summary="RFC 7523 jwt-bearer token request (with optional DPoP)")
    async def token(request: Request) -> JSONResponse:
        form = await read_form(request)
        dpop_values = request.headers.getlist("dpop")
        if len(dpop_values) > 1:
            raise OAuthError("invalid_dpop_proof", "more than one DPoP header")
        answer = await service.issue_token(
            form,
            dpop_proof=dpop_values[0] if dpop_values else None,
            tls_client_cert=tls_client_certificate(request.scope),
        )
        return JSONResponse(answer, headers=NO_STORE)

    @router.post("/introspect", summary="RFC 7662 token introspection (private_key_jwt client authentication)")
    async def introspect(request: Request) -> JSONResponse:
        form = await read_form(request)
        return JSONResponse(await service.introspect(form), headers=NO_STORE)

    @router.get("/.well-known/oauth-authorization-server", summary="RFC 8414 metadata")
    async def metadata() -> dict[str, Any]:
        return service.metadata()

    @router.get("/jwks", summary="The key of the organisation operating this authorization server")
    async def jwks() -> dict[str, Any]:
        from joserfc.jwk import ECKey

        credential = service.trust.credential(service.issuer_ura)
        public = ECKey.import_key(credential.key.public_key())
        key = public.as_dict(private=False)
        key.update({"use": "sig", "alg": "ES256", "kid": public.thumbprint(), "x5c": to_x5c(list(credential.chain))})
        return {"keys": [key]}

    @router.get("/whoami", summary="Who this token says you are (for exploring the network)")
    async def whoami(caller: Caller = Depends(require_caller())) -> dict[str, Any]:
        view = {k: v for k, v in asdict(caller).items() if k not in ("patient", "citizen_bsn")}
        view["scopes"] = sorted(caller.scopes)
        view["patient_bound"] = caller.patient is not None
        return view

    if citizen_login:

        @router.post("/citizen/token", summary="Test citizen login (stand-in for DigiD; test networks only)")
        async def citizen_token(request: Request) -> JSONResponse:
            form = await read_form(request)
            return JSONResponse(await service.issue_citizen_token(form.get("bsn", "")), headers=NO_STORE)

    return router


def build_token_service(
    ctx: ServiceContext, *, issuer: str, issuer_ura: str, allowed_scopes: Any, accept_dezi: bool = True
) -> TokenService:
    settings = AuthSettings()
    trust = trust_store(settings.resolved_pki_dir(ctx.settings.data_dir), ctx.topology)
    return TokenService(
        issuer=issuer,
        issuer_ura=issuer_ura,
        trust=trust,
        database=ctx.database,
        settings=settings,
        topology=ctx.topology,
        allowed_scopes=allowed_scopes,
        check_declaration=DeziDeclarationChecker(ctx, settings) if accept_dezi else None,
    )
