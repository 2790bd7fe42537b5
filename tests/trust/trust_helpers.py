"""Independent certificate builders for the trust tests.

``CertKit`` builds certificates with ``cryptography`` directly, independent of ``ldn.trust.pki``
(including its own hand-written DER for the UZI otherName), so the parser and the validator are
tested against material that our own PKI code did not produce.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ldn.trust.pki import Participant

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
UZI_OID = x509.ObjectIdentifier("2.5.5.5")
PERMANENT_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.3")


def der_ia5(value: str) -> bytes:
    """Hand-rolled DER IA5String (short length form only, which covers every UZI value)."""
    raw = value.encode("ascii")
    assert len(raw) < 0x80
    return bytes([0x16, len(raw)]) + raw


def uzi_value(uzi: str = "900000001", ura: str = "00000020", agb: str = "12345678") -> str:
    return f"2.16.528.1.1007.99.2110-1-{uzi}-S-{ura}-00.000-{agb}"


def uzi_san(value: str) -> x509.OtherName:
    return x509.OtherName(UZI_OID, der_ia5(value))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class CertKit:
    """A self-made two-level CA, built without ldn.trust.pki."""

    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    leaf_key: ec.EllipticCurvePrivateKey

    def leaf(
        self,
        san: list[x509.GeneralName] | None,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
        serial: int | None = None,
    ) -> x509.Certificate:
        ca, ca_key = issuer or (self.ca, self.ca_key)
        public = self.leaf_key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("leaf.test"))
            .issuer_name(ca.subject)
            .public_key(public)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(not_before or NOW - dt.timedelta(hours=1))
            .not_valid_after(not_after or NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def standard_san(self, value: str | None = None) -> list[x509.GeneralName]:
        return [
            uzi_san(value or uzi_value()),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]

    def crl(
        self,
        revoked: list[int],
        *,
        signer: ec.EllipticCurvePrivateKey | None = None,
        last_update: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
    ) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.subject)
            .last_update(last_update or NOW - dt.timedelta(hours=1))
            .next_update(next_update or NOW + dt.timedelta(days=1))
            .add_extension(x509.CRLNumber(1), critical=False)
        )
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build()
            )
        return builder.sign(signer or self.ca_key, hashes.SHA256())


def make_ca(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    public = key.public_key()
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def make_certkit(label: str) -> CertKit:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_ca(f"{label} Root", root_key)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca(f"{label} Issuing CA", ca_key, issuer=(root, root_key))
    return CertKit(root, root_key, ca, ca_key, ec.generate_private_key(ec.SECP256R1()))


PARTICIPANTS = (
    Participant(ura="00000020", agb="12345678", uzi_number="900000001", name="Huisartsenpraktijk Test"),
    Participant(ura="12345670", agb="00000001", uzi_number="900000002", name="Ziekenhuis Test"),
)
