"""PRS answer envelope (JWE), NVI identifier codec, storage pseudonym, and the end-to-end flow."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
import rbcl
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from joserfc.registry import HeaderParameter

from ldn.localization import derivation, envelope, oprf
from ldn.localization.envelope import EnvelopeError

NVI_ORG = "ura:90000901"
NVI_SCOPE = "nationale-verwijsindex"
STORAGE_KEY = b"\x5c" * 32


# ------------------------------------------------------------------------------------ helpers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _flip_middle_char(part: str) -> str:
    # A middle character of base64url never carries padding bits, so the result stays canonical.
    i = len(part) // 2
    return part[:i] + ("A" if part[i] != "A" else "B") + part[i + 1 :]


def _tamper_part(token: str, index: int) -> str:
    parts = token.split(".")
    parts[index] = _flip_middle_char(parts[index])
    return ".".join(parts)


def _with_header(token: str, mutate: Callable[[dict[str, Any]], None]) -> str:
    parts = token.split(".")
    header = json.loads(_unb64(parts[0]))
    mutate(header)
    parts[0] = _b64(json.dumps(header).encode())
    return ".".join(parts)


def _nvi_value(document: Any) -> str:
    return _b64(json.dumps(document).encode())


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "nvi-ec-2026", "use": "enc"})


@pytest.fixture(scope="module")
def other_ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "other-ec"})


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "nvi-rsa-2026", "alg": "RSA-OAEP-256"})


@pytest.fixture(scope="module")
def element() -> bytes:
    return oprf.hash_to_group(b"an evaluated element stand-in")


@pytest.fixture(scope="module")
def ec_token(ec_key: ECKey, element: bytes) -> str:
    return envelope.seal_evaluated_output(element, ec_key.as_dict(private=False), oprf_key_version="v1")


# ------------------------------------------------------------------------------------ envelope


def test_ec_round_trip_and_header(ec_key: ECKey, element: bytes, ec_token: str) -> None:
    header = envelope.envelope_header(ec_token)
    assert header == envelope.EnvelopeHeader(alg="ECDH-ES+A256KW", kid="nvi-ec-2026", oprf_key_version="v1")
    raw_header = json.loads(_unb64(ec_token.split(".")[0]))
    assert raw_header["enc"] == "A256GCM"
    assert raw_header["epk"]["crv"] == "P-256"

    opened = envelope.open_envelope(ec_token, ec_key.as_dict(private=True))
    assert opened.evaluated_element == element
    assert (opened.kid, opened.oprf_key_version) == ("nvi-ec-2026", "v1")
    assert envelope.open_evaluated_output(ec_token, ec_key) == element


def test_ec_envelopes_use_fresh_ephemeral_keys(ec_key: ECKey, element: bytes) -> None:
    public = ec_key.as_dict(private=False)
    first = envelope.seal_evaluated_output(element, public, oprf_key_version="v1")
    second = envelope.seal_evaluated_output(element, public, oprf_key_version="v1")
    epk_first = json.loads(_unb64(first.split(".")[0]))["epk"]
    epk_second = json.loads(_unb64(second.split(".")[0]))["epk"]
    assert epk_first != epk_second
    assert first.split(".")[3] != second.split(".")[3]


def test_rsa_round_trip(rsa_key: RSAKey, element: bytes) -> None:
    token = envelope.seal_evaluated_output(element, rsa_key.as_dict(private=False), oprf_key_version="2026-01")
    header = envelope.envelope_header(token)
    assert header == envelope.EnvelopeHeader(alg="RSA-OAEP-256", kid="nvi-rsa-2026", oprf_key_version="2026-01")
    assert envelope.open_evaluated_output(token, rsa_key.as_dict(private=True)) == element
    assert envelope.open_evaluated_output(token, rsa_key) == element


def test_kid_defaults_to_the_jwk_thumbprint(element: bytes) -> None:
    key = ECKey.generate_key("P-256")
    token = envelope.seal_evaluated_output(element, key.as_dict(private=False), oprf_key_version="v1")
    assert envelope.envelope_header(token).kid == key.thumbprint()
    assert envelope.open_evaluated_output(token, key) == element


def test_envelope_for_another_recipient_key_is_refused(
    ec_key: ECKey, other_ec_key: ECKey, rsa_key: RSAKey, ec_token: str
) -> None:
    with pytest.raises(EnvelopeError, match="different recipient key"):
        envelope.open_evaluated_output(ec_token, other_ec_key)
    # Same kid, different key material: caught by decryption, not by the name check.
    impostor = ECKey.generate_key("P-256", parameters={"kid": "nvi-ec-2026"})
    with pytest.raises(EnvelopeError, match="could not be decrypted"):
        envelope.open_evaluated_output(ec_token, impostor)
    # No kid on the key: still refused by decryption.
    with pytest.raises(EnvelopeError, match="could not be decrypted"):
        envelope.open_evaluated_output(ec_token, ECKey.generate_key("P-256"))
    with pytest.raises(EnvelopeError, match="algorithm"):
        envelope.open_evaluated_output(ec_token, rsa_key)


def test_envelope_for_another_rsa_key_is_refused(rsa_key: RSAKey, element: bytes) -> None:
    token = envelope.seal_evaluated_output(element, rsa_key.as_dict(private=False), oprf_key_version="v1")
    other = RSAKey.import_key(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), parameters={"kid": "nvi-rsa-2026"}
    )
    with pytest.raises(EnvelopeError, match="could not be decrypted"):
        envelope.open_evaluated_output(token, other)


@pytest.mark.parametrize(("index", "name"), [(1, "encrypted key"), (2, "iv"), (3, "ciphertext"), (4, "tag")])
def test_tampered_envelope_is_refused(ec_key: ECKey, ec_token: str, index: int, name: str) -> None:
    tampered = _tamper_part(ec_token, index)
    assert tampered != ec_token
    with pytest.raises(EnvelopeError, match="could not be decrypted"):
        envelope.open_evaluated_output(tampered, ec_key)


def test_header_is_authenticated(ec_key: ECKey, ec_token: str) -> None:
    # Claiming another key version must break decryption: the protected header is the GCM AAD.
    relabelled = _with_header(ec_token, lambda h: h.update({"oprf_key_version": "v2"}))
    assert envelope.envelope_header(relabelled).oprf_key_version == "v2"
    with pytest.raises(EnvelopeError, match="could not be decrypted"):
        envelope.open_evaluated_output(relabelled, ec_key)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.update({"zip": "DEF"}), "unsupported parameters"),
        (lambda h: h.update({"crit": ["exp"], "exp": 1}), "unsupported parameters"),
        (lambda h: h.update({"jku": "https://attacker.example/jwks"}), "unsupported parameters"),
        (lambda h: h.update({"alg": "dir"}), "alg"),
        (lambda h: h.update({"alg": "RSA1_5"}), "alg"),
        (lambda h: h.update({"enc": "A128CBC-HS256"}), "enc"),
        (lambda h: h.pop("kid"), "kid"),
        (lambda h: h.pop("oprf_key_version"), "oprf_key_version"),
        (lambda h: h.update({"oprf_key_version": "v 1"}), "oprf_key_version"),
        (lambda h: h.update({"oprf_key_version": 1}), "oprf_key_version"),
    ],
)
def test_unexpected_headers_are_refused(
    ec_key: ECKey, ec_token: str, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(EnvelopeError, match=message):
        envelope.open_evaluated_output(_with_header(ec_token, mutate), ec_key)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not a jwe",
        "a.b.c.d",
        "a.b.c.d.e.f",
        "a+b.c.d.e.f",
        "eyJhbGciOiJkaXIifQ==.b.c.d.e",
        _b64(b"not json") + ".AA.AA.AA.AA",
        _b64(b"[1, 2]") + ".AA.AA.AA.AA",
        _b64(b'{"alg":"ECDH-ES+A256KW","alg":"dir"}') + ".AA.AA.AA.AA",
        "x" * 7000,
    ],
)
def test_malformed_envelopes_are_refused(ec_key: ECKey, malformed: str) -> None:
    with pytest.raises(EnvelopeError):
        envelope.open_evaluated_output(malformed, ec_key)


def test_envelope_with_a_non_element_payload_is_refused(ec_key: ECKey) -> None:
    # Encrypt arbitrary bytes with joserfc directly: a valid JWE that does not carry an element.
    registry = jwe.JWERegistry(header_registry={"oprf_key_version": HeaderParameter("v", "str")})
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": "nvi-ec-2026", "oprf_key_version": "v1"}
    for payload in (oprf.IDENTITY_ELEMENT, b"\x01" * 31, b"\xff" * 32):
        token = jwe.encrypt_compact(header, payload, ec_key, registry=registry)
        with pytest.raises(EnvelopeError, match="valid OPRF element"):
            envelope.open_evaluated_output(token, ec_key)


@pytest.mark.filterwarnings("ignore:Key size should be:joserfc.errors.SecurityWarning")
def test_seal_refuses_unsuitable_keys(ec_key: ECKey, element: bytes) -> None:
    # Deliberately weak key: sealing to it must be refused.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    small_rsa = RSAKey.import_key(weak.public_key())
    unsuitable: list[Any] = [
        ec_key,  # private key: the PRS must only hold public keys
        ECKey.generate_key("P-384").as_dict(private=False),
        small_rsa.as_dict(private=False),
        ECKey.generate_key("P-256", parameters={"use": "sig"}).as_dict(private=False),
        ECKey.generate_key("P-256", parameters={"alg": "ECDH-ES"}).as_dict(private=False),
        OKPKey.generate_key("X25519").as_dict(private=False),
        OctKey.generate_key(256).as_dict(),
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "nope"},
        "not a key",
    ]
    for key in unsuitable:
        with pytest.raises(EnvelopeError):
            envelope.seal_evaluated_output(element, key, oprf_key_version="v1")


def test_open_refuses_a_public_key(ec_key: ECKey, ec_token: str) -> None:
    with pytest.raises(EnvelopeError, match="private key"):
        envelope.open_evaluated_output(ec_token, ec_key.as_dict(private=False))


@pytest.mark.parametrize("bad_element", [oprf.IDENTITY_ELEMENT, b"\x01" * 31, b"\x01" + bytes(31)])
def test_seal_refuses_invalid_elements(ec_key: ECKey, bad_element: bytes) -> None:
    with pytest.raises(EnvelopeError, match="element"):
        envelope.seal_evaluated_output(bad_element, ec_key.as_dict(private=False), oprf_key_version="v1")


@pytest.mark.parametrize("bad_version", ["", "v 1", "v|1", "x" * 65, "versión"])
def test_seal_refuses_bad_key_versions(ec_key: ECKey, element: bytes, bad_version: str) -> None:
    with pytest.raises(EnvelopeError, match="oprf_key_version"):
        envelope.seal_evaluated_output(element, ec_key.as_dict(private=False), oprf_key_version=bad_version)


def test_error_messages_hold_no_key_material(ec_key: ECKey, other_ec_key: ECKey, ec_token: str) -> None:
    private_d = str(ec_key.as_dict(private=True)["d"])
    other_d = str(other_ec_key.as_dict(private=True)["d"])
    for token, key in [(ec_token, other_ec_key), (_tamper_part(ec_token, 3), ec_key)]:
        with pytest.raises(EnvelopeError) as excinfo:
            envelope.open_evaluated_output(token, key)
        text = str(excinfo.value)
        assert private_d not in text
        assert other_d not in text
        assert token not in text


# ------------------------------------------------------------------------------------ NVI codec


def test_nvi_identifier_round_trip(ec_token: str) -> None:
    blind = oprf.random_scalar()
    value = envelope.encode_nvi_identifier(ec_token, blind)
    assert "=" not in value
    assert json.loads(_unb64(value)) == {"evaluated_output": ec_token, "blind_factor": _b64(blind)}
    decoded = envelope.decode_nvi_identifier(value)
    assert decoded == envelope.NviIdentifier(evaluated_output=ec_token, blind_factor=blind)
    jwe_value, blind_value = decoded
    assert (jwe_value, blind_value) == (ec_token, blind)
    assert envelope.encode_nvi_identifier(ec_token, blind) == value  # deterministic (JCS)


def test_encode_refuses_bad_inputs(ec_token: str) -> None:
    with pytest.raises(EnvelopeError):
        envelope.encode_nvi_identifier("not.a.jwe", oprf.random_scalar())
    for bad_blind in (bytes(32), b"\x01" * 31, oprf.GROUP_ORDER.to_bytes(32, "little")):
        with pytest.raises(EnvelopeError, match="blind"):
            envelope.encode_nvi_identifier(ec_token, bad_blind)


def _bad_nvi_values(token: str) -> dict[str, tuple[Any, str]]:
    """name -> (value, expected message fragment)."""
    good_blind = _b64(oprf.random_scalar())
    good = _nvi_value({"evaluated_output": token, "blind_factor": good_blind})
    one_too_many = good + "A" * ((1 - len(good)) % 4)  # length == 1 (mod 4) is never valid base64
    duplicate = f'{{"evaluated_output":"{token}","blind_factor":"{good_blind}","blind_factor":"{good_blind}"}}'
    order = oprf.GROUP_ORDER.to_bytes(32, "little")
    return {
        "empty": ("", "type or length"),
        "not a string": (b"abc", "type or length"),
        "too long": ("A" * (envelope.MAX_NVI_IDENTIFIER_LENGTH + 4), "type or length"),
        "padding": (good + "=" * (-len(good) % 4 or 4), "base64url"),
        "standard alphabet": (good + "+/", "base64url"),
        "impossible length": (one_too_many, "base64url"),
        "non-canonical trailing bits": (_b64(b"{}")[:-1] + "D", "canonical base64url"),
        "not JSON": (_b64(b"evaluated_output=x&blind_factor=y"), "not valid JSON"),
        "not UTF-8": (_b64(b"\xff\xfe{}"), "not valid JSON"),
        "integer over the digit limit": (_b64(b'{"evaluated_output":' + b"1" * 5000 + b"}"), "not valid JSON"),
        "JSON array": (_nvi_value([token, good_blind]), "JSON object"),
        "JSON string": (_nvi_value("x"), "JSON object"),
        "missing blind_factor": (_nvi_value({"evaluated_output": token}), "exactly"),
        "missing evaluated_output": (_nvi_value({"blind_factor": good_blind}), "exactly"),
        "extra member": (_nvi_value({"evaluated_output": token, "blind_factor": good_blind, "x": 1}), "exactly"),
        "duplicate member": (_b64(duplicate.encode()), "duplicate"),
        "evaluated_output not a string": (_nvi_value({"evaluated_output": 1, "blind_factor": good_blind}), "JWE"),
        "evaluated_output not a JWE": (_nvi_value({"evaluated_output": "a.b.c", "blind_factor": good_blind}), "JWE"),
        "blind_factor not a string": (_nvi_value({"evaluated_output": token, "blind_factor": 5}), "blind_factor"),
        "blind_factor bad base64": (_nvi_value({"evaluated_output": token, "blind_factor": "***"}), "blind_factor"),
        "blind_factor padded": (
            _nvi_value({"evaluated_output": token, "blind_factor": good_blind + "="}),
            "blind_factor",
        ),
        "blind_factor 31 bytes": (
            _nvi_value({"evaluated_output": token, "blind_factor": _b64(b"\x01" * 31)}),
            "blind_factor",
        ),
        "blind_factor 33 bytes": (
            _nvi_value({"evaluated_output": token, "blind_factor": _b64(b"\x01" * 33)}),
            "blind_factor",
        ),
        "blind_factor zero": (_nvi_value({"evaluated_output": token, "blind_factor": _b64(bytes(32))}), "blind_factor"),
        "blind_factor >= order": (_nvi_value({"evaluated_output": token, "blind_factor": _b64(order)}), "blind_factor"),
    }


_BAD_NVI_CASES = list(_bad_nvi_values("h.k.i.c.t"))


@pytest.mark.parametrize("case", _BAD_NVI_CASES)
def test_malformed_nvi_identifiers_are_refused(ec_token: str, case: str) -> None:
    value, message = _bad_nvi_values(ec_token)[case]
    with pytest.raises(EnvelopeError, match=message):
        envelope.decode_nvi_identifier(value)


@settings(max_examples=100, deadline=None)
@given(
    value=st.text(max_size=300) | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
)
def test_decoding_arbitrary_text_only_raises_envelope_error(value: str) -> None:
    try:
        decoded = envelope.decode_nvi_identifier(value)
    except EnvelopeError:
        return
    oprf.deserialize_scalar(decoded.blind_factor)  # anything accepted must be fully valid


@settings(max_examples=100, deadline=None)
@given(value=st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_-]{0,40}(\.[A-Za-z0-9_-]{0,40}){4}", fullmatch=True))
def test_opening_arbitrary_text_only_raises_envelope_error(ec_key: ECKey, value: str) -> None:
    with pytest.raises(EnvelopeError):
        envelope.open_evaluated_output(value, ec_key)


@settings(max_examples=25, deadline=None)
@given(blind_int=st.integers(min_value=1, max_value=oprf.GROUP_ORDER - 1))
def test_nvi_identifier_round_trips_every_valid_blind(ec_token: str, blind_int: int) -> None:
    blind = blind_int.to_bytes(32, "little")
    assert envelope.decode_nvi_identifier(envelope.encode_nvi_identifier(ec_token, blind)) == (ec_token, blind)


# ------------------------------------------------------------------------------------ pseudonym


def test_pseudonym_hmac_is_hmac_sha256(element: bytes) -> None:
    expected = hmac.new(STORAGE_KEY, element, hashlib.sha256).digest()
    assert envelope.pseudonym_hmac(element, STORAGE_KEY) == expected
    assert envelope.pseudonym_hmac(element, b"\x5d" * 32) != expected


def test_pseudonym_hmac_refuses_bad_inputs(element: bytes) -> None:
    with pytest.raises(EnvelopeError, match="storage_key"):
        envelope.pseudonym_hmac(element, b"short")
    with pytest.raises(EnvelopeError, match="element"):
        envelope.pseudonym_hmac(oprf.IDENTITY_ELEMENT, STORAGE_KEY)


# ------------------------------------------------------------------------------------ end to end


class _Prs:
    """A stand-in PRS: one OPRF key per (recipient, scope, key version), never seeing the input."""

    def __init__(self, seed: bytes, key_version: str = "v1") -> None:
        self._seed = seed
        self.key_version = key_version

    def private_key(self, organization: str, scope: str) -> bytes:
        info = f"{organization}|{scope}|{self.key_version}".encode()
        return oprf.derive_key_pair(self._seed, info).private_key

    def evaluate(self, blinded_element: bytes, organization: str, scope: str, recipient_public: dict[str, Any]) -> str:
        evaluated = oprf.blind_evaluate(self.private_key(organization, scope), blinded_element)
        return envelope.seal_evaluated_output(evaluated, recipient_public, oprf_key_version=self.key_version)


def _client_registers(prs: _Prs, bsn: str, recipient_key: ECKey | RSAKey, org: str = NVI_ORG) -> str:
    oprf_input = derivation.derive_oprf_input(bsn, org, NVI_SCOPE)
    blinded = oprf.blind(oprf_input)
    evaluated_output = prs.evaluate(blinded.blinded_element, org, NVI_SCOPE, recipient_key.as_dict(private=False))
    return envelope.encode_nvi_identifier(evaluated_output, blinded.blind)


def _nvi_unblinds(value: str, recipient_key: ECKey | RSAKey) -> bytes:
    jwe_value, blind = envelope.decode_nvi_identifier(value)
    return oprf.unblind(blind, envelope.open_evaluated_output(jwe_value, recipient_key))


@pytest.mark.parametrize("key_fixture", ["ec_key", "rsa_key"])
def test_end_to_end_pseudonym_is_stable_and_correct(key_fixture: str, request: pytest.FixtureRequest) -> None:
    recipient_key: ECKey | RSAKey = request.getfixturevalue(key_fixture)
    prs = _Prs(seed=b"\x42" * 32)
    first = _client_registers(prs, "999990019", recipient_key)
    second = _client_registers(prs, "999990019", recipient_key)
    assert first != second  # fresh blind, fresh JWE: the two transactions are unlinkable on the wire

    unblinded_first = _nvi_unblinds(first, recipient_key)
    unblinded_second = _nvi_unblinds(second, recipient_key)
    oprf_input = derivation.derive_oprf_input("999990019", NVI_ORG, NVI_SCOPE)
    expected = rbcl.crypto_scalarmult_ristretto255(prs.private_key(NVI_ORG, NVI_SCOPE), oprf.hash_to_group(oprf_input))
    assert unblinded_first == expected
    assert unblinded_second == expected
    assert envelope.pseudonym_hmac(unblinded_first, STORAGE_KEY) == envelope.pseudonym_hmac(
        unblinded_second, STORAGE_KEY
    )


def test_end_to_end_separates_patients_recipients_and_key_versions(ec_key: ECKey) -> None:
    prs = _Prs(seed=b"\x42" * 32)
    patient_a = _nvi_unblinds(_client_registers(prs, "999990019", ec_key), ec_key)
    patient_b = _nvi_unblinds(_client_registers(prs, "999990007", ec_key), ec_key)
    other_recipient = _nvi_unblinds(_client_registers(prs, "999990019", ec_key, org="ura:90000902"), ec_key)
    rotated = _nvi_unblinds(_client_registers(_Prs(seed=b"\x42" * 32, key_version="v2"), "999990019", ec_key), ec_key)
    assert len({patient_a, patient_b, other_recipient, rotated}) == 4


def test_tampered_blind_factor_gives_a_wrong_pseudonym(ec_key: ECKey) -> None:
    prs = _Prs(seed=b"\x42" * 32)
    value = _client_registers(prs, "999990019", ec_key)
    right = _nvi_unblinds(value, ec_key)
    jwe_value, blind = envelope.decode_nvi_identifier(value)

    # A different but valid scalar decodes fine and unblinds to a different (useless) element.
    other_blind = rbcl.crypto_core_ristretto255_scalar_add(blind, (1).to_bytes(32, "little"))
    wrong = _nvi_unblinds(envelope.encode_nvi_identifier(jwe_value, other_blind), ec_key)
    assert wrong != right

    # Bit flips that leave the scalar range or zero it are refused outright.
    document = json.loads(_unb64(value))
    for bad in (blind[:31] + bytes([blind[31] | 0xF0]), bytes(32)):
        document["blind_factor"] = _b64(bad)
        with pytest.raises(EnvelopeError, match="blind_factor"):
            envelope.decode_nvi_identifier(_nvi_value(document))
