"""BgZ (Basisgegevensset Zorg, 2017) rendering: a patient's R4 data as FHIR STU3 zib resources.

The BgZ profiles (Nictiz, zib 2017) are STU3, while the nodes keep R4. `to_stu3` converts one
resource to its BgZ counterpart (None when BgZ has no section for it, such as heart rate), and
`bgz_bundle` collects a patient's resources into one STU3 `collection` Bundle, Patient first, in
BgZ section order. Used by a node's `Patient/$bgz` operation and by the referral patterns.

Conversions follow the STU3 shapes: Condition and AllergyIntolerance statuses are codes and
`recordedDate` becomes `assertedDate`; MedicationRequest.requester is `{agent}`; Dosage carries
`doseQuantity` directly; MedicationStatement needs `taken`; Observation.interpretation is one
CodeableConcept; Encounter has `reason` instead of `reasonReference`; References carry no `type`;
terminology.hl7.org code systems map back to their STU3 `http://hl7.org/fhir/...` URIs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ldn.core.fhir import now_instant
from ldn.ehr import codes

__all__ = ["BGZ_PROFILES", "bgz_bundle", "to_stu3"]

_NICTIZ = "http://nictiz.nl/fhir/StructureDefinition/"
BGZ_PROFILES: Mapping[str, str] = {
    "Patient": "http://fhir.nl/fhir/StructureDefinition/nl-core-patient",
    "Condition": _NICTIZ + "zib-Problem",
    "AllergyIntolerance": _NICTIZ + "zib-AllergyIntolerance",
    "MedicationRequest": _NICTIZ + "zib-MedicationAgreement",
    "MedicationStatement": _NICTIZ + "zib-MedicationUse",
    "Observation.laboratory": _NICTIZ + "zib-LaboratoryTestResult-Observation",
    "Observation.85354-9": _NICTIZ + "zib-BloodPressure",
    "Observation.29463-7": _NICTIZ + "zib-BodyWeight",
    "Observation.8302-2": _NICTIZ + "zib-BodyHeight",
    "Procedure": _NICTIZ + "zib-Procedure",
    "Encounter": _NICTIZ + "zib-Encounter",
}

# BgZ section order (the order of the BgZ 2017 query list).
_SECTION_ORDER = (
    "Patient",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "MedicationRequest",
    "Observation",
    "Procedure",
    "Encounter",
)

# R4 moved HL7 v2/v3 and FHIR-defined code systems to terminology.hl7.org; STU3 uses the old URIs.
_SYSTEMS_STU3 = {
    codes.OBSERVATION_CATEGORY: "http://hl7.org/fhir/observation-category",
    codes.CONDITION_CATEGORY: "http://hl7.org/fhir/condition-category",
    codes.ACT_CODE: "http://hl7.org/fhir/v3/ActCode",
    codes.CONFIDENTIALITY: "http://hl7.org/fhir/v3/Confidentiality",
    codes.INTERPRETATION: "http://hl7.org/fhir/v3/ObservationInterpretation",
}


def _systems(value: Any) -> Any:
    """Rewrite code-system URIs and drop R4-only `Reference.type`, everywhere in a structure."""
    if isinstance(value, list):
        return [_systems(v) for v in value]
    if isinstance(value, dict):
        out = {k: _systems(v) for k, v in value.items()}
        if isinstance(out.get("system"), str):
            out["system"] = _SYSTEMS_STU3.get(out["system"], out["system"])
        if "type" in out and isinstance(out.get("type"), str) and ("identifier" in out or "reference" in out):
            out.pop("type")
        return out
    return value


def _first_code(concept: Mapping[str, Any] | None, default: str) -> str:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("code"):
            return str(coding["code"])
    return default


def _meta(resource: Mapping[str, Any], profile: str) -> dict[str, Any]:
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k in ("versionId", "lastUpdated", "security")}
    meta["profile"] = [profile]
    return meta


def _dosage(dosage: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in dosage.items() if k in ("text", "timing", "route")}
    for rate in dosage.get("doseAndRate") or []:
        if "doseQuantity" in rate:
            out["doseQuantity"] = rate["doseQuantity"]
            break
    return out


def _patient(r: dict[str, Any]) -> dict[str, Any]:
    return r


def _condition(r: dict[str, Any]) -> dict[str, Any]:
    r["clinicalStatus"] = _first_code(r.get("clinicalStatus"), "active")
    r["verificationStatus"] = _first_code(r.get("verificationStatus"), "confirmed")
    if "recordedDate" in r:
        r["assertedDate"] = r.pop("recordedDate")
    return r


def _allergy(r: dict[str, Any]) -> dict[str, Any]:
    r["clinicalStatus"] = _first_code(r.get("clinicalStatus"), "active")
    r["verificationStatus"] = _first_code(r.get("verificationStatus"), "confirmed")
    if "recordedDate" in r:
        r["assertedDate"] = r.pop("recordedDate")
    return r


def _medication_request(r: dict[str, Any]) -> dict[str, Any]:
    categories = r.pop("category", None) or []
    if categories:
        r["category"] = categories[0]  # 0..1 in STU3
    if "requester" in r:
        r["requester"] = {"agent": r["requester"]}
    r["dosageInstruction"] = [_dosage(d) for d in r.get("dosageInstruction") or []]
    return r


def _medication_statement(r: dict[str, Any]) -> dict[str, Any]:
    r["taken"] = "y"  # required in STU3: the patient takes it
    r["dosage"] = [_dosage(d) for d in r.get("dosage") or []]
    return r


def _observation(r: dict[str, Any]) -> dict[str, Any]:
    interpretation = r.pop("interpretation", None) or []
    if interpretation:
        r["interpretation"] = interpretation[0]  # 0..1 in STU3
    return r


def _procedure(r: dict[str, Any]) -> dict[str, Any]:
    return r


def _encounter(r: dict[str, Any]) -> dict[str, Any]:
    # STU3 Encounter has no reasonReference; the diagnoses become Encounter.diagnosis.
    reasons = r.pop("reasonReference", None) or []
    if reasons:
        r["diagnosis"] = [{"condition": ref} for ref in reasons]
    return r


_CONVERT: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "Patient": _patient,
    "Condition": _condition,
    "AllergyIntolerance": _allergy,
    "MedicationRequest": _medication_request,
    "MedicationStatement": _medication_statement,
    "Observation": _observation,
    "Procedure": _procedure,
    "Encounter": _encounter,
}


def _profile_for(resource: Mapping[str, Any]) -> str | None:
    rtype = str(resource.get("resourceType"))
    if rtype != "Observation":
        return BGZ_PROFILES.get(rtype)
    for concept in resource.get("category") or []:
        for coding in concept.get("coding") or []:
            if coding.get("code") == "laboratory":
                return BGZ_PROFILES["Observation.laboratory"]
    return BGZ_PROFILES.get(f"Observation.{_first_code(resource.get('code'), '')}")


def to_stu3(resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The BgZ (STU3) form of an R4 resource, or None when BgZ has no section for it."""
    profile = _profile_for(resource)
    convert = _CONVERT.get(str(resource.get("resourceType")))
    if profile is None or convert is None:
        return None
    r = copy.deepcopy(dict(resource))
    r["meta"] = _meta(resource, profile)
    return _systems(convert(r))  # type: ignore[no-any-return]


def bgz_bundle(
    resources: Sequence[Mapping[str, Any]],
    *,
    base_url: str | None = None,
    bundle_id: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """One patient's data as a BgZ STU3 `collection` Bundle (Patient first, BgZ section order)."""
    order = {t: i for i, t in enumerate(_SECTION_ORDER)}
    converted = [c for c in (to_stu3(r) for r in resources) if c is not None]
    converted.sort(key=lambda r: order.get(str(r["resourceType"]), len(order)))
    entries = []
    for resource in converted:
        entry: dict[str, Any] = {"resource": resource}
        if base_url and resource.get("id"):
            entry["fullUrl"] = f"{base_url.rstrip('/')}/{resource['resourceType']}/{resource['id']}"
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    if bundle_id:
        bundle["id"] = bundle_id
    bundle["meta"] = {"lastUpdated": timestamp or now_instant()}
    return bundle
