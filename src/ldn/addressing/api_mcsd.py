"""FHIR R4 REST API of the central mCSD directory (ITI-90 find, ITI-91 `_history`, ITI-130 feed).

Routers stay thin: parse the request, call `DirectoryService`, shape the FHIR answer (ETag,
Last-Modified, Location, `Prefer: return=`). Reading needs scope `mcsd:read`; writing needs
`mcsd:write` and is done as the calling organisation (`Caller.organization_ura`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ldn.addressing.directory import DirectoryService, WriteResult, history_entries
from ldn.addressing.model import check_id, check_type, us_to_http_date, us_to_instant
from ldn.addressing.search import parse_history, parse_search, prefer_strict
from ldn.addressing.settings import AddressingSettings
from ldn.auth.resource_server import Caller, require_caller
from ldn.core.errors import FHIR_JSON, BadRequest, ServiceError, operation_outcome
from ldn.core.fhir import FhirResponse, bundle_transaction_response, now_instant, read_json_body

# Module-level dependencies (one object each), so tests may override them by identity.
MCSD_READ = require_caller("mcsd:read")
MCSD_WRITE = require_caller("mcsd:write")


def _prefer_return(request: Request) -> str:
    for part in request.headers.get("prefer", "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "return":
            return value.strip().strip('"').lower()
    return "representation"


def _outcome_entry(ignored: list[str]) -> dict[str, Any]:
    outcome = operation_outcome(
        "not-supported",
        f"ignored unsupported search parameter(s): {', '.join(ignored)}",
        severity="warning",
    )
    return {"resource": outcome, "search": {"mode": "outcome"}}


def _search_entry(full_url: str, raw: str, mode: str) -> str:
    return f'{{"fullUrl":{json.dumps(full_url)},"resource":{raw},"search":{{"mode":"{mode}"}}}}'


def _spliced(head: dict[str, Any], entries: list[str]) -> Response:
    """A Bundle whose entries are JSON text already: stored resources are served as stored,
    never decoded and encoded again (the cost of a large page is then mostly I/O)."""
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
    body = f'{text[:-1]},"entry":[{",".join(entries)}]}}'
    return Response(body.encode("utf-8"), media_type=FHIR_JSON)


def mcsd_router(service: DirectoryService, settings: AddressingSettings) -> APIRouter:
    router = APIRouter(tags=["mcsd"])
    base = service.base_url

    def write_response(result: WriteResult, request: Request, status: int) -> Response:
        stored = result.stored
        headers = {
            "ETag": stored.etag,
            "Last-Modified": us_to_http_date(stored.last_updated),
            "Location": f"{base}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}",
        }
        preference = _prefer_return(request)
        if preference == "minimal":
            return Response(status_code=status, headers=headers)
        if preference == "operationoutcome":
            what = "created" if result.created else ("updated" if result.changed else "unchanged (no new version)")
            body = operation_outcome(
                "informational", f"{stored.resource_type}/{stored.id} {what}", severity="information"
            )
            return FhirResponse(body, status_code=status, headers=headers)
        return FhirResponse(stored.content, status_code=status, headers=headers)

    def history_bundle(
        path: str,
        rows: list[Any],
        more: bool,
        total: int | None,
        high_water: int,
        used: list[tuple[str, str]],
        ignored: list[str],
    ) -> Response:
        self_url = f"{base}{path}" + (f"?{urlencode(used)}" if used else "")
        links = [{"relation": "self", "url": self_url}]
        if more and rows:
            last = rows[-1]
            cursor = f"{last.last_updated}.{last.seq}"
            links.append({"relation": "next", "url": f"{base}{path}?{urlencode([*used, ('_cursor', cursor)])}"})
        head: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "history",
            "meta": {"lastUpdated": us_to_instant(high_water) if high_water else now_instant()},
            "timestamp": now_instant(),
        }
        if total is not None:
            head["total"] = total
        head["link"] = links
        entries = history_entries(rows, base)
        if ignored:
            entries.append(json.dumps(_outcome_entry(ignored)))
        return _spliced(head, entries)

    async def do_history(
        request: Request, path: str, resource_type: str | None = None, resource_id: str | None = None
    ) -> Response:
        parsed = parse_history(
            list(request.query_params.multi_items()),
            strict=prefer_strict(request.headers.get("prefer")),
            default_count=settings.history_default_count,
            max_count=settings.history_max_count,
        )
        rows, more, total, high_water = await service.history(
            parsed, resource_type=resource_type, resource_id=resource_id
        )
        return history_bundle(path, rows, more, total, high_water, parsed.used, parsed.ignored)

    async def do_search(request: Request, resource_type: str, items: list[tuple[str, str]]) -> Response:
        parsed = parse_search(
            resource_type,
            items,
            strict=prefer_strict(request.headers.get("prefer")),
            default_count=settings.search_default_count,
            max_count=settings.search_max_count,
        )
        result, high_water = await service.search(parsed)
        path = f"{base}/{resource_type}"
        links = [{"relation": "self", "url": path + (f"?{urlencode(parsed.used)}" if parsed.used else "")}]
        if result.next_cursor:
            links.append(
                {"relation": "next", "url": f"{path}?{urlencode([*parsed.used, ('_cursor', result.next_cursor)])}"}
            )
        head: dict[str, Any] = {
            "resourceType": "Bundle",
            "meta": {"lastUpdated": us_to_instant(high_water) if high_water else now_instant()},
            "type": "searchset",
            "timestamp": now_instant(),
        }
        if result.total is not None:
            head["total"] = result.total
        head["link"] = links
        entries = [_search_entry(f"{path}/{rid}", raw, "match") for rid, raw in result.matches]
        entries += [_search_entry(f"{base}/{rtype}/{rid}", raw, "include") for rtype, rid, raw in result.included]
        if parsed.ignored:
            entries.append(json.dumps(_outcome_entry(parsed.ignored)))
        return _spliced(head, entries)

    @router.get("/_history", summary="System history (ITI-91): every change since `_since`")
    async def system_history(request: Request, caller: Caller = Depends(MCSD_READ)) -> Response:
        return await do_history(request, "/_history")

    @router.post("/", summary="Transaction Bundle (ITI-130): all entries or none")
    async def transaction(request: Request, caller: Caller = Depends(MCSD_WRITE)) -> FhirResponse:
        body = await read_json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("expected a Bundle", code="structure")
        results = await service.apply_transaction(body, caller.organization_ura)
        return FhirResponse(bundle_transaction_response(results))

    @router.get("/{resource_type}/_history", summary="Type history (ITI-91)")
    async def type_history(resource_type: str, request: Request, caller: Caller = Depends(MCSD_READ)) -> Response:
        check_type(resource_type)
        return await do_history(request, f"/{resource_type}/_history", resource_type=resource_type)

    @router.get("/{resource_type}", summary="Search (ITI-90)")
    async def search(resource_type: str, request: Request, caller: Caller = Depends(MCSD_READ)) -> Response:
        check_type(resource_type)
        return await do_search(request, resource_type, list(request.query_params.multi_items()))

    @router.post("/{resource_type}/_search", summary="Search with form-encoded parameters (ITI-90)")
    async def search_post(resource_type: str, request: Request, caller: Caller = Depends(MCSD_READ)) -> Response:
        check_type(resource_type)
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise ServiceError("POST _search takes application/x-www-form-urlencoded", status=415, code="not-supported")
        form = await request.form()
        items = list(request.query_params.multi_items()) + [(k, str(v)) for k, v in form.multi_items()]
        return await do_search(request, resource_type, items)

    @router.get("/{resource_type}/{resource_id}", summary="Read")
    async def read(
        resource_type: str, resource_id: str, request: Request, caller: Caller = Depends(MCSD_READ)
    ) -> FhirResponse:
        stored = await service.read(check_type(resource_type), resource_id)
        headers = {"ETag": stored.etag, "Last-Modified": us_to_http_date(stored.last_updated)}
        return FhirResponse(stored.content, headers=headers)

    @router.get("/{resource_type}/{resource_id}/_history", summary="Instance history")
    async def instance_history(
        resource_type: str, resource_id: str, request: Request, caller: Caller = Depends(MCSD_READ)
    ) -> Response:
        check_type(resource_type)
        check_id(resource_id)
        return await do_history(
            request, f"/{resource_type}/{resource_id}/_history", resource_type=resource_type, resource_id=resource_id
        )

    @router.get("/{resource_type}/{resource_id}/_history/{version}", summary="Read one version (vread)")
    async def vread(
        resource_type: str, resource_id: str, version: str, caller: Caller = Depends(MCSD_READ)
    ) -> FhirResponse:
        content = await service.vread(check_type(resource_type), resource_id, version)
        meta = content.get("meta") or {}
        headers = {"ETag": f'W/"{meta.get("versionId", version)}"'}
        return FhirResponse(content, headers=headers)

    @router.post("/{resource_type}", summary="Create (ITI-130)")
    async def create(resource_type: str, request: Request, caller: Caller = Depends(MCSD_WRITE)) -> Response:
        check_type(resource_type)
        body = await read_json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("expected a FHIR resource (a JSON object)", code="structure")
        result = await service.create(
            resource_type, body, caller.organization_ura, request.headers.get("if-none-exist")
        )
        # 200 when a conditional create (If-None-Exist) found the resource: nothing was created.
        return write_response(result, request, 201 if result.created else 200)

    @router.put("/{resource_type}/{resource_id}", summary="Update or create with a client id (ITI-130)")
    async def update(
        resource_type: str, resource_id: str, request: Request, caller: Caller = Depends(MCSD_WRITE)
    ) -> Response:
        check_type(resource_type)
        check_id(resource_id)
        body = await read_json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("expected a FHIR resource (a JSON object)", code="structure")
        result = await service.update(
            resource_type, resource_id, body, caller.organization_ura, request.headers.get("if-match")
        )
        return write_response(result, request, 201 if result.created else 200)

    @router.delete("/{resource_type}/{resource_id}", summary="Delete = set inactive (no hard deletes)")
    async def delete(
        resource_type: str, resource_id: str, request: Request, caller: Caller = Depends(MCSD_WRITE)
    ) -> Response:
        check_type(resource_type)
        result = await service.delete(
            resource_type, resource_id, caller.organization_ura, request.headers.get("if-match")
        )
        stored = result.stored
        what = "set inactive" if result.changed else "already inactive"
        body = operation_outcome(
            "informational",
            f"{resource_type}/{resource_id} {what}; the directory keeps every resource (no hard deletes)",
            severity="information",
        )
        headers = {"ETag": stored.etag, "Last-Modified": us_to_http_date(stored.last_updated)}
        return FhirResponse(body, headers=headers)

    return router
