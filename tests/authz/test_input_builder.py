"""The pure pieces of the enforcement point: request -> policy input, consent answers -> outcome."""

from __future__ import annotations

import pytest

from ldn.authz.input_builder import (
    ConsentOutcome,
    bgz_record_types,
    facility_type_of,
    fhir_relative_path,
    node_fhir_input,
    patient_id_of,
    split_query,
)
from ldn.authz.model import AuthzInput
from ldn.authz.pep import ConsentAnswer, combine_answers, mitz_categories_for, vital_interest_reason_of
from ldn.core.topology import Topology
from tests.authz.pep_support import request

BSN = "999990019"


@pytest.mark.parametrize(
    ("path", "relative"),
    [
        ("/nodes/00000020/fhir/Condition", "/Condition"),
        ("/nodes/00000020/fhir/Patient/p1", "/Patient/p1"),
        ("/nodes/00000020/fhir/Patient/$bgz", "/Patient/$bgz"),
        ("/nodes/00000020/fhir", "/"),
        ("/Condition", "/Condition"),
    ],
)
def test_path_is_relative_to_the_fhir_base(path: str, relative: str) -> None:
    assert fhir_relative_path(path) == relative


def test_query_is_split_into_search_and_include_parameters() -> None:
    query, search, include, revinclude = split_query(
        [
            ("patient", "Patient/p1"),
            ("category", "laboratory"),
            ("category", "vital-signs"),
            ("_include", "MedicationRequest:medication"),
            ("_revinclude:iterate", "Provenance:target"),
            ("_format", "json"),
        ]
    )
    assert query["category"] == ["laboratory", "vital-signs"] and query["_format"] == ["json"]
    assert search == {"patient": ["Patient/p1"], "category": ["laboratory", "vital-signs"]}
    assert include == ["MedicationRequest:medication"]
    assert revinclude == ["Provenance:target"]


@pytest.mark.parametrize(
    ("rtype", "rid", "params", "expected"),
    [
        ("Patient", "p1", None, "p1"),
        ("Condition", "c1", None, None),
        ("Condition", None, {"patient": ["Patient/p1"]}, "p1"),
        ("Condition", None, {"subject": ["http://ldn.test/nodes/00000020/fhir/Patient/p2"]}, "p2"),
        ("Patient", None, {"_id": ["p3"]}, "p3"),
        ("Patient", None, {"_id": ["p3,p4"]}, None),
        ("Condition", None, {"patient.identifier": [f"http://fhir.nl/fhir/NamingSystem/bsn|{BSN}"]}, None),
        ("Condition", None, {"patient": ["Group/g1"]}, None),
        ("Condition", None, {"_id": ["c1"]}, None),
    ],
)
def test_patient_id_named_by_a_request(
    rtype: str, rid: str | None, params: dict[str, list[str]] | None, expected: str | None
) -> None:
    assert patient_id_of(rtype, rid, params) == expected


def test_record_types_of_a_bgz() -> None:
    assert bgz_record_types({"Patient", "MedicationUse", "ObservationLaboratory", "ObservationVitalSigns"}) == [
        "MedicationStatement",
        "Observation",
        "Patient",
    ]
    assert bgz_record_types({"Imaging"}) == ["Imaging"]  # unknown: kept, so the policy refuses it


def test_facility_types_from_the_topology(topology: Topology) -> None:
    assert facility_type_of(topology, "00000020") == "Z3"
    assert facility_type_of(topology, "00000040") == "V4"
    assert facility_type_of(topology, "00000050") == "J8"
    assert facility_type_of(topology, "90000905") is None  # a national service is no care facility
    assert facility_type_of(topology, "12345678") is None


def _input(**kw: object) -> dict[str, object]:
    params: dict[str, object] = {
        "client_id": "client-hospital",
        "subject_id": "900000031",
        "subject_organization_id": "00000040",
        "subject_organization": "Ziekenhuis Rijnstad",
        "subject_role": "01.016",
        "subject_facility_type": "V4",
        "resource_type": "Condition",
        "resource_id": None,
        "interaction": "search-type",
        "method": "GET",
        "path": "/Condition",
        "query_items": [("patient", "Patient/p1")],
        "data_holder_ura": "00000020",
        "data_holder_facility_type": "Z3",
        "patient_bsn": BSN,
        "patient_bsn_from_token": None,
        "patient_id": "p1",
        "consent": ConsentOutcome("Permit"),
    }
    params.update(kw)
    return node_fhir_input(**params)  # type: ignore[arg-type]


def test_node_input_fits_the_model_and_leaves_unknowns_out() -> None:
    raw = _input(subject_id=None, subject_facility_type=None, consent=None)
    model = AuthzInput.model_validate(raw)
    assert model.context.service == "node-fhir"
    assert model.context.purpose_of_use == "TREAT"
    assert model.subject.subject_id is None and model.subject.subject_facility_type is None
    assert "mitz_consent" not in raw["context"]  # type: ignore[operator]
    assert model.action.fhir_rest is not None
    assert model.action.fhir_rest.search_params == {"patient": ["Patient/p1"]}


def test_optout_and_vital_interest_reach_the_context() -> None:
    raw = _input(consent=ConsentOutcome("Permit", optout=True, override=True), vital_interest_reason="anafylaxie")
    context = AuthzInput.model_validate(raw).context
    assert context.ehds_primary_optout is True
    assert context.vital_interest is not None and context.vital_interest.reason == "anafylaxie"
    assert context.mitz_consent == "Permit"


def test_bgz_input_is_a_patient_search_with_revincludes() -> None:
    raw = _input(
        resource_type="Patient",
        interaction="operation",
        path="/Patient/$bgz",
        query_items=[("patient.identifier", f"http://fhir.nl/fhir/NamingSystem/bsn|{BSN}")],
        record_types=["Condition", "Observation", "Patient"],
    )
    rest = AuthzInput.model_validate(raw).action.fhir_rest
    assert rest is not None
    assert rest.interaction_type == "search-type" and rest.operation == "bgz"
    assert rest.revinclude == ["Condition:patient", "Observation:patient"]


def test_read_input_has_no_search_parameters() -> None:
    raw = _input(interaction="read", resource_id="c1", path="/Condition/c1", query_items=[])
    model = AuthzInput.model_validate(raw)
    assert model.resource.id == "c1"
    assert model.action.fhir_rest is not None and model.action.fhir_rest.search_params == {}


def _answer(result: str, rule: str = "r", override: bool = False) -> ConsentAnswer:
    return ConsentAnswer(result, rule, override)


@pytest.mark.parametrize(
    ("answers", "expected", "optout"),
    [
        ([_answer("Permit"), _answer("Permit")], "Permit", False),
        ([_answer("Permit"), _answer("NotApplicable")], "NotApplicable", False),
        ([_answer("Indeterminate"), _answer("NotApplicable")], "Indeterminate", False),
        ([_answer("Permit"), _answer("Deny"), _answer("Indeterminate")], "Deny", False),
        ([_answer("Deny", "ehds-primary-use-optout")], "Deny", True),
        ([_answer("Deny", "ehds-primary-use-optout (override refused: no reason given)")], "Deny", True),
        ([_answer("Permit", "ehds-primary-use-optout overridden: vital interest", True)], "Permit", True),
        ([_answer("Deny", "choice c1 v1 deny")], "Deny", False),
    ],
)
def test_consent_answers_combine_to_the_worst(answers: list[ConsentAnswer], expected: str, optout: bool) -> None:
    outcome = combine_answers(answers)
    assert outcome.answer == expected
    assert outcome.optout is optout


def test_mitz_categories_of_nvi_categories() -> None:
    assert mitz_categories_for({"Condition", "Patient"}) == {"GGC002"}
    assert mitz_categories_for({"MedicationUse", "ObservationLaboratory"}) == {"GGC013", "GGC012"}
    assert mitz_categories_for({"NotACategory"}) == {"GGC002"}  # unknown: the broadest question
    assert mitz_categories_for(set()) == {"GGC002"}


def test_vital_interest_header() -> None:
    header = "X-Ldn-Vital-Interest"
    assert vital_interest_reason_of(request()) is None
    stated = request(headers={header: "bewusteloos%20binnengebracht%2C%20allergie%C3%ABn%20onbekend"})
    assert vital_interest_reason_of(stated) == "bewusteloos binnengebracht, allergieën onbekend"
    assert vital_interest_reason_of(request(headers={header: "%20%20"})) is None
