"""The hash chain: how an event becomes a stored record, and how a record's hash is computed.

A stored record is a flat set of columns (for queries) plus `detail`, the RFC 8785 (JCS)
canonical JSON of everything else. Its canonical form is the JCS serialisation of

    {"action", "detail", "event_code", "event_id", "occurred_at", "organization_ura", "outcome",
     "patient_hash", "prev_hash", "recorded_at", "seq", "source", "trace_id", "user_id"}

and `record_hash = SHA-256(canonical form)`; `prev_hash` is the previous record's hash in the
same source (64 zeros for the first), so the record commits to its whole history. Column values
are validated to printable ASCII without quotes or backslashes, so their JSON form is the value
itself and the canonical text can be assembled directly from the columns: verification needs no
JSON parsing. `detail` is produced with `json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`, byte-identical to `rfc8785.dumps` for the values it can hold (strings,
integers, booleans, null, lists, objects with ASCII keys; no floats): a property test checks
both claims against the `rfc8785` package.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import rfc8785

from ldn.audit.keys import BsnProtector
from ldn.audit.model import AuditEvent, AuditObject, AuditSource, AuditUser, format_time

__all__ = ["GENESIS_HASH", "StoredRecord", "canonical_json", "canonical_record", "protect_event", "record_hash"]

GENESIS_HASH = "0" * 64

# Columns in the order they are selected for verification and export (after `source`).
RECORD_COLUMNS = (
    "seq",
    "event_id",
    "event_code",
    "action",
    "outcome",
    "occurred_at",
    "recorded_at",
    "organization_ura",
    "user_id",
    "patient_hash",
    "trace_id",
    "prev_hash",
    "record_hash",
    "detail",
)


def canonical_json(value: Any) -> str:
    """JCS text of `value` for the value domain of audit details (see the module docstring)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def jcs(value: Any) -> bytes:
    """The `rfc8785` package's serialisation, for small signed payloads (checkpoints, anchors)."""
    return bytes(rfc8785.dumps(value))


def _q(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


def canonical_record(
    source: str,
    seq: int,
    event_id: str,
    event_code: str,
    action: str,
    outcome: str,
    occurred_at: str,
    recorded_at: str,
    organization_ura: str,
    user_id: str | None,
    patient_hash: str | None,
    trace_id: str,
    prev_hash: str,
    detail: str,
) -> bytes:
    """The canonical (JCS) bytes of a record, assembled from its columns (keys in JCS order)."""
    return (
        f'{{"action":"{action}","detail":{detail},"event_code":"{event_code}","event_id":"{event_id}",'
        f'"occurred_at":"{occurred_at}","organization_ura":"{organization_ura}","outcome":"{outcome}",'
        f'"patient_hash":{_q(patient_hash)},"prev_hash":"{prev_hash}","recorded_at":"{recorded_at}",'
        f'"seq":{seq},"source":"{source}","trace_id":"{trace_id}","user_id":{_q(user_id)}}}'
    ).encode()


def record_hash(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


class ProtectedEvent(NamedTuple):
    """An event in stored form, before it has a place in the chain (seq, prev_hash, recorded_at)."""

    source: str
    event_id: str
    event_code: str
    action: str
    outcome: str
    occurred_at: str
    organization_ura: str
    user_id: str | None
    patient_hash: str | None
    trace_id: str
    detail: str


def detail_data(event: AuditEvent, patient_hash: str | None, encrypted_bsn: str | None) -> dict[str, Any]:
    """The stored `detail` of an event as data: the reference for `detail_json`."""
    objects: list[dict[str, Any]] = []
    for obj in event.objects:
        wire = obj.to_wire()
        if obj.is_patient:
            del wire["identifier"]
            wire["bsn_hash"] = patient_hash
            wire["bsn_encrypted"] = encrypted_bsn
        objects.append(wire)
    assert event.source is not None
    detail: dict[str, Any] = {
        "users": [u.to_wire() for u in event.users],
        "objects": objects,
        "checks": list(event.checks),
        "source": event.source.to_wire(),
    }
    if event.outcome_detail is not None:
        detail["outcome_detail"] = event.outcome_detail
    if event.counterpart_ura is not None:
        detail["counterpart_ura"] = event.counterpart_ura
    return detail


# The JSON string encoder json.dumps(ensure_ascii=False) itself uses (C when available).
_s = json.encoder.encode_basestring  # type: ignore[attr-defined]
_SOURCE_JSON: dict[AuditSource, str] = {}


def _source_json(source: AuditSource) -> str:
    # A logger has one source: its JSON is made once.
    text = _SOURCE_JSON.get(source)
    if text is None:
        if len(_SOURCE_JSON) > 1000:
            _SOURCE_JSON.clear()
        text = _SOURCE_JSON[source] = canonical_json(source.to_wire())
    return text


def _user_json(user: AuditUser) -> str:
    # Keys in JCS (sorted) order; identifiers and codes are validated tokens, free text is escaped.
    parts = []
    if user.access_point is not None:
        parts.append('"access_point":' + _s(user.access_point))
    parts.append(f'"id_system":"{user.id_system}","is_initiator":{"true" if user.is_initiator else "false"}')
    if user.name is not None:
        parts.append('"name":' + _s(user.name))
    if user.organization_ura is not None:
        parts.append(f'"organization_ura":"{user.organization_ura}"')
    if user.responsible_id is not None:
        parts.append(f'"responsible_id":"{user.responsible_id}"')
    if user.responsible_name is not None:
        parts.append('"responsible_name":' + _s(user.responsible_name))
    if user.responsible_role is not None:
        parts.append(f'"responsible_role":"{user.responsible_role}"')
    if user.role is not None:
        parts.append(f'"role":"{user.role}"')
    parts.append(f'"user_id":"{user.user_id}"')
    return "{" + ",".join(parts) + "}"


def _object_json(obj: AuditObject, patient_hash: str | None, encrypted_bsn: str | None) -> str:
    parts = []
    if obj.authorization_protocol is not None:
        parts.append('"authorization_protocol":' + _s(obj.authorization_protocol))
    if obj.is_patient:
        parts.append(f'"bsn_encrypted":"{encrypted_bsn}","bsn_hash":"{patient_hash}"')
    if obj.consent_profile is not None:
        parts.append('"consent_profile":' + _s(obj.consent_profile))
    if obj.data_categories:
        parts.append('"data_categories":[' + ",".join(_s(c) for c in obj.data_categories) + "]")
    if obj.description is not None:
        parts.append('"description":' + _s(obj.description))
    parts.append(f'"id_type":"{obj.id_type}"')
    if not obj.is_patient:
        parts.append('"identifier":' + _s(obj.identifier))
    parts.append(f'"object_class":"{obj.object_class}"')
    if obj.query is not None:
        parts.append('"query":' + _s(obj.query))
    if obj.treatment_relationship is not None:
        parts.append('"treatment_relationship":' + _s(obj.treatment_relationship))
    return "{" + ",".join(parts) + "}"


def detail_json(event: AuditEvent, patient_hash: str | None, encrypted_bsn: str | None) -> str:
    """`canonical_json(detail_data(...))`, written out directly: this runs for every access in the
    network, and generic sorting and encoding were its largest cost. A property test keeps the
    two identical (and equal to the rfc8785 package's output)."""
    assert event.source is not None
    parts = ['"checks":[' + ",".join(_s(c) for c in event.checks) + "]"]
    if event.counterpart_ura is not None:
        parts.append(f'"counterpart_ura":"{event.counterpart_ura}"')
    parts.append('"objects":[' + ",".join(_object_json(o, patient_hash, encrypted_bsn) for o in event.objects) + "]")
    if event.outcome_detail is not None:
        parts.append('"outcome_detail":' + _s(event.outcome_detail))
    parts.append('"source":' + _source_json(event.source))
    parts.append('"users":[' + ",".join(_user_json(u) for u in event.users) + "]")
    return "{" + ",".join(parts) + "}"


def protect_event(event: AuditEvent, protector: BsnProtector) -> ProtectedEvent:
    """Stored form of a completed event: the BSN becomes a keyed hash plus an encrypted value."""
    source, trace_id = event.source, event.trace_id
    if source is None or trace_id is None:
        raise ValueError("event must be completed (source and trace id) before it is stored")
    patient_hash = encrypted = None
    for obj in event.objects:
        if obj.is_patient:
            patient_hash = protector.lookup_hash(obj.identifier)
            encrypted = protector.encrypt(obj.identifier)
    initiator = event.users[0] if event.users[0].is_initiator else event.initiator
    return ProtectedEvent(
        source.source_id,
        event.event_id,
        event.type.code,
        event.action.value,  # type: ignore[union-attr]
        event.outcome.value,
        format_time(event.occurred_at),
        source.organization_ura,
        initiator.user_id,
        patient_hash,
        trace_id,
        detail_json(event, patient_hash, encrypted),
    )


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as read back from the store."""

    source: str
    seq: int
    event_id: str
    event_code: str
    action: str
    outcome: str
    occurred_at: str
    recorded_at: str
    organization_ura: str
    user_id: str | None
    patient_hash: str | None
    trace_id: str
    prev_hash: str
    record_hash: str
    detail: str

    @classmethod
    def from_row(cls, source: str, row: Any) -> StoredRecord:
        return cls(source, *row)

    def detail_data(self) -> dict[str, Any]:
        data = json.loads(self.detail)
        return data if isinstance(data, dict) else {}

    def canonical(self) -> bytes:
        return canonical_record(
            self.source,
            self.seq,
            self.event_id,
            self.event_code,
            self.action,
            self.outcome,
            self.occurred_at,
            self.recorded_at,
            self.organization_ura,
            self.user_id,
            self.patient_hash,
            self.trace_id,
            self.prev_hash,
            self.detail,
        )

    def hash_ok(self) -> bool:
        return record_hash(self.canonical()) == self.record_hash

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("source", *RECORD_COLUMNS)}


def record_mapping(record: Mapping[str, Any]) -> dict[str, Any]:
    """The JCS object a record's canonical form serialises (for tests and documentation)."""
    data = {k: record[k] for k in RECORD_COLUMNS if k not in {"record_hash", "detail"}}
    data["source"] = record["source"]
    data["detail"] = json.loads(record["detail"])
    return data
