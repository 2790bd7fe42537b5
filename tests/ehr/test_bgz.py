"""BgZ rendering: a patient's R4 data as valid STU3 zib resources in one collection Bundle."""

from __future__ import annotations

from typing import Any

from ldn.core.fhir import validate_resource
from ldn.core.topology import Topology
from ldn.ehr import patient_resources
from ldn.ehr.bgz import BGZ_PROFILES, bgz_bundle, to_stu3

GP, GGZ = "00000020", "00000070"


def _record(topology: Topology, ura: str, index: int = 0) -> list[dict[str, Any]]:
    citizen = [c for c in topology.citizens if ura in c.providers][index]
    return [r.resource for r in patient_resources(topology, citizen, ura)]


def test_every_patient_record_renders_as_valid_stu3(topology: Topology) -> None:
    for citizen in topology.citizens:
        for ura in citizen.providers:
            record = [r.resource for r in patient_resources(topology, citizen, ura)]
            bundle = bgz_bundle(record, base_url="http://node.test/fhir", timestamp="2026-10-01T00:00:00Z")
            validate_resource(bundle, "Bundle", version="STU3")
            assert bundle["type"] == "collection"
            assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
            for entry in bundle["entry"]:
                resource = entry["resource"]  # validated with the Bundle above
                assert resource["meta"]["profile"][0] in BGZ_PROFILES.values()
                assert entry["fullUrl"] == f"http://node.test/fhir/{resource['resourceType']}/{resource['id']}"


def test_stu3_shapes(topology: Topology) -> None:
    record = _record(topology, GP)
    converted = {r["resourceType"]: to_stu3(r) for r in record}
    condition = converted["Condition"]
    assert condition is not None and condition["clinicalStatus"] == "active"
    assert "assertedDate" in condition and "recordedDate" not in condition
    assert condition["meta"]["profile"] == ["http://nictiz.nl/fhir/StructureDefinition/zib-Problem"]
    request = converted["MedicationRequest"]
    assert request is not None and "agent" in request["requester"]
    assert "doseQuantity" in request["dosageInstruction"][0]
    assert "type" not in request["requester"]["agent"]  # R4-only Reference.type is dropped
    heart_rate = next(
        r for r in record if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "8867-4"
    )
    assert to_stu3(heart_rate) is None  # not part of the BgZ
    lab = next(
        r
        for r in record
        if r["resourceType"] == "Observation" and r["category"][0]["coding"][0]["code"] == "laboratory"
    )
    stu3_lab = to_stu3(lab)
    assert stu3_lab is not None
    assert stu3_lab["category"][0]["coding"][0]["system"] == "http://hl7.org/fhir/observation-category"
    assert stu3_lab["meta"]["profile"] == [
        "http://nictiz.nl/fhir/StructureDefinition/zib-LaboratoryTestResult-Observation"
    ]
    assert lab["category"][0]["coding"][0]["system"].startswith("http://terminology.hl7.org/")  # input untouched


def test_mental_health_labels_survive_in_stu3_form(topology: Topology) -> None:
    bundle = bgz_bundle(_record(topology, GGZ))
    labels = {(s["system"], s["code"]) for e in bundle["entry"] for s in e["resource"]["meta"]["security"]}
    assert labels == {("http://hl7.org/fhir/v3/ActCode", "MH"), ("http://hl7.org/fhir/v3/Confidentiality", "R")}


def test_unknown_types_are_left_out() -> None:
    assert to_stu3({"resourceType": "Basic", "id": "x"}) is None
    assert bgz_bundle([{"resourceType": "Basic", "id": "x"}])["entry"] == []
