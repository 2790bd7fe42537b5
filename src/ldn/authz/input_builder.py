"""From a node request to the policy input (SPEC §8): pure functions, no I/O.

The enforcement point (:mod:`ldn.authz.pep`) gathers the facts (who asks, what, about which
patient, the consent answer) and hands them here; this module only shapes them into the
:class:`~ldn.authz.model.AuthzInput` document. Two mappings are decisions of ldn worth knowing:

* ``$bgz`` (the patient's whole record as one Bundle) is decided as the search it equals:
  ``Patient?identifier=...`` with a ``_revinclude`` of every resource type in the record, so
  the pull policy requires every data category the record holds (the policies know no
  operations; without this mapping every ``$bgz`` would be ``interaction-not-allowed``).
* The consent answer is the Mitz closed question's. When the citizen objected to primary use
  (EHDS), the consent service answers Deny with rule ``ehds-primary-use-optout``, or Permit with
  ``override`` when a vital interest was stated: both set ``ehds_primary_optout`` so the
  ``vital_interest`` policy decides, and tell the PDP apart a refusal by the opt-out (no reason)
  and an override (reason given, flagged).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ldn.core.topology import Topology

__all__ = [
    "CONNECTION_TYPE",
    "NODE_FHIR_SERVICE",
    "PURPOSE_TREAT",
    "ConsentOutcome",
    "bgz_record_types",
    "facility_type_of",
    "fhir_relative_path",
    "node_fhir_input",
    "patient_id_of",
    "split_query",
]

CONNECTION_TYPE = "hl7-fhir-rest"
NODE_FHIR_SERVICE = "node-fhir"
PURPOSE_TREAT = "TREAT"

# Presentation-only parameters: they change how, not what, is returned.
_PRESENTATION = frozenset({"_format", "_pretty", "_summary", "_elements"})
_INCLUDE, _REVINCLUDE = "_include", "_revinclude"

# The node's resource type for each NVI data category its record holds (for $bgz).
_CATEGORY_TYPE: Mapping[str, str] = {
    "Patient": "Patient",
    "AllergyIntolerance": "AllergyIntolerance",
    "Condition": "Condition",
    "Encounter": "Encounter",
    "MedicationRequest": "MedicationRequest",
    "MedicationUse": "MedicationStatement",
    "Procedure": "Procedure",
    "ObservationLaboratory": "Observation",
    "ObservationVitalSigns": "Observation",
}


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    """The combined consent answer for every Mitz category a request touches.

    ``answer`` is Permit only when every category's answer is Permit. ``optout``: the patient
    objected to primary use (EHDS); ``override``: the consent service lifted that objection for a
    stated vital interest (and logged it). ``rules`` are the consent service's rule texts, for logs.
    """

    answer: str
    optout: bool = False
    override: bool = False
    rules: tuple[str, ...] = ()


def facility_type_of(topology: Topology, ura: str) -> str | None:
    """The RoleCodeNL facility type (Z3, V4, ...) of an organisation in the topology, or None."""
    from ldn.consent.register import TOPOLOGY_FACILITY_TYPES

    try:
        org = topology.organization(ura)
    except KeyError:
        return None
    return TOPOLOGY_FACILITY_TYPES.get(org.type)


def fhir_relative_path(path: str) -> str:
    """The request path relative to the FHIR base (`/nodes/<ura>/fhir/Condition` -> `/Condition`)."""
    marker = path.find("/fhir/")
    if marker >= 0:
        return path[marker + len("/fhir") :]
    if path.endswith("/fhir"):
        return "/"
    return path or "/"


def split_query(
    items: Iterable[tuple[str, str]],
) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str], list[str]]:
    """(query_params, search_params, include, revinclude) of a query string's (name, value) pairs.

    query_params is the query exactly as sent; search_params leaves out presentation parameters
    and the include lists, which are returned separately.
    """
    query: dict[str, list[str]] = {}
    search: dict[str, list[str]] = {}
    include: list[str] = []
    revinclude: list[str] = []
    for name, value in items:
        query.setdefault(name, []).append(value)
        base = name.split(":", 1)[0]
        if base == _INCLUDE:
            include.append(value)
        elif base == _REVINCLUDE:
            revinclude.append(value)
        elif name not in _PRESENTATION:
            search.setdefault(name, []).append(value)
    return query, search, include, revinclude


def patient_id_of(
    resource_type: str, resource_id: str | None, search_params: Mapping[str, Sequence[str]] | None
) -> str | None:
    """The local Patient id a request names (a Patient read, `patient=Patient/x`, Patient `_id`)."""
    if resource_type == "Patient" and resource_id:
        return resource_id
    for name in ("patient", "subject", "subject:Patient", "_id" if resource_type == "Patient" else ""):
        values = (search_params or {}).get(name) if name else None
        if not values or len(values) != 1:
            continue
        value = values[0]
        if name != "_id":
            marker = value.rfind("Patient/")
            if marker < 0:
                continue
            value = value[marker + len("Patient/") :]
        if value and "/" not in value and "," not in value:
            return value
    return None


def bgz_record_types(categories: Iterable[str]) -> list[str]:
    """Resource types of a record holding `categories`; an unknown category stays as it is, so
    the policy refuses it (unknown-resource-type) instead of it being skipped."""
    return sorted({_CATEGORY_TYPE.get(c, c) for c in categories})


def node_fhir_input(
    *,
    client_id: str,
    subject_id: str | None,
    subject_organization_id: str,
    subject_organization: str | None,
    subject_role: str | None,
    subject_facility_type: str | None,
    resource_type: str,
    resource_id: str | None,
    interaction: str,
    method: str,
    path: str,
    query_items: Sequence[tuple[str, str]],
    data_holder_ura: str,
    data_holder_facility_type: str | None,
    patient_bsn: str | None,
    patient_bsn_from_token: str | None,
    patient_id: str | None,
    consent: ConsentOutcome | None,
    referral: Mapping[str, Any] | None = None,
    vital_interest_reason: str | None = None,
    record_types: Sequence[str] | None = None,
    request_id: str | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """The policy input for one request on a node's FHIR API (service ``node-fhir``).

    Fields that are unknown are left out, never guessed: the policy then denies with
    ``missing-input:<path>``. ``record_types`` marks a ``$bgz`` (see the module docstring).
    """
    query, search, include, revinclude = split_query(query_items)
    fhir_rest: dict[str, Any] = {"interaction_type": interaction}
    if record_types is not None:
        fhir_rest = {
            "interaction_type": "search-type",
            "operation": "bgz",
            "revinclude": [f"{t}:patient" for t in record_types if t != "Patient"],
        }
    if interaction == "search-type" or record_types is not None:
        fhir_rest["search_params"] = search
        fhir_rest.setdefault("include", include)
        fhir_rest["revinclude"] = [*fhir_rest.get("revinclude", []), *revinclude]
    subject: dict[str, Any] = {
        "client_id": client_id,
        "subject_organization_id": subject_organization_id,
        "subject_role": [subject_role] if subject_role else [],
    }
    optional_subject = {
        "subject_id": subject_id,
        "subject_organization": subject_organization or None,
        "subject_facility_type": subject_facility_type,
    }
    subject.update({k: v for k, v in optional_subject.items() if v is not None})
    resource: dict[str, Any] = {"type": resource_type}
    if resource_id is not None:
        resource["id"] = resource_id
    context: dict[str, Any] = {
        "service": NODE_FHIR_SERVICE,
        "data_holder_organization_id": data_holder_ura,
        "purpose_of_use": PURPOSE_TREAT,
    }
    optional_context: dict[str, Any] = {
        "data_holder_facility_type": data_holder_facility_type,
        "patient_bsn": patient_bsn,
        "patient_bsn_from_token": patient_bsn_from_token,
        "patient_id": patient_id,
        "referral": dict(referral) if referral is not None else None,
        "vital_interest": {"reason": vital_interest_reason} if vital_interest_reason else None,
        "request_id": request_id,
        "traceparent": traceparent,
    }
    if consent is not None:
        optional_context["mitz_consent"] = consent.answer
        optional_context["ehds_primary_optout"] = consent.optout
    context.update({k: v for k, v in optional_context.items() if v is not None})
    return {
        "subject": subject,
        "resource": resource,
        "action": {
            "connection_type_code": CONNECTION_TYPE,
            "request": {"method": method, "path": path, "query_params": query},
            "fhir_rest": fhir_rest,
        },
        "context": context,
    }
