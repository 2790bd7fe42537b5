"""Publishing the topology's care providers in the LRZa and the mCSD directory on start-up.

Each participant is registered in the LRZa and publishes, as itself, an Organization, three
Endpoints (FHIR base, Notified Pull notification, token endpoint of its authorization server)
and two HealthcareServices (its main care service, and receiving referrals). Ids are
deterministic and writes that change nothing make no new version, so a restart is a no-op.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ldn.addressing import lrza
from ldn.addressing.codes import (
    CONNECTION_TYPE_SYSTEM,
    GF_AUTH_SERVER_SYSTEM,
    GF_BGZ_SERVER,
    GF_DATA_EXCHANGE_SYSTEM,
    GF_TWIIN_NOTIFICATION,
    IDENTIFIER_URI_SYSTEM,
    LDN_ORG_TYPE_SYSTEM,
    LDN_SERVICE_TYPE_SYSTEM,
    NICTIZ_ORG_TYPE_SYSTEM,
    NICTIZ_ORG_TYPES,
    PAYLOAD_TYPE_SYSTEM,
    PAYLOAD_TYPES,
    PRIMARY_SERVICE,
    SERVICE_TYPES,
    SYSTEM_AGB,
    SYSTEM_KVK,
    SYSTEM_URA,
)
from ldn.addressing.directory import DirectoryService
from ldn.core.service import NetworkDirectory
from ldn.core.topology import Organization, Topology, Vendor

logger = logging.getLogger("ldn.addressing.publication")
_NAMESPACE = uuid.UUID("5d1e2c0a-8a7b-4e55-9d1f-6c2b1a0e4f11")


def _payload(code: str, *extra: dict[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": PAYLOAD_TYPE_SYSTEM, "code": code, "display": PAYLOAD_TYPES[code]}, *extra]}


def _custodian_identifier(name: str, org: Organization) -> dict[str, Any]:
    return {
        "use": "official",
        "system": IDENTIFIER_URI_SYSTEM,
        "value": f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{org.ura}/{name}')}",
        "assigner": {"identifier": {"system": SYSTEM_URA, "value": org.ura}, "display": org.name},
    }


def participant_resources(
    org: Organization, vendor: Vendor | None, node: dict[str, str] | None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, id, resource) for one participant, in the order they must be written."""
    ura = org.ura
    org_id = f"org-{ura}"
    managing: dict[str, Any] = (
        {"identifier": {"system": SYSTEM_KVK, "value": vendor.kvk}, "display": vendor.name}
        if vendor is not None
        else {"reference": f"Organization/{org_id}", "display": org.name}
    )
    endpoints: list[tuple[str, dict[str, Any]]] = []
    if node is not None:
        fhir_base, base = node["fhir"], node["base"]
        endpoints = [
            (
                f"ep-{ura}-fhir",
                {
                    "name": f"FHIR R4 API of {org.name}",
                    "connectionType": {"system": CONNECTION_TYPE_SYSTEM, "code": "hl7-fhir-rest"},
                    "payloadType": [
                        _payload("fhir-query-r4"),
                        _payload(
                            "fhir-query-bgz",
                            {"system": GF_DATA_EXCHANGE_SYSTEM, "code": GF_BGZ_SERVER, "display": "BGZ Server"},
                        ),
                    ],
                    "payloadMimeType": ["application/fhir+json"],
                    "address": fhir_base,
                },
            ),
            (
                f"ep-{ura}-notification",
                {
                    "name": f"Notified Pull notification endpoint of {org.name}",
                    "connectionType": {"system": CONNECTION_TYPE_SYSTEM, "code": "hl7-fhir-rest"},
                    "payloadType": [
                        _payload(
                            "pull-notification",
                            {
                                "system": GF_DATA_EXCHANGE_SYSTEM,
                                "code": GF_TWIIN_NOTIFICATION,
                                "display": "Twiin - TA Notification",
                            },
                        )
                    ],
                    "payloadMimeType": ["application/fhir+json"],
                    "address": f"{fhir_base}/Task",
                },
            ),
            (
                f"ep-{ura}-token",
                {
                    "name": f"Token endpoint of the authorization server of {org.name}",
                    "connectionType": {"system": GF_AUTH_SERVER_SYSTEM, "code": "oauth2", "display": "OAuth 2.0"},
                    "payloadType": [_payload("oauth-token")],
                    "payloadMimeType": ["application/x-www-form-urlencoded"],
                    "address": f"{base}/auth/token",
                },
            ),
        ]
    identifiers: list[dict[str, Any]] = [{"use": "official", "system": SYSTEM_URA, "value": ura}]
    if org.agb:
        identifiers.append({"system": SYSTEM_AGB, "value": org.agb})
    codings = []
    if org.type in NICTIZ_ORG_TYPES:
        code, display = NICTIZ_ORG_TYPES[org.type]
        codings.append({"system": NICTIZ_ORG_TYPE_SYSTEM, "code": code, "display": display})
    codings.append({"system": LDN_ORG_TYPE_SYSTEM, "code": org.type})
    organization: dict[str, Any] = {
        "resourceType": "Organization",
        "id": org_id,
        "identifier": identifiers,
        "active": True,
        "type": [{"coding": codings}],
        "name": org.name,
    }
    if org.city:
        organization["address"] = [{"city": org.city, "country": "NL"}]
    if endpoints:
        organization["endpoint"] = [{"reference": f"Endpoint/{eid}"} for eid, _ in endpoints]
    out: list[tuple[str, str, dict[str, Any]]] = [("Organization", org_id, organization)]
    for eid, body in endpoints:
        resource = {
            "resourceType": "Endpoint",
            "id": eid,
            "identifier": [_custodian_identifier(eid, org)],
            "status": "active",
            **body,
            "managingOrganization": managing,
        }
        out.append(("Endpoint", eid, resource))
    if endpoints:
        primary = PRIMARY_SERVICE.get(org.type)
        services = []
        if primary is not None:
            services.append((f"hs-{ura}-{primary}", primary, f"ep-{ura}-fhir"))
        services.append((f"hs-{ura}-verwijzing", "verwijzing-ontvangen", f"ep-{ura}-notification"))
        for sid, code, endpoint_id in services:
            out.append(
                (
                    "HealthcareService",
                    sid,
                    {
                        "resourceType": "HealthcareService",
                        "id": sid,
                        "identifier": [_custodian_identifier(sid, org)],
                        "active": True,
                        "providedBy": {"reference": f"Organization/{org_id}", "display": org.name},
                        "type": [
                            {
                                "coding": [
                                    {"system": LDN_SERVICE_TYPE_SYSTEM, "code": code, "display": SERVICE_TYPES[code]}
                                ]
                            }
                        ],
                        "name": f"{SERVICE_TYPES[code]} - {org.name}",
                        "endpoint": [{"reference": f"Endpoint/{endpoint_id}"}],
                    },
                )
            )
    return out


@dataclass(frozen=True)
class PublishReport:
    registered: int
    written: int
    unchanged: int


def publish_topology(
    session: Session, service: DirectoryService, topology: Topology, directory: NetworkDirectory
) -> PublishReport:
    """Register every participant in the LRZa and publish its entries (idempotent)."""
    registered = lrza.upsert_providers(session, lrza.providers_from_topology(topology))
    vendors = {v.id: v for v in topology.vendors}
    written = unchanged = 0
    for org in topology.organizations:
        node = directory.nodes.get(org.ura)
        if node is None:
            logger.warning("no node address for %s; publishing its Organization without endpoints", org.ura)
        vendor = vendors.get(org.vendor) if org.vendor else None
        for resource_type, resource_id, body in participant_resources(org, vendor, node):
            result = service.write(session, resource_type, resource_id, body, org.ura)
            if result.changed:
                written += 1
            else:
                unchanged += 1
    return PublishReport(registered, written, unchanged)
