"""The `audit` service (national, prefix `/audit`): append, query, citizen inzage, export.

    POST /audit/events              batch append (audit:write; the caller's own sources only)
    GET  /audit/events              organisation query: organization, user, trace_id (audit:read)
    POST /audit/events/_search      the same, with a patient BSN in the body instead of the URL
    GET  /audit/citizen/me          the citizen's own accesses, with readable names (citizen)
    GET  /audit/export              FHIR AuditEvent Bundle or JSON Lines (audit:export, supervisors)

The service also signs a checkpoint for every source with new records every
`LDN_AUDIT_CHECKPOINT_INTERVAL_SECONDS`, and once more when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ldn.audit.export import parse_period
from ldn.audit.operations import AuditOperations, QueryFilters
from ldn.auth.resource_server import Caller, require_caller
from ldn.core.errors import BadRequest, Forbidden
from ldn.core.fhir import read_json_body
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology

logger = logging.getLogger("ldn.audit")

_QUERY_PARAMS = {"organization", "user", "trace_id", "_count", "cursor"}
_SEARCH_FIELDS = {"organization", "user", "trace_id", "patient", "_count", "cursor"}


def _only(request: Request, allowed: set[str]) -> None:
    unknown = set(request.query_params) - allowed
    if unknown:
        raise BadRequest(f"unknown parameter(s): {', '.join(sorted(unknown))}", code="not-supported")


def create_app(ctx: ServiceContext) -> FastAPI:
    ops = AuditOperations(ctx)
    router = APIRouter(tags=["audit"])

    @router.post("/events", summary="Append a batch of audit events (scope audit:write)")
    async def append(request: Request, caller: Caller = Depends(require_caller("audit:write"))) -> JSONResponse:
        body = await read_json_body(request)
        events = await anyio.to_thread.run_sync(ops.parse_batch, body)
        result = await ops.append(caller, events)
        return JSONResponse(
            {"stored": result.stored, "duplicates": result.duplicates, "last_seq": result.last_seq}, status_code=200
        )

    @router.get("/events", summary="Query audit records of your organisation (scope audit:read)")
    async def query(
        request: Request,
        caller: Caller = Depends(require_caller("audit:read")),
        organization: str | None = None,
        user: str | None = None,
        trace_id: str | None = None,
        count: Annotated[int, Query(alias="_count")] = 100,
        cursor: str | None = None,
    ) -> JSONResponse:
        _only(request, _QUERY_PARAMS)
        if "patient" in request.query_params:
            raise BadRequest("search by patient with POST _search (no BSN in URLs)", code="not-supported")
        filters = QueryFilters(organization, user, trace_id, None, count, cursor)
        return JSONResponse(await ops.organization_query(caller, caller.scopes, filters))

    @router.post("/events/_search", summary="Query audit records, patient BSN in the body (scope audit:read)")
    async def search(request: Request, caller: Caller = Depends(require_caller("audit:read"))) -> JSONResponse:
        body = await read_json_body(request)
        if not isinstance(body, dict) or set(body) - _SEARCH_FIELDS:
            raise BadRequest("expected an object with organization, user, trace_id, patient, _count, cursor")
        values: dict[str, Any] = {}
        for name in ("organization", "user", "trace_id", "patient", "cursor"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"{name} must be a string", code="value", expression=[name])
            values[name] = value
        count = body.get("_count", 100)
        if type(count) is not int:
            raise BadRequest("_count must be an integer", code="value", expression=["_count"])
        filters = QueryFilters(
            values["organization"], values["user"], values["trace_id"], values["patient"], count, values["cursor"]
        )
        return JSONResponse(await ops.organization_query(caller, caller.scopes, filters))

    @router.get("/citizen/me", summary="Who accessed my data (citizen token)")
    async def citizen_me(
        request: Request,
        caller: Caller = Depends(require_caller("citizen")),
        count: Annotated[int, Query(alias="_count")] = 50,
        cursor: str | None = None,
    ) -> JSONResponse:
        # Only one's own log: naming a patient at all is refused, whoever it is.
        if set(request.query_params) & {"patient", "bsn", "subject"}:
            raise Forbidden("a citizen can only see their own log")
        _only(request, {"_count", "cursor"})
        return JSONResponse(await ops.citizen_log(caller, count, cursor), headers={"Cache-Control": "no-store"})

    @router.get("/export", summary="Export audit records of a period (supervisors, scope audit:export)")
    async def export(
        request: Request,
        caller: Caller = Depends(require_caller("audit:export")),
        since: Annotated[str | None, Query(alias="from")] = None,
        until: Annotated[str | None, Query(alias="to")] = None,
        organization: str | None = None,
        fmt: Annotated[str, Query(alias="format")] = "fhir",
    ) -> StreamingResponse:
        _only(request, {"from", "to", "organization", "format"})
        period = parse_period(since, until)
        if fmt not in ("fhir", "jsonl"):
            raise BadRequest("format must be fhir or jsonl", code="value", expression=["format"])
        chunks = await ops.export(caller, caller.scopes, period, organization, "jsonl" if fmt == "jsonl" else "fhir")
        media = "application/x-ndjson" if fmt == "jsonl" else "application/fhir+json"
        name = f"audit-{period.since[:10]}-{period.until[:10]}.{'jsonl' if fmt == 'jsonl' else 'json'}"
        return StreamingResponse(
            chunks,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ops.audit.start()

        async def periodic() -> None:
            while True:
                await asyncio.sleep(ops.settings.checkpoint_interval_seconds)
                try:
                    await ops.checkpoint()
                except Exception:  # try again next round; verify shows any gap
                    logger.exception("periodic audit checkpoint failed")

        task = asyncio.get_running_loop().create_task(periodic())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await ops.audit.flush(timeout=2.0)
            with contextlib.suppress(Exception):
                await ops.checkpoint()
            await ops.audit.aclose()

    return create_service_app(
        ctx,
        title="ldn audit log",
        description="NEN 7513 audit log: tamper-evident (hash chain with signed checkpoints), never lost, "
        "readable by the citizen.",
        routers=[router],
        lifespan=lifespan,
    )


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [ServiceDefinition(name="audit", title="Audit log (NEN 7513)", prefix="/audit", factory=create_app)]
