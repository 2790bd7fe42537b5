"""The local test PKI: layout, idempotence, UZI format, revocation, permissions."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from trust_helpers import PARTICIPANTS

from ldn.trust import pki as pki_module
from ldn.trust.pki import ISSUING_CA_NAME, ROOT_CA_NAME, Participant, PkiError, TestPki
from ldn.trust.uzi import parse_uzi_identity
from ldn.trust.validation import CertificateValidationError, validate_chain

NEW_PARTICIPANT = Participant(ura="99999999", agb="11111111", uzi_number="900000003", name="Apotheek Test")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


@pytest.fixture(scope="module")
def initialised(pki_dir: Path) -> TestPki:
    return TestPki.init(pki_dir, PARTICIPANTS)


def test_layout(initialised: TestPki, pki_dir: Path) -> None:
    expected = [
        "ca/root.pem",
        "ca/root.key.pem",
        "ca/uzi-server-ca.pem",
        "ca/uzi-server-ca.key.pem",
        "ca/crl.pem",
        "index.json",
        *(f"orgs/{p.ura}/{name}" for p in PARTICIPANTS for name in ("cert.pem", "key.pem", "chain.pem")),
    ]
    for relative in expected:
        assert (pki_dir / relative).is_file(), relative
    assert not list(pki_dir.rglob("*.tmp")), "temporary files left behind"


def test_key_files_are_private(initialised: TestPki, pki_dir: Path) -> None:
    keys = [*pki_dir.glob("ca/*.key.pem"), *pki_dir.glob("orgs/*/key.pem")]
    assert len(keys) == 2 + len(PARTICIPANTS)
    for key in keys:
        assert _mode(key) == 0o600, key
    assert _mode(pki_dir / "ca" / "root.pem") == 0o644


def test_ca_certificates(initialised: TestPki, pki_dir: Path) -> None:
    root = x509.load_pem_x509_certificate((pki_dir / "ca/root.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((pki_dir / "ca/uzi-server-ca.pem").read_bytes())
    assert _cn(root) == ROOT_CA_NAME
    assert _cn(ca) == ISSUING_CA_NAME
    ca.verify_directly_issued_by(root)
    for cert in (root, ca):
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical
        assert basic.value.ca
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical
        assert usage.value.key_cert_sign
        assert usage.value.crl_sign
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    aki = ca.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest


@pytest.mark.parametrize("participant", PARTICIPANTS, ids=lambda p: p.ura)
def test_issued_leaf_parses_back(initialised: TestPki, pki_dir: Path, participant: Participant) -> None:
    org = pki_dir / "orgs" / participant.ura
    leaf = x509.load_pem_x509_certificate((org / "cert.pem").read_bytes())
    identity = parse_uzi_identity(leaf)
    assert (identity.ura, identity.agb, identity.uzi_number) == (
        participant.ura,
        participant.agb,
        participant.uzi_number,
    )
    assert isinstance(leaf.public_key(), type(initialised.credential(participant.ura).key.public_key()))
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    chain = x509.load_pem_x509_certificates((org / "chain.pem").read_bytes())
    assert [c.serial_number for c in chain] == [leaf.serial_number, initialised.issuing_certificate.serial_number]

    key = serialization.load_pem_private_key((org / "key.pem").read_bytes(), password=None)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    crl = initialised.crl
    assert crl is not None
    identity = validate_chain(leaf, chain[1:], initialised.trust_anchors, crl=crl)
    assert identity.ura == participant.ura


def test_index_json(initialised: TestPki, pki_dir: Path) -> None:
    index = json.loads((pki_dir / "index.json").read_text())
    by_ura = {entry["ura"]: entry for entry in index["certificates"]}
    for participant in PARTICIPANTS:
        entry = by_ura[participant.ura]
        assert entry["status"] == "valid"
        assert entry["revoked_at"] is None
        assert int(entry["serial"], 16) == initialised.credential(participant.ura).serial
    assert index["crl_number"] >= 1


def test_init_is_idempotent(initialised: TestPki, pki_dir: Path) -> None:
    root_key_before = (pki_dir / "ca/root.key.pem").read_bytes()
    leaf_key_before = (pki_dir / f"orgs/{PARTICIPANTS[0].ura}/key.pem").read_bytes()
    crl_before = (pki_dir / "ca/crl.pem").read_bytes()

    again = TestPki.init(pki_dir, PARTICIPANTS)

    assert again.root_certificate.serial_number == initialised.root_certificate.serial_number
    assert again.issuing_certificate.serial_number == initialised.issuing_certificate.serial_number
    for participant in PARTICIPANTS:
        assert again.credential(participant.ura).serial == initialised.credential(participant.ura).serial
    assert (pki_dir / "ca/root.key.pem").read_bytes() == root_key_before
    assert (pki_dir / f"orgs/{PARTICIPANTS[0].ura}/key.pem").read_bytes() == leaf_key_before
    assert (pki_dir / "ca/crl.pem").read_bytes() == crl_before, "a current CRL is not rewritten"


def test_init_issues_only_missing_participants(tmp_path: Path) -> None:
    first = TestPki.init(tmp_path, PARTICIPANTS[:1])
    second = pki_module.init(tmp_path, [*PARTICIPANTS[:1], NEW_PARTICIPANT])
    assert second.credential(PARTICIPANTS[0].ura).serial == first.credential(PARTICIPANTS[0].ura).serial
    assert parse_uzi_identity(second.credential(NEW_PARTICIPANT.ura).certificate).ura == NEW_PARTICIPANT.ura
    assert len(second.records) == 2


def test_changed_participant_is_reissued_and_old_certificate_revoked(tmp_path: Path) -> None:
    first = TestPki.init(tmp_path, [NEW_PARTICIPANT])
    old_serial = first.credential(NEW_PARTICIPANT.ura).serial
    changed = Participant(
        ura=NEW_PARTICIPANT.ura,
        agb="22222222",
        uzi_number=NEW_PARTICIPANT.uzi_number,
        name=NEW_PARTICIPANT.name,
        dns_names=("apotheek.localhost",),
    )
    second = TestPki.init(tmp_path, [changed])
    credential = second.credential(changed.ura)
    assert credential.serial != old_serial
    assert credential.identity.agb == "22222222"
    assert second.is_revoked(old_serial)
    assert second.crl is not None
    assert second.crl.get_revoked_certificate_by_serial_number(old_serial) is not None


def test_missing_leaf_key_is_reissued(tmp_path: Path) -> None:
    first = TestPki.init(tmp_path, [NEW_PARTICIPANT])
    (tmp_path / "orgs" / NEW_PARTICIPANT.ura / "key.pem").unlink()
    second = TestPki.init(tmp_path, [NEW_PARTICIPANT])
    assert second.credential(NEW_PARTICIPANT.ura).serial != first.credential(NEW_PARTICIPANT.ura).serial
    assert (tmp_path / "orgs" / NEW_PARTICIPANT.ura / "key.pem").is_file()


def test_interrupted_first_run_starts_over(tmp_path: Path) -> None:
    # A first run that died after writing the CA keys but before index.json.
    TestPki.init(tmp_path, [])
    (tmp_path / "index.json").unlink()
    (tmp_path / "ca" / "uzi-server-ca.pem").unlink()
    pki = TestPki.init(tmp_path, [NEW_PARTICIPANT])
    assert TestPki.load(tmp_path).root_certificate == pki.root_certificate


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    TestPki.init(tmp_path, [])
    with pytest.raises(PkiError, match="already holds"):
        TestPki.create(tmp_path)


def test_load_refuses_mismatched_ca(tmp_path: Path) -> None:
    TestPki.init(tmp_path, [])
    other = TestPki.create()
    (tmp_path / "ca" / "uzi-server-ca.pem").write_bytes(
        other.issuing_certificate.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(PkiError, match="do not belong together"):
        TestPki.load(tmp_path)


def test_corrupt_key_error_does_not_echo_content(tmp_path: Path) -> None:
    TestPki.init(tmp_path, [])
    secret_looking = b"-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    (tmp_path / "ca" / "root.key.pem").write_bytes(secret_looking)
    with pytest.raises(PkiError) as info:
        TestPki.load(tmp_path)
    assert "TOPSECRET" not in str(info.value)
    assert info.value.__cause__ is None


def test_reprs_do_not_contain_keys(memory_pki: TestPki) -> None:
    credential = memory_pki.credential(PARTICIPANTS[0].ura)
    pem = credential.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    body = pem.splitlines()[1]
    assert body not in repr(credential)
    assert "key=" not in repr(credential)
    assert body not in repr(memory_pki)


def test_revoke_ura_lists_serial_and_validation_refuses(tmp_path: Path) -> None:
    pki = TestPki.init(tmp_path, PARTICIPANTS)
    victim = PARTICIPANTS[1]
    credential = pki.credential(victim.ura)
    number_before = pki.crl_number

    assert pki.revoke_ura(victim.ura) == [credential.serial]
    assert pki.revoke_ura(victim.ura) == [], "revoking twice changes nothing"

    crl = x509.load_pem_x509_crl((tmp_path / "ca/crl.pem").read_bytes())
    assert crl.is_signature_valid(pki.issuing_certificate.public_key())  # type: ignore[arg-type]
    assert crl.issuer == pki.issuing_certificate.subject
    entry = crl.get_revoked_certificate_by_serial_number(credential.serial)
    assert entry is not None
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > number_before

    with pytest.raises(CertificateValidationError) as info:
        validate_chain(credential.certificate, pki.intermediates, pki.trust_anchors, crl=crl)
    assert info.value.reason_code == "revoked"
    # The other participant is unaffected.
    other = pki.credential(PARTICIPANTS[0].ura)
    assert validate_chain(other.certificate, pki.intermediates, pki.trust_anchors, crl=crl).ura == PARTICIPANTS[0].ura

    index = json.loads((tmp_path / "index.json").read_text())
    record = next(e for e in index["certificates"] if int(e["serial"], 16) == credential.serial)
    assert record["status"] == "revoked"
    assert dt.datetime.fromisoformat(record["revoked_at"]) <= dt.datetime.now(dt.UTC)

    # A restart neither forgets nor silently undoes the revocation.
    reloaded = TestPki.init(tmp_path, PARTICIPANTS)
    assert reloaded.is_revoked(credential.serial)
    assert reloaded.credential(victim.ura).serial == credential.serial
    assert reloaded.crl_number >= number


def test_revoke_by_serial_and_crl_numbers_increase(memory_pki: TestPki) -> None:
    extra = memory_pki.issue(NEW_PARTICIPANT)
    numbers = [memory_pki.crl_number]
    assert memory_pki.revoke_serial(extra.serial)
    numbers.append(memory_pki.crl_number)
    memory_pki.make_crl()
    numbers.append(memory_pki.crl_number)
    assert numbers == sorted(set(numbers))
    assert memory_pki.crl is not None
    assert memory_pki.crl.get_revoked_certificate_by_serial_number(extra.serial) is not None
    assert not memory_pki.revoke_serial(extra.serial)
    with pytest.raises(PkiError):
        memory_pki.revoke_serial(12345)
    with pytest.raises(PkiError):
        memory_pki.revoke_ura("00000001")


def test_expired_certificate_is_refused() -> None:
    now = dt.datetime.now(dt.UTC)
    pki = TestPki.create(now=now - dt.timedelta(days=30))
    expired = pki.issue(
        Participant(ura="55555555", agb="55555555", uzi_number="5", name="Verlopen"),
        not_before=now - dt.timedelta(days=10),
        not_after=now - dt.timedelta(days=1),
    )
    crl = pki.make_crl()
    with pytest.raises(CertificateValidationError) as info:
        validate_chain(expired.certificate, pki.intermediates, pki.trust_anchors, crl=crl)
    assert info.value.reason_code == "expired"
    # The same certificate, checked at a moment inside its window, passes.
    identity = validate_chain(
        expired.certificate,
        pki.intermediates,
        pki.trust_anchors,
        crl=pki.make_crl(now=now - dt.timedelta(days=5)),
        at=now - dt.timedelta(days=5),
    )
    assert identity.ura == "55555555"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ura": "1234567", "agb": "12345678", "uzi_number": "1", "name": "x"},
        {"ura": "12345678", "agb": "1234567", "uzi_number": "1", "name": "x"},
        {"ura": "12345678", "agb": "12345678", "uzi_number": "", "name": "x"},
        {"ura": "12345678", "agb": "12345678", "uzi_number": "1", "name": ""},
        {"ura": "12345678", "agb": "12345678", "uzi_number": "1", "name": "x", "ip_addresses": ["not-an-ip"]},
        {"ura": "12345678", "agb": "12345678", "uzi_number": "1", "name": "x", "dns_names": ["a b"]},
    ],
)
def test_participant_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Participant(**kwargs)  # type: ignore[arg-type]
