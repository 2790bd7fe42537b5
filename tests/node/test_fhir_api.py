"""The node FHIR API end to end: tokens, patient scoping and binding, search, paging, read, $bgz, hooks."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from ldn.core.errors import Forbidden
from ldn.core.fhir import validate_resource
from ldn.ehr import node_resources
from ldn.node import fhir_api
from ldn.node.fhir_store import BsnHasher, node_fhir_resource
from tests.node.conftest import ANNA, BRAM, BSN_SYSTEM, GP, HOSPITAL, PHARMACY, Fhir, patient_query


def _generated(network: Any, ura: str, bsn: str, rtype: str) -> list[dict[str, Any]]:
    return [r.resource for r in node_resources(network.topology, ura) if r.bsn == bsn and r.resource_type == rtype]


def _details(response: Any) -> str:
    return str(response.json()["issue"][0]["details"]["coding"][0]["code"])


def _patient_ref(resource: dict[str, Any]) -> str:
    return str((resource.get("subject") or resource.get("patient"))["reference"])


async def test_every_node_store_is_loaded_at_startup(network: Any, fhir: Fhir) -> None:
    with network.database.transaction(readonly=True) as session:
        counts = dict(
            session.execute(
                select(node_fhir_resource.c.node_ura, func.count()).group_by(node_fhir_resource.c.node_ura)
            ).all()
        )
    for org in network.topology.organizations:
        assert counts[org.ura] == len(node_resources(network.topology, org.ura)), org.ura
        assert BsnHasher.key_path(network.settings.data_dir, org.ura).exists()


async def test_a_token_of_the_node_with_fhir_read_is_required(fhir: Fhir) -> None:
    condition = _generated(fhir.network, GP, ANNA, "Condition")[0]
    urls = [
        fhir.search_url("Condition", patient_query(ANNA)),
        f"{fhir.base()}/Condition/{condition['id']}",
        f"{fhir.base()}/Patient/$bgz?{patient_query(ANNA)}",
    ]
    national = await fhir.token(audience="auth", scope="nvi:read")
    other_node = await fhir.token(audience=HOSPITAL)
    wrong_scope = await fhir.token(scope="notification:write")
    good = await fhir.token()
    for url in urls:
        missing = await fhir.get(url)
        assert missing.status_code == 401, url
        assert missing.json()["error"] == "invalid_token"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        for token in (national, other_node):
            refused = await fhir.get(url, token)
            assert refused.status_code == 401, url
            assert refused.json()["error"] == "invalid_token"
        scoped = await fhir.get(url, wrong_scope)
        assert scoped.status_code == 403, url
        assert scoped.json()["error"] == "insufficient_scope"
        assert (await fhir.get(url, good)).status_code == 200, url
    garbage = await fhir.client.get(urls[0], headers={"Authorization": "Bearer " + "x" * 600})
    assert garbage.status_code == 401


async def test_search_returns_only_that_patients_resources(fhir: Fhir) -> None:
    token = await fhir.token()
    patient = await fhir.get(fhir.search_url("Patient", f"identifier={BSN_SYSTEM}|{ANNA}"), token)
    assert patient.status_code == 200, patient.text
    bundle = patient.json()
    validate_resource(bundle, "Bundle")
    assert bundle["total"] == 1
    anna = bundle["entry"][0]["resource"]
    assert anna["identifier"][0]["value"] == ANNA
    assert bundle["entry"][0]["fullUrl"] == f"{fhir.base()}/Patient/{anna['id']}"
    for rtype in ("Condition", "Observation", "MedicationRequest", "AllergyIntolerance", "Encounter", "Procedure"):
        for name in ("patient.identifier", "patient:identifier", "subject:identifier"):
            if rtype == "AllergyIntolerance" and name.startswith("subject"):
                continue
            response = await fhir.get(fhir.search_url(rtype, patient_query(ANNA, name) + "&_count=100"), token)
            assert response.status_code == 200, (rtype, response.text)
            found = response.json()
            expected = _generated(fhir.network, GP, ANNA, rtype)
            assert found["total"] == len(expected)
            assert {e["resource"]["id"] for e in found["entry"]} == {r["id"] for r in expected}
            assert all(_patient_ref(e["resource"]) == f"Patient/{anna['id']}" for e in found["entry"])
    # by local reference too, and a Patient id this node does not know finds nothing
    by_ref = await fhir.get(fhir.search_url("Condition", f"patient=Patient/{anna['id']}"), token)
    assert by_ref.json()["total"] == len(_generated(fhir.network, GP, ANNA, "Condition"))
    unknown = await fhir.get(fhir.search_url("Condition", "patient=Patient/no-such-patient"), token)
    assert unknown.status_code == 200 and unknown.json()["total"] == 0
    # Anna is not a patient of the GGZ institution: nothing there
    ggz_token = await fhir.token(audience="00000070")
    elsewhere = await fhir.get(fhir.search_url("Condition", patient_query(ANNA), "00000070"), ggz_token)
    assert elsewhere.status_code == 200 and elsewhere.json()["total"] == 0


async def test_the_patient_must_be_the_one_the_token_is_bound_to(fhir: Fhir) -> None:
    bound_to_bram = await fhir.token(patient=BRAM)
    bound_to_anna = await fhir.token(patient=ANNA)
    url = fhir.search_url("Condition", patient_query(ANNA))
    assert (await fhir.get(url, bound_to_anna)).status_code == 200
    refused = await fhir.get(url, bound_to_bram)
    assert refused.status_code == 403
    assert _details(refused) == "patient-mismatch"
    assert ANNA not in refused.text and BRAM not in refused.text
    condition = _generated(fhir.network, GP, ANNA, "Condition")[0]
    read_url = f"{fhir.base()}/Condition/{condition['id']}"
    assert (await fhir.get(read_url, bound_to_anna)).status_code == 200
    assert (await fhir.get(read_url, bound_to_bram)).status_code == 403
    anna_patient = _generated(fhir.network, GP, ANNA, "Patient")[0]
    by_ref = fhir.search_url("Observation", f"subject=Patient/{anna_patient['id']}")
    assert (await fhir.get(by_ref, bound_to_bram)).status_code == 403
    unknown_ref = fhir.search_url("Observation", "subject=Patient/nobody")
    assert (await fhir.get(unknown_ref, bound_to_bram)).status_code == 403


async def test_bad_patient_parameters(fhir: Fhir) -> None:
    token = await fhir.token()
    cases = {
        "": "patient-required",
        "category=laboratory": "patient-required",
        f"patient.identifier={ANNA}": "malformed-identifier",
        f"patient.identifier={BSN_SYSTEM}|999990008": "malformed-identifier",
        "patient.identifier=http://fhir.nl/fhir/NamingSystem/uzi-nr-pers|900000011": "malformed-identifier",
        f"patient.identifier={BSN_SYSTEM}|{ANNA},{BSN_SYSTEM}|{BRAM}": "one-patient",
        f"{patient_query(ANNA)}&{patient_query(BRAM, 'subject:identifier')}": "one-patient",
        "patient=Organization/abc": "malformed-reference",
    }
    for query, reason in cases.items():
        response = await fhir.get(fhir.search_url("Observation", query), token)
        assert response.status_code == 400, (query, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
        assert _details(response) == reason, query
        assert "999990008" not in response.text


async def test_unknown_parameters_strict_by_default_lenient_on_request(fhir: Fhir) -> None:
    token = await fhir.token()
    url = fhir.search_url("Observation", patient_query(ANNA) + "&colour=blue&category=laboratory")
    strict = await fhir.get(url, token)
    assert strict.status_code == 400
    assert _details(strict) == "unknown-search-parameter"
    assert "colour" in strict.json()["issue"][0]["diagnostics"]
    lenient = await fhir.get(url, token, Prefer="return=representation, handling=lenient")
    assert lenient.status_code == 200, lenient.text
    bundle = lenient.json()
    validate_resource(bundle, "Bundle")
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1 and "colour" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert "colour" not in bundle["link"][0]["url"]  # the self link shows the search as understood
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert matches and all(e["resource"]["category"][0]["coding"][0]["code"] == "laboratory" for e in matches)
    modifier = await fhir.get(
        fhir.search_url("Observation", patient_query(ANNA) + "&code:text=x"), token, Prefer="handling=lenient"
    )
    assert modifier.status_code == 400
    assert (
        await fhir.get(fhir.search_url("Observation", patient_query(ANNA) + "&_format=xml"), token)
    ).status_code == 406


async def test_count_limit_and_paging_links(fhir: Fhir) -> None:
    token = await fhir.token()
    for bad in ("101", "1000", "-1", "x"):
        too_many = await fhir.get(fhir.search_url("Observation", patient_query(ANNA) + f"&_count={bad}"), token)
        assert too_many.status_code == 400, bad
    only_total = (await fhir.get(fhir.search_url("Observation", patient_query(ANNA) + "&_count=0"), token)).json()
    expected = {r["id"] for r in _generated(fhir.network, GP, ANNA, "Observation")}
    assert only_total["total"] == len(expected) and only_total["entry"] == []
    assert [link["relation"] for link in only_total["link"]] == ["self"]
    url: str | None = fhir.search_url("Observation", patient_query(ANNA) + "&_count=7")
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    while url:
        response = await fhir.get(url, token)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        assert page["total"] == len(expected)
        assert len(page["entry"]) <= 7
        seen.extend(e["resource"]["id"] for e in page["entry"])
        links = {link["relation"]: link["url"] for link in page["link"]}
        url = links.get("next")
    assert len(seen) == len(set(seen)) == len(expected) and set(seen) == expected
    assert len(pages) == -(-len(expected) // 7)
    second = {link["relation"]: link["url"] for link in pages[1]["link"]}
    back = (await fhir.get(second["previous"], token)).json()
    assert [e["resource"]["id"] for e in back["entry"]] == [e["resource"]["id"] for e in pages[0]["entry"]]
    assert "previous" not in {link["relation"] for link in pages[0]["link"]}


async def test_filters_by_category_code_and_dates(fhir: Fhir) -> None:
    token = await fhir.token()
    observations = _generated(fhir.network, GP, ANNA, "Observation")

    async def ids(query: str, rtype: str = "Observation") -> set[str]:
        response = await fhir.get(fhir.search_url(rtype, patient_query(ANNA) + "&_count=100&" + query), token)
        assert response.status_code == 200, response.text
        return {e["resource"]["id"] for e in response.json()["entry"]}

    def where(test: Any) -> set[str]:
        return {o["id"] for o in observations if test(o)}

    category = "http://terminology.hl7.org/CodeSystem/observation-category"
    lab = where(lambda o: o["category"][0]["coding"][0]["code"] == "laboratory")
    assert await ids("category=laboratory") == lab
    assert await ids(f"category={category}|laboratory") == lab
    assert await ids("category=http://snomed.info/sct|275711006") == lab
    assert await ids("category=vital-signs") == where(lambda o: o["category"][0]["coding"][0]["code"] == "vital-signs")
    assert await ids("category=laboratory,vital-signs") == {o["id"] for o in observations}
    bp = where(lambda o: o["code"]["coding"][0]["code"] == "85354-9")
    assert bp and await ids("code=http://loinc.org|85354-9") == bp
    assert await ids("code=85354-9,29463-7") == where(
        lambda o: o["code"]["coding"][0]["code"] in ("85354-9", "29463-7")
    )
    assert await ids("code=http://snomed.info/sct|85354-9") == set()
    cut = sorted(o["meta"]["lastUpdated"] for o in observations)[len(observations) // 2]
    newer = where(lambda o: o["meta"]["lastUpdated"] >= cut)
    assert await ids(f"_lastUpdated=ge{quote(cut)}") == newer
    assert await ids(f"_lastUpdated=lt{quote(cut)}") == {o["id"] for o in observations} - newer
    year = observations[0]["effectiveDateTime"][:4]
    assert await ids(f"date={year}") == where(lambda o: o["effectiveDateTime"].startswith(year))
    one = observations[0]["id"]
    assert await ids(f"_id={one}") == {one}
    metformine = await ids("code=http://www.whocc.no/atc|A10BA02", "MedicationRequest")
    assert metformine == {
        r["id"]
        for r in _generated(fhir.network, GP, ANNA, "MedicationRequest")
        if r["medicationCodeableConcept"]["coding"][0]["code"] == "A10BA02"
    }


async def test_read(fhir: Fhir) -> None:
    token = await fhir.token()
    condition = _generated(fhir.network, GP, ANNA, "Condition")[0]
    response = await fhir.get(f"{fhir.base()}/Condition/{condition['id']}", token)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json() == condition
    assert response.headers["etag"] == 'W/"1"'
    assert "GMT" in response.headers["last-modified"]
    missing = await fhir.get(f"{fhir.base()}/Condition/00000000-0000-4000-8000-000000000000", token)
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["code"] == "not-found"
    wrong_type = await fhir.get(f"{fhir.base()}/Observation/{condition['id']}", token)
    assert wrong_type.status_code == 404
    malformed = await fhir.get(f"{fhir.base()}/Condition/{'x' * 65}", token)
    assert malformed.status_code == 400
    unsupported = await fhir.get(f"{fhir.base()}/Organization/abc", token)
    assert unsupported.status_code == 404
    assert (await fhir.get(f"{fhir.base()}/Condition/{condition['id']}?_summary=true", token)).status_code == 400
    # a node serves only its own rows
    hospital_token = await fhir.token(audience=HOSPITAL)
    elsewhere = await fhir.get(f"{fhir.base(HOSPITAL)}/Condition/{condition['id']}", hospital_token)
    assert elsewhere.status_code == 404


async def test_the_pharmacy_serves_medication_only(fhir: Fhir) -> None:
    token = await fhir.token(audience=PHARMACY)
    for rtype, present in (("Condition", False), ("Observation", False), ("MedicationStatement", True)):
        response = await fhir.get(fhir.search_url(rtype, patient_query(ANNA), PHARMACY), token)
        assert response.status_code == 200
        assert (response.json()["total"] > 0) is present, rtype


async def test_capability_statement_and_validate_still_work(fhir: Fhir) -> None:
    metadata = (await fhir.client.get(f"{fhir.base()}/metadata")).json()
    validate_resource(metadata, "CapabilityStatement")
    resources = {r["type"]: r for r in metadata["rest"][0]["resource"]}
    assert "Observation" in resources and "MedicationStatement" in resources
    params = {p["name"] for p in resources["Observation"]["searchParam"]}
    assert {"patient", "patient:identifier", "category", "code", "_lastUpdated", "_count"} <= params
    assert {op["name"] for op in metadata["rest"][0]["operation"]} == {"validate", "bgz"}
    valid = await fhir.client.post(
        f"{fhir.base()}/Patient/$validate",
        json={"resourceType": "Patient", "gender": "female"},
        headers={"content-type": "application/fhir+json"},
    )
    assert valid.status_code == 200
    invalid = await fhir.client.post(
        f"{fhir.base()}/$validate",
        json={"resourceType": "Patient", "gender": 7},
        headers={"content-type": "application/json"},
    )
    assert invalid.status_code == 400


async def test_bgz_operation(fhir: Fhir) -> None:
    token = await fhir.token()
    url = f"{fhir.base()}/Patient/$bgz?{patient_query(ANNA)}"
    response = await fhir.get(url, token)
    assert response.status_code == 200, response.text
    assert "fhirVersion=3.0" in response.headers["content-type"]
    bundle = response.json()
    validate_resource(bundle, "Bundle", version="STU3")
    assert bundle["entry"][0]["resource"]["identifier"][0]["value"] == ANNA
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} >= {"Patient", "Condition", "Observation"}
    assert (await fhir.get(f"{fhir.base()}/Patient/$bgz", token)).status_code == 400
    assert (await fhir.get(url + "&colour=blue", token)).status_code == 400
    bound_to_bram = await fhir.token(patient=BRAM)
    assert (await fhir.get(url, bound_to_bram)).status_code == 403


async def test_authorize_and_audit_hooks_are_called(fhir: Fhir, monkeypatch: pytest.MonkeyPatch) -> None:
    decisions: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    original = fhir_api.authorize_request

    async def pep(request: Any, caller: Any, resource_type: str, patient_bsn: str | None, **kw: Any) -> None:
        decisions.append({"type": resource_type, "patient": patient_bsn, "org": caller.organization_ura, **kw})
        await original(request, caller, resource_type, patient_bsn, **kw)
        if resource_type == "Condition":
            raise Forbidden("no consent", details_code="consent-not-permit")

    async def audit(request: Any, caller: Any, resource_type: str, patient_bsn: str | None, **kw: Any) -> None:
        audits.append({"type": resource_type, "patient": patient_bsn, **kw})

    monkeypatch.setattr(fhir_api, "authorize_request", pep)
    monkeypatch.setattr(fhir_api, "audit_hook", audit)
    token = await fhir.token()
    refused = await fhir.get(fhir.search_url("Condition", patient_query(ANNA)), token)
    assert refused.status_code == 403 and _details(refused) == "consent-not-permit"
    allowed = await fhir.get(
        fhir.search_url("Observation", patient_query(ANNA) + "&category=vital-signs&_count=3"), token
    )
    assert allowed.status_code == 200
    observation_id = allowed.json()["entry"][0]["resource"]["id"]
    read = await fhir.get(f"{fhir.base()}/Observation/{observation_id}", token)
    assert read.status_code == 200
    assert [(d["type"], d["interaction"], d["patient"]) for d in decisions] == [
        ("Condition", "search-type", ANNA),
        ("Observation", "search-type", ANNA),
        ("Observation", "read", ANNA),
    ]
    assert decisions[0]["org"] == HOSPITAL
    assert decisions[1]["categories"] == {"ObservationVitalSigns"}
    assert decisions[1]["search_params"]["category"] == ["vital-signs"]
    assert decisions[2]["resource_id"] == observation_id and decisions[2]["sensitivity"] is None
    assert [(a["type"], a["outcome"], a["status"]) for a in audits] == [
        ("Condition", "refused", 403),
        ("Observation", "success", 200),
        ("Observation", "success", 200),
    ]
    assert len(audits[1]["resource_ids"]) == 3
    assert audits[2]["resource_ids"] == [f"Observation/{observation_id}"]


async def test_no_bsn_reaches_the_logs(fhir: Fhir, caplog: pytest.LogCaptureFixture) -> None:
    token = await fhir.token(patient=BRAM)
    caplog.set_level(logging.DEBUG)
    await fhir.get(fhir.search_url("Condition", patient_query(ANNA)), token)
    await fhir.get(fhir.search_url("Condition", patient_query(BRAM)), token)
    # The network's own loggers (the test's httpx client logs its URLs; that is the caller's business).
    ours = [r for r in caplog.records if r.name.startswith("ldn")]
    assert any(r.name == "ldn.access" for r in ours)
    text = "\n".join(r.getMessage() + str(r.__dict__) for r in ours)
    assert ANNA not in text and BRAM not in text
