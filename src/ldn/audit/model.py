"""Typed NEN 7513 audit records (SPEC §10): event, users, objects, source and trace id.

Every record is validated when it is built, so a call site that forgets a mandatory field fails
at once (in the tests of that call site) with `AuditEventError`, never later in the store. The
same classes parse the wire form that nodes POST to the audit service (`from_wire`), where a
failure is the client's fault (400).

A record names at most one patient (NEN 7513 inzage is per patient: log one event per patient
concerned). The patient's BSN is held here in plain text only in memory; the store keeps a keyed
hash and an encrypted value, and `repr()` never shows it.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ldn.audit.catalogue import Action, EventType, event_type
from ldn.core.identifiers import BSN, URA, IdentifierError, RoleCode

__all__ = [
    "AuditEvent",
    "AuditEventError",
    "AuditObject",
    "AuditSource",
    "AuditUser",
    "Outcome",
    "format_time",
]


class AuditEventError(ValueError):
    """An audit record is incomplete or malformed (a programming error at the call site)."""


class Outcome(StrEnum):
    SUCCESS = "success"
    REFUSED = "refused"
    ERROR = "error"


# Values that become columns of the hash chain are restricted to printable ASCII without quotes,
# backslashes or spaces: their JSON form is then the value itself, which keeps hashing cheap.
_TOKEN = re.compile(r"\A[\x21\x23-\x5b\x5d-\x7e]{1,128}\Z")
_SOURCE_ID = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")
_HEX32 = re.compile(r"\A[0-9a-f]{32}\Z")
_SOURCE_TYPES = frozenset({"national", "node", "network", "cli"})
_USER_SYSTEMS = frozenset({"uzi", "dezi", "system", "citizen"})
_MAX_TEXT = 2000


def format_time(moment: datetime) -> str:
    """Fixed-width UTC form `YYYY-MM-DDTHH:MM:SS.ffffffZ`: sorts as text in time order."""
    if moment.tzinfo is None:
        raise AuditEventError("times must be timezone-aware (UTC)")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat is several times faster than strftime; it ends in "+00:00" for UTC.
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise AuditEventError(f"invalid time {value!r}: expected ISO 8601 with a timezone") from None
    if parsed.tzinfo is None:
        raise AuditEventError(f"invalid time {value!r}: a timezone is required")
    return parsed.astimezone(UTC)


def _text(value: object, name: str, *, required: bool = False, limit: int = _MAX_TEXT) -> str | None:
    if value is None:
        if required:
            raise AuditEventError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise AuditEventError(f"{name} must be a string")
    if required and not value.strip():
        raise AuditEventError(f"{name} is required")
    if len(value) > limit:
        raise AuditEventError(f"{name} is longer than {limit} characters")
    if "\x00" in value:
        raise AuditEventError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise AuditEventError(f"{name} is not valid Unicode text") from None
    return value


def _token(value: object, name: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise AuditEventError(f"{name} must be 1-128 printable ASCII characters without spaces or quotes")
    return value


def _ura(value: object, name: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    try:
        return URA.parse(value).value
    except IdentifierError as exc:
        raise AuditEventError(f"{name}: {exc}") from None


def _role(value: object, name: str) -> str | None:
    if value is None:
        return None
    try:
        return RoleCode.parse(value).value
    except IdentifierError as exc:
        raise AuditEventError(f"{name}: {exc}") from None


def _tuple(value: object, name: str) -> tuple[Any, ...]:
    if type(value) is tuple:
        return value
    if type(value) is list:
        return tuple(value)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise AuditEventError(f"{name} must be a list")
    return tuple(value)


def _strings(value: object, name: str, *, limit: int = 200) -> tuple[str, ...]:
    items = _tuple(value, name)
    return tuple(str(_text(v, name, required=True, limit=limit)) for v in items)


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != () and v != []}


@dataclass(frozen=True, slots=True)
class AuditUser:
    """A user (person or system) taking part in the event; NEN 7513 'gebruiker'.

    `user_id` is a UZI/Dezi number (`id_system` uzi/dezi), a client or system id (`system`), or
    `self` for a citizen acting on their own data (`citizen`: the patient object names them).
    `responsible_*` names the professional under whose responsibility the user acts.
    """

    user_id: str
    id_system: str = "uzi"
    role: str | None = None
    name: str | None = None
    organization_ura: str | None = None
    is_initiator: bool = True
    responsible_id: str | None = None
    responsible_role: str | None = None
    responsible_name: str | None = None
    access_point: str | None = None

    def __post_init__(self) -> None:
        if self.id_system not in _USER_SYSTEMS:
            raise AuditEventError(f"user id_system must be one of {sorted(_USER_SYSTEMS)}")
        _token(self.user_id, "user.user_id")
        if self.id_system in {"uzi", "dezi"} and not (self.user_id.isascii() and self.user_id.isdigit()):
            raise AuditEventError("user.user_id of a UZI/Dezi user must be its number")
        if self.id_system == "citizen" and self.user_id != "self":
            # A citizen is identified by the patient object (stored protected), never by a plain BSN here.
            raise AuditEventError("a citizen user has user_id 'self'")
        _role(self.role, "user.role")
        _role(self.responsible_role, "user.responsible_role")
        _text(self.name, "user.name", limit=200)
        _text(self.responsible_name, "user.responsible_name", limit=200)
        _ura(self.organization_ura, "user.organization_ura", required=False)
        _token(self.responsible_id, "user.responsible_id", required=False)
        _text(self.access_point, "user.access_point", limit=500)
        if not isinstance(self.is_initiator, bool):
            raise AuditEventError("user.is_initiator must be a boolean")

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"user_id": self.user_id, "id_system": self.id_system, "is_initiator": self.is_initiator}
        for name in _USER_OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                wire[name] = value
        return wire

    @classmethod
    def from_wire(cls, data: object) -> AuditUser:
        if not isinstance(data, Mapping):
            raise AuditEventError("a user must be an object")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise AuditEventError(f"unknown user field(s): {', '.join(sorted(map(str, unknown)))}")
        if "user_id" not in data:
            raise AuditEventError("user.user_id is required")
        return cls(**dict(data))


@dataclass(frozen=True, slots=True, repr=False)
class AuditObject:
    """An object of the event; NEN 7513 'object' (a patient, a resource, a query, a token, ...).

    For a patient use `AuditObject.patient(bsn, ...)`: `id_type` is `BSN`, and the store keeps
    only a keyed hash and an encrypted value of the identifier.
    """

    id_type: str
    identifier: str
    object_class: str = "patient"
    data_categories: Sequence[str] = ()
    authorization_protocol: str | None = None
    consent_profile: str | None = None
    treatment_relationship: str | None = None
    query: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        _token(self.id_type, "object.id_type")
        _text(self.identifier, "object.identifier", required=True, limit=500)
        _token(self.object_class, "object.object_class")
        object.__setattr__(self, "data_categories", _strings(self.data_categories, "object.data_categories"))
        for name in ("authorization_protocol", "consent_profile", "treatment_relationship"):
            _text(getattr(self, name), f"object.{name}", limit=500)
        _text(self.query, "object.query", limit=_MAX_TEXT)
        _text(self.description, "object.description", limit=500)
        if self.id_type == "BSN":
            try:
                BSN.parse(self.identifier)
            except IdentifierError as exc:
                raise AuditEventError(f"object.identifier: {exc}") from None

    @property
    def is_patient(self) -> bool:
        return self.id_type == "BSN"

    @classmethod
    def patient(
        cls,
        bsn: str,
        *,
        data_categories: Iterable[str] = (),
        authorization_protocol: str | None = None,
        consent_profile: str | None = None,
        treatment_relationship: str | None = None,
        query: str | None = None,
        description: str | None = None,
    ) -> AuditObject:
        return cls(
            "BSN",
            bsn,
            "patient",
            tuple(data_categories),
            authorization_protocol,
            consent_profile,
            treatment_relationship,
            query,
            description,
        )

    def __repr__(self) -> str:  # never print a BSN by accident
        shown = BSN(self.identifier).masked() if self.is_patient else self.identifier
        return f"AuditObject({self.id_type}={shown}, class={self.object_class})"

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"id_type": self.id_type, "identifier": self.identifier}
        wire["object_class"] = self.object_class
        if self.data_categories:
            wire["data_categories"] = list(self.data_categories)
        for name in _OBJECT_OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                wire[name] = value
        return wire

    @classmethod
    def from_wire(cls, data: object) -> AuditObject:
        if not isinstance(data, Mapping):
            raise AuditEventError("an object must be an object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise AuditEventError(f"unknown object field(s): {', '.join(sorted(map(str, unknown)))}")
        for name in ("id_type", "identifier"):
            if name not in data:
                raise AuditEventError(f"object.{name} is required")
        values = dict(data)
        if "data_categories" in values:
            values["data_categories"] = _tuple(values["data_categories"], "object.data_categories")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class AuditSource:
    """The log source: a service or node (`source_id` = service name), its organisation and location."""

    source_id: str
    source_type: str
    organization_ura: str
    location: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source_id, str) or not _SOURCE_ID.match(self.source_id):
            raise AuditEventError("source.source_id must be a service name (lowercase letters, digits, . _ -)")
        if self.source_type not in _SOURCE_TYPES:
            raise AuditEventError(f"source.source_type must be one of {sorted(_SOURCE_TYPES)}")
        _ura(self.organization_ura, "source.organization_ura")
        _text(self.location, "source.location", limit=500)

    def to_wire(self) -> dict[str, Any]:
        return _compact(
            {
                "source_id": self.source_id,
                "source_type": self.source_type,
                "organization_ura": self.organization_ura,
                "location": self.location,
            }
        )

    @classmethod
    def from_wire(cls, data: object) -> AuditSource:
        if not isinstance(data, Mapping):
            raise AuditEventError("source must be an object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise AuditEventError(f"unknown source field(s): {', '.join(sorted(map(str, unknown)))}")
        for name in ("source_id", "source_type", "organization_ura"):
            if name not in data:
                raise AuditEventError(f"source.{name} is required")
        return cls(**dict(data))


_USER_OPTIONAL = (
    "role",
    "name",
    "organization_ura",
    "responsible_id",
    "responsible_role",
    "responsible_name",
    "access_point",
)
_OBJECT_OPTIONAL = ("authorization_protocol", "consent_profile", "treatment_relationship", "query", "description")


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    # Time-ordered (milliseconds, then 80 random bits): the unique index on event ids then grows
    # at its right edge instead of taking random inserts, which keeps appends fast.
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One NEN 7513 record: what happened (type, action, outcome, checks), when, by whom, to what.

    `source` and `trace_id` may be left out at the call site: the `AuditLogger` fills in its own
    source and the current W3C trace. `counterpart_ura` names the other organisation of an
    exchange (the holder for a requester, the requester for a holder).
    """

    type: EventType
    outcome: Outcome
    users: Sequence[AuditUser]
    objects: Sequence[AuditObject] = ()
    checks: Sequence[str] = ()
    action: Action | None = None
    outcome_detail: str | None = None
    counterpart_ura: str | None = None
    occurred_at: datetime = field(default_factory=_now)
    trace_id: str | None = None
    source: AuditSource | None = None
    event_id: str = field(default_factory=_new_id)

    def __post_init__(self) -> None:
        if not isinstance(self.type, EventType):
            raise AuditEventError("type must be an EventType from the catalogue (ldn.audit.EventTypes)")
        try:
            outcome = Outcome(self.outcome)
        except ValueError:
            raise AuditEventError("outcome must be success, refused or error") from None
        object.__setattr__(self, "outcome", outcome)
        if self.action is None:
            object.__setattr__(self, "action", self.type.action)
        else:
            try:
                object.__setattr__(self, "action", Action(self.action))
            except ValueError:
                raise AuditEventError("action must be C, R, U, D or E") from None
        users = _tuple(self.users, "users")
        if not users:
            raise AuditEventError("an audit event needs at least one user")
        if not all(isinstance(u, AuditUser) for u in users):
            raise AuditEventError("users must be AuditUser values")
        if not any(u.is_initiator for u in users):
            raise AuditEventError("one user must be the initiator")
        object.__setattr__(self, "users", users)
        objects = _tuple(self.objects, "objects")
        if not all(isinstance(o, AuditObject) for o in objects):
            raise AuditEventError("objects must be AuditObject values")
        object.__setattr__(self, "objects", objects)
        patients = [o for o in objects if o.is_patient]
        if len(patients) > 1:
            raise AuditEventError("an audit event names at most one patient; record one event per patient")
        if self.type.patient == "required" and not patients:
            raise AuditEventError(f"event {self.type} must name the patient (AuditObject.patient(bsn))")
        if self.type.patient == "none" and patients:
            raise AuditEventError(f"event {self.type} must not name a patient")
        object.__setattr__(self, "checks", _strings(self.checks, "checks"))
        _text(self.outcome_detail, "outcome_detail", limit=500)
        _ura(self.counterpart_ura, "counterpart_ura", required=False)
        if not isinstance(self.occurred_at, datetime) or self.occurred_at.tzinfo is None:
            raise AuditEventError("occurred_at must be a timezone-aware datetime")
        if self.trace_id is not None and (not isinstance(self.trace_id, str) or not _HEX32.match(self.trace_id)):
            raise AuditEventError("trace_id must be a W3C trace id (32 lowercase hex digits)")
        if self.source is not None and not isinstance(self.source, AuditSource):
            raise AuditEventError("source must be an AuditSource")
        if not isinstance(self.event_id, str) or not _HEX32.match(self.event_id):
            raise AuditEventError("event_id must be 32 lowercase hex digits")

    @property
    def patient(self) -> AuditObject | None:
        for obj in self.objects:
            if obj.is_patient:
                return obj
        return None

    @property
    def initiator(self) -> AuditUser:
        return next(u for u in self.users if u.is_initiator)

    def completed(self, source: AuditSource, trace_id: str) -> AuditEvent:
        """This event with the logger's source and the trace filled in (an explicit one is kept)."""
        if self.source is not None and self.source != source:
            raise AuditEventError(f"event source {self.source.source_id} is not this logger's {source.source_id}")
        if self.source is source and self.trace_id is not None:
            return self
        if not isinstance(source, AuditSource):
            raise AuditEventError("source must be an AuditSource")
        trace = self.trace_id or trace_id
        if not isinstance(trace, str) or not _HEX32.match(trace):
            raise AuditEventError("trace_id must be a W3C trace id (32 lowercase hex digits)")
        # Everything else was validated when the event was built: copy without validating again.
        done = copy.copy(self)
        object.__setattr__(done, "source", source)
        object.__setattr__(done, "trace_id", trace)
        return done

    def to_wire(self) -> dict[str, Any]:
        """The JSON form used on the wire (POST /audit/events) and in the local spool."""
        if self.source is None or self.trace_id is None:
            raise AuditEventError("source and trace_id must be set before an event leaves the process")
        return _compact(
            {
                "event_id": self.event_id,
                "type": self.type.code,
                "action": str(self.action),
                "outcome": self.outcome.value,
                "occurred_at": format_time(self.occurred_at),
                "trace_id": self.trace_id,
                "source": self.source.to_wire(),
                "users": [u.to_wire() for u in self.users],
                "objects": [o.to_wire() for o in self.objects],
                "checks": list(self.checks),
                "outcome_detail": self.outcome_detail,
                "counterpart_ura": self.counterpart_ura,
            }
        )

    @classmethod
    def from_wire(cls, data: object) -> AuditEvent:
        """Parse and validate the wire form (untrusted input): AuditEventError on any problem."""
        if not isinstance(data, Mapping):
            raise AuditEventError("an event must be a JSON object")
        allowed = {
            "event_id",
            "type",
            "action",
            "outcome",
            "occurred_at",
            "trace_id",
            "source",
            "users",
            "objects",
            "checks",
            "outcome_detail",
            "counterpart_ura",
        }
        unknown = set(data) - allowed
        if unknown:
            raise AuditEventError(f"unknown event field(s): {', '.join(sorted(map(str, unknown)))}")
        for name in ("event_id", "type", "outcome", "occurred_at", "trace_id", "source", "users"):
            if name not in data:
                raise AuditEventError(f"{name} is required")
        code = data["type"]
        try:
            kind = event_type(code) if isinstance(code, str) else None
        except KeyError:
            kind = None
        if kind is None:
            raise AuditEventError(f"type {code!r} is not in the audit event catalogue")
        occurred = data["occurred_at"]
        if not isinstance(occurred, str):
            raise AuditEventError("occurred_at must be an ISO 8601 string")
        users = [AuditUser.from_wire(u) for u in _tuple(data["users"], "users")]
        objects = [AuditObject.from_wire(o) for o in _tuple(data.get("objects", ()), "objects")]
        try:
            return cls(
                type=kind,
                outcome=data["outcome"],
                users=tuple(users),
                objects=tuple(objects),
                checks=_tuple(data.get("checks", ()), "checks"),
                action=data.get("action"),
                outcome_detail=data.get("outcome_detail"),
                counterpart_ura=data.get("counterpart_ura"),
                occurred_at=parse_time(occurred),
                trace_id=data["trace_id"],
                source=AuditSource.from_wire(data["source"]),
                event_id=data["event_id"],
            )
        except TypeError as exc:  # wrong value types surfacing from dataclass construction
            raise AuditEventError(str(exc)) from None
