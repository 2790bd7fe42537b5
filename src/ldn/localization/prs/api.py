"""HTTP API of the PRS (prefix /prs), following the Generic Functions IG "Pseudonymisation" page.

    POST /evaluate                      {"blinded_input", "recipient_organization", "recipient_scope"}
                                        -> {"evaluated_output": <compact JWE>}         scope prs:read
    POST /evaluate/batch                {"blinded_inputs": [...], "recipient_organization", ...}
                                        -> {"evaluated_outputs": [...]}                scope prs:read
    GET  /recipients/{org}/{scope}      current and active key versions                scope prs:read
    GET  /.well-known/jwks.json         the PRS origin key (public)
    GET  /recipients                    all recipients                 scope prs:admin, PRS operator
    PUT  /recipients/{org}/{scope}      {"jwk": {...}} register/update scope prs:admin, PRS operator
    POST /recipients/{org}/{scope}/rotate | /retire {"oprf_key_version"}   idem

Both evaluate forms accept an optional ``oprf_key_version`` to evaluate under an older, still
active key version (transition after a rotation).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ldn.auth.resource_server import Caller, require_caller
from ldn.core.errors import BadRequest, Forbidden
from ldn.core.fhir import read_json_body
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology
from ldn.localization.prs import store
from ldn.localization.prs.keys import PrsKeyring, load_master_secret
from ldn.localization.prs.service import (
    PrsService,
    parse_blinded_input,
    parse_key_version,
    parse_recipient,
)
from ldn.localization.settings import PrsSettings

# The dependencies as module constants: one object each, so a benchmark or tool can override them.
PRS_READ = require_caller("prs:read")
PRS_ADMIN = require_caller("prs:admin")

_EVALUATE_KEYS = frozenset({"blinded_input", "recipient_organization", "recipient_scope", "oprf_key_version"})
_BATCH_KEYS = frozenset({"blinded_inputs", "recipient_organization", "recipient_scope", "oprf_key_version"})


def _object(body: Any, allowed: frozenset[str], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object", code="structure")
    unknown = sorted(set(body) - allowed)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:3])
        raise BadRequest(f"unexpected member(s): {shown}", code="structure", expression=unknown[:3])
    missing = [k for k in required if k not in body]
    if missing:
        raise BadRequest(f"missing member(s): {', '.join(missing)}", code="required", expression=missing)
    return body


def _recipient_view(recipient: store.Recipient) -> dict[str, Any]:
    return {
        "recipient_organization": recipient.organization,
        "recipient_scope": recipient.scope,
        "kid": recipient.kid,
        "jwk": recipient.public_jwk,
        "current_key_version": str(recipient.current_version) if recipient.active_versions else None,
        "key_versions": [
            {
                "version": str(v.version),
                "status": v.status,
                "created_at": v.created_at.isoformat(),
                "retired_at": v.retired_at.isoformat() if v.retired_at else None,
            }
            for v in recipient.versions
        ],
    }


def build_service(ctx: ServiceContext) -> PrsService:
    settings = PrsSettings()
    keyring = PrsKeyring(load_master_secret(settings, ctx.settings.data_dir))
    return PrsService(ctx.database, keyring, settings, settings.resolved_recipients_dir(ctx.settings.data_dir))


def create_app(ctx: ServiceContext) -> FastAPI:
    service = build_service(ctx)
    ctx.extras["prs_service"] = service
    operator = ctx.topology.operator_of("prs")
    router = APIRouter(tags=["prs"])

    def require_operator(caller: Caller) -> None:
        # prs:admin is only ever granted to the operator, but the URA check keeps it that way even
        # if a scope policy changes.
        if operator is None or caller.organization_ura != operator.ura:
            raise Forbidden("only the PRS operator may administer recipients", details_code="not-operator")

    @router.post("/evaluate", summary="Evaluate one blinded input for a recipient (RFC 9497 BlindEvaluate)")
    async def evaluate(request: Request, caller: Caller = Depends(PRS_READ)) -> JSONResponse:
        body = _object(
            await read_json_body(request),
            _EVALUATE_KEYS,
            ("blinded_input", "recipient_organization", "recipient_scope"),
        )
        organization, scope = parse_recipient(body["recipient_organization"], body["recipient_scope"])
        blinded = parse_blinded_input(body["blinded_input"], "blinded_input")
        version = parse_key_version(body.get("oprf_key_version"))
        output = await service.evaluate(organization, scope, blinded, version)
        return JSONResponse({"evaluated_output": output}, headers={"Cache-Control": "no-store"})

    @router.post("/evaluate/batch", summary="Evaluate many blinded inputs for one recipient (bulk registration)")
    async def evaluate_batch(request: Request, caller: Caller = Depends(PRS_READ)) -> JSONResponse:
        body = _object(
            await read_json_body(request),
            _BATCH_KEYS,
            ("blinded_inputs", "recipient_organization", "recipient_scope"),
        )
        organization, scope = parse_recipient(body["recipient_organization"], body["recipient_scope"])
        inputs = body["blinded_inputs"]
        if not isinstance(inputs, list) or not inputs:
            raise BadRequest("blinded_inputs must be a non-empty list", code="structure", expression=["blinded_inputs"])
        if len(inputs) > service.settings.max_batch:
            raise BadRequest(
                f"at most {service.settings.max_batch} blinded inputs per batch",
                code="too-long",
                expression=["blinded_inputs"],
            )
        blinded = [parse_blinded_input(v, f"blinded_inputs[{i}]") for i, v in enumerate(inputs)]
        version = parse_key_version(body.get("oprf_key_version"))
        outputs = await service.evaluate_batch(organization, scope, blinded, version)
        return JSONResponse({"evaluated_outputs": outputs}, headers={"Cache-Control": "no-store"})

    @router.get("/.well-known/jwks.json", summary="The PRS origin key recipients use to check envelope origin")
    async def jwks() -> JSONResponse:
        return JSONResponse({"keys": [service.keyring.origin.public_jwk()]})

    @router.get("/recipients/{organization}/{scope}", summary="Key versions of a recipient (for key transitions)")
    async def recipient_info(organization: str, scope: str, caller: Caller = Depends(PRS_READ)) -> JSONResponse:
        info = await service.recipient_info(organization, scope)
        return JSONResponse(info.to_json())

    @router.get("/recipients", summary="All registered recipients (PRS operator)")
    async def recipients(caller: Caller = Depends(PRS_ADMIN)) -> JSONResponse:
        require_operator(caller)
        found = await anyio.to_thread.run_sync(service.recipients)
        return JSONResponse({"recipients": [_recipient_view(r) for r in found]})

    @router.put("/recipients/{organization}/{scope}", summary="Register or update a recipient's public key")
    async def register(
        organization: str, scope: str, request: Request, caller: Caller = Depends(PRS_ADMIN)
    ) -> JSONResponse:
        require_operator(caller)
        body = _object(await read_json_body(request), frozenset({"jwk"}), ("jwk",))
        recipient, created = await anyio.to_thread.run_sync(
            partial(service.register_recipient, organization, scope, body["jwk"])
        )
        return JSONResponse(_recipient_view(recipient), status_code=201 if created else 200)

    @router.post("/recipients/{organization}/{scope}/rotate", summary="Start a new OPRF key version")
    async def rotate(organization: str, scope: str, caller: Caller = Depends(PRS_ADMIN)) -> JSONResponse:
        require_operator(caller)
        version = await anyio.to_thread.run_sync(partial(service.rotate, organization, scope))
        return JSONResponse({"current_key_version": str(version)})

    @router.post("/recipients/{organization}/{scope}/retire", summary="Retire an old OPRF key version")
    async def retire(
        organization: str, scope: str, request: Request, caller: Caller = Depends(PRS_ADMIN)
    ) -> JSONResponse:
        require_operator(caller)
        body = _object(await read_json_body(request), frozenset({"oprf_key_version"}), ("oprf_key_version",))
        version = parse_key_version(body["oprf_key_version"])
        assert version is not None
        await anyio.to_thread.run_sync(partial(service.retire, organization, scope, version))
        return JSONResponse({"retired_key_version": str(version)})

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Recipients published in the bootstrap directory (the NVI writes its own there).
        await anyio.to_thread.run_sync(service.load_bootstrap_dir)
        yield

    return create_service_app(
        ctx,
        title="ldn pseudonymisation service (PRS)",
        description="RFC 9497 OPRF evaluation per recipient, answers sealed to the recipient (JWE).",
        routers=[router],
        lifespan=lifespan,
    )


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [ServiceDefinition(name="prs", title="Pseudonymisation service (PRS)", prefix="/prs", factory=create_app)]
