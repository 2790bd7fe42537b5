"""The PRS answer envelope, the NVI identifier codec and the NVI storage pseudonym (SPEC §6).

Envelope. The PRS answers ``{"evaluated_output": <compact JWE>}``: the OPRF evaluated element,
encrypted to the recipient's public key, so the client that relays it (with the blind) cannot
unblind anything. Algorithms are chosen by the recipient key's ``kty``:

* ``EC`` (P-256 only): ``ECDH-ES+A256KW`` with ``A256GCM``. Preferred: small keys and messages,
  a fresh ephemeral sender key per answer (a later leak of PRS state exposes no past answers),
  and support in every mainstream JOSE library.
* ``RSA`` (>= 2048 bits): ``RSA-OAEP-256`` with ``A256GCM``, for recipients whose key
  infrastructure is RSA-only.

The protected header carries the recipient key's ``kid`` (its RFC 7638 thumbprint when the JWK
has none), so the recipient can pick its private key, and ``oprf_key_version``, the version of
the PRS key that produced the element, so the recipient knows which key a pseudonym belongs to
after rotation. The protected header is authenticated by AES-GCM, so both are tamper-evident.

NVI identifier. The client hands the NVI ``base64url(JSON {"evaluated_output", "blind_factor"})``
as ``subject.identifier.value``. Decoding is strict: anything unexpected is refused.

Pseudonym. The NVI opens the envelope, unblinds (`ldn.localization.oprf.unblind`) to the element
``skS * HashToGroup(input)``, stable for one recipient and PRS key version, and stores only
`pseudonym_hmac` of it under a storage key it versions itself.

Fast codec and origin authentication. `EnvelopeSealer` (PRS) and `EnvelopeOpener` (NVI) do the
P-256 path without joserfc's framing cost and add an origin tag proving that the element came from
the PRS and not from anyone else holding the recipient's public key (see the section below).

Every failure raises `EnvelopeError`; messages name what was wrong, never key material.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Final, NamedTuple

import rfc8785
from cryptography.exceptions import InvalidKey, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey
from joserfc.registry import HeaderParameter

from ldn.localization import oprf

__all__ = [
    "ALG_ECDH_ES_A256KW",
    "ALG_RSA_OAEP_256",
    "ENC_A256GCM",
    "HEADER_ISSUED_AT",
    "HEADER_OPRF_KEY_VERSION",
    "HEADER_ORIGIN_TAG",
    "MAX_NVI_IDENTIFIER_LENGTH",
    "MIN_RSA_KEY_BITS",
    "MIN_STORAGE_KEY_LENGTH",
    "AuthenticatedEnvelope",
    "EnvelopeError",
    "EnvelopeHeader",
    "EnvelopeOpener",
    "EnvelopeSealer",
    "NviIdentifier",
    "OpenedEnvelope",
    "OriginError",
    "OriginKey",
    "WrongRecipientError",
    "b64url_decode",
    "b64url_encode",
    "decode_nvi_identifier",
    "encode_nvi_identifier",
    "envelope_header",
    "open_envelope",
    "open_evaluated_output",
    "pseudonym_hmac",
    "seal_evaluated_output",
    "validate_recipient_public_jwk",
]

ALG_ECDH_ES_A256KW: Final = "ECDH-ES+A256KW"
ALG_RSA_OAEP_256: Final = "RSA-OAEP-256"
ENC_A256GCM: Final = "A256GCM"
HEADER_OPRF_KEY_VERSION: Final = "oprf_key_version"
# ldn additions (see "Origin authentication" in the module doc); both optional for other JOSE users.
HEADER_ISSUED_AT: Final = "iat"
HEADER_ORIGIN_TAG: Final = "prs_tag"
EC_CURVE: Final = "P-256"
MIN_RSA_KEY_BITS: Final = 2048
MIN_STORAGE_KEY_LENGTH: Final = 32
# A compact JWE to an 8192-bit RSA key plus the blind stays well below this; it only caps parsing.
MAX_NVI_IDENTIFIER_LENGTH: Final = 8192
MAX_JWE_LENGTH: Final = 6144

_ALG_FOR_KTY: Final = {"EC": ALG_ECDH_ES_A256KW, "RSA": ALG_RSA_OAEP_256}
# epk/apu/apv belong to ECDH-ES; typ/cty are informational. Anything else (zip, crit, jku, x5u,
# jwk, ...) changes how a JWE is processed and is refused rather than interpreted.
_ALLOWED_HEADER_KEYS: Final = frozenset(
    {
        "alg",
        "enc",
        "kid",
        HEADER_OPRF_KEY_VERSION,
        "epk",
        "apu",
        "apv",
        "typ",
        "cty",
        HEADER_ISSUED_AT,
        HEADER_ORIGIN_TAG,
    }
)
_KEY_VERSION_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_B64URL_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]*")
_NVI_KEYS: Final = frozenset({"evaluated_output", "blind_factor"})


class EnvelopeError(ValueError):
    """A JWE, key or NVI identifier that cannot be used; the message never holds key material."""


class WrongRecipientError(EnvelopeError):
    """The envelope names (or was encrypted to) another recipient key."""


class OriginError(EnvelopeError):
    """The envelope has no valid PRS origin tag: it was not produced by the PRS."""


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    """The parsed protected header. Unauthenticated until the JWE has been decrypted."""

    alg: str
    kid: str
    oprf_key_version: str


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    """A decrypted, validated envelope; the header fields are authenticated by AES-GCM."""

    evaluated_element: bytes = field(repr=False)
    kid: str
    oprf_key_version: str


class NviIdentifier(NamedTuple):
    """The decoded NVI ``subject.identifier.value``."""

    evaluated_output: str
    blind_factor: bytes


def _validate_key_version_header(value: Any) -> None:
    if not isinstance(value, str) or not _KEY_VERSION_PATTERN.fullmatch(value):
        raise ValueError("oprf_key_version must be 1-64 characters of [A-Za-z0-9._-]")


# Our own registry: joserfc refuses unknown header names, and only these algorithms are allowed.
_JWE_REGISTRY: Final = jwe.JWERegistry(
    header_registry={
        HEADER_OPRF_KEY_VERSION: HeaderParameter(
            "Version of the PRS OPRF key that produced the element",
            _validate_key_version_header,
            required=True,
        ),
        HEADER_ISSUED_AT: HeaderParameter("Time the PRS made the envelope (seconds since the epoch)", "int"),
        HEADER_ORIGIN_TAG: HeaderParameter("PRS origin tag (base64url HMAC-SHA256)", "str"),
    },
    algorithms=[ALG_ECDH_ES_A256KW, ALG_RSA_OAEP_256, ENC_A256GCM],
)

RecipientKey = Mapping[str, Any] | ECKey | RSAKey


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(value: str, what: str) -> bytes:
    # Strict: base64url alphabet only, no padding, and canonical (re-encodes to the same text),
    # so one value has exactly one textual form.
    if not isinstance(value, str) or not _B64URL_PATTERN.fullmatch(value) or len(value) % 4 == 1:
        raise EnvelopeError(f"{what} is not unpadded base64url")
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"{what} is not unpadded base64url") from exc
    if _b64url_encode(decoded) != value:
        raise EnvelopeError(f"{what} is not canonical base64url")
    return decoded


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EnvelopeError("duplicate JSON member")
        result[key] = value
    return result


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except EnvelopeError:
        raise
    # ValueError also covers bad UTF-8 and integers over Python's digit limit; RecursionError
    # covers absurd nesting. All of them mean "not JSON we accept".
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError(f"{what} is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise EnvelopeError(f"{what} is not a JSON object")
    return parsed


def _check_compact_jwe_shape(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_JWE_LENGTH:
        raise EnvelopeError("evaluated_output is not a compact JWE")
    parts = value.split(".")
    if len(parts) != 5 or not all(_B64URL_PATTERN.fullmatch(part) for part in parts):
        raise EnvelopeError("evaluated_output is not a compact JWE")
    return value


def _explicit_kid(key: ECKey | RSAKey) -> str | None:
    kid = key.kid
    return kid if isinstance(kid, str) and kid else None


def _import_key(jwk: RecipientKey, *, private: bool) -> ECKey | RSAKey:
    """Import and vet a recipient key: kty, curve or size, ``use``, ``alg``, public/private."""
    if isinstance(jwk, ECKey | RSAKey):
        key = jwk
    elif isinstance(jwk, Mapping):
        try:
            imported = JWKRegistry.import_key(dict(jwk))
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise EnvelopeError("recipient key is not a valid JWK") from exc
        if not isinstance(imported, ECKey | RSAKey):
            raise EnvelopeError("recipient key must have kty EC (P-256) or RSA")
        key = imported
    else:
        raise EnvelopeError("recipient key must be a JWK mapping or a joserfc EC/RSA key")

    alg = _ALG_FOR_KTY[key.key_type]
    if isinstance(key, ECKey) and key.curve_name != EC_CURVE:
        raise EnvelopeError(f"EC recipient keys must use curve {EC_CURVE}")
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_KEY_BITS:
        raise EnvelopeError(f"RSA recipient keys must have at least {MIN_RSA_KEY_BITS} bits")
    if key.get("use") not in (None, "enc"):
        raise EnvelopeError("recipient key is not meant for encryption (use != enc)")
    if key.alg not in (None, alg):
        raise EnvelopeError(f"recipient key declares alg {key.alg!r}, expected {alg!r}")
    if private and not key.is_private:
        raise EnvelopeError("opening an envelope needs the recipient's private key")
    if not private and key.is_private:
        # The PRS must only ever hold recipients' public keys; a private one is a deployment bug.
        raise EnvelopeError("sealing takes the recipient's public key, not its private key")
    return key


def seal_evaluated_output(
    evaluated_element: bytes, recipient_public_jwk: RecipientKey, *, oprf_key_version: str
) -> str:
    """Encrypt the PRS's evaluated element to the recipient: a compact JWE (see module doc)."""
    try:
        element = oprf.deserialize_element(evaluated_element)
    except oprf.InvalidElementError as exc:
        raise EnvelopeError("evaluated_element is not a valid OPRF element") from exc
    try:
        _validate_key_version_header(oprf_key_version)
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from exc
    key = _import_key(recipient_public_jwk, private=False)
    protected = {
        "alg": _ALG_FOR_KTY[key.key_type],
        "enc": ENC_A256GCM,
        "kid": _explicit_kid(key) or key.thumbprint(),
        HEADER_OPRF_KEY_VERSION: oprf_key_version,
    }
    try:
        return jwe.encrypt_compact(protected, element, key, registry=_JWE_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise EnvelopeError("could not encrypt to the recipient key") from exc


def envelope_header(evaluated_output: str) -> EnvelopeHeader:
    """Parse and vet the protected header without decrypting (e.g. to select the key by kid).

    Nothing here is authenticated yet; only `open_envelope` makes these values trustworthy.
    """
    value = _check_compact_jwe_shape(evaluated_output)
    header = _json_object(_b64url_decode(value.split(".", 1)[0], "JWE protected header"), "JWE protected header")
    unexpected = set(header) - _ALLOWED_HEADER_KEYS
    if unexpected:
        # Names come from untrusted input: show a few, shortened, so errors stay log-safe.
        shown = ", ".join(repr(name[:32]) for name in sorted(unexpected)[:3])
        raise EnvelopeError(f"JWE protected header has unsupported parameters: {shown}")
    alg, enc, kid = header.get("alg"), header.get("enc"), header.get("kid")
    if not isinstance(alg, str) or alg not in _ALG_FOR_KTY.values():
        raise EnvelopeError("JWE alg must be ECDH-ES+A256KW or RSA-OAEP-256")
    if enc != ENC_A256GCM:
        raise EnvelopeError("JWE enc must be A256GCM")
    if not isinstance(kid, str) or not kid:
        raise EnvelopeError("JWE protected header has no kid")
    version = header.get(HEADER_OPRF_KEY_VERSION)
    if not isinstance(version, str) or not _KEY_VERSION_PATTERN.fullmatch(version):
        raise EnvelopeError("JWE protected header has no valid oprf_key_version")
    return EnvelopeHeader(alg=alg, kid=kid, oprf_key_version=version)


def open_envelope(evaluated_output: str, recipient_private_jwk: RecipientKey) -> OpenedEnvelope:
    """Decrypt and validate a PRS envelope; returns the element and the authenticated header."""
    header = envelope_header(evaluated_output)
    key = _import_key(recipient_private_jwk, private=True)
    if header.alg != _ALG_FOR_KTY[key.key_type]:
        raise EnvelopeError("JWE algorithm does not fit the recipient key type")
    # A key without its own kid cannot be matched by name (the PRS may have used a kid from a
    # published JWKS); decryption below still refuses a JWE made for another key.
    explicit_kid = _explicit_kid(key)
    if explicit_kid is not None and header.kid != explicit_kid:
        raise EnvelopeError("JWE is addressed to a different recipient key")
    try:
        decrypted = jwe.decrypt_compact(evaluated_output, key, registry=_JWE_REGISTRY)
    except (JoseError, ValueError, TypeError, KeyError, InvalidKey, InvalidTag) as exc:
        raise EnvelopeError("JWE could not be decrypted: wrong recipient key or tampered") from exc
    try:
        element = oprf.deserialize_element(decrypted.plaintext or b"")
    except oprf.InvalidElementError as exc:
        raise EnvelopeError("JWE does not contain a valid OPRF element") from exc
    return OpenedEnvelope(evaluated_element=element, kid=header.kid, oprf_key_version=header.oprf_key_version)


def open_evaluated_output(evaluated_output: str, recipient_private_jwk: RecipientKey) -> bytes:
    """Decrypt a PRS envelope to the 32-byte evaluated element (see `open_envelope`)."""
    return open_envelope(evaluated_output, recipient_private_jwk).evaluated_element


def encode_nvi_identifier(evaluated_output_jwe: str, blind: bytes) -> str:
    """``base64url(JCS {"blind_factor": base64url(blind), "evaluated_output": jwe})``, unpadded.

    JCS (RFC 8785) makes the encoding deterministic for the same pair.
    """
    jwe_value = _check_compact_jwe_shape(evaluated_output_jwe)
    try:
        blind_value = oprf.deserialize_scalar(blind)
    except oprf.InvalidScalarError as exc:
        raise EnvelopeError("blind is not a valid OPRF scalar") from exc
    payload = rfc8785.dumps({"evaluated_output": jwe_value, "blind_factor": _b64url_encode(blind_value)})
    return _b64url_encode(payload)


def decode_nvi_identifier(value: str) -> NviIdentifier:
    """Strictly decode an NVI identifier value into ``(evaluated_output, blind_factor)``.

    Refused: non-strings, over-long values, anything not unpadded canonical base64url, invalid or
    duplicate-key JSON, members other than exactly the two expected, a malformed JWE, and a blind
    that is not a canonical non-zero 32-byte scalar.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_NVI_IDENTIFIER_LENGTH:
        raise EnvelopeError("NVI identifier has the wrong type or length")
    document = _json_object(_b64url_decode(value, "NVI identifier"), "NVI identifier")
    if set(document) != _NVI_KEYS:
        raise EnvelopeError("NVI identifier must have exactly evaluated_output and blind_factor")
    jwe_value = _check_compact_jwe_shape(document["evaluated_output"])
    blind_text = document["blind_factor"]
    if not isinstance(blind_text, str):
        raise EnvelopeError("blind_factor must be a base64url string")
    try:
        blind = oprf.deserialize_scalar(_b64url_decode(blind_text, "blind_factor"))
    except oprf.InvalidScalarError as exc:
        raise EnvelopeError("blind_factor is not a canonical non-zero 32-byte scalar") from exc
    return NviIdentifier(evaluated_output=jwe_value, blind_factor=blind)


def pseudonym_hmac(unblinded_element: bytes, storage_key: bytes) -> bytes:
    """HMAC-SHA256 of the unblinded element under the NVI's storage key: the indexed column.

    Why a keyed hash on top of the OPRF: a leaked NVI table is then useless without the storage
    key, and the NVI never stores a value the PRS could link. The NVI records the storage key
    version (and the envelope's ``oprf_key_version``) next to each row. A hash cannot be re-keyed
    by itself: rotating the storage key means keeping the old key for lookups until rows have
    been re-registered, and a new PRS key version changes the element, so rows made under the old
    one are only found again after the custodian re-registers them.
    """
    try:
        element = oprf.deserialize_element(unblinded_element)
    except oprf.InvalidElementError as exc:
        raise EnvelopeError("unblinded_element is not a valid OPRF element") from exc
    if not isinstance(storage_key, bytes) or len(storage_key) < MIN_STORAGE_KEY_LENGTH:
        raise EnvelopeError(f"storage_key must be at least {MIN_STORAGE_KEY_LENGTH} bytes")
    return hmac.new(storage_key, element, sha256).digest()


# ------------------------------------------------------------------------------------------
# Fast P-256 codec and PRS origin authentication
#
# The PRS seals one envelope per evaluation and the NVI opens one per registered record, at
# thousands per second. joserfc spends most of its time in generic framing, so for the one
# algorithm the PRS uses with its recipients (ECDH-ES+A256KW with A256GCM on P-256, RFC 7518
# §4.6 and §5.3) these classes do the same steps directly on `cryptography`. The output is an
# ordinary compact JWE: joserfc (and `open_envelope`) opens it, and tests check both directions.
#
# Origin authentication. ECDH-ES proves nothing about the sender: anyone holding the recipient's
# public key can encrypt an arbitrary element to it. So the PRS adds ``prs_tag`` to the protected
# header: HMAC-SHA256 over the element, ``kid``, ``oprf_key_version`` and ``iat``, keyed with
# HKDF(ECDH(PRS origin key, recipient key)). Only the PRS and the recipient can compute that key
# (the static-static agreement of ECDH-1PU, done once per recipient and cached), so a valid tag
# shows the element came from the PRS, at a cost of one HMAC per envelope. The tag covers the
# encrypted element, so it is only checkable, and only meaningful, after decryption.
# ------------------------------------------------------------------------------------------

_P256_COORDINATE_BYTES: Final = 32
_CEK_BYTES: Final = 32
_GCM_IV_BYTES: Final = 12
_GCM_TAG_BYTES: Final = 16
_WRAPPED_CEK_BYTES: Final = 40
_ORIGIN_TAG_BYTES: Final = 32
_ORIGIN_CONTEXT: Final = b"ldn-prs-origin-tag|v1"
_EPK_KEYS: Final = frozenset({"kty", "crv", "x", "y"})


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return _b64url_encode(data)


def b64url_decode(value: str, what: str = "value") -> bytes:
    """Strict unpadded, canonical base64url; `EnvelopeError` naming ``what`` otherwise."""
    return _b64url_decode(value, what)


def _concat_kdf_a256kw(shared_secret: bytes) -> bytes:
    # RFC 7518 §4.6.2: one SHA-256 round gives the 256-bit key; AlgorithmID is the alg value
    # (key agreement with key wrapping), apu and apv are empty, SuppPubInfo is keydatalen.
    alg = ALG_ECDH_ES_A256KW.encode("ascii")
    other_info = len(alg).to_bytes(4, "big") + alg + bytes(4) + bytes(4) + (256).to_bytes(4, "big")
    return sha256(b"\x00\x00\x00\x01" + shared_secret + other_info).digest()


def _p256_public_from_jwk(jwk: Mapping[str, Any], what: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "EC" or jwk.get("crv") != EC_CURVE:
        raise EnvelopeError(f"{what} must be an EC {EC_CURVE} key")
    x, y = jwk.get("x"), jwk.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        raise EnvelopeError(f"{what} has no valid coordinates")
    xb, yb = _b64url_decode(x, f"{what} x"), _b64url_decode(y, f"{what} y")
    if len(xb) != _P256_COORDINATE_BYTES or len(yb) != _P256_COORDINATE_BYTES:
        raise EnvelopeError(f"{what} coordinates must be {_P256_COORDINATE_BYTES} bytes")
    try:
        # from_encoded_point refuses points that are not on the curve (invalid-curve attacks).
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xb + yb)
    except ValueError as exc:
        raise EnvelopeError(f"{what} is not a point on {EC_CURVE}") from exc


def _public_point_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    # The uncompressed point is 0x04 | x | y: slicing it is cheaper than public_numbers().
    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {
        "crv": EC_CURVE,
        "kty": "EC",
        "x": _b64url_encode(point[1 : 1 + _P256_COORDINATE_BYTES]),
        "y": _b64url_encode(point[1 + _P256_COORDINATE_BYTES :]),
    }


def _vetted_ec_key(jwk: RecipientKey, *, private: bool) -> tuple[ECKey, str]:
    key = _import_key(jwk, private=private)
    if not isinstance(key, ECKey):
        raise EnvelopeError(f"the fast envelope codec supports EC {EC_CURVE} keys only")
    return key, _explicit_kid(key) or key.thumbprint()


def validate_recipient_public_jwk(jwk: Any) -> tuple[dict[str, Any], str]:
    """Vet a recipient's public JWK for registration at the PRS: EC P-256, public, for encryption.

    Returns the public JWK (private members dropped) and its kid (explicit, else the thumbprint).
    """
    if not isinstance(jwk, Mapping):
        raise EnvelopeError("jwk must be a JSON object")
    key, kid = _vetted_ec_key(jwk, private=False)
    public = dict(key.as_dict(private=False))
    public["kid"] = kid
    return public, kid


def _origin_tag_key(shared_secret: bytes, origin_kid: str, recipient_kid: str) -> bytes:
    info = _ORIGIN_CONTEXT + b"|" + origin_kid.encode("utf-8") + b"|" + recipient_kid.encode("utf-8")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared_secret)


class _OriginTagger:
    """HMAC-SHA256 with a precomputed key schedule (``copy()`` is far cheaper than ``new``)."""

    __slots__ = ("_base",)

    def __init__(self, tag_key: bytes) -> None:
        self._base = hmac.new(tag_key, _ORIGIN_CONTEXT, sha256)

    def tag(self, element: bytes, kid: str, oprf_key_version: str, issued_at: int) -> bytes:
        mac = self._base.copy()
        for part in (kid.encode("utf-8"), oprf_key_version.encode("ascii"), str(issued_at).encode("ascii"), element):
            mac.update(len(part).to_bytes(4, "big") + part)
        return mac.digest()


@dataclass(frozen=True, slots=True)
class OriginKey:
    """The PRS's static P-256 key for origin tags; only its public half is ever published."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    kid: str

    @classmethod
    def from_seed(cls, seed: bytes) -> OriginKey:
        """A deterministic key from >= 32 secret bytes (the PRS derives them from its master)."""
        if not isinstance(seed, bytes) or len(seed) < 32:
            raise EnvelopeError("origin key seed must be at least 32 bytes")
        # 64 bytes reduced modulo n-1, plus one: uniform enough (bias < 2^-256) and never zero.
        wide = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"ldn-prs-origin-key|v1").derive(seed)
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        scalar = int.from_bytes(wide, "big") % (order - 1) + 1
        private_key = ec.derive_private_key(scalar, ec.SECP256R1())
        kid = ECKey.import_key(private_key.public_key()).thumbprint()
        return cls(private_key=private_key, kid=kid)

    def public_jwk(self) -> dict[str, str]:
        """The public JWK, for the PRS's JWKS (``use=sig``-like purpose: origin verification)."""
        return {**_public_point_jwk(self.private_key.public_key()), "kid": self.kid, "use": "prs-origin"}


class EnvelopeSealer:
    """Seals PRS envelopes for one recipient P-256 public key (used by the PRS)."""

    def __init__(self, recipient_public_jwk: RecipientKey, *, origin: OriginKey | None = None) -> None:
        key, self.kid = _vetted_ec_key(recipient_public_jwk, private=False)
        self._recipient = _p256_public_from_jwk(key.as_dict(private=False), "recipient key")
        self._origin = origin
        self._tagger: _OriginTagger | None = None
        if origin is not None:
            shared = origin.private_key.exchange(ec.ECDH(), self._recipient)
            self._tagger = _OriginTagger(_origin_tag_key(shared, origin.kid, self.kid))

    def seal(
        self,
        evaluated_element: bytes,
        *,
        oprf_key_version: str,
        issued_at: int | None = None,
        element_validated: bool = False,
    ) -> str:
        """A compact JWE of the element, with ``kid``, ``oprf_key_version`` and origin tag.

        ``element_validated`` skips re-validating an element the caller just computed from
        validated inputs (the PRS's BlindEvaluate output); anything else is checked.
        """
        element = evaluated_element
        if not element_validated:
            try:
                element = oprf.deserialize_element(evaluated_element)
            except oprf.InvalidElementError as exc:
                raise EnvelopeError("evaluated_element is not a valid OPRF element") from exc
        if not isinstance(oprf_key_version, str) or not _KEY_VERSION_PATTERN.fullmatch(oprf_key_version):
            raise EnvelopeError("oprf_key_version must be 1-64 characters of [A-Za-z0-9._-]")
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        kek = _concat_kdf_a256kw(ephemeral.exchange(ec.ECDH(), self._recipient))
        header: dict[str, Any] = {
            "alg": ALG_ECDH_ES_A256KW,
            "enc": ENC_A256GCM,
            "kid": self.kid,
            HEADER_OPRF_KEY_VERSION: oprf_key_version,
            "epk": _public_point_jwk(ephemeral.public_key()),
        }
        if self._tagger is not None:
            when = int(time.time()) if issued_at is None else int(issued_at)
            header[HEADER_ISSUED_AT] = when
            header[HEADER_ORIGIN_TAG] = _b64url_encode(self._tagger.tag(element, self.kid, oprf_key_version, when))
        protected = _b64url_encode(json.dumps(header, separators=(",", ":")).encode("ascii"))
        cek = os.urandom(_CEK_BYTES)
        iv = os.urandom(_GCM_IV_BYTES)
        sealed = AESGCM(cek).encrypt(iv, element, protected.encode("ascii"))
        return ".".join(
            (
                protected,
                _b64url_encode(aes_key_wrap(kek, cek)),
                _b64url_encode(iv),
                _b64url_encode(sealed[:-_GCM_TAG_BYTES]),
                _b64url_encode(sealed[-_GCM_TAG_BYTES:]),
            )
        )


@dataclass(frozen=True, slots=True)
class AuthenticatedEnvelope:
    """An opened envelope; ``origin_verified`` says whether a PRS origin tag was checked."""

    evaluated_element: bytes = field(repr=False)
    kid: str
    oprf_key_version: str
    issued_at: int | None
    origin_verified: bool


class EnvelopeOpener:
    """Opens PRS envelopes with the recipient's P-256 private key (used by the NVI).

    ``origin_keys`` are the PRS's published origin public keys; with them, `open` refuses any
    envelope without a valid origin tag from one of those keys.
    """

    def __init__(self, recipient_private_jwk: RecipientKey, origin_keys: Sequence[Mapping[str, Any]] = ()) -> None:
        key, self.kid = _vetted_ec_key(recipient_private_jwk, private=True)
        private = key.private_key
        if not isinstance(private, ec.EllipticCurvePrivateKey):  # pragma: no cover - vetted above
            raise EnvelopeError("recipient key is not an EC private key")
        self._private = private
        self._taggers: list[_OriginTagger] = []
        self.set_origin_keys(origin_keys)

    def set_origin_keys(self, origin_keys: Sequence[Mapping[str, Any]]) -> None:
        """Replace the trusted PRS origin keys (for example after fetching the PRS JWKS again)."""
        tag_keys: list[_OriginTagger] = []
        for jwk in origin_keys:
            public = _p256_public_from_jwk(jwk, "PRS origin key")
            origin_kid = jwk.get("kid")
            if not isinstance(origin_kid, str) or not origin_kid:
                raise EnvelopeError("PRS origin key has no kid")
            shared = self._private.exchange(ec.ECDH(), public)
            tag_keys.append(_OriginTagger(_origin_tag_key(shared, origin_kid, self.kid)))
        self._taggers = tag_keys

    @property
    def checks_origin(self) -> bool:
        return bool(self._taggers)

    def open(self, evaluated_output: str) -> AuthenticatedEnvelope:
        """Decrypt, validate and (with origin keys) authenticate one envelope."""
        token = _check_compact_jwe_shape(evaluated_output)
        header_b64, wrapped_b64, iv_b64, ciphertext_b64, tag_b64 = token.split(".")
        header = _json_object(_b64url_decode(header_b64, "JWE protected header"), "JWE protected header")
        unexpected = set(header) - _ALLOWED_HEADER_KEYS
        if unexpected:
            shown = ", ".join(repr(name[:32]) for name in sorted(unexpected)[:3])
            raise EnvelopeError(f"JWE protected header has unsupported parameters: {shown}")
        if header.get("alg") != ALG_ECDH_ES_A256KW or header.get("enc") != ENC_A256GCM:
            raise EnvelopeError("JWE must use ECDH-ES+A256KW with A256GCM")
        if header.get("kid") != self.kid:
            raise WrongRecipientError("JWE is addressed to a different recipient key")
        version = header.get(HEADER_OPRF_KEY_VERSION)
        if not isinstance(version, str) or not _KEY_VERSION_PATTERN.fullmatch(version):
            raise EnvelopeError("JWE protected header has no valid oprf_key_version")
        epk = header.get("epk")
        if not isinstance(epk, dict) or not set(epk) <= _EPK_KEYS | {"kid", "use", "alg"}:
            raise EnvelopeError("JWE protected header has no valid epk")
        ephemeral = _p256_public_from_jwk(epk, "JWE epk")
        if header.get("apu") not in (None, "") or header.get("apv") not in (None, ""):
            # apu/apv would change the KDF input; the PRS never sets them.
            raise EnvelopeError("JWE apu/apv are not supported")
        wrapped = _b64url_decode(wrapped_b64, "JWE encrypted key")
        iv = _b64url_decode(iv_b64, "JWE iv")
        ciphertext = _b64url_decode(ciphertext_b64, "JWE ciphertext")
        gcm_tag = _b64url_decode(tag_b64, "JWE tag")
        if len(wrapped) != _WRAPPED_CEK_BYTES or len(iv) != _GCM_IV_BYTES or len(gcm_tag) != _GCM_TAG_BYTES:
            raise EnvelopeError("JWE encrypted key, iv or tag has the wrong length")
        try:
            kek = _concat_kdf_a256kw(self._private.exchange(ec.ECDH(), ephemeral))
            cek = aes_key_unwrap(kek, wrapped)
            plaintext = AESGCM(cek).decrypt(iv, ciphertext + gcm_tag, header_b64.encode("ascii"))
        except (InvalidUnwrap, InvalidTag, ValueError) as exc:
            raise EnvelopeError("JWE could not be decrypted: wrong recipient key or tampered") from exc
        try:
            element = oprf.deserialize_element(plaintext)
        except oprf.InvalidElementError as exc:
            raise EnvelopeError("JWE does not contain a valid OPRF element") from exc
        issued_at = header.get(HEADER_ISSUED_AT)
        if issued_at is not None and (not isinstance(issued_at, int) or isinstance(issued_at, bool)):
            raise EnvelopeError("JWE iat must be an integer")
        verified = False
        if self._taggers:
            tag_text = header.get(HEADER_ORIGIN_TAG)
            if not isinstance(tag_text, str) or issued_at is None:
                raise OriginError("JWE carries no PRS origin tag: not produced by the PRS")
            tag = _b64url_decode(tag_text, "JWE prs_tag")
            if len(tag) != _ORIGIN_TAG_BYTES or not any(
                hmac.compare_digest(tag, t.tag(element, self.kid, version, issued_at)) for t in self._taggers
            ):
                raise OriginError("JWE origin tag does not verify: not produced by the PRS")
            verified = True
        return AuthenticatedEnvelope(
            evaluated_element=element,
            kid=self.kid,
            oprf_key_version=version,
            issued_at=issued_at,
            origin_verified=verified,
        )
