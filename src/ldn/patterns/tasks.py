"""The Tasks of notified pull (SPEC §9, Twiin TA Notified Pull, LAS-SPEC-TASK-001), FHIR STU3.

Two Tasks per referral:
- the **workflow Task** at the sender (`intent=order`, SNOMED 3457005 "Patient referral"): what is
  referred, to whom, until when, and which reads and searches the receiver may run. Its id is the
  authorization base; the receiver reads it (`get-workflow-task`) and reports its status back
  (accepted, completed) by updating it;
- the **notification Task** the sender POSTs to the receiver's notification endpoint:
  `status=requested`, `intent=proposal`, `code` TaskCode `pull-notification`, `identifier` and
  `groupIdentifier` (urn:uuid), `requester.agent` and `requester.onBehalfOf` (sender URA), `owner`
  (receiver URA), `for` (the patient's BSN), `restriction.period.end`, `focus` = the workflow Task
  (relative to the sender's FHIR base), and `input`s typed from the TaskParameter naming system:
  `authorization-base` (string), `get-workflow-task` (boolean), `read-resource` and
  `search-resource` (strings, relative to the sender's FHIR base).

The shapes are STU3 because that is the version of the published TA (its `requester.agent` exists
only in STU3); LAS-SPEC-TASK-001 1.0.0 says "FHIR R4" while listing that STU3 element, which
`docs/patterns.md` reports as a finding on the agreement. `parse_notification` is the profile check:
anything outside it is a 400 OperationOutcome that names the element.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ldn.addressing.codes import LDN_SERVICE_TYPE_SYSTEM
from ldn.core.errors import BadRequest
from ldn.core.fhir import validate_resource
from ldn.core.identifiers import BSN, SYSTEM_BSN, SYSTEM_URA, SYSTEM_UZI, URA, IdentifierError
from ldn.patterns.queries import is_relative_query

__all__ = [
    "IDENTIFIER_SYSTEM",
    "STU3_JSON",
    "TASK_CODE_SYSTEM",
    "TASK_PARAMETER_SYSTEM",
    "Notification",
    "fhir_instant",
    "new_urn",
    "notification_task",
    "parse_instant",
    "parse_notification",
    "workflow_task",
]

TASK_CODE_SYSTEM = "http://fhir.nl/fhir/NamingSystem/TaskCode"
TASK_CODE = "pull-notification"
TASK_PARAMETER_SYSTEM = "http://fhir.nl/fhir/NamingSystem/TaskParameter"
IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"
SNOMED = "http://snomed.info/sct"
REFERRAL_CODE = ("3457005", "Patient referral")
STU3_JSON = "application/fhir+json; fhirVersion=3.0"
PARAMETERS = ("authorization-base", "get-workflow-task", "read-resource", "search-resource")
MAX_AUTHORIZATION_BASE = 1000
MAX_INPUTS = 200


def new_urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def fhir_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(value: Any, where: str) -> datetime:
    """A FHIR dateTime with a time and a zone, as an aware datetime (400 naming `where` otherwise)."""
    if not isinstance(value, str) or "T" not in value:
        raise BadRequest(f"{where} must be a dateTime with time and zone", code="value", expression=[where])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{where} is not a valid dateTime", code="value", expression=[where]) from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{where} must carry a time zone", code="value", expression=[where])
    return parsed.astimezone(UTC)


def _ura_ref(ura: str, name: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {"identifier": {"system": SYSTEM_URA, "value": ura}}
    if name:
        ref["display"] = name
    return ref


def _param(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": TASK_PARAMETER_SYSTEM, "code": code}]}, **value}


def _listed_inputs(queries: list[str]) -> list[dict[str, Any]]:
    out = []
    for query in queries:
        kind = "search-resource" if "?" in query else "read-resource"
        out.append(_param(kind, valueString=query))
    return out


def workflow_task(
    *,
    referral_id: str,
    group_identifier: str,
    status: str,
    bsn: str,
    patient_id: str,
    sender_ura: str,
    sender_name: str,
    professional_uzi: str,
    professional_name: str,
    receiver_ura: str,
    receiver_name: str,
    service_type: str,
    restriction_end: datetime,
    queries: list[str],
    authored: datetime,
    version: int = 1,
) -> dict[str, Any]:
    """The sender's workflow Task (STU3) for one referral."""
    return {
        "resourceType": "Task",
        "id": referral_id,
        "meta": {"versionId": str(version), "lastUpdated": fhir_instant(authored)},
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"urn:uuid:{referral_id}"}],
        "groupIdentifier": {"system": IDENTIFIER_SYSTEM, "value": group_identifier},
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": SNOMED, "code": REFERRAL_CODE[0], "display": REFERRAL_CODE[1]}]},
        "for": {"reference": f"Patient/{patient_id}", "identifier": {"system": SYSTEM_BSN, "value": bsn}},
        "authoredOn": fhir_instant(authored),
        "lastModified": fhir_instant(authored),
        "requester": {
            "agent": {"identifier": {"system": SYSTEM_UZI, "value": professional_uzi}, "display": professional_name},
            "onBehalfOf": _ura_ref(sender_ura, sender_name),
        },
        "owner": _ura_ref(receiver_ura, receiver_name),
        "reason": {"coding": [{"system": LDN_SERVICE_TYPE_SYSTEM, "code": service_type}]},
        "restriction": {"period": {"end": fhir_instant(restriction_end)}},
        "input": _listed_inputs(queries),
    }


def notification_task(
    *,
    identifier: str,
    group_identifier: str,
    authorization_base: str,
    bsn: str,
    sender_ura: str,
    sender_name: str,
    receiver_ura: str,
    receiver_name: str,
    service_type: str,
    restriction_end: datetime,
    queries: list[str],
    authored: datetime,
    status: str = "requested",
    modified: datetime | None = None,
) -> dict[str, Any]:
    """The notification Task (STU3) the sender POSTs to the receiver's notification endpoint."""
    return {
        "resourceType": "Task",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": identifier}],
        "groupIdentifier": {"system": IDENTIFIER_SYSTEM, "value": group_identifier},
        "status": status,
        "intent": "proposal",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": TASK_CODE}]},
        "focus": {"reference": f"Task/{authorization_base}"},
        "for": {"identifier": {"system": SYSTEM_BSN, "value": bsn}},
        "authoredOn": fhir_instant(authored),
        "lastModified": fhir_instant(modified or authored),
        "requester": {"agent": _ura_ref(sender_ura, sender_name), "onBehalfOf": _ura_ref(sender_ura, sender_name)},
        "owner": _ura_ref(receiver_ura, receiver_name),
        "reason": {"coding": [{"system": LDN_SERVICE_TYPE_SYSTEM, "code": service_type}]},
        "restriction": {"period": {"end": fhir_instant(restriction_end)}},
        "input": [
            _param("authorization-base", valueString=authorization_base),
            _param("get-workflow-task", valueBoolean=True),
            *_listed_inputs(queries),
        ],
    }


@dataclass(frozen=True)
class Notification:
    """A notification Task that passed the profile check."""

    identifier: str
    group_identifier: str
    status: str
    sender_ura: str
    owner_ura: str
    bsn: str
    restriction_end: datetime
    authorization_base: str
    get_workflow_task: bool
    queries: tuple[str, ...]
    workflow_task_id: str | None
    service_type: str | None
    last_modified: str | None
    task: dict[str, Any]

    def __repr__(self) -> str:
        return f"Notification(identifier={self.identifier}, sender={self.sender_ura}, owner={self.owner_ura})"


def _bad(message: str, where: str, details: str = "task-profile") -> BadRequest:
    return BadRequest(message, code="invalid", details_code=details, expression=[where])


def _urn(value: Any, where: str) -> str:
    if not isinstance(value, dict) or value.get("system") != IDENTIFIER_SYSTEM:
        raise _bad(f"{where} must have system {IDENTIFIER_SYSTEM}", f"{where}.system")
    text = value.get("value")
    if not isinstance(text, str) or not text.startswith("urn:uuid:"):
        raise _bad(f"{where} must be a urn:uuid", f"{where}.value")
    try:
        uuid.UUID(text.removeprefix("urn:uuid:"))
    except ValueError:
        raise _bad(f"{where} is not a valid urn:uuid", f"{where}.value") from None
    return text


def _ura_of(reference: Any, where: str) -> str:
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if not isinstance(identifier, dict) or identifier.get("system") != SYSTEM_URA:
        raise _bad(f"{where} must identify an organisation by URA ({SYSTEM_URA})", f"{where}.identifier")
    try:
        return URA.parse(identifier.get("value")).value
    except IdentifierError:
        raise _bad(f"{where} is not a valid URA", f"{where}.identifier.value") from None


def parse_notification(body: Any, *, allowed_statuses: tuple[str, ...] = ("requested",)) -> Notification:
    """Check a notification Task against the profile (400 naming the element when it is outside)."""
    task = validate_resource(body, "Task", version="STU3")
    if task.get("status") not in allowed_statuses:
        raise _bad(f"Task.status must be {' or '.join(allowed_statuses)}", "Task.status")
    if task.get("intent") != "proposal":
        raise _bad("Task.intent must be proposal", "Task.intent")
    codings = (task.get("code") or {}).get("coding") or []
    if not any(c.get("system") == TASK_CODE_SYSTEM and c.get("code") == TASK_CODE for c in codings):
        raise _bad(f"Task.code must be {TASK_CODE_SYSTEM}|{TASK_CODE}", "Task.code")
    identifiers = task.get("identifier") or []
    if len(identifiers) != 1:
        raise _bad("Task.identifier must hold exactly one urn:uuid identifier", "Task.identifier")
    identifier = _urn(identifiers[0], "Task.identifier")
    group = _urn(task.get("groupIdentifier"), "Task.groupIdentifier")
    requester = task.get("requester") or {}
    agent = _ura_of(requester.get("agent"), "Task.requester.agent")
    on_behalf = _ura_of(requester.get("onBehalfOf"), "Task.requester.onBehalfOf")
    if agent != on_behalf:
        raise _bad("Task.requester.agent and onBehalfOf must name the same (sending) organisation", "Task.requester")
    owner = _ura_of(task.get("owner"), "Task.owner")
    patient = (task.get("for") or {}).get("identifier")
    if not isinstance(patient, dict) or patient.get("system") != SYSTEM_BSN:
        raise _bad(f"Task.for must identify the patient by BSN ({SYSTEM_BSN})", "Task.for.identifier")
    try:
        bsn = BSN.parse(patient.get("value")).value
    except IdentifierError:
        raise _bad("Task.for.identifier is not a valid BSN", "Task.for.identifier.value") from None
    end = parse_instant(((task.get("restriction") or {}).get("period") or {}).get("end"), "Task.restriction.period.end")
    inputs = task.get("input") or []
    if len(inputs) > MAX_INPUTS:
        raise _bad(f"Task.input has more than {MAX_INPUTS} entries", "Task.input", "too-many-inputs")
    base: str | None = None
    get_workflow = False
    queries: list[str] = []
    for index, item in enumerate(inputs):
        where = f"Task.input[{index}]"
        codes = [
            c.get("code")
            for c in ((item.get("type") or {}).get("coding") or [])
            if c.get("system") == TASK_PARAMETER_SYSTEM
        ]
        if len(codes) != 1 or codes[0] not in PARAMETERS:
            raise _bad(
                f"{where}.type must be one of {', '.join(PARAMETERS)} ({TASK_PARAMETER_SYSTEM})", f"{where}.type"
            )
        code = codes[0]
        if code == "authorization-base":
            value = item.get("valueString")
            if base is not None or not isinstance(value, str) or not 1 <= len(value) <= MAX_AUTHORIZATION_BASE:
                raise _bad("exactly one authorization-base string (1-1000 characters) is required", where)
            base = value
        elif code == "get-workflow-task":
            if not isinstance(item.get("valueBoolean"), bool):
                raise _bad("get-workflow-task must be a boolean", f"{where}.valueBoolean")
            get_workflow = item["valueBoolean"]
        else:
            value = item.get("valueString")
            if value is None and code == "read-resource":
                value = (item.get("valueReference") or {}).get("reference")
            if not isinstance(value, str) or not is_relative_query(value):
                raise _bad(f"{code} must be a read or search relative to the sender's FHIR base", where)
            if (code == "search-resource") != ("?" in value):
                raise _bad(f"{code} holds a {'read' if '?' not in value else 'search'}", where)
            queries.append(value)
    if base is None:
        raise _bad("an authorization-base input is required", "Task.input")
    if not queries and not get_workflow:
        raise _bad("the notification lists no read, search or workflow Task to get", "Task.input")
    focus = (task.get("focus") or {}).get("reference")
    workflow_id = None
    if isinstance(focus, str) and focus.startswith("Task/") and is_relative_query(focus):
        workflow_id = focus.removeprefix("Task/")
    if get_workflow and workflow_id is None:
        raise _bad("get-workflow-task needs Task.focus = Task/<id> (the workflow Task)", "Task.focus")
    services = [
        c.get("code")
        for c in ((task.get("reason") or {}).get("coding") or [])
        if c.get("system") == LDN_SERVICE_TYPE_SYSTEM
    ]
    modified = task.get("lastModified")
    return Notification(
        identifier=identifier,
        group_identifier=group,
        status=str(task["status"]),
        sender_ura=on_behalf,
        owner_ura=owner,
        bsn=bsn,
        restriction_end=end,
        authorization_base=base,
        get_workflow_task=get_workflow,
        queries=tuple(queries),
        workflow_task_id=workflow_id,
        service_type=str(services[0])[:64] if services else None,
        last_modified=modified if isinstance(modified, str) else None,
        task=task,
    )
