"""RFC 9497 OPRF, mode 0 (modeOPRF), suite ristretto255-SHA512, on libsodium through ``rbcl``.

Why an OPRF: the pseudonymisation service (PRS, SPEC §6) must turn a client's identifier into a
recipient-specific pseudonym without ever seeing the identifier (the client blinds it first) and
without the client learning the PRS key. RFC 9497 gives exactly that, and its test vectors
(tests/localization/test_oprf_vectors.py) pin this implementation down byte for byte.

Values cross this API in wire form, as ``bytes``: an element is the 32-byte ristretto255 encoding,
a scalar the 32-byte little-endian canonical encoding (below the group order). Everything that
may come from outside is validated on the way in (`deserialize_element`, `deserialize_scalar`):
non-canonical encodings, the identity element and the zero scalar are refused, as RFC 9497 §3.3
requires for elements and because no valid key or blind in OPRF mode is zero.

Group arithmetic runs in libsodium (constant time); Python only frames, hashes and checks
encodings. `unblind` is an addition to the RFC API for the NVI, which holds the blind and the
evaluated element but not the private input, so it cannot run `finalize`: it keys its index on
the unblinded element ``skS * HashToGroup(input)`` instead, stable per recipient key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import rbcl

__all__ = [
    "CONTEXT_STRING",
    "DERIVE_KEY_PAIR_DST",
    "ELEMENT_LENGTH",
    "GROUP_ORDER",
    "HASH_TO_GROUP_DST",
    "HASH_TO_SCALAR_DST",
    "IDENTITY_ELEMENT",
    "MAX_INPUT_LENGTH",
    "MODE_OPRF",
    "OUTPUT_LENGTH",
    "SCALAR_LENGTH",
    "SEED_LENGTH",
    "SUITE_IDENTIFIER",
    "BlindedInput",
    "DeriveKeyPairError",
    "InvalidElementError",
    "InvalidInputError",
    "InvalidScalarError",
    "KeyPair",
    "OPRFError",
    "blind",
    "blind_evaluate",
    "blind_evaluate_validated",
    "derive_key_pair",
    "deserialize_element",
    "deserialize_scalar",
    "evaluate",
    "expand_message_xmd",
    "finalize",
    "generate_key_pair",
    "hash_to_group",
    "hash_to_scalar",
    "i2osp",
    "random_scalar",
    "unblind",
]

MODE_OPRF = 0x00
SUITE_IDENTIFIER = "ristretto255-SHA512"
# RFC 9497 §3.1 CreateContextString(modeOPRF, "ristretto255-SHA512").
CONTEXT_STRING = b"OPRFV1-" + MODE_OPRF.to_bytes(1, "big") + b"-" + SUITE_IDENTIFIER.encode("ascii")
HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING
HASH_TO_SCALAR_DST = b"HashToScalar-" + CONTEXT_STRING
# No hyphen after "DeriveKeyPair": RFC 9497 §3.2.1 spells the DST that way.
DERIVE_KEY_PAIR_DST = b"DeriveKeyPair" + CONTEXT_STRING

ELEMENT_LENGTH = 32  # Ne
SCALAR_LENGTH = 32  # Ns
SEED_LENGTH = SCALAR_LENGTH  # DeriveKeyPair takes a seed of Ns bytes
OUTPUT_LENGTH = 64  # Nh (SHA-512)
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
# PrivateInput is length-prefixed with two bytes in the Finalize transcript (RFC 9497 §1.2).
MAX_INPUT_LENGTH = 2**16 - 1
# ristretto255 has exactly one encoding of the identity: all zeros (RFC 9496 §4.3.2).
IDENTITY_ELEMENT = bytes(ELEMENT_LENGTH)

_ZERO_SCALAR = bytes(SCALAR_LENGTH)
_SHA512_BLOCK_BYTES = 128  # s_in_bytes in RFC 9380 §5.3.1
_SHA512_DIGEST_BYTES = 64  # b_in_bytes
_UNIFORM_BYTES = 64  # hash_to_ristretto255 and HashToScalar both expand to 64 bytes


class OPRFError(ValueError):
    """Base class for every OPRF failure; messages never contain key material or inputs."""


class InvalidElementError(OPRFError):
    """Bytes that are not a canonical, non-identity ristretto255 element (RFC 9497 DeserializeError)."""


class InvalidScalarError(OPRFError):
    """Bytes that are not a canonical, non-zero ristretto255 scalar."""


class InvalidInputError(OPRFError):
    """A private input that is too long, or that maps to the identity (RFC 9497 InvalidInputError)."""


class DeriveKeyPairError(OPRFError):
    """DeriveKeyPair found no non-zero scalar in 256 attempts (RFC 9497 §3.2.1)."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A server key pair; ``private_key`` is kept out of ``repr`` so it never lands in a log."""

    private_key: bytes = field(repr=False)
    public_key: bytes


@dataclass(frozen=True, slots=True)
class BlindedInput:
    """Client state after `blind`: keep ``blind`` locally, send ``blinded_element`` to the PRS."""

    blind: bytes = field(repr=False)
    blinded_element: bytes


def i2osp(value: int, length: int) -> bytes:
    """RFC 8017 I2OSP: ``value`` as ``length`` big-endian bytes; refuses values that do not fit."""
    if value < 0 or value >= 1 << (8 * length):
        raise ValueError(f"integer does not fit in {length} byte(s)")
    return value.to_bytes(length, "big")


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 expand_message_xmd with SHA-512."""
    # Our DSTs are short constants; the RFC's oversize-DST hashing is deliberately not supported.
    if not 1 <= len(dst) <= 255:
        raise ValueError("DST must be 1 to 255 bytes long")
    ell = -(-len_in_bytes // _SHA512_DIGEST_BYTES)
    if len_in_bytes < 1 or ell > 255 or len_in_bytes > 65535:
        raise ValueError("requested output length out of range for expand_message_xmd")
    dst_prime = dst + i2osp(len(dst), 1)
    msg_prime = bytes(_SHA512_BLOCK_BYTES) + msg + i2osp(len_in_bytes, 2) + i2osp(0, 1) + dst_prime
    b_0 = hashlib.sha512(msg_prime).digest()
    b_i = hashlib.sha512(b_0 + i2osp(1, 1) + dst_prime).digest()
    blocks = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + i2osp(i, 1) + dst_prime).digest()
        blocks.append(b_i)
    return b"".join(blocks)[:len_in_bytes]


def hash_to_group(msg: bytes) -> bytes:
    """HashToGroup: hash_to_ristretto255 (RFC 9380 §6.8.3 / RFC 9496) with the suite's DST.

    libsodium's ``crypto_core_ristretto255_from_hash`` is the one-way map of the 64 uniform bytes.
    """
    uniform = expand_message_xmd(msg, HASH_TO_GROUP_DST, _UNIFORM_BYTES)
    element: bytes = rbcl.crypto_core_ristretto255_from_hash(uniform)
    return element


def hash_to_scalar(msg: bytes, dst: bytes = HASH_TO_SCALAR_DST) -> bytes:
    """HashToScalar: 64 uniform bytes read as a little-endian integer, reduced mod the group order.

    May return the zero scalar (probability ~2^-252); callers that need non-zero check for it.
    """
    uniform = expand_message_xmd(msg, dst, _UNIFORM_BYTES)
    scalar: bytes = rbcl.crypto_core_ristretto255_scalar_reduce(uniform)
    return scalar


def deserialize_element(buf: bytes) -> bytes:
    """Validate a serialized element: 32 bytes, canonical ristretto255, not the identity."""
    if not isinstance(buf, bytes) or len(buf) != ELEMENT_LENGTH:
        raise InvalidElementError(f"an element must be exactly {ELEMENT_LENGTH} bytes")
    # libsodium's is_valid_point accepts the identity, so that check is explicit and comes first.
    if buf == IDENTITY_ELEMENT:
        raise InvalidElementError("the identity element is not allowed")
    # RFC 9496 §4.3.1 rejects any encoding >= p, so also any with bit 255 set. The libsodium build
    # bundled in rbcl ignores that bit and would accept a second encoding of the same element.
    if buf[-1] & 0x80:
        raise InvalidElementError("not a canonical ristretto255 element encoding")
    if not rbcl.crypto_core_ristretto255_is_valid_point(buf):
        raise InvalidElementError("not a canonical ristretto255 element encoding")
    return buf


def deserialize_scalar(buf: bytes) -> bytes:
    """Validate a serialized scalar: 32 bytes little-endian, below the group order, not zero.

    RFC 9497 DeserializeScalar admits zero; we refuse it because every scalar that crosses this
    API in OPRF mode (a private key or a blind) must be non-zero for the protocol to be sound.
    """
    if not isinstance(buf, bytes) or len(buf) != SCALAR_LENGTH:
        raise InvalidScalarError(f"a scalar must be exactly {SCALAR_LENGTH} bytes")
    if int.from_bytes(buf, "little") >= GROUP_ORDER:
        raise InvalidScalarError("scalar is not canonical (not below the group order)")
    if buf == _ZERO_SCALAR:
        raise InvalidScalarError("the zero scalar is not allowed")
    return buf


def random_scalar() -> bytes:
    """RandomScalar: a uniformly random non-zero scalar from libsodium's CSPRNG."""
    # libsodium already loops until the scalar is canonical and non-zero; checking is cheap.
    return deserialize_scalar(rbcl.crypto_core_ristretto255_scalar_random())


def _scalar_mult(scalar: bytes, element: bytes) -> bytes:
    # Inputs are validated (non-zero scalar, prime-order non-identity element), so libsodium's
    # identity-result refusal cannot trigger; map it to our error type should it ever do so.
    try:
        product: bytes = rbcl.crypto_scalarmult_ristretto255(scalar, element)
    except RuntimeError as exc:
        raise InvalidElementError("scalar multiplication produced the identity element") from exc
    return product


def _scalar_mult_base(scalar: bytes) -> bytes:
    try:
        product: bytes = rbcl.crypto_scalarmult_ristretto255_base(scalar)
    except RuntimeError as exc:
        raise InvalidScalarError("scalar multiplication produced the identity element") from exc
    return product


def _check_input(private_input: bytes) -> None:
    if not isinstance(private_input, bytes):
        raise InvalidInputError("the private input must be bytes")
    if len(private_input) > MAX_INPUT_LENGTH:
        raise InvalidInputError(f"the private input is longer than {MAX_INPUT_LENGTH} bytes")


def _finalize_hash(private_input: bytes, element: bytes) -> bytes:
    # RFC 9497 §3.3.1 Finalize / Evaluate transcript (identical for both).
    transcript = i2osp(len(private_input), 2) + private_input + i2osp(len(element), 2) + element + b"Finalize"
    return hashlib.sha512(transcript).digest()


def derive_key_pair(seed: bytes, info: bytes) -> KeyPair:
    """DeriveKeyPair (RFC 9497 §3.2.1): a deterministic key pair from a secret 32-byte seed.

    ``info`` is public (e.g. recipient and key version); the key is as secret as the seed.
    """
    if not isinstance(seed, bytes) or len(seed) != SEED_LENGTH:
        raise DeriveKeyPairError(f"the seed must be exactly {SEED_LENGTH} bytes")
    if not isinstance(info, bytes) or len(info) > MAX_INPUT_LENGTH:
        raise DeriveKeyPairError(f"info must be bytes of at most {MAX_INPUT_LENGTH} bytes")
    derive_input = seed + i2osp(len(info), 2) + info
    for counter in range(256):
        private_key = hash_to_scalar(derive_input + i2osp(counter, 1), dst=DERIVE_KEY_PAIR_DST)
        if private_key != _ZERO_SCALAR:
            return KeyPair(private_key=private_key, public_key=_scalar_mult_base(private_key))
    raise DeriveKeyPairError("no non-zero scalar found in 256 attempts")


def generate_key_pair() -> KeyPair:
    """GenerateKeyPair (RFC 9497 §3.2): a fresh random key pair."""
    private_key = random_scalar()
    return KeyPair(private_key=private_key, public_key=_scalar_mult_base(private_key))


def blind(private_input: bytes, *, blind_scalar: bytes | None = None) -> BlindedInput:
    """Blind (client): ``blindedElement = blind * HashToGroup(input)``.

    ``blind_scalar`` fixes the blind; only test vectors should pass it. A reused blind links
    requests, so production callers leave it ``None`` for a fresh random one.
    """
    _check_input(private_input)
    blind_value = random_scalar() if blind_scalar is None else deserialize_scalar(blind_scalar)
    input_element = hash_to_group(private_input)
    if input_element == IDENTITY_ELEMENT:
        raise InvalidInputError("the private input maps to the identity element")
    return BlindedInput(blind=blind_value, blinded_element=_scalar_mult(blind_value, input_element))


def blind_evaluate(private_key: bytes, blinded_element: bytes) -> bytes:
    """BlindEvaluate (server): ``evaluatedElement = skS * blindedElement``, input validated."""
    return _scalar_mult(deserialize_scalar(private_key), deserialize_element(blinded_element))


def blind_evaluate_validated(private_key: bytes, blinded_element: bytes) -> bytes:
    """`blind_evaluate` for a key and element that already passed `deserialize_scalar` and
    `deserialize_element` (the PRS validates each input once, on arrival): no second check."""
    return _scalar_mult(private_key, blinded_element)


def unblind(blind_scalar: bytes, evaluated_element: bytes) -> bytes:
    """Remove the blind: ``blind^-1 * evaluatedElement``, which equals ``skS * HashToGroup(input)``.

    This is the first step of Finalize, exposed for the NVI: it receives the evaluated element
    (in the PRS envelope) and the blind, but never the private input, so it cannot compute the
    Finalize hash; the serialized unblinded element is its stable, recipient-specific pseudonym
    (independent of the blind, changes when the PRS key for that recipient changes).
    """
    blind_value = deserialize_scalar(blind_scalar)
    element = deserialize_element(evaluated_element)
    return _scalar_mult(rbcl.crypto_core_ristretto255_scalar_invert(blind_value), element)


def finalize(private_input: bytes, blind_scalar: bytes, evaluated_element: bytes) -> bytes:
    """Finalize (client): unblind, then hash input and element into the 64-byte PRF output."""
    _check_input(private_input)
    return _finalize_hash(private_input, unblind(blind_scalar, evaluated_element))


def evaluate(private_key: bytes, private_input: bytes) -> bytes:
    """Evaluate: the PRF output computed directly by a holder of both key and input."""
    _check_input(private_input)
    key = deserialize_scalar(private_key)
    input_element = hash_to_group(private_input)
    if input_element == IDENTITY_ELEMENT:
        raise InvalidInputError("the private input maps to the identity element")
    return _finalize_hash(private_input, _scalar_mult(key, input_element))
