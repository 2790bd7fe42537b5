"""FHIR Consent on the consent service: providers record implied consent explicitly, search is
scoped to who asks, and the open question lists who may share what with the requester."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from ldn.consent.fhir import EXT_IMPLIED, EXT_SOURCE, from_fhir
from ldn.consent.model import ChoiceSource

from .service_helpers import (
    CITIZEN_BSN,
    GP,
    HOSPITAL,
    HOSPITAL_USER,
    OPERATOR,
    OTHER_CITIZEN_BSN,
    PHARMACY,
    ConsentApi,
    question,
)

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"


@pytest.fixture
def api(client: httpx.AsyncClient, network: Any) -> ConsentApi:
    return ConsentApi(client, network)


def implied_consent(holder: str = GP, bsn: str = CITIZEN_BSN, **kw: Any) -> dict[str, Any]:
    """An implied consent as a provider records it: its own data, to any requester, medication."""
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "extension": [
            {"url": EXT_IMPLIED, "valueBoolean": True},
            {"url": EXT_SOURCE, "valueCode": "provider-recorded"},
        ],
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://fhir.nl/otv/CodeSystem/gegevenscategorie", "code": "GGC013"}]}],
        "patient": {"identifier": {"system": BSN_SYSTEM, "value": bsn}},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "CST"}
                        ]
                    },
                    "reference": {"identifier": {"system": URA_SYSTEM, "value": holder}},
                }
            ],
        },
    }
    resource.update(kw)
    return resource


def search_url(api: ConsentApi, bsn: str = CITIZEN_BSN) -> str:
    return f"{api.base}/Consent?patient:identifier={BSN_SYSTEM}|{bsn}"


async def test_provider_records_implied_consent_and_it_is_explicit(api: ConsentApi) -> None:
    headers = await api.provider(GP)
    response = await api.client.post(f"{api.base}/Consent", json=implied_consent(), headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"].endswith(f"/Consent/{body['id']}/_history/1")
    assert response.headers["etag"] == 'W/"1"'
    choice = from_fhir(body)
    assert choice.implied is True and choice.source is ChoiceSource.PROVIDER_RECORDED
    assert choice.bsn == CITIZEN_BSN and str(choice.holder) == f"ura:{GP}"

    assert (await api.decision(question()))["decision"] == "Permit"
    # The citizen sees it, marked as implied and recorded by the provider.
    mine = (await api.client.get(f"{api.base}/citizen/choices", headers=await api.citizen())).json()["choices"]
    assert [(c["implied"], c["recorded_by"]) for c in mine] == [(True, GP)]


async def test_update_and_delete_by_the_recording_provider(api: ConsentApi) -> None:
    headers = await api.provider(GP)
    created = (await api.client.post(f"{api.base}/Consent", json=implied_consent(), headers=headers)).json()
    deny = implied_consent(id=created["id"])
    deny["provision"] = {**deny["provision"], "type": "deny"}
    deny["extension"] = [
        {"url": EXT_IMPLIED, "valueBoolean": False},
        {"url": EXT_SOURCE, "valueCode": "provider-recorded"},
    ]
    updated = await api.client.put(
        f"{api.base}/Consent/{created['id']}", json=deny, headers={**headers, "If-Match": 'W/"1"'}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["meta"]["versionId"] == "2"
    assert (await api.decision(question()))["decision"] == "Deny"

    id_mismatch = await api.client.put(f"{api.base}/Consent/other", json=deny, headers=headers)
    assert id_mismatch.status_code == 400

    no_patient = await api.client.delete(f"{api.base}/Consent/{created['id']}", headers=headers)
    assert no_patient.status_code == 400
    wrong_patient = await api.client.delete(
        f"{api.base}/Consent/{created['id']}",
        params={"patient:identifier": f"{BSN_SYSTEM}|{OTHER_CITIZEN_BSN}"},
        headers=headers,
    )
    assert wrong_patient.status_code == 404
    deleted = await api.client.delete(
        f"{api.base}/Consent/{created['id']}",
        params={"patient:identifier": f"{BSN_SYSTEM}|{CITIZEN_BSN}"},
        headers=headers,
    )
    assert deleted.status_code == 204
    assert (await api.decision(question()))["decision"] == "NotApplicable"


async def test_provider_limits(api: ConsentApi) -> None:
    gp = await api.provider(GP)
    url = f"{api.base}/Consent"
    # Only about data the provider holds itself.
    other_holder = await api.client.post(url, json=implied_consent(holder=HOSPITAL), headers=gp)
    assert other_holder.status_code == 403
    # Not in the citizen's name.
    as_citizen = implied_consent(extension=[{"url": EXT_SOURCE, "valueCode": "citizen"}])
    assert (await api.client.post(url, json=as_citizen, headers=gp)).status_code == 403
    # A system without a responsible professional may not record on a patient's behalf.
    system_only = await api.provider(GP, user=None)
    assert (await api.client.post(url, json=implied_consent(), headers=system_only)).status_code == 403
    # Another provider cannot change or withdraw it.
    created = (await api.client.post(url, json=implied_consent(), headers=gp)).json()
    hospital = await api.provider(HOSPITAL, user=HOSPITAL_USER)
    stolen = await api.client.delete(
        f"{url}/{created['id']}", params={"patient:identifier": f"{BSN_SYSTEM}|{CITIZEN_BSN}"}, headers=hospital
    )
    assert stolen.status_code == 404
    # The operator may record for any holder (e.g. a migration).
    operator = await api.provider(OPERATOR, scope="consent:admin", user=None)
    assert (await api.client.post(url, json=implied_consent(holder=HOSPITAL), headers=operator)).status_code == 201
    # Subscribing is not recording.
    subscriber = await api.provider(GP, scope="consent:subscribe")
    assert (await api.client.post(url, json=implied_consent(), headers=subscriber)).status_code == 403


async def test_bad_consent_resources(api: ConsentApi) -> None:
    gp = await api.provider(GP)
    url = f"{api.base}/Consent"
    cases = [
        ("not a Consent", {"resourceType": "Patient"}, 400),
        ("invalid R4", {**implied_consent(), "status": "sort-of"}, 400),
        ("invalid BSN", implied_consent(bsn="123456789"), 400),
        ("no category", {**implied_consent(), "category": [{"text": "x"}]}, 400),
        (
            "validity ends before it starts",
            {
                **implied_consent(),
                "provision": {
                    **implied_consent()["provision"],
                    "period": {"start": "2026-02-01T00:00:00+00:00", "end": "2026-01-01T00:00:00+00:00"},
                },
            },
            400,
        ),
    ]
    for name, body, status in cases:
        response = await api.client.post(url, json=body, headers=gp)
        assert response.status_code == status, (name, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
        assert CITIZEN_BSN not in response.text and "123456789" not in response.text, name
    wrong_media = await api.client.post(url, content=b"<Consent/>", headers={**gp, "Content-Type": "application/xml"})
    assert wrong_media.status_code == 415


async def test_search_is_scoped_to_the_caller(api: ConsentApi) -> None:
    await api.client.post(f"{api.base}/Consent", json=implied_consent(), headers=await api.provider(GP))
    await api.client.post(
        f"{api.base}/citizen/choices",
        headers=await api.citizen(),
        json={"choices": [{"holder": "any", "requester": "any", "data_category": "GGC012", "decision": "deny"}]},
    )
    citizen = (await api.client.get(search_url(api), headers=await api.citizen())).json()
    Bundle.model_validate(citizen)
    assert citizen["type"] == "searchset" and citizen["total"] == 2
    gp = (await api.client.get(search_url(api), headers=await api.provider(GP))).json()
    assert gp["total"] == 1  # only what the GP recorded
    hospital = (await api.client.get(search_url(api), headers=await api.provider(HOSPITAL, user=HOSPITAL_USER))).json()
    assert hospital["total"] == 0
    operator = await api.provider(OPERATOR, scope="consent:admin", user=None)
    assert (await api.client.get(search_url(api), headers=operator)).json()["total"] == 2

    other = await api.client.get(search_url(api, OTHER_CITIZEN_BSN), headers=await api.citizen())
    assert other.status_code == 403
    for bad in (
        f"{api.base}/Consent",
        f"{api.base}/Consent?patient:identifier=999990019",
        f"{api.base}/Consent?patient:identifier={BSN_SYSTEM}|12",
        f"{search_url(api)}&_sort=date",
    ):
        assert (await api.client.get(bad, headers=await api.citizen())).status_code == 400, bad


async def test_capability_statement(api: ConsentApi) -> None:
    response = await api.client.get(f"{api.base}/metadata")
    assert response.status_code == 200
    types = {r["type"] for r in response.json()["rest"][0]["resource"]}
    assert types == {"Consent", "Subscription"}


async def test_open_question(api: ConsentApi) -> None:
    await api.record(
        CITIZEN_BSN,
        {"holder": "type:Z3", "requester": "type:J8", "data_category": "GGC002", "decision": "permit"},
        {"holder": f"ura:{GP}", "requester": "any", "data_category": "GGC012", "decision": "deny"},
        {"holder": f"ura:{HOSPITAL}", "requester": "group:RPZAC005", "data_category": "GGC013", "decision": "permit"},
    )
    pharmacy = await api.provider(PHARMACY, user="900000041")
    response = await api.client.post(f"{api.base}/open-question", json={"bsn": CITIZEN_BSN}, headers=pharmacy)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requester_ura"] == PHARMACY and body["requester_facility_type"] == "J8"
    permitted = {(p["holder_ura"], p["data_category"]) for p in body["permitted"]}
    # GP Z3 practices: treatment data (GGC002 is narrowed by the refused GGC012 at the named GP),
    # medication yes, results no; the hospital: medication only.
    assert permitted == {
        ("00000030", "GGC002"),
        ("00000030", "GGC012"),
        ("00000030", "GGC013"),
        (GP, "GGC013"),
        (HOSPITAL, "GGC013"),
    }
    assert CITIZEN_BSN not in response.text

    explicit = await api.client.post(
        f"{api.base}/open-question",
        json={"bsn": CITIZEN_BSN, "holders": [{"ura": GP, "facility_type": "Z3"}], "data_categories": ["GGC013"]},
        headers=pharmacy,
    )
    assert [(p["holder_ura"], p["data_category"]) for p in explicit.json()["permitted"]] == [(GP, "GGC013")]

    for bad in (
        {"bsn": "123"},
        {"bsn": CITIZEN_BSN, "holders": [{"ura": "1", "facility_type": "Z3"}]},
        {"bsn": CITIZEN_BSN, "holders": [{"ura": GP, "facility_type": "??"}]},
        {"bsn": CITIZEN_BSN, "requester_facility_type": "??"},
        {"bsn": CITIZEN_BSN, "data_categories": ["GGC999"]},
        {"bsn": CITIZEN_BSN, "professional_id": "1"},
    ):
        assert (await api.client.post(f"{api.base}/open-question", json=bad, headers=pharmacy)).status_code == 400, bad
    for_other = await api.client.post(
        f"{api.base}/open-question", json={"bsn": CITIZEN_BSN, "requester_ura": HOSPITAL}, headers=pharmacy
    )
    assert for_other.status_code == 403
