"""The consent service (`/consent`, national, operated by the Mitz stand-in in the topology).

Wires the service layer (`register`, `notifications`) to the routes (`api`) and runs the outbox
worker in the service lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from ldn import __version__
from ldn.audit import audit_logger
from ldn.consent.api import SoapFault, allowed_hook_origins, build_router, soap_fault_response
from ldn.consent.keys import load_keys
from ldn.consent.notifications import OutboxWorker, Subscriptions
from ldn.consent.register import ConsentRegister
from ldn.consent.settings import ConsentSettings
from ldn.core.fhir import capability_statement
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology

__all__ = ["create_app", "service_definitions"]


def create_app(ctx: ServiceContext) -> FastAPI:
    settings = ConsentSettings()
    keys = load_keys(settings, ctx.settings.data_dir)
    register = ConsentRegister(
        database=ctx.database,
        topology=ctx.topology,
        settings=settings,
        keys=keys,
        base_url=ctx.base_url,
        audit=lambda: audit_logger(ctx),
    )
    worker = OutboxWorker(
        database=ctx.database,
        http=ctx.http,
        keys=keys,
        settings=settings,
        allowed_origins=lambda: allowed_hook_origins(ctx, register),
    )
    register.on_enqueued = worker.wake
    subscriptions = Subscriptions(database=ctx.database, keys=keys)
    # Reachable for tests, benchmarks and tools running in the same process.
    ctx.extras["consent_register"] = register
    ctx.extras["consent_outbox"] = worker

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await worker.start()
        try:
            yield
        finally:
            await worker.stop()

    def capability() -> dict[str, Any]:
        return capability_statement(
            name="ldn-consent",
            title="ldn consent service (Mitz-style)",
            base_url=ctx.base_url,
            resources={
                "Consent": {
                    "interactions": ("search-type", "create", "update", "delete"),
                    "search_params": {"patient": "reference"},
                    "versioning": "versioned",
                },
                "Subscription": {"interactions": ("create", "read", "delete")},
            },
            software_version=__version__,
        )

    app = create_service_app(
        ctx,
        title="ldn consent",
        description="Consent register (Mitz-style choices, EHDS opt-out), closed and open question "
        "(JSON and SOAP/XACML), subscriptions with a delivery outbox, citizen API.",
        routers=[build_router(ctx, register, subscriptions)],
        capability_statement=capability,
        lifespan=lifespan,
    )

    async def soap_fault(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SoapFault)
        return soap_fault_response(exc)

    app.add_exception_handler(SoapFault, soap_fault)
    return app


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [
        ServiceDefinition(
            name="consent", title="Consent (toestemming) and EHDS opt-out", prefix="/consent", factory=create_app
        )
    ]
