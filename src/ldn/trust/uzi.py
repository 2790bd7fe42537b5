"""Exact parsing of the UZI server-certificate identity.

A UZI server certificate carries, in its subjectAltName, an otherName with type-id ``2.5.5.5``
whose value is an IA5String of the form::

    2.16.528.1.1007.99.2110-1-<UZI number>-S-<URA>-00.000-<AGB>

Everything is checked field by field; nothing is found by a loose pattern search, so a lookalike
(other OID prefix, other card type, 7- or 9-digit URA, Unicode digits, ...) is refused.
Identifiers stay strings: the URA's leading zeros are significant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

__all__ = [
    "UZI_OTHER_NAME_OID",
    "UZI_SERVER_OID_PREFIX",
    "UziCertificateError",
    "UziServerIdentity",
    "decode_ia5string",
    "encode_ia5string",
    "format_uzi_san_value",
    "parse_uzi_identity",
    "parse_uzi_san_value",
    "uzi_other_name",
]

#: type-id of the otherName that carries the UZI identity string.
UZI_OTHER_NAME_OID: Final = ObjectIdentifier("2.5.5.5")
#: OID of the UZI server-certificate policy; first field of the identity string.
UZI_SERVER_OID_PREFIX: Final = "2.16.528.1.1007.99.2110"
_VERSION: Final = "1"
_CARD_TYPE_SERVER: Final = "S"
_SERVER_ROLE: Final = "00.000"
_FIELD_COUNT: Final = 7

# re.ASCII so that \d never matches Arabic-Indic or full-width digits; \A..\Z anchor the whole
# string (``$`` would also accept a trailing newline).
_URA_RE: Final = re.compile(r"\A[0-9]{8}\Z", re.ASCII)
_AGB_RE: Final = re.compile(r"\A[0-9]{8}\Z", re.ASCII)
# The register hands out 9-digit numbers; the field format only says "digits", so accept any
# non-empty run of ASCII digits with a sane upper bound.
_UZI_NUMBER_RE: Final = re.compile(r"\A[0-9]{1,20}\Z", re.ASCII)

_IA5STRING_TAG: Final = 0x16
# Real values are ~60 characters; anything this long is not a UZI identity.
_MAX_VALUE_LENGTH: Final = 256


class UziCertificateError(ValueError):
    """The certificate (or SAN value) does not carry exactly one well-formed UZI server identity."""


@dataclass(frozen=True, slots=True)
class UziServerIdentity:
    """Identity of a care organisation's system as asserted by its UZI server certificate."""

    uzi_number: str
    ura: str
    agb: str
    raw: str


def _show(value: str) -> str:
    """Render untrusted input for an error message: repr (no control characters), bounded."""
    return repr(value if len(value) <= 80 else value[:80] + "...")


def parse_uzi_san_value(value: str) -> UziServerIdentity:
    """Parse the identity string found inside the UZI otherName; raise UziCertificateError."""
    if not isinstance(value, str):
        raise UziCertificateError(f"UZI identity must be a string, got {type(value).__name__}")
    if len(value) > _MAX_VALUE_LENGTH:
        raise UziCertificateError(f"UZI identity is too long ({len(value)} characters)")
    # Printable ASCII without spaces: rules out whitespace padding and Unicode lookalikes at once.
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise UziCertificateError(f"UZI identity {_show(value)} contains whitespace or non-ASCII characters")
    fields = value.split("-")
    if len(fields) != _FIELD_COUNT:
        raise UziCertificateError(
            f"UZI identity {_show(value)} has {len(fields)} '-'-separated fields, expected {_FIELD_COUNT}"
        )
    prefix, version, uzi_number, card_type, ura, role, agb = fields
    if prefix != UZI_SERVER_OID_PREFIX:
        raise UziCertificateError(f"UZI identity OID prefix {_show(prefix)} is not {UZI_SERVER_OID_PREFIX!r}")
    if version != _VERSION:
        raise UziCertificateError(f"unsupported UZI identity version {_show(version)}")
    if not _UZI_NUMBER_RE.match(uzi_number):
        raise UziCertificateError(f"UZI number {_show(uzi_number)} is not a run of 1-20 digits")
    if card_type != _CARD_TYPE_SERVER:
        raise UziCertificateError(f"card type {_show(card_type)} is not 'S' (server certificate)")
    if not _URA_RE.match(ura):
        raise UziCertificateError(f"URA {_show(ura)} is not exactly 8 digits")
    if role != _SERVER_ROLE:
        raise UziCertificateError(f"role {_show(role)} is not '00.000' (server certificate)")
    if not _AGB_RE.match(agb):
        raise UziCertificateError(f"AGB {_show(agb)} is not exactly 8 digits")
    return UziServerIdentity(uzi_number=uzi_number, ura=ura, agb=agb, raw=value)


def format_uzi_san_value(*, uzi_number: str, ura: str, agb: str) -> str:
    """Build the identity string; the result is parsed back so only valid values are produced."""
    value = "-".join((UZI_SERVER_OID_PREFIX, _VERSION, uzi_number, _CARD_TYPE_SERVER, ura, _SERVER_ROLE, agb))
    parse_uzi_san_value(value)
    return value


def encode_ia5string(value: str) -> bytes:
    """DER-encode an ASCII string as an ASN.1 IA5String (tag 0x16)."""
    content = value.encode("ascii")
    length = len(content)
    if length < 0x80:
        header = bytes((_IA5STRING_TAG, length))
    elif length <= 0xFF:
        header = bytes((_IA5STRING_TAG, 0x81, length))
    elif length <= 0xFFFF:
        header = bytes((_IA5STRING_TAG, 0x82)) + length.to_bytes(2, "big")
    else:
        raise ValueError("IA5String too long")
    return header + content


def decode_ia5string(der: bytes) -> str:
    """Decode exactly one DER IA5String (minimal length, no trailing bytes); raise otherwise."""
    if len(der) < 2:
        raise UziCertificateError("UZI otherName value is truncated")
    if der[0] != _IA5STRING_TAG:
        raise UziCertificateError(f"UZI otherName value has ASN.1 tag 0x{der[0]:02x}, expected IA5String (0x16)")
    first = der[1]
    if first < 0x80:
        length, offset = first, 2
    elif first in (0x81, 0x82):
        width = first & 0x7F
        if len(der) < 2 + width:
            raise UziCertificateError("UZI otherName value is truncated")
        length = int.from_bytes(der[2 : 2 + width], "big")
        offset = 2 + width
        # DER demands the shortest length form.
        if length < 0x80 or (width == 2 and length <= 0xFF):
            raise UziCertificateError("UZI otherName value uses a non-minimal DER length")
    else:
        raise UziCertificateError("UZI otherName value has an unsupported DER length")
    if len(der) - offset != length:
        raise UziCertificateError("UZI otherName value length does not match its DER header")
    content = der[offset:]
    # IA5 is 7-bit.
    if any(b >= 0x80 for b in content):
        raise UziCertificateError("UZI otherName value is not a valid IA5String")
    return content.decode("ascii")


def uzi_other_name(*, uzi_number: str, ura: str, agb: str) -> x509.OtherName:
    """The SAN otherName for a UZI server certificate (type-id 2.5.5.5, IA5String value)."""
    value = format_uzi_san_value(uzi_number=uzi_number, ura=ura, agb=agb)
    return x509.OtherName(UZI_OTHER_NAME_OID, encode_ia5string(value))


def parse_uzi_identity(cert: x509.Certificate) -> UziServerIdentity:
    """Extract the UZI server identity from a certificate's subjectAltName.

    Exactly one otherName with type-id 2.5.5.5 must be present; other otherNames (for example
    the permanentIdentifier newer UZI certificates also carry) are ignored. The same string in
    a DNS name, URI or an otherName of another type is not an identity.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise UziCertificateError("certificate has no subjectAltName extension") from None
    except ValueError as exc:  # duplicate or undecodable extensions
        raise UziCertificateError(f"certificate extensions are malformed: {exc}") from None
    candidates = [name for name in san.get_values_for_type(x509.OtherName) if name.type_id == UZI_OTHER_NAME_OID]
    if not candidates:
        raise UziCertificateError("subjectAltName has no otherName with type-id 2.5.5.5 (UZI identity)")
    if len(candidates) > 1:
        distinct = {name.value for name in candidates}
        kind = "conflicting" if len(distinct) > 1 else "duplicate"
        raise UziCertificateError(
            f"subjectAltName has {len(candidates)} {kind} UZI otherNames (2.5.5.5); exactly one is allowed"
        )
    return parse_uzi_san_value(decode_ia5string(candidates[0].value))
