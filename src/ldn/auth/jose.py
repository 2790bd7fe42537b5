"""JWT helpers for the token flow: sign with an organisation key and x5c, read headers, verify.

Cheap structural checks come first (size, segment count, header JSON, algorithm) so malformed
input is refused before any certificate or signature work.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry

MAX_JWT_LENGTH = 16_384
ALLOWED_ALGS = ("ES256",)


class _X5cRegistry(JWSRegistry):
    # joserfc caps headers at 512 bytes; an x5c chain of two certificates needs a few kilobytes.
    max_header_length = 8192


REGISTRY = _X5cRegistry(algorithms=list(ALLOWED_ALGS))


class JwtFormatError(ValueError):
    """The token is not a well-formed compact JWS of an accepted algorithm."""


def b64url_decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unverified_header(token: object) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > MAX_JWT_LENGTH or not token.isascii():
        raise JwtFormatError("not a compact JWT")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise JwtFormatError("a compact JWT has three non-empty parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except (ValueError, UnicodeDecodeError):
        raise JwtFormatError("JWT header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise JwtFormatError("JWT header is not an object")
    if header.get("alg") not in ALLOWED_ALGS:
        raise JwtFormatError(f"alg must be one of {', '.join(ALLOWED_ALGS)}")
    return header


def verify_jwt(token: str, key: ECKey | ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """Verify the signature and return the claims (no claim checks here)."""
    jwk = key if isinstance(key, ECKey) else ECKey.import_key(key)
    try:
        decoded = jwt.decode(token, jwk, algorithms=list(ALLOWED_ALGS), registry=REGISTRY)
    except JoseError:
        raise JwtFormatError("signature does not verify") from None
    except (ValueError, TypeError):
        raise JwtFormatError("token cannot be decoded") from None
    claims = decoded.claims
    if not isinstance(claims, dict):
        raise JwtFormatError("claims are not an object")
    return dict(claims)


def sign_jwt(
    claims: dict[str, Any],
    key: ec.EllipticCurvePrivateKey,
    *,
    x5c_chain: tuple[x509.Certificate, ...] | None = None,
    extra_header: dict[str, Any] | None = None,
) -> str:
    from ldn.trust.validation import to_x5c

    header: dict[str, Any] = {"alg": "ES256", "typ": "JWT"}
    if x5c_chain:
        header["x5c"] = to_x5c(list(x5c_chain))
    header.update(extra_header or {})
    return jwt.encode(header, claims, ECKey.import_key(key))
