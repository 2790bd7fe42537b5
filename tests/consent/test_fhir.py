"""ConsentChoice <-> FHIR R4 Consent: round trips, shape, Mitz-style notifications, refusals."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B.consent import Consent
from hypothesis import given, settings
from hypothesis import strategies as st

from ldn.consent.categories import DATA_CATEGORY_SYSTEM_URI, PROVIDER_GROUP_SYSTEM_URI
from ldn.consent.fhir import (
    EXT_IMPLIED,
    EXT_PROVIDER_CATEGORY,
    EXT_SOURCE,
    ConsentFhirError,
    choices_from_fhir,
    from_fhir,
    to_fhir,
    to_fhir_json,
)
from ldn.consent.model import ChoiceSource, ConsentChoice

from .factories import AT, BSN, EPOCH, HOLDER_URA, REQUESTER_URA, choice

PARTIES = [f"ura:{HOLDER_URA}", "type:Z3", "group:RPZAC001", "any"]
REQUESTERS = [f"ura:{REQUESTER_URA}", "type:J8", "group:RPZAC005", "any"]


@pytest.mark.parametrize("holder", PARTIES)
@pytest.mark.parametrize("requester", REQUESTERS)
def test_round_trip_every_party_kind(holder: str, requester: str) -> None:
    original = choice("deny", holder=holder, requester=requester, category="GGC012", valid_until=AT)
    resource = to_fhir_json(original)
    assert from_fhir(resource) == original
    assert from_fhir(json.dumps(resource)) == original
    assert from_fhir(to_fhir(original)) == original


def test_round_trip_implied_provider_recorded() -> None:
    original = choice("permit", implied=True, source="provider-recorded", category="GGC002", version=7)
    assert from_fhir(to_fhir_json(original)) == original


st_instant = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]),
)


@settings(max_examples=100, deadline=None)
@given(
    holder=st.sampled_from(PARTIES),
    requester=st.sampled_from(REQUESTERS),
    category=st.sampled_from(["GGC002", "GGC012", "GGC013"]),
    decision=st.sampled_from(["permit", "deny"]),
    start=st_instant,
    length=st.one_of(st.none(), st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=9000))),
    recorded=st_instant,
    version=st.integers(1, 10**6),
)
def test_round_trip_property(
    holder: str,
    requester: str,
    category: str,
    decision: str,
    start: datetime,
    length: timedelta | None,
    recorded: datetime,
    version: int,
) -> None:
    original = choice(
        decision,
        holder=holder,
        requester=requester,
        category=category,
        valid_from=start,
        valid_until=None if length is None else start + length,
        recorded_at=recorded,
        version=version,
    )
    assert from_fhir(to_fhir_json(original)) == original


def test_shape_follows_mitz() -> None:
    resource = to_fhir_json(choice("permit", holder=f"ura:{HOLDER_URA}", requester="group:RPZAC005"))
    Consent.model_validate(resource)  # valid R4(B)
    assert resource["scope"]["coding"][0]["code"] == "patient-privacy"
    codings = [c for concept in resource["category"] for c in concept["coding"]]
    assert {"system": DATA_CATEGORY_SYSTEM_URI, "code": "GGC013", "display": "Medicatiegegevens"} in codings
    assert any(c["system"] == "http://loinc.org" and c["code"] == "59284-0" for c in codings)
    assert resource["patient"]["identifier"] == {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": BSN}
    provision = resource["provision"]
    assert provision["type"] == "permit"
    assert provision["actor"] == [
        {
            "role": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "CST"}]
            },
            "reference": {"identifier": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": HOLDER_URA}},
        }
    ]
    assert provision["purpose"][0]["code"] == "TREAT"
    ext = {e["url"]: e for e in resource["extension"]}
    assert ext[EXT_PROVIDER_CATEGORY]["valueCodeableConcept"]["coding"][0]["code"] == "RPZAC005"
    assert ext[EXT_IMPLIED]["valueBoolean"] is False
    assert ext[EXT_SOURCE]["valueCode"] == "citizen"
    assert resource["policyRule"]["coding"][0]["code"] == "OPTIN"
    assert resource["meta"]["versionId"] == "1"


def test_category_holder_is_a_contained_organization() -> None:
    resource = to_fhir_json(choice("deny", holder="type:Z3", requester=f"ura:{REQUESTER_URA}"))
    (org,) = resource["contained"]
    assert org["resourceType"] == "Organization"
    assert org["type"][0]["coding"][0]["code"] == "Z3"
    assert org["name"]  # org-1: a name or an identifier
    roles = [a["role"]["coding"][0]["code"] for a in resource["provision"]["actor"]]
    assert roles == ["CST", "IRCP"]
    assert resource["policyRule"]["coding"][0]["code"] == "OPTOUT"


# ---------------------------------------------------------------------------------------------
# Mitz-style notifications (shape of the public Consent-Mitz-Notify 3.8.0 example; values ours)

PATIENT_REF = "urn:uuid:6a3c7a50-0e6f-4f0e-9a43-0b2f0f8a1c01"
ORG_REF = "urn:uuid:6a3c7a50-0e6f-4f0e-9a43-0b2f0f8a1c02"
RESOURCES: dict[str, dict[str, Any]] = {
    PATIENT_REF: {
        "resourceType": "Patient",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": BSN}],
    },
    ORG_REF: {
        "resourceType": "Organization",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": HOLDER_URA}],
        "type": [{"coding": [{"system": "http://nictiz.nl/fhir/NamingSystem/organization-type", "code": "Z3"}]}],
    },
}


def mitz_consent(status: str = "inactive", groups: tuple[str, ...] = ("RPZAC001", "RPZAC104")) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": "6a3c7a50-0e6f-4f0e-9a43-0b2f0f8a1c03",
        "meta": {"profile": ["http://vzvz.nl/fhir/StructureDefinition/Consent-Mitz-Notify|3.8.0"]},
        "extension": [
            {
                "url": EXT_PROVIDER_CATEGORY,
                "valueCodeableConcept": {"coding": [{"system": PROVIDER_GROUP_SYSTEM_URI, "code": g}]},
            }
            for g in groups
        ],
        "status": status,
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [
            {"coding": [{"system": DATA_CATEGORY_SYSTEM_URI, "code": "GGC002", "display": "Behandelgegevens"}]}
        ],
        "patient": {"reference": PATIENT_REF},
        "dateTime": "2024-11-18T10:51:16.8967927Z",
        "provision": {
            "actor": [
                {
                    "role": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "CST"}
                        ]
                    },
                    "reference": {"reference": ORG_REF},
                }
            ],
            "purpose": [{"system": "http://hl7.org/fhir/v3/ActReason", "code": "TREAT"}],
        },
    }
    if status == "active":
        resource["provision"]["type"] = "permit"
    return resource


def test_mitz_notification_refusal_expands_per_group() -> None:
    choices = choices_from_fhir(mitz_consent(), resources=RESOURCES, source=ChoiceSource.CITIZEN, default_version=1)
    assert [(c.id.rsplit(".", 1)[1], str(c.requester), c.decision.value) for c in choices] == [
        ("RPZAC001", "group:RPZAC001", "deny"),
        ("RPZAC104", "group:RPZAC104", "deny"),
    ]
    assert all(str(c.holder) == f"ura:{HOLDER_URA}" and c.bsn == BSN for c in choices)
    assert choices[0].valid_from == choices[0].recorded_at
    with pytest.raises(ConsentFhirError, match="more than one choice"):
        from_fhir(mitz_consent(), resources=RESOURCES, source=ChoiceSource.CITIZEN, default_version=1)


def test_mitz_notification_permit() -> None:
    c = from_fhir(
        mitz_consent("active", ("RPZAC005",)), resources=RESOURCES, source=ChoiceSource.CITIZEN, default_version=1
    )
    assert (c.decision.value, str(c.requester), c.data_category.value) == ("permit", "group:RPZAC005", "GGC002")


def test_mitz_notification_needs_source_and_version_stated() -> None:
    with pytest.raises(ConsentFhirError, match="source"):
        choices_from_fhir(mitz_consent(), resources=RESOURCES, default_version=1)
    with pytest.raises(ConsentFhirError, match="versionId"):
        choices_from_fhir(mitz_consent(), resources=RESOURCES, source=ChoiceSource.CITIZEN)
    with pytest.raises(ConsentFhirError, match="BSN"):
        choices_from_fhir(mitz_consent(), source=ChoiceSource.CITIZEN, default_version=1)


def _good() -> dict[str, Any]:
    return to_fhir_json(choice("permit", requester=f"ura:{REQUESTER_URA}", valid_until=AT))


def _mutate(path: str, value: Any) -> dict[str, Any]:
    resource = copy.deepcopy(_good())
    target: Any = resource
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is _DELETE:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return resource


_DELETE = object()

REFUSALS = [
    ("unknown category", "category.0.coding.0.code", "GGC999", "data category"),
    ("no category", "category.0", {"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}, "exactly one"),
    ("no BSN", "patient", {"display": "someone"}, "BSN"),
    ("wrong scope", "scope.coding.0.code", "research", "scope"),
    ("draft", "status", "draft", "active"),
    ("inactive, not Mitz", "status", "inactive", "active"),
    ("no provision type", "provision.type", _DELETE, "active"),
    ("end before start", "provision.period.end", "2023-01-01T00:00:00+00:00", "valid_until"),
    ("date without time", "dateTime", "2024-01-01", "timezone"),
    ("unknown role", "provision.actor.0.role.coding.0.code", "PRCP", "role"),
    ("bad version", "meta.versionId", "v2", "integer"),
    ("other purpose", "provision.purpose.0.code", "HRESCH", "TREAT"),
    ("unknown source", "extension.1.valueCode", "rumour", "source"),
    ("bad URA", "provision.actor.0.reference.identifier.value", "1234", "URA"),
]


@pytest.mark.parametrize(("path", "value", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(path: str, value: Any, message: str) -> None:
    resource = _mutate(path, value)
    with pytest.raises(ConsentFhirError, match=message) as info:
        from_fhir(resource)
    assert BSN not in str(info.value)


def test_not_a_consent() -> None:
    with pytest.raises(ConsentFhirError):
        from_fhir({"resourceType": "Patient"})
    with pytest.raises(ConsentFhirError):
        from_fhir("{not json")
    with pytest.raises(ConsentFhirError) as info:
        from_fhir({**_good(), "status": 12})
    assert BSN not in str(info.value)
    assert info.value.__cause__ is None  # pydantic's message (with the input) is not chained


def test_round_trip_keeps_naive_free_datetimes() -> None:
    original: ConsentChoice = choice("permit", valid_from=EPOCH, recorded_at=EPOCH)
    back = from_fhir(to_fhir_json(original))
    assert back.valid_from.utcoffset() is not None
