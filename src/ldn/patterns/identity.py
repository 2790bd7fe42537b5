"""Who is behind a request to a node's own pattern API: a professional of this node, by Dezi.

The internal API (`/nodes/<URA>/patterns/...`) is what the node's EHR calls on behalf of a logged-in
professional. The professional proves who they are with their Dezi declaration (verklaring), sent
as `Authorization: Bearer <declaration JWT>`. The node checks it exactly as its authorization
servers do (the Dezi issuer's JWKS, `iss`/`jku`, the time window, the declaration's status at the
identity provider) and binds its URA (`abonnee_nummer`) to this node's own certificate: a
professional of another organisation is refused. The same declaration then travels inside every
token the node asks for on the professional's behalf (`dezi_declaration` in the jwt-bearer
assertion), so each authorization server checks it again and the holder sees the person.

`ldn query --as <UZI>` and the other commands obtain a declaration the way `ldn token --as` does
(the local Dezi test key); a browser EHR would get it from the Dezi OIDC login.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from ldn.auth.server import DeziDeclarationChecker
from ldn.auth.settings import AuthSettings
from ldn.auth.trust_store import trust_store
from ldn.core.errors import Forbidden, NotAuthenticated
from ldn.core.identifiers import IdentifierError, UziNumber
from ldn.core.service import ServiceContext
from ldn.trust.dezi import DeclarationError
from ldn.trust.uzi import UziServerIdentity, parse_uzi_identity

__all__ = ["Professional", "ProfessionalAuthenticator", "authenticator_for"]

MAX_DECLARATION_LENGTH = 8192
_EXTRA = "patterns_authenticator"


@dataclass(frozen=True)
class Professional:
    """A professional of this node, as their verified Dezi declaration says."""

    uzi: str
    role: str
    name: str
    organization_ura: str
    verklaring_id: str
    declaration: str = field(repr=False)


def _unauthenticated(message: str) -> NotAuthenticated:
    return NotAuthenticated(
        message, details_code="professional-not-authenticated", headers={"WWW-Authenticate": 'Bearer realm="ldn"'}
    )


class ProfessionalAuthenticator:
    """Checks the Dezi declaration of a request to one node's pattern API."""

    def __init__(self, ctx: ServiceContext, ura: str) -> None:
        self.ctx = ctx
        self.ura = ura
        self.checker = DeziDeclarationChecker(ctx, AuthSettings())
        self._identity: UziServerIdentity | None = None
        self._lock = asyncio.Lock()

    async def _own_identity(self) -> UziServerIdentity:
        if self._identity is None:
            async with self._lock:
                if self._identity is None:
                    pki = AuthSettings().resolved_pki_dir(self.ctx.settings.data_dir)
                    store = await asyncio.to_thread(trust_store, pki, self.ctx.topology)
                    self._identity = parse_uzi_identity(store.credential(self.ura).certificate)
        return self._identity

    async def verify(self, declaration: str, *, claimed_uzi: str | None = None) -> Professional:
        """The professional the declaration names; 401 when it does not verify, 403 when it is not
        one of this node's professionals or not the one the request claims."""
        if not declaration or len(declaration) > MAX_DECLARATION_LENGTH or declaration.count(".") != 2:
            raise _unauthenticated("a Dezi declaration (compact JWT) is required as the bearer credential")
        identity = await self._own_identity()
        try:
            verified = await self.checker(declaration, identity)
        except DeclarationError as exc:
            if exc.reason == "ura_mismatch":
                raise Forbidden(
                    "the professional is not employed by this organisation", details_code="not-this-organisation"
                ) from None
            raise _unauthenticated(f"Dezi declaration refused ({exc.reason})") from None
        except (ValueError, LookupError) as exc:
            raise _unauthenticated(f"Dezi declaration cannot be checked ({exc.__class__.__name__})") from None
        if claimed_uzi is not None:
            try:
                claimed = UziNumber.parse(claimed_uzi).value
            except IdentifierError:
                raise Forbidden("'as' must be a UZI/Dezi number", details_code="as-mismatch") from None
            if claimed != verified.dezi_nummer:
                raise Forbidden("'as' names another professional than the Dezi declaration", details_code="as-mismatch")
        name = " ".join(p for p in (verified.voorletters, verified.voorvoegsel, verified.achternaam) if p)
        return Professional(
            uzi=verified.dezi_nummer,
            role=verified.rol_code,
            name=name,
            organization_ura=verified.abonnee_nummer,
            verklaring_id=verified.verklaring_id,
            declaration=declaration,
        )

    async def from_request(self, request: Request, *, claimed_uzi: str | None = None) -> Professional:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise _unauthenticated("Authorization: Bearer <Dezi declaration> is required")
        return await self.verify(credential.strip(), claimed_uzi=claimed_uzi)


def authenticator_for(ctx: ServiceContext, ura: str) -> ProfessionalAuthenticator:
    existing: Any = ctx.extras.get(_EXTRA)
    if isinstance(existing, ProfessionalAuthenticator):
        return existing
    made = ProfessionalAuthenticator(ctx, ura)
    ctx.extras[_EXTRA] = made
    return made
