"""Search-parameter parsing of the node FHIR API: patients, tokens, dates, result parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ldn.core.errors import BadRequest, ServiceError
from ldn.node.fhir_api import (
    MAX_PARAMS,
    capability_resources,
    observation_categories,
    parse_date_value,
    parse_patient_identifier,
    parse_search,
)
from ldn.node.fhir_store import TokenFilter

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
ANNA = f"{BSN_SYSTEM}|999990007"


def _details(exc: pytest.ExceptionInfo[BadRequest]) -> str | None:
    return exc.value.details_code


@pytest.mark.parametrize(
    "name", ["patient.identifier", "patient:identifier", "subject.identifier", "subject:identifier"]
)
def test_patient_identifier_forms(name: str) -> None:
    parsed = parse_search("Observation", [(name, ANNA)])
    assert parsed.patient == ("identifier", ANNA)
    assert parsed.applied == [(name, ANNA)]


def test_patient_forms_per_type() -> None:
    assert parse_search("Patient", [("identifier", ANNA)]).patient == ("identifier", ANNA)
    assert parse_search("Patient", [("_id", "abc")]).patient == ("reference", "abc")
    assert parse_search("Condition", [("patient", "Patient/abc")]).patient == ("reference", "Patient/abc")
    # AllergyIntolerance has no `subject`; Patient has no `patient`
    with pytest.raises(BadRequest):
        parse_search("AllergyIntolerance", [("subject:identifier", ANNA)])
    with pytest.raises(BadRequest):
        parse_search("Patient", [("patient.identifier", ANNA)])


@pytest.mark.parametrize(
    "items",
    [
        [("patient.identifier", ANNA), ("subject:identifier", ANNA)],
        [("patient.identifier", f"{ANNA},{BSN_SYSTEM}|999990019")],
        [("patient.identifier", "")],
    ],
)
def test_one_patient_per_search(items: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest) as info:
        parse_search("Observation", items)
    assert _details(info) == "one-patient"


@pytest.mark.parametrize(
    "value",
    [
        "999990007",  # no system
        "|999990007",
        f"{BSN_SYSTEM}|999990008",  # fails the 11-check
        f"{BSN_SYSTEM}|12345",
        f"{BSN_SYSTEM}|",
        "http://fhir.nl/fhir/NamingSystem/ura|00000020",
        f"{BSN_SYSTEM}|99999000７",  # non-ASCII digit
    ],
)
def test_malformed_patient_identifiers(value: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_patient_identifier(value)
    assert _details(info) == "malformed-identifier"
    assert "999990008" not in info.value.diagnostics


def test_tokens_dates_and_result_parameters() -> None:
    parsed = parse_search(
        "Observation",
        [
            ("patient.identifier", ANNA),
            ("code", "http://loinc.org|4548-4,|bare,http://loinc.org|,plain"),
            ("category", "laboratory"),
            ("_lastUpdated", "ge2025-01"),
            ("_lastUpdated", "lt2026-02-03T10:00:00Z"),
            ("date", "2025"),
            ("_count", "7"),
            ("_offset", "14"),
            ("_format", "application/fhir+json"),
            ("_id", "a,b"),
            ("status", ""),  # empty: ignored
        ],
    )
    assert parsed.count == 7 and parsed.offset == 14
    assert parsed.ids == ("a", "b")
    code = parsed.tokens[0]
    assert code == TokenFilter(
        "code", (("http://loinc.org", "4548-4"), ("", "bare"), ("http://loinc.org", None), (None, "plain"))
    )
    assert [d.column for d in parsed.dates] == ["last_updated", "last_updated", "clinical_date"]
    assert parsed.dates[0].alternatives[0] == (
        "ge",
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 2, 1, tzinfo=UTC),
    )
    assert ("status", "") not in parsed.applied


def test_escaped_separators_stay_in_the_code() -> None:
    parsed = parse_search("Condition", [("patient.identifier", ANNA), ("code", r"s|a\,b,s|c\|d")])
    assert parsed.tokens[0].alternatives == (("s", "a,b"), ("s", "c|d"))


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2025", datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-12", datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-02-28", datetime(2025, 2, 28, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC)),
        ("2025-02-28T10:15", datetime(2025, 2, 28, 10, 15, tzinfo=UTC), datetime(2025, 2, 28, 10, 16, tzinfo=UTC)),
        (
            "2025-02-28T10:15:30+01:00",
            datetime(2025, 2, 28, 9, 15, 30, tzinfo=UTC),
            datetime(2025, 2, 28, 9, 15, 31, tzinfo=UTC),
        ),
    ],
)
def test_date_precision_ranges(value: str, low: datetime, high: datetime) -> None:
    assert parse_date_value(value) == ("eq", low, high)
    assert parse_date_value("sa" + value)[0] == "sa"


@pytest.mark.parametrize("value", ["25", "2025-13", "2025-02-30", "yesterday", "xx2025", "2025-01-01T25:00", "ge"])
def test_bad_dates(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_date_value(value)


def test_strict_and_lenient_unknown_parameters() -> None:
    items = [("patient.identifier", ANNA), ("_sort", "date"), ("colour", "blue"), ("\x00bad", "x")]
    with pytest.raises(BadRequest) as info:
        parse_search("Observation", items)
    assert _details(info) == "unknown-search-parameter"
    assert "\x00" not in info.value.diagnostics
    parsed = parse_search("Observation", items, lenient=True)
    assert parsed.ignored == ["_sort", "colour", "\x00bad"]
    assert parsed.patient == ("identifier", ANNA)
    # unsupported modifiers are refused even when lenient
    with pytest.raises(BadRequest, match="modifier"):
        parse_search("Observation", [("patient.identifier", ANNA), ("code:text", "x")], lenient=True)


@pytest.mark.parametrize(
    "items",
    [
        [("_count", "101")],
        [("_count", "-1")],
        [("_count", "ten")],
        [("_count", "1"), ("_count", "2")],
        [("_offset", "100001")],
        [("_id", "bad id")],
        [("code", "|")],
        [("date", "soon")],
        [("x" * 101, "1")],
        [("code", "y" * 1025)],
        [("code", "a")] * (MAX_PARAMS + 1),
    ],
)
def test_malformed_or_oversized_parameters(items: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest):
        parse_search("Observation", [("patient.identifier", ANNA), *items])


def test_only_json_is_offered() -> None:
    with pytest.raises(ServiceError) as info:
        parse_search("Observation", [("patient.identifier", ANNA), ("_format", "xml")])
    assert info.value.status == 406


def test_observation_category_narrowing() -> None:
    both = {"ObservationLaboratory", "ObservationVitalSigns"}
    assert observation_categories([]) == both
    lab = TokenFilter("category", ((None, "laboratory"),))
    assert observation_categories([lab]) == {"ObservationLaboratory"}
    snomed = TokenFilter("category", (("http://snomed.info/sct", "275711006"),))
    assert observation_categories([snomed]) == {"ObservationLaboratory"}
    either = TokenFilter("category", ((None, "laboratory"), (None, "vital-signs")))
    assert observation_categories([either]) == both
    unknown = TokenFilter("category", ((None, "laboratory"), (None, "social-history")))
    assert observation_categories([unknown]) == both
    vitals = TokenFilter("category", (("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"),))
    assert observation_categories([lab, vitals]) == set()


def test_capability_lists_every_type_and_its_parameters() -> None:
    resources = capability_resources()
    assert set(resources) == {
        "AllergyIntolerance",
        "Condition",
        "Encounter",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Patient",
        "Procedure",
    }
    observation = resources["Observation"]["search_params"]
    for name in ("patient", "patient:identifier", "subject:identifier", "category", "code", "_lastUpdated", "_count"):
        assert name in observation, name
    assert resources["Patient"]["search_params"]["identifier"] == "token"
    assert "subject" not in resources["AllergyIntolerance"]["search_params"]
