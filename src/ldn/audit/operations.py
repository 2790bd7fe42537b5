"""The audit service's rules: who may append, query and export what.

- Appending (`audit:write`): only events whose source organisation is the caller's, and only into
  sources the caller's organisation owns (its node, or a national service it operates).
- Organisation queries (`audit:read`): a caller sees the records of its own organisation. A
  supervisor (`audit:export` and the audit service's operator or a configured supervisor URA)
  may query any organisation, and a trace query then shows both sides of the exchange.
- Citizen (`citizen`): only the records about the citizen in the token, never another's.
- Export (`audit:export`): supervisors only, by period and optionally organisation.
Every query and export is itself logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from ldn.audit.catalogue import EventTypes
from ldn.audit.context import CallerLike, audit_logger, audit_store, user_from_caller
from ldn.audit.export import ExportFormat, Period, export_stream
from ldn.audit.model import AuditEvent, AuditEventError, AuditObject, Outcome
from ldn.audit.settings import AuditSettings
from ldn.audit.store import AppendResult, AuditQuery, AuditStore, SourceMismatch
from ldn.audit.views import citizen_view, decode_cursor, encode_cursor, record_view
from ldn.core.errors import BadRequest, Forbidden
from ldn.core.identifiers import BSN, URA, IdentifierError
from ldn.core.service import ServiceContext

__all__ = ["AuditOperations", "QueryFilters"]

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class QueryFilters:
    organization: str | None = None
    user: str | None = None
    trace_id: str | None = None
    patient: str | None = None
    count: int = 100
    cursor: str | None = None


class AuditOperations:
    """Service layer of the audit service."""

    def __init__(self, ctx: ServiceContext, settings: AuditSettings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings or AuditSettings()
        self.store: AuditStore = audit_store(self.settings, ctx.settings.data_dir)
        self.audit = audit_logger(ctx, self.settings)

    # --- who is who ---------------------------------------------------------------------

    def supervisor_uras(self) -> set[str]:
        uras = set(self.settings.supervisor_uras)
        operator = self.ctx.topology.operator_of("audit")
        if operator is not None:
            uras.add(operator.ura)
        return uras

    def is_supervisor(self, caller: CallerLike, scopes: frozenset[str]) -> bool:
        return "audit:export" in scopes and caller.organization_ura in self.supervisor_uras()

    def sources_of(self, ura: str) -> set[str]:
        """The log sources an organisation owns: its node, and the national services it operates."""
        owned = {f"node-{ura}"}
        for org in self.ctx.topology.all_organizations():
            if org.ura == ura:
                owned.update(org.services)
        return owned

    # --- append -------------------------------------------------------------------------

    def parse_batch(self, body: Any) -> list[AuditEvent]:
        if not isinstance(body, dict) or set(body) - {"events"}:
            raise BadRequest('expected an object {"events": [...]}', code="structure")
        items = body.get("events")
        if not isinstance(items, list) or not items:
            raise BadRequest("events must be a non-empty list", code="required", expression=["events"])
        if len(items) > self.settings.max_batch:
            raise BadRequest(f"at most {self.settings.max_batch} events per batch", code="too-long")
        events = []
        for index, item in enumerate(items):
            try:
                events.append(AuditEvent.from_wire(item))
            except AuditEventError as exc:
                raise BadRequest(f"events[{index}]: {exc}", code="invalid", expression=[f"events[{index}]"]) from None
        return events

    async def append(self, caller: CallerLike, events: list[AuditEvent]) -> AppendResult:
        owned = self.sources_of(caller.organization_ura)
        for index, event in enumerate(events):
            assert event.source is not None
            if event.source.organization_ura != caller.organization_ura:
                raise Forbidden(
                    f"events[{index}]: source organisation {event.source.organization_ura} is not the caller's",
                    expression=[f"events[{index}].source.organization_ura"],
                )
            if event.source.source_id not in owned:
                raise Forbidden(
                    f"events[{index}]: log source {event.source.source_id} does not belong to the caller",
                    expression=[f"events[{index}].source.source_id"],
                )
        # Protecting BSNs and serialising is CPU work: keep it off the event loop.
        prepared = await anyio.to_thread.run_sync(self.store.prepare, events)
        try:
            return await anyio.to_thread.run_sync(self.store.append_to, self.ctx.database, prepared)
        except SourceMismatch as exc:
            raise Forbidden(str(exc)) from None

    # --- queries ------------------------------------------------------------------------

    async def organization_query(
        self, caller: CallerLike, scopes: frozenset[str], filters: QueryFilters
    ) -> dict[str, Any]:
        supervisor = self.is_supervisor(caller, scopes)
        organization = filters.organization
        if organization is not None:
            organization = _ura(organization, "organization")
            if organization != caller.organization_ura and not supervisor:
                raise Forbidden("an organisation may query only its own audit records")
        elif not supervisor:
            organization = caller.organization_ura
        if not 1 <= filters.count <= MAX_PAGE:
            raise BadRequest(f"_count must be between 1 and {MAX_PAGE}", code="value", expression=["_count"])
        patient_hash = None
        if filters.patient is not None:
            try:
                bsn = BSN.parse(filters.patient).value
            except IdentifierError as exc:
                raise BadRequest(str(exc), code="value", expression=["patient"]) from None
            patient_hash = self.store.keys.bsn.lookup_hash(bsn)
        if filters.trace_id is not None and not _is_trace_id(filters.trace_id):
            raise BadRequest("trace_id must be 32 lowercase hex digits", code="value", expression=["trace_id"])
        if filters.user is not None and not (0 < len(filters.user) <= 128 and filters.user.isprintable()):
            raise BadRequest("invalid user", code="value", expression=["user"])
        query = AuditQuery(
            patient_hash=patient_hash,
            organization_ura=organization,
            user_id=filters.user,
            trace_id=filters.trace_id,
            limit=filters.count + 1,
            before=decode_cursor(filters.cursor),
        )
        records = await self.ctx.database.run(AuditStore.query, query, readonly=True)
        page, more = records[: filters.count], len(records) > filters.count
        described = "&".join(
            f"{k}={v}"
            for k, v in (
                ("organization", organization or "*"),
                ("user", filters.user),
                ("trace_id", filters.trace_id),
                ("patient", "(given)" if filters.patient else None),
            )
            if v is not None
        )
        objects = [AuditObject("audit-query", described[:500], "query", query=described)]
        if filters.patient is not None:
            objects.append(AuditObject.patient(filters.patient))
        await self.audit.record(
            AuditEvent(
                type=EventTypes.AUDIT_QUERY,
                outcome=Outcome.SUCCESS,
                users=[user_from_caller(caller)],
                objects=objects,
                counterpart_ura=caller.organization_ura,
            )
        )
        return {
            "scope": "all organisations" if organization is None else organization,
            "events": [record_view(r, self.ctx.topology) for r in page],
            "next": encode_cursor(page[-1]) if more and page else None,
        }

    async def citizen_log(self, caller: CallerLike, count: int, cursor: str | None) -> dict[str, Any]:
        bsn = caller.citizen_bsn
        if not bsn:
            raise Forbidden("a citizen token is required")
        if not 1 <= count <= MAX_PAGE:
            raise BadRequest(f"_count must be between 1 and {MAX_PAGE}", code="value", expression=["_count"])
        query = AuditQuery(
            patient_hash=self.store.keys.bsn.lookup_hash(bsn),
            exclude_codes=(EventTypes.AUDIT_CITIZEN_VIEW.code,),
            limit=count + 1,
            before=decode_cursor(cursor),
        )
        records = await self.ctx.database.run(AuditStore.query, query, readonly=True)
        page, more = records[:count], len(records) > count
        await self.audit.record(
            AuditEvent(
                type=EventTypes.AUDIT_CITIZEN_VIEW,
                outcome=Outcome.SUCCESS,
                users=[user_from_caller(caller)],
                objects=[AuditObject.patient(bsn)],
            )
        )
        return {
            "accesses": [citizen_view(r, self.ctx.topology) for r in page],
            "next": encode_cursor(page[-1]) if more and page else None,
        }

    # --- export -------------------------------------------------------------------------

    async def export(
        self,
        caller: CallerLike,
        scopes: frozenset[str],
        period: Period,
        organization: str | None,
        fmt: ExportFormat,
    ) -> Iterator[str]:
        if not self.is_supervisor(caller, scopes):
            raise Forbidden("only the audit service's operator or a designated supervisor may export")
        if organization is not None:
            organization = _ura(organization, "organization")
        query = f"from={period.since}&to={period.until}&organization={organization or '*'}&format={fmt}"
        # Logged before the first byte leaves: an export that cannot be logged does not happen.
        await self.audit.record(
            AuditEvent(
                type=EventTypes.AUDIT_EXPORT,
                outcome=Outcome.SUCCESS,
                users=[user_from_caller(caller)],
                objects=[AuditObject("audit-export", query, "query", query=query)],
                counterpart_ura=caller.organization_ura,
            )
        )
        return export_stream(self.ctx.database, period, organization, fmt, self.store.keys.bsn, self.ctx.topology)

    async def checkpoint(self) -> int:
        made = await self.ctx.database.run(self.store.checkpoint)
        return len(made)


def _ura(value: str, name: str) -> str:
    try:
        return URA.parse(value).value
    except IdentifierError as exc:
        raise BadRequest(str(exc), code="value", expression=[name]) from None


def _is_trace_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)
