"""Raadplegen: pull (gericht bevragen) and indexed pull (ongericht bevragen), SPEC §9, LAS-TA-PULL-001/002.

A professional asks their own node: "everything (or these categories) about this patient". The node

1. localizes: asks the NVI which holders have data of those categories (PRS pseudonym, token with
   the professional), unless the request names the holders itself (directed pull);
2. for every holder, concurrently: finds its FHIR base and token endpoint in the node's address
   book, gets a token at the holder's authorization server (scope `fhir:read`, bound to the patient,
   carrying the professional's Dezi declaration), and runs one search per category;
3. waits at most `holder_timeout` per holder and the request's time budget in total;
4. merges everything into one searchset Bundle: every resource with `meta.source` = the holder's
   FHIR base, de-duplicated (same resource twice, or the same business identifier), one Provenance
   per holder naming it as custodian, and one OperationOutcome per holder with its status;
5. records a `fhir.search.requester` event per holder asked (and `nvi.search`) before answering.

Per-holder status (`OperationOutcome.issue[0].details.coding` in system `HOLDER_STATUS_SYSTEM`, and
the `holder-status` extension): `ok`; `partial` (some searches refused, others answered);
`refused` (every search refused: the reason, e.g. `consent-not-permit`, follows in `details`);
`unreachable` (no endpoint, connection refused, 502/503/504); `timeout`; `invalid-response` (the
holder answered something that is not a FHIR searchset); `error` (the holder answered another
error, or a failure behind its enforcement point that persisted); `not-queryable` (it holds only
categories no FHIR search here covers). A refusal is never retried (LAS-TA-PULL-002); a failure
behind the holder's enforcement point (`pdp-unavailable`, `consent-unavailable`, ...) is asked once
more.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ldn.addressing.replica import AddressNotFound
from ldn.audit import AuditEvent, EventTypes, Outcome
from ldn.auth.client import AccessToken, TokenRequestError
from ldn.authz.pep import VITAL_INTEREST_HEADER
from ldn.core.errors import LDN_CANONICAL, ServiceError, UpstreamTimeout
from ldn.core.fhir import now_instant
from ldn.core.identifiers import SYSTEM_URA, redact_bsns
from ldn.core.service import ServiceContext
from ldn.localization.client import LocalizationError
from ldn.patterns.audit import record_requester, requester_event
from ldn.patterns.client import NodeClient, client_for
from ldn.patterns.identity import Professional
from ldn.patterns.queries import QUERYABLE_CATEGORIES, searches_by_bsn
from ldn.patterns.settings import PatternsSettings

__all__ = [
    "HOLDER_STATUS_SYSTEM",
    "HolderResult",
    "QueryRequest",
    "QueryService",
    "SearchResult",
    "holder_statuses",
    "query_service",
]

logger = logging.getLogger("ldn.patterns.raadplegen")

HOLDER_STATUS_SYSTEM = f"{LDN_CANONICAL}/CodeSystem/holder-status"
REASON_SYSTEM = f"{LDN_CANONICAL}/CodeSystem/refusal-reason"
HOLDER_EXTENSION = f"{LDN_CANONICAL}/StructureDefinition/holder"
HOLDER_STATUS_EXTENSION = f"{LDN_CANONICAL}/StructureDefinition/holder-status"
PROVENANCE_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
FHIR_ACCEPT = "application/fhir+json"
# A holder's 403 with one of these reasons is a failure of its enforcement point, not a decision.
TRANSIENT_REFUSALS = frozenset({"pdp-unavailable", "consent-unavailable", "patient-lookup-failed", "pep-error"})
RETRY_DELAY = 0.1

# status -> (OperationOutcome severity, issue code)
_ISSUE = {
    "ok": ("information", "informational"),
    "partial": ("warning", "forbidden"),
    "refused": ("error", "forbidden"),
    "unreachable": ("error", "transient"),
    "timeout": ("error", "timeout"),
    "invalid-response": ("error", "processing"),
    "error": ("error", "exception"),
    "not-queryable": ("information", "not-supported"),
}


@dataclass(frozen=True)
class QueryRequest:
    """What the professional asks for."""

    patient: str
    categories: frozenset[str] | None = None
    budget_ms: int | None = None
    holders: tuple[str, ...] | None = None
    vital_interest_reason: str | None = None
    include_own: bool = False

    def __repr__(self) -> str:  # never the BSN
        return f"QueryRequest(categories={sorted(self.categories or [])}, holders={self.holders})"


@dataclass
class SearchResult:
    """One search at one holder."""

    category: str
    query: str
    status: str
    http_status: int | None = None
    reason: str | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HolderResult:
    """Everything one holder answered (or did not)."""

    ura: str
    name: str
    categories: list[str]
    status: str = "ok"
    reason: str | None = None
    fhir_base: str | None = None
    searches: list[SearchResult] = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def reasons(self) -> list[str]:
        found = [s.reason for s in self.searches if s.reason and s.status != "ok"]
        if self.reason:
            found.insert(0, self.reason)
        return list(dict.fromkeys(found))

    @property
    def resource_count(self) -> int:
        return sum(len(s.resources) for s in self.searches)


class InvalidAnswer(Exception):
    """The holder's answer is not what FHIR promises."""


def aggregate_status(searches: Sequence[SearchResult]) -> str:
    statuses = {s.status for s in searches}
    for worst in ("unreachable", "timeout", "invalid-response"):
        if worst in statuses:
            return worst
    if statuses == {"refused"}:
        return "refused"
    if statuses == {"error"}:
        return "error"
    if statuses <= {"ok"}:
        return "ok"
    return "partial" if "ok" in statuses else ("refused" if "refused" in statuses else "error")


def outcome_reason(response: httpx.Response) -> str:
    """The refusal or error reason an answer carries: details code, OAuth error, or the status."""
    try:
        body = response.json()
    except ValueError:
        return f"http-{response.status_code}"
    if isinstance(body, dict):
        if body.get("resourceType") == "OperationOutcome":
            issues = body.get("issue") or [{}]
            first = issues[0] if isinstance(issues[0], dict) else {}
            codings = ((first.get("details") or {}).get("coding")) or []
            if codings and isinstance(codings[0], dict) and codings[0].get("code"):
                return str(codings[0]["code"])[:200]
            return str(first.get("code") or f"http-{response.status_code}")[:200]
        if "error" in body:
            return f"token:{str(body['error'])[:100]}"
    return f"http-{response.status_code}"


def _searchset(response: httpx.Response, limit: int) -> dict[str, Any]:
    if len(response.content) > limit:
        raise InvalidAnswer(f"answer larger than {limit} bytes")
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise InvalidAnswer("answer is not JSON") from None
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle" or body.get("type") != "searchset":
        raise InvalidAnswer("answer is not a FHIR searchset Bundle")
    entries = body.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidAnswer("Bundle.entry is not a list")
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise InvalidAnswer("a Bundle entry holds no resource")
        if not isinstance(resource.get("id"), str) or not resource["id"]:
            raise InvalidAnswer("a returned resource has no id")
    return body


def _resource(response: httpx.Response, limit: int) -> dict[str, Any]:
    if len(response.content) > limit:
        raise InvalidAnswer(f"answer larger than {limit} bytes")
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise InvalidAnswer("answer is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str) or not body.get("id"):
        raise InvalidAnswer("answer is not a FHIR resource")
    return body


def _next_link(bundle: Mapping[str, Any], base: str) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            url = str(link["url"])
            here, there = urlsplit(base), urlsplit(url)
            # Follow only within the holder's FHIR base: the token must not travel elsewhere.
            if (here.scheme, here.netloc) == (there.scheme, there.netloc) and there.path.startswith(here.path):
                return url
    return None


async def _get(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    token: AccessToken,
    limiter: asyncio.Semaphore | None,
) -> httpx.Response:
    if limiter is None:
        return await http.get(url, headers=headers)
    async with limiter:
        return await http.get(url, headers=headers)


async def fetch_search(
    ctx: ServiceContext,
    settings: PatternsSettings,
    base: str,
    token: AccessToken,
    category: str,
    query: str,
    *,
    vital_interest_reason: str | None = None,
    limiter: asyncio.Semaphore | None = None,
) -> SearchResult:
    """Run one read or search (relative to `base`) with `token`, following `next` links; at most
    as many requests in flight as `limiter` allows."""
    out = SearchResult(category, query, "ok")
    url: str | None = f"{base.rstrip('/')}/{query}"
    pages = 0
    http = ctx.http.client()
    read = "?" not in query
    while url is not None and pages < settings.max_pages_per_search:
        headers = {**token.headers("GET", url), "Accept": FHIR_ACCEPT}
        if vital_interest_reason:
            headers[VITAL_INTEREST_HEADER] = quote(vital_interest_reason[:1000], safe="")
        response = await _get(http, url, headers, token, limiter)
        if response.status_code == 403 and outcome_reason(response) in TRANSIENT_REFUSALS:
            # Not a decision but a failure behind the holder's enforcement point: asked once more
            # (a refusal proper is never retried, LAS-TA-PULL-002).
            await asyncio.sleep(RETRY_DELAY)
            headers = {**headers, **token.headers("GET", url)}
            response = await _get(http, url, headers, token, limiter)
        pages += 1
        out.http_status = response.status_code
        if response.status_code == 200:
            try:
                if read:
                    resource = _resource(response, settings.max_answer_bytes)
                    out.resources.append(resource)
                    return out
                bundle = _searchset(response, settings.max_answer_bytes)
            except InvalidAnswer as exc:
                out.status, out.reason = "invalid-response", str(exc)
                out.resources = []
                return out
            for entry in bundle.get("entry", []):
                if (entry.get("search") or {}).get("mode", "match") == "match":
                    out.resources.append(entry["resource"])
            url = _next_link(bundle, base)
            continue
        if response.status_code in (401, 403) and outcome_reason(response) not in TRANSIENT_REFUSALS:
            out.status = "refused"
        elif response.status_code in (502, 503, 504):
            out.status = "unreachable"
        else:
            out.status = "error"
        out.reason = outcome_reason(response)
        out.resources = []
        return out
    return out


class QueryService:
    """Runs queries for the professionals of one node."""

    def __init__(self, ctx: ServiceContext, ura: str, settings: PatternsSettings | None = None) -> None:
        self.ctx = ctx
        self.ura = ura
        self.settings = settings or PatternsSettings()
        self.client: NodeClient = client_for(ctx, ura)

    def _name(self, ura: str) -> str:
        try:
            return self.ctx.topology.organization(ura).name
        except KeyError:
            return ura

    def budget_seconds(self, request: QueryRequest) -> float:
        budget = request.budget_ms if request.budget_ms is not None else self.settings.query_budget_ms
        return min(budget, self.settings.max_query_budget_ms) / 1000

    # ---- the whole query ----------------------------------------------------------------------

    async def run(self, professional: Professional, request: QueryRequest) -> dict[str, Any]:
        """The merged Bundle; raises only when nothing could be asked (localization failed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.budget_seconds(request)
        events: list[AuditEvent] = []
        requested = request.categories
        if request.holders is not None:
            wanted = set(requested) if requested is not None else set(QUERYABLE_CATEGORIES)
            holders = {ura: set(wanted) for ura in request.holders}
        else:
            holders = await self._localize(professional, request, deadline, events)
        if not request.include_own:
            holders.pop(self.ura, None)
        tasks = {
            ura: asyncio.create_task(self._holder(professional, request, ura, sorted(cats), deadline))
            for ura, cats in sorted(holders.items())
        }
        results: list[HolderResult] = []
        if tasks:
            # The holders' own timeouts fit in the budget; this is the safety net around them.
            await asyncio.wait(tasks.values(), timeout=max(0.0, deadline - loop.time()) + 0.05)
        for ura, task in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                results.append(task.result())
                continue
            if not task.done():
                task.cancel()
            elif task.exception() is not None:
                logger.error("query of holder %s failed: %s", ura, task.exception().__class__.__name__)
            status = "timeout" if not task.done() or task.cancelled() else "error"
            results.append(
                HolderResult(ura, self._name(ura), sorted(holders[ura]), status=status, reason=f"holder-{status}")
            )
        events.extend(self._holder_events(professional, request, results))
        if request.vital_interest_reason:
            events.append(
                requester_event(
                    self.ctx,
                    EventTypes.CONSENT_VITAL_INTEREST,
                    professional,
                    request.patient,
                    outcome=Outcome.SUCCESS,
                    counterpart_ura=None,
                    detail=f"vital interest stated: {request.vital_interest_reason}",
                    checks=["professional:dezi"],
                )
            )
        await record_requester(self.ctx, *events)
        return self.bundle(results)

    async def _localize(
        self, professional: Professional, request: QueryRequest, deadline: float, events: list[AuditEvent]
    ) -> dict[str, set[str]]:
        remaining = deadline - asyncio.get_running_loop().time()
        localization = self.client.localization(professional)
        categories = sorted(request.categories) if request.categories is not None else None
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                records = await localization.search(request.patient, categories)
        except TimeoutError:
            raise UpstreamTimeout(
                "the referral index did not answer within the time budget", details_code="localization-timeout"
            ) from None
        except (LocalizationError, TokenRequestError, httpx.HTTPError, LookupError) as exc:
            detail = exc.diagnostics if isinstance(exc, ServiceError) else exc.__class__.__name__
            raise ServiceError(
                f"localization failed: {redact_bsns(str(detail))[:300]}",
                status=502,
                code="transient",
                details_code="localization-failed",
            ) from None
        nvi_operator = self.ctx.topology.operator_of("nvi")
        holders: dict[str, set[str]] = {}
        for record in records:
            holders.setdefault(record.custodian_ura, set()).add(record.category)
        events.append(
            requester_event(
                self.ctx,
                EventTypes.NVI_SEARCH,
                professional,
                request.patient,
                outcome=Outcome.SUCCESS,
                counterpart_ura=nvi_operator.ura if nvi_operator is not None else None,
                categories=categories or (),
                detail=f"{len(records)} record(s) from {len(holders)} holder(s)",
                checks=["professional:dezi", "prs:pseudonym"],
                protocol="localization",
            )
        )
        return holders

    # ---- one holder ---------------------------------------------------------------------------

    async def _holder(
        self,
        professional: Professional,
        request: QueryRequest,
        ura: str,
        categories: list[str],
        deadline: float,
    ) -> HolderResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = HolderResult(ura, self._name(ura), categories)
        wanted = set(categories) if request.categories is None else set(categories) & set(request.categories)
        searches = searches_by_bsn(request.patient, wanted)
        if not searches:
            result.status, result.reason = "not-queryable", "no-fhir-search-for-category"
            return result
        timeout = max(0.001, min(self.settings.holder_timeout, deadline - loop.time()))
        # A few requests in flight per holder: its enforcement point is not flooded, and a holder
        # that hangs holds only its own slots.
        limiter = asyncio.Semaphore(self.settings.max_parallel_requests)
        try:
            async with asyncio.timeout(timeout):
                base = await self.client.fhir_base(ura)
                result.fhir_base = base
                endpoint = await self.client.token_endpoint(ura)
                token = await self.client.token(
                    endpoint, "fhir:read", professional=professional, patient=request.patient
                )
                result.searches = list(
                    await asyncio.gather(
                        *(
                            fetch_search(
                                self.ctx,
                                self.settings,
                                base,
                                token,
                                category,
                                query,
                                vital_interest_reason=request.vital_interest_reason,
                                limiter=limiter,
                            )
                            for category, query in searches.items()
                        )
                    )
                )
            result.status = aggregate_status(result.searches)
        except TimeoutError:
            result.status, result.reason = "timeout", f"no answer within {timeout:.1f} s"
        except AddressNotFound:
            result.status, result.reason = "unreachable", "not-in-address-book"
        except TokenRequestError as exc:
            if exc.status >= 500:
                result.status, result.reason = "unreachable", f"token-endpoint-{exc.status}"
            else:
                result.status, result.reason = "refused", f"token:{exc.error}"
        except httpx.TimeoutException:
            result.status, result.reason = "timeout", "http-timeout"
        except httpx.HTTPError as exc:
            result.status, result.reason = "unreachable", f"connection:{exc.__class__.__name__}"
        result.elapsed_ms = round((loop.time() - started) * 1000, 1)
        return result

    # ---- audit --------------------------------------------------------------------------------

    def _holder_events(
        self, professional: Professional, request: QueryRequest, results: Sequence[HolderResult]
    ) -> list[AuditEvent]:
        events = []
        for result in results:
            if result.status in ("ok", "partial"):
                outcome = Outcome.SUCCESS
            elif result.status == "refused":
                outcome = Outcome.REFUSED
            elif result.status == "not-queryable":
                continue  # nothing was asked
            else:
                outcome = Outcome.ERROR
            detail = f"{result.status}: {result.resource_count} resource(s)"
            if result.reasons:
                detail += f"; {', '.join(result.reasons[:5])}"
            events.append(
                requester_event(
                    self.ctx,
                    EventTypes.FHIR_SEARCH_REQUESTER,
                    professional,
                    request.patient,
                    outcome=outcome,
                    counterpart_ura=result.ura,
                    categories=result.categories,
                    queries=[s.query for s in result.searches],
                    checks=[
                        "professional:dezi",
                        "token:holder",
                        *(["vital-interest"] if request.vital_interest_reason else []),
                    ],
                    detail=detail,
                    protocol="pull",
                )
            )
        return events

    # ---- the answer ---------------------------------------------------------------------------

    def bundle(self, results: Sequence[HolderResult]) -> dict[str, Any]:
        """One searchset: matches (de-duplicated, `meta.source`), Provenance per holder, status per holder."""
        matches: list[dict[str, Any]] = []
        seen_urls: set[str] = set()
        seen_identifiers: set[tuple[str, str, str]] = set()
        provenance: list[dict[str, Any]] = []
        recorded = now_instant()
        for result in sorted(results, key=lambda r: r.ura):
            targets: list[str] = []
            base = (result.fhir_base or "").rstrip("/")
            for search in result.searches:
                for resource in search.resources:
                    full_url = f"{base}/{resource['resourceType']}/{resource['id']}"
                    if full_url in seen_urls:
                        continue
                    keys = {
                        (resource["resourceType"], str(i.get("system", "")), str(i.get("value")))
                        for i in resource.get("identifier") or []
                        if isinstance(i, dict) and i.get("value") and resource["resourceType"] != "Patient"
                    }
                    if keys & seen_identifiers:
                        continue  # the same record, reached through another holder or search
                    seen_urls.add(full_url)
                    seen_identifiers |= keys
                    copy = dict(resource)
                    meta = dict(copy.get("meta") or {})
                    meta["source"] = base
                    copy["meta"] = meta
                    matches.append({"fullUrl": full_url, "resource": copy, "search": {"mode": "match"}})
                    targets.append(full_url)
            if targets:
                provenance.append(
                    {
                        "fullUrl": f"urn:uuid:provenance-{result.ura}",
                        "resource": {
                            "resourceType": "Provenance",
                            "id": f"provenance-{result.ura}",
                            "target": [{"reference": t} for t in targets],
                            "recorded": recorded,
                            "agent": [
                                {
                                    "type": {
                                        "coding": [
                                            {
                                                "system": PROVENANCE_AGENT_TYPE,
                                                "code": "custodian",
                                                "display": "Custodian",
                                            }
                                        ]
                                    },
                                    "who": {
                                        "identifier": {"system": SYSTEM_URA, "value": result.ura},
                                        "display": result.name,
                                    },
                                }
                            ],
                        },
                        "search": {"mode": "include"},
                    }
                )
        outcomes = [
            {"fullUrl": f"urn:uuid:status-{r.ura}", "resource": holder_outcome(r), "search": {"mode": "outcome"}}
            for r in sorted(results, key=lambda r: r.ura)
        ]
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "timestamp": recorded,
            "total": len(matches),
            "entry": [*matches, *provenance, *outcomes],
        }


def holder_outcome(result: HolderResult) -> dict[str, Any]:
    """The OperationOutcome that reports one holder's status (first issue) and each search's."""
    severity, code = _ISSUE.get(result.status, ("error", "exception"))
    summary = f"{result.name} ({result.ura}): {result.status}"
    if result.status in ("ok", "partial"):
        summary += f", {result.resource_count} resource(s)"
    if result.reasons:
        summary += f"; {', '.join(result.reasons[:5])}"
    first = [{"system": HOLDER_STATUS_SYSTEM, "code": result.status}]
    if result.reason:
        first.append({"system": REASON_SYSTEM, "code": result.reason[:200]})
    issues: list[dict[str, Any]] = [
        {
            "severity": severity,
            "code": code,
            "details": {
                "coding": first,
                "text": redact_bsns(summary)[:1000],
            },
            "diagnostics": f"categories: {', '.join(result.categories) or '-'}; {result.elapsed_ms} ms",
        }
    ]
    for search in result.searches:
        s_severity, s_code = _ISSUE.get(search.status, ("error", "exception"))
        coding = [{"system": HOLDER_STATUS_SYSTEM, "code": search.status}]
        if search.reason:
            coding.append({"system": REASON_SYSTEM, "code": search.reason[:200]})
        issues.append(
            {
                "severity": s_severity,
                "code": s_code,
                "details": {"coding": coding, "text": f"{search.category}: {search.status}"},
                # The query's path only (its parameters name the patient).
                "diagnostics": f"{search.query.split('?', 1)[0]} -> {search.http_status or '-'}",
            }
        )
    return {
        "resourceType": "OperationOutcome",
        "id": f"status-{result.ura}",
        "extension": [
            {"url": HOLDER_EXTENSION, "valueIdentifier": {"system": SYSTEM_URA, "value": result.ura}},
            {"url": HOLDER_STATUS_EXTENSION, "valueCode": result.status},
        ],
        "issue": issues,
    }


def holder_statuses(bundle: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """URA -> {status, reasons, name} read back from a query Bundle (for the CLI, demo and tests)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "OperationOutcome":
            continue
        ext = {e.get("url"): e for e in resource.get("extension") or []}
        ura = ((ext.get(HOLDER_EXTENSION) or {}).get("valueIdentifier") or {}).get("value")
        if not ura:
            continue
        issues = resource.get("issue") or []
        reasons = [
            c.get("code")
            for issue in issues
            for c in (issue.get("details") or {}).get("coding") or []
            if c.get("system") == REASON_SYSTEM
        ]
        out[ura] = {
            "status": (ext.get(HOLDER_STATUS_EXTENSION) or {}).get("valueCode"),
            "reasons": list(dict.fromkeys(r for r in reasons if r)),
            "text": ((issues[0].get("details") or {}).get("text") if issues else None),
        }
    return out


def query_service(ctx: ServiceContext, ura: str) -> QueryService:
    existing = ctx.extras.get("patterns_query")
    if isinstance(existing, QueryService):
        return existing
    made = QueryService(ctx, ura)
    ctx.extras["patterns_query"] = made
    return made
