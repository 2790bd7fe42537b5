"""A Dezi-style identity provider for the test network (service `dezi`).

Per topology professional it knows the Dezi number, name, role code and employer. It offers an
OIDC authorization-code login with PKCE (S256) for browsers, which ends in an ID token plus a
declaration (verklaring) JWT; publishes its JWKS; and answers the status of each declaration so
verifiers can refuse revoked ones (`ldn dezi revoke <verklaring_id>`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse

from ldn.auth import store
from ldn.auth.server import NO_STORE, read_form
from ldn.auth.settings import AuthSettings
from ldn.core.errors import NotFound, OAuthError
from ldn.core.service import ServiceContext, create_service_app
from ldn.core.topology import Topology
from ldn.trust.dezi import DeziIssuer, Professional

CODE_LIFETIME = 60


def dezi_issuer(data_dir: Any, base_url: str) -> DeziIssuer:
    return DeziIssuer.load_or_create(data_dir / "dezi" / "signing-key.pem", base_url)


def issue_declaration_for(issuer: DeziIssuer, topology: Topology, uzi: str, lifetime: int = 3600) -> str:
    """The helper that issues a declaration for a topology professional (for tools and tests)."""
    person, employer = topology.professional(uzi)
    professional = Professional(
        dezi_nummer=person.uzi,
        voorletters=person.initials,
        voorvoegsel=person.prefix,
        achternaam=person.family_name,
        rol_code=person.role_code,
        rol_naam=person.role_name,
    )
    return issuer.issue_declaration(professional, employer.ura, employer.name, timedelta(seconds=lifetime))


@dataclass
class _PendingCode:
    uzi: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    expires: float


def _loopback_redirect(uri: str) -> bool:
    # The test provider only redirects to this machine: no open redirector.
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def create_app(ctx: ServiceContext) -> FastAPI:
    settings = AuthSettings()
    issuer = dezi_issuer(ctx.settings.data_dir, ctx.base_url)
    codes: dict[str, _PendingCode] = {}
    router = APIRouter(tags=["dezi"])

    @router.get("/.well-known/openid-configuration", summary="OIDC discovery")
    async def discovery() -> dict[str, Any]:
        return {
            "issuer": issuer.issuer,
            "authorization_endpoint": f"{issuer.base_url}/authorize",
            "token_endpoint": f"{issuer.base_url}/token",
            "jwks_uri": issuer.jwks_url,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    @router.get("/.well-known/jwks.json", summary="Keys that sign declarations and ID tokens")
    async def jwks() -> dict[str, Any]:
        return issuer.jwks()

    @router.get("/status/{verklaring_id}", summary="Status of one declaration (valid or revoked)")
    async def status(verklaring_id: str) -> JSONResponse:
        if not 1 <= len(verklaring_id) <= 100:
            raise NotFound("unknown declaration")
        revoked = await ctx.database.run(store.declaration_revoked, verklaring_id, readonly=True)
        return JSONResponse(
            {"verklaring_id": verklaring_id, "status": "revoked" if revoked else "valid"},
            headers={"Cache-Control": "no-store"},
        )

    def _check_authorize(params: dict[str, str]) -> None:
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code")
        if not params.get("client_id"):
            raise OAuthError("invalid_request", "client_id is required")
        if not _loopback_redirect(params.get("redirect_uri", "")):
            raise OAuthError("invalid_request", "redirect_uri must be an http(s) URL on this machine")
        if params.get("code_challenge_method") != "S256" or not 43 <= len(params.get("code_challenge", "")) <= 128:
            raise OAuthError("invalid_request", "PKCE with code_challenge_method S256 is required")
        if "openid" not in params.get("scope", "").split():
            raise OAuthError("invalid_scope", "scope must include openid")

    @router.get("/authorize", summary="OIDC authorization endpoint: the test login page")
    async def authorize_page(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        _check_authorize(params)
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
        )
        options = "".join(
            f'<option value="{p.uzi}">{html.escape(p.display_name)}, {html.escape(p.role_name)} '
            f"({html.escape(org.name)})</option>"
            for org in ctx.topology.organizations
            for p in org.professionals
        )
        page = (
            "<!doctype html><html lang=nl><head><meta charset=utf-8><title>Dezi test login</title></head><body>"
            "<h1>Inloggen met Dezi (testomgeving)</h1><form method=post action=authorize>"
            f"{hidden}<label>Zorgverlener <select name=uzi>{options}</select></label> "
            "<button type=submit>Inloggen</button></form></body></html>"
        )
        return HTMLResponse(page)

    @router.post("/authorize", summary="Complete the test login and redirect with a code")
    async def authorize(request: Request) -> RedirectResponse:
        form = await read_form(request)
        _check_authorize(form)
        uzi = form.get("uzi", "")
        try:
            ctx.topology.professional(uzi)
        except KeyError:
            raise OAuthError("access_denied", "unknown professional") from None
        now = time.time()
        for stale in [c for c, p in codes.items() if p.expires < now]:
            codes.pop(stale, None)
        code = secrets.token_urlsafe(32)
        codes[code] = _PendingCode(
            uzi, form["client_id"], form["redirect_uri"], form["code_challenge"], form.get("nonce"), now + CODE_LIFETIME
        )
        query = {"code": code, **({"state": form["state"]} if "state" in form else {})}
        separator = "&" if urlsplit(form["redirect_uri"]).query else "?"
        return RedirectResponse(f"{form['redirect_uri']}{separator}{urlencode(query)}", status_code=302)

    @router.post("/token", summary="Exchange the code (with the PKCE verifier) for an ID token and a declaration")
    async def token(request: Request) -> JSONResponse:
        form = await read_form(request)
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
        pending = codes.pop(form.get("code", ""), None)  # single use, even when the rest fails
        if pending is None or pending.expires < time.time():
            raise OAuthError("invalid_grant", "code is unknown, used or expired")
        if form.get("client_id") != pending.client_id or form.get("redirect_uri") != pending.redirect_uri:
            raise OAuthError("invalid_grant", "client_id or redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not 43 <= len(verifier) <= 128 or not secrets.compare_digest(digest, pending.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        declaration = issue_declaration_for(issuer, ctx.topology, pending.uzi, settings.dezi_declaration_lifetime)
        now = int(time.time())
        id_claims: dict[str, Any] = {
            "iss": issuer.issuer,
            "sub": pending.uzi,
            "aud": pending.client_id,
            "iat": now,
            "exp": now + 300,
        }
        if pending.nonce:
            id_claims["nonce"] = pending.nonce
        id_token = issuer.sign(id_claims)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "id_token": id_token,
                "declaration": declaration,
                "expires_in": settings.dezi_declaration_lifetime,
            },
            headers=NO_STORE,
        )

    return create_service_app(
        ctx,
        title="ldn Dezi identity provider (test)",
        description="OIDC login with PKCE for professionals; declarations (verklaringen) and their status.",
        routers=[router],
    )


def revoke_declaration(database: Any, verklaring_id: str) -> bool:
    with database.transaction() as session:
        return store.revoke_declaration(session, verklaring_id, datetime.now(UTC))
