"""FHIR R4 read and search of the LRZa register as Organization resources (scope `lrza:read`).

Search parameters: `_id`, `identifier` (URA, AGB or KvK), `name` (`:exact`, `:contains`),
`type` (ldn or Dutch organisation-type code), `active`, `_lastUpdated`, `_count`, `_total`.
Unknown parameters follow the `Prefer: handling` rule, as in the directory.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy import ColumnElement, false, or_
from sqlalchemy.orm import Session

from ldn.addressing import lrza
from ldn.addressing.codes import LDN_ORG_TYPE_SYSTEM, NICTIZ_ORG_TYPE_SYSTEM, NICTIZ_ORG_TYPES, SYSTEM_AGB, SYSTEM_KVK
from ldn.addressing.model import is_ura_system, us_to_http_date, us_to_instant
from ldn.addressing.search import (
    UPPER,
    check_request_size,
    date_condition,
    parse_count,
    parse_date_param,
    prefer_strict,
    split_alternatives,
)
from ldn.addressing.searchparams import normalize
from ldn.addressing.settings import AddressingSettings
from ldn.addressing.store import custom_plans
from ldn.addressing.tables import lrza_providers
from ldn.auth.resource_server import Caller, require_caller
from ldn.core.errors import BadRequest, NotFound, operation_outcome
from ldn.core.fhir import FhirResponse, bundle_searchset, now_instant
from ldn.core.identifiers import URA
from ldn.core.storage import Database

P = lrza_providers
LRZA_READ = require_caller("lrza:read")
_NICTIZ_REVERSE = {code: org_type for org_type, (code, _display) in NICTIZ_ORG_TYPES.items()}


def _identifier_condition(value: str) -> ColumnElement[bool]:
    alternatives: list[ColumnElement[bool]] = []
    for alt in split_alternatives(value):
        system, bar, code = alt.partition("|")
        if not bar:
            system, code = "", alt
        if not code:
            raise BadRequest("identifier search needs a value", code="value", expression=["identifier"])
        if not bar or system == "":
            alternatives.append(or_(P.c.ura == code, P.c.agb == code, P.c.kvk == code))
        elif is_ura_system(system):
            alternatives.append(P.c.ura == code)
        elif system == SYSTEM_AGB:
            alternatives.append(P.c.agb == code)
        elif system == SYSTEM_KVK:
            alternatives.append(P.c.kvk == code)
        else:
            alternatives.append(false())
    return or_(*alternatives)


def _type_condition(value: str) -> ColumnElement[bool]:
    wanted: set[str] = set()
    for alt in split_alternatives(value):
        system, bar, code = alt.partition("|")
        if not bar:
            system, code = "", alt
        if system in ("", LDN_ORG_TYPE_SYSTEM) and code in {*NICTIZ_ORG_TYPES, "national-service"}:
            wanted.add(code)
        if system in ("", NICTIZ_ORG_TYPE_SYSTEM) and code in _NICTIZ_REVERSE:
            wanted.add(_NICTIZ_REVERSE[code])
    return P.c.org_type.in_(sorted(wanted)) if wanted else false()


def lrza_router(database: Database, settings: AddressingSettings, base_url: str) -> APIRouter:
    router = APIRouter(tags=["lrza"])
    base = base_url.rstrip("/")

    @router.get("/Organization", summary="Search the register")
    async def search(request: Request, caller: Caller = Depends(LRZA_READ)) -> FhirResponse:
        strict = prefer_strict(request.headers.get("prefer"))
        conditions: list[ColumnElement[bool]] = []
        used: list[tuple[str, str]] = []
        ignored: list[str] = []
        count = settings.search_default_count
        cursor: str | None = None
        total_mode = ""
        items = list(request.query_params.multi_items())
        check_request_size(items)
        for name, value in items:
            if name in ("_format", "_pretty"):
                continue
            if name == "_count":
                count = parse_count(value, settings.search_max_count)
            elif name == "_cursor":
                cursor = URA.parse(value).value
                continue
            elif name == "_total":
                if value not in ("none", "estimate", "accurate"):
                    raise BadRequest("_total must be none, estimate or accurate", code="value")
                total_mode = value
            elif name == "_id":
                conditions.append(P.c.ura.in_(split_alternatives(value)))
            elif name == "identifier":
                conditions.append(_identifier_condition(value))
            elif name in ("name", "name:contains"):
                parts = [normalize(v) for v in split_alternatives(value)]
                if name == "name":
                    conditions.append(or_(*[(P.c.name_norm >= n) & (P.c.name_norm < n + UPPER) for n in parts]))
                else:
                    conditions.append(or_(*[P.c.name_norm.contains(n, autoescape=True) for n in parts]))
            elif name == "name:exact":
                conditions.append(P.c.name.in_(split_alternatives(value)))
            elif name == "type":
                conditions.append(_type_condition(value))
            elif name == "active":
                if value not in ("true", "false"):
                    raise BadRequest("active takes true or false", code="value", expression=["active"])
                conditions.append(P.c.active.is_(value == "true"))
            elif name == "_lastUpdated":
                op, low, high = parse_date_param(value)
                conditions.append(date_condition(P.c.last_updated, op, low, high))
            else:
                if strict:
                    raise BadRequest(
                        f"unknown search parameter: {name} (Prefer: handling=strict)",
                        code="not-supported",
                        expression=[name],
                    )
                ignored.append(name)
                continue
            used.append((name, value))
        want_total = total_mode in ("accurate", "estimate")

        def work(session: Session) -> tuple[list[lrza.Registration], int | None, str | None, int]:
            custom_plans(session, time_limit=settings.read_time_limit)
            page, total, next_cursor = lrza.search(
                session, conditions, cursor=cursor, limit=count, want_total=want_total or count == 0
            )
            return page, total, next_cursor, lrza.high_water_mark(session)

        page, total, next_cursor, high_water = await database.run(work, readonly=True)
        path = f"{base}/Organization"
        bundle: dict[str, Any] = bundle_searchset(
            [lrza.as_fhir(r) for r in page],
            base_url=base,
            self_url=path + (f"?{urlencode(used)}" if used else ""),
            total=total,
            next_params=[*used, ("_cursor", next_cursor)] if next_cursor else None,  # type: ignore[arg-type]
            search_path=path,
        )
        bundle["meta"] = {"lastUpdated": us_to_instant(high_water) if high_water else now_instant()}
        if ignored:
            outcome = operation_outcome(
                "not-supported", f"ignored unsupported search parameter(s): {', '.join(ignored)}", severity="warning"
            )
            bundle["entry"].append({"resource": outcome, "search": {"mode": "outcome"}})
        return FhirResponse(bundle)

    @router.get("/Organization/{ura}", summary="Read one register entry (id = URA)")
    async def read(ura: str, caller: Caller = Depends(LRZA_READ)) -> FhirResponse:
        parsed = URA.parse(ura).value
        registration = await database.run(lrza.get_registration, parsed, readonly=True)
        if registration is None:
            raise NotFound(f"no care provider with URA {parsed} in the LRZa")
        headers = {
            "ETag": f'W/"{registration.version_id}"',
            "Last-Modified": us_to_http_date(registration.last_updated),
        }
        return FhirResponse(lrza.as_fhir(registration), headers=headers)

    return router
