"""RFC 9497 OPRF (mode 0, ristretto255-SHA512): the RFC's test vectors, input validation, properties.

Vector source: RFC 9497 Appendix A.1.1 ("ristretto255-SHA512", "OPRF Mode"), taken verbatim from
the RFC's source text (github.com/cfrg/draft-irtf-cfrg-voprf, draft-irtf-cfrg-voprf.md, the
draft-21 text published as RFC 9497). Mode 0 has exactly two vectors, both batch size 1.
The expand_message_xmd vectors are RFC 9380 Appendix K.3 (SHA-512).
"""

from __future__ import annotations

import hashlib
from typing import Final

import pytest
import rbcl
from hypothesis import given, settings
from hypothesis import strategies as st

from ldn.localization import oprf

# --- RFC 9497 Appendix A.1.1, ristretto255-SHA512, OPRF mode (hex, as printed in the RFC) ------
RFC9497_SEED: Final = "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3"
RFC9497_KEY_INFO: Final = "74657374206b6579"  # "test key"
RFC9497_SKSM: Final = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e"
RFC9497_VECTORS: Final[list[dict[str, str]]] = [
    {
        "name": "Test Vector 1, Batch Size 1",
        "Input": "00",
        "Blind": "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
        "BlindedElement": "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "EvaluationElement": "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        "Output": (
            "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
            "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6"
        ),
    },
    {
        "name": "Test Vector 2, Batch Size 1",
        "Input": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "Blind": "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
        "BlindedElement": "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "EvaluationElement": "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        "Output": (
            "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
            "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73"
        ),
    },
]

# --- RFC 9380 Appendix K.3, expand_message_xmd(SHA-512) -------------------------------------------
RFC9380_XMD_DST: Final = b"QUUX-V01-CS02-with-expander-SHA512-256"
RFC9380_XMD_VECTORS: Final[list[tuple[bytes, int, str]]] = [
    (b"", 0x20, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
    (b"abc", 0x20, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
]

VECTOR_IDS = [v["name"] for v in RFC9497_VECTORS]


def _rfc_key() -> bytes:
    return oprf.derive_key_pair(bytes.fromhex(RFC9497_SEED), bytes.fromhex(RFC9497_KEY_INFO)).private_key


def _valid_element() -> bytes:
    return oprf.hash_to_group(b"a valid element")


# ------------------------------------------------------------------------------------ constants


def test_context_string_is_the_rfc_one() -> None:
    assert oprf.CONTEXT_STRING == b"OPRFV1-\x00-ristretto255-SHA512"
    assert oprf.HASH_TO_GROUP_DST == b"HashToGroup-OPRFV1-\x00-ristretto255-SHA512"
    assert oprf.HASH_TO_SCALAR_DST == b"HashToScalar-OPRFV1-\x00-ristretto255-SHA512"
    assert oprf.DERIVE_KEY_PAIR_DST == b"DeriveKeyPairOPRFV1-\x00-ristretto255-SHA512"


@pytest.mark.parametrize(("msg", "length", "expected"), RFC9380_XMD_VECTORS)
def test_expand_message_xmd_rfc9380(msg: bytes, length: int, expected: str) -> None:
    assert oprf.expand_message_xmd(msg, RFC9380_XMD_DST, length).hex() == expected


def test_expand_message_xmd_binds_the_output_length() -> None:
    # Longer outputs are a different computation (len_in_bytes is in the transcript), not a prefix.
    short = oprf.expand_message_xmd(b"abc", RFC9380_XMD_DST, 32)
    long = oprf.expand_message_xmd(b"abc", RFC9380_XMD_DST, 200)
    assert len(long) == 200
    assert long[:32] != short


@pytest.mark.parametrize(("dst", "length"), [(b"", 32), (b"x" * 256, 32), (b"d", 0), (b"d", 255 * 64 + 1)])
def test_expand_message_xmd_rejects_bad_parameters(dst: bytes, length: int) -> None:
    with pytest.raises(ValueError):
        oprf.expand_message_xmd(b"m", dst, length)


# ------------------------------------------------------------------------------ RFC 9497 vectors


def test_derive_key_pair_gives_rfc_sksm() -> None:
    key_pair = oprf.derive_key_pair(bytes.fromhex(RFC9497_SEED), bytes.fromhex(RFC9497_KEY_INFO))
    assert key_pair.private_key.hex() == RFC9497_SKSM
    assert key_pair.public_key == rbcl.crypto_scalarmult_ristretto255_base(key_pair.private_key)
    assert RFC9497_SKSM not in repr(key_pair)


@pytest.mark.parametrize("vector", RFC9497_VECTORS, ids=VECTOR_IDS)
def test_blind_gives_rfc_blinded_element(vector: dict[str, str]) -> None:
    result = oprf.blind(bytes.fromhex(vector["Input"]), blind_scalar=bytes.fromhex(vector["Blind"]))
    assert result.blind.hex() == vector["Blind"]
    assert result.blinded_element.hex() == vector["BlindedElement"]


@pytest.mark.parametrize("vector", RFC9497_VECTORS, ids=VECTOR_IDS)
def test_blind_evaluate_gives_rfc_evaluation_element(vector: dict[str, str]) -> None:
    evaluated = oprf.blind_evaluate(bytes.fromhex(RFC9497_SKSM), bytes.fromhex(vector["BlindedElement"]))
    assert evaluated.hex() == vector["EvaluationElement"]


@pytest.mark.parametrize("vector", RFC9497_VECTORS, ids=VECTOR_IDS)
def test_finalize_gives_rfc_output(vector: dict[str, str]) -> None:
    output = oprf.finalize(
        bytes.fromhex(vector["Input"]),
        bytes.fromhex(vector["Blind"]),
        bytes.fromhex(vector["EvaluationElement"]),
    )
    assert len(output) == oprf.OUTPUT_LENGTH
    assert output.hex() == vector["Output"]


@pytest.mark.parametrize("vector", RFC9497_VECTORS, ids=VECTOR_IDS)
def test_full_protocol_and_evaluate_give_rfc_output(vector: dict[str, str]) -> None:
    private_input = bytes.fromhex(vector["Input"])
    key = _rfc_key()
    blinded = oprf.blind(private_input, blind_scalar=bytes.fromhex(vector["Blind"]))
    evaluated = oprf.blind_evaluate(key, blinded.blinded_element)
    assert oprf.finalize(private_input, blinded.blind, evaluated).hex() == vector["Output"]
    assert oprf.evaluate(key, private_input).hex() == vector["Output"]


@pytest.mark.parametrize("vector", RFC9497_VECTORS, ids=VECTOR_IDS)
def test_unblind_gives_key_times_hash_to_group(vector: dict[str, str]) -> None:
    private_input = bytes.fromhex(vector["Input"])
    unblinded = oprf.unblind(bytes.fromhex(vector["Blind"]), bytes.fromhex(vector["EvaluationElement"]))
    direct = rbcl.crypto_scalarmult_ristretto255(bytes.fromhex(RFC9497_SKSM), oprf.hash_to_group(private_input))
    assert unblinded == direct


# ------------------------------------------------------------------------------ negative cases

_P = 2**255 - 19
INVALID_ELEMENT_ENCODINGS = {
    "identity": oprf.IDENTITY_ELEMENT,
    "negative field element (low bit set)": b"\x01" + bytes(31),
    "non-canonical: p itself": _P.to_bytes(32, "little"),
    "non-canonical: all ones": b"\xff" * 32,
}


@pytest.mark.parametrize("encoding", INVALID_ELEMENT_ENCODINGS.values(), ids=INVALID_ELEMENT_ENCODINGS.keys())
def test_deserialize_element_rejects_invalid_encodings(encoding: bytes) -> None:
    with pytest.raises(oprf.InvalidElementError):
        oprf.deserialize_element(encoding)


def test_identity_is_rejected_everywhere_an_element_comes_in() -> None:
    key = _rfc_key()
    with pytest.raises(oprf.InvalidElementError, match="identity"):
        oprf.deserialize_element(oprf.IDENTITY_ELEMENT)
    with pytest.raises(oprf.InvalidElementError):
        oprf.blind_evaluate(key, oprf.IDENTITY_ELEMENT)
    with pytest.raises(oprf.InvalidElementError):
        oprf.finalize(b"x", oprf.random_scalar(), oprf.IDENTITY_ELEMENT)
    with pytest.raises(oprf.InvalidElementError):
        oprf.unblind(oprf.random_scalar(), oprf.IDENTITY_ELEMENT)


def test_valid_element_with_top_bit_set_is_rejected() -> None:
    # Regression: the libsodium bundled in rbcl accepts this second encoding of the same element.
    element = _valid_element()
    assert oprf.deserialize_element(element) == element
    tampered = element[:31] + bytes([element[31] | 0x80])
    with pytest.raises(oprf.InvalidElementError):
        oprf.deserialize_element(tampered)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_wrong_length_elements_and_scalars_are_rejected(length: int) -> None:
    with pytest.raises(oprf.InvalidElementError, match="32 bytes"):
        oprf.deserialize_element(b"\x02" * length)
    with pytest.raises(oprf.InvalidScalarError, match="32 bytes"):
        oprf.deserialize_scalar(b"\x02" * length)
    with pytest.raises(oprf.InvalidElementError):
        oprf.blind_evaluate(_rfc_key(), b"\x02" * length)


def test_non_bytes_are_rejected() -> None:
    with pytest.raises(oprf.InvalidElementError):
        oprf.deserialize_element("00" * 32)  # type: ignore[arg-type]
    with pytest.raises(oprf.InvalidScalarError):
        oprf.deserialize_scalar(bytearray(32))  # type: ignore[arg-type]
    with pytest.raises(oprf.InvalidInputError):
        oprf.blind("999990019")  # type: ignore[arg-type]


def test_zero_scalar_is_rejected_everywhere() -> None:
    zero = bytes(32)
    element = _valid_element()
    with pytest.raises(oprf.InvalidScalarError, match="zero"):
        oprf.deserialize_scalar(zero)
    with pytest.raises(oprf.InvalidScalarError):
        oprf.blind(b"input", blind_scalar=zero)
    with pytest.raises(oprf.InvalidScalarError):
        oprf.blind_evaluate(zero, element)
    with pytest.raises(oprf.InvalidScalarError):
        oprf.unblind(zero, element)
    with pytest.raises(oprf.InvalidScalarError):
        oprf.evaluate(zero, b"input")


def test_non_canonical_scalars_are_rejected() -> None:
    with pytest.raises(oprf.InvalidScalarError, match="canonical"):
        oprf.deserialize_scalar(oprf.GROUP_ORDER.to_bytes(32, "little"))
    with pytest.raises(oprf.InvalidScalarError):
        oprf.deserialize_scalar(b"\xff" * 32)
    largest = (oprf.GROUP_ORDER - 1).to_bytes(32, "little")
    assert oprf.deserialize_scalar(largest) == largest


def test_random_32_bytes_are_mostly_not_elements() -> None:
    # Fixed "random-looking" inputs: SHA-512 halves are uniformly distributed, and far from every
    # 32-byte string is a canonical ristretto255 encoding; each must either fail or be valid.
    rejected = 0
    for i in range(64):
        candidate = hashlib.sha512(i.to_bytes(2, "big")).digest()[:32]
        try:
            oprf.deserialize_element(candidate)
        except oprf.InvalidElementError:
            rejected += 1
        else:
            assert rbcl.crypto_core_ristretto255_is_valid_point(candidate)
    assert rejected > 32


def test_overlong_input_is_rejected() -> None:
    too_long = b"\x00" * (oprf.MAX_INPUT_LENGTH + 1)
    with pytest.raises(oprf.InvalidInputError):
        oprf.blind(too_long)
    with pytest.raises(oprf.InvalidInputError):
        oprf.evaluate(_rfc_key(), too_long)
    with pytest.raises(oprf.InvalidInputError):
        oprf.finalize(too_long, oprf.random_scalar(), _valid_element())


@pytest.mark.parametrize(("seed", "info"), [(b"\xa3" * 31, b""), (b"\xa3" * 33, b""), (b"\xa3" * 32, b"i" * 65536)])
def test_derive_key_pair_rejects_bad_seed_or_info(seed: bytes, info: bytes) -> None:
    with pytest.raises(oprf.DeriveKeyPairError):
        oprf.derive_key_pair(seed, info)


def test_errors_are_value_errors() -> None:
    for error in (oprf.InvalidElementError, oprf.InvalidScalarError, oprf.InvalidInputError, oprf.DeriveKeyPairError):
        assert issubclass(error, oprf.OPRFError)
        assert issubclass(error, ValueError)


# ------------------------------------------------------------------------------ properties

_inputs = st.binary(max_size=64)
_seeds = st.binary(min_size=32, max_size=32)


@settings(max_examples=40, deadline=None)
@given(private_input=_inputs, seed=_seeds)
def test_blind_protocol_equals_direct_evaluate(private_input: bytes, seed: bytes) -> None:
    key = oprf.derive_key_pair(seed, b"property").private_key
    blinded = oprf.blind(private_input)
    evaluated = oprf.blind_evaluate(key, blinded.blinded_element)
    assert oprf.finalize(private_input, blinded.blind, evaluated) == oprf.evaluate(key, private_input)


@settings(max_examples=40, deadline=None)
@given(private_input=_inputs, seed_a=_seeds, seed_b=_seeds)
def test_different_keys_give_different_outputs(private_input: bytes, seed_a: bytes, seed_b: bytes) -> None:
    key_a = oprf.derive_key_pair(seed_a, b"property").private_key
    key_b = oprf.derive_key_pair(seed_b, b"property").private_key
    if key_a == key_b:
        assert seed_a == seed_b
        return
    assert oprf.evaluate(key_a, private_input) != oprf.evaluate(key_b, private_input)
    assert oprf.unblind(*_round_trip(key_a, private_input)) != oprf.unblind(*_round_trip(key_b, private_input))


def _round_trip(key: bytes, private_input: bytes) -> tuple[bytes, bytes]:
    blinded = oprf.blind(private_input)
    return blinded.blind, oprf.blind_evaluate(key, blinded.blinded_element)


@settings(max_examples=40, deadline=None)
@given(private_input=_inputs)
def test_fresh_blinds_hide_the_input_but_unblind_to_the_same_element(private_input: bytes) -> None:
    key = oprf.generate_key_pair().private_key
    first = oprf.blind(private_input)
    second = oprf.blind(private_input)
    assert first.blinded_element != second.blinded_element
    unblinded_first = oprf.unblind(first.blind, oprf.blind_evaluate(key, first.blinded_element))
    unblinded_second = oprf.unblind(second.blind, oprf.blind_evaluate(key, second.blinded_element))
    assert unblinded_first == unblinded_second
    assert unblinded_first == rbcl.crypto_scalarmult_ristretto255(key, oprf.hash_to_group(private_input))


@settings(max_examples=60, deadline=None)
@given(candidate=st.binary(min_size=32, max_size=32))
def test_deserialize_element_accepts_exactly_canonical_non_identity_points(candidate: bytes) -> None:
    # Canonical means below p, so bit 255 is clear (RFC 9496 §4.3.1); libsodium is the oracle for
    # the rest of the decoding rules.
    expected_valid = (
        candidate != oprf.IDENTITY_ELEMENT
        and not candidate[-1] & 0x80
        and rbcl.crypto_core_ristretto255_is_valid_point(candidate)
    )
    try:
        oprf.deserialize_element(candidate)
    except oprf.InvalidElementError:
        assert not expected_valid
    else:
        assert expected_valid
