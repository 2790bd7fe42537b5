"""Supervisor export: a FHIR R4 `AuditEvent` Bundle or JSON Lines, by period and organisation.

An export is for a supervisor (the audit service's operator or a designated supervisor), so it
names patients by BSN: the encrypted value is decrypted here and nowhere else. Each exported
record carries its chain position and hashes (source, sequence number, previous and own hash),
so the export can be matched against the signed chain. Records are read and written in batches,
so an export of millions of records streams in constant memory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ldn.audit.catalogue import CATALOGUE
from ldn.audit.chain import StoredRecord
from ldn.audit.keys import AuditKeyError, BsnProtector
from ldn.audit.model import format_time
from ldn.audit.store import AuditStore
from ldn.audit.tables import audit_chain_head
from ldn.core.errors import BadRequest
from ldn.core.fhir import now_instant
from ldn.core.identifiers import SYSTEM_BSN, SYSTEM_ROLE_CODE, SYSTEM_URA, SYSTEM_UZI
from ldn.core.storage import Database
from ldn.core.topology import Topology

__all__ = ["ExportFormat", "Period", "export_stream", "fhir_audit_event", "jsonl_record", "parse_period"]

ExportFormat = Literal["fhir", "jsonl"]

LDN = "https://ldn.example.org/fhir"
EVENT_TYPE_SYSTEM = f"{LDN}/CodeSystem/audit-event-type"
EVENT_KEY_SYSTEM = f"{LDN}/CodeSystem/audit-event-key"
EXT_TRACE = f"{LDN}/StructureDefinition/audit-trace-id"
EXT_CHAIN = f"{LDN}/StructureDefinition/audit-chain"
EXT_CHECK = f"{LDN}/StructureDefinition/audit-check"
EXT_COUNTERPART = f"{LDN}/StructureDefinition/audit-counterpart"
_OUTCOME = {"success": "0", "refused": "4", "error": "8"}
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"


@dataclass(frozen=True, slots=True)
class Period:
    """`since <= occurred_at < until`, both in the stored fixed-width UTC form."""

    since: str
    until: str


def _parse_bound(value: str, name: str, *, end: bool) -> datetime:
    text = value.strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise BadRequest(f"{name}: not a date (YYYY-MM-DD) or a date-time with timezone", code="value") from None
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        # A date as upper bound includes that whole day.
        return moment + timedelta(days=1) if end else moment
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: not a date (YYYY-MM-DD) or a date-time with timezone", code="value") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name}: a date-time needs a timezone (e.g. Z)", code="value")
    return moment.astimezone(UTC)


def parse_period(since: str | None, until: str | None) -> Period:
    """Parse an export period; malformed, reversed or empty periods are refused (400)."""
    if not since or not until:
        raise BadRequest("an export needs both 'from' and 'to'", code="required")
    start = _parse_bound(since, "from", end=False)
    stop = _parse_bound(until, "to", end=True)
    if start >= stop:
        raise BadRequest("'from' must lie before 'to'", code="value")
    if start.year < 2000 or stop.year > 9998:
        raise BadRequest("export period out of range", code="value")
    return Period(format_time(start), format_time(stop))


def _instant(stored: str) -> str:
    """FHIR instant from the stored form (millisecond precision is enough for readers)."""
    return stored[:23] + "Z"


def _objects_with_bsn(detail: dict[str, Any], protector: BsnProtector | None) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for obj in detail.get("objects", []):
        item = dict(obj)
        encrypted = item.pop("bsn_encrypted", None)
        if encrypted is not None and protector is not None:
            try:
                item["identifier"] = protector.decrypt(encrypted)
            except AuditKeyError:
                item["identifier"] = None
                item["identifier_error"] = "encrypted with a key that is not available"
        objects.append(item)
    return objects


def jsonl_record(record: StoredRecord, protector: BsnProtector | None) -> dict[str, Any]:
    """One export line: the record in readable form with its chain position."""
    detail = record.detail_data()
    kind = CATALOGUE.get(record.event_code)
    return {
        "event_id": record.event_id,
        "type": {"code": record.event_code, "key": kind.key if kind else None, "title": kind.title if kind else None},
        "action": record.action,
        "outcome": record.outcome,
        "outcome_detail": detail.get("outcome_detail"),
        "occurred_at": record.occurred_at,
        "organization_ura": record.organization_ura,
        "counterpart_ura": detail.get("counterpart_ura"),
        "trace_id": record.trace_id,
        "source": {"id": record.source, **detail.get("source", {})},
        "users": detail.get("users", []),
        "objects": _objects_with_bsn(detail, protector),
        "checks": detail.get("checks", []),
        "chain": {
            "source": record.source,
            "seq": record.seq,
            "recorded_at": record.recorded_at,
            "prev_hash": record.prev_hash,
            "record_hash": record.record_hash,
        },
    }


def _org_name(topology: Topology | None, ura: str | None) -> str | None:
    if topology is None or ura is None:
        return None
    try:
        return topology.organization(ura).name
    except KeyError:
        return None


def _agents(users: list[dict[str, Any]], topology: Topology | None) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = []
    for user in users:
        system = user.get("id_system", "uzi")
        id_system = SYSTEM_UZI if system in ("uzi", "dezi") else "urn:ldn:user:" + system
        identifier = {"system": id_system, "value": user["user_id"]}
        participation = "AUT" if user.get("is_initiator", True) else "INF"
        agent: dict[str, Any] = {
            "type": {"coding": [{"system": _PARTICIPATION, "code": participation}]},
            "who": {"identifier": identifier},
            "requestor": bool(user.get("is_initiator", True)),
        }
        if user.get("name"):
            agent["name"] = user["name"]
            agent["who"]["display"] = user["name"]
        if user.get("role"):
            agent["role"] = [{"coding": [{"system": SYSTEM_ROLE_CODE, "code": user["role"]}]}]
        if user.get("access_point"):
            agent["altId"] = user["access_point"]
        agents.append(agent)
        if user.get("organization_ura"):
            org = {"system": SYSTEM_URA, "value": user["organization_ura"]}
            org_agent: dict[str, Any] = {
                "type": {"coding": [{"system": _ROLE_CLASS, "code": "PROV"}]},
                "who": {"identifier": org},
                "requestor": False,
            }
            name = _org_name(topology, user["organization_ura"])
            if name:
                org_agent["who"]["display"] = name
            agents.append(org_agent)
        if user.get("responsible_id"):
            responsible: dict[str, Any] = {
                "type": {"coding": [{"system": _PARTICIPATION, "code": "RESP"}]},
                "who": {"identifier": {"system": SYSTEM_UZI, "value": user["responsible_id"]}},
                "requestor": False,
            }
            if user.get("responsible_name"):
                responsible["name"] = user["responsible_name"]
            if user.get("responsible_role"):
                responsible["role"] = [{"coding": [{"system": SYSTEM_ROLE_CODE, "code": user["responsible_role"]}]}]
            agents.append(responsible)
    return agents


def _entity(obj: dict[str, Any]) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    for category in obj.get("data_categories", []):
        details.append({"type": "data-category", "valueString": category})
    for name in ("authorization_protocol", "consent_profile", "treatment_relationship"):
        if obj.get(name):
            details.append({"type": name.replace("_", "-"), "valueString": obj[name]})
    if obj.get("id_type") == "BSN":
        entity: dict[str, Any] = {
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
        }
        if obj.get("identifier"):
            entity["what"] = {"identifier": {"system": SYSTEM_BSN, "value": obj["identifier"]}}
        details.append({"type": "bsn-hash", "valueString": obj.get("bsn_hash", "")})
    else:
        entity = {
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            "what": {"identifier": {"system": f"urn:ldn:object:{obj['id_type']}", "value": obj["identifier"]}},
        }
    if obj.get("query"):
        entity["query"] = base64.b64encode(obj["query"].encode("utf-8")).decode("ascii")
    if obj.get("description"):
        entity["description"] = obj["description"]
    if details:
        entity["detail"] = details
    return entity


def fhir_audit_event(record: StoredRecord, protector: BsnProtector | None, topology: Topology | None) -> dict[str, Any]:
    """The record as a FHIR R4 AuditEvent."""
    line = jsonl_record(record, protector)
    kind = CATALOGUE.get(record.event_code)
    event_type: dict[str, Any] = {"system": EVENT_TYPE_SYSTEM, "code": record.event_code}
    if kind is not None:
        event_type["display"] = kind.title
    source_info = line["source"]
    observer: dict[str, Any] = {"identifier": {"system": SYSTEM_URA, "value": record.organization_ura}}
    name = _org_name(topology, record.organization_ura)
    if name:
        observer["display"] = name
    extensions: list[dict[str, Any]] = [
        {"url": EXT_TRACE, "valueString": record.trace_id},
        {
            "url": EXT_CHAIN,
            "extension": [
                {"url": "source", "valueString": record.source},
                {"url": "seq", "valueString": str(record.seq)},
                {"url": "prev-hash", "valueString": record.prev_hash},
                {"url": "record-hash", "valueString": record.record_hash},
            ],
        },
    ]
    extensions += [{"url": EXT_CHECK, "valueString": check} for check in line["checks"]]
    if line["counterpart_ura"]:
        extensions.append(
            {"url": EXT_COUNTERPART, "valueIdentifier": {"system": SYSTEM_URA, "value": line["counterpart_ura"]}}
        )
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": record.event_id,
        "extension": extensions,
        "type": event_type,
        "action": record.action,
        "recorded": _instant(record.occurred_at),
        "outcome": _OUTCOME.get(record.outcome, "8"),
        "agent": _agents(line["users"], topology),
        "source": {
            "site": source_info.get("id", record.source),
            "observer": observer,
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
    }
    if kind is not None:
        resource["subtype"] = [{"system": EVENT_KEY_SYSTEM, "code": kind.key}]
    if line["outcome_detail"]:
        resource["outcomeDesc"] = line["outcome_detail"]
    entities = [_entity(o) for o in line["objects"]]
    if entities:
        resource["entity"] = entities
    return resource


def _organizations(session: Session, organization: str | None) -> list[str]:
    if organization is not None:
        return [organization]
    rows = session.execute(select(audit_chain_head.c.organization_ura).distinct()).scalars()
    return sorted(set(rows))


def export_records(database: Database, period: Period, organization: str | None) -> Iterator[StoredRecord]:
    """Records of the period (per organisation, oldest first), read in batches."""
    with database.transaction(readonly=True) as session:
        for ura in _organizations(session, organization):
            for batch in AuditStore.period_batches(session, period.since, period.until, ura):
                yield from batch


def export_stream(
    database: Database,
    period: Period,
    organization: str | None,
    fmt: ExportFormat,
    protector: BsnProtector | None,
    topology: Topology | None = None,
    counter: list[int] | None = None,
) -> Iterator[str]:
    """The export as text chunks: JSON Lines, or one FHIR `collection` Bundle."""
    count = 0
    if fmt == "jsonl":
        for record in export_records(database, period, organization):
            count += 1
            yield json.dumps(jsonl_record(record, protector), ensure_ascii=False, separators=(",", ":")) + "\n"
    else:
        head = {"resourceType": "Bundle", "type": "collection", "timestamp": now_instant()}
        yield json.dumps(head, separators=(",", ":"))[:-1] + ',"entry":['
        for record in export_records(database, period, organization):
            entry = {
                "fullUrl": f"urn:uuid:{_uuid(record.event_id)}",
                "resource": fhir_audit_event(record, protector, topology),
            }
            yield ("," if count else "") + json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
            count += 1
        yield "]}"
    if counter is not None:
        counter.append(count)


def _uuid(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"
