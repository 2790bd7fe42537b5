"""Unit rules: time and date ranges, references, URA chains, index extraction, header parsing."""

from __future__ import annotations

import pytest

from ldn.addressing.codes import SYSTEM_URA, source_ura, source_uri
from ldn.addressing.directory import parse_etag
from ldn.addressing.model import (
    chain_link,
    deactivated,
    instant_to_us,
    is_active,
    parse_instant_range,
    parse_reference,
    us_to_instant,
    without_server_meta,
)
from ldn.addressing.search import prefer_strict, split_alternatives
from ldn.addressing.searchparams import extract, normalize
from ldn.core.errors import BadRequest
from tests.addressing.factories import endpoint, location, mandate, organization, service

SECOND = 1_000_000


def test_instants_round_trip_with_microseconds() -> None:
    for text in ("2026-11-22T10:33:29.075460Z", "1999-12-31T23:59:59.999999Z", "2026-01-01T00:00:00.000001Z"):
        assert us_to_instant(instant_to_us(text)) == text
    assert instant_to_us("2026-11-22T11:33:29+01:00") == instant_to_us("2026-11-22T10:33:29Z")
    assert instant_to_us("2026-11-22T10:33:29.1Z") == instant_to_us("2026-11-22T10:33:29Z") + 100_000


@pytest.mark.parametrize(
    ("value", "width"),
    [
        ("2026", 365 * 86400 * SECOND),
        ("2024-02", 29 * 86400 * SECOND),
        ("2026-11-22", 86400 * SECOND),
        ("2026-11-22T10:33", 60 * SECOND),
        ("2026-11-22T10:33:29", SECOND),
        ("2026-11-22T10:33:29.5Z", 100_000),
        ("2026-11-22T10:33:29.123456Z", 1),
    ],
)
def test_date_ranges_follow_the_precision(value: str, width: int) -> None:
    low, high = parse_instant_range(value)
    assert high - low == width


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-02-30", "26-01-01", "2026-01-01T25:00", ""])
def test_bad_dates_are_400(bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_instant_range(bad)


def test_references() -> None:
    base = "http://ldn.test/mcsd"
    assert parse_reference("Organization/org-1") == ("Organization", "org-1")
    assert parse_reference("Organization/org-1/_history/3") == ("Organization", "org-1")
    assert parse_reference(f"{base}/Endpoint/e.1", base) == ("Endpoint", "e.1")
    assert parse_reference("http://elsewhere/fhir/Organization/1", base) is None
    assert parse_reference("x/Organization/1") is None
    assert parse_reference("#contained") is None
    assert parse_reference("urn:uuid:6f1c1b48-39f4-4c1e-9a51-2d8d0c1c0a01") is None
    assert parse_reference(None) is None


def test_chain_links_per_type() -> None:
    assert chain_link("Organization", organization("o", ura="00000020")).ura == "00000020"
    assert chain_link("Organization", organization("o", part_of="p")).parent == ("Organization", "p")
    assert chain_link("Location", location("l", "o")).parent == ("Organization", "o")
    assert chain_link("HealthcareService", service("h", "o")).parent == ("Organization", "o")
    assert chain_link("OrganizationAffiliation", mandate("m", "o", "00000030")).parent == ("Organization", "o")
    assert chain_link("Endpoint", endpoint("e", owner_org="o")).parent == ("Organization", "o")
    custodian = chain_link("Endpoint", endpoint("e", custodian="00000040"))
    assert custodian.ura == "00000040" and not custodian.self_is_top
    logical = {**endpoint("e"), "managingOrganization": {"identifier": {"system": SYSTEM_URA, "value": "00000050"}}}
    assert chain_link("Endpoint", logical).ura == "00000050"
    assert chain_link("Endpoint", endpoint("e")).broken
    assert chain_link("Organization", organization("o")).broken


def test_soft_delete_and_activity() -> None:
    for rtype, body in (
        ("Organization", organization("o", ura="00000020")),
        ("Endpoint", endpoint("e")),
        ("Location", location("l", "o")),
        ("HealthcareService", service("h", "o")),
        ("OrganizationAffiliation", mandate("m", "o", "00000030")),
    ):
        assert is_active(rtype, body)
        assert not is_active(rtype, deactivated(rtype, body))
    meta = {"versionId": "3", "lastUpdated": "x", "source": "y", "profile": ["p"]}
    assert without_server_meta({"id": "a", "meta": meta}) == {"id": "a", "meta": {"profile": ["p"]}}
    assert without_server_meta({"id": "a", "meta": {"versionId": "1"}}) == {"id": "a"}


def test_index_rows() -> None:
    org = {
        **organization("o", ura="00000020", name="Huisartsenpraktijk De Líndé"),
        "endpoint": [{"reference": "Endpoint/e1"}],
    }
    rows = set(extract("Organization", org))
    assert ("identifier", SYSTEM_URA, "00000020") in rows
    assert ("name", "", "huisartsenpraktijk de linde") in rows
    assert ("name:exact", "", "Huisartsenpraktijk De Líndé") in rows
    assert ("active", "", "true") in rows
    assert ("endpoint", "Endpoint", "e1") in rows
    kvk = {
        **endpoint("e"),
        "managingOrganization": {"identifier": {"system": "http://www.kvk.nl/", "value": "81234567"}},
    }
    assert ("organization:identifier", "http://www.kvk.nl/", "81234567") in set(extract("Endpoint", kvk))
    assert extract("Endpoint", kvk, only=frozenset({"payload-type"})) == [
        ("payload-type", "https://ldn.example.org/fhir/CodeSystem/endpoint-payload-type", "fhir-query-r4")
    ]
    assert normalize("  Zorg   CENTRUM  ") == "zorg centrum"


def test_header_and_value_parsing() -> None:
    assert prefer_strict("handling=strict")
    assert prefer_strict('return=minimal, handling="strict"')
    assert not prefer_strict("handling=lenient")
    assert not prefer_strict(None)
    assert parse_etag('W/"3"') == 3 and parse_etag('"12"') == 12 and parse_etag("7") == 7
    with pytest.raises(BadRequest):
        parse_etag("W/abc")
    assert split_alternatives("a,b\\,c,,d") == ["a", "b,c", "d"]
    assert source_ura(source_uri("00000020")) == "00000020"
    assert source_ura("urn:oid:2.16.528.1.1007.3.3.123") is None
    assert source_ura(None) is None
