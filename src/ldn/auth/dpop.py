"""DPoP (RFC 9449): proofs made by clients, and their verification by token and resource servers."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from ldn.auth.jose import JwtFormatError, b64url, unverified_header


class DPoPError(ValueError):
    """A DPoP proof was refused (OAuth error `invalid_dpop_proof`)."""


def normalise_htu(url: str) -> str:
    """The URL without query and fragment, scheme and host lower-cased (RFC 9449 §4.3)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


def access_token_hash(token: str) -> str:
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


@dataclass
class DPoPKey:
    """A client's DPoP key pair."""

    key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> DPoPKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def jwk(self) -> ECKey:
        return ECKey.import_key(self.key)

    @property
    def thumbprint(self) -> str:
        return ECKey.import_key(self.key.public_key()).thumbprint()

    def proof(self, method: str, url: str, *, access_token: str | None = None, iat: int | None = None) -> str:
        public = ECKey.import_key(self.key.public_key()).as_dict(private=False)
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public}
        claims: dict[str, Any] = {
            "jti": uuid.uuid4().hex,
            "htm": method.upper(),
            "htu": normalise_htu(url),
            "iat": int(time.time()) if iat is None else iat,
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        return jwt.encode(header, claims, self.jwk)


@dataclass(frozen=True)
class VerifiedProof:
    jti: str
    jkt: str
    iat: int


def verify_proof(
    proof: str | None,
    *,
    method: str,
    url: str,
    max_age: int,
    skew: int,
    access_token: str | None = None,
    expected_jkt: str | None = None,
    now: float | None = None,
) -> VerifiedProof:
    """Check a proof's form, signature, htm, htu, iat, ath and key binding (replay is the caller's)."""
    if not proof:
        raise DPoPError("DPoP proof missing")
    try:
        header = unverified_header(proof)
    except JwtFormatError as exc:
        raise DPoPError(f"malformed DPoP proof: {exc}") from None
    if header.get("typ") != "dpop+jwt":
        raise DPoPError("DPoP proof typ must be dpop+jwt")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or "d" in jwk:
        raise DPoPError("DPoP proof must carry a public EC jwk")
    try:
        key = ECKey.import_key(jwk)
        claims = jwt.decode(proof, key, algorithms=["ES256"]).claims
    except (JoseError, ValueError, TypeError):
        raise DPoPError("DPoP proof signature does not verify") from None
    jkt = key.thumbprint()
    if expected_jkt is not None and jkt != expected_jkt:
        raise DPoPError("DPoP proof key does not match the token's cnf.jkt")
    if claims.get("htm") != method.upper():
        raise DPoPError("DPoP proof htm does not match the request method")
    if not isinstance(claims.get("htu"), str) or normalise_htu(claims["htu"]) != normalise_htu(url):
        raise DPoPError("DPoP proof htu does not match the request URL")
    iat = claims.get("iat")
    current = time.time() if now is None else now
    if not isinstance(iat, int) or iat > current + skew or iat < current - max_age - skew:
        raise DPoPError("DPoP proof iat is outside the accepted window")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise DPoPError("DPoP proof jti missing or malformed")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise DPoPError("DPoP proof ath does not match the access token")
    return VerifiedProof(jti=jti, jkt=jkt, iat=iat)
