"""Service definitions of the authentication function: the national authorization server and Dezi.

Each care-provider node carries its own authorization server under `<node>/auth`; see
`node_authorization_router`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from ldn.auth import dezi_service
from ldn.auth.scopes import national_scopes_for, node_scopes_for
from ldn.auth.server import authorization_server_router, build_token_service
from ldn.auth.settings import AuthSettings
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology


def create_national_as(ctx: ServiceContext) -> FastAPI:
    operator = ctx.topology.operator_of("auth")
    if operator is None:
        raise LookupError("the topology names no operator for service 'auth'")
    service = build_token_service(ctx, issuer=ctx.base_url, issuer_ura=operator.ura, allowed_scopes=national_scopes_for)
    router = authorization_server_router(ctx, service, citizen_login=AuthSettings().test_citizen_login)
    return create_service_app(
        ctx,
        title="ldn national authorization server",
        description="RFC 7523 jwt-bearer tokens for national services, DPoP (RFC 9449), introspection (RFC 7662).",
        routers=[router],
    )


def node_authorization_router(ctx: ServiceContext, ura: str) -> APIRouter:
    """The authorization server of one care-provider node, mounted at `<node base>/auth`."""
    topology = ctx.topology
    service = build_token_service(
        ctx, issuer=f"{ctx.base_url}/auth", issuer_ura=ura, allowed_scopes=lambda org: node_scopes_for(org, topology)
    )
    router = APIRouter(prefix="/auth")
    router.include_router(authorization_server_router(ctx, service, citizen_login=False))
    return router


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [
        ServiceDefinition(
            name="auth", title="National authorization server", prefix="/auth", factory=create_national_as
        ),
        ServiceDefinition(
            name="dezi", title="Dezi identity provider (test)", prefix="/dezi", factory=dezi_service.create_app
        ),
    ]
