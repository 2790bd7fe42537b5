"""A node's FHIR R4 API for patient data: read and search, behind the node's own tokens.

Routes (mounted under the node's `/fhir`):
- `GET /fhir/{type}/{id}`: read;
- `GET /fhir/{type}?<params>`: search, always for one patient: `patient.identifier`,
  `patient:identifier`, `subject.identifier`, `subject:identifier` (`<bsn system>|<BSN>`),
  `patient` / `subject` (`Patient/<id>`), and on Patient `identifier` or `_id`. Further parameters
  per type (see `SEARCH_PARAMS`): `code`, `category`, `status`, a clinical date, `_id`,
  `_lastUpdated`, and `_count` (at most 100) with `_offset` for paging (the `next` and `previous`
  links carry it). Unknown parameters are a 400 unless the request says `Prefer: handling=lenient`;
  unsupported modifiers are always a 400;
- `GET /fhir/Patient/$bgz?patient.identifier=...`: the patient's data as a BgZ STU3 Bundle.

Every route needs a token of the node's own authorization server with scope `fhir:read`
(`require_caller("fhir:read")`). Two call points:
- `authorize_request(...)`: the policy enforcement point. It enforces the token rules (the patient
  in the request must be the patient the token is bound to), then hands over to the
  authorization function's PEP (`ldn.authz.pep`: PDP decision + consent), which raises to refuse.
- `audit_hook(...)`: where NEN 7513 logging goes (a no-op now); called after the decision, for
  granted and refused requests alike, before the answer leaves.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy.exc import IntegrityError

from ldn.auth.resource_server import Caller, require_caller
from ldn.core.errors import BadRequest, Forbidden, NotFound, ServiceError, operation_outcome
from ldn.core.fhir import FhirResponse, bundle_searchset
from ldn.core.identifiers import BSN, SYSTEM_BSN, IdentifierError
from ldn.core.service import ServiceContext
from ldn.core.topology import Topology
from ldn.ehr import EhrResource, node_resources
from ldn.ehr.bgz import bgz_bundle
from ldn.ehr.codes import BGZ_LAB_CATEGORY, OBSERVATION_CATEGORY
from ldn.ehr.settings import EhrSettings
from ldn.node import fhir_store as store
from ldn.node.fhir_store import (
    PATIENT_TYPES,
    SEARCH_PARAMS,
    BsnHasher,
    DateFilter,
    DatePrefix,
    NewResource,
    SearchCriteria,
    StoredResource,
    TokenFilter,
)

logger = logging.getLogger("ldn.node.fhir")

__all__ = [
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "OPERATIONS",
    "FhirRequest",
    "NodeFhirService",
    "audit_hook",
    "authorize_request",
    "capability_resources",
    "fhir_router",
    "parse_search",
]

DEFAULT_COUNT = 50
MAX_COUNT = 100
MAX_OFFSET = 100_000
MAX_PARAMS = 50
MAX_VALUE_LENGTH = 1024
MAX_QUERY_LENGTH = 8192

Interaction = Literal["read", "search-type", "operation"]

_ID = re.compile(r"\A[A-Za-z0-9\-.]{1,64}\Z")
_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_\-.:]{0,99}\Z")
_OLD_OBSERVATION_CATEGORY = "http://hl7.org/fhir/observation-category"
_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "fhir+json"})
# Result parameters ldn understands; the others named in FHIR R4 are refused (or ignored when lenient).
_RESULT_PARAMS = frozenset({"_count", "_offset", "_format"})

OPERATIONS: tuple[dict[str, str], ...] = (
    {"name": "bgz", "definition": "https://ldn.example.org/fhir/OperationDefinition/Patient-bgz"},
)


def capability_resources() -> dict[str, dict[str, Any]]:
    """Resource entries for the node's CapabilityStatement: interactions and search parameters."""
    out: dict[str, dict[str, Any]] = {}
    for rtype in sorted(SEARCH_PARAMS):
        params: dict[str, str] = {name: p.type for name, p in SEARCH_PARAMS[rtype].items() if name != "_id"}
        params["_id"] = "token"
        for name in ("patient", "subject"):
            if name in params:
                params[f"{name}:identifier"] = "token"
        params["_count"] = "number"
        out[rtype] = {"interactions": ("read", "search-type"), "search_params": dict(sorted(params.items()))}
    return out


# ---------------------------------------------------------------------------------------- hooks


async def authorize_request(
    request: Request,
    caller: Caller,
    resource_type: str,
    patient_bsn: str | None,
    *,
    interaction: Interaction,
    resource_id: str | None = None,
    search_params: Mapping[str, Sequence[str]] | None = None,
    categories: frozenset[str] = frozenset(),
    sensitivity: str | None = None,
) -> None:
    """The policy enforcement point of the node's FHIR API: return to allow, raise `Forbidden` to refuse.

    Called once per request, after the token is checked and the request parsed, before any patient
    data is returned (for a read the resource has been looked up, to learn its patient and category).

    - `caller`: who asks (organisation URA, professional, role, bound patient, authorization base);
    - `resource_type`, `resource_id` (reads), `interaction`: "read", "search-type" or "operation";
    - `patient_bsn`: the patient the request concerns (None only for a search naming a local
      Patient id this node does not know: such a search finds nothing);
    - `search_params`: the query as received (name, with modifier, -> values);
    - `categories`: the NVI data categories (SPEC §6) the request can return;
    - `sensitivity`: for a read, the resource's label (`mental-health` for GGZ data).

    First the token's patient binding, then the authorization issue's PEP (policy decision with
    Mitz consent, SPEC §7-8); the node's URA and facility are in `request.app.state.ctx`.
    """
    if not caller.has_scope("fhir:read"):  # the route dependency checked it; never rely on one place
        raise Forbidden("token lacks scope fhir:read", details_code="insufficient-scope")
    if caller.patient is not None and caller.patient != patient_bsn:
        raise Forbidden(
            "the request concerns another patient than the one the access token is bound to",
            details_code="patient-mismatch",
        )
    if caller.authorization_base is not None:
        # Notified pull (verwijzen): the token names a referral this node sent; the referral's own
        # limits decide (owner, listed queries, restriction end, status), not the general pull rules.
        from ldn.patterns.enforcement import authorize_referral_request

        await authorize_referral_request(
            request,
            caller,
            resource_type,
            patient_bsn,
            interaction=interaction,
            resource_id=resource_id,
            search_params=search_params,
            categories=categories,
        )
        return
    # The policy enforcement point (ldn.authz.pep): policy decision with the Mitz closed question;
    # raises AccessDenied (403) to refuse. LDN_AUTHZ_PEP_ENABLED=false leaves only the checks above.
    from ldn.authz.pep import authorize_fhir_request

    await authorize_fhir_request(
        request,
        caller,
        resource_type,
        patient_bsn,
        interaction=interaction,
        resource_id=resource_id,
        search_params=search_params,
        categories=categories,
        sensitivity=sensitivity,
    )


async def audit_hook(
    request: Request,
    caller: Caller,
    resource_type: str,
    patient_bsn: str | None,
    *,
    interaction: Interaction,
    outcome: Literal["success", "refused"],
    status: int,
    resource_ids: Sequence[str] = (),
    categories: frozenset[str] = frozenset(),
    query: str | None = None,
) -> None:
    """NEN 7513 call point: one call per request that reached the authorization decision.

    Records `fhir.read.holder` / `fhir.search.holder` through `ldn.audit` (ldn.patterns.audit)
    before the answer leaves: if recording fails (AuditUnavailable, 503), the request fails.
    `outcome` is "success" (the data is returned) or "refused" (`authorize_request` said no;
    `status` is the refusal's HTTP status). `resource_ids` are the returned resources as
    `Type/id`; `query` is the query string as sent (stored with BSNs masked).
    """
    from ldn.patterns.audit import record_holder_access

    await record_holder_access(
        request,
        caller,
        resource_type,
        patient_bsn,
        interaction=interaction,
        outcome=outcome,
        status=status,
        resource_ids=resource_ids,
        categories=categories,
        query=query,
    )


# ---------------------------------------------------------------------------------------- parsing


def _bad(message: str, *, code: str = "invalid", details: str | None = None) -> BadRequest:
    return BadRequest(message, code=code, details_code=details)


def _shown(name: str) -> str:
    """A parameter name safe to echo in a diagnostic."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in name[:64])
    return repr(cleaned)


def _split_values(value: str) -> list[str]:
    """Split a FHIR search value on unescaped commas; escapes (`\\,`, `\\|`) stay for the value parser."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _split_token(value: str) -> tuple[str | None, str | None]:
    # `system|code`, `|code` (no system), `system|` (any code of system), `code` (any system).
    # A pipe escaped as `\|` belongs to the code (FHIR escaping).
    index = -1
    i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == "|":
            index = i
            break
        i += 1
    if index < 0:
        return None, _unescape(value)
    system, code = value[:index], _unescape(value[index + 1 :])
    return system, code or None


_DATE = re.compile(
    r"\A(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d{1,9})?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?\Z"
)
_PREFIXES: tuple[DatePrefix, ...] = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")


def parse_date_value(value: str) -> tuple[DatePrefix, datetime, datetime]:
    """A date search value: prefix plus the interval its precision denotes. Times without a zone
    are taken as UTC (FHIR lets the server choose)."""
    prefix: DatePrefix = "eq"
    if value[:2] in _PREFIXES:
        prefix = value[:2]  # type: ignore[assignment]
        value = value[2:]
    match = _DATE.match(value)
    if not match:
        raise _bad("date value must be YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with optional prefix", code="value")
    g = match.groupdict()
    try:
        year = int(g["year"])
        if g["month"] is None:
            low = datetime(year, 1, 1, tzinfo=UTC)
            high = datetime(year + 1, 1, 1, tzinfo=UTC)
        elif g["day"] is None:
            month = int(g["month"])
            low = datetime(year, month, 1, tzinfo=UTC)
            high = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        elif g["hour"] is None:
            low = datetime(year, int(g["month"]), int(g["day"]), tzinfo=UTC)
            high = low + timedelta(days=1)
        else:
            text = value if g["tz"] else value + "+00:00"
            low = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
            if g["second"] is None:
                high = low + timedelta(minutes=1)
            elif g["fraction"] is None:
                high = low + timedelta(seconds=1)
            else:
                high = low + timedelta(milliseconds=1)
    except ValueError:
        raise _bad("date value is not a valid date", code="value") from None
    return prefix, low, high


PatientSelector = tuple[Literal["identifier", "reference"], str]


@dataclass
class ParsedSearch:
    """A search as the node understood it."""

    patient: PatientSelector | None = None
    ids: tuple[str, ...] | None = None
    tokens: list[TokenFilter] = field(default_factory=list)
    dates: list[DateFilter] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    applied: list[tuple[str, str]] = field(default_factory=list)  # for the self/next links
    ignored: list[str] = field(default_factory=list)
    raw: dict[str, list[str]] = field(default_factory=dict)

    def __repr__(self) -> str:  # the selector may hold a BSN
        return f"ParsedSearch(tokens={self.tokens}, count={self.count}, offset={self.offset})"


_PATIENT_SELECTORS = {
    "patient.identifier": "identifier",
    "patient:identifier": "identifier",
    "subject.identifier": "identifier",
    "subject:identifier": "identifier",
    "subject:Patient.identifier": "identifier",
    "patient": "reference",
    "subject": "reference",
    "subject:Patient": "reference",
}


def _selector_allowed(resource_type: str, name: str) -> bool:
    base = name.split(":", 1)[0].split(".", 1)[0]
    return base in SEARCH_PARAMS[resource_type] and SEARCH_PARAMS[resource_type][base].type == "reference"


def _int_param(name: str, value: str, low: int, high: int) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise _bad(f"{name} must be a whole number", code="value")
    number = int(value)
    if number < low or number > high:
        raise _bad(f"{name} must be between {low} and {high}", code="value", details=f"{name.strip('_')}-out-of-range")
    return number


def _check_format(value: str) -> None:
    if value.split(";", 1)[0].strip().lower() not in _JSON_FORMATS:
        raise ServiceError("only JSON is supported (_format)", status=406, code="not-supported")


def parse_search(resource_type: str, items: Sequence[tuple[str, str]], *, lenient: bool = False) -> ParsedSearch:
    """Parse a search's query parameters for `resource_type` (400 on anything malformed)."""
    if len(items) > MAX_PARAMS:
        raise _bad(f"too many search parameters (at most {MAX_PARAMS})", code="too-long")
    params = SEARCH_PARAMS[resource_type]
    parsed = ParsedSearch()
    unknown: list[str] = []
    seen_result: set[str] = set()
    for name, value in items:
        if len(value) > MAX_VALUE_LENGTH or len(name) > 100:
            raise _bad("search parameter too long", code="too-long")
        if not _NAME.match(name):
            unknown.append(name)
            continue
        parsed.raw.setdefault(name, []).append(value)
        if name in _RESULT_PARAMS:
            if name in seen_result:
                raise _bad(f"{name} may be given once", code="value")
            seen_result.add(name)
            if name == "_count":
                parsed.count = _int_param("_count", value, 0, MAX_COUNT)
            elif name == "_offset":
                parsed.offset = _int_param("_offset", value, 0, MAX_OFFSET)
            else:
                _check_format(value)
            continue
        selector = _PATIENT_SELECTORS.get(name)
        if resource_type == "Patient" and name in ("identifier", "_id"):
            selector = "identifier" if name == "identifier" else "reference"
        elif selector is not None and not _selector_allowed(resource_type, name):
            selector = None
        if selector is not None:
            if parsed.patient is not None:
                raise _bad("a search concerns exactly one patient: give one patient parameter", details="one-patient")
            if not value or len(_split_values(value)) != 1:
                raise _bad("a search concerns exactly one patient: give one patient value", details="one-patient")
            parsed.patient = (selector, value)  # type: ignore[assignment]
            parsed.applied.append((name, value))
            continue
        base, _, modifier = name.partition(":")
        param = params.get(base)
        if param is None or "." in base:
            unknown.append(name)
            continue
        if modifier:
            raise _bad(f"modifier :{modifier[:32]} is not supported on {base}", code="not-supported")
        if value == "":
            continue  # FHIR: an empty parameter is ignored
        alternatives = _split_values(value)
        if param.name == "_id":
            if not all(_ID.match(v) for v in alternatives):
                raise _bad("_id must be FHIR ids", code="value")
            parsed.ids = tuple(alternatives) if parsed.ids is None else tuple(set(parsed.ids) & set(alternatives))
        elif param.type == "token":
            tokens = tuple(_split_token(v) for v in alternatives)
            if any(code is None and not system for system, code in tokens):
                raise _bad(f"empty token value for {base}", code="value")
            parsed.tokens.append(TokenFilter(base, tokens))
        elif param.type == "date":
            column: Literal["last_updated", "clinical_date"] = (
                "last_updated" if base == "_lastUpdated" else "clinical_date"
            )
            parsed.dates.append(DateFilter(column, tuple(parse_date_value(v) for v in alternatives)))
        else:  # a reference parameter with a value we did not take as the patient
            unknown.append(name)
            continue
        parsed.applied.append((name, value))
    if unknown:
        names = ", ".join(_shown(n) for n in unknown[:5])
        if not lenient:
            raise _bad(
                f"unknown or unsupported search parameter(s) for {resource_type}: {names} "
                "(send 'Prefer: handling=lenient' to have them ignored)",
                code="not-supported",
                details="unknown-search-parameter",
            )
        parsed.ignored = [n[:64] for n in unknown]
    return parsed


def is_lenient(request: Request) -> bool:
    """`Prefer: handling=lenient` (strict is the default)."""
    for header in request.headers.getlist("prefer"):
        for part in re.split(r"[,;]", header):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "handling" and value.strip().strip('"').lower() == "lenient":
                return True
    return False


def parse_patient_identifier(value: str) -> str:
    """`http://fhir.nl/fhir/NamingSystem/bsn|<BSN>` -> the BSN (400 for anything else)."""
    system, sep, bsn = value.partition("|")
    if not sep or not system:
        raise _bad(f"patient identifier must be '{SYSTEM_BSN}|<BSN>'", code="value", details="malformed-identifier")
    if system != SYSTEM_BSN:
        raise _bad(
            f"only the BSN system {SYSTEM_BSN} identifies patients here", code="value", details="malformed-identifier"
        )
    try:
        return BSN.parse(bsn).value
    except IdentifierError:
        raise _bad("patient identifier is not a valid BSN", code="value", details="malformed-identifier") from None


def observation_categories(tokens: Sequence[TokenFilter]) -> frozenset[str]:
    """The NVI categories an Observation search can return, narrowed by its `category` parameters."""
    every = frozenset({"ObservationLaboratory", "ObservationVitalSigns"})
    result = set(every)
    for flt in tokens:
        if flt.param != "category":
            continue
        narrowed: set[str] = set()
        for system, code in flt.alternatives:
            if system in (None, OBSERVATION_CATEGORY, _OLD_OBSERVATION_CATEGORY) and code == "laboratory":
                narrowed.add("ObservationLaboratory")
            elif system in (None, OBSERVATION_CATEGORY, _OLD_OBSERVATION_CATEGORY) and code == "vital-signs":
                narrowed.add("ObservationVitalSigns")
            elif (system, code) == BGZ_LAB_CATEGORY[:2]:
                narrowed.add("ObservationLaboratory")
            else:
                narrowed = set(every)  # an unknown category value narrows nothing
                break
        result &= narrowed
    return frozenset(result)


_TYPE_CATEGORY = {
    "Patient": "Patient",
    "AllergyIntolerance": "AllergyIntolerance",
    "Condition": "Condition",
    "Encounter": "Encounter",
    "MedicationRequest": "MedicationRequest",
    "MedicationStatement": "MedicationUse",
    "Procedure": "Procedure",
}


def categories_of_search(resource_type: str, tokens: Sequence[TokenFilter]) -> frozenset[str]:
    if resource_type == "Observation":
        return observation_categories(tokens)
    return frozenset({_TYPE_CATEGORY[resource_type]})


# ---------------------------------------------------------------------------------------- service layer


@dataclass(frozen=True)
class FhirRequest:
    """The patient a request concerns, resolved: the BSN and its hash (None when unknown here)."""

    patient_bsn: str | None
    patient_hash: bytes | None

    def __repr__(self) -> str:
        return f"FhirRequest(known={self.patient_hash is not None})"


class NodeFhirService:
    """The rules of one node's FHIR store: loading, patient resolution, read and search."""

    def __init__(self, ctx: ServiceContext, ura: str) -> None:
        self.ctx = ctx
        self.ura = ura
        self._hasher: BsnHasher | None = None

    @property
    def hasher(self) -> BsnHasher:
        if self._hasher is None:
            self._hasher = BsnHasher.for_node(self.ctx.settings.data_dir, self.ura)
        return self._hasher

    async def load_synthetic_ehr(self, *, seed: str | None = None) -> int:
        """Fill the store with the synthetic EHR when it is empty; the number of resources loaded."""
        chosen = seed or EhrSettings().seed
        hasher = self.hasher

        def work(session: Any) -> int:
            if not store.is_empty(session, self.ura):
                return 0
            items = [
                NewResource(r.resource, r.category, r.sensitivity, hasher(r.bsn))
                for r in _synthetic_resources(self.ctx.topology, self.ura, chosen)
            ]
            return store.insert_resources(session, self.ura, items)

        try:
            loaded = await self.ctx.database.run(work)
        except IntegrityError:
            # Another process loading the same node at the same moment won the race.
            logger.info("node %s FHIR store was filled concurrently", self.ura)
            return 0
        if loaded:
            logger.info("node %s FHIR store loaded with %d synthetic resources", self.ura, loaded)
        return loaded

    async def resolve_patient(self, selector: PatientSelector) -> FhirRequest:
        kind, value = selector
        if kind == "identifier":
            bsn = parse_patient_identifier(value)
            return FhirRequest(bsn, self.hasher(bsn))
        patient_id = value
        base = f"{self.ctx.base_url.rstrip('/')}/fhir/"
        if patient_id.startswith(base):
            patient_id = patient_id[len(base) :]
        patient_id = patient_id.removeprefix("Patient/")
        if not _ID.match(patient_id):
            raise _bad(
                "patient reference must be Patient/<id> on this server", code="value", details="malformed-reference"
            )

        def lookup(session: Any) -> FhirRequest:
            bsn_hash = store.patient_hash_of_id(session, self.ura, patient_id)
            if bsn_hash is None:
                return FhirRequest(None, None)
            return FhirRequest(store.patient_bsn_of(session, self.ura, bsn_hash), bsn_hash)

        return await self.ctx.database.run(lookup, readonly=True)

    async def search(
        self, resource_type: str, patient: FhirRequest, parsed: ParsedSearch
    ) -> tuple[list[StoredResource], int]:
        if patient.patient_hash is None:
            return [], 0
        criteria = SearchCriteria(
            patient_bsn_hash=patient.patient_hash,
            ids=parsed.ids,
            tokens=tuple(parsed.tokens),
            dates=tuple(parsed.dates),
        )
        return await self.ctx.database.run(
            store.search,
            self.ura,
            resource_type,
            criteria,
            count=parsed.count,
            offset=parsed.offset,
            readonly=True,
        )

    async def read(self, resource_type: str, resource_id: str) -> tuple[StoredResource, str | None]:
        """The resource and its patient's BSN (404 when the node has no such resource)."""

        def work(session: Any) -> tuple[StoredResource | None, str | None]:
            row = store.read(session, self.ura, resource_type, resource_id)
            if row is None or row.patient_bsn_hash is None:
                return row, None
            return row, store.patient_bsn_of(session, self.ura, row.patient_bsn_hash)

        row, bsn = await self.ctx.database.run(work, readonly=True)
        if row is None:
            raise NotFound(f"{resource_type}/{resource_id} is not known here")
        return row, bsn

    async def patient_record(self, patient: FhirRequest) -> list[StoredResource]:
        if patient.patient_hash is None:
            return []
        return await self.ctx.database.run(store.patient_resources, self.ura, patient.patient_hash, readonly=True)


_SYNTHETIC_CACHE: OrderedDict[tuple[str, str, str], tuple[EhrResource, ...]] = OrderedDict()
_SYNTHETIC_LOCK = threading.Lock()


def _synthetic_resources(topology: Topology, ura: str, seed: str) -> tuple[EhrResource, ...]:
    """The generated EHR of one node, kept per (topology, node, seed): generating costs more than
    loading, and a process (a test run above all) starts many networks from one topology."""
    digest = hashlib.sha256(topology.model_dump_json().encode()).hexdigest()
    key = (digest, ura, seed)
    with _SYNTHETIC_LOCK:
        cached = _SYNTHETIC_CACHE.get(key)
        if cached is not None:
            _SYNTHETIC_CACHE.move_to_end(key)
            return cached
    generated = tuple(node_resources(topology, ura, seed=seed))
    with _SYNTHETIC_LOCK:
        _SYNTHETIC_CACHE[key] = generated
        while len(_SYNTHETIC_CACHE) > 64:
            _SYNTHETIC_CACHE.popitem(last=False)
    return generated


def node_fhir_service(ctx: ServiceContext, ura: str) -> NodeFhirService:
    existing = ctx.extras.get("node_fhir")
    if isinstance(existing, NodeFhirService):
        return existing
    service = NodeFhirService(ctx, ura)
    ctx.extras["node_fhir"] = service
    return service


# ---------------------------------------------------------------------------------------- router


def _supported_type(resource_type: str) -> str:
    if resource_type not in PATIENT_TYPES:
        raise NotFound(f"resource type {resource_type[:64]!r} is not served here", code="not-supported")
    return resource_type


def _outcome_entry(ignored: Sequence[str]) -> dict[str, Any]:
    names = ", ".join(_shown(n) for n in ignored[:10])
    oo = operation_outcome("not-supported", f"search parameters ignored: {names}", severity="warning")
    return {"resource": oo, "search": {"mode": "outcome"}}


def fhir_router(ctx: ServiceContext, ura: str) -> APIRouter:
    """The node's patient-data routes; its lifespan loads the synthetic EHR into an empty store."""
    service = node_fhir_service(ctx, ura)
    fhir_base = f"{ctx.base_url.rstrip('/')}/fhir"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if EhrSettings().autoload:
            await service.load_synthetic_ehr()
        yield

    router = APIRouter(prefix="/fhir", tags=["fhir"], lifespan=lifespan)

    async def decide(
        request: Request,
        caller: Caller,
        resource_type: str,
        patient_bsn: str | None,
        interaction: Interaction,
        *,
        categories: frozenset[str],
        resource_id: str | None = None,
        search_params: Mapping[str, Sequence[str]] | None = None,
        sensitivity: str | None = None,
    ) -> None:
        try:
            await authorize_request(
                request,
                caller,
                resource_type,
                patient_bsn,
                interaction=interaction,
                resource_id=resource_id,
                search_params=search_params,
                categories=categories,
                sensitivity=sensitivity,
            )
        except ServiceError as exc:
            await audit_hook(
                request,
                caller,
                resource_type,
                patient_bsn,
                interaction=interaction,
                outcome="refused",
                status=exc.status,
                categories=categories,
                query=request.url.query or None,
            )
            raise

    @router.get("/Patient/$bgz", summary="The patient's data as a BgZ 2017 (FHIR STU3) Bundle")
    async def bgz(request: Request, caller: Caller = Depends(require_caller("fhir:read"))) -> FhirResponse:
        items = list(request.query_params.multi_items())
        selectors = [(n, v) for n, v in items if n in ("patient.identifier", "patient:identifier", "identifier")]
        rest = [(n, v) for n, v in items if n not in ("patient.identifier", "patient:identifier", "identifier")]
        if len(selectors) != 1:
            raise _bad("$bgz needs exactly one patient.identifier", code="required", details="patient-required")
        for name, value in rest:
            if name == "_format":
                _check_format(value)
            elif not is_lenient(request):
                raise _bad(
                    f"parameter not supported by $bgz: {_shown(name)}",
                    code="not-supported",
                    details="unknown-search-parameter",
                )
        patient = await service.resolve_patient(("identifier", selectors[0][1]))
        record = await service.patient_record(patient)
        categories = frozenset(r.category for r in record)
        await decide(
            request,
            caller,
            "Patient",
            patient.patient_bsn,
            "operation",
            categories=categories,
            search_params={n: [v] for n, v in selectors},
        )
        bundle = bgz_bundle([r.resource for r in record], base_url=fhir_base)
        await audit_hook(
            request,
            caller,
            "Patient",
            patient.patient_bsn,
            interaction="operation",
            outcome="success",
            status=200,
            resource_ids=[f"{r.resource_type}/{r.resource_id}" for r in record],
            categories=categories,
            query=request.url.query or None,
        )
        response = FhirResponse(bundle)
        response.headers["content-type"] = "application/fhir+json; fhirVersion=3.0"
        return response

    @router.get("/{resource_type}", summary="Search one patient's resources of a type")
    async def search_type(
        request: Request, resource_type: str, caller: Caller = Depends(require_caller("fhir:read"))
    ) -> FhirResponse:
        rtype = _supported_type(resource_type)
        if len(request.url.query) > MAX_QUERY_LENGTH:
            raise _bad("query string too long", code="too-long")
        parsed = parse_search(rtype, list(request.query_params.multi_items()), lenient=is_lenient(request))
        if parsed.patient is None:
            raise _bad(
                f"a search on {rtype} must name one patient (patient.identifier={SYSTEM_BSN}|<BSN>)",
                code="required",
                details="patient-required",
            )
        patient = await service.resolve_patient(parsed.patient)
        categories = categories_of_search(rtype, parsed.tokens)
        await decide(
            request,
            caller,
            rtype,
            patient.patient_bsn,
            "search-type",
            categories=categories,
            search_params=parsed.raw,
        )
        rows, total = await service.search(rtype, patient, parsed)
        await audit_hook(
            request,
            caller,
            rtype,
            patient.patient_bsn,
            interaction="search-type",
            outcome="success",
            status=200,
            resource_ids=[f"{r.resource_type}/{r.resource_id}" for r in rows],
            categories=categories,
            query=request.url.query or None,
        )
        path = f"{fhir_base}/{rtype}"
        page = [*parsed.applied, ("_count", str(parsed.count))]
        self_params = [*page, ("_offset", str(parsed.offset))] if parsed.offset else page
        next_params = None
        if parsed.count and parsed.offset + parsed.count < total:
            next_params = [*page, ("_offset", str(parsed.offset + parsed.count))]
        previous_params = None
        if parsed.offset and parsed.count:
            previous = max(parsed.offset - parsed.count, 0)
            previous_params = [*page, ("_offset", str(previous))] if previous else page
        bundle = bundle_searchset(
            [r.resource for r in rows],
            base_url=fhir_base,
            self_url=f"{path}?{urlencode(self_params)}",
            total=total,
            next_params=_as_multi(next_params),
            previous_params=_as_multi(previous_params),
            search_path=path,
        )
        if parsed.ignored:
            bundle["entry"].append(_outcome_entry(parsed.ignored))
        return FhirResponse(bundle)

    @router.get("/{resource_type}/{resource_id}", summary="Read a resource")
    async def read(
        request: Request,
        resource_type: str,
        resource_id: str,
        caller: Caller = Depends(require_caller("fhir:read")),
    ) -> FhirResponse:
        rtype = _supported_type(resource_type)
        if not _ID.match(resource_id):
            raise _bad("resource id must be 1-64 characters A-Z a-z 0-9 - .", code="value")
        items = list(request.query_params.multi_items())
        unknown = [n for n, _ in items if n != "_format"]
        if unknown and not is_lenient(request):
            raise _bad(
                f"parameters not supported on read: {', '.join(_shown(n) for n in unknown[:5])}",
                code="not-supported",
                details="unknown-search-parameter",
            )
        for name, value in items:
            if name == "_format":
                _check_format(value)
        row, bsn = await service.read(rtype, resource_id)
        categories = frozenset({row.category})
        await decide(
            request,
            caller,
            rtype,
            bsn,
            "read",
            categories=categories,
            resource_id=resource_id,
            sensitivity=row.sensitivity,
        )
        await audit_hook(
            request,
            caller,
            rtype,
            bsn,
            interaction="read",
            outcome="success",
            status=200,
            resource_ids=[f"{rtype}/{resource_id}"],
            categories=categories,
        )
        headers = {
            "ETag": f'W/"{row.version_id}"',
            "Last-Modified": format_datetime(row.last_updated.astimezone(UTC), usegmt=True),
        }
        return FhirResponse(row.resource, headers=headers)

    return router


def _as_multi(params: list[tuple[str, str]] | None) -> dict[str, list[str]] | None:
    if params is None:
        return None
    out: dict[str, list[str]] = {}
    for name, value in params:
        out.setdefault(name, []).append(value)
    return out
