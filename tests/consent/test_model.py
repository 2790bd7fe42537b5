"""Consent choice model and code tables: validation refuses what the decision core must never see."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ldn.consent.categories import (
    ANCESTORS,
    DESCENDANTS,
    FACILITY_TYPES,
    GROUPS_OF_FACILITY_TYPE,
    NVI_CATEGORIES,
    PROVIDER_GROUP_MEMBERS,
    PROVIDER_GROUPS,
    DataCategory,
    is_ancestor,
    mitz_category_for_nvi,
    nvi_categories_for,
)
from ldn.consent.model import ChoiceDecision, Party, PartyKind

from .factories import AT, BSN, EPOCH, choice, days


def test_category_hierarchy() -> None:
    assert is_ancestor(DataCategory.TREATMENT, DataCategory.RESULTS)
    assert is_ancestor(DataCategory.TREATMENT, DataCategory.MEDICATION)
    assert not is_ancestor(DataCategory.RESULTS, DataCategory.TREATMENT)
    assert not is_ancestor(DataCategory.TREATMENT, DataCategory.TREATMENT)
    assert not is_ancestor(DataCategory.RESULTS, DataCategory.MEDICATION)
    assert ANCESTORS[DataCategory.TREATMENT] == ()
    assert set(DESCENDANTS[DataCategory.TREATMENT]) == {DataCategory.RESULTS, DataCategory.MEDICATION}
    assert [c.value for c in DataCategory] == ["GGC002", "GGC012", "GGC013"]


@pytest.mark.parametrize(
    ("nvi", "mitz"),
    [
        ("MedicationRequest", "GGC013"),
        ("MedicationUse", "GGC013"),
        ("ObservationLaboratory", "GGC012"),
        ("DiagnosticReport", "GGC012"),
        ("Imaging", "GGC012"),
        ("Condition", "GGC002"),
        ("ObservationVitalSigns", "GGC002"),
        ("AllergyIntolerance", "GGC002"),
        ("Patient", "GGC002"),
    ],
)
def test_nvi_to_mitz(nvi: str, mitz: str) -> None:
    assert mitz_category_for_nvi(nvi).value == mitz


def test_nvi_mapping_is_total_and_strict() -> None:
    assert nvi_categories_for(DataCategory.TREATMENT) == NVI_CATEGORIES
    assert nvi_categories_for(DataCategory.MEDICATION) == {"MedicationRequest", "MedicationUse"}
    with pytest.raises(KeyError):
        mitz_category_for_nvi("Medication")  # a typo must not silently become "treatment data"


def test_every_facility_type_is_in_a_group() -> None:
    # A requester type outside every group would slip past a group deny to an "any" permit.
    assert all(GROUPS_OF_FACILITY_TYPE[code] for code in FACILITY_TYPES)
    assert set().union(*PROVIDER_GROUP_MEMBERS.values()) <= set(FACILITY_TYPES)
    assert set(PROVIDER_GROUP_MEMBERS) == set(PROVIDER_GROUPS)
    assert GROUPS_OF_FACILITY_TYPE["J8"] == {"RPZAC005"}
    assert GROUPS_OF_FACILITY_TYPE["K3"] == {"RPZAC001", "RPZAC005"}


@pytest.mark.parametrize(
    ("text", "kind", "code"),
    [
        ("any", PartyKind.ANY, None),
        ("ura:00000659", PartyKind.ORGANIZATION, "00000659"),
        ("type:Z3", PartyKind.FACILITY_TYPE, "Z3"),
        ("group:RPZAC005", PartyKind.PROVIDER_GROUP, "RPZAC005"),
    ],
)
def test_party_compact_form(text: str, kind: PartyKind, code: str | None) -> None:
    party = Party.model_validate(text)
    assert (party.kind, party.code) == (kind, code)
    assert str(party) == text


@pytest.mark.parametrize(
    "bad",
    [
        "ura:0000659",  # 7 digits
        "ura:000006590",
        "ura:0000065a",
        "type:A1",  # not in ldn's RoleCodeNL table
        "group:RPZAC999",
        "anyone",
        "ura:",
        {"kind": "any", "code": "x"},
        {"kind": "ura"},
    ],
)
def test_party_refuses_bad_codes(bad: Any) -> None:
    with pytest.raises(ValidationError):
        Party.model_validate(bad)


def test_party_constructors() -> None:
    assert Party.organization("00000659") == Party.model_validate("ura:00000659")
    assert Party.facility_type("Z3").kind is PartyKind.FACILITY_TYPE
    assert Party.group("RPZAC001").kind is PartyKind.PROVIDER_GROUP
    assert Party.any().code is None


def test_a_valid_choice() -> None:
    c = choice("deny", valid_until=AT)
    assert c.decision is ChoiceDecision.DENY
    assert c.data_category is DataCategory.MEDICATION


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bsn": "999990018"}, "11-check"),
        ({"bsn": "000000000"}, "11-check"),
        ({"bsn": "99999001"}, "11-check"),
        ({"holder": "ura:1234567"}, "URA"),
        ({"requester": "ura:123456789"}, "URA"),
        ({"data_category": "GGC007"}, "data_category"),  # Mitz has more codes; ldn knows these three
        ({"valid_until": EPOCH}, "after valid_from"),
        ({"valid_until": EPOCH - days(1)}, "after valid_from"),
        ({"implied": True, "source": "provider-recorded", "decision": "deny"}, "implied"),
        ({"implied": True, "source": "citizen"}, "implied"),
        ({"valid_from": datetime(2024, 1, 1)}, "timezone"),
        ({"recorded_at": datetime(2024, 1, 1)}, "timezone"),
        ({"version": 0}, "version"),
        ({"id": "has space"}, "id"),
        ({"id": "x" * 65}, "id"),
        ({"id": "a\n"}, "id"),
        ({"decision": "maybe"}, "decision"),
        ({"source": "rumour"}, "source"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_choice_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        choice(**overrides)
    assert message in str(info.value)


def test_choice_is_frozen_and_repr_has_no_bsn() -> None:
    c = choice()
    with pytest.raises(ValidationError):
        c.bsn = "999990007"  # type: ignore[misc]
    assert BSN not in repr(c)
    assert BSN not in str(c)


def test_bad_bsn_error_does_not_echo_the_value() -> None:
    with pytest.raises(ValidationError) as info:
        choice(bsn="999990018")
    assert "999990018" not in str(info.value)
    with pytest.raises(ValidationError) as info:
        choice(valid_until=EPOCH)  # an error about another field must not echo the BSN either
    assert BSN not in str(info.value)
