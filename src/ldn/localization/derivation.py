"""Identifier derivation for the PRS (SPEC §6, steps 1 and 2): BSN -> 32-byte OPRF input.

The client canonicalises the identifier with JCS (RFC 8785), so every implementation hashes the
same bytes, then binds it to one recipient with HKDF-SHA256 (RFC 5869): the info string
``"{recipient_organization}|{recipient_scope}|v1"`` makes the OPRF input, and so the pseudonym,
different per recipient and scope even before the PRS applies its per-recipient key.

A BSN is personal data: no error raised here ever repeats it.
"""

from __future__ import annotations

import re

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ldn.core.identifiers import BSN, IdentifierError

__all__ = [
    "DERIVATION_VERSION",
    "IDENTIFIER_TYPE_BSN",
    "LAND_CODE_NL",
    "OPRF_INPUT_LENGTH",
    "DerivationError",
    "canonical_identifier",
    "derive_oprf_input",
    "hkdf_info",
]

LAND_CODE_NL = "NL"
IDENTIFIER_TYPE_BSN = "BSN"
DERIVATION_VERSION = "v1"
OPRF_INPUT_LENGTH = 32
_MAX_RECIPIENT_PART_LENGTH = 255
# Printable ASCII without space and without "|": "|" is the info separator, so allowing it would
# let ("a|b", "c") and ("a", "b|c") share an info string and thus an OPRF input.
_RECIPIENT_PART = re.compile(r"[\x21-\x7b\x7d\x7e]+")


class DerivationError(ValueError):
    """Invalid derivation input; the message never contains the BSN."""


def _require_valid_bsn(bsn: object) -> str:
    try:
        return BSN.parse(bsn).value
    except IdentifierError as exc:
        raise DerivationError(f"invalid BSN: {exc.reason}") from None


def _require_recipient_part(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_RECIPIENT_PART_LENGTH:
        raise DerivationError(f"{name} must be a string of at most {_MAX_RECIPIENT_PART_LENGTH} characters")
    if not _RECIPIENT_PART.fullmatch(value):
        raise DerivationError(f"{name} must be non-empty printable ASCII without spaces or '|'")
    return value


def canonical_identifier(bsn: str) -> bytes:
    """The RFC 8785 (JCS) bytes of ``{"landCode":"NL","type":"BSN","value":<bsn>}``."""
    value = _require_valid_bsn(bsn)
    return rfc8785.dumps({"landCode": LAND_CODE_NL, "type": IDENTIFIER_TYPE_BSN, "value": value})


def hkdf_info(recipient_organization: str, recipient_scope: str) -> bytes:
    """The HKDF info string, e.g. ``b"ura:90000901|nationale-verwijsindex|v1"``."""
    organization = _require_recipient_part(recipient_organization, "recipient_organization")
    scope = _require_recipient_part(recipient_scope, "recipient_scope")
    return f"{organization}|{scope}|{DERIVATION_VERSION}".encode("ascii")


def derive_oprf_input(bsn: str, recipient_organization: str, recipient_scope: str) -> bytes:
    """``HKDF-SHA256(ikm=canonical_identifier(bsn), salt=None, info=hkdf_info(...), L=32)``.

    The result is the private input to `ldn.localization.oprf.blind`; it is as sensitive as the
    BSN itself (anyone can recompute it from a guessed BSN), so it never leaves the client.
    """
    ikm = canonical_identifier(bsn)
    info = hkdf_info(recipient_organization, recipient_scope)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=OPRF_INPUT_LENGTH, salt=None, info=info)
    return hkdf.derive(ikm)
