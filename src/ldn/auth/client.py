"""The client side of the token flow, used by nodes, tools and tests.

`TokenClient` builds the client assertion and the jwt-bearer assertion with the organisation's
certificate key (x5c), adds a DPoP proof when asked, and caches tokens per (token endpoint,
scope, patient, user, authorization base) until shortly before they expire.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from ldn.auth.dpop import DPoPKey
from ldn.auth.jose import sign_jwt
from ldn.auth.token_service import CLIENT_ASSERTION_TYPE, JWT_BEARER
from ldn.auth.trust_store import Credential

REFRESH_MARGIN = 30  # seconds before exp at which a cached token is no longer handed out


class TokenRequestError(RuntimeError):
    """The authorization server refused; carries its OAuth error and description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AccessToken:
    value: str
    token_type: str
    scope: str
    expires_at: float
    dpop_key: DPoPKey | None = field(default=None, repr=False)

    def headers(self, method: str, url: str) -> dict[str, str]:
        """Authorization (and DPoP proof) headers for one request."""
        if self.token_type == "DPoP" and self.dpop_key is not None:
            return {
                "Authorization": f"DPoP {self.value}",
                "DPoP": self.dpop_key.proof(method, url, access_token=self.value),
            }
        return {"Authorization": f"Bearer {self.value}"}


class TokenClient:
    """Obtains tokens for one organisation."""

    def __init__(self, credential: Credential, http: httpx.AsyncClient, *, use_dpop: bool = True) -> None:
        self.credential = credential
        self.http = http
        self.use_dpop = use_dpop
        self.dpop_key = DPoPKey.generate() if use_dpop else None
        self._cache: dict[tuple[Any, ...], AccessToken] = {}

    @property
    def ura(self) -> str:
        return self.credential.ura

    def client_assertion(self, audience: str, *, lifetime: int = 60) -> str:
        now = int(time.time())
        claims = {
            "iss": self.ura,
            "sub": self.ura,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        return sign_jwt(claims, self.credential.key, x5c_chain=self.credential.chain)

    def assertion(
        self,
        audience: str,
        *,
        user_id: str | None = None,
        user_role: str | None = None,
        patient: str | None = None,
        authorization_base: str | None = None,
        dezi_declaration: str | None = None,
        lifetime: int = 60,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.ura,
            "sub": user_id or self.ura,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "organization_ura": self.ura,
        }
        optional = {
            "user_role": user_role,
            "patient": patient,
            "authorization_base": authorization_base,
            "dezi_declaration": dezi_declaration,
        }
        claims.update({k: v for k, v in optional.items() if v is not None})
        claims.update(extra or {})
        return sign_jwt(claims, self.credential.key, x5c_chain=self.credential.chain)

    async def token(
        self,
        token_endpoint: str,
        scope: str,
        *,
        user_id: str | None = None,
        user_role: str | None = None,
        patient: str | None = None,
        authorization_base: str | None = None,
        dezi_declaration: str | None = None,
        use_cache: bool = True,
    ) -> AccessToken:
        key = (token_endpoint, scope, patient, user_id, authorization_base, dezi_declaration is not None)
        cached = self._cache.get(key)
        if use_cache and cached is not None and cached.expires_at - REFRESH_MARGIN > time.time():
            return cached
        issuer = token_endpoint.rsplit("/token", 1)[0]
        form = {
            "grant_type": JWT_BEARER,
            "assertion": self.assertion(
                issuer,
                user_id=user_id,
                user_role=user_role,
                patient=patient,
                authorization_base=authorization_base,
                dezi_declaration=dezi_declaration,
            ),
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(token_endpoint),
            "scope": scope,
        }
        headers = {}
        if self.dpop_key is not None:
            headers["DPoP"] = self.dpop_key.proof("POST", token_endpoint)
        response = await self.http.post(token_endpoint, data=form, headers=headers)
        body = _json(response)
        if response.status_code != 200:
            raise TokenRequestError(
                response.status_code, str(body.get("error", "server_error")), str(body.get("error_description", ""))
            )
        token = AccessToken(
            value=str(body["access_token"]),
            token_type=str(body["token_type"]),
            scope=str(body.get("scope", scope)),
            expires_at=time.time() + int(body.get("expires_in", 60)),
            dpop_key=self.dpop_key if body.get("token_type") == "DPoP" else None,
        )
        self._cache[key] = token
        return token


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {"error": "server_error", "error_description": f"non-JSON answer ({response.status_code})"}
    return data if isinstance(data, dict) else {}
