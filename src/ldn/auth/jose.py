"""JWT helpers for the token flow: sign with an organisation key and x5c, read headers, verify.

Cheap structural checks come first (size, segment count, header JSON, algorithm) so malformed
input is refused before any certificate or signature work.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey

MAX_JWT_LENGTH = 16_384
ALLOWED_ALGS = ("ES256",)


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


def verify_jwt(token: str, public: object) -> dict[str, Any]:
    """Verify an ES256 signature and return the claims (no claim checks here).

    Verified directly with `cryptography` (RFC 7518 §3.4: the signature is R || S, 32 bytes
    each): on the token endpoint's hot path this is several times cheaper than a general JOSE
    decode. `unverified_header` must have accepted the token first.
    """
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise JwtFormatError("ES256 needs a P-256 key")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        signature = b64url_decode(signature_b64)
        payload = json.loads(b64url_decode(payload_b64))
    except (ValueError, UnicodeDecodeError):
        raise JwtFormatError("token cannot be decoded") from None
    if len(signature) != 64:
        raise JwtFormatError("signature does not verify")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{payload_b64}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise JwtFormatError("signature does not verify") from None
    if not isinstance(payload, dict):
        raise JwtFormatError("claims are not an object")
    return payload


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
