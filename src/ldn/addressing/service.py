"""Service definitions of addressing: the LRZa register (`/lrza`) and the central mCSD directory
(`/mcsd`, which is also its FHIR base: CapabilityStatement at `/mcsd/metadata`). Both are operated
by the LRZa operator. The nodes' replicas start from `ldn.addressing.replica.replica_lifespan`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ldn import __version__
from ldn.addressing import lrza
from ldn.addressing.api_lrza import lrza_router
from ldn.addressing.api_mcsd import mcsd_router
from ldn.addressing.directory import DirectoryService
from ldn.addressing.model import MCSD_TYPES
from ldn.addressing.publication import publish_topology
from ldn.addressing.searchparams import PARAMS
from ldn.addressing.settings import AddressingSettings
from ldn.core.fhir import capability_statement
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology

logger = logging.getLogger("ldn.addressing")


def mcsd_capability(base_url: str) -> dict[str, Any]:
    resources: dict[str, dict[str, Any]] = {}
    for rtype in MCSD_TYPES:
        params = {"_id": "token", "_lastUpdated": "date"}
        params.update({name: p.kind for name, p in PARAMS[rtype].items()})
        resources[rtype] = {
            "interactions": (
                "read",
                "vread",
                "search-type",
                "history-instance",
                "history-type",
                "create",
                "update",
                "delete",
            ),
            "search_params": params,
            "versioning": "versioned-update",
        }
    statement = capability_statement(
        name="ldn-mcsd-directory",
        title="ldn mCSD care services directory (ITI-90, ITI-91, ITI-130)",
        base_url=base_url,
        resources=resources,
        software_version=__version__,
    )
    rest = statement["rest"][0]
    rest["interaction"] = [{"code": "transaction"}, {"code": "history-system"}]
    for item in rest["resource"]:
        rtype = item["type"]
        item["updateCreate"] = True
        item["conditionalCreate"] = True
        item["conditionalDelete"] = "not-supported"
        item["searchInclude"] = [f"{rtype}:{n}" for n, p in PARAMS[rtype].items() if p.kind == "reference"]
        item["searchRevInclude"] = [
            f"{other}:{n}" for other in MCSD_TYPES for n, p in PARAMS[other].items() if rtype in p.targets
        ]
    return statement


def create_mcsd_app(ctx: ServiceContext) -> FastAPI:
    settings = AddressingSettings()
    service = DirectoryService(ctx.database, settings, ctx.base_url)
    ctx.extras["mcsd_directory"] = service

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.publish_on_startup:
            report = await ctx.database.run(publish_topology, service, ctx.topology, ctx.directory)
            logger.info(
                "addressing published: %d register entries changed, %d resources written, %d unchanged",
                report.registered,
                report.written,
                report.unchanged,
            )
        yield

    return create_service_app(
        ctx,
        title="ldn mCSD directory",
        description="Central care services directory (IHE mCSD ITI-90, ITI-91, ITI-130) with local replicas.",
        routers=[mcsd_router(service, settings)],
        capability_statement=lambda: mcsd_capability(ctx.base_url),
        lifespan=lifespan,
    )


def create_lrza_app(ctx: ServiceContext) -> FastAPI:
    settings = AddressingSettings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.publish_on_startup:
            await ctx.database.run(lrza.upsert_providers, lrza.providers_from_topology(ctx.topology))
        yield

    def capability() -> dict[str, Any]:
        return capability_statement(
            name="ldn-lrza",
            title="ldn LRZa (Landelijk Register Zorgaanbieders)",
            base_url=ctx.base_url,
            resources={
                "Organization": {
                    "interactions": ("read", "search-type"),
                    "search_params": {
                        "_id": "token",
                        "_lastUpdated": "date",
                        "identifier": "token",
                        "name": "string",
                        "type": "token",
                        "active": "token",
                    },
                }
            },
            software_version=__version__,
        )

    return create_service_app(
        ctx,
        title="ldn LRZa",
        description="The authoritative register of care providers and who may publish their addressing data.",
        routers=[lrza_router(ctx.database, settings, ctx.base_url)],
        capability_statement=capability,
        lifespan=lifespan,
    )


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [
        ServiceDefinition(name="lrza", title="LRZa care provider register", prefix="/lrza", factory=create_lrza_app),
        ServiceDefinition(name="mcsd", title="mCSD care services directory", prefix="/mcsd", factory=create_mcsd_app),
    ]
