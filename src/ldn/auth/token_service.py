"""The rules of the authorization server: RFC 7523 jwt-bearer grants, DPoP/mTLS binding, introspection.

Checks run cheapest first: form fields, JWT structure and algorithm, then the certificate chain
(trust, expiry, revocation), then signatures, then claims (aud, times, lifetime), then replay
(persisted `jti`, so a restart does not reopen a replay window), and finally the binding of the
URA in the certificate to the URA in the assertion and in a Dezi declaration when one is present.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from ldn.auth import store
from ldn.auth.dpop import DPoPError, verify_proof
from ldn.auth.jose import JwtFormatError, unverified_header, verify_jwt
from ldn.auth.scopes import CITIZEN_SCOPE
from ldn.auth.settings import AuthSettings
from ldn.auth.trust_store import TrustStore
from ldn.core.errors import OAuthError
from ldn.core.identifiers import BSN, IdentifierError, RoleCode, UziNumber
from ldn.core.storage import Database
from ldn.core.topology import Organization, Topology
from ldn.trust.dezi import Declaration, DeclarationError
from ldn.trust.uzi import UziServerIdentity
from ldn.trust.validation import CertificateValidationError, parse_x5c, thumbprint_s256

logger = logging.getLogger("ldn.auth")

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_FORM_VALUE = 16_384

# A Dezi declaration check needs the issuer's keys and the declaration's status.
DeclarationChecker = Callable[[str, UziServerIdentity], Awaitable[Declaration]]


@dataclass(frozen=True)
class JtiUse:
    """A one-time identifier to record; recorded together with what it authorises."""

    namespace: str
    jti: str
    expires_at: datetime
    error: str
    message: str


@dataclass(frozen=True)
class AuthenticatedClient:
    identity: UziServerIdentity
    organization: Organization
    leaf: x509.Certificate
    claims: dict[str, Any]
    jti_use: JtiUse


PRUNE_INTERVAL = 60.0


def _now() -> float:
    return time.time()


def _field(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name)
    if value is not None and len(value) > MAX_FORM_VALUE:
        raise OAuthError("invalid_request", f"{name} is too long")
    return value


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenService:
    """One authorization server: the national one, or a care-provider node's own."""

    def __init__(
        self,
        *,
        issuer: str,
        issuer_ura: str,
        trust: TrustStore,
        database: Database,
        settings: AuthSettings,
        topology: Topology,
        allowed_scopes: Callable[[Organization], frozenset[str]],
        check_declaration: DeclarationChecker | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.issuer_ura = issuer_ura
        self.token_endpoint = f"{self.issuer}/token"
        self.introspection_endpoint = f"{self.issuer}/introspect"
        self.trust = trust
        self.database = database
        self.settings = settings
        self.topology = topology
        self.allowed_scopes = allowed_scopes
        self.check_declaration = check_declaration
        self._last_prune = 0.0

    # -- checks shared by the token and introspection endpoints -------------------------------

    def _check_times(self, claims: Mapping[str, Any], now: float, what: str, error: str) -> None:
        skew = self.settings.clock_skew
        iat, exp, nbf = claims.get("iat"), claims.get("exp"), claims.get("nbf")
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise OAuthError(error, f"{what} must carry integer iat and exp")
        if iat > now + skew:
            raise OAuthError(error, f"{what} iat is in the future")
        if exp <= now - skew:
            raise OAuthError(error, f"{what} has expired")
        if nbf is not None and (not isinstance(nbf, int) or nbf > now + skew):
            raise OAuthError(error, f"{what} is not valid yet (nbf)")
        if exp - iat > self.settings.max_assertion_lifetime:
            raise OAuthError(error, f"{what} lifetime exceeds {self.settings.max_assertion_lifetime} seconds")

    @staticmethod
    def _audience_ok(aud: Any, accepted: set[str]) -> bool:
        values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        return any(isinstance(v, str) and v.rstrip("/") in accepted for v in values)

    async def authenticate_client(self, form: Mapping[str, str], audiences: set[str]) -> AuthenticatedClient:
        """RFC 7523 §2.2 client authentication with an x5c-carrying, certificate-signed JWT."""
        if _field(form, "client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise OAuthError("invalid_client", f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
        assertion = _field(form, "client_assertion")
        if not assertion:
            raise OAuthError("invalid_client", "client_assertion is missing")
        try:
            header = unverified_header(assertion)
        except JwtFormatError as exc:
            raise OAuthError("invalid_client", f"client_assertion: {exc}") from None
        x5c = header.get("x5c")
        if not isinstance(x5c, list) or not x5c or len(x5c) > 5:
            raise OAuthError("invalid_client", "client_assertion must carry an x5c certificate chain")
        try:
            leaf, intermediates = parse_x5c(x5c)
            identity = self.trust.validate(leaf, intermediates)
        except CertificateValidationError as exc:
            raise OAuthError("invalid_client", f"certificate refused ({exc.reason_code})") from None
        try:
            claims = verify_jwt(assertion, leaf.public_key())
        except JwtFormatError:
            raise OAuthError("invalid_client", "client_assertion signature does not verify") from None
        if claims.get("iss") != identity.ura or claims.get("sub") != identity.ura:
            raise OAuthError("invalid_client", "client_assertion iss and sub must be the URA of the certificate")
        client_id = form.get("client_id")
        if client_id is not None and client_id != identity.ura:
            raise OAuthError("invalid_client", "client_id does not match the certificate")
        if not self._audience_ok(claims.get("aud"), audiences):
            raise OAuthError("invalid_client", "client_assertion aud is not this authorization server")
        now = _now()
        self._check_times(claims, now, "client_assertion", "invalid_client")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
            raise OAuthError("invalid_client", "client_assertion jti missing or malformed")
        use = JtiUse(
            f"ca:{self.issuer}:{identity.ura}",
            jti,
            datetime.fromtimestamp(int(claims["exp"]) + self.settings.clock_skew, UTC),
            "invalid_client",
            "client_assertion jti has been used before (replay)",
        )
        try:
            organization = self.topology.organization(identity.ura)
        except KeyError:
            raise OAuthError("invalid_client", "organisation is not a participant of this network") from None
        return AuthenticatedClient(identity, organization, leaf, claims, use)

    def _record(self, session: Any, uses: list[JtiUse], token: tuple[str, dict[str, Any], datetime] | None) -> None:
        """One transaction: every one-time identifier, and the token they authorise."""
        now = time.time()
        if now - self._last_prune > PRUNE_INTERVAL:
            self._last_prune = now
            store.prune_expired(session, datetime.fromtimestamp(now - self.settings.clock_skew, UTC))
        for use in uses:
            if not store.remember_jti(session, use.namespace, use.jti, use.expires_at):
                raise OAuthError(use.error, use.message)  # rolls the whole transaction back
        if token is not None:
            store.save_token(session, token[0], self.issuer, token[1], token[2])

    # -- token endpoint --------------------------------------------------------------------------

    async def issue_token(
        self,
        form: Mapping[str, str],
        *,
        dpop_proof: str | None,
        tls_client_cert: x509.Certificate | None,
    ) -> dict[str, Any]:
        grant_type = _field(form, "grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is missing")
        if grant_type != JWT_BEARER:
            raise OAuthError("unsupported_grant_type", f"only {JWT_BEARER} is supported")
        assertion = _field(form, "assertion")
        if not assertion:
            raise OAuthError("invalid_request", "assertion is missing")
        client = await self.authenticate_client(form, {self.issuer, self.token_endpoint})
        grant, grant_use = await self._check_grant(assertion, client)
        uses = [client.jti_use, grant_use]

        requested = set((_field(form, "scope") or "").split())
        if not requested:
            raise OAuthError("invalid_scope", "scope is required")
        allowed = self.allowed_scopes(client.organization)
        refused = requested - allowed
        if refused:
            raise OAuthError("invalid_scope", f"scope not allowed for this client: {' '.join(sorted(refused))}")

        now = int(_now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.issuer,
            "client_id": client.identity.ura,
            "organization_ura": client.identity.ura,
            "organization_name": client.organization.name,
            "scope": " ".join(sorted(requested)),
            "iat": now,
            "exp": now + self.settings.access_token_lifetime,
            "jti": secrets.token_hex(16),
            **grant,
        }
        token_type = "Bearer"
        if dpop_proof is not None:
            try:
                proof = verify_proof(
                    dpop_proof,
                    method="POST",
                    url=self.token_endpoint,
                    max_age=self.settings.dpop_proof_max_age,
                    skew=self.settings.clock_skew,
                )
            except DPoPError as exc:
                raise OAuthError("invalid_dpop_proof", str(exc)) from None
            uses.append(
                JtiUse(
                    f"dpop:{self.issuer}",
                    proof.jti,
                    datetime.fromtimestamp(
                        proof.iat + self.settings.dpop_proof_max_age + 2 * self.settings.clock_skew, UTC
                    ),
                    "invalid_dpop_proof",
                    "DPoP proof jti has been used before (replay)",
                )
            )
            claims["cnf"] = {"jkt": proof.jkt}
            token_type = "DPoP"
        elif tls_client_cert is not None:
            if tls_client_cert != client.leaf:
                raise OAuthError("invalid_client", "TLS client certificate differs from the client_assertion x5c")
            claims["cnf"] = {"x5t#S256": thumbprint_s256(tls_client_cert)}
        claims["token_type"] = token_type

        access_token = secrets.token_urlsafe(32)
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        await self.database.run(self._record, uses, (token_hash(access_token), claims, expires_at))
        logger.info(
            "access token issued",
            extra={
                "client": client.identity.ura,
                "scope": claims["scope"],
                "token_type": token_type,
                "token_id": claims["jti"],
            },
        )
        return {
            "access_token": access_token,
            "token_type": token_type,
            "expires_in": self.settings.access_token_lifetime,
            "scope": claims["scope"],
        }

    async def _check_grant(self, assertion: str, client: AuthenticatedClient) -> tuple[dict[str, Any], JtiUse]:
        """The jwt-bearer assertion: who acts, for which patient, on which authorization base."""
        try:
            header = unverified_header(assertion)
        except JwtFormatError as exc:
            raise OAuthError("invalid_grant", f"assertion: {exc}") from None
        if "x5c" in header:
            try:
                leaf, _ = parse_x5c(header["x5c"])
            except CertificateValidationError:
                raise OAuthError("invalid_grant", "assertion x5c is malformed") from None
            if leaf != client.leaf:
                raise OAuthError("invalid_grant", "assertion must be signed with the client's certificate")
        try:
            claims = verify_jwt(assertion, client.leaf.public_key())
        except JwtFormatError:
            raise OAuthError("invalid_grant", "assertion signature does not verify") from None
        if claims.get("iss") != client.identity.ura:
            raise OAuthError("invalid_grant", "assertion iss must be the URA of the certificate")
        if not self._audience_ok(claims.get("aud"), {self.issuer, self.token_endpoint}):
            raise OAuthError("invalid_grant", "assertion aud is not this authorization server")
        now = _now()
        self._check_times(claims, now, "assertion", "invalid_grant")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
            raise OAuthError("invalid_grant", "assertion jti missing or malformed")
        org_ura = claims.get("organization_ura", client.identity.ura)
        if org_ura != client.identity.ura:
            raise OAuthError("invalid_grant", "organization_ura in the assertion differs from the certificate URA")

        grant: dict[str, Any] = {"user_assurance": "none"}
        user_id, user_role = claims.get("sub"), claims.get("user_role")
        if user_id == client.identity.ura:
            user_id = None  # a system acting without a person
        declaration_token = claims.get("dezi_declaration")
        if declaration_token is not None:
            if self.check_declaration is None:
                raise OAuthError("invalid_grant", "Dezi declarations are not accepted here")
            if not isinstance(declaration_token, str):
                raise OAuthError("invalid_grant", "dezi_declaration must be a compact JWT")
            try:
                declaration = await self.check_declaration(declaration_token, client.identity)
            except DeclarationError as exc:
                message = {
                    "ura_mismatch": "URA in the Dezi declaration differs from the certificate URA",
                    "revoked": "the Dezi declaration has been revoked",
                    "expired": "the Dezi declaration has expired",
                }.get(exc.reason, f"Dezi declaration refused ({exc.reason})")
                raise OAuthError("invalid_grant", message) from None
            if user_id is not None and user_id != declaration.dezi_nummer:
                raise OAuthError("invalid_grant", "assertion sub differs from the Dezi number in the declaration")
            if user_role is not None and user_role != declaration.rol_code:
                raise OAuthError("invalid_grant", "assertion user_role differs from the role in the declaration")
            user_id, user_role = declaration.dezi_nummer, declaration.rol_code
            name = " ".join(p for p in (declaration.voorletters, declaration.voorvoegsel, declaration.achternaam) if p)
            grant.update(user_name=name, user_assurance="dezi", dezi_verklaring_id=declaration.verklaring_id)
        elif user_id is not None:
            # The organisation vouches for its own employee; recorded as such for the PDP and logs.
            try:
                professional, employer = self.topology.professional(str(user_id))
            except KeyError:
                raise OAuthError("invalid_grant", "unknown professional") from None
            if employer.ura != client.identity.ura:
                raise OAuthError("invalid_grant", "professional is not employed by the requesting organisation")
            if user_role is not None and user_role != professional.role_code:
                raise OAuthError("invalid_grant", "user_role does not match the professional's role")
            user_role = professional.role_code
            grant.update(user_name=professional.display_name, user_assurance="organization")
        if user_id is not None:
            try:
                grant["user_id"] = UziNumber.parse(user_id).value
                grant["user_role"] = RoleCode.parse(user_role).value
            except IdentifierError as exc:
                raise OAuthError("invalid_grant", str(exc)) from None
        patient = claims.get("patient")
        if patient is not None:
            try:
                grant["patient"] = BSN.parse(patient).value
            except IdentifierError:
                raise OAuthError("invalid_grant", "patient is not a valid BSN") from None
        base = claims.get("authorization_base")
        if base is not None:
            if not isinstance(base, str) or not 1 <= len(base) <= 1000:
                raise OAuthError("invalid_grant", "authorization_base must be a string of at most 1000 characters")
            grant["authorization_base"] = base

        use = JtiUse(
            f"as:{self.issuer}:{client.identity.ura}",
            jti,
            datetime.fromtimestamp(int(claims["exp"]) + self.settings.clock_skew, UTC),
            "invalid_grant",
            "assertion jti has been used before (replay)",
        )
        return grant, use

    # -- citizen login (test stand-in for DigiD) ------------------------------------------------

    async def issue_citizen_token(self, bsn_value: str) -> dict[str, Any]:
        try:
            bsn = BSN.parse(bsn_value)
            citizen = self.topology.citizen(bsn.value)
        except (IdentifierError, KeyError):
            raise OAuthError("invalid_grant", "unknown citizen") from None
        now = int(_now())
        claims = {
            "iss": self.issuer,
            "aud": self.issuer,
            "client_id": "citizen-portal",
            "scope": CITIZEN_SCOPE,
            "iat": now,
            "exp": now + self.settings.access_token_lifetime,
            "jti": secrets.token_hex(16),
            "citizen_bsn": citizen.bsn,
            "user_name": f"{citizen.given_name} {citizen.family_name}",
            "token_type": "Bearer",
            "user_assurance": "test-citizen-login",
        }
        access_token = secrets.token_urlsafe(32)
        expires_at = datetime.fromtimestamp(now + self.settings.access_token_lifetime, UTC)
        await self.database.run(store.save_token, token_hash(access_token), self.issuer, claims, expires_at)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_lifetime,
            "scope": CITIZEN_SCOPE,
        }

    # -- introspection ------------------------------------------------------------------------

    async def introspect(self, form: Mapping[str, str]) -> dict[str, Any]:
        client = await self.authenticate_client(form, {self.issuer, self.introspection_endpoint})
        await self.database.run(self._record, [client.jti_use], None)
        token = _field(form, "token")
        if not token:
            raise OAuthError("invalid_request", "token is missing")
        claims = await self.database.run(store.load_token, token_hash(token), self.issuer, readonly=True)
        if claims is None or int(claims.get("exp", 0)) <= _now():
            return {"active": False}
        return {"active": True, **claims}

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "introspection_endpoint": self.introspection_endpoint,
            "jwks_uri": f"{self.issuer}/jwks",
            "grant_types_supported": [JWT_BEARER],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "tls_client_certificate_bound_access_tokens": True,
            "response_types_supported": [],
            "scopes_supported": sorted(
                set().union(*(self.allowed_scopes(o) for o in self.topology.all_organizations()))
            ),
        }
