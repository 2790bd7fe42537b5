"""FHIR helpers shared by every FHIR service: responses, request bodies, validation, Bundles.

Inbound resources are validated with `fhir.resources` (R4B models for R4 content, STU3 models
where the published profile is STU3, such as BgZ and the Notified Pull Task). Validation returns
the original JSON (dict) so services keep exactly what the client sent.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from ldn.core.errors import FHIR_JSON, BadRequest, ServiceError, UnsupportedMediaType

FhirVersion = Literal["R4", "STU3"]

JSON_TYPES = ("application/fhir+json", "application/json")
_FHIR_PACKAGES = {"R4": "fhir.resources.R4B", "STU3": "fhir.resources.STU3"}


class FhirResponse(JSONResponse):
    """JSON response with the FHIR media type."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def now_instant() -> str:
    """The current time as a FHIR instant (UTC, millisecond precision)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def require_json_content_type(request: Request, accepted: Sequence[str] = JSON_TYPES) -> None:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in accepted:
        raise UnsupportedMediaType(f"content type {media or '(none)'!r} not supported; use {' or '.join(accepted)}")


async def read_json_body(request: Request, accepted: Sequence[str] = JSON_TYPES) -> Any:
    """Read and parse a JSON request body: 415 for a wrong content type, 400 for bad JSON."""
    require_json_content_type(request, accepted)
    raw = await request.body()
    if not raw:
        raise BadRequest("request body is empty", code="required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(
            f"malformed JSON: {exc.__class__.__name__} at position {getattr(exc, 'pos', 0)}", code="structure"
        ) from None


async def read_resource(
    request: Request,
    expected_type: str | Iterable[str] | None = None,
    version: FhirVersion = "R4",
) -> dict[str, Any]:
    """Read a FHIR resource from the request body, check its type and validate it."""
    data = await read_json_body(request)
    return validate_resource(data, expected_type, version)


def _model_class(resource_type: str, version: FhirVersion) -> type[Any]:
    package = _FHIR_PACKAGES[version]
    try:
        module = importlib.import_module(f"{package}.{resource_type.lower()}")
        return getattr(module, resource_type)  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        raise BadRequest(f"unknown resource type {resource_type!r} for FHIR {version}", code="not-supported") from None


def validate_resource(
    data: Any,
    expected_type: str | Iterable[str] | None = None,
    version: FhirVersion = "R4",
) -> dict[str, Any]:
    """Validate a resource against the FHIR models; raise a 400 OperationOutcome on any problem."""
    if not isinstance(data, dict):
        raise BadRequest("expected a FHIR resource (a JSON object)", code="structure")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise BadRequest("resourceType is missing", code="required", expression=["resourceType"])
    if expected_type is not None:
        allowed = {expected_type} if isinstance(expected_type, str) else set(expected_type)
        if resource_type not in allowed:
            raise BadRequest(
                f"expected resourceType {' or '.join(sorted(allowed))}, got {resource_type}",
                code="invalid",
                expression=["resourceType"],
            )
    model = _model_class(resource_type, version)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        problems = []
        expressions = []
        for err in exc.errors()[:10]:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{loc or resource_type}: {err.get('msg')}")
            if loc:
                expressions.append(f"{resource_type}.{loc}")
        raise BadRequest(
            f"invalid {resource_type}: " + "; ".join(problems),
            code="structure",
            expression=expressions or None,
        ) from None
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"invalid {resource_type}: {exc}", code="structure") from None
    return data


def bundle_searchset(
    resources: Sequence[Mapping[str, Any]],
    *,
    base_url: str,
    self_url: str,
    total: int | None = None,
    next_params: Mapping[str, Any] | None = None,
    previous_params: Mapping[str, Any] | None = None,
    search_path: str | None = None,
    include_resources: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A searchset Bundle with `self`, `next` and `previous` links (paging by the caller)."""
    link = [{"relation": "self", "url": self_url}]
    path = search_path or self_url.split("?", 1)[0]
    if next_params is not None:
        link.append({"relation": "next", "url": f"{path}?{urlencode(next_params, doseq=True)}"})
    if previous_params is not None:
        link.append({"relation": "previous", "url": f"{path}?{urlencode(previous_params, doseq=True)}"})
    entries: list[dict[str, Any]] = []
    for resource, mode in [(r, "match") for r in resources] + [(r, "include") for r in include_resources]:
        entry: dict[str, Any] = {"resource": resource, "search": {"mode": mode}}
        if resource.get("id"):
            entry["fullUrl"] = f"{base_url.rstrip('/')}/{resource['resourceType']}/{resource['id']}"
        entries.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": now_instant(),
        "link": link,
        "entry": entries,
    }
    if total is not None:
        bundle["total"] = total
    return bundle


def bundle_transaction_response(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A transaction-response Bundle; each entry is `{"status": "201 Created", "location": ...}`."""
    out = []
    for item in entries:
        response: dict[str, Any] = {"status": item["status"]}
        for key in ("location", "etag", "lastModified", "outcome"):
            if item.get(key) is not None:
                response[key] = item[key]
        entry: dict[str, Any] = {"response": response}
        if item.get("resource") is not None:
            entry["resource"] = item["resource"]
        out.append(entry)
    return {"resourceType": "Bundle", "type": "transaction-response", "timestamp": now_instant(), "entry": out}


def bundle_entries(bundle: Mapping[str, Any], allowed_types: Iterable[str] = ("transaction",)) -> list[dict[str, Any]]:
    """Entries of an inbound Bundle after checking its type; raises 400 on a bad Bundle."""
    if bundle.get("resourceType") != "Bundle":
        raise BadRequest("expected a Bundle", expression=["resourceType"])
    if bundle.get("type") not in set(allowed_types):
        raise BadRequest(f"Bundle.type must be {' or '.join(allowed_types)}", expression=["Bundle.type"])
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be a list", code="structure", expression=["Bundle.entry"])
    return entries


def capability_statement(
    *,
    name: str,
    title: str,
    base_url: str,
    resources: Mapping[str, Mapping[str, Any]],
    fhir_version: str = "4.0.1",
    software_version: str,
    operations: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """A server CapabilityStatement; `resources` maps type -> {interactions, search_params}."""
    rest_resources = []
    for rtype, spec in resources.items():
        item: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": code} for code in spec.get("interactions", ())],
        }
        if spec.get("search_params"):
            item["searchParam"] = [{"name": n, "type": t} for n, t in spec["search_params"].items()]
        if spec.get("versioning"):
            item["versioning"] = spec["versioning"]
        if spec.get("conditional_update"):
            item["conditionalUpdate"] = True
        rest_resources.append(item)
    rest: dict[str, Any] = {"mode": "server", "resource": rest_resources}
    if operations:
        rest["operation"] = [dict(op) for op in operations]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now_instant(),
        "kind": "instance",
        "name": name,
        "title": title,
        "software": {"name": "ldn", "version": software_version},
        "implementation": {"description": title, "url": base_url},
        "fhirVersion": fhir_version,
        "format": ["json"],
        "rest": [rest],
    }


def raise_for_outcome(status: int, body: Any) -> None:
    """Turn an OperationOutcome received from another service into a ServiceError."""
    if status < 400:
        return
    diagnostics = "upstream error"
    code = "exception"
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issue = (body.get("issue") or [{}])[0]
        diagnostics = str(issue.get("diagnostics") or diagnostics)
        code = str(issue.get("code") or code)
    raise ServiceError(diagnostics, status=status, code=code)
