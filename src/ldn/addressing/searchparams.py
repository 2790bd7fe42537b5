"""The mCSD search parameters (ITI-90) and how index rows are extracted from a resource.

Every current resource version has its searchable values in one index table as rows
`(param, system, value)`: tokens keep their system and code, strings are kept normalised
(case- and accent-folded) plus once exactly (`<param>:exact`), references as (target type, id),
and a logical reference's identifier as a token under `<param>:identifier`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ldn.addressing.model import parse_reference

Kind = Literal["token", "string", "reference"]
MAX_VALUE = 255


@dataclass(frozen=True)
class ParamDef:
    name: str
    kind: Kind
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()


def _p(name: str, kind: Kind, *paths: str, targets: tuple[str, ...] = ()) -> ParamDef:
    return ParamDef(name, kind, paths, targets)


PARAMS: dict[str, dict[str, ParamDef]] = {
    "Organization": {
        p.name: p
        for p in (
            _p("identifier", "token", "identifier"),
            _p("name", "string", "name", "alias"),
            _p("type", "token", "type"),
            _p("active", "token", "active"),
            _p("partof", "reference", "partOf", targets=("Organization",)),
            _p("endpoint", "reference", "endpoint", targets=("Endpoint",)),
            _p("address-city", "string", "address.city"),
        )
    },
    "Location": {
        p.name: p
        for p in (
            _p("identifier", "token", "identifier"),
            _p("name", "string", "name", "alias"),
            _p("type", "token", "type"),
            _p("status", "token", "status"),
            _p("organization", "reference", "managingOrganization", targets=("Organization",)),
            _p("partof", "reference", "partOf", targets=("Location",)),
            _p("endpoint", "reference", "endpoint", targets=("Endpoint",)),
            _p("address-city", "string", "address.city"),
        )
    },
    "HealthcareService": {
        p.name: p
        for p in (
            _p("identifier", "token", "identifier"),
            _p("name", "string", "name"),
            _p("active", "token", "active"),
            _p("organization", "reference", "providedBy", targets=("Organization",)),
            _p("location", "reference", "location", targets=("Location",)),
            _p("service-type", "token", "type"),
            _p("service-category", "token", "category"),
            _p("specialty", "token", "specialty"),
            _p("endpoint", "reference", "endpoint", targets=("Endpoint",)),
        )
    },
    "Endpoint": {
        p.name: p
        for p in (
            _p("identifier", "token", "identifier"),
            _p("name", "string", "name"),
            _p("status", "token", "status"),
            _p("organization", "reference", "managingOrganization", targets=("Organization",)),
            _p("connection-type", "token", "connectionType"),
            _p("payload-type", "token", "payloadType"),
        )
    },
    "OrganizationAffiliation": {
        p.name: p
        for p in (
            _p("identifier", "token", "identifier"),
            _p("active", "token", "active"),
            _p("primary-organization", "reference", "organization", targets=("Organization",)),
            _p("participating-organization", "reference", "participatingOrganization", targets=("Organization",)),
            _p("role", "token", "code"),
            _p("specialty", "token", "specialty"),
            _p("endpoint", "reference", "endpoint", targets=("Endpoint",)),
            _p("location", "reference", "location", targets=("Location",)),
            _p("service", "reference", "healthcareService", targets=("HealthcareService",)),
        )
    },
}

IndexRow = tuple[str, str, str]  # (param, system, value)


def normalize(text: str) -> str:
    """Case- and accent-insensitive form for FHIR string search (and single spaces)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())[:MAX_VALUE]


def _walk(value: Any, parts: list[str]) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _walk(item, parts)
        return
    if not parts:
        if value is not None:
            yield value
        return
    if isinstance(value, dict):
        yield from _walk(value.get(parts[0]), parts[1:])


def _tokens(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, bool):
        yield "", "true" if value else "false"
    elif isinstance(value, str):
        yield "", value
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value.get("coding") or []:
                yield from _tokens(coding)
        elif "code" in value and isinstance(value.get("code"), str):
            yield str(value.get("system") or ""), value["code"]
        elif isinstance(value.get("value"), str):
            yield str(value.get("system") or ""), value["value"]


def extract(
    resource_type: str,
    content: dict[str, Any],
    base_url: str | None = None,
    only: frozenset[str] | None = None,
) -> list[IndexRow]:
    """All index rows of one resource (deduplicated, values cut to the column width); with
    `only`, just those of the named parameters."""
    rows: set[IndexRow] = set()
    for param in PARAMS.get(resource_type, {}).values():
        if only is not None and param.name not in only:
            continue
        for path in param.paths:
            for value in _walk(content, path.split(".")):
                if param.kind == "token":
                    for system, code in _tokens(value):
                        if code:
                            rows.add((param.name, system[:MAX_VALUE], code[:MAX_VALUE]))
                elif param.kind == "string":
                    if isinstance(value, str) and value.strip():
                        rows.add((param.name, "", normalize(value)))
                        rows.add((f"{param.name}:exact", "", value[:MAX_VALUE]))
                elif isinstance(value, dict):
                    parsed = parse_reference(value.get("reference"), base_url)
                    if parsed is not None:
                        rows.add((param.name, parsed[0], parsed[1]))
                    identifier = value.get("identifier")
                    if isinstance(identifier, dict):
                        for system, code in _tokens(identifier):
                            if code:
                                rows.add((f"{param.name}:identifier", system[:MAX_VALUE], code[:MAX_VALUE]))
    return sorted(rows)
