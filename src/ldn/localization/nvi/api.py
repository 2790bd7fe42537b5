"""HTTP API of the NVI (FHIR R4, base /nvi), following the Generic Functions IG "Localization" page.

POST   /                  transaction Bundle of POST List / DELETE List entries   scope nvi:write
POST   /List              one registration                                         scope nvi:write
GET    /List?subject:identifier=<system>|<value>[&code=<category>]                scope nvi:read
                          every custodian's records (professional callers only)
GET    /List?source:identifier=...|[&code=..][&_count=..][&_cursor=..]            scope nvi:read
       /List              (no subject): the caller's own records, paged
GET    /List/{id}         one record (custodian only)                              scope nvi:read
DELETE /List/{id}         one record (custodian only)                              scope nvi:write
DELETE /List?subject:identifier=...[&code=...]  the caller's records for a patient scope nvi:write
GET    /metadata          CapabilityStatement
GET    /.well-known/jwks.json   the NVI's public encryption key (what the PRS seals to)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import QueryParams

from ldn import __version__
from ldn.auth.resource_server import Caller, require_caller
from ldn.core.errors import BadRequest, UnsupportedMediaType
from ldn.core.fhir import (
    FhirResponse,
    bundle_searchset,
    bundle_transaction_response,
    capability_statement,
    read_json_body,
)
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology
from ldn.localization.envelope import EnvelopeOpener
from ldn.localization.keyfiles import write_json_atomic
from ldn.localization.nvi.keys import NviKeyMaterial, StorageKeyManager
from ldn.localization.nvi.records import LIST_PROFILE, OAUTH_CLIENT_SYSTEM, render_list
from ldn.localization.nvi.service import (
    NviService,
    OriginKeyLoader,
    deleted_outcome,
    origin_keys_from_file,
    parse_code_param,
    parse_subject_param,
)
from ldn.localization.settings import NviSettings

logger = logging.getLogger("ldn.nvi")

# The dependencies as module constants: one object each, so a benchmark or tool can override them.
NVI_READ = require_caller("nvi:read")
NVI_WRITE = require_caller("nvi:write")

_SEARCH_PARAMS = frozenset({"subject:identifier", "code", "source:identifier", "_count", "_cursor", "_format"})
_DEFAULT_COUNT = 100
_MAX_COUNT = 1000


def recipient_organization(ctx: ServiceContext) -> str:
    operator = ctx.topology.operator_of("nvi")
    if operator is None:
        raise LookupError("the topology names no operator for service 'nvi'")
    return f"ura:{operator.ura}"


def publish_registration(ctx: ServiceContext, settings: NviSettings, public_jwk: dict[str, Any]) -> None:
    """Write the NVI's recipient registration into the PRS bootstrap directory (see docs)."""
    directory = settings.resolved_publish_dir(ctx.settings.data_dir)
    if directory is None:
        return
    organization = recipient_organization(ctx)
    name = f"{organization.replace(':', '_')}_{settings.recipient_scope}.json"
    document = {"recipient_organization": organization, "recipient_scope": settings.recipient_scope, "jwk": public_jwk}
    write_json_atomic(directory / name, document, private=False)


def _origin_loader(ctx: ServiceContext, settings: NviSettings) -> OriginKeyLoader:
    if settings.prs_jwks_file is not None:
        return origin_keys_from_file(settings.prs_jwks_file)

    async def fetch() -> list[dict[str, Any]]:
        url = f"{ctx.directory.service_url('prs').rstrip('/')}/.well-known/jwks.json"
        response = await ctx.http.client().get(url)
        response.raise_for_status()
        return list(response.json().get("keys", []))

    return fetch


def _parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadRequest("not a List id", code="value") from None


def _capability(ctx: ServiceContext) -> dict[str, Any]:
    statement = capability_statement(
        name="ldn-nvi",
        title="ldn national referral index (NVI)",
        base_url=ctx.base_url,
        resources={
            "List": {
                "interactions": ["create", "read", "delete", "search-type"],
                "search_params": {
                    "subject:identifier": "token",
                    "code": "token",
                    "source:identifier": "token",
                },
            }
        },
        software_version=__version__,
    )
    rest = statement["rest"][0]
    rest["interaction"] = [{"code": "transaction"}]
    rest["resource"][0]["supportedProfile"] = [LIST_PROFILE]
    rest["resource"][0]["conditionalDelete"] = "multiple"
    return statement


def build_service(ctx: ServiceContext) -> tuple[NviService, NviKeyMaterial]:
    settings = NviSettings()
    material = NviKeyMaterial(settings.resolved_key_dir(ctx.settings.data_dir))
    public = material.jwe_public_jwk()
    publish_registration(ctx, settings, public)
    keys = StorageKeyManager(ctx.database, material, settings.key_state_seconds)
    opener = EnvelopeOpener(material.jwe_private_jwk())
    service = NviService(ctx.database, keys, opener, settings, _origin_loader(ctx, settings))
    return service, material


def create_app(ctx: ServiceContext) -> FastAPI:
    service, material = build_service(ctx)
    ctx.extras["nvi_service"] = service
    router = APIRouter(tags=["nvi"])

    def fhir_search_bundle(resources: list[dict[str, Any]], **kw: Any) -> FhirResponse:
        # The self link drops the query string: it would carry the NVI identifier.
        self_url = f"{ctx.base_url}/List"
        bundle = bundle_searchset(resources, base_url=ctx.base_url, self_url=self_url, **kw)
        return FhirResponse(bundle, headers={"Cache-Control": "no-store"})

    @router.post("/", summary="Transaction Bundle of POST and DELETE List entries (atomic)")
    async def transaction(request: Request, caller: Caller = Depends(NVI_WRITE)) -> FhirResponse:
        bundle = await read_json_body(request)
        results = await service.transaction(caller, bundle)
        return FhirResponse(bundle_transaction_response(results))

    @router.post("/List", summary="Register one localization record")
    async def create(request: Request, caller: Caller = Depends(NVI_WRITE)) -> FhirResponse:
        result, created = await service.create(caller, await read_json_body(request))
        record = await service.read(caller, _parse_uuid(result["location"].removeprefix("List/")))
        headers = {"Location": f"{ctx.base_url}/{result['location']}"}
        return FhirResponse(render_list(record), status_code=201 if created else 200, headers=headers)

    async def run_search(caller: Caller, params: Any) -> FhirResponse:
        unknown = sorted(set(params.keys()) - _SEARCH_PARAMS)
        if unknown:
            raise BadRequest(f"unsupported search parameter {unknown[0][:40]!r}", code="not-supported")
        if params.get("_format") not in (None, "json", "application/fhir+json", "application/json"):
            raise BadRequest("only JSON is supported", code="not-supported", expression=["_format"])
        categories = parse_code_param(params.getlist("code"))
        subjects = params.getlist("subject:identifier")
        if subjects:
            if "source:identifier" in params or "_cursor" in params:
                raise BadRequest("subject:identifier cannot be combined with source:identifier or _cursor")
            records = await service.search(caller, parse_subject_param(subjects), categories)
            return fhir_search_bundle([render_list(r) for r in records], total=len(records))
        source = params.get("source:identifier")
        source_client: str | None = None
        if source is not None:
            system, sep, value = source.partition("|")
            if not sep or system != OAUTH_CLIENT_SYSTEM or not value:
                raise BadRequest(
                    f"source:identifier must be '{OAUTH_CLIENT_SYSTEM}|<client id>'",
                    code="value",
                    expression=["source:identifier"],
                )
            source_client = value
        count_text = params.get("_count", str(_DEFAULT_COUNT))
        if not count_text.isdigit() or not 1 <= int(count_text) <= _MAX_COUNT:
            raise BadRequest(f"_count must be 1..{_MAX_COUNT}", code="value", expression=["_count"])
        count = int(count_text)
        cursor = params.get("_cursor")
        after = _parse_uuid(cursor) if cursor else None
        records = await service.own_records(
            caller, source_client_id=source_client, categories=categories, after=after, limit=count
        )
        next_params = None
        if len(records) == count:
            next_params = {k: v for k, v in params.multi_items() if k != "_cursor"} | {"_cursor": str(records[-1].id)}
        return fhir_search_bundle([render_list(r) for r in records], next_params=next_params)

    @router.get("/List", summary="Search localization records")
    async def search(request: Request, caller: Caller = Depends(NVI_READ)) -> FhirResponse:
        return await run_search(caller, request.query_params)

    @router.post("/List/_search", summary="Search with the parameters in the body (keeps identifiers out of URLs)")
    async def search_post(request: Request, caller: Caller = Depends(NVI_READ)) -> FhirResponse:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType("POST _search takes application/x-www-form-urlencoded parameters")
        body = (await request.body()).decode("ascii", errors="replace")
        params = QueryParams(body)
        return await run_search(caller, params)

    @router.get("/List/{record_id}", summary="Read one of the caller's records")
    async def read(record_id: str, caller: Caller = Depends(NVI_READ)) -> FhirResponse:
        record = await service.read(caller, _parse_uuid(record_id))
        return FhirResponse(render_list(record))

    @router.delete("/List/{record_id}", summary="Delete one of the caller's records")
    async def delete(record_id: str, caller: Caller = Depends(NVI_WRITE)) -> Response:
        await service.delete(caller, _parse_uuid(record_id))
        return Response(status_code=204)

    @router.delete("/List", summary="Delete the caller's records for a patient (conditional delete)")
    async def delete_for_subject(request: Request, caller: Caller = Depends(NVI_WRITE)) -> FhirResponse:
        params = request.query_params
        unknown = sorted(set(params.keys()) - {"subject:identifier", "code"})
        if unknown:
            raise BadRequest(f"unsupported parameter {unknown[0][:40]!r}", code="not-supported")
        identifiers = parse_subject_param(params.getlist("subject:identifier"))
        if len(identifiers) != 1:
            raise BadRequest("exactly one subject:identifier", code="value", expression=["subject:identifier"])
        deleted = await service.delete_for_subject(caller, identifiers[0], parse_code_param(params.getlist("code")))
        return FhirResponse(deleted_outcome(deleted))

    @router.get("/.well-known/jwks.json", summary="The NVI's public encryption key (what the PRS seals to)")
    async def jwks() -> JSONResponse:
        return JSONResponse({"keys": [material.jwe_public_jwk()]})

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Create (or check) the storage keys before the first request needs them.
        await anyio.to_thread.run_sync(service.keys.current_sync)
        yield

    return create_service_app(
        ctx,
        title="ldn national referral index (NVI)",
        description="Localization records (FHIR List) keyed by PRS pseudonyms; never a BSN.",
        routers=[router],
        capability_statement=lambda: _capability(ctx),
        lifespan=lifespan,
    )


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [ServiceDefinition(name="nvi", title="National referral index (NVI)", prefix="/nvi", factory=create_app)]
