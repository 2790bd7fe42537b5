"""Care-provider node services, one per participant, mounted at `/nodes/<URA>`.

The node's FHIR API lives under `/nodes/<URA>/fhir`. This module gives each node its skeleton
(health, metadata, its FHIR base with a CapabilityStatement); the communication-pattern work
fills in the resources behind the enforcement point.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request

from ldn import __version__
from ldn.core.errors import BadRequest, operation_outcome
from ldn.core.fhir import FhirResponse, capability_statement, read_json_body, validate_resource
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology


def create_node_app(ura: str) -> Any:
    def factory(ctx: ServiceContext) -> FastAPI:
        org = ctx.topology.organization(ura)
        router = APIRouter(prefix="/fhir", tags=["fhir"])

        def capability() -> dict[str, Any]:
            return capability_statement(
                name=f"ldn-node-{ura}",
                title=f"{org.name} FHIR API",
                base_url=f"{ctx.base_url}/fhir",
                resources=fhir_api.capability_resources(),
                software_version=__version__,
                operations=[
                    {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
                    *fhir_api.OPERATIONS,
                ],
            )

        @router.get("/metadata", summary="FHIR CapabilityStatement of the node's FHIR API")
        async def fhir_metadata() -> FhirResponse:
            return FhirResponse(capability())

        @router.post("/$validate", summary="Validate a FHIR R4 resource (FHIR $validate)")
        @router.post("/{resource_type}/$validate", summary="Validate a FHIR R4 resource of one type")
        async def validate(request: Request, resource_type: str | None = None) -> FhirResponse:
            body = await read_json_body(request)
            if isinstance(body, dict) and body.get("resourceType") == "Parameters":
                # $validate takes the resource either bare or as Parameters.parameter[name=resource]
                params = [p for p in body.get("parameter", []) if p.get("name") == "resource"]
                if not params or "resource" not in params[0]:
                    raise BadRequest("Parameters must carry a parameter named 'resource'", code="required")
                body = params[0]["resource"]
            validate_resource(body, resource_type)
            return FhirResponse(operation_outcome("informational", "resource is valid", severity="information"))

        from ldn.addressing.replica import replica_lifespan
        from ldn.auth.service import node_authorization_router
        from ldn.node import fhir_api
        from ldn.patterns.node import node_patterns_router

        return create_service_app(
            ctx,
            title=f"ldn node {org.name}",
            description=f"Care-provider node of {org.name} (URA {ura}).",
            # Patient-data routes after /fhir/metadata and $validate, which they must not shadow; the
            # router's own lifespan loads the synthetic EHR into an empty store. The communication
            # patterns (ldn.patterns.node: query, referrals, inbox, /fhir/Task) come before them, so
            # /fhir/Task is not taken for a resource type of the store.
            routers=[
                router,
                node_patterns_router(ctx, ura),
                fhir_api.fhir_router(ctx, ura),
                node_authorization_router(ctx, ura),
            ],
            capability_statement=capability,
            lifespan=replica_lifespan(ctx, ura),
        )

    return factory


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [
        ServiceDefinition(
            name=f"node-{org.ura}",
            title=org.name,
            prefix=f"/nodes/{org.ura}",
            factory=create_node_app(org.ura),
            kind="node",
            node_ura=org.ura,
        )
        for org in topology.organizations
    ]
