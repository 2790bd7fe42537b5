"""The synthetic EHR: deterministic, valid FHIR R4, coherent across providers, holdings per category."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ldn.core.errors import BadRequest
from ldn.core.fhir import validate_resource
from ldn.core.identifiers import SYSTEM_BSN
from ldn.core.topology import Topology, parse_topology
from ldn.ehr import (
    EhrHoldings,
    clinical_profile,
    data_category,
    holdings,
    node_resources,
    patient_resources,
    sensitivity,
)
from ldn.ehr.codes import CONDITIONS, MEDICATIONS
from ldn.localization.categories import DATA_CATEGORIES

GP, GP2, HOSPITAL, PHARMACY, NURSING, GGZ = "00000020", "00000030", "00000040", "00000050", "00000060", "00000070"
MEDICATION_CATEGORIES = {"MedicationRequest", "MedicationUse"}


def _references(value: Any) -> list[str]:
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    if isinstance(value, dict):
        own = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _references(v)]
    return []


def _all(topology: Topology, seed: str = "test-seed") -> dict[str, list[Any]]:
    return {org.ura: node_resources(topology, org.ura, seed=seed) for org in topology.organizations}


def test_same_seed_same_data_other_seed_other_data(topology: Topology) -> None:
    first = [r.resource for r in node_resources(topology, GP, seed="s1")]
    again = [r.resource for r in node_resources(topology, GP, seed="s1")]
    other = [r.resource for r in node_resources(topology, GP, seed="s2")]
    assert first == again
    assert {r["id"] for r in first}.isdisjoint({r["id"] for r in other})
    assert first != other
    # seeded per citizen and provider: one citizen's record does not depend on the others
    citizen = topology.citizens[0]
    alone = [r.resource for r in patient_resources(topology, citizen, GP, seed="s1")]
    assert alone == first[: len(alone)]


def test_every_generated_resource_is_valid_r4(topology: Topology) -> None:
    types: Counter[str] = Counter()
    for resources in _all(topology).values():
        for item in resources:
            validate_resource(item.resource)  # raises a 400 BadRequest on any problem
            types[item.resource_type] += 1
    for rtype in (
        "Patient",
        "Condition",
        "AllergyIntolerance",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "Encounter",
    ):
        assert types[rtype] > 0, rtype


def test_the_validator_would_catch_a_broken_resource(topology: Topology) -> None:
    resource = dict(node_resources(topology, GP)[1].resource)
    resource["subject"] = "Patient/123"  # a string where a Reference belongs
    with pytest.raises(BadRequest):
        validate_resource(resource)


def test_patient_resource_carries_the_topology_facts(topology: Topology) -> None:
    for citizen in topology.citizens:
        for ura in citizen.providers:
            patient = patient_resources(topology, citizen, ura)[0].resource
            assert patient["resourceType"] == "Patient"
            assert patient["identifier"] == [{"system": SYSTEM_BSN, "value": citizen.bsn}]
            assert patient["name"][0]["family"] == citizen.family_name
            assert patient["name"][0]["given"] == [citizen.given_name]
            assert patient["birthDate"] == citizen.birth_date.isoformat()
            assert patient["gender"] == citizen.gender
            assert patient["managingOrganization"]["identifier"]["value"] == ura
    outsider = next(c for c in topology.citizens if GGZ not in c.providers)
    assert patient_resources(topology, outsider, GGZ) == []


def test_references_resolve_within_the_node(topology: Topology) -> None:
    for ura, resources in _all(topology).items():
        ids = {f"{r.resource_type}/{r.id}" for r in resources}
        patients = {r.bsn: r.id for r in resources if r.resource_type == "Patient"}
        for item in resources:
            for target in _references(item.resource):
                assert target in ids, (ura, target)
            subject = item.resource.get("subject") or item.resource.get("patient")
            if subject:
                assert subject["reference"] == f"Patient/{patients[item.bsn]}"


def test_holdings_match_the_generated_categories(topology: Topology) -> None:
    for org in topology.organizations:
        held = holdings(org.ura, topology)
        expected: dict[str, set[str]] = {}
        for item in node_resources(topology, org.ura):
            assert item.category == data_category(item.resource)
            expected.setdefault(item.bsn, set()).add(item.category)
        assert held == expected
        assert set(held) == {c.bsn for c in topology.citizens if org.ura in c.providers}
        for categories in held.values():
            assert "Patient" in categories
            assert categories <= set(DATA_CATEGORIES)
    # the default topology is used when none is given
    assert holdings(GP) == holdings(GP, topology)


def test_provider_types_hold_their_own_kinds_of_data(topology: Topology) -> None:
    pharmacy = holdings(PHARMACY, topology)
    assert pharmacy
    for categories in pharmacy.values():
        assert categories <= {"Patient"} | MEDICATION_CATEGORIES
        assert categories & MEDICATION_CATEGORIES
    assert {r.resource_type for r in node_resources(topology, PHARMACY)} == {
        "Patient",
        "MedicationRequest",
        "MedicationStatement",
    }
    gp_categories = set().union(*holdings(GP, topology).values())
    assert {"Condition", "ObservationLaboratory", "ObservationVitalSigns", "MedicationRequest"} <= gp_categories
    ggz_categories = set().union(*holdings(GGZ, topology).values())
    assert "ObservationLaboratory" not in ggz_categories
    assert "Condition" in ggz_categories


def test_mental_health_data_is_labelled_and_only_that(topology: Topology) -> None:
    for ura, resources in _all(topology).items():
        for item in resources:
            labelled = sensitivity(item.resource) == "mental-health"
            assert labelled == (ura == GGZ), (ura, item)
            assert item.sensitivity == ("mental-health" if ura == GGZ else None)
    ggz_conditions = [r.resource for r in node_resources(topology, GGZ) if r.resource_type == "Condition"]
    assert ggz_conditions
    for condition in ggz_conditions:
        icd = [c["code"] for c in condition["code"]["coding"] if c["system"].endswith("icd-10")]
        assert icd and icd[0].startswith("F")
        security = {(s["system"].rsplit("/", 1)[-1], s["code"]) for s in condition["meta"]["security"]}
        assert security == {("v3-ActCode", "MH"), ("v3-Confidentiality", "R")}


def test_codes_are_realistic_and_coherent_across_providers(topology: Topology) -> None:
    for citizen in topology.citizens:
        profile = clinical_profile(topology, citizen)
        if GP in citizen.providers or GP2 in citizen.providers:
            gp = GP if GP in citizen.providers else GP2
            records = [r.resource for r in patient_resources(topology, citizen, gp)]
            conditions = [r for r in records if r["resourceType"] == "Condition"]
            assert conditions, "every GP patient has a chronic condition"
            for condition in conditions:
                systems = {c["system"] for c in condition["code"]["coding"]}
                assert {
                    "http://snomed.info/sct",
                    "http://hl7.org/fhir/sid/icd-10",
                    "http://hl7.org/fhir/sid/icpc-1-nl",
                } <= systems
            medication = {
                c["code"]
                for r in records
                if r["resourceType"] == "MedicationRequest"
                for c in r["medicationCodeableConcept"]["coding"]
            }
            if "diabetes-type-2" in profile.gp_conditions:
                assert "A10BA02" in medication  # metformine
                loinc = {c["code"] for r in records if r["resourceType"] == "Observation" for c in r["code"]["coding"]}
                assert "4548-4" in loinc  # HbA1c
            if "hypertension" in profile.gp_conditions:
                assert "C09AA03" in medication  # lisinopril
        if PHARMACY in citizen.providers:
            dispensed = {
                c["code"]
                for r in (x.resource for x in patient_resources(topology, citizen, PHARMACY))
                if r["resourceType"] == "MedicationStatement"
                for c in r["medicationCodeableConcept"]["coding"]
            }
            every_condition = (
                *profile.gp_conditions,
                *profile.hospital_conditions,
                *profile.mental_conditions,
                *profile.nursing_conditions,
            )
            implied = {MEDICATIONS[m].atc[1] for k in every_condition for m in CONDITIONS[k].medications}
            assert dispensed and dispensed <= implied


def test_vital_signs_follow_the_fhir_profiles(topology: Topology) -> None:
    vitals = [
        r.resource
        for r in node_resources(topology, GP)
        if r.resource_type == "Observation" and r.category == "ObservationVitalSigns"
    ]
    by_code = {v["code"]["coding"][0]["code"]: v for v in vitals}
    bp = by_code["85354-9"]
    assert [c["code"]["coding"][0]["code"] for c in bp["component"]] == ["8480-6", "8462-4"]
    assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in bp["component"])
    assert by_code["29463-7"]["valueQuantity"]["code"] == "kg"
    assert by_code["8867-4"]["valueQuantity"]["code"] == "/min"
    assert all(v["category"][0]["coding"][0]["code"] == "vital-signs" for v in vitals)


def test_data_category_mapping_and_refusals() -> None:
    assert data_category({"resourceType": "MedicationStatement"}) == "MedicationUse"
    assert data_category({"resourceType": "Encounter"}) == "Encounter"
    lab = {"resourceType": "Observation", "category": [{"coding": [{"system": "x", "code": "y"}]}]}
    with pytest.raises(ValueError, match="laboratory or vital-signs"):
        data_category(lab)
    with pytest.raises(ValueError, match="no data category"):
        data_category({"resourceType": "Basic"})


def test_a_laboratory_holds_only_laboratory_results(topology: Topology) -> None:
    text = """
version: 1
national:
  - {ura: "90000901", name: NVI, type: national-service, services: [nvi]}
organizations:
  - {ura: "00000090", name: Lab Noord, type: laboratorium}
citizens:
  - {bsn: "999990007", given_name: A, family_name: B, birth_date: 1950-01-01, gender: female, providers: ["00000090"]}
"""
    custom = parse_topology(text)
    held = holdings("00000090", custom)
    assert held == {"999990007": {"Patient", "ObservationLaboratory"}}
    for item in node_resources(custom, "00000090"):
        validate_resource(item.resource)


async def test_ehr_holdings_feed_the_nvi_synchroniser(topology: Topology) -> None:
    source = EhrHoldings(topology, PHARMACY)
    seen = {h.bsn: set(h.categories) async for h in source.holdings()}
    assert seen == holdings(PHARMACY, topology)
    assert "999" not in repr(next(iter([h async for h in source.holdings()])))
