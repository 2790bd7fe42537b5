"""The service pattern: every service is an ASGI app built by a factory from a `ServiceContext`.

`create_service_app` gives each service the same skeleton: request context (request id, W3C
trace), a request-size limit, the shared error mapping, `/health` and `/metadata`. A component
declares its services as `ServiceDefinition`s; the embedded network mounts them under their
prefixes in one process, and `ldn serve NAME` runs one of them alone.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ldn import __version__
from ldn.core.config import CoreSettings
from ldn.core.errors import PayloadTooLarge, error_response, install_error_handlers
from ldn.core.fhir import FhirResponse
from ldn.core.http import HttpClientFactory
from ldn.core.identifiers import redact_bsns
from ldn.core.logging import TraceContext, request_id_var, service_var, trace_var
from ldn.core.storage import Database
from ldn.core.topology import Topology

access_logger = logging.getLogger("ldn.access")
_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")

ServiceKind = Literal["national", "node", "network"]


@dataclass
class NetworkDirectory:
    """Where everything is: the content of `var/network.json`."""

    services: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    national: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"services": self.services, "nodes": self.nodes, "national": self.national}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkDirectory:
        return cls(
            services=dict(data.get("services", {})),
            nodes={k: dict(v) for k, v in data.get("nodes", {}).items()},
            national={k: dict(v) for k, v in data.get("national", {}).items()},
        )

    def service_url(self, name: str) -> str:
        try:
            return self.services[name]
        except KeyError:
            raise LookupError(f"service {name!r} is not part of this network") from None

    def node_url(self, ura: str) -> str:
        try:
            return self.nodes[ura]["base"]
        except KeyError:
            raise LookupError(f"no node for organisation {ura}") from None


@dataclass
class ServiceContext:
    """What a service factory gets: settings, topology, storage, HTTP and the directory."""

    name: str
    base_url: str
    settings: CoreSettings
    topology: Topology
    database: Database
    http: HttpClientFactory
    directory: NetworkDirectory
    extras: dict[str, Any] = field(default_factory=dict)


ServiceFactory = Callable[[ServiceContext], FastAPI]


@dataclass(frozen=True)
class ServiceDefinition:
    """A service a component contributes to the network."""

    name: str
    title: str
    prefix: str
    factory: ServiceFactory
    kind: ServiceKind = "national"
    node_ura: str | None = None

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"prefix {self.prefix!r} must start with '/' and not end with '/'")


class RequestContextMiddleware:
    """Request id, trace context, access log and request-size limit, as plain ASGI for speed."""

    def __init__(self, app: ASGIApp, *, service: str, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if state.get("request_id"):
            # Already handled by the embedded network's root: only name the service.
            token = service_var.set(self.service)
            try:
                await self.app(scope, receive, send)
            finally:
                service_var.reset(token)
            return
        headers = Headers(scope=scope)
        incoming_id = headers.get("x-request-id", "")
        request_id = incoming_id if _REQUEST_ID.match(incoming_id) else uuid.uuid4().hex
        parent = TraceContext.parse(headers.get("traceparent"))
        trace = parent.child() if parent else TraceContext.new()
        request_token = request_id_var.set(request_id)
        trace_token = trace_var.set(trace)
        service_token = service_var.set(self.service)
        state["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500}
        started_response = {"sent": False}

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                started_response["sent"] = True
                status_holder["status"] = message["status"]
                extra = [(b"x-request-id", request_id.encode()), (b"traceparent", trace.header().encode())]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send_with_context)
                return
            received = 0
            limit = self.max_body_bytes

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise PayloadTooLarge(f"request body larger than {limit} bytes")
                return message

            try:
                await self.app(scope, limited_receive, send_with_context)
            except Exception as exc:
                # Answer here rather than in Starlette's outer error middleware so that even a
                # 500 carries the request id and trace headers; nothing is re-raised to uvicorn.
                if started_response["sent"]:
                    raise
                response = error_response(Request(scope), exc)
                await response(scope, receive, send_with_context)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            path = scope.get("path", "")
            access_logger.info(
                "%s %s %s",
                scope.get("method"),
                redact_bsns(path),
                status_holder["status"],
                extra={"status": status_holder["status"], "duration_ms": round(elapsed_ms, 2)},
            )
            request_id_var.reset(request_token)
            trace_var.reset(trace_token)
            service_var.reset(service_token)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(None, PayloadTooLarge(f"request body larger than {self.max_body_bytes} bytes"))
        await response(scope, receive, send)


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    ctx: ServiceContext,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    capability_statement: Callable[[], dict[str, Any]] | None = None,
    lifespan: Lifespan | None = None,
    health_checks: Sequence[tuple[str, Callable[[], Awaitable[None]]]] = (),
) -> FastAPI:
    """Build a service app with the shared skeleton; `capability_statement` marks a FHIR service."""

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
        else:
            async with lifespan(app):
                yield

    app = FastAPI(
        title=title,
        description=description,
        version=__version__,
        lifespan=_lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    install_error_handlers(app)

    async def _database_check() -> None:
        def _ping(session: Any) -> None:
            session.execute(text("SELECT 1"))

        await ctx.database.run(_ping, readonly=True)

    checks = [("database", _database_check), *health_checks]

    @app.get("/health", tags=["operations"], summary="Liveness and readiness")
    async def health() -> JSONResponse:
        results: dict[str, str] = {}
        healthy = True
        for name, check in checks:
            try:
                await check()
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - a failing check is reported, not raised
                healthy = False
                results[name] = f"failing: {exc.__class__.__name__}"
        body = {
            "status": "ok" if healthy else "failing",
            "service": ctx.name,
            "version": __version__,
            "checks": results,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    if capability_statement is not None:
        build_capability = capability_statement

        @app.get("/metadata", tags=["operations"], summary="FHIR CapabilityStatement")
        async def metadata() -> FhirResponse:
            return FhirResponse(build_capability())
    else:

        @app.get("/metadata", tags=["operations"], summary="Service description")
        async def metadata_json() -> JSONResponse:
            return JSONResponse(
                {
                    "service": ctx.name,
                    "title": title,
                    "description": description,
                    "version": __version__,
                    "base": ctx.base_url,
                    "openapi": f"{ctx.base_url}/openapi.json",
                }
            )

    for router in routers:
        app.include_router(router)

    app.add_middleware(RequestContextMiddleware, service=ctx.name, max_body_bytes=ctx.settings.max_body_bytes)
    return app


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
