"""UZI identity parsing: exact acceptance, and refusal of every lookalike."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st
from trust_helpers import PERMANENT_IDENTIFIER_OID, UZI_OID, CertKit, der_ia5, uzi_san, uzi_value

from ldn.trust.uzi import (
    UziCertificateError,
    UziServerIdentity,
    decode_ia5string,
    encode_ia5string,
    format_uzi_san_value,
    parse_uzi_identity,
    parse_uzi_san_value,
)

# Test oracle, written independently of the implementation.
ORACLE = re.compile(r"2\.16\.528\.1\.1007\.99\.2110-1-([0-9]{1,20})-S-([0-9]{8})-00\.000-([0-9]{8})")
digits = st.text(alphabet="0123456789", min_size=8, max_size=8)


def test_parses_value_and_keeps_leading_zeros() -> None:
    identity = parse_uzi_san_value(uzi_value(uzi="900000001", ura="00000020", agb="00012345"))
    assert identity == UziServerIdentity(
        uzi_number="900000001", ura="00000020", agb="00012345", raw=uzi_value("900000001", "00000020", "00012345")
    )
    assert isinstance(identity.ura, str)


def test_identity_is_frozen() -> None:
    identity = parse_uzi_san_value(uzi_value())
    with pytest.raises(AttributeError):
        identity.ura = "12345678"  # type: ignore[misc]


def test_parses_independently_built_certificate(certkit: CertKit) -> None:
    cert = certkit.leaf(certkit.standard_san(uzi_value(uzi="123456789", ura="00000020", agb="87654321")))
    identity = parse_uzi_identity(cert)
    assert (identity.uzi_number, identity.ura, identity.agb) == ("123456789", "00000020", "87654321")


def test_other_other_names_are_ignored(certkit: CertKit) -> None:
    # Newer UZI certificates also carry a permanentIdentifier otherName; it must not disturb parsing.
    permanent = x509.OtherName(PERMANENT_IDENTIFIER_OID, bytes.fromhex("3000"))
    cert = certkit.leaf([permanent, uzi_san(uzi_value()), x509.DNSName("localhost")])
    assert parse_uzi_identity(cert).ura == "00000020"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2.16.528.1.1007.99.2111-1-900000001-S-00000020-00.000-12345678", "OID prefix"),
        ("2.16.528.1.1007.99.21100-1-900000001-S-00000020-00.000-12345678", "OID prefix"),
        ("2.16.528.1.1007.99.2110.5-1-900000001-S-00000020-00.000-12345678", "OID prefix"),
        ("x2.16.528.1.1007.99.2110-1-900000001-S-00000020-00.000-12345678", "OID prefix"),
        ("2.16.528.1.1007.99.2110-2-900000001-S-00000020-00.000-12345678", "version"),
        ("2.16.528.1.1007.99.2110-1--S-00000020-00.000-12345678", "UZI number"),
        ("2.16.528.1.1007.99.2110-1-90000000a-S-00000020-00.000-12345678", "UZI number"),
        ("2.16.528.1.1007.99.2110-1-900000001-Z-00000020-00.000-12345678", "card type"),
        ("2.16.528.1.1007.99.2110-1-900000001-s-00000020-00.000-12345678", "card type"),
        ("2.16.528.1.1007.99.2110-1-900000001-N-00000020-00.000-12345678", "card type"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-0000020-00.000-12345678", "URA"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-000000200-00.000-12345678", "URA"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-0000002O-00.000-12345678", "URA"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-+0000020-00.000-12345678", "URA"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020-01.015-12345678", "role"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020-00.000-1234567", "AGB"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020-00.000-123456789", "AGB"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020-00.000-12345678-extra", "fields"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020-00.000", "fields"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020-12345678", "fields"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020--00.000-12345678", "fields"),
        (" 2.16.528.1.1007.99.2110-1-900000001-S-00000020-00.000-12345678", "whitespace"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020-00.000-12345678\n", "whitespace"),
        ("2.16.528.1.1007.99.2110-1-900000001-S-00000020 -00.000-12345678", "whitespace"),
        # Arabic-Indic and full-width digits satisfy str.isdigit() but are not ASCII.
        (
            "2.16.528.1.1007.99.2110-1-900000001-S-\u0660\u0660\u0660\u0660\u0660\u0660\u0662\u0660-00.000-12345678",
            "ASCII",
        ),
        (
            "2.16.528.1.1007.99.2110-1-900000001-S-\uff10\uff10\uff10\uff10\uff10\uff10\uff12\uff10-00.000-12345678",
            "ASCII",
        ),
        ("2.16.528.1.1007.99.2110\u20111-900000001-S-00000020-00.000-12345678", "ASCII"),  # non-breaking hyphen
        ("", "fields"),
    ],
)
def test_lookalike_values_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(UziCertificateError, match=fragment):
        parse_uzi_san_value(value)


def test_refuses_non_string() -> None:
    with pytest.raises(UziCertificateError):
        parse_uzi_san_value(b"2.16.528.1.1007.99.2110-1-1-S-00000020-00.000-12345678")  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    uzi=st.text(alphabet="0123456789", min_size=1, max_size=20),
    ura=digits,
    agb=digits,
)
def test_round_trip_for_any_digits(uzi: str, ura: str, agb: str) -> None:
    value = format_uzi_san_value(uzi_number=uzi, ura=ura, agb=agb)
    identity = parse_uzi_san_value(value)
    assert (identity.uzi_number, identity.ura, identity.agb, identity.raw) == (uzi, ura, agb, value)


@settings(max_examples=300, deadline=None)
@given(
    ura=st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=10),
    agb=st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=10),
)
def test_parser_agrees_with_oracle_for_arbitrary_fields(ura: str, agb: str) -> None:
    value = f"2.16.528.1.1007.99.2110-1-900000001-S-{ura}-00.000-{agb}"
    match = ORACLE.fullmatch(value) if value.isascii() else None
    if match:
        assert parse_uzi_san_value(value).ura == match.group(2)
    else:
        with pytest.raises(UziCertificateError):
            parse_uzi_san_value(value)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=80))
def test_parser_never_accepts_what_the_oracle_refuses(value: str) -> None:
    accepted = value.isascii() and ORACLE.fullmatch(value) is not None
    if accepted:
        parse_uzi_san_value(value)
    else:
        with pytest.raises(UziCertificateError):
            parse_uzi_san_value(value)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0, max_value=62), char=st.characters(codec="utf-8"))
def test_single_character_insertions(position: int, char: str) -> None:
    valid = uzi_value()
    mutated = valid[:position] + char + valid[position:]
    if mutated.isascii() and ORACLE.fullmatch(mutated):
        assert parse_uzi_san_value(mutated).raw == mutated
    else:
        with pytest.raises(UziCertificateError):
            parse_uzi_san_value(mutated)


# -- certificate level ------------------------------------------------------------------------


def test_no_san_is_refused(certkit: CertKit) -> None:
    with pytest.raises(UziCertificateError, match="no subjectAltName"):
        parse_uzi_identity(certkit.leaf(None))


def test_value_in_dns_name_is_not_an_identity(certkit: CertKit) -> None:
    cert = certkit.leaf([x509.DNSName(uzi_value()), x509.DNSName("localhost")])
    with pytest.raises(UziCertificateError, match=r"2\.5\.5\.5"):
        parse_uzi_identity(cert)


def test_value_in_uri_is_not_an_identity(certkit: CertKit) -> None:
    cert = certkit.leaf([x509.UniformResourceIdentifier(f"urn:{uzi_value()}")])
    with pytest.raises(UziCertificateError):
        parse_uzi_identity(cert)


@pytest.mark.parametrize("oid", ["2.5.5.6", "2.5.5", "1.3.6.1.4.1.311.20.2.3", "2.5.5.5.1"])
def test_value_under_other_type_id_is_refused(certkit: CertKit, oid: str) -> None:
    cert = certkit.leaf([x509.OtherName(x509.ObjectIdentifier(oid), der_ia5(uzi_value()))])
    with pytest.raises(UziCertificateError, match=r"no otherName with type-id 2\.5\.5\.5"):
        parse_uzi_identity(cert)


def test_conflicting_uzi_other_names_are_refused(certkit: CertKit) -> None:
    cert = certkit.leaf([uzi_san(uzi_value(ura="00000020")), uzi_san(uzi_value(ura="00000021"))])
    with pytest.raises(UziCertificateError, match="conflicting"):
        parse_uzi_identity(cert)


def test_duplicate_uzi_other_names_are_refused(certkit: CertKit) -> None:
    cert = certkit.leaf([uzi_san(uzi_value()), uzi_san(uzi_value())])
    with pytest.raises(UziCertificateError, match="exactly one"):
        parse_uzi_identity(cert)


def test_bad_value_inside_certificate_is_refused(certkit: CertKit) -> None:
    bad = "2.16.528.1.1007.99.2110-1-900000001-S-0000020-00.000-12345678"
    with pytest.raises(UziCertificateError, match="URA"):
        parse_uzi_identity(certkit.leaf([uzi_san(bad)]))


@pytest.mark.parametrize(
    ("der", "fragment"),
    [
        (b"\x0c" + der_ia5(uzi_value())[1:], "tag 0x0c"),  # UTF8String instead of IA5String
        (b"\x13" + der_ia5(uzi_value())[1:], "tag 0x13"),  # PrintableString
        (bytes([0x16, 3]) + "é".encode() + b"a", "IA5String"),  # 8-bit content
    ],
)
def test_wrong_string_type_in_other_name_is_refused(certkit: CertKit, der: bytes, fragment: str) -> None:
    cert = certkit.leaf([x509.OtherName(UZI_OID, der)])
    with pytest.raises(UziCertificateError, match=fragment):
        parse_uzi_identity(cert)


# cryptography refuses to embed invalid DER in a certificate, so these are tested on the decoder.
@pytest.mark.parametrize(
    ("der", "fragment"),
    [
        (der_ia5(uzi_value()) + b"\x00", "length"),  # trailing byte
        (der_ia5(uzi_value())[:-1], "length"),  # truncated content
        (b"\x16\x81\x05abcde", "non-minimal"),
        (b"\x16\x82\x00\x90" + b"a" * 0x90, "non-minimal"),
        (b"\x16\x84\x00\x00\x00\x01a", "unsupported"),
        (b"\x16\x82\x01", "truncated"),
        (b"\x16", "truncated"),
        (b"", "truncated"),
    ],
)
def test_bad_der_is_refused_by_decoder(der: bytes, fragment: str) -> None:
    with pytest.raises(UziCertificateError, match=fragment):
        decode_ia5string(der)


@pytest.mark.parametrize("length", [0, 1, 60, 127, 128, 255, 256, 1000])
def test_ia5_encoding_round_trips(length: int) -> None:
    value = "a" * length
    encoded = encode_ia5string(value)
    assert decode_ia5string(encoded) == value
    if length < 128:
        assert encoded == bytes([0x16, length]) + value.encode()


def test_encoding_matches_hand_written_der() -> None:
    assert encode_ia5string(uzi_value()) == der_ia5(uzi_value())


def test_format_refuses_bad_fields() -> None:
    with pytest.raises(UziCertificateError):
        format_uzi_san_value(uzi_number="1", ura="1234567", agb="12345678")
