"""The `registry` service: the network's topology and service directory, read-only.

It lists organisations (national service operators and participants), their professionals'
public attributes and the URL of every service, so tools and people can find their way. It never
lists citizens: their BSNs are not directory data.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request

from ldn.core.errors import NotFound
from ldn.core.identifiers import URA
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Organization, Topology


def _organization_view(org: Organization, ctx: ServiceContext) -> dict[str, Any]:
    view: dict[str, Any] = {
        "ura": org.ura,
        "name": org.name,
        "type": org.type,
        "city": org.city,
        "agb": org.agb,
        "vendor": org.vendor,
        "professionals": [
            {"uzi": p.uzi, "name": p.display_name, "role_code": p.role_code, "role_name": p.role_name}
            for p in org.professionals
        ],
    }
    if org.services:
        view["services"] = {s: ctx.directory.services.get(s) for s in org.services}
    node = ctx.directory.nodes.get(org.ura)
    if node:
        view["node"] = node
    return view


def create_app(ctx: ServiceContext) -> FastAPI:
    router = APIRouter(tags=["registry"])

    @router.get("/network", summary="The service directory (same content as var/network.json)")
    async def network() -> dict[str, Any]:
        return ctx.directory.to_json()

    @router.get("/organizations", summary="All organisations in the topology")
    async def organizations(request: Request) -> dict[str, Any]:
        orgs = [_organization_view(o, ctx) for o in ctx.topology.all_organizations()]
        return {"name": ctx.topology.name, "total": len(orgs), "organizations": orgs}

    @router.get("/organizations/{ura}", summary="One organisation by URA")
    async def organization(ura: str) -> dict[str, Any]:
        parsed = URA.parse(ura)
        try:
            return _organization_view(ctx.topology.organization(parsed.value), ctx)
        except KeyError:
            raise NotFound(f"no organisation with URA {parsed.value}") from None

    return create_service_app(
        ctx,
        title="ldn registry",
        description="Topology and service directory of the network.",
        routers=[router],
    )


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [ServiceDefinition(name="registry", title="Network registry", prefix="/registry", factory=create_app)]
