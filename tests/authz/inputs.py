"""Builders for authorization inputs used by the decision-table tests (synthetic data only)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"

GP = "01.015"
CARDIOLOGIST = "01.010"
PHARMACIST = "17.000"
CARER = "86.000"  # verzorgende IG: not BIG-registered
REQUESTER_URA = "00000001"
HOLDER_URA = "00000002"
OTHER_URA = "00000009"
BSN = "999990019"
OTHER_BSN = "999990020"
NOW = "2026-03-01T12:00:00+00:00"


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``patch`` into a copy of ``base``; a value of None removes the key."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def pull(role: str = GP, resource_type: str = "Condition", **patch: Any) -> dict[str, Any]:
    """A search on the node's FHIR API for one patient's `resource_type`."""
    base = {
        "subject": {
            "client_id": "client-gp",
            "subject_id": "900000009",
            "subject_organization_id": REQUESTER_URA,
            "subject_role": [role],
        },
        "resource": {"type": resource_type},
        "action": {
            "connection_type_code": "hl7-fhir-rest",
            "request": {"method": "GET", "path": f"/{resource_type}", "query_params": {"patient": ["Patient/p1"]}},
            "fhir_rest": {"interaction_type": "search-type", "search_params": {"patient": ["Patient/p1"]}},
        },
        "context": {
            "service": "node-fhir",
            "data_holder_organization_id": HOLDER_URA,
            "patient_bsn": BSN,
            "patient_id": "p1",
            "mitz_consent": "Permit",
            "purpose_of_use": "TREAT",
            "now": NOW,
        },
    }
    return merge(base, patch)


REFERRAL = {
    "owner_ura": REQUESTER_URA,
    "status": "requested",
    "restriction_end": "2026-03-08T00:00:00+01:00",
    "allowed_queries": ["Patient/p1", "Observation?patient=Patient/p1&category=laboratory"],
}


def notified(path: str = "/Observation", params: dict[str, list[str]] | None = None, **patch: Any) -> dict[str, Any]:
    """A pull under a referral (notified pull)."""
    query = {"patient": ["Patient/p1"], "category": ["laboratory"]} if params is None else params
    base = pull(role=CARER, resource_type="Observation", context={"referral": REFERRAL, "mitz_consent": None})
    # replaced, not merged: the request carries exactly these parameters
    base["action"]["request"].update(path=path, query_params=copy.deepcopy(query))
    base["action"]["fhir_rest"]["search_params"] = copy.deepcopy(query)
    return merge(base, patch)


def nvi_search(role: str = GP, **patch: Any) -> dict[str, Any]:
    base = {
        "subject": {
            "client_id": "client-gp",
            "subject_id": "900000009",
            "subject_organization_id": REQUESTER_URA,
            "subject_role": [role],
        },
        "resource": {"type": "List"},
        "action": {
            "connection_type_code": "hl7-fhir-rest",
            "request": {"method": "GET", "path": "/List"},
            "fhir_rest": {"interaction_type": "search-type"},
        },
        "context": {"service": "nvi", "data_holder_organization_id": "90000901", "purpose_of_use": "TREAT"},
    }
    return merge(base, patch)


def nvi_register(org: str = HOLDER_URA, custodians: list[str] | None = None) -> dict[str, Any]:
    return {
        "subject": {"client_id": "client-holder", "subject_organization_id": org},
        "resource": {"type": "Bundle"},
        "action": {
            "connection_type_code": "hl7-fhir-rest",
            "request": {"method": "POST", "path": "/"},
            "fhir_rest": {"interaction_type": "transaction"},
        },
        "context": {
            "service": "nvi",
            "data_holder_organization_id": "90000901",
            "custodians": [org] if custodians is None else custodians,
        },
    }


def mcsd(
    interaction: str = "search-type", target: str | None = None, mandated: list[str] | None = None
) -> dict[str, Any]:
    write = interaction not in {"read", "search-type", "history-type"}
    context: dict[str, Any] = {"service": "mcsd", "data_holder_organization_id": "90000001"}
    if target is not None:
        context["target_organization_id"] = target
    if mandated is not None:
        context["mandated_organizations"] = mandated
    return {
        "subject": {"client_id": "vendor-1", "subject_organization_id": REQUESTER_URA},
        "resource": {"type": "Endpoint"},
        "action": {
            "connection_type_code": "hl7-fhir-rest",
            "request": {"method": "PUT" if write else "GET", "path": "/Endpoint/e1" if write else "/Endpoint"},
            "fhir_rest": {"interaction_type": interaction},
        },
        "context": context,
    }
