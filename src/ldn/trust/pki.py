"""A local test PKI that issues certificates in the real UZI server-certificate format.

Layout under the PKI directory (e.g. ``var/pki/``)::

    ca/root.pem               ldn Test Root CA (trust anchor)
    ca/root.key.pem           0600
    ca/uzi-server-ca.pem      ldn Test UZI Server CA (issues leaves and the CRL)
    ca/uzi-server-ca.key.pem  0600
    ca/crl.pem                CRL signed by the UZI Server CA
    orgs/<URA>/cert.pem       leaf (serverAuth + clientAuth, UZI otherName in the SAN)
    orgs/<URA>/key.pem        0600
    orgs/<URA>/chain.pem      leaf + intermediate, as a TLS stack presents it
    index.json                serial, URA, status, revoked_at per certificate; CRL number

Every file is written atomically (temp file + os.replace); ``index.json`` is written last when
the CA is created, so it marks a completed creation. Private keys are never logged and never
appear in exception messages. This is test infrastructure: keys are stored unencrypted, protected
only by file permissions.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ldn.trust._files import PUBLIC_MODE, SECRET_MODE, atomic_write, directory_lock
from ldn.trust.uzi import (
    UziCertificateError,
    UziServerIdentity,
    format_uzi_san_value,
    parse_uzi_identity,
    uzi_other_name,
)

__all__ = [
    "CertificateRecord",
    "IssuedCredential",
    "Participant",
    "PkiError",
    "TestPki",
    "init",
]

ROOT_CA_NAME: Final = "ldn Test Root CA"
ISSUING_CA_NAME: Final = "ldn Test UZI Server CA"
_ORGANISATION: Final = "ldn test network"

ROOT_VALIDITY: Final = dt.timedelta(days=3650)
ISSUING_VALIDITY: Final = dt.timedelta(days=1825)
LEAF_VALIDITY: Final = dt.timedelta(days=365)
CRL_VALIDITY: Final = dt.timedelta(days=7)
# init() renews leaves and CRLs this long before they run out, so a network started today still
# works tomorrow.
RENEW_MARGIN: Final = dt.timedelta(days=1)
# Tolerate small clock differences between processes that read freshly issued material.
_BACKDATE: Final = dt.timedelta(minutes=5)

_INDEX_VERSION: Final = 1
_MAX_NAME_LENGTH: Final = 64  # X.520 upper bound for organizationName / commonName

Status = Literal["valid", "revoked"]


class PkiError(Exception):
    """The PKI directory is inconsistent or an operation cannot be performed."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Participant:
    """An organisation to issue a UZI server certificate for."""

    ura: str
    agb: str
    uzi_number: str
    name: str
    dns_names: tuple[str, ...] = ("localhost",)
    ip_addresses: tuple[str, ...] = ("127.0.0.1",)

    def __post_init__(self) -> None:
        # Also validates ura/agb/uzi_number with the exact parser.
        try:
            format_uzi_san_value(uzi_number=self.uzi_number, ura=self.ura, agb=self.agb)
        except UziCertificateError as exc:
            raise ValueError(f"invalid participant identifiers: {exc}") from None
        if not self.name or len(self.name) > _MAX_NAME_LENGTH or not self.name.isprintable():
            raise ValueError(f"organisation name must be 1-{_MAX_NAME_LENGTH} printable characters")
        # Accept lists from callers but store tuples, so the dataclass stays hashable.
        object.__setattr__(self, "dns_names", tuple(self.dns_names))
        object.__setattr__(self, "ip_addresses", tuple(self.ip_addresses))
        for dns in self.dns_names:
            if not dns or not dns.isascii() or any(c.isspace() for c in dns):
                raise ValueError(f"invalid DNS name {dns!r}")
        for ip in self.ip_addresses:
            ipaddress.ip_address(ip)  # raises ValueError


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A participant's certificate, private key and chain (leaf first)."""

    ura: str
    identity: UziServerIdentity
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...]

    @property
    def serial(self) -> int:
        return self.certificate.serial_number


@dataclass(slots=True)
class CertificateRecord:
    """One line of index.json."""

    serial: int
    ura: str
    status: Status
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            # Hex string: JSON numbers lose precision beyond 2**53 and serials are ~159 bits.
            "serial": format(self.serial, "x"),
            "ura": self.ura,
            "status": self.status,
            "not_after": self.not_after.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CertificateRecord:
        status = data["status"]
        if status not in ("valid", "revoked"):
            raise ValueError(f"unknown status {status!r}")
        revoked_at = data.get("revoked_at")
        return cls(
            serial=int(data["serial"], 16),
            ura=str(data["ura"]),
            status=status,
            not_after=dt.datetime.fromisoformat(data["not_after"]),
            revoked_at=dt.datetime.fromisoformat(revoked_at) if revoked_at else None,
            reason=data.get("reason"),
        )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        # Deliberately no detail from the parser: nothing of the key may leak into messages.
        raise PkiError(f"cannot load private key {path}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"private key {path} is not an EC key")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise PkiError(f"cannot load certificate {path}") from None


def _same_public_key(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _build_root(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = _ca_name(ROOT_CA_NAME)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _build_issuing_ca(
    key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
) -> x509.Certificate:
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_ca_name(ISSUING_CA_NAME))
        .issuer_name(root.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + ISSUING_VALIDITY, root.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(root)),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )


def _san_matches(cert: x509.Certificate, participant: Participant) -> bool:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return dns == set(participant.dns_names) and ips == {
        str(ipaddress.ip_address(ip)) for ip in participant.ip_addresses
    }


class TestPki:
    """Root CA + UZI server issuing CA, the certificates they issued, and their revocations.

    Create with :meth:`create` (new CA), :meth:`load` (existing directory) or :meth:`init`
    (idempotent load-or-create plus issuing missing participants). When a directory is attached,
    every mutation is persisted immediately.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        *,
        root_certificate: x509.Certificate,
        root_key: ec.EllipticCurvePrivateKey,
        issuing_certificate: x509.Certificate,
        issuing_key: ec.EllipticCurvePrivateKey,
        directory: Path | None = None,
        records: Iterable[CertificateRecord] = (),
        crl_number: int = 0,
        credentials: Iterable[IssuedCredential] = (),
        crl: x509.CertificateRevocationList | None = None,
    ) -> None:
        self._root = root_certificate
        self._root_key = root_key
        self._ca = issuing_certificate
        self._ca_key = issuing_key
        self._directory = directory
        self._records: dict[int, CertificateRecord] = {r.serial: r for r in records}
        self._crl_number = crl_number
        self._credentials: dict[str, IssuedCredential] = {c.ura: c for c in credentials}
        self._crl = crl

    def __repr__(self) -> str:  # never show keys
        return (
            f"TestPki(directory={str(self._directory)!r}, root_serial={self._root.serial_number:x}, "
            f"issued={len(self._records)})"
        )

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | Path | None = None, *, now: dt.datetime | None = None) -> TestPki:
        """Generate a fresh root and issuing CA; persist them when ``directory`` is given."""
        if directory is not None and (Path(directory) / "index.json").exists():
            # Overwriting would silently orphan every certificate issued so far.
            raise PkiError(f"{directory} already holds a test PKI; use load() or init()")
        now = now or _now()
        root_key = _new_key()
        root = _build_root(root_key, now)
        ca_key = _new_key()
        ca = _build_issuing_ca(ca_key, root, root_key, now)
        pki = cls(
            root_certificate=root,
            root_key=root_key,
            issuing_certificate=ca,
            issuing_key=ca_key,
            directory=Path(directory) if directory is not None else None,
        )
        if pki._directory is not None:
            ca_dir = pki._directory / "ca"
            # Keys first, certificates next, index last: index.json marks a complete CA.
            atomic_write(ca_dir / "root.key.pem", _key_pem(root_key), mode=SECRET_MODE)
            atomic_write(ca_dir / "uzi-server-ca.key.pem", _key_pem(ca_key), mode=SECRET_MODE)
            atomic_write(ca_dir / "root.pem", _cert_pem(root), mode=PUBLIC_MODE)
            atomic_write(ca_dir / "uzi-server-ca.pem", _cert_pem(ca), mode=PUBLIC_MODE)
            pki._write_index()
        return pki

    @classmethod
    def load(cls, directory: str | Path) -> TestPki:
        """Load a PKI directory written earlier; raise PkiError when it is incomplete."""
        directory = Path(directory)
        ca_dir = directory / "ca"
        index_path = directory / "index.json"
        if not index_path.exists():
            raise PkiError(f"{directory} holds no completed test PKI (index.json missing)")
        root = _load_cert(ca_dir / "root.pem")
        root_key = _load_key(ca_dir / "root.key.pem")
        ca = _load_cert(ca_dir / "uzi-server-ca.pem")
        ca_key = _load_key(ca_dir / "uzi-server-ca.key.pem")
        if not _same_public_key(root_key, root) or not _same_public_key(ca_key, ca):
            raise PkiError(f"CA key and certificate in {ca_dir} do not belong together")
        if not _issued_by(ca, root):
            raise PkiError(f"{ca_dir / 'uzi-server-ca.pem'} was not issued by {ca_dir / 'root.pem'}")
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            if index.get("version") != _INDEX_VERSION:
                raise ValueError(f"unsupported index version {index.get('version')!r}")
            records = [CertificateRecord.from_json(r) for r in index["certificates"]]
            crl_number = int(index["crl_number"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PkiError(f"cannot read {index_path}: {exc}") from None

        crl: x509.CertificateRevocationList | None = None
        crl_path = ca_dir / "crl.pem"
        if crl_path.exists():
            try:
                crl = x509.load_pem_x509_crl(crl_path.read_bytes())
            except ValueError:
                crl = None  # unreadable: init() will write a new one
            ca_public = ca.public_key()
            if crl is not None and isinstance(ca_public, ec.EllipticCurvePublicKey):
                try:
                    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value
                except x509.ExtensionNotFound:
                    crl = None
                else:
                    # Never reuse a CRL number, even if index.json lagged behind.
                    crl_number = max(crl_number, number.crl_number)
                    if not crl.is_signature_valid(ca_public):
                        crl = None

        pki = cls(
            root_certificate=root,
            root_key=root_key,
            issuing_certificate=ca,
            issuing_key=ca_key,
            directory=directory,
            records=records,
            crl_number=crl_number,
            crl=crl,
        )
        pki._load_credentials()
        return pki

    @classmethod
    def init(
        cls,
        directory: str | Path,
        participants: Sequence[Participant],
        *,
        now: dt.datetime | None = None,
    ) -> TestPki:
        """Idempotently make sure ``directory`` holds a CA and a usable credential per participant.

        Existing CA material and credentials are reused. A participant is (re)issued only when
        its credential is missing or unreadable, not issued by the current CA, about to expire,
        or no longer matches the participant's identifiers or SAN names (the old certificate is
        then revoked as superseded). A *revoked* credential is left revoked: revocation is a
        deliberate state that a restart must not undo; use :meth:`issue` to replace it.
        The CRL is rewritten only when it is missing, out of date or close to expiry.
        """
        directory = Path(directory)
        now = now or _now()
        with directory_lock(directory):
            # No index.json means no completed creation: whatever is there is a half-made CA
            # from an interrupted run, nothing was ever issued from it; start over.
            completed = (directory / "index.json").exists()
            pki = cls.load(directory) if completed else cls.create(directory, now=now)
            for participant in participants:
                if pki._needs_issue(participant, now):
                    pki.issue(participant, now=now)
            if pki._crl_stale(now):
                pki.make_crl(now=now)
        return pki

    # -- accessors --------------------------------------------------------------------------

    @property
    def directory(self) -> Path | None:
        return self._directory

    @property
    def root_certificate(self) -> x509.Certificate:
        return self._root

    @property
    def issuing_certificate(self) -> x509.Certificate:
        return self._ca

    @property
    def trust_anchors(self) -> list[x509.Certificate]:
        return [self._root]

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [self._ca]

    @property
    def records(self) -> list[CertificateRecord]:
        return list(self._records.values())

    @property
    def crl_number(self) -> int:
        return self._crl_number

    @property
    def crl(self) -> x509.CertificateRevocationList | None:
        """The most recent CRL (None before the first :meth:`make_crl`)."""
        return self._crl

    def credential(self, ura: str) -> IssuedCredential:
        """The current credential for ``ura``; KeyError when none was issued."""
        return self._credentials[ura]

    def org_directory(self, ura: str) -> Path:
        if self._directory is None:
            raise PkiError("this PKI has no directory")
        return self._directory / "orgs" / ura

    # -- issuing ----------------------------------------------------------------------------

    def issue(
        self,
        participant: Participant,
        *,
        now: dt.datetime | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> IssuedCredential:
        """Issue (or re-issue) a server/client certificate with a fresh P-256 key."""
        now = now or _now()
        not_before = not_before or now - _BACKDATE
        not_after = not_after or now + LEAF_VALIDITY
        # A leaf must never outlive its issuer.
        not_after = min(not_after, self._ca.not_valid_after_utc)
        if not_after <= not_before:
            raise PkiError("not_after must be later than not_before")
        key = _new_key()
        public = key.public_key()
        san: list[x509.GeneralName] = [
            uzi_other_name(uzi_number=participant.uzi_number, ura=participant.ura, agb=participant.agb),
            *(x509.DNSName(d) for d in participant.dns_names),
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in participant.ip_addresses),
        ]
        common_name = participant.dns_names[0] if participant.dns_names else participant.name
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, participant.name),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name[:_MAX_NAME_LENGTH]),
                # Real UZI server certificates carry the UZI number as subject serialNumber.
                x509.NameAttribute(NameOID.SERIAL_NUMBER, participant.uzi_number),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._ca.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(self._ca)),
                critical=False,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        credential = IssuedCredential(
            ura=participant.ura,
            identity=parse_uzi_identity(cert),
            certificate=cert,
            key=key,
            chain=(cert, self._ca),
        )
        if self._directory is not None:
            # Files before index: an interrupted run leaves at worst a certificate that the
            # next load() adopts, never an index entry without its key.
            org = self.org_directory(participant.ura)
            atomic_write(org / "key.pem", _key_pem(key), mode=SECRET_MODE)
            atomic_write(org / "cert.pem", _cert_pem(cert), mode=PUBLIC_MODE)
            atomic_write(org / "chain.pem", _cert_pem(cert, self._ca), mode=PUBLIC_MODE)
        previous = self._credentials.get(participant.ura)
        self._records[cert.serial_number] = CertificateRecord(
            serial=cert.serial_number,
            ura=participant.ura,
            status="valid",
            not_after=cert.not_valid_after_utc,
        )
        self._credentials[participant.ura] = credential
        superseded = (
            previous is not None
            and previous.certificate.not_valid_after_utc > now
            # Still within validity: revoke it, so it cannot be used next to its successor.
            and self._revoke(previous.serial, now, x509.ReasonFlags.superseded)
        )
        if superseded:
            self.make_crl(now=now)  # also persists the index
        elif self._directory is not None:
            self._write_index()
        return credential

    # -- revocation -------------------------------------------------------------------------

    def revoke_serial(
        self,
        serial: int,
        *,
        now: dt.datetime | None = None,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
    ) -> bool:
        """Revoke one certificate and publish a new CRL. False when it was already revoked."""
        now = now or _now()
        if serial not in self._records:
            raise PkiError(f"serial {serial:x} was not issued by this PKI")
        changed = self._revoke(serial, now, reason)
        if changed:
            self.make_crl(now=now)  # also persists the index
        return changed

    def revoke_ura(
        self,
        ura: str,
        *,
        now: dt.datetime | None = None,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
    ) -> list[int]:
        """Revoke every still-valid certificate of ``ura``; return the revoked serials."""
        now = now or _now()
        serials = [r.serial for r in self._records.values() if r.ura == ura and r.status == "valid"]
        if not any(r.ura == ura for r in self._records.values()):
            raise PkiError(f"no certificate was issued for URA {ura!r}")
        for serial in serials:
            self._revoke(serial, now, reason)
        if serials:
            self.make_crl(now=now)  # also persists the index
        return serials

    def is_revoked(self, serial: int) -> bool:
        record = self._records.get(serial)
        return record is not None and record.status == "revoked"

    def _revoke(self, serial: int, now: dt.datetime, reason: x509.ReasonFlags) -> bool:
        record = self._records[serial]
        if record.status == "revoked":
            return False
        record.status = "revoked"
        record.revoked_at = now.replace(microsecond=0)
        record.reason = reason.value
        return True

    def make_crl(
        self, *, now: dt.datetime | None = None, validity: dt.timedelta = CRL_VALIDITY
    ) -> x509.CertificateRevocationList:
        """Sign a new CRL (next CRL number) with the issuing CA, listing every revocation."""
        now = now or _now()
        self._crl_number += 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._ca.subject)
            .last_update(now - _BACKDATE)
            .next_update(now + validity)
            .add_extension(x509.CRLNumber(self._crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(self._ca)),
                critical=False,
            )
        )
        for record in sorted(self._records.values(), key=lambda r: r.serial):
            if record.status != "revoked" or record.revoked_at is None:
                continue
            entry = x509.RevokedCertificateBuilder().serial_number(record.serial).revocation_date(record.revoked_at)
            if record.reason is not None:
                entry = entry.add_extension(x509.CRLReason(x509.ReasonFlags(record.reason)), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(self._ca_key, hashes.SHA256())
        self._crl = crl
        if self._directory is not None:
            atomic_write(
                self._directory / "ca" / "crl.pem",
                crl.public_bytes(serialization.Encoding.PEM),
                mode=PUBLIC_MODE,
            )
            self._write_index()
        return crl

    # -- persistence helpers ----------------------------------------------------------------

    def _write_index(self) -> None:
        assert self._directory is not None
        index = {
            "version": _INDEX_VERSION,
            "root_serial": format(self._root.serial_number, "x"),
            "issuing_ca_serial": format(self._ca.serial_number, "x"),
            "crl_number": self._crl_number,
            "certificates": [r.to_json() for r in sorted(self._records.values(), key=lambda r: r.not_after)],
        }
        data = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode("utf-8")
        atomic_write(self._directory / "index.json", data, mode=PUBLIC_MODE)

    def _load_credentials(self) -> None:
        """Load orgs/<URA>/ material; skip anything unusable so init() re-issues it."""
        assert self._directory is not None
        orgs = self._directory / "orgs"
        if not orgs.is_dir():
            return
        for org in sorted(orgs.iterdir()):
            cert_path, key_path = org / "cert.pem", org / "key.pem"
            if not (cert_path.is_file() and key_path.is_file()):
                continue
            try:
                cert = _load_cert(cert_path)
                key = _load_key(key_path)
                identity = parse_uzi_identity(cert)
            except (PkiError, UziCertificateError):
                continue
            if identity.ura != org.name or not _same_public_key(key, cert):
                continue
            if not _issued_by(cert, self._ca):
                continue
            if cert.serial_number not in self._records:
                # Written before index.json was updated (interrupted run): record it now.
                self._records[cert.serial_number] = CertificateRecord(
                    serial=cert.serial_number,
                    ura=identity.ura,
                    status="valid",
                    not_after=cert.not_valid_after_utc,
                )
            self._credentials[identity.ura] = IssuedCredential(
                ura=identity.ura, identity=identity, certificate=cert, key=key, chain=(cert, self._ca)
            )

    def _needs_issue(self, participant: Participant, now: dt.datetime) -> bool:
        credential = self._credentials.get(participant.ura)
        if credential is None:
            return True
        if self.is_revoked(credential.serial):
            return False  # see init(): revocation survives restarts
        identity = credential.identity
        if (identity.agb, identity.uzi_number) != (participant.agb, participant.uzi_number):
            return True
        if not _san_matches(credential.certificate, participant):
            return True
        return credential.certificate.not_valid_after_utc - now < RENEW_MARGIN

    def _crl_stale(self, now: dt.datetime) -> bool:
        crl = self._crl
        if crl is None:
            return True
        next_update = crl.next_update_utc
        if next_update is None or next_update - now < RENEW_MARGIN:
            return True
        listed = {entry.serial_number for entry in crl}
        revoked = {r.serial for r in self._records.values() if r.status == "revoked"}
        return listed != revoked


def init(directory: str | Path, participants: Sequence[Participant]) -> TestPki:
    """Module-level shorthand for :meth:`TestPki.init`."""
    return TestPki.init(directory, participants)
