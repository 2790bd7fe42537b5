"""Dutch healthcare identifiers (SPEC §2): parse, validate, format, and FHIR Identifier helpers.

Identifiers are kept as strings everywhere: leading zeros in a URA are significant and a BSN is
not a number anyone should do arithmetic on (see docs/adr/0004-identifiers-as-strings.md).
Every parser is strict: ASCII digits only, exact length, no trimming of inner characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Self

__all__ = [
    "AGB",
    "BSN",
    "KVK",
    "SYSTEMS",
    "URA",
    "IdentifierError",
    "RoleCode",
    "UziNumber",
    "fhir_identifier",
    "from_fhir_identifier",
    "is_valid_bsn",
    "redact_bsns",
]

SYSTEM_BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
SYSTEM_URA = "http://fhir.nl/fhir/NamingSystem/ura"
SYSTEM_UZI = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers"
SYSTEM_AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
SYSTEM_ROLE_CODE = "urn:oid:2.16.840.1.113883.2.4.15.111"
SYSTEM_KVK = "http://www.kvk.nl/"

OID_BSN = "2.16.840.1.113883.2.4.6.3"
OID_URA = "2.16.528.1.1007.3.3"
OID_UZI = "2.16.528.1.1007.3.1"
OID_ROLE_CODE = "2.16.840.1.113883.2.4.15.111"


class IdentifierError(ValueError):
    """An identifier failed validation; the message never repeats a full BSN."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"invalid {kind}: {reason}")
        self.kind = kind
        self.reason = reason


def _digits(value: object, kind: str, length: int) -> str:
    if not isinstance(value, str):
        raise IdentifierError(kind, f"expected a string of {length} digits, got {type(value).__name__}")
    if len(value) != length or not (value.isascii() and value.isdigit()):
        raise IdentifierError(kind, f"expected exactly {length} ASCII digits")
    return value


def _bsn_checksum_ok(digits: str) -> bool:
    # The 11-check ("elfproef") for BSN: weights 9..2 and -1 for the last digit.
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    total -= int(digits[8])
    return total % 11 == 0


def is_valid_bsn(value: object) -> bool:
    """True when `value` is a 9-digit string passing the 11-check (and not all zeros)."""
    try:
        BSN.parse(value)
    except IdentifierError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Identifier:
    """Base for string identifiers: immutable, compared by value, str() gives the canonical form."""

    value: str

    kind: ClassVar[str] = "identifier"
    system: ClassVar[str] = ""
    length: ClassVar[int] = 0

    @classmethod
    def parse(cls, value: object) -> Self:
        return cls(_digits(value, cls.kind, cls.length))

    @classmethod
    def is_valid(cls, value: object) -> bool:
        try:
            cls.parse(value)
        except IdentifierError:
            return False
        return True

    def __str__(self) -> str:
        return self.value

    def to_fhir(self) -> dict[str, str]:
        return {"system": self.system, "value": self.value}


@dataclass(frozen=True, slots=True)
class BSN(_Identifier):
    """Burgerservicenummer: 9 digits passing the 11-check. repr() never shows the digits."""

    kind: ClassVar[str] = "BSN"
    system: ClassVar[str] = SYSTEM_BSN
    length: ClassVar[int] = 9

    @classmethod
    def parse(cls, value: object) -> Self:
        digits = _digits(value, cls.kind, cls.length)
        if digits == "000000000" or not _bsn_checksum_ok(digits):
            raise IdentifierError(cls.kind, "fails the 11-check")
        return cls(digits)

    def __repr__(self) -> str:
        return f"BSN(***{self.value[-2:]})"

    def masked(self) -> str:
        """A form safe for logs and screens: only the last two digits."""
        return "*******" + self.value[-2:]


@dataclass(frozen=True, slots=True)
class URA(_Identifier):
    """UZI-register abonneenummer of a care organisation: 8 digits, leading zeros significant."""

    kind: ClassVar[str] = "URA"
    system: ClassVar[str] = SYSTEM_URA
    length: ClassVar[int] = 8


@dataclass(frozen=True, slots=True)
class UziNumber(_Identifier):
    """UZI or Dezi number of a professional: 9 digits."""

    kind: ClassVar[str] = "UZI number"
    system: ClassVar[str] = SYSTEM_UZI
    length: ClassVar[int] = 9


@dataclass(frozen=True, slots=True)
class AGB(_Identifier):
    """AGB code of a care provider: 8 digits."""

    kind: ClassVar[str] = "AGB"
    system: ClassVar[str] = SYSTEM_AGB
    length: ClassVar[int] = 8


@dataclass(frozen=True, slots=True)
class KVK(_Identifier):
    """Chamber of Commerce number for non-care organisations: 8 digits."""

    kind: ClassVar[str] = "KvK"
    system: ClassVar[str] = SYSTEM_KVK
    length: ClassVar[int] = 8


_ROLE_CODE = re.compile(r"\A[0-9]{2}\.[0-9]{3}\Z", re.ASCII)


@dataclass(frozen=True, slots=True)
class RoleCode(_Identifier):
    """UZI/Dezi role code `NN.NNN`, e.g. 01.015 (huisarts) or 17.000 (apotheker)."""

    kind: ClassVar[str] = "role code"
    system: ClassVar[str] = SYSTEM_ROLE_CODE

    @classmethod
    def parse(cls, value: object) -> Self:
        if not isinstance(value, str) or not _ROLE_CODE.match(value):
            raise IdentifierError(cls.kind, "expected the form NN.NNN")
        return cls(value)

    def to_coding(self, display: str | None = None) -> dict[str, str]:
        coding = {"system": self.system, "code": self.value}
        if display:
            coding["display"] = display
        return coding


SYSTEMS: dict[str, type[_Identifier]] = {
    SYSTEM_BSN: BSN,
    SYSTEM_URA: URA,
    SYSTEM_UZI: UziNumber,
    SYSTEM_AGB: AGB,
    SYSTEM_KVK: KVK,
    f"urn:oid:{OID_BSN}": BSN,
    f"urn:oid:{OID_URA}": URA,
    f"urn:oid:{OID_UZI}": UziNumber,
}


def fhir_identifier(identifier: _Identifier) -> dict[str, str]:
    """The FHIR Identifier (system + value) for an identifier."""
    return identifier.to_fhir()


def from_fhir_identifier(data: Any, expected: type[_Identifier] | None = None) -> _Identifier:
    """Parse a FHIR Identifier (dict) into the typed identifier its system names.

    Accepts the `http://fhir.nl/...` systems and their `urn:oid:` forms. With `expected`, any
    other type is refused.
    """
    if not isinstance(data, dict):
        raise IdentifierError("identifier", "expected a FHIR Identifier object")
    system, value = data.get("system"), data.get("value")
    cls = SYSTEMS.get(system) if isinstance(system, str) else None
    if cls is None:
        raise IdentifierError("identifier", f"unknown identifier system {system!r}")
    if expected is not None and cls is not expected:
        raise IdentifierError(expected.kind, f"expected system {expected.system}")
    return cls.parse(value)


# Nine-digit runs that are not part of a longer digit run; only those passing the 11-check are
# treated as BSNs, so order numbers and timestamps are left readable.
_NINE_DIGITS = re.compile(r"(?<![0-9])[0-9]{9}(?![0-9])")


def redact_bsns(text: str) -> str:
    """Replace every BSN-looking value (9 digits passing the 11-check) by a mask."""
    if not text:
        return text

    def _mask(match: re.Match[str]) -> str:
        digits = match.group(0)
        if digits != "000000000" and _bsn_checksum_ok(digits):
            return "[BSN]"
        return digits

    return _NINE_DIGITS.sub(_mask, text)
