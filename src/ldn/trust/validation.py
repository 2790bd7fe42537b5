"""Certificate chain validation ending in a verified UZI identity, plus x5c helpers.

Order of checks: structure, validity window and UZI identity first (cheap, no signatures),
then path building and signature checks with ``cryptography``'s verifier, then the CRL.
Every refusal is a :class:`CertificateValidationError` with a stable ``reason_code``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
from collections.abc import Sequence
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import verification

from ldn.trust.uzi import UziCertificateError, UziServerIdentity, parse_uzi_identity

__all__ = [
    "CertificateValidationError",
    "ReasonCode",
    "parse_x5c",
    "thumbprint_s256",
    "to_x5c",
    "validate_chain",
]

ReasonCode = Literal["untrusted", "expired", "revoked", "not_uzi", "malformed"]

#: Longest chain a peer may present besides its leaf; UZI chains have one or two intermediates.
MAX_INTERMEDIATES: Final = 4
#: Bounds for x5c input, checked before any decoding.
MAX_X5C_ENTRIES: Final = 1 + MAX_INTERMEDIATES
MAX_CERT_DER_BYTES: Final = 16 * 1024


class CertificateValidationError(Exception):
    """A certificate (chain) was refused; ``reason_code`` is one of :data:`ReasonCode`."""

    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code: ReasonCode = reason_code
        self.message = message


def _check_window(cert: x509.Certificate, at: dt.datetime, what: str) -> None:
    if at < cert.not_valid_before_utc:
        raise CertificateValidationError(
            "expired", f"{what} is not yet valid (valid from {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ})"
        )
    if at > cert.not_valid_after_utc:
        raise CertificateValidationError("expired", f"{what} expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")


def _verify_path(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    trust_anchors: list[x509.Certificate],
    at: dt.datetime,
    server_name: str | None,
) -> list[x509.Certificate]:
    builder = verification.PolicyBuilder().store(verification.Store(trust_anchors)).time(at)
    try:
        if server_name is None:
            # Client verifier: requires extKeyUsage clientAuth (the mTLS client side).
            return builder.build_client_verifier().verify(leaf, intermediates).chain
        subject: x509.DNSName | x509.IPAddress
        try:
            subject = x509.IPAddress(ipaddress.ip_address(server_name))
        except ValueError:
            subject = x509.DNSName(server_name)
        return builder.build_server_verifier(subject).verify(leaf, intermediates)
    except verification.VerificationError as exc:
        text = str(exc)
        # The leaf's own window was checked before; this catches an expired intermediate or
        # root. The verifier exposes no error codes, so classify on its (stable) wording.
        reason: ReasonCode = "expired" if "not valid at validation time" in text else "untrusted"
        raise CertificateValidationError(reason, f"chain does not verify: {text}") from None


def _crl_list(
    crl: x509.CertificateRevocationList | Sequence[x509.CertificateRevocationList] | None,
) -> list[x509.CertificateRevocationList]:
    if crl is None:
        return []
    if isinstance(crl, x509.CertificateRevocationList):
        return [crl]
    crls = list(crl)
    if not all(isinstance(c, x509.CertificateRevocationList) for c in crls):
        raise TypeError("crl must be a CertificateRevocationList or a sequence of them")
    return crls


def _check_revocation(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    crls: list[x509.CertificateRevocationList],
    at: dt.datetime,
) -> None:
    issuer_key = issuer.public_key()
    if not isinstance(
        issuer_key,
        (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
    ):
        raise CertificateValidationError("untrusted", "issuer key type cannot sign CRLs")
    fresh = False
    forged = False
    for crl in crls:
        # A CRL is about the certificates of one issuer; others say nothing about this leaf.
        if crl.issuer != issuer.subject:
            continue
        if not crl.is_signature_valid(issuer_key):
            # Same name, other key (e.g. a re-created test CA): not this issuer's CRL.
            forged = True
            continue
        # A revocation stays a revocation even in an outdated CRL, so look it up first.
        if crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None:
            raise CertificateValidationError("revoked", f"certificate serial {leaf.serial_number:x} is revoked")
        next_update = crl.next_update_utc
        if crl.last_update_utc <= at and next_update is not None and at <= next_update:
            fresh = True
    if not fresh:
        # Fail closed: without a current CRL the revocation status is unknown.
        detail = "a CRL naming the issuer has an invalid signature" if forged else "missing, expired or not yet valid"
        raise CertificateValidationError("untrusted", f"no current CRL for the issuing CA ({detail})")


def validate_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trust_anchors: Sequence[x509.Certificate],
    crl: x509.CertificateRevocationList | Sequence[x509.CertificateRevocationList] | None = None,
    at: dt.datetime | None = None,
    *,
    server_name: str | None = None,
) -> UziServerIdentity:
    """Verify ``leaf`` up to one of ``trust_anchors`` and return its UZI identity.

    Without ``server_name`` the leaf is checked as a TLS *client* certificate (clientAuth);
    with it, as a server certificate for that DNS name or IP address (serverAuth).
    When ``crl`` is given (one CRL or several), a current CRL signed by the leaf's issuer must
    be among them and must not list the leaf; passing ``None`` skips revocation checking and
    is meant for tests and offline tools only.
    """
    at = at if at is not None else dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        raise ValueError("'at' must be timezone-aware")
    if not trust_anchors:
        raise ValueError("at least one trust anchor is required")
    crls = _crl_list(crl)

    # 1. Structure.
    if not isinstance(leaf, x509.Certificate) or not all(isinstance(c, x509.Certificate) for c in intermediates):
        raise CertificateValidationError("malformed", "chain entries must be X.509 certificates")
    if len(intermediates) > MAX_INTERMEDIATES:
        raise CertificateValidationError(
            "malformed", f"chain has {len(intermediates)} intermediates (at most {MAX_INTERMEDIATES})"
        )
    try:
        _ = leaf.extensions  # parsed lazily; force it so a broken extension is "malformed"
    except ValueError as exc:
        raise CertificateValidationError("malformed", f"leaf extensions: {exc}") from None

    # 2. Validity window of the leaf (intermediates and anchors are checked by the verifier).
    _check_window(leaf, at, "certificate")

    # 3. UZI identity: no crypto needed, so refuse non-UZI certificates before any signature work.
    try:
        identity = parse_uzi_identity(leaf)
    except UziCertificateError as exc:
        raise CertificateValidationError("not_uzi", str(exc)) from None

    # 4. Path building and signatures.
    chain = _verify_path(leaf, list(intermediates), list(trust_anchors), at, server_name)

    # 5. Revocation of the leaf by its (now verified) issuer.
    if crl is not None:
        if len(chain) < 2:
            raise CertificateValidationError("untrusted", "leaf is itself a trust anchor")
        _check_revocation(leaf, chain[1], crls, at)
    return identity


def parse_x5c(x5c: Sequence[str]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Decode a JOSE ``x5c`` array (RFC 7515 §4.1.6: standard base64 of DER, leaf first).

    Strict: no base64url, no whitespace, no non-canonical padding, no trailing bytes. Any
    deviation is ``malformed``. The result is *not* validated; pass it to :func:`validate_chain`.
    """
    if isinstance(x5c, (str, bytes)) or not isinstance(x5c, Sequence):
        raise CertificateValidationError("malformed", "x5c must be an array of strings")
    if not 1 <= len(x5c) <= MAX_X5C_ENTRIES:
        raise CertificateValidationError(
            "malformed", f"x5c must hold 1 to {MAX_X5C_ENTRIES} certificates, got {len(x5c)}"
        )
    certs: list[x509.Certificate] = []
    max_b64 = 4 * ((MAX_CERT_DER_BYTES + 2) // 3)
    for i, entry in enumerate(x5c):
        if not isinstance(entry, str) or not entry.isascii():
            raise CertificateValidationError("malformed", f"x5c[{i}] is not an ASCII string")
        if len(entry) > max_b64:
            raise CertificateValidationError("malformed", f"x5c[{i}] is too large")
        try:
            der = base64.b64decode(entry, validate=True)
        except (binascii.Error, ValueError):
            raise CertificateValidationError("malformed", f"x5c[{i}] is not valid base64") from None
        # b64decode ignores non-zero padding bits; the canonical round trip rejects them.
        if not der or base64.b64encode(der).decode("ascii") != entry:
            raise CertificateValidationError("malformed", f"x5c[{i}] is not canonical base64")
        try:
            # Strict DER parser: trailing bytes and truncation are rejected here.
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CertificateValidationError("malformed", f"x5c[{i}] is not a DER X.509 certificate") from None
        certs.append(cert)
    return certs[0], certs[1:]


def to_x5c(chain: Sequence[x509.Certificate]) -> list[str]:
    """Encode a chain (leaf first) as a JOSE ``x5c`` array."""
    return [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii") for cert in chain]


def thumbprint_s256(cert: x509.Certificate) -> str:
    """Base64url SHA-256 of the DER certificate, as in RFC 8705 ``cnf.x5t#S256``."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
