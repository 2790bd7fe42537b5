"""The one way a service learns who is calling: `Depends(require_caller("scope"))`.

The helper extracts a Bearer or DPoP token, introspects it at the authorization server this
service trusts (the national one for national services, the node's own for a node), caches the
answer until the token expires, verifies DPoP proofs (htm, htu, iat, ath, replay, cnf.jkt) or the
mTLS binding (cnf.x5t#S256), checks scopes, and hands the handler a typed `Caller`. Any doubt
means refusal: an unreachable authorization server is a 401, never a pass.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import Request

from ldn.auth import store
from ldn.auth.dpop import DPoPError, verify_proof
from ldn.auth.jose import sign_jwt
from ldn.auth.settings import AuthSettings
from ldn.auth.tls import tls_client_certificate
from ldn.auth.token_service import CLIENT_ASSERTION_TYPE, token_hash
from ldn.auth.trust_store import Credential, trust_store
from ldn.core.errors import OAuthError
from ldn.core.service import ServiceContext
from ldn.trust.validation import thumbprint_s256

logger = logging.getLogger("ldn.auth.rs")

MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class Caller:
    """Who is calling, as established by the token: the organisation, and the person if any."""

    client_id: str
    organization_ura: str
    organization_name: str
    scopes: frozenset[str]
    user_id: str | None = None
    user_role: str | None = None
    user_name: str | None = None
    user_assurance: str = "none"
    patient: str | None = None
    authorization_base: str | None = None
    citizen_bsn: str | None = None
    token_id: str = ""
    audience: str = ""
    expires_at: int = 0

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def __repr__(self) -> str:  # keep BSNs out of reprs in logs and tracebacks
        return f"Caller(org={self.organization_ura}, user={self.user_id}, scopes={sorted(self.scopes)})"

    @classmethod
    def from_introspection(cls, data: dict[str, Any]) -> Caller:
        return cls(
            client_id=str(data.get("client_id", "")),
            organization_ura=str(data.get("organization_ura", "")),
            organization_name=str(data.get("organization_name", "")),
            scopes=frozenset(str(data.get("scope", "")).split()),
            user_id=data.get("user_id"),
            user_role=data.get("user_role"),
            user_name=data.get("user_name"),
            user_assurance=str(data.get("user_assurance", "none")),
            patient=data.get("patient"),
            authorization_base=data.get("authorization_base"),
            citizen_bsn=data.get("citizen_bsn"),
            token_id=str(data.get("jti", "")),
            audience=str(data.get("aud", "")),
            expires_at=int(data.get("exp", 0)),
        )


class _IntrospectionCache:
    """Bounded LRU of token hash -> introspection answer, each kept until the token's exp."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, key: str) -> dict[str, Any] | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, data = item
        if expires <= time.time():
            self._items.pop(key, None)
            return None
        self._items.move_to_end(key)
        return data

    def put(self, key: str, expires: float, data: dict[str, Any]) -> None:
        self._items[key] = (expires, data)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class ResourceServer:
    """Token checking for one service, against one authorization server."""

    def __init__(self, ctx: ServiceContext, *, introspection_url: str, issuer: str, own_ura: str) -> None:
        self.ctx = ctx
        self.settings = AuthSettings()
        self.introspection_url = introspection_url
        self.issuer = issuer
        self.own_ura = own_ura
        self.cache = _IntrospectionCache(self.settings.introspection_cache_size)
        self._credential: Credential | None = None

    def _own_credential(self) -> Credential:
        if self._credential is None:
            pki = self.settings.resolved_pki_dir(self.ctx.settings.data_dir)
            self._credential = trust_store(pki, self.ctx.topology).credential(self.own_ura)
        return self._credential

    def _client_assertion(self) -> str:
        credential = self._own_credential()
        now = int(time.time())
        claims = {
            "iss": self.own_ura,
            "sub": self.own_ura,
            "aud": self.introspection_url,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        return sign_jwt(claims, credential.key, x5c_chain=credential.chain)

    async def introspect(self, token: str) -> dict[str, Any]:
        key = token_hash(token)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        form = {
            "token": token,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self._client_assertion(),
        }
        try:
            response = await self.ctx.http.client().post(self.introspection_url, data=form)
        except httpx.HTTPError as exc:
            logger.warning("introspection failed: %s", exc.__class__.__name__)
            raise OAuthError("invalid_token", "token could not be checked", scheme="Bearer") from None
        if response.status_code != 200:
            logger.warning("introspection answered %s", response.status_code)
            raise OAuthError("invalid_token", "token could not be checked", scheme="Bearer")
        data = response.json()
        if not isinstance(data, dict) or data.get("active") is not True:
            # Inactive answers are cached briefly so a flood of bad tokens stays cheap.
            self.cache.put(key, time.time() + 5, {"active": False})
            return {"active": False}
        if data.get("iss") != self.issuer:
            return {"active": False}
        self.cache.put(key, float(data.get("exp", 0)), data)
        return data

    async def authenticate(self, request: Request, scopes: tuple[str, ...]) -> Caller:
        authorization = request.headers.get("authorization")
        if not authorization:
            raise OAuthError("invalid_token", "no access token", status=401, scheme="Bearer")
        scheme, _, token = authorization.partition(" ")
        scheme_name = scheme.lower()
        token = token.strip()
        if scheme_name not in ("bearer", "dpop") or not token or len(token) > MAX_TOKEN_LENGTH or " " in token:
            raise OAuthError("invalid_token", "malformed Authorization header", scheme="Bearer")
        shown_scheme = "DPoP" if scheme_name == "dpop" else "Bearer"
        data = await self.introspect(token)
        if data.get("active") is not True:
            raise OAuthError("invalid_token", "token is not active (expired, revoked or unknown)", scheme=shown_scheme)
        if int(data.get("exp", 0)) <= time.time():
            raise OAuthError("invalid_token", "token has expired", scheme=shown_scheme)
        cnf = data.get("cnf") or {}
        if "jkt" in cnf:
            await self._check_dpop(request, token, str(cnf["jkt"]), scheme_name)
        elif scheme_name == "dpop":
            raise OAuthError("invalid_token", "token is not DPoP-bound; use the Bearer scheme", scheme="DPoP")
        if "x5t#S256" in cnf:
            presented = tls_client_certificate(request.scope)
            if presented is None or thumbprint_s256(presented) != cnf["x5t#S256"]:
                raise OAuthError("invalid_token", "token is bound to another TLS client certificate", scheme="Bearer")
        caller = Caller.from_introspection(data)
        missing = [s for s in scopes if s not in caller.scopes]
        if missing:
            raise OAuthError(
                "insufficient_scope",
                f"token lacks scope: {' '.join(missing)}",
                scheme=shown_scheme,
                headers={"WWW-Authenticate": f'{shown_scheme} error="insufficient_scope", scope="{" ".join(scopes)}"'},
            )
        request.state.caller = caller
        return caller

    async def _check_dpop(self, request: Request, token: str, jkt: str, scheme_name: str) -> None:
        if scheme_name != "dpop":
            raise OAuthError("invalid_token", "DPoP-bound token must be sent with the DPoP scheme", scheme="DPoP")
        proofs = request.headers.getlist("dpop")
        if len(proofs) != 1:
            raise OAuthError("invalid_dpop_proof", "exactly one DPoP proof is required", status=401, scheme="DPoP")
        url = _external_url(request, self.ctx)
        try:
            proof = verify_proof(
                proofs[0],
                method=request.method,
                url=url,
                max_age=self.settings.dpop_proof_max_age,
                skew=self.settings.clock_skew,
                access_token=token,
                expected_jkt=jkt,
            )
        except DPoPError as exc:
            raise OAuthError("invalid_dpop_proof", str(exc), status=401, scheme="DPoP") from None
        expires = datetime.fromtimestamp(
            proof.iat + self.settings.dpop_proof_max_age + 2 * self.settings.clock_skew, UTC
        )
        fresh = await self.ctx.database.run(store.remember_jti, f"dpop-rs:{self.ctx.base_url}", proof.jti, expires)
        if not fresh:
            raise OAuthError(
                "invalid_dpop_proof", "DPoP proof jti has been used before (replay)", status=401, scheme="DPoP"
            )


def _external_url(request: Request, ctx: ServiceContext) -> str:
    """The URL the client used: the service's public base plus the path below its mount point."""
    root_path = request.scope.get("root_path", "")
    path = request.url.path
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return ctx.base_url.rstrip("/") + path


def resource_server_for(ctx: ServiceContext) -> ResourceServer:
    """The resource-server helper of a service: national services trust the national AS,
    a node trusts its own."""
    existing = ctx.extras.get("resource_server")
    if isinstance(existing, ResourceServer):
        return existing
    if ctx.name.startswith("node-"):
        ura = ctx.name.removeprefix("node-")
        issuer = f"{ctx.directory.node_url(ura).rstrip('/')}/auth"
        own = ura
    else:
        issuer = ctx.directory.service_url("auth").rstrip("/")
        operator = ctx.topology.operator_of(ctx.name) or ctx.topology.operator_of("auth")
        if operator is None:
            raise LookupError(f"no operator organisation for service {ctx.name}")
        own = operator.ura
    rs = ResourceServer(ctx, introspection_url=f"{issuer}/introspect", issuer=issuer, own_ura=own)
    ctx.extras["resource_server"] = rs
    return rs


def require_caller(*scopes: str) -> Callable[[Request], Awaitable[Caller]]:
    """FastAPI dependency: the authenticated caller, holding every scope in `scopes`."""

    async def dependency(request: Request) -> Caller:
        ctx: ServiceContext = request.app.state.ctx
        return await resource_server_for(ctx).authenticate(request, scopes)

    return dependency
