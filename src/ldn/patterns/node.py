"""What the communication patterns add to every care-provider node app (`/nodes/<URA>`).

Internal API, for the node's own professionals (`Authorization: Bearer <Dezi declaration>`, see
`ldn.patterns.identity`; `as` must name the same professional):

| method and path | what |
|---|---|
| `POST /patterns/query` | raadplegen (body below) -> searchset Bundle |
| `POST /patterns/referrals` | verwijzen (body below) -> 201 workflow Task |
| `GET /patterns/referrals`, `GET /patterns/referrals/{id}` | referrals sent (workflow Tasks, with their status) |
| `POST /patterns/referrals/{id}/cancel` | cancel: workflow Task and notification |
| `GET /patterns/inbox`, `GET /patterns/inbox/{id}` | referrals received |
| `POST /patterns/inbox/{id}/accept`, `.../reject`, `.../complete` | status back to the sender |
| `POST /patterns/inbox/{id}/pull`, `GET /patterns/inbox/{id}/data` | pull the listed data; the last pull |

FHIR API for other nodes (next to the patient-data routes of `ldn.node.fhir_api`):

| method and path | scope | what |
|---|---|---|
| `POST /fhir/Task` | `notification:write` | the notification endpoint (201 new, 200 the same identifier again) |
| `PUT /fhir/Task?identifier=<system>\\|<value>` | `notification:write` | conditional update (newer, cancelled) |
| `GET /fhir/Task/{id}` | `fhir:read` + authorization base | the workflow Task, for its owner (through the PEP) |
| `PUT /fhir/Task/{id}` | `notification:write` + authorization base | the owner reports the status |

Bodies: query `{"as", "patient", "categories"?, "budget_ms"?, "holders"?, "vital_interest_reason"?,
"include_own"?}`; referral `{"as", "to", "patient", "service", "categories"?, "restriction_days"?}`.

The router's lifespan fills the node's FHIR store (when empty) and starts the NVI initial load.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ldn.auth.resource_server import Caller, require_caller
from ldn.core.errors import LDN_CANONICAL, BadRequest, Forbidden, ServiceError
from ldn.core.fhir import FhirResponse, now_instant, read_json_body
from ldn.core.identifiers import BSN, URA, IdentifierError
from ldn.core.service import ServiceContext
from ldn.ehr.settings import EhrSettings
from ldn.node import fhir_api
from ldn.patterns.holdings import initial_load_in_background
from ldn.patterns.identity import Professional, authenticator_for
from ldn.patterns.queries import check_categories
from ldn.patterns.raadplegen import QueryRequest, query_service
from ldn.patterns.settings import PatternsSettings
from ldn.patterns.store import InboxRow, OutboxRow
from ldn.patterns.tasks import STU3_JSON, fhir_instant
from ldn.patterns.verwijzen import referral_service

__all__ = ["node_patterns_router"]

PULLED_EXTENSION = f"{LDN_CANONICAL}/StructureDefinition/pulled-at"
FHIR_JSON_TYPES = ("application/fhir+json", "application/json")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_max_length=2000)


class QueryBody(_Body):
    as_: str = Field(alias="as", description="UZI/Dezi number of the professional asking (must match the declaration)")
    patient: str = Field(description="BSN of the patient")
    categories: list[str] | None = Field(None, max_length=16, description="NVI data categories (default: all)")
    budget_ms: int | None = Field(None, gt=0, description="Total time budget in milliseconds")
    holders: list[str] | None = Field(None, max_length=100, description="Directed pull: ask these URAs, skip the NVI")
    vital_interest_reason: str | None = Field(None, min_length=1, max_length=1000)
    include_own: bool = False


class ReferBody(_Body):
    as_: str = Field(alias="as")
    to: str = Field(description="URA of the receiver")
    patient: str
    service: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    categories: list[str] | None = Field(None, max_length=16)
    restriction_days: int | None = Field(None)


class ActionBody(_Body):
    as_: str | None = Field(None, alias="as")


def _parse(model: type[_Body], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors(include_input=False)})
        raise BadRequest(
            f"invalid request body: {', '.join(fields)[:300]}", code="structure", expression=fields[:10]
        ) from None


def _bsn(value: str) -> str:
    try:
        return BSN.parse(value).value
    except IdentifierError:
        raise BadRequest("patient must be a valid BSN", code="value", details_code="invalid-patient") from None


def _stu3(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> FhirResponse:
    response = FhirResponse(body, status_code=status, headers=headers)
    response.headers["content-type"] = STU3_JSON
    return response


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": now_instant(),
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def _outgoing(row: OutboxRow) -> dict[str, Any]:
    task = dict(row.task)
    task["meta"] = {"versionId": str(row.version), "lastUpdated": fhir_instant(row.updated_at)}
    return task


def _incoming(row: InboxRow) -> dict[str, Any]:
    task = dict(row.task)
    task["id"] = row.id
    task["status"] = row.status
    task["meta"] = {"versionId": str(row.version), "lastUpdated": fhir_instant(row.updated_at)}
    if row.pulled_at is not None:
        task["extension"] = [{"url": PULLED_EXTENSION, "valueDateTime": fhir_instant(row.pulled_at)}]
    return task


def node_patterns_router(ctx: ServiceContext, ura: str) -> APIRouter:
    """The patterns' routes of node `ura`; mount before the node's patient-data routes."""
    settings = PatternsSettings()
    auth = authenticator_for(ctx, ura)
    queries = query_service(ctx, ura)
    referrals = referral_service(ctx, ura)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if EhrSettings().autoload:
            # Before the NVI load, which registers what the store holds (idempotent: the FHIR
            # router's own start-up load then finds the store filled).
            await fhir_api.node_fhir_service(ctx, ura).load_synthetic_ehr()
        task: asyncio.Task[None] | None = None
        if settings.nvi_sync_on_startup and {"nvi", "prs", "auth"} <= set(ctx.directory.services):
            task = asyncio.create_task(
                initial_load_in_background(ctx, ura, delay=settings.nvi_sync_delay), name=f"nvi-initial-load-{ura}"
            )
            ctx.extras["patterns_nvi_sync"] = task
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    router = APIRouter(lifespan=lifespan)

    async def professional(request: Request, claimed: str | None) -> Professional:
        return await auth.from_request(request, claimed_uzi=claimed)

    # ---- raadplegen ---------------------------------------------------------------------------

    @router.post("/patterns/query", tags=["patterns"], summary="Raadplegen: query every holder of a patient's data")
    async def query(request: Request) -> FhirResponse:
        body: QueryBody = _parse(QueryBody, await read_json_body(request))
        who = await professional(request, body.as_)
        try:
            categories = None if body.categories is None else frozenset(check_categories(body.categories))
            holders = None if body.holders is None else tuple(dict.fromkeys(URA.parse(h).value for h in body.holders))
        except ValueError as exc:
            raise BadRequest(str(exc)[:200], code="value", details_code="invalid-query") from None
        if body.budget_ms is not None and body.budget_ms > settings.max_query_budget_ms:
            raise BadRequest(
                f"budget_ms is at most {settings.max_query_budget_ms}", code="value", details_code="budget-too-large"
            )
        bundle = await queries.run(
            who,
            QueryRequest(
                patient=_bsn(body.patient),
                categories=categories,
                budget_ms=body.budget_ms,
                holders=holders,
                vital_interest_reason=" ".join(body.vital_interest_reason.split())
                if body.vital_interest_reason
                else None,
                include_own=body.include_own,
            ),
        )
        return FhirResponse(bundle)

    # ---- verwijzen: sender --------------------------------------------------------------------

    @router.post("/patterns/referrals", tags=["patterns"], summary="Verwijzen: refer a patient (notified pull)")
    async def refer(request: Request) -> FhirResponse:
        body: ReferBody = _parse(ReferBody, await read_json_body(request))
        who = await professional(request, body.as_)
        row = await referrals.create(
            who,
            receiver=body.to,
            bsn=_bsn(body.patient),
            service_type=body.service,
            categories=body.categories,
            restriction_days=body.restriction_days,
        )
        location = f"{ctx.base_url.rstrip('/')}/patterns/referrals/{row.id}"
        return _stu3(_outgoing(row), 201, {"Location": location})

    @router.get("/patterns/referrals", tags=["patterns"], summary="Referrals this organisation sent")
    async def sent(request: Request) -> FhirResponse:
        await professional(request, request.query_params.get("as"))
        return _stu3(_bundle([_outgoing(r) for r in await referrals.list_outgoing()]))

    @router.get("/patterns/referrals/{referral_id}", tags=["patterns"], summary="One referral sent")
    async def sent_one(request: Request, referral_id: str) -> FhirResponse:
        await professional(request, request.query_params.get("as"))
        return _stu3(_outgoing(await referrals.get_outgoing(referral_id)))

    @router.post("/patterns/referrals/{referral_id}/cancel", tags=["patterns"], summary="Cancel a referral")
    async def cancel(request: Request, referral_id: str) -> FhirResponse:
        body: ActionBody = _parse(ActionBody, await _optional_json(request))
        who = await professional(request, body.as_)
        return _stu3(_outgoing(await referrals.cancel(who, referral_id)))

    # ---- verwijzen: receiver inbox ------------------------------------------------------------

    @router.get("/patterns/inbox", tags=["patterns"], summary="Referrals received")
    async def inbox(request: Request) -> FhirResponse:
        await professional(request, request.query_params.get("as"))
        return _stu3(_bundle([_incoming(r) for r in await referrals.inbox()]))

    @router.get("/patterns/inbox/{referral_id}", tags=["patterns"], summary="One referral received")
    async def inbox_one(request: Request, referral_id: str) -> FhirResponse:
        await professional(request, request.query_params.get("as"))
        return _stu3(_incoming(await referrals.incoming(referral_id)))

    @router.get("/patterns/inbox/{referral_id}/data", tags=["patterns"], summary="The data last pulled")
    async def inbox_data(request: Request, referral_id: str) -> FhirResponse:
        await professional(request, request.query_params.get("as"))
        row = await referrals.incoming(referral_id)
        if row.pull_result is None:
            raise ServiceError("nothing has been pulled for this referral yet", status=404, code="not-found")
        return FhirResponse(row.pull_result)

    @router.post("/patterns/inbox/{referral_id}/{action}", tags=["patterns"], summary="accept, reject, complete, pull")
    async def inbox_action(request: Request, referral_id: str, action: str) -> FhirResponse:
        body: ActionBody = _parse(ActionBody, await _optional_json(request))
        who = await professional(request, body.as_)
        if action == "pull":
            return FhirResponse(await referrals.pull(who, referral_id))
        statuses = {"accept": "accepted", "reject": "rejected", "complete": "completed"}
        if action not in statuses:
            raise ServiceError(f"unknown action {action[:32]!r}", status=404, code="not-found")
        return _stu3(_incoming(await referrals.set_status(who, referral_id, statuses[action])))

    # ---- FHIR: the notification endpoint and the workflow Task --------------------------------

    @router.post("/fhir/Task", tags=["fhir"], summary="Notified Pull notification endpoint (STU3 Task)")
    async def notification(
        request: Request, caller: Caller = Depends(require_caller("notification:write"))
    ) -> FhirResponse:
        body = await read_json_body(request, FHIR_JSON_TYPES)
        row, created = await referrals.receive(caller, body)
        return _stu3(_incoming(row), 201 if created else 200)

    @router.put("/fhir/Task", tags=["fhir"], summary="Conditional update of a notification (newer, or cancelled)")
    async def notification_update(
        request: Request, caller: Caller = Depends(require_caller("notification:write"))
    ) -> FhirResponse:
        params = list(request.query_params.multi_items())
        if [n for n, _ in params if n != "identifier"] or len(params) > 1:
            raise BadRequest("a conditional update takes exactly one identifier parameter", code="not-supported")
        body = await read_json_body(request, FHIR_JSON_TYPES)
        row = await referrals.conditional_update(caller, request.query_params.get("identifier"), body)
        return _stu3(_incoming(row))

    @router.get("/fhir/Task/{task_id}", tags=["fhir"], summary="Read a workflow Task (its owner, within the referral)")
    async def workflow_read(
        request: Request, task_id: str, caller: Caller = Depends(require_caller("fhir:read"))
    ) -> FhirResponse:
        if caller.authorization_base is None or caller.authorization_base != task_id:
            raise Forbidden(
                "a workflow Task is read with a token carrying its authorization base",
                details_code="authorization-base-mismatch",
            )
        row = await referrals.read_workflow_task(task_id)
        bsn = str(((row.task.get("for") or {}).get("identifier") or {}).get("value", "")) or None
        try:
            await fhir_api.authorize_request(request, caller, "Task", bsn, interaction="read", resource_id=task_id)
        except ServiceError as exc:
            await fhir_api.audit_hook(
                request, caller, "Task", bsn, interaction="read", outcome="refused", status=exc.status
            )
            raise
        await fhir_api.audit_hook(
            request, caller, "Task", bsn, interaction="read", outcome="success", status=200, resource_ids=[task_id]
        )
        return _stu3(_outgoing(row), headers={"ETag": f'W/"{row.version}"'})

    @router.put("/fhir/Task/{task_id}", tags=["fhir"], summary="The owner updates the workflow Task's status")
    async def workflow_update(
        request: Request, task_id: str, caller: Caller = Depends(require_caller("notification:write"))
    ) -> FhirResponse:
        body = await read_json_body(request, FHIR_JSON_TYPES)
        row = await referrals.update_workflow_task(caller, task_id, body, request.headers.get("if-match"))
        return _stu3(_outgoing(row), headers={"ETag": f'W/"{row.version}"'})

    return router


async def _optional_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    return await read_json_body(request)
