"""Verwijzen: notified pull between two nodes (SPEC §9, LAS-TA-NOTIF-001, LAS-TA-AUTHZ-002).

Sender (`ReferralService.create`): checks in its address book that the receiver offers the requested
HealthcareService and has a notification endpoint (through its `verwijzing-ontvangen` service) and
a token endpoint; builds the list of reads and searches from what it holds about the patient;
stores the workflow Task (status `requested`; its id is the authorization base); gets a token at
the receiver's authorization server (`notification:write`) and POSTs the notification Task. The
workflow Task answers the receiver's reads and takes its status updates (`accepted`, `completed`,
`rejected`) from the owner only. `cancel` sets it `cancelled` and cancels the notification at the
receiver by conditional update (`PUT <endpoint>?identifier=...`).

Receiver (`receive`, `conditional_update`): checks the notification against the profile, that it
is the owner, that the sender is the organisation whose token posted it and that the restriction
period is open and not longer than the agreed maximum; stores it once per (sender, identifier)
(the same identifier again is 200 and the same referral; a newer notification updates it). The
inbox (`inbox`, `accept`, `complete`, `reject`, `pull`) lets the receiver's professionals act on
it: a pull gets a token at the sender carrying the authorization base and the patient, reads the
workflow Task and runs exactly the listed queries, nothing else.

The sender's enforcement point builds the policy's `context.referral` from the workflow Task the
token's authorization base names (`referral_context`), so a pull outside the list, after the
restriction end or after cancellation is refused by the notified-pull policy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy.exc import IntegrityError

from ldn.addressing.replica import AddressNotFound, ReplicaLookups
from ldn.audit import AuditEvent, EventTypes, Outcome, audit_logger
from ldn.audit.context import user_from_caller
from ldn.audit.model import AuditObject
from ldn.auth.client import AccessToken, TokenRequestError
from ldn.auth.resource_server import Caller
from ldn.core.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceError, Unprocessable
from ldn.core.fhir import validate_resource
from ldn.core.identifiers import SYSTEM_BSN, URA, IdentifierError, redact_bsns
from ldn.core.service import ServiceContext
from ldn.node.fhir_api import node_fhir_service
from ldn.patterns import store
from ldn.patterns.audit import record_requester, requester_event
from ldn.patterns.client import NodeClient, client_for
from ldn.patterns.identity import Professional
from ldn.patterns.queries import check_categories, referral_searches
from ldn.patterns.raadplegen import (
    HolderResult,
    InvalidAnswer,
    QueryService,
    SearchResult,
    aggregate_status,
    fetch_search,
    outcome_reason,
)
from ldn.patterns.settings import PatternsSettings
from ldn.patterns.store import InboxRow, OutboxRow
from ldn.patterns.tasks import (
    IDENTIFIER_SYSTEM,
    STU3_JSON,
    Notification,
    fhir_instant,
    new_urn,
    notification_task,
    parse_notification,
    workflow_task,
)

__all__ = ["ReferralService", "referral_context", "referral_service"]

logger = logging.getLogger("ldn.patterns.verwijzen")

RECEIVING_SERVICE = "verwijzing-ontvangen"
# Owner's status updates of a workflow Task: from -> allowed next statuses.
TRANSITIONS: dict[str, frozenset[str]] = {
    "requested": frozenset({"accepted", "rejected", "in-progress", "completed"}),
    "accepted": frozenset({"in-progress", "completed", "rejected"}),
    "in-progress": frozenset({"completed", "failed"}),
}
INACTIVE = frozenset({"cancelled", "rejected", "failed", "entered-in-error"})
# Elements the owner may change when updating the workflow Task (everything else must stay).
_MUTABLE = frozenset({"status", "lastModified", "meta", "businessStatus", "statusReason", "text"})
CLOCK_SKEW = timedelta(seconds=60)


class _AddressProblem(AddressNotFound):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ReceiverAddress:
    notification_endpoint: str
    token_endpoint: str
    name: str


def _now() -> datetime:
    return datetime.now(UTC)


def _bsn_of(task: dict[str, Any]) -> str:
    return str(((task.get("for") or {}).get("identifier") or {}).get("value", ""))


def _read_json(response: httpx.Response, limit: int) -> dict[str, Any]:
    if len(response.content) > limit:
        raise InvalidAnswer(f"answer larger than {limit} bytes")
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise InvalidAnswer("answer is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidAnswer("answer is not a JSON object")
    return body


class ReferralService:
    """Both sides of notified pull for one node."""

    def __init__(self, ctx: ServiceContext, ura: str, settings: PatternsSettings | None = None) -> None:
        self.ctx = ctx
        self.ura = ura
        self.settings = settings or PatternsSettings()
        self.client: NodeClient = client_for(ctx, ura)

    def _name(self, ura: str) -> str:
        try:
            return self.ctx.topology.organization(ura).name
        except KeyError:
            return ura

    # =================================================================== sender

    async def _receiver(self, receiver: str, service_type: str) -> ReceiverAddress:
        async def lookup(lookups: ReplicaLookups) -> ReceiverAddress:
            org = await lookups.organization(receiver)
            if org is None or not org.active:
                raise _AddressProblem(
                    f"URA {receiver} is not an active care provider in the address book", "unknown-receiver"
                )
            offered = await lookups.services(service_type, ura=receiver)
            if not offered:
                raise _AddressProblem(f"{receiver} offers no service {service_type!r}", "service-not-offered")
            receiving = await lookups.services(RECEIVING_SERVICE, ura=receiver)
            endpoints = [e for s in [*receiving, *offered] for e in s.endpoints if e.serves("pull-notification")]
            if not endpoints:
                raise _AddressProblem(f"{receiver} publishes no notification endpoint", "no-notification-endpoint")
            try:
                token = await lookups.token_endpoint(receiver)
            except AddressNotFound:
                raise _AddressProblem(f"{receiver} publishes no token endpoint", "no-token-endpoint") from None
            return ReceiverAddress(endpoints[0].address, token, org.name or receiver)

        try:
            return await self.client.address(lookup)
        except _AddressProblem as exc:
            raise Unprocessable(str(exc), code="not-found", details_code=exc.code) from None

    async def create(
        self,
        professional: Professional,
        *,
        receiver: str,
        bsn: str,
        service_type: str,
        categories: list[str] | None = None,
        restriction_days: int | None = None,
    ) -> OutboxRow:
        """Create the workflow Task and notify the receiver; the stored referral (delivered)."""
        try:
            receiver = URA.parse(receiver).value
        except IdentifierError:
            raise BadRequest("'to' must be a URA (8 digits)", code="value", details_code="invalid-receiver") from None
        if receiver == self.ura:
            raise BadRequest(
                "a referral goes to another organisation", code="business-rule", details_code="self-referral"
            )
        days = (
            restriction_days
            if restriction_days is not None
            else min(self.settings.default_restriction_days, self.settings.restriction_period)
        )
        if not 1 <= days <= self.settings.restriction_period:
            raise BadRequest(
                f"the restriction period is at most {self.settings.restriction_period} days (LAS-TA-NOTIF-001)",
                code="business-rule",
                details_code="restriction-too-long",
            )
        try:
            wanted = None if categories is None else set(check_categories(categories))
        except ValueError as exc:
            raise BadRequest(str(exc), code="value", details_code="unknown-data-category") from None
        address = await self._receiver(receiver, service_type)
        fhir = node_fhir_service(self.ctx, self.ura)
        patient = await fhir.resolve_patient(("identifier", f"{SYSTEM_BSN}|{bsn}"))
        record = await fhir.patient_record(patient)
        patients = [r for r in record if r.resource_type == "Patient"]
        if not patients:
            raise Unprocessable(
                "this organisation holds no data about the patient", code="not-found", details_code="patient-unknown"
            )
        held = {r.category for r in record}
        queries = referral_searches(patients[0].resource_id, held if wanted is None else held & wanted)
        now = _now()
        referral_id = str(uuid.uuid4())
        identifier, group = new_urn(), new_urn()
        end = now + timedelta(days=days)
        sender_name = self._name(self.ura)
        task = workflow_task(
            referral_id=referral_id,
            group_identifier=group,
            status="requested",
            bsn=bsn,
            patient_id=patients[0].resource_id,
            sender_ura=self.ura,
            sender_name=sender_name,
            professional_uzi=professional.uzi,
            professional_name=professional.name,
            receiver_ura=receiver,
            receiver_name=address.name,
            service_type=service_type,
            restriction_end=end,
            queries=queries,
            authored=now,
        )
        notification = notification_task(
            identifier=identifier,
            group_identifier=group,
            authorization_base=referral_id,
            bsn=bsn,
            sender_ura=self.ura,
            sender_name=sender_name,
            receiver_ura=receiver,
            receiver_name=address.name,
            service_type=service_type,
            restriction_end=end,
            queries=queries,
            authored=now,
        )
        await self.ctx.database.run(
            store.insert_outgoing,
            id=referral_id,
            sender_ura=self.ura,
            receiver_ura=receiver,
            status="requested",
            restriction_end=end,
            service_type=service_type,
            notification_identifier=identifier,
            group_identifier=group,
            professional_id=professional.uzi,
            allowed_queries=queries,
            get_workflow_task=True,
            task=task,
            notification=notification,
            delivery="pending",
            delivery_error=None,
            version=1,
            created_at=now,
            updated_at=now,
        )
        error = await self._post_notification(professional, address, notification)
        event = requester_event(
            self.ctx,
            EventTypes.NOTIFICATION_SENT,
            professional,
            bsn,
            outcome=Outcome.SUCCESS if error is None else Outcome.ERROR,
            counterpart_ura=receiver,
            categories=sorted(held if wanted is None else held & wanted),
            queries=queries,
            checks=["professional:dezi", "addressing:notification-endpoint", "token:notification:write"],
            detail=f"referral {referral_id} ({service_type})" + (f"; {error}" if error else ""),
            protocol="notified-pull",
        )
        if error is not None:
            task["status"] = "failed"
            await self.ctx.database.run(
                store.update_outgoing,
                self.ura,
                referral_id,
                status="failed",
                task=task,
                delivery="failed",
                delivery_error=error[:1000],
                updated_at=_now(),
            )
            await record_requester(self.ctx, event)
            raise ServiceError(
                f"the receiver did not accept the notification: {error}"[:500],
                status=502,
                code="transient",
                details_code="notification-failed",
            )
        await self.ctx.database.run(
            store.update_outgoing, self.ura, referral_id, delivery="delivered", updated_at=_now()
        )
        await record_requester(self.ctx, event)
        row = await self.ctx.database.run(store.get_outgoing, self.ura, referral_id, readonly=True)
        assert row is not None
        return row

    async def _post_notification(
        self, professional: Professional, address: ReceiverAddress, notification: dict[str, Any]
    ) -> str | None:
        """POST the notification; None when the receiver accepted it (201 or 200), else why not."""
        try:
            token = await self.client.token(address.token_endpoint, "notification:write", professional=professional)
            url = address.notification_endpoint
            response = await self.ctx.http.client().post(
                url,
                content=json.dumps(notification).encode("utf-8"),
                headers={**token.headers("POST", url), "Content-Type": STU3_JSON, "Accept": STU3_JSON},
            )
        except TokenRequestError as exc:
            return f"token refused by the receiver ({exc.status} {exc.error})"
        except httpx.HTTPError as exc:
            return f"receiver unreachable ({exc.__class__.__name__})"
        if response.status_code in (200, 201):
            return None
        return f"receiver answered {response.status_code} ({outcome_reason(response)})"

    async def get_outgoing(self, referral_id: str) -> OutboxRow:
        row = await self.ctx.database.run(store.get_outgoing, self.ura, referral_id, readonly=True)
        if row is None:
            raise NotFound("no referral with this id was sent by this organisation")
        return row

    async def list_outgoing(self) -> list[OutboxRow]:
        return await self.ctx.database.run(store.list_outgoing, self.ura, readonly=True)

    async def cancel(self, professional: Professional, referral_id: str) -> OutboxRow:
        """Cancel a referral: the workflow Task first (pulls stop at once), then the notification."""
        now = _now()

        def work(session: Any) -> OutboxRow:
            row = store.get_outgoing(session, self.ura, referral_id, for_update=True)
            if row is None:
                raise NotFound("no referral with this id was sent by this organisation")
            if row.status == "cancelled":
                return row
            if row.status in ("completed", "failed", "rejected"):
                raise Conflict(f"a {row.status} referral cannot be cancelled", details_code="referral-not-active")
            task = dict(row.task)
            task["status"] = "cancelled"
            task["lastModified"] = fhir_instant(now)
            task["meta"] = {"versionId": str(row.version + 1), "lastUpdated": fhir_instant(now)}
            store.update_outgoing(
                session, self.ura, referral_id, status="cancelled", task=task, version=row.version + 1, updated_at=now
            )
            updated = store.get_outgoing(session, self.ura, referral_id)
            assert updated is not None
            return updated

        row = await self.ctx.database.run(work)
        notification = dict(row.notification)
        notification["status"] = "cancelled"
        notification["lastModified"] = fhir_instant(now)
        error: str | None = None
        try:
            address = await self._receiver(row.receiver_ura, row.service_type)
            token = await self.client.token(address.token_endpoint, "notification:write", professional=professional)
            condition = quote(f"{IDENTIFIER_SYSTEM}|{row.notification_identifier}", safe=":|")
            url = f"{address.notification_endpoint}?identifier={condition}"
            response = await self.ctx.http.client().put(
                url,
                content=json.dumps(notification).encode("utf-8"),
                headers={**token.headers("PUT", url), "Content-Type": STU3_JSON, "Accept": STU3_JSON},
            )
            if response.status_code != 200:
                error = f"receiver answered {response.status_code} ({outcome_reason(response)})"
        except ServiceError as exc:
            error = exc.diagnostics
        except TokenRequestError as exc:
            error = f"token refused by the receiver ({exc.status} {exc.error})"
        except httpx.HTTPError as exc:
            error = f"receiver unreachable ({exc.__class__.__name__})"
        await self.ctx.database.run(
            store.update_outgoing,
            self.ura,
            referral_id,
            notification=notification,
            delivery="cancel-failed" if error else "delivered",
            delivery_error=error,
            updated_at=_now(),
        )
        await record_requester(
            self.ctx,
            requester_event(
                self.ctx,
                EventTypes.REFERRAL_CANCELLED,
                professional,
                _bsn_of(row.task),
                outcome=Outcome.SUCCESS,
                counterpart_ura=row.receiver_ura,
                checks=["professional:dezi", "workflow-task:cancelled"],
                detail=f"referral {referral_id} cancelled" + (f"; receiver not told: {error}" if error else ""),
                protocol="notified-pull",
            ),
        )
        return await self.get_outgoing(referral_id)

    async def read_workflow_task(self, referral_id: str) -> OutboxRow:
        row = await self.ctx.database.run(store.get_outgoing, self.ura, referral_id, readonly=True)
        if row is None:
            raise NotFound("Task is not known here")
        return row

    async def update_workflow_task(
        self, caller: Caller, referral_id: str, body: Any, if_match: str | None
    ) -> OutboxRow:
        """The owner reports progress: only `status` (and bookkeeping) may change, along TRANSITIONS."""
        if caller.authorization_base != referral_id:
            raise Forbidden(
                "the token's authorization base does not name this Task", details_code="authorization-base-mismatch"
            )
        task_in = validate_resource(body, "Task", version="STU3")
        if task_in.get("id") != referral_id:
            raise BadRequest("Task.id must equal the id in the URL", expression=["Task.id"])
        new_status = str(task_in.get("status"))
        now = _now()

        def work(session: Any) -> OutboxRow:
            row = store.get_outgoing(session, self.ura, referral_id, for_update=True)
            if row is None:
                raise NotFound("Task is not known here")
            if caller.organization_ura != row.receiver_ura:
                raise Forbidden("only the owner of the referral may update it", details_code="not-referral-owner")
            if if_match is not None and if_match.strip() not in (f'W/"{row.version}"', f'"{row.version}"'):
                raise ServiceError("If-Match does not match the current version", status=412, code="conflict")
            changed = {
                k for k in set(row.task) | set(task_in) if k not in _MUTABLE and row.task.get(k) != task_in.get(k)
            }
            if changed:
                raise Unprocessable(
                    f"only the status may change; also changed: {', '.join(sorted(changed))[:200]}",
                    code="business-rule",
                    details_code="only-status-may-change",
                )
            if new_status == row.status:
                return row
            if row.status in INACTIVE or row.status == "completed":
                raise Conflict(f"the referral is {row.status}", details_code="referral-not-active")
            if new_status not in TRANSITIONS.get(row.status, frozenset()):
                raise Unprocessable(
                    f"status {row.status} cannot become {new_status}",
                    code="business-rule",
                    details_code="invalid-transition",
                )
            task = dict(row.task)
            task["status"] = new_status
            task["lastModified"] = fhir_instant(now)
            task["meta"] = {"versionId": str(row.version + 1), "lastUpdated": fhir_instant(now)}
            store.update_outgoing(
                session, self.ura, referral_id, status=new_status, task=task, version=row.version + 1, updated_at=now
            )
            updated = store.get_outgoing(session, self.ura, referral_id)
            assert updated is not None
            return updated

        return await self.ctx.database.run(work)

    # =================================================================== receiver

    def _check_business(self, caller: Caller, notification: Notification) -> None:
        if notification.owner_ura != self.ura:
            raise Unprocessable(
                f"the notification is for organisation {notification.owner_ura}, not for this one",
                code="business-rule",
                details_code="unknown-receiver",
            )
        if notification.sender_ura != caller.organization_ura:
            raise Forbidden(
                "the notification names another sender than the organisation that posted it",
                details_code="sender-mismatch",
            )
        now = _now()
        if notification.status != "cancelled" and notification.restriction_end <= now:
            raise Unprocessable(
                "the restriction period has already ended", code="business-rule", details_code="restriction-expired"
            )
        if notification.restriction_end > now + timedelta(days=self.settings.restriction_period) + CLOCK_SKEW:
            raise Unprocessable(
                f"the restriction period is longer than {self.settings.restriction_period} days (LAS-TA-NOTIF-001)",
                code="business-rule",
                details_code="restriction-too-long",
            )

    async def _audit_received(self, caller: Caller, notification: Notification, outcome: Outcome, detail: str) -> None:
        await audit_logger(self.ctx).record(
            AuditEvent(
                type=EventTypes.NOTIFICATION_RECEIVED,
                outcome=outcome,
                users=[user_from_caller(caller)],
                objects=[AuditObject.patient(notification.bsn, authorization_protocol="notified-pull")],
                checks=["token:notification:write", "task-profile", "owner", "sender", "restriction-period"],
                outcome_detail=redact_bsns(detail)[:500],
                counterpart_ura=notification.sender_ura,
            )
        )

    async def receive(self, caller: Caller, body: Any) -> tuple[InboxRow, bool]:
        """A notification POSTed to this node: (the referral, whether it is new)."""
        notification = parse_notification(body)
        try:
            self._check_business(caller, notification)
        except ServiceError as exc:
            await self._audit_received(caller, notification, Outcome.REFUSED, f"refused: {exc.details_code}")
            raise
        row, created, changed = await self._store_notification(notification)
        detail = "new referral" if created else ("referral updated" if changed else "repeated notification")
        await self._audit_received(caller, notification, Outcome.SUCCESS, f"{detail} {row.id}")
        return row, created

    async def _store_notification(self, notification: Notification) -> tuple[InboxRow, bool, bool]:
        now = _now()

        def work(session: Any) -> tuple[InboxRow, bool, bool]:
            existing = store.find_incoming(
                session, self.ura, notification.sender_ura, notification.identifier, for_update=True
            )
            if existing is None:
                referral_id = str(uuid.uuid4())
                store.insert_incoming(
                    session,
                    id=referral_id,
                    receiver_ura=self.ura,
                    sender_ura=notification.sender_ura,
                    notification_identifier=notification.identifier,
                    group_identifier=notification.group_identifier,
                    authorization_base=notification.authorization_base,
                    status=notification.status,
                    restriction_end=notification.restriction_end,
                    service_type=notification.service_type,
                    task=notification.task,
                    last_modified=notification.last_modified,
                    version=1,
                    received_at=now,
                    updated_at=now,
                    pulled_at=None,
                    pulled_by=None,
                    pull_result=None,
                )
                row = store.get_incoming(session, self.ura, referral_id)
                assert row is not None
                return row, True, False
            if existing.task == notification.task or existing.status == "cancelled":
                return existing, False, False  # a replay, or news about a referral that has ended
            if (
                existing.last_modified
                and notification.last_modified
                and notification.last_modified < existing.last_modified
            ):
                return existing, False, False  # an older notification arriving late
            values: dict[str, Any] = {
                "task": notification.task,
                "last_modified": notification.last_modified,
                "authorization_base": notification.authorization_base,
                "restriction_end": notification.restriction_end,
                "service_type": notification.service_type,
                "version": existing.version + 1,
                "updated_at": now,
            }
            if notification.status == "cancelled":
                values["status"] = "cancelled"
            store.update_incoming(session, self.ura, existing.id, **values)
            row = store.get_incoming(session, self.ura, existing.id)
            assert row is not None
            return row, False, True

        try:
            return await self.ctx.database.run(work)
        except IntegrityError:
            # The same notification arrived twice at the same moment: the other one stored it.
            return await self.ctx.database.run(work)

    async def conditional_update(self, caller: Caller, identifier: str | None, body: Any) -> InboxRow:
        """`PUT Task?identifier=<system>|<value>`: a newer version of a notification, or its cancellation."""
        if not identifier:
            raise BadRequest(
                "a conditional update needs ?identifier=urn:ietf:rfc:3986|urn:uuid:...",
                code="required",
                details_code="identifier-required",
            )
        system, _, value = identifier.partition("|")
        if system != IDENTIFIER_SYSTEM or not value.startswith("urn:uuid:"):
            raise BadRequest(f"identifier must be {IDENTIFIER_SYSTEM}|urn:uuid:...", code="value")
        notification = parse_notification(body, allowed_statuses=("requested", "cancelled"))
        if notification.identifier != value:
            raise BadRequest("Task.identifier differs from the identifier in the URL", expression=["Task.identifier"])
        try:
            self._check_business(caller, notification)
        except ServiceError as exc:
            await self._audit_received(caller, notification, Outcome.REFUSED, f"refused: {exc.details_code}")
            raise
        exists = await self.ctx.database.run(
            store.find_incoming, self.ura, notification.sender_ura, notification.identifier, readonly=True
        )
        if exists is None:
            raise NotFound("no referral with this identifier from your organisation", details_code="unknown-referral")
        row, _, changed = await self._store_notification(notification)
        if notification.status == "cancelled" and changed:
            await audit_logger(self.ctx).record(
                AuditEvent(
                    type=EventTypes.REFERRAL_CANCELLED,
                    outcome=Outcome.SUCCESS,
                    users=[user_from_caller(caller)],
                    objects=[AuditObject.patient(notification.bsn, authorization_protocol="notified-pull")],
                    checks=["token:notification:write", "task-profile", "sender"],
                    outcome_detail=f"referral {row.id} cancelled by the sender",
                    counterpart_ura=notification.sender_ura,
                )
            )
        else:
            await self._audit_received(caller, notification, Outcome.SUCCESS, f"referral updated {row.id}")
        return row

    # ---- the inbox ----------------------------------------------------------------------------

    async def inbox(self) -> list[InboxRow]:
        return await self.ctx.database.run(store.list_incoming, self.ura, readonly=True)

    async def incoming(self, referral_id: str) -> InboxRow:
        row = await self.ctx.database.run(store.get_incoming, self.ura, referral_id, readonly=True)
        if row is None:
            raise NotFound("no referral with this id in the inbox")
        return row

    async def _sender_token(self, professional: Professional, row: InboxRow, scope: str) -> tuple[str, AccessToken]:
        base = await self.client.fhir_base(row.sender_ura)
        endpoint = await self.client.token_endpoint(row.sender_ura)
        token = await self.client.token(
            endpoint,
            scope,
            professional=professional,
            patient=_bsn_of(row.task) if scope == "fhir:read" else None,
            authorization_base=row.authorization_base,
        )
        return base.rstrip("/"), token

    def _workflow_id(self, row: InboxRow) -> str:
        focus = str(((row.task.get("focus") or {}).get("reference")) or "")
        return focus.removeprefix("Task/") if focus.startswith("Task/") else row.authorization_base

    async def set_status(self, professional: Professional, referral_id: str, status: str) -> InboxRow:
        """Accept, reject or complete a referral: the sender's workflow Task first, then the inbox."""
        allowed = {
            "accepted": {"requested"},
            "rejected": {"requested", "accepted"},
            "completed": {"accepted", "requested"},
        }
        row = await self.incoming(referral_id)
        if row.status == status:
            return row
        if row.status not in allowed[status]:
            raise Conflict(f"a {row.status} referral cannot become {status}", details_code="referral-not-active")
        try:
            base, read_token = await self._sender_token(professional, row, "fhir:read")
            url = f"{base}/Task/{self._workflow_id(row)}"
            http = self.ctx.http.client()
            current = await http.get(url, headers={**read_token.headers("GET", url), "Accept": STU3_JSON})
            if current.status_code != 200:
                raise ServiceError(
                    f"the sender refused to show the workflow Task ({current.status_code} {outcome_reason(current)})",
                    status=502,
                    code="transient",
                    details_code="sender-refused",
                )
            task = _read_json(current, self.settings.max_answer_bytes)
            task["status"] = status
            task["lastModified"] = fhir_instant(_now())
            _, write_token = await self._sender_token(professional, row, "notification:write")
            response = await http.put(
                url,
                content=json.dumps(task).encode("utf-8"),
                headers={**write_token.headers("PUT", url), "Content-Type": STU3_JSON, "Accept": STU3_JSON},
            )
        except (TokenRequestError, httpx.HTTPError, AddressNotFound, InvalidAnswer) as exc:
            raise ServiceError(
                f"the sender could not be told ({exc.__class__.__name__})",
                status=502,
                code="transient",
                details_code="sender-unreachable",
            ) from None
        if response.status_code != 200:
            raise ServiceError(
                f"the sender refused the status update ({response.status_code} {outcome_reason(response)})",
                status=502,
                code="transient",
                details_code="sender-refused",
            )
        await self.ctx.database.run(
            store.update_incoming, self.ura, row.id, status=status, version=row.version + 1, updated_at=_now()
        )
        return await self.incoming(referral_id)

    async def pull(self, professional: Professional, referral_id: str) -> dict[str, Any]:
        """Get the workflow Task and run exactly the listed reads and searches at the sender."""
        row = await self.incoming(referral_id)
        if row.status in INACTIVE:
            raise Conflict(
                f"the referral is {row.status}: nothing may be pulled", details_code=f"referral-{row.status}"
            )
        notification = parse_notification(row.task, allowed_statuses=("requested", "cancelled"))
        bsn = notification.bsn
        result = HolderResult(row.sender_ura, self._name(row.sender_ura), [])
        loop = asyncio.get_running_loop()
        started = loop.time()
        listed = list(notification.queries)
        try:
            async with asyncio.timeout(self.settings.holder_timeout):
                base, token = await self._sender_token(professional, row, "fhir:read")
                result.fhir_base = base
                if notification.get_workflow_task:
                    workflow = await self._get_workflow(base, token, self._workflow_id(row))
                    result.searches.append(workflow)
                    status = (workflow.resources[0].get("status") if workflow.resources else None) or ""
                    if status == "cancelled" or workflow.reason == "referral-cancelled":
                        await self.ctx.database.run(
                            store.update_incoming, self.ura, row.id, status="cancelled", updated_at=_now()
                        )
                        listed = []  # the sender withdrew it: stop
                        result.reason = "referral-cancelled"
                    workflow.resources = []  # the workflow Task is not patient data to merge
                limiter = asyncio.Semaphore(self.settings.max_parallel_requests)
                searches = await asyncio.gather(
                    *(
                        fetch_search(self.ctx, self.settings, base, token, "referral", query, limiter=limiter)
                        for query in listed
                    )
                )
                result.searches.extend(searches)
        except TimeoutError:
            result.status, result.reason = "timeout", "sender-timeout"
        except AddressNotFound:
            result.status, result.reason = "unreachable", "not-in-address-book"
        except TokenRequestError as exc:
            result.status = "unreachable" if exc.status >= 500 else "refused"
            result.reason = f"token:{exc.error}"
        except httpx.HTTPError as exc:
            result.status, result.reason = "unreachable", f"connection:{exc.__class__.__name__}"
        else:
            if result.reason == "referral-cancelled" or not result.searches:
                result.status = "refused"
            else:
                result.status = aggregate_status(result.searches)
        result.elapsed_ms = round((loop.time() - started) * 1000, 1)
        bundle = QueryService(self.ctx, self.ura, self.settings).bundle([result])
        now = _now()
        await self.ctx.database.run(
            store.update_incoming,
            self.ura,
            row.id,
            pulled_at=now,
            pulled_by=professional.uzi,
            pull_result=bundle,
            updated_at=now,
        )
        outcome = (
            Outcome.SUCCESS
            if result.status in ("ok", "partial")
            else Outcome.REFUSED
            if result.status == "refused"
            else Outcome.ERROR
        )
        await record_requester(
            self.ctx,
            requester_event(
                self.ctx,
                EventTypes.REFERRAL_PULL,
                professional,
                bsn,
                outcome=outcome,
                counterpart_ura=row.sender_ura,
                queries=[s.query for s in result.searches],
                checks=["professional:dezi", "token:authorization-base", "listed-queries-only"],
                detail=f"referral {row.id}: {result.status}, {result.resource_count} resource(s)"
                + (f"; {', '.join(result.reasons[:5])}" if result.reasons else ""),
                protocol="notified-pull",
            ),
        )
        return bundle

    async def _get_workflow(self, base: str, token: AccessToken, task_id: str) -> SearchResult:
        url = f"{base}/Task/{task_id}"
        out = SearchResult("workflow-task", f"Task/{task_id}", "ok")
        response = await self.ctx.http.client().get(url, headers={**token.headers("GET", url), "Accept": STU3_JSON})
        out.http_status = response.status_code
        if response.status_code != 200:
            out.status = "refused" if response.status_code in (401, 403) else "error"
            out.reason = outcome_reason(response)
            return out
        try:
            task = _read_json(response, self.settings.max_answer_bytes)
            validate_resource(task, "Task", version="STU3")
        except (InvalidAnswer, ServiceError):
            out.status, out.reason = "invalid-response", "workflow Task is not a FHIR STU3 Task"
            return out
        out.resources = [task]
        return out


async def referral_context(ctx: ServiceContext, ura: str, authorization_base: str) -> dict[str, Any] | None:
    """The policy's `context.referral` for a token carrying `authorization_base` at sender `ura`."""
    try:
        uuid.UUID(authorization_base)
    except ValueError:
        return None
    row = await ctx.database.run(store.get_outgoing, ura, authorization_base, readonly=True)
    if row is None:
        return None
    queries = list(row.allowed_queries)
    if row.get_workflow_task:
        queries.append(f"Task/{row.id}")
    return {
        "owner_ura": row.receiver_ura,
        "allowed_queries": queries,
        "restriction_end": row.restriction_end.isoformat(),
        "status": row.status,
        "authorization_base": row.id,
    }


def referral_service(ctx: ServiceContext, ura: str) -> ReferralService:
    existing = ctx.extras.get("patterns_referrals")
    if isinstance(existing, ReferralService):
        return existing
    made = ReferralService(ctx, ura)
    ctx.extras["patterns_referrals"] = made
    return made
