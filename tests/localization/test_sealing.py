"""The fast P-256 envelope codec, its interoperability with joserfc, and PRS origin tags."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import pytest
from joserfc.jwk import ECKey

from ldn.localization import envelope, oprf
from ldn.localization.envelope import (
    EnvelopeError,
    EnvelopeOpener,
    EnvelopeSealer,
    OriginError,
    OriginKey,
    WrongRecipientError,
)


@pytest.fixture(scope="module")
def recipient() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "nvi-test"}, private=True)


@pytest.fixture(scope="module")
def origin() -> OriginKey:
    return OriginKey.from_seed(b"\x01" * 32)


@pytest.fixture(scope="module")
def element() -> bytes:
    return oprf.blind_evaluate(oprf.generate_key_pair().private_key, oprf.blind(b"input").blinded_element)


def _public(key: ECKey) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_fast_seal_opens_with_joserfc_and_back(recipient: ECKey, origin: OriginKey, element: bytes) -> None:
    token = EnvelopeSealer(_public(recipient), origin=origin).seal(element, oprf_key_version="3")
    opened = envelope.open_envelope(token, recipient)  # joserfc, the reference
    assert opened.evaluated_element == element and opened.oprf_key_version == "3" and opened.kid == "nvi-test"
    header = _header(token)
    assert header["alg"] == "ECDH-ES+A256KW" and header["enc"] == "A256GCM"
    assert abs(header["iat"] - time.time()) < 5 and len(envelope.b64url_decode(header["prs_tag"])) == 32
    # and the fast opener opens what joserfc seals (no origin tag: only without origin keys)
    joserfc_token = envelope.seal_evaluated_output(element, recipient.as_dict(private=False), oprf_key_version="1")
    assert EnvelopeOpener(recipient).open(joserfc_token).evaluated_element == element


def test_origin_tag_is_checked(recipient: ECKey, origin: OriginKey, element: bytes) -> None:
    opener = EnvelopeOpener(recipient, [origin.public_jwk()])
    good = EnvelopeSealer(_public(recipient), origin=origin).seal(element, oprf_key_version="1")
    result = opener.open(good)
    assert result.origin_verified and result.evaluated_element == element
    # Sealed by anyone else with the public key: no tag, or a tag from another key.
    with pytest.raises(OriginError):
        opener.open(EnvelopeSealer(_public(recipient)).seal(element, oprf_key_version="1"))
    impostor = OriginKey.from_seed(b"\x02" * 32)
    with pytest.raises(OriginError):
        opener.open(EnvelopeSealer(_public(recipient), origin=impostor).seal(element, oprf_key_version="1"))


def test_the_tag_binds_version_and_time(recipient: ECKey, origin: OriginKey, element: bytes) -> None:
    """Rewriting iat or the version breaks AES-GCM (the header is its AAD); the tag also covers
    them, so a re-encryption by a client with a changed header cannot reuse an old tag."""
    opener = EnvelopeOpener(recipient, [origin.public_jwk()])
    token = EnvelopeSealer(_public(recipient), origin=origin).seal(element, oprf_key_version="1")
    header = _header(token)
    # Build a fresh, correctly encrypted envelope with the PRS's tag but another version.
    forged_header = {**header, "oprf_key_version": "2"}
    forged = _reseal(recipient, element, forged_header)
    with pytest.raises(OriginError):
        opener.open(forged)
    forged = _reseal(recipient, element, {**header, "iat": header["iat"] + 1})
    with pytest.raises(OriginError):
        opener.open(forged)


def _reseal(recipient: ECKey, element: bytes, header: dict[str, Any]) -> str:
    """Encrypt ``element`` to the recipient under an arbitrary protected header (an attacker)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    public = envelope._p256_public_from_jwk(_public(recipient), "r")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    kek = envelope._concat_kdf_a256kw(ephemeral.exchange(ec.ECDH(), public))
    header = {**header, "epk": envelope._public_point_jwk(ephemeral.public_key())}
    protected = _b64(json.dumps(header).encode())
    cek, iv = os.urandom(32), os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, element, protected.encode())
    return ".".join([protected, _b64(aes_key_wrap(kek, cek)), _b64(iv), _b64(sealed[:-16]), _b64(sealed[-16:])])


def test_another_recipient_and_tampering_are_refused(recipient: ECKey, origin: OriginKey, element: bytes) -> None:
    other = ECKey.generate_key("P-256", private=True)
    token = EnvelopeSealer(_public(other), origin=origin).seal(element, oprf_key_version="1")
    with pytest.raises(WrongRecipientError):
        EnvelopeOpener(recipient, [origin.public_jwk()]).open(token)
    good = EnvelopeSealer(_public(recipient), origin=origin).seal(element, oprf_key_version="1")
    opener = EnvelopeOpener(recipient, [origin.public_jwk()])
    parts = good.split(".")
    for index in (1, 2, 3, 4):
        tampered = list(parts)
        i = len(tampered[index]) // 2
        tampered[index] = tampered[index][:i] + ("A" if tampered[index][i] != "A" else "B") + tampered[index][i + 1 :]
        with pytest.raises(EnvelopeError):
            opener.open(".".join(tampered))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.update(alg="RSA-OAEP-256"),
        lambda h: h.update(enc="A128GCM"),
        lambda h: h.update(zip="DEF"),
        lambda h: h.update(apu="QQ"),
        lambda h: h["epk"].update(crv="P-384"),
        lambda h: h["epk"].update(x=_b64(b"\x01" * 32)),  # not on the curve
        lambda h: h.update(oprf_key_version="../1"),
        lambda h: h.update(iat="yesterday"),
    ],
    ids=["alg", "enc", "zip", "apu", "curve", "off-curve", "version", "iat"],
)
def test_bad_headers_are_refused(recipient: ECKey, origin: OriginKey, element: bytes, mutate: Any) -> None:
    token = EnvelopeSealer(_public(recipient), origin=origin).seal(element, oprf_key_version="1")
    header = _header(token)
    mutate(header)
    parts = token.split(".")
    parts[0] = _b64(json.dumps(header).encode())
    with pytest.raises(EnvelopeError):
        EnvelopeOpener(recipient, [origin.public_jwk()]).open(".".join(parts))


def test_sealer_refuses_unsuitable_keys_and_elements(recipient: ECKey, element: bytes) -> None:
    with pytest.raises(EnvelopeError):
        EnvelopeSealer(recipient.as_dict(private=True))
    with pytest.raises(EnvelopeError):
        EnvelopeSealer(ECKey.generate_key("P-384").as_dict(private=False))
    sealer = EnvelopeSealer(_public(recipient))
    with pytest.raises(EnvelopeError):
        sealer.seal(bytes(32), oprf_key_version="1")
    with pytest.raises(EnvelopeError):
        sealer.seal(element, oprf_key_version="")


def test_origin_key_is_deterministic_and_public_jwk_has_no_secret() -> None:
    a, b = OriginKey.from_seed(b"\x05" * 32), OriginKey.from_seed(b"\x05" * 32)
    assert a.kid == b.kid and a.public_jwk() == b.public_jwk()
    assert "d" not in a.public_jwk() and a.kid not in repr(a.private_key)
    with pytest.raises(EnvelopeError):
        OriginKey.from_seed(b"short")


def test_validate_recipient_public_jwk() -> None:
    key = ECKey.generate_key("P-256")
    public, kid = envelope.validate_recipient_public_jwk(key.as_dict(private=False))
    assert public["kid"] == kid == key.thumbprint() and "d" not in public
    for bad in ("text", {"kty": "oct", "k": "A" * 43}, ECKey.generate_key("P-256").as_dict(private=True)):
        with pytest.raises(EnvelopeError):
            envelope.validate_recipient_public_jwk(bad)
