"""The `authz` service (national, prefix `/authz`): the policy decision point over HTTP.

    POST /authz/explain            decision + the rules that held + policy release (authz:explain)
    POST /authz/decide             the decision, for remote enforcement points (authz:explain)
    GET  /authz/policies           policy release, digest, policies and the agreements they cite
    POST /authz/policies/reload    recompile the policy directory, empty the cache (authz:admin)

Input is an :class:`~ldn.authz.model.AuthzInput` as JSON. Input that does not fit the model
(missing or malformed fields, unknown fields) is a 400 OperationOutcome naming the reason codes
(``missing-input:<path>``, ``invalid-input:<path>``); a well-formed input the policies refuse,
an unknown role code for instance, is a 200 with ``allow: false`` and its reasons: that is a
decision, not an error. A decision point that fails or is too slow answers ``allow: false``
with reason ``pdp-unavailable`` (a remote PEP denies either way); ``/health`` then fails too.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse

from ldn.afspraken.governed import active_release
from ldn.afspraken.repository import AfsprakenError, default_repository
from ldn.auth.resource_server import Caller, require_caller
from ldn.authz.model import AuthzInput, validation_reasons
from ldn.authz.pep import DecisionEngine, decision_engine
from ldn.authz.rego_tests import DATA_MOUNT
from ldn.authz.settings import AuthzSettings
from ldn.core.errors import BadRequest, PayloadTooLarge
from ldn.core.fhir import read_json_body
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology

__all__ = ["create_app", "policy_catalogue", "service_definitions"]

EXPLAIN = "authz:explain"
ADMIN = "authz:admin"
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_AGREEMENT = re.compile(r'^agreement\s*:=\s*"([^"]+)"', re.MULTILINE)
_RELEASE = re.compile(r'^release\s*:=\s*"([^"]+)"', re.MULTILINE)


def policy_catalogue(policy_dir: Path) -> dict[str, Any]:
    """What the policy directory holds: a digest over every file the decisions depend on, and per
    policy module its package, release and agreement (read from the source, not evaluated)."""
    digest = hashlib.sha256()
    policies: list[dict[str, Any]] = []
    modules = sorted(p for p in policy_dir.glob("*.rego") if not p.name.endswith("_test.rego"))
    tables = sorted(policy_dir.glob("data/*.json"))
    for path in [*modules, *tables]:
        content = path.read_bytes()
        digest.update(path.relative_to(policy_dir).as_posix().encode() + b"\0" + content + b"\0")
        if path.suffix != ".rego":
            continue
        text = content.decode("utf-8", errors="replace")
        package, agreement, release = _PACKAGE.search(text), _AGREEMENT.search(text), _RELEASE.search(text)
        policies.append(
            {
                "file": path.name,
                "package": package.group(1) if package else None,
                "release": release.group(1) if release else None,
                "agreement": agreement.group(1) if agreement else None,
            }
        )
    return {
        "digest": f"sha256:{digest.hexdigest()}" if modules else None,
        "policies": policies,
        "tables": [".".join(("data", *DATA_MOUNT, p.stem)) for p in tables],
    }


def _agreements(ids: list[str]) -> tuple[str | None, list[dict[str, Any]]]:
    """The cited agreements as the agreement system has them in the active release."""
    try:
        repo = default_repository()
        version = active_release(repo)
        release = repo.release(version)
    except AfsprakenError:
        return None, [{"id": i, "in_release": False} for i in ids]
    out: list[dict[str, Any]] = []
    for agreement_id in ids:
        try:
            a = release.get(agreement_id)
        except AfsprakenError:
            out.append({"id": agreement_id, "in_release": False, "registered": agreement_id in repo})
            continue
        out.append(
            {
                "id": a.id,
                "in_release": True,
                "registered": True,
                "version": a.version,
                "status": str(a.status),
                "title": a.title,
            }
        )
    return version, out


async def _input(request: Request, settings: AuthzSettings) -> AuthzInput:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_input_bytes:
        raise PayloadTooLarge(f"authorization input larger than {settings.max_input_bytes} bytes")
    if len(await request.body()) > settings.max_input_bytes:
        raise PayloadTooLarge(f"authorization input larger than {settings.max_input_bytes} bytes")
    body = await read_json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("the authorization input must be a JSON object", code="structure")
    try:
        return AuthzInput.model_validate(body)
    except ValidationError as exc:
        reasons = validation_reasons(exc)
        raise BadRequest(
            f"the authorization input does not fit the input model: {', '.join(reasons[:20])}",
            code="structure",
            details_code=reasons[0] if reasons else "invalid-input",
            expression=[r.split(":", 1)[1] for r in reasons[:20]],
        ) from None


def build_router(ctx: ServiceContext, engine: DecisionEngine, settings: AuthzSettings) -> APIRouter:
    router = APIRouter(tags=["authz"])
    timeout = settings.decision_timeout_ms / 1000
    explain_timeout = max(settings.enforce_timeout, timeout)

    @router.post("/decide", summary="Decide on an authorization input (scope authz:explain)")
    async def decide(request: Request, caller: Caller = Depends(require_caller(EXPLAIN))) -> JSONResponse:
        model = await _input(request, settings)
        decision = await engine.decide(model, timeout=timeout)
        return JSONResponse(decision.model_dump(mode="json"), headers={"Cache-Control": "no-store"})

    @router.post("/explain", summary="The decision and the rules that matched (scope authz:explain)")
    async def explain(request: Request, caller: Caller = Depends(require_caller(EXPLAIN))) -> JSONResponse:
        model = await _input(request, settings)
        explanation = await engine.explain(model, timeout=explain_timeout)
        decision = explanation.decision
        body = {
            "allow": decision.allow,
            "reasons": decision.reasons,
            "policy": decision.policy,
            "policy_release": decision.policy_release,
            "agreements": decision.agreements,
            "rules_matched": decision.rules_matched,
            "true_rules": explanation.true_rules,
            "decision": decision.model_dump(mode="json"),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @router.get("/policies", summary="The loaded policy release, its policies and the agreements they implement")
    async def policies() -> JSONResponse:
        pdp = engine.pdp
        catalogue = await anyio.to_thread.run_sync(policy_catalogue, pdp.policy_dir)
        cited = sorted({p["agreement"] for p in catalogue["policies"] if p["agreement"]})
        las_release, agreements = await anyio.to_thread.run_sync(_agreements, cited)
        body = {
            "release": pdp.policy_release or None,
            "status": "loaded" if pdp.load_error is None else "failing",
            "las_release": las_release,
            **catalogue,
            "agreements": agreements,
            "decision_timeout_ms": settings.decision_timeout_ms,
            "cache": {"entries": len(engine.cache), "hits": engine.cache.hits, "misses": engine.cache.misses},
        }
        return JSONResponse(body)

    @router.post("/policies/reload", summary="Recompile the policies and empty the decision cache (authz:admin)")
    async def reload(caller: Caller = Depends(require_caller(ADMIN))) -> JSONResponse:
        loaded = await anyio.to_thread.run_sync(engine.pdp.reload)
        # Also on an unchanged release: the rules may have changed under the same release string.
        engine.cache.clear()
        return JSONResponse(
            {"reloaded": loaded, "release": engine.pdp.policy_release or None},
            status_code=200 if loaded else 422,
        )

    return router


def create_app(ctx: ServiceContext) -> FastAPI:
    settings = AuthzSettings()
    engine = decision_engine(settings)
    ctx.extras["authz_engine"] = engine

    async def policies_loaded() -> None:
        if engine.pdp.load_error is not None:
            raise RuntimeError("authorization policies failed to load")

    return create_service_app(
        ctx,
        title="ldn authorization",
        description="Policy decision point (Rego reference policies, SPEC §8): decide and explain for "
        "enforcement points, conformance tests and support staff.",
        routers=[build_router(ctx, engine, settings)],
        health_checks=[("policies", policies_loaded)],
    )


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [
        ServiceDefinition(
            name="authz", title="Authorization (policy decision point)", prefix="/authz", factory=create_app
        )
    ]
