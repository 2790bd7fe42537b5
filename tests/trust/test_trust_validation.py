"""Chain validation (trust, time, revocation, UZI identity) and the x5c helpers."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from trust_helpers import NOW, PARTICIPANTS, CertKit, make_ca, uzi_value

from ldn.trust.pki import TestPki
from ldn.trust.validation import (
    CertificateValidationError,
    parse_x5c,
    thumbprint_s256,
    to_x5c,
    validate_chain,
)


def _reason(excinfo: pytest.ExceptionInfo[CertificateValidationError]) -> str:
    return excinfo.value.reason_code


# -- with the local test PKI ----------------------------------------------------------------


def test_valid_client_chain(memory_pki: TestPki) -> None:
    credential = memory_pki.credential(PARTICIPANTS[0].ura)
    identity = validate_chain(
        credential.certificate, memory_pki.intermediates, memory_pki.trust_anchors, crl=memory_pki.crl
    )
    assert identity.ura == "00000020"


def test_valid_server_chain_checks_the_name(memory_pki: TestPki) -> None:
    credential = memory_pki.credential(PARTICIPANTS[0].ura)
    args = (credential.certificate, memory_pki.intermediates, memory_pki.trust_anchors)
    assert validate_chain(*args, crl=memory_pki.crl, server_name="localhost").ura == "00000020"
    assert validate_chain(*args, crl=memory_pki.crl, server_name="127.0.0.1").ura == "00000020"
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(*args, crl=memory_pki.crl, server_name="zorg.example.org")
    assert _reason(info) == "untrusted"


def test_missing_intermediate_is_untrusted(memory_pki: TestPki) -> None:
    credential = memory_pki.credential(PARTICIPANTS[0].ura)
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(credential.certificate, [], memory_pki.trust_anchors, crl=memory_pki.crl)
    assert _reason(info) == "untrusted"


def test_chain_from_other_ca_is_untrusted(memory_pki: TestPki, other_certkit: CertKit) -> None:
    # A well-formed UZI certificate, same URA, but from a CA somebody made themselves.
    rogue = other_certkit.leaf(other_certkit.standard_san())
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(rogue, [other_certkit.ca], memory_pki.trust_anchors, crl=memory_pki.crl)
    assert _reason(info) == "untrusted"


def test_rogue_ca_with_copied_names_is_untrusted(memory_pki: TestPki) -> None:
    # Same subject names as our CAs, different keys: names alone must not confer trust.
    other = TestPki.create()
    rogue = other.issue(PARTICIPANTS[0])
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(rogue.certificate, other.intermediates, memory_pki.trust_anchors, crl=memory_pki.crl)
    assert _reason(info) == "untrusted"


def test_crl_from_wrong_signer_is_untrusted(memory_pki: TestPki, certkit: CertKit) -> None:
    credential = memory_pki.credential(PARTICIPANTS[0].ura)
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(memory_pki.issuing_certificate.subject)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=1))
        .sign(certkit.ca_key, hashes.SHA256())
    )
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(credential.certificate, memory_pki.intermediates, memory_pki.trust_anchors, crl=forged)
    assert _reason(info) == "untrusted"
    assert "signature" in str(info.value)


def test_stale_or_missing_crl_fails_closed(memory_pki: TestPki, certkit: CertKit) -> None:
    credential = memory_pki.credential(PARTICIPANTS[0].ura)
    args = (credential.certificate, memory_pki.intermediates, memory_pki.trust_anchors)
    assert memory_pki.crl is not None
    next_update = memory_pki.crl.next_update_utc
    assert next_update is not None
    later = next_update + dt.timedelta(seconds=1)
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(*args, crl=memory_pki.crl, at=later)
    assert _reason(info) == "untrusted"
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(*args, crl=[])
    assert _reason(info) == "untrusted"
    # A CRL of another issuer says nothing about this certificate.
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(*args, crl=[certkit.crl([])])
    assert _reason(info) == "untrusted"
    # ... but next to the right one it is simply ignored.
    assert validate_chain(*args, crl=[certkit.crl([]), memory_pki.crl]).ura == "00000020"
    # A re-created CA has the same name but another key; its CRL is not this issuer's CRL.
    namesake = TestPki.create().make_crl()
    assert namesake.issuer == memory_pki.issuing_certificate.subject
    with pytest.raises(CertificateValidationError, match="invalid signature"):
        validate_chain(*args, crl=[namesake])
    assert validate_chain(*args, crl=[namesake, memory_pki.crl]).ura == "00000020"


# -- with independently built chains --------------------------------------------------------


def test_independent_chain_validates_under_its_own_anchor(certkit: CertKit) -> None:
    leaf = certkit.leaf(certkit.standard_san(uzi_value(ura="01234567")))
    identity = validate_chain(leaf, [certkit.ca], [certkit.root], crl=certkit.crl([]))
    assert identity.ura == "01234567"


def test_independent_revocation(certkit: CertKit) -> None:
    leaf = certkit.leaf(certkit.standard_san())
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(leaf, [certkit.ca], [certkit.root], crl=certkit.crl([leaf.serial_number]))
    assert _reason(info) == "revoked"


def test_trusted_but_not_uzi(certkit: CertKit) -> None:
    leaf = certkit.leaf([x509.DNSName("localhost")])
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(leaf, [certkit.ca], [certkit.root], crl=certkit.crl([]))
    assert _reason(info) == "not_uzi"


def test_lookalike_identity_is_not_uzi(certkit: CertKit) -> None:
    leaf = certkit.leaf(certkit.standard_san(uzi_value().replace("2110", "2111")))
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(leaf, [certkit.ca], [certkit.root])
    assert _reason(info) == "not_uzi"


def test_untrusted_non_uzi_is_refused_before_signature_work(certkit: CertKit, other_certkit: CertKit) -> None:
    # Cheap checks come first: a certificate that is no UZI certificate is refused as such.
    leaf = other_certkit.leaf([x509.DNSName("localhost")])
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(leaf, [other_certkit.ca], [certkit.root])
    assert _reason(info) == "not_uzi"


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        (NOW - dt.timedelta(days=10), NOW - dt.timedelta(days=1)),
        (NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=10)),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_leaf_outside_validity(certkit: CertKit, not_before: dt.datetime, not_after: dt.datetime) -> None:
    leaf = certkit.leaf(certkit.standard_san(), not_before=not_before, not_after=not_after)
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(leaf, [certkit.ca], [certkit.root], crl=certkit.crl([]))
    assert _reason(info) == "expired"


def test_expired_intermediate(certkit: CertKit) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old_ca = make_ca(
        "Independent Old CA",
        key,
        issuer=(certkit.root, certkit.root_key),
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW - dt.timedelta(days=1),
    )
    leaf = certkit.leaf(certkit.standard_san(), issuer=(old_ca, key))
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(leaf, [old_ca], [certkit.root])
    assert _reason(info) == "expired"


def test_too_many_intermediates_is_malformed(certkit: CertKit) -> None:
    leaf = certkit.leaf(certkit.standard_san())
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(leaf, [certkit.ca] * 5, [certkit.root])
    assert _reason(info) == "malformed"


def test_naive_time_and_empty_store_are_programming_errors(certkit: CertKit) -> None:
    leaf = certkit.leaf(certkit.standard_san())
    with pytest.raises(ValueError, match="timezone"):
        validate_chain(leaf, [certkit.ca], [certkit.root], at=dt.datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="trust anchor"):
        validate_chain(leaf, [certkit.ca], [])


# -- x5c ------------------------------------------------------------------------------------


def test_x5c_round_trip(memory_pki: TestPki) -> None:
    credential = memory_pki.credential(PARTICIPANTS[0].ura)
    encoded = to_x5c(credential.chain)
    assert all("\n" not in e and "-" not in e and "_" not in e for e in encoded)
    leaf, intermediates = parse_x5c(encoded)
    assert leaf == credential.certificate
    assert intermediates == [memory_pki.issuing_certificate]
    assert validate_chain(leaf, intermediates, memory_pki.trust_anchors, crl=memory_pki.crl).ura == "00000020"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_x5c_refusals(memory_pki: TestPki) -> None:
    der = _der(memory_pki.credential(PARTICIPANTS[0].ura).certificate)
    good = base64.b64encode(der).decode()
    urlsafe = base64.urlsafe_b64encode(der).decode()
    assert urlsafe != good, "fixture must contain + or / to make the urlsafe case meaningful"
    wrapped = "\n".join(good[i : i + 64] for i in range(0, len(good), 64))
    # "QR==" decodes to the same byte as "QQ==" (non-zero unused bits); b64decode accepts both.
    assert base64.b64decode("QR==", validate=True) == base64.b64decode("QQ==")
    cases: list[object] = [
        [],
        good,
        [good.encode()],
        [urlsafe],
        [wrapped],
        [good + "\n"],
        [" " + good],
        [good[:-4]],
        [base64.b64encode(b"not a certificate").decode()],
        [base64.b64encode(der + b"\x00").decode()],
        [""],
        [good] * 6,
        [good, "é"],
        ["QR=="],
        [good, "QR=="],
    ]
    for case in cases:
        with pytest.raises(CertificateValidationError) as info:
            parse_x5c(case)  # type: ignore[arg-type]
        assert _reason(info) == "malformed", case
    with pytest.raises(CertificateValidationError, match="canonical"):
        parse_x5c(["QR=="])


def test_thumbprint_is_base64url_sha256(memory_pki: TestPki) -> None:
    thumb = thumbprint_s256(memory_pki.root_certificate)
    assert len(thumb) == 43
    assert "=" not in thumb
