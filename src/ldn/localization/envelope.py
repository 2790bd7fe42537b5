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

Every failure raises `EnvelopeError`; messages name what was wrong, never key material.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Final, NamedTuple

import rfc8785
from cryptography.exceptions import InvalidKey, InvalidTag
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey
from joserfc.registry import HeaderParameter

from ldn.localization import oprf

__all__ = [
    "ALG_ECDH_ES_A256KW",
    "ALG_RSA_OAEP_256",
    "ENC_A256GCM",
    "HEADER_OPRF_KEY_VERSION",
    "MAX_NVI_IDENTIFIER_LENGTH",
    "MIN_RSA_KEY_BITS",
    "MIN_STORAGE_KEY_LENGTH",
    "EnvelopeError",
    "EnvelopeHeader",
    "NviIdentifier",
    "OpenedEnvelope",
    "decode_nvi_identifier",
    "encode_nvi_identifier",
    "envelope_header",
    "open_envelope",
    "open_evaluated_output",
    "pseudonym_hmac",
    "seal_evaluated_output",
]

ALG_ECDH_ES_A256KW: Final = "ECDH-ES+A256KW"
ALG_RSA_OAEP_256: Final = "RSA-OAEP-256"
ENC_A256GCM: Final = "A256GCM"
HEADER_OPRF_KEY_VERSION: Final = "oprf_key_version"
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
    {"alg", "enc", "kid", HEADER_OPRF_KEY_VERSION, "epk", "apu", "apv", "typ", "cty"}
)
_KEY_VERSION_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_B64URL_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]*")
_NVI_KEYS: Final = frozenset({"evaluated_output", "blind_factor"})


class EnvelopeError(ValueError):
    """A JWE, key or NVI identifier that cannot be used; the message never holds key material."""


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
        )
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
