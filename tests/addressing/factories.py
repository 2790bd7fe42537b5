"""Small builders for mCSD resources used across the addressing tests."""

from __future__ import annotations

from typing import Any

from ldn.addressing.codes import (
    AUTHORIZATION_TYPE_SYSTEM,
    CONNECTION_TYPE_SYSTEM,
    LDN_SERVICE_TYPE_SYSTEM,
    MANDATE_CODE,
    PAYLOAD_TYPE_SYSTEM,
    SYSTEM_URA,
)


def organization(
    rid: str, ura: str | None = None, *, name: str = "Afdeling", part_of: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Organization", "id": rid, "active": True, "name": name}
    if ura is not None:
        body["identifier"] = [{"system": SYSTEM_URA, "value": ura}]
    if part_of is not None:
        body["partOf"] = {"reference": f"Organization/{part_of}"}
    return body


def endpoint(
    rid: str,
    *,
    owner_org: str | None = None,
    custodian: str | None = None,
    payload: str = "fhir-query-r4",
    address: str = "https://example.org/fhir",
    status: str = "active",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Endpoint",
        "id": rid,
        "status": status,
        "connectionType": {"system": CONNECTION_TYPE_SYSTEM, "code": "hl7-fhir-rest"},
        "payloadType": [{"coding": [{"system": PAYLOAD_TYPE_SYSTEM, "code": payload}]}],
        "address": address,
    }
    if owner_org is not None:
        body["managingOrganization"] = {"reference": f"Organization/{owner_org}"}
    if custodian is not None:
        body["identifier"] = [
            {
                "system": "urn:ietf:rfc:3986",
                "value": f"urn:uuid:00000000-0000-4000-8000-{rid[-12:].rjust(12, '0')}",
                "assigner": {"identifier": {"system": SYSTEM_URA, "value": custodian}},
            }
        ]
    return body


def service(
    rid: str, provided_by: str, *, code: str = "huisartsenzorg", endpoint_id: str | None = None, name: str = "Dienst"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": rid,
        "active": True,
        "providedBy": {"reference": f"Organization/{provided_by}"},
        "type": [{"coding": [{"system": LDN_SERVICE_TYPE_SYSTEM, "code": code}]}],
        "name": name,
    }
    if endpoint_id is not None:
        body["endpoint"] = [{"reference": f"Endpoint/{endpoint_id}"}]
    return body


def location(rid: str, managing: str, *, name: str = "Locatie") -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "id": rid,
        "status": "active",
        "name": name,
        "managingOrganization": {"reference": f"Organization/{managing}"},
    }


def mandate(rid: str, mandating_org: str, mandated_ura: str, *, active: bool = True) -> dict[str, Any]:
    """An OrganizationAffiliation by which `mandating_org` lets `mandated_ura` publish for it."""
    return {
        "resourceType": "OrganizationAffiliation",
        "id": rid,
        "active": active,
        "organization": {"reference": f"Organization/{mandating_org}"},
        "participatingOrganization": {"identifier": {"system": SYSTEM_URA, "value": mandated_ura}},
        "code": [{"coding": [{"system": AUTHORIZATION_TYPE_SYSTEM, "code": MANDATE_CODE}]}],
    }
