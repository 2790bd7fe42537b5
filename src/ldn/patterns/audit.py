"""NEN 7513 events of the communication patterns, both sides, through the one `ldn.audit` interface.

Holder side: `record_holder_access` is the body of the node FHIR API's `audit_hook`: one event per
request that reached the authorization decision (`fhir.read.holder` / `fhir.search.holder`), with
the checks the decision made. Requester side: `record_requester` for the professional's own node
(`fhir.search.requester` per holder asked, `referral.pull`, `notification.sent`, ...). Both record
before the answer leaves; the W3C trace id is the current request's, which `ctx.http.client()`
carries to the other side, so the two halves of an exchange share it.

Queries are stored with every BSN masked (`redact_bsns`): the patient is named only by the patient
object, which the audit store keeps as a keyed hash plus an encrypted value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request

from ldn.audit import AuditEvent, AuditObject, AuditUser, EventType, EventTypes, Outcome, audit_logger
from ldn.audit.context import user_from_caller
from ldn.auth.resource_server import Caller
from ldn.core.identifiers import BSN, URA, redact_bsns
from ldn.core.service import ServiceContext
from ldn.patterns.identity import Professional

__all__ = ["professional_user", "record_holder_access", "record_requester", "requester_event"]

MAX_QUERY = 2000
MAX_CHECKS = 24


def _query(text: str | None) -> str | None:
    if not text:
        return None
    return redact_bsns(text)[:MAX_QUERY]


def professional_user(professional: Professional, *, access_point: str | None = None) -> AuditUser:
    """The initiating user of a requester-side event: the professional, by Dezi number and role."""
    return AuditUser(
        professional.uzi,
        id_system="dezi",
        role=professional.role,
        name=professional.name[:200] or None,
        organization_ura=professional.organization_ura,
        access_point=access_point,
    )


def _checks(request: Request, caller: Caller, status: int) -> list[str]:
    checks = ["token:introspected", "patient-binding"]
    decision: Any = getattr(request.state, "authz_decision", None)
    if decision is not None:
        checks.append(f"authz:{'permit' if decision.allow else 'deny'}")
        if decision.policy:
            checks.append(f"policy:{decision.policy}")
        checks.extend(str(r)[:200] for r in decision.rules_matched)
        if not decision.allow:
            checks.extend(f"deny:{str(r)[:190]}" for r in decision.reasons)
        checks.extend(f"flag:{f}"[:200] for f in decision.flags)
    if caller.authorization_base:
        checks.append("referral:authorization-base")
    checks.append(f"http:{status}")
    return checks[:MAX_CHECKS]


async def record_holder_access(
    request: Request,
    caller: Caller,
    resource_type: str,
    patient_bsn: str | None,
    *,
    interaction: str,
    outcome: str,
    status: int,
    resource_ids: Sequence[str] = (),
    categories: Iterable[str] = (),
    query: str | None = None,
) -> None:
    """The holder's event for one FHIR request (read, search or operation) that reached the decision.

    A request about a patient this node does not know (no BSN) returns nothing about anyone and
    is not a patient-data access; it is left to the access log.
    """
    if patient_bsn is None or not BSN.is_valid(patient_bsn):
        return
    ctx: ServiceContext = request.app.state.ctx
    kind = EventTypes.FHIR_READ_HOLDER if interaction == "read" else EventTypes.FHIR_SEARCH_HOLDER
    described = f"{resource_type}/{resource_ids[0]}" if interaction == "read" and resource_ids else None
    text = query if query else (described or resource_type)
    reason = None
    if outcome != "success":
        decision: Any = getattr(request.state, "authz_decision", None)
        reasons = [r for r in (decision.reasons if decision is not None else []) if not r.startswith("allowed-by:")]
        reason = f"refused ({status}): {', '.join(reasons[:5]) or 'token rules'}"
    patient = AuditObject.patient(
        patient_bsn,
        data_categories=sorted(set(categories)),
        authorization_protocol="notified-pull" if caller.authorization_base else "pull",
        query=_query(f"{resource_type}?{text}" if query else text),
        description=f"{len(resource_ids)} resource(s) returned" if outcome == "success" else None,
    )
    await audit_logger(ctx).record(
        AuditEvent(
            type=kind,
            outcome=Outcome.SUCCESS if outcome == "success" else Outcome.REFUSED,
            users=[user_from_caller(caller)],
            objects=[patient],
            checks=_checks(request, caller, status),
            outcome_detail=redact_bsns(reason)[:500] if reason else None,
            counterpart_ura=caller.organization_ura if URA.is_valid(caller.organization_ura) else None,
        )
    )


def requester_event(
    ctx: ServiceContext,
    event: EventType,
    professional: Professional,
    bsn: str,
    *,
    outcome: Outcome,
    counterpart_ura: str | None,
    categories: Iterable[str] = (),
    queries: Sequence[str] = (),
    checks: Sequence[str] = (),
    detail: str | None = None,
    protocol: str | None = None,
) -> AuditEvent:
    """One requester-side event of a professional's action (record it with `record_requester`)."""
    query = "; ".join(queries) if queries else None
    return AuditEvent(
        type=event,
        outcome=outcome,
        users=[professional_user(professional, access_point=ctx.base_url)],
        objects=[
            AuditObject.patient(
                bsn, data_categories=sorted(set(categories)), authorization_protocol=protocol, query=_query(query)
            )
        ],
        checks=[str(c)[:200] for c in checks][:MAX_CHECKS],
        outcome_detail=redact_bsns(detail)[:500] if detail else None,
        counterpart_ura=counterpart_ura if counterpart_ura and URA.is_valid(counterpart_ura) else None,
    )


async def record_requester(ctx: ServiceContext, *events: AuditEvent) -> None:
    """Record requester-side events in one go (raises AuditUnavailable: the action is then refused)."""
    await audit_logger(ctx).record(*events)
