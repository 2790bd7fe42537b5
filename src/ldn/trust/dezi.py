"""Library side of a Dezi-style identity provider: issuing and verifying declarations.

A declaration (*verklaring*) is an ES256-signed JWT stating that a professional (Dezi number,
name, role) works for an employer (URA). Header: ``alg=ES256``, ``kid``, ``typ`` and ``jku``
(the issuer's JWKS URL). Claims: see :data:`REQUIRED_CLAIMS`.

Revocation design: ``status_uri`` is ``<issuer base URL>/status/<verklaring_id>``, one status
resource per declaration. That is the simplest thing an HTTP front end can serve and cache, and a
verifier only ever needs the status of the one declaration in hand. (A Token Status List, one
bitstring for many declarations, scales better and leaks less to the issuer; it can replace
this later without changing the verifier's interface, which takes a lookup callable.)

The verifier never fetches ``jku``: it is given the issuer's JWKS and, optionally, the one
``jku`` value it accepts. The URA in a declaration has no binding of its own, so
:func:`check_ura_binding` must compare it with the URA of the certificate that presents it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, KeySet

from ldn.trust._files import SECRET_MODE, atomic_write
from ldn.trust.uzi import UziServerIdentity

__all__ = [
    "ALGORITHM",
    "DEFAULT_TYP",
    "LOA_HIGH",
    "REQUIRED_CLAIMS",
    "Declaration",
    "DeclarationError",
    "DeclarationReason",
    "DeclarationVerifier",
    "DeziIssuer",
    "Professional",
    "RevocationLookup",
    "check_ura_binding",
]

ALGORITHM: Final = "ES256"
LOA_HIGH: Final = "http://eidas.europa.eu/LoA/high"
#: JOSE ``typ`` of a declaration; verifiers refuse other types (RFC 8725 §3.11).
DEFAULT_TYP: Final = "JWT"
DEFAULT_SKEW: Final = dt.timedelta(seconds=5)
DEFAULT_LIFETIME: Final = dt.timedelta(hours=1)
DEFAULT_MAX_LIFETIME: Final = dt.timedelta(hours=24)
MAX_TOKEN_LENGTH: Final = 8192

REQUIRED_CLAIMS: Final = (
    "dezi_nummer",
    "voorletters",
    "voorvoegsel",
    "achternaam",
    "abonnee_nummer",
    "abonnee_naam",
    "rol_code",
    "rol_naam",
    "loa_dezi",
    "verklaring_id",
    "status_uri",
    "iss",
    "iat",
    "nbf",
    "exp",
    "jti",
)
_STRING_CLAIMS: Final = tuple(c for c in REQUIRED_CLAIMS if c not in ("iat", "nbf", "exp"))
# May be empty: most surnames have no prefix ("van", "de", ...).
_MAY_BE_EMPTY: Final = frozenset({"voorvoegsel"})
_MAX_CLAIM_LENGTH: Final = 256

_URA_RE: Final = re.compile(r"\A[0-9]{8}\Z", re.ASCII)
_DEZI_RE: Final = re.compile(r"\A[0-9]{9}\Z", re.ASCII)
_ROLE_RE: Final = re.compile(r"\A[0-9]{2}\.[0-9]{3}\Z", re.ASCII)
_URL_RE: Final = re.compile(r"\Ahttps?://[!-~]+\Z", re.ASCII)

DeclarationReason = Literal[
    "malformed",  # not a compact JWS / bad header / undecodable payload
    "unknown_key",  # kid or jku not among the trusted keys
    "bad_signature",
    "expired",
    "not_yet_valid",
    "invalid_claims",  # missing or ill-formed claim
    "wrong_issuer",
    "insufficient_loa",
    "revoked",
    "revocation_unknown",  # the revocation lookup failed: fail closed
    "ura_mismatch",  # abonnee_nummer differs from the presenting certificate's URA
]

#: Given a ``verklaring_id``, says whether that declaration is revoked.
RevocationLookup = Callable[[str], bool]


class DeclarationError(Exception):
    """A declaration was refused; ``reason`` is one of :data:`DeclarationReason`."""

    def __init__(self, reason: DeclarationReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: DeclarationReason = reason
        self.message = message


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _normalise_base_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if not _URL_RE.match(base):
        raise ValueError(f"base URL must be an http(s) URL without spaces, got {base_url!r}")
    return base


@dataclass(frozen=True, slots=True)
class Professional:
    """The person a declaration is about (as the Dezi register knows them)."""

    dezi_nummer: str
    voorletters: str
    achternaam: str
    rol_code: str
    rol_naam: str
    voorvoegsel: str = ""

    def __post_init__(self) -> None:
        if not _DEZI_RE.match(self.dezi_nummer):
            raise ValueError("dezi_nummer must be exactly 9 digits")
        if not _ROLE_RE.match(self.rol_code):
            raise ValueError("rol_code must have the form NN.NNN")
        for name in ("voorletters", "achternaam", "rol_naam"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")


@dataclass(frozen=True, slots=True)
class Declaration:
    """A verified declaration. ``claims`` and ``header`` are read-only views of the token."""

    dezi_nummer: str
    voorletters: str
    voorvoegsel: str
    achternaam: str
    abonnee_nummer: str
    abonnee_naam: str
    rol_code: str
    rol_naam: str
    verklaring_id: str
    status_uri: str
    issuer: str
    not_before: dt.datetime
    expires_at: dt.datetime
    claims: Mapping[str, Any] = field(repr=False)
    header: Mapping[str, Any] = field(repr=False)


class DeziIssuer:
    """Signs declarations with an EC P-256 key; publishes its JWKS; keeps a revocation set.

    The revocation set lives in memory: a restarted issuer forgets revocations, which is
    acceptable for a test identity provider whose declarations live an hour.
    """

    def __init__(self, base_url: str, key: ECKey, *, typ: str = DEFAULT_TYP) -> None:
        if key.curve_name != "P-256" or not key.is_private:
            raise ValueError("issuer key must be a private EC P-256 key")
        self._base_url = _normalise_base_url(base_url)
        # kid = RFC 7638 thumbprint unless the caller set one.
        self._kid = key.kid or key.thumbprint()
        self._key = ECKey.import_key(key.as_dict(private=True), {"kid": self._kid, "use": "sig", "alg": ALGORITHM})
        self._typ = typ
        self._revoked: set[str] = set()

    def __repr__(self) -> str:  # never show the key
        return f"DeziIssuer(base_url={self._base_url!r}, kid={self._kid!r})"

    @classmethod
    def generate(cls, base_url: str, *, typ: str = DEFAULT_TYP) -> DeziIssuer:
        return cls(base_url, ECKey.generate_key("P-256", private=True, auto_kid=True), typ=typ)

    @classmethod
    def load_or_create(cls, key_path: str | Path, base_url: str) -> DeziIssuer:
        """Reuse the PEM key at ``key_path`` or create it (0600, written atomically)."""
        path = Path(key_path)
        if path.exists():
            try:
                key = ECKey.import_key(path.read_bytes())
            except (JoseError, ValueError, TypeError):
                # No parser detail: nothing of the key may reach a message or log.
                raise ValueError(f"cannot load issuer key {path}") from None
            return cls(base_url, key)
        key = ECKey.generate_key("P-256", private=True, auto_kid=True)
        atomic_write(path, key.as_pem(private=True), mode=SECRET_MODE)
        return cls(base_url, key)

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def issuer(self) -> str:
        """The ``iss`` value: the issuer's base URL."""
        return self._base_url

    @property
    def jwks_url(self) -> str:
        return f"{self._base_url}/.well-known/jwks.json"

    @property
    def kid(self) -> str:
        return self._kid

    def jwks(self) -> dict[str, Any]:
        """The public JWKS to publish at :attr:`jwks_url`."""
        return {"keys": [self._key.as_dict(private=False)]}

    def status_uri(self, verklaring_id: str) -> str:
        return f"{self._base_url}/status/{verklaring_id}"

    def issue_declaration(
        self,
        professional: Professional,
        employer_ura: str,
        employer_name: str,
        lifetime: dt.timedelta = DEFAULT_LIFETIME,
        *,
        now: dt.datetime | None = None,
    ) -> str:
        """Return a signed declaration (compact JWS) for ``professional`` at ``employer_ura``."""
        if not _URA_RE.match(employer_ura):
            raise ValueError("employer_ura must be exactly 8 digits")
        if not employer_name:
            raise ValueError("employer_name must not be empty")
        if lifetime <= dt.timedelta(0):
            raise ValueError("lifetime must be positive")
        issued = int((now or _now()).timestamp())
        verklaring_id = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "dezi_nummer": professional.dezi_nummer,
            "voorletters": professional.voorletters,
            "voorvoegsel": professional.voorvoegsel,
            "achternaam": professional.achternaam,
            "abonnee_nummer": employer_ura,
            "abonnee_naam": employer_name,
            "rol_code": professional.rol_code,
            "rol_naam": professional.rol_naam,
            "loa_dezi": LOA_HIGH,
            "verklaring_id": verklaring_id,
            "status_uri": self.status_uri(verklaring_id),
            "iss": self._base_url,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(lifetime.total_seconds()),
            "jti": str(uuid.uuid4()),
        }
        header = {"alg": ALGORITHM, "typ": self._typ, "kid": self._kid, "jku": self.jwks_url}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Sign other tokens of this issuer (such as OIDC ID tokens) with its key and kid."""
        return jwt.encode({"alg": ALGORITHM, "kid": self._kid}, dict(claims), self._key, algorithms=[ALGORITHM])

    def revoke(self, verklaring_id: str) -> None:
        self._revoked.add(verklaring_id)

    def is_revoked(self, verklaring_id: str) -> bool:
        """Usable directly as a :data:`RevocationLookup`."""
        return verklaring_id in self._revoked


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two values for one claim make "which one was checked" ambiguous between parsers.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate claim {key!r}")
        result[key] = value
    return result


class DeclarationVerifier:
    """Verifies declarations of one issuer, given its JWKS and a revocation lookup.

    ``issuer`` (expected ``iss``) and ``jku`` (expected header value) should be set in
    production; left ``None`` they are not checked, the JWKS alone then decides. ``skew`` is
    applied to ``exp``, ``nbf`` and ``iat``; ``max_lifetime`` bounds ``exp - nbf``.
    """

    def __init__(
        self,
        jwks: Mapping[str, Any],
        is_revoked: RevocationLookup,
        *,
        issuer: str | None = None,
        jku: str | None = None,
        typ: str = DEFAULT_TYP,
        skew: dt.timedelta = DEFAULT_SKEW,
        max_lifetime: dt.timedelta | None = DEFAULT_MAX_LIFETIME,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list) or not keys:
            raise ValueError("jwks must be a JWKS object with a non-empty 'keys' array")
        self._keys: dict[str, ECKey] = {}
        for entry in keys:
            if not isinstance(entry, Mapping):
                raise ValueError("JWKS entries must be objects")
            kid = entry.get("kid")
            if entry.get("kty") != "EC" or entry.get("crv") != "P-256" or not isinstance(kid, str):
                raise ValueError("every JWKS key must be EC P-256 with a kid")
            if kid in self._keys:
                raise ValueError(f"duplicate kid {kid!r} in JWKS")
            public = {k: v for k, v in entry.items() if k != "d"}  # verification needs no secret
            self._keys[kid] = ECKey.import_key(public)
        self._is_revoked = is_revoked
        self._issuer = issuer.rstrip("/") if issuer is not None else None
        self._jku = jku
        self._typ = typ
        self._skew = skew
        self._max_lifetime = max_lifetime
        self._clock = clock

    def verify(
        self,
        token: str,
        *,
        now: dt.datetime | None = None,
        presented_by: UziServerIdentity | None = None,
    ) -> Declaration:
        """Verify ``token``; with ``presented_by``, also bind its URA to that certificate."""
        header = self._check_header(token)
        key = self._keys.get(header["kid"])
        if key is None:
            raise DeclarationError("unknown_key", "kid is not in the issuer's JWKS")
        try:
            verified = jws.deserialize_compact(token, KeySet([key]), algorithms=[ALGORITHM])
        except BadSignatureError:
            raise DeclarationError("bad_signature", "signature does not verify") from None
        except JoseError as exc:
            raise DeclarationError("malformed", f"cannot verify token: {exc.error}") from None
        try:
            claims = json.loads(verified.payload, object_pairs_hook=_reject_duplicate_keys)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DeclarationError("malformed", f"payload is not JSON: {exc}") from None
        if not isinstance(claims, dict):
            raise DeclarationError("malformed", "payload is not a JSON object")
        declaration = self._check_claims(claims, header, now or self._clock())
        try:
            revoked = self._is_revoked(declaration.verklaring_id)
        except Exception:  # noqa: BLE001 - any failure of the lookup, whatever its type
            # Fail closed: an unreachable status service must not turn into "not revoked".
            raise DeclarationError("revocation_unknown", "revocation status lookup failed") from None
        if revoked:
            raise DeclarationError("revoked", "declaration has been revoked")
        if presented_by is not None:
            check_ura_binding(declaration, presented_by)
        return declaration

    def _check_header(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token.isascii():
            raise DeclarationError("malformed", "token must be an ASCII string")
        if len(token) > MAX_TOKEN_LENGTH:
            raise DeclarationError("malformed", "token is too long")
        if token.count(".") != 2:
            raise DeclarationError("malformed", "token is not a compact JWS")
        try:
            header = dict(jws.extract_compact(token.encode("ascii")).protected)
        except (JoseError, ValueError) as exc:
            raise DeclarationError("malformed", f"cannot decode token: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise DeclarationError("malformed", f"alg must be {ALGORITHM}")
        if header.get("typ") != self._typ:
            raise DeclarationError("malformed", f"typ must be {self._typ!r}")
        if "crit" in header:
            raise DeclarationError("malformed", "critical header parameters are not supported")
        if not isinstance(header.get("kid"), str):
            raise DeclarationError("malformed", "header has no kid")
        if self._jku is not None and header.get("jku") != self._jku:
            # jku is never fetched; it only has to name the JWKS we were configured with.
            raise DeclarationError("unknown_key", "jku is not the trusted JWKS URL")
        return header

    def _check_claims(self, claims: dict[str, Any], header: dict[str, Any], now: dt.datetime) -> Declaration:
        missing = [c for c in REQUIRED_CLAIMS if c not in claims]
        if missing:
            raise DeclarationError("invalid_claims", f"missing claims: {', '.join(missing)}")
        for name in _STRING_CLAIMS:
            value = claims[name]
            if not isinstance(value, str) or len(value) > _MAX_CLAIM_LENGTH:
                raise DeclarationError("invalid_claims", f"claim {name} must be a short string")
            if not value and name not in _MAY_BE_EMPTY:
                raise DeclarationError("invalid_claims", f"claim {name} must not be empty")
        for name in ("iat", "nbf", "exp"):
            value = claims[name]
            # bool is an int subclass; true/false are not timestamps.
            if not isinstance(value, int) or isinstance(value, bool):
                raise DeclarationError("invalid_claims", f"claim {name} must be an integer")
        if not _DEZI_RE.match(claims["dezi_nummer"]):
            raise DeclarationError("invalid_claims", "dezi_nummer must be exactly 9 digits")
        if not _URA_RE.match(claims["abonnee_nummer"]):
            raise DeclarationError("invalid_claims", "abonnee_nummer must be exactly 8 digits")
        if not _ROLE_RE.match(claims["rol_code"]):
            raise DeclarationError("invalid_claims", "rol_code must have the form NN.NNN")
        if not _URL_RE.match(claims["status_uri"]):
            raise DeclarationError("invalid_claims", "status_uri must be an http(s) URL")
        if self._issuer is not None and claims["iss"].rstrip("/") != self._issuer:
            raise DeclarationError("wrong_issuer", "iss is not the trusted issuer")
        if claims["loa_dezi"] != LOA_HIGH:
            raise DeclarationError("insufficient_loa", f"loa_dezi must be {LOA_HIGH}")

        ts = int(now.timestamp())
        skew = int(self._skew.total_seconds())
        iat, nbf, exp = claims["iat"], claims["nbf"], claims["exp"]
        if exp <= nbf:
            raise DeclarationError("invalid_claims", "exp must be later than nbf")
        if self._max_lifetime is not None and exp - nbf > self._max_lifetime.total_seconds():
            raise DeclarationError("invalid_claims", "declaration lifetime is too long")
        if ts > exp + skew:
            raise DeclarationError("expired", "declaration has expired")
        if nbf > ts + skew or iat > ts + skew:
            raise DeclarationError("not_yet_valid", "declaration is not valid yet")

        return Declaration(
            dezi_nummer=claims["dezi_nummer"],
            voorletters=claims["voorletters"],
            voorvoegsel=claims["voorvoegsel"],
            achternaam=claims["achternaam"],
            abonnee_nummer=claims["abonnee_nummer"],
            abonnee_naam=claims["abonnee_naam"],
            rol_code=claims["rol_code"],
            rol_naam=claims["rol_naam"],
            verklaring_id=claims["verklaring_id"],
            status_uri=claims["status_uri"],
            issuer=claims["iss"],
            not_before=dt.datetime.fromtimestamp(nbf, dt.UTC),
            expires_at=dt.datetime.fromtimestamp(exp, dt.UTC),
            claims=MappingProxyType(claims),
            header=MappingProxyType(header),
        )


def check_ura_binding(declaration: Declaration | Mapping[str, Any], certificate_identity: UziServerIdentity) -> None:
    """Refuse a declaration whose employer URA differs from the presenting certificate's URA.

    The declaration's ``abonnee_nummer`` is only a claim; the organisation certificate on the
    mTLS connection is what proves which organisation is talking. Compared as strings: the
    URA's leading zeros are significant and an integer claim is not a URA.
    """
    if isinstance(declaration, Declaration):
        ura: object = declaration.abonnee_nummer
    else:
        ura = declaration.get("abonnee_nummer")
    if not isinstance(ura, str) or not _URA_RE.match(ura):
        raise DeclarationError("invalid_claims", "abonnee_nummer must be exactly 8 digits")
    if ura != certificate_identity.ura:
        raise DeclarationError(
            "ura_mismatch",
            f"declaration is for URA {ura}, the presenting certificate is for URA {certificate_identity.ura}",
        )
