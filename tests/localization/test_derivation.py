"""Identifier derivation (SPEC §6 steps 1-2): JCS identifier, HKDF-SHA256 per recipient, BSN check.

The HKDF known answer is recomputed here from first principles (RFC 5869 extract and expand
written out with hmac/hashlib), so the test does not trust the `cryptography` HKDF it checks.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldn.localization import derivation

VALID_BSN = "999990019"
NVI_ORG = "ura:90000901"
NVI_SCOPE = "nationale-verwijsindex"
# Pinned once, from _hkdf_sha256 below (not from the code under test), for regression.
KNOWN_ANSWER_999990019_NVI = "e3d952c853154d7460f66a292343852e21707373c43a95faad24f3c222afc3de"


def _hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    # RFC 5869 §2.2: an absent salt is HashLen zero bytes.
    prk = hmac.new(salt or bytes(hashlib.sha256().digest_size), ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:  # §2.3: T(i) = HMAC(PRK, T(i-1) | info | i)
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def _bsn_with_check_digit(first_eight: str) -> str | None:
    total = sum(int(d) * w for d, w in zip(first_eight, range(9, 1, -1), strict=True))
    last = total % 11
    return first_eight + str(last) if last < 10 else None


def test_reference_hkdf_matches_rfc5869_case_3() -> None:
    # RFC 5869 Appendix A.3 (SHA-256, empty salt and info) validates the reference helper itself.
    okm = _hkdf_sha256(b"\x0b" * 22, b"", 42)
    assert okm.hex() == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"


def test_canonical_identifier_is_jcs() -> None:
    assert derivation.canonical_identifier(VALID_BSN) == b'{"landCode":"NL","type":"BSN","value":"999990019"}'


def test_hkdf_info_format() -> None:
    assert derivation.hkdf_info(NVI_ORG, NVI_SCOPE) == b"ura:90000901|nationale-verwijsindex|v1"


def test_derive_oprf_input_known_answer() -> None:
    expected = _hkdf_sha256(
        b'{"landCode":"NL","type":"BSN","value":"999990019"}',
        b"ura:90000901|nationale-verwijsindex|v1",
        32,
    )
    derived = derivation.derive_oprf_input(VALID_BSN, NVI_ORG, NVI_SCOPE)
    assert len(derived) == derivation.OPRF_INPUT_LENGTH
    assert derived == expected
    assert derived.hex() == KNOWN_ANSWER_999990019_NVI


def test_different_recipients_and_scopes_give_different_inputs() -> None:
    inputs = {
        derivation.derive_oprf_input(VALID_BSN, NVI_ORG, NVI_SCOPE),
        derivation.derive_oprf_input(VALID_BSN, "ura:90000902", NVI_SCOPE),
        derivation.derive_oprf_input(VALID_BSN, NVI_ORG, "other-scope"),
    }
    assert len(inputs) == 3


def test_different_bsns_give_different_inputs() -> None:
    assert derivation.derive_oprf_input("999990019", NVI_ORG, NVI_SCOPE) != derivation.derive_oprf_input(
        "999990007", NVI_ORG, NVI_SCOPE
    )


@pytest.mark.parametrize("bsn", ["999990019", "999990007", "999990020"])
def test_spec_synthetic_bsns_are_accepted(bsn: str) -> None:
    assert bsn.encode() in derivation.canonical_identifier(bsn)


@pytest.mark.parametrize(
    "bad",
    [
        "999990018",  # fails the 11-check
        "000000000",  # passes the arithmetic but is never issued
        "99999001",  # 8 digits
        "9999900190",  # 10 digits
        "99999001a",
        " 99999001",
        "９９９９９００１９",  # full-width digits: isdigit() but not ASCII
        "",
        999990019,
        None,
    ],
)
def test_invalid_bsns_are_refused_without_echoing_them(bad: object) -> None:
    with pytest.raises(derivation.DerivationError) as excinfo:
        derivation.derive_oprf_input(bad, NVI_ORG, NVI_SCOPE)  # type: ignore[arg-type]
    if isinstance(bad, str) and bad:
        assert bad.strip() not in str(excinfo.value)


@pytest.mark.parametrize(
    ("organization", "scope"),
    [
        ("", NVI_SCOPE),
        (NVI_ORG, ""),
        ("ura:9|0000901", NVI_SCOPE),  # the separator would make info strings ambiguous
        (NVI_ORG, "nationale|verwijsindex"),
        ("ura 90000901", NVI_SCOPE),
        (NVI_ORG, "x" * 256),
        ("ura:9000090\u00e9", NVI_SCOPE),
    ],
)
def test_invalid_recipient_parts_are_refused(organization: str, scope: str) -> None:
    with pytest.raises(derivation.DerivationError):
        derivation.derive_oprf_input(VALID_BSN, organization, scope)


@settings(max_examples=50, deadline=None)
@given(first_eight=st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_eleven_check_matches_reference(first_eight: str) -> None:
    bsn = _bsn_with_check_digit(first_eight)
    if bsn is None or bsn == "000000000":
        return
    assert derivation.canonical_identifier(bsn).endswith(f'"value":"{bsn}"}}'.encode())
    wrong_last = bsn[:8] + str((int(bsn[8]) + 1) % 10)
    with pytest.raises(derivation.DerivationError):
        derivation.canonical_identifier(wrong_last)


@settings(max_examples=30, deadline=None)
@given(
    org=st.from_regex(r"[a-z0-9:.\-]{1,20}", fullmatch=True),
    scope=st.from_regex(r"[a-z0-9.\-]{1,20}", fullmatch=True),
)
def test_derivation_matches_reference_hkdf(org: str, scope: str) -> None:
    expected = _hkdf_sha256(derivation.canonical_identifier(VALID_BSN), f"{org}|{scope}|v1".encode(), 32)
    assert derivation.derive_oprf_input(VALID_BSN, org, scope) == expected
