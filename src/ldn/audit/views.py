"""Readable views of stored records: for organisations and supervisors, and for the citizen.

Names come from the topology (organisations, professionals and their roles) and from the event
itself (the name in the token); data categories get their Dutch names. No view ever carries a
BSN: patient objects show only the keyed lookup hash, and the citizen view leaves even that out.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ldn.audit.catalogue import CATALOGUE
from ldn.audit.chain import StoredRecord
from ldn.core.errors import BadRequest
from ldn.core.topology import Topology

__all__ = ["CATEGORY_NAMES", "citizen_view", "decode_cursor", "encode_cursor", "record_view"]

# Mitz data categories (GGC codes) and NVI data categories (SPEC §6), with Dutch names.
CATEGORY_NAMES: dict[str, str] = {
    "GGC002": "Behandelgegevens",
    "GGC012": "Uitslagen",
    "GGC013": "Medicatiegegevens",
    "AllergyIntolerance": "Allergieën en intoleranties",
    "Condition": "Problemen en diagnoses",
    "Imaging": "Beeldvormend onderzoek",
    "MedicationRequest": "Medicatievoorschriften",
    "MedicationUse": "Medicatiegebruik",
    "ObservationLaboratory": "Laboratoriumuitslagen",
    "ObservationVitalSigns": "Vitale functies",
    "Procedure": "Verrichtingen",
    "Patient": "Persoonsgegevens",
    "Encounter": "Contacten",
    "Episode": "Episodes",
    "AdvanceDirective": "Wilsverklaringen",
    "DiagnosticReport": "Onderzoeksverslagen",
    "Device": "Medische hulpmiddelen",
    "Alert": "Waarschuwingen",
    "Consent": "Toestemmingen",
}

_SIDE_NL = {"requester": "opvragende partij", "holder": "bron", "national": "landelijke voorziening", "any": ""}


def encode_cursor(record: StoredRecord) -> str:
    raw = json.dumps([record.occurred_at, record.source, record.seq], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(value: str | None) -> tuple[str, str, int] | None:
    """A page cursor from a previous answer; anything else is a 400."""
    if not value:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        occurred, source, seq = data
        if not (isinstance(occurred, str) and isinstance(source, str) and type(seq) is int):
            raise ValueError("cursor parts")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("invalid cursor", code="value", expression=["cursor"]) from None
    return occurred, source, seq


def _organization(topology: Topology, ura: str | None) -> dict[str, Any] | None:
    if not ura:
        return None
    try:
        return {"ura": ura, "name": topology.organization(ura).name}
    except KeyError:
        return {"ura": ura, "name": None}


def _person(topology: Topology, user_id: str | None, name: str | None, role: str | None) -> dict[str, Any] | None:
    if not user_id:
        return None
    role_name = None
    try:
        professional, _ = topology.professional(user_id)
        name = name or professional.display_name
        role = role or professional.role_code
        role_name = professional.role_name if professional.role_code == role else None
    except KeyError:
        pass
    return {"id": user_id, "name": name, "role": role, "role_name": role_name}


def _public_objects(detail: dict[str, Any]) -> list[dict[str, Any]]:
    objects = []
    for obj in detail.get("objects", []):
        item = {k: v for k, v in obj.items() if k != "bsn_encrypted"}
        objects.append(item)
    return objects


def record_view(record: StoredRecord, topology: Topology) -> dict[str, Any]:
    """A record for an organisation or supervisor query (no BSN, readable names added)."""
    detail = record.detail_data()
    kind = CATALOGUE.get(record.event_code)
    users = []
    for user in detail.get("users", []):
        view = dict(user)
        organization = _organization(topology, user.get("organization_ura"))
        if organization:
            view["organization_name"] = organization["name"]
        users.append(view)
    return {
        "event_id": record.event_id,
        "type": {"code": record.event_code, "key": kind.key if kind else None, "title": kind.title if kind else None},
        "action": record.action,
        "outcome": record.outcome,
        "outcome_detail": detail.get("outcome_detail"),
        "occurred_at": record.occurred_at,
        "trace_id": record.trace_id,
        "source": {"id": record.source, **detail.get("source", {})},
        "organization": _organization(topology, record.organization_ura),
        "counterpart": _organization(topology, detail.get("counterpart_ura")),
        "users": users,
        "objects": _public_objects(detail),
        "checks": detail.get("checks", []),
        "chain": {"seq": record.seq, "record_hash": record.record_hash},
    }


def citizen_view(record: StoredRecord, topology: Topology) -> dict[str, Any]:
    """One access in words a citizen can read: who, for which organisation, which data, when."""
    detail = record.detail_data()
    kind = CATALOGUE.get(record.event_code)
    users = detail.get("users", [])
    initiator = next((u for u in users if u.get("is_initiator", True)), users[0] if users else {})
    acting_for = initiator.get("organization_ura") or record.organization_ura
    person = None
    if initiator.get("id_system") in ("uzi", "dezi"):
        person = _person(topology, initiator.get("user_id"), initiator.get("name"), initiator.get("role"))
    elif initiator.get("id_system") == "citizen":
        person = {"id": None, "name": "u zelf", "role": None, "role_name": None}
    elif initiator.get("name"):
        person = {"id": None, "name": initiator.get("name"), "role": None, "role_name": None}
    responsible = None
    if initiator.get("responsible_id"):
        responsible = _person(
            topology, initiator["responsible_id"], initiator.get("responsible_name"), initiator.get("responsible_role")
        )
    categories: list[dict[str, str | None]] = []
    for obj in detail.get("objects", []):
        if obj.get("id_type") == "BSN":
            for code in obj.get("data_categories", []):
                categories.append({"code": code, "name": CATEGORY_NAMES.get(code, code)})
    return {
        "when": record.occurred_at,
        "what": {
            "code": record.event_code,
            "title": kind.title_nl if kind else record.event_code,
            "action": record.action,
        },
        "outcome": record.outcome,
        "by": person,
        "for_organization": _organization(topology, acting_for),
        "under_responsibility_of": responsible,
        "data_categories": categories,
        "logged_by": {
            **(_organization(topology, record.organization_ura) or {}),
            "role": _SIDE_NL.get(kind.side.value, "") if kind else "",
        },
        "counterpart": _organization(topology, detail.get("counterpart_ura")),
        "trace_id": record.trace_id,
    }
