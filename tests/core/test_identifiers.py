"""Identifiers: known cases and properties of the strict parsers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldn.core.identifiers import (
    AGB,
    BSN,
    KVK,
    SYSTEM_BSN,
    SYSTEM_URA,
    URA,
    IdentifierError,
    RoleCode,
    UziNumber,
    from_fhir_identifier,
    is_valid_bsn,
    redact_bsns,
)


def elfproef(digits: str) -> bool:
    weights = [9, 8, 7, 6, 5, 4, 3, 2, -1]
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0


def test_known_bsns() -> None:
    assert BSN.parse("999990019").value == "999990019"
    assert is_valid_bsn("999990007")
    assert is_valid_bsn("999990020")
    with pytest.raises(IdentifierError, match="11-check"):
        BSN.parse("999990018")
    assert not is_valid_bsn("000000000")


def test_ura_keeps_leading_zeros() -> None:
    ura = URA.parse("00000020")
    assert str(ura) == "00000020"
    assert ura.to_fhir() == {"system": SYSTEM_URA, "value": "00000020"}


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (URA, "0000002"),
        (URA, "000000200"),
        (URA, "0000002O"),
        (URA, " 00000020"),
        (URA, "٠٠٠٠٠٠٢٠"),  # Arabic-Indic digits are digits to str.isdigit, not to us
        (URA, 20),
        (BSN, "99999001"),
        (BSN, "9999900190"),
        (UziNumber, "90000001"),
        (AGB, "1234567"),
        (KVK, "1234567a"),
        (RoleCode, "01015"),
        (RoleCode, "1.015"),
        (RoleCode, "01.015\n"),
    ],
)
def test_malformed_identifiers_refused(cls: type, bad: object) -> None:
    with pytest.raises(IdentifierError):
        cls.parse(bad)


def test_bsn_repr_does_not_show_the_number() -> None:
    bsn = BSN.parse("999990019")
    assert "999990019" not in repr(bsn)
    assert bsn.masked().endswith("19")
    assert "99999" not in bsn.masked()


def test_fhir_identifier_round_trip_and_oid_form() -> None:
    assert from_fhir_identifier({"system": SYSTEM_BSN, "value": "999990019"}) == BSN("999990019")
    assert from_fhir_identifier({"system": "urn:oid:2.16.528.1.1007.3.3", "value": "00000020"}) == URA("00000020")
    with pytest.raises(IdentifierError, match="unknown identifier system"):
        from_fhir_identifier({"system": "http://example.org", "value": "1"})
    with pytest.raises(IdentifierError):
        from_fhir_identifier({"system": SYSTEM_URA, "value": "00000020"}, expected=BSN)


def test_role_code_coding() -> None:
    assert RoleCode.parse("17.000").to_coding("Apotheker")["code"] == "17.000"


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_bsn_parse_agrees_with_elfproef(digits: str) -> None:
    expected = elfproef(digits) and digits != "000000000"
    assert is_valid_bsn(digits) is expected


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_any_eight_digits_is_a_ura_and_round_trips(digits: str) -> None:
    assert str(URA.parse(digits)) == digits


@given(st.text(min_size=0, max_size=12))
def test_ura_parse_never_accepts_non_ascii_digit_strings(value: str) -> None:
    ok = len(value) == 8 and value.isascii() and value.isdigit()
    assert URA.is_valid(value) is ok


@given(st.integers(min_value=0, max_value=999_999_999))
def test_redaction_removes_every_valid_bsn(n: int) -> None:
    digits = f"{n:09d}"
    text = f"GET /Patient?identifier=bsn|{digits}&x=1"
    out = redact_bsns(text)
    if is_valid_bsn(digits):
        assert digits not in out
        assert "[BSN]" in out
    else:
        assert out == text


def test_redaction_leaves_longer_digit_runs_alone() -> None:
    assert redact_bsns("order 1999990019 at 20261122") == "order 1999990019 at 20261122"
