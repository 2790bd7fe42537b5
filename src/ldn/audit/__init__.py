"""NEN 7513 audit logging (SPEC §10): tamper-evident, never lost, readable by the citizen.

How a service records an event (record before answering; when `record` raises
`AuditUnavailable`, a 503, the access is refused):

    from ldn.audit import AuditEvent, AuditObject, EventTypes, Outcome, audit_logger, user_from_caller

    audit = audit_logger(ctx)
    await audit.record(AuditEvent(
        type=EventTypes.FHIR_READ_HOLDER, outcome=Outcome.SUCCESS, users=[user_from_caller(caller)],
        objects=[AuditObject.patient(bsn, data_categories=["GGC002"])], counterpart_ura=caller.organization_ura,
    ))

Pieces: `catalogue` (numbered event types), `model` (typed records), `chain`/`store` (hash chain
per source, signed checkpoints), `verify`, `spool`/`sinks`/`logger` (never lost), `export`
(FHIR AuditEvent / JSON Lines), `retention` (purge to a signed anchor), `service` (HTTP API),
`cli` (`ldn audit ...`).
"""

from __future__ import annotations

from ldn.audit.catalogue import CATALOGUE, Action, EventType, EventTypes, event_type
from ldn.audit.context import audit_logger, source_for, system_user, user_from_caller
from ldn.audit.logger import AuditLogger, AuditUnavailable
from ldn.audit.model import AuditEvent, AuditEventError, AuditObject, AuditSource, AuditUser, Outcome

__all__ = [
    "CATALOGUE",
    "Action",
    "AuditEvent",
    "AuditEventError",
    "AuditLogger",
    "AuditObject",
    "AuditSource",
    "AuditUnavailable",
    "AuditUser",
    "EventType",
    "EventTypes",
    "Outcome",
    "audit_logger",
    "event_type",
    "source_for",
    "system_user",
    "user_from_caller",
]
