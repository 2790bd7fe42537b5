"""The central mCSD directory's rules: create, update, soft delete (ITI-130), read, search (ITI-90),
history (ITI-91) and transaction Bundles.

A write is accepted only when the resource is valid FHIR R4, chains up to a top-level Organization
with a URA that the LRZa lists as an active care provider, and the caller is a source the LRZa
links to that URA (the provider itself, or an organisation it mandated with an active
OrganizationAffiliation). Mandates themselves are written only by the provider. `If-Match`
gives optimistic locking; an update that changes nothing makes no new version; a delete sets the
resource inactive (no hard deletes).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session

from ldn.addressing import lrza, store
from ldn.addressing.codes import AUTHORIZATION_TYPE_SYSTEM, MANDATE_CODE, SYSTEM_URA, source_uri
from ldn.addressing.model import (
    MCSD_TYPES,
    chain_link,
    check_id,
    check_type,
    deactivated,
    parse_reference,
    ura_of,
    us_to_instant,
    without_server_meta,
)
from ldn.addressing.search import (
    HistoryRequest,
    SearchRequest,
    SearchResult,
    parse_search,
    run_search,
)
from ldn.addressing.searchparams import extract
from ldn.addressing.settings import AddressingSettings
from ldn.addressing.store import HistoryRow, Stored
from ldn.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ServiceError,
    Unprocessable,
)
from ldn.core.fhir import bundle_entries, validate_resource
from ldn.core.identifiers import URA
from ldn.core.storage import Database

MAX_CHAIN_DEPTH = 10
MAX_TRANSACTION_ENTRIES = 1000
_ETAG = re.compile(r'\A(?:W/)?"?([0-9]{1,9})"?\Z')


def parse_etag(value: str) -> int:
    """The version in an `If-Match` value: `W/"3"`, `"3"` or `3`."""
    match = _ETAG.match(value.strip())
    if not match:
        raise BadRequest(f'malformed If-Match {value[:40]!r}; expected W/"<versionId>"', code="value")
    return int(match.group(1))


@dataclass
class _Entry:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    resource: dict[str, Any] | None
    full_url: str | None
    if_match: str | None
    if_none_exist: str | None = None
    existing: Stored | None = None  # what a conditional create found instead of creating


@dataclass(frozen=True)
class WriteResult:
    stored: Stored
    created: bool
    changed: bool


class DirectoryService:
    """Service layer of the mCSD directory (one per app, stateless apart from configuration)."""

    def __init__(self, database: Database, settings: AddressingSettings, base_url: str) -> None:
        self.database = database
        self.settings = settings
        self.base_url = base_url.rstrip("/")

    # ---- chain and authorization ------------------------------------------------------------

    def owner_of(
        self, session: Session, resource_type: str, resource_id: str | None, content: Mapping[str, Any]
    ) -> str:
        """The URA of the top-level Organization this resource chains to; 422 when there is none."""
        seen = {(resource_type, resource_id)}
        link = chain_link(resource_type, dict(content), self.base_url)
        where = f"{resource_type}/{resource_id or '(new)'}"
        for _ in range(MAX_CHAIN_DEPTH):
            if link.ura is not None:
                ura = URA.parse(link.ura).value
                if link.self_is_top:
                    return ura
                if not store.ids_with_token(session, "Organization", "identifier", SYSTEM_URA, ura):
                    raise Unprocessable(
                        f"{where}: {link.via} names URA {ura}, but the directory has no Organization with that URA",
                        code="business-rule",
                        details_code="no-ura-chain",
                    )
                return ura
            if link.parent is None:
                raise Unprocessable(
                    f"{where} does not chain to a top-level Organization with a URA "
                    "(Organization needs a URA identifier or partOf; Location managingOrganization; "
                    "HealthcareService providedBy; OrganizationAffiliation organization; Endpoint "
                    "managingOrganization or a URA-assigned identifier)",
                    code="business-rule",
                    details_code="no-ura-chain",
                )
            if link.parent in seen:
                raise Unprocessable(
                    f"{where}: reference cycle at {link.parent[0]}/{link.parent[1]}", code="business-rule"
                )
            seen.add(link.parent)
            parent = store.get_current(session, *link.parent)
            if parent is None:
                raise Unprocessable(
                    f"{where}: {link.via} refers to {link.parent[0]}/{link.parent[1]}, which is not in the directory",
                    code="business-rule",
                    details_code="no-ura-chain",
                )
            link = chain_link(parent.resource_type, parent.content, self.base_url)
        raise Unprocessable(f"{where}: the chain to a top-level Organization is too deep", code="business-rule")

    @staticmethod
    def authorize(session: Session, resource_type: str, owner: str, publisher: str) -> None:
        sources = lrza.authorized_sources(session, owner)
        if sources is None:
            raise Unprocessable(
                f"URA {owner} is not an active care provider in the LRZa",
                code="business-rule",
                details_code="ura-not-registered",
            )
        if resource_type == "OrganizationAffiliation":
            # Mandates are registered by the care provider, never by the party being mandated.
            if publisher != owner:
                raise Forbidden(
                    f"only care provider {owner} itself may register or change its OrganizationAffiliations",
                    details_code="no-mandate",
                )
        elif publisher not in sources:
            raise Forbidden(
                f"organisation {publisher} has no mandate to publish addressing data for {owner}",
                details_code="no-mandate",
            )

    # ---- writes (synchronous, inside a transaction) -----------------------------------------

    def write(
        self,
        session: Session,
        resource_type: str,
        resource_id: str | None,
        body: Mapping[str, Any],
        publisher: str,
        *,
        if_match: str | None = None,
        precondition_required: bool = False,
        validate: bool = True,
    ) -> WriteResult:
        """Create (`resource_id` None: POST) or update/create-on-update (PUT) one resource.

        `precondition_required`: refuse to change an existing resource without `if_match` (428).
        Requests from outside ask for it per the settings; the operator's own writes (publication)
        read the current version under the same write lock, so they cannot lose an update.
        """
        check_type(resource_type)
        if validate:
            validate_resource(dict(body), resource_type)
        content = dict(body)
        if resource_id is None:
            resource_id = str(uuid.uuid4())
        else:
            check_id(resource_id)
            if content.get("id") != resource_id:
                raise BadRequest(
                    f"resource id {str(content.get('id'))[:64]!r} does not match the URL id {resource_id!r}",
                    code="invalid",
                    expression=[f"{resource_type}.id"],
                )
        content["id"] = resource_id
        store.write_lock(session)
        current = store.get_current(session, resource_type, resource_id)
        owner = self.owner_of(session, resource_type, resource_id, content)
        self.authorize(session, resource_type, owner, publisher)
        if current is not None:
            old_owner = self._old_owner(session, current)
            if old_owner is not None and old_owner != owner:
                self.authorize(session, resource_type, old_owner, publisher)
        # After authorization: a caller without a mandate learns nothing about versions.
        if if_match is not None:
            expected = parse_etag(if_match)
            if current is None or current.version_id != expected:
                have = "no current version" if current is None else f"current version is {current.version_id}"
                raise PreconditionFailed(
                    f"If-Match version {expected} does not match: {have}", details_code="version-conflict"
                )
        elif current is not None and precondition_required:
            raise ServiceError(
                f"{resource_type}/{resource_id} exists: changing it needs If-Match with the version it was read "
                "at (the ETag of that read; optimistic locking, LAS-TA-ADDR-002)",
                status=428,
                code="required",
            )
        if resource_type == "Organization" and current is not None and ura_of(current.content) != ura_of(content):
            raise Unprocessable(
                "the URA of an Organization cannot change; register a new Organization",
                code="business-rule",
                details_code="ura-immutable",
            )
        if resource_type == "Organization":
            ura = ura_of(content)
            if ura is not None and any(
                other != resource_id
                for other in store.ids_with_token(session, "Organization", "identifier", SYSTEM_URA, ura)
            ):
                raise Conflict(
                    f"another Organization already carries URA {ura}", code="duplicate", details_code="duplicate-ura"
                )
        if current is not None and without_server_meta(current.content) == without_server_meta(content):
            return WriteResult(current, created=False, changed=False)
        version = current.version_id + 1 if current is not None else 1
        stamp = store.next_timestamp(session)
        client_meta = {
            k: v for k, v in (content.get("meta") or {}).items() if k not in ("versionId", "lastUpdated", "source")
        }
        meta = {
            **client_meta,
            "versionId": str(version),
            "lastUpdated": us_to_instant(stamp),
            "source": source_uri(publisher),
        }
        rest = {k: v for k, v in content.items() if k not in ("resourceType", "id", "meta")}
        final = {"resourceType": resource_type, "id": resource_id, "meta": meta, **rest}
        store.put(
            session,
            resource_type=resource_type,
            resource_id=resource_id,
            version_id=version,
            last_updated=stamp,
            publisher_ura=publisher,
            content=final,
            index_rows=extract(resource_type, final, self.base_url),
            created=current is None,
        )
        if resource_type == "OrganizationAffiliation":
            self._sync_mandate(session, resource_id, final, owner)
        stored = Stored(resource_type, resource_id, version, stamp, publisher, final)
        return WriteResult(stored, created=current is None, changed=True)

    def conditional_match(self, session: Session, resource_type: str, query: str, publisher: str) -> Stored | None:
        """What a conditional create (`If-None-Exist: <query>`) finds: None when nothing matches
        (create), the one match (do not create; the publisher must be allowed to write it, as
        for an update), 412 when the query matches more than one. Call with the write lock held,
        so two replays of one create cannot both create."""
        items = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        if not items:
            raise BadRequest("If-None-Exist needs search parameters, e.g. identifier=<system>|<value>", code="value")
        request = parse_search(
            resource_type, items, strict=True, default_count=2, max_count=self.settings.search_max_count
        )
        if not request.conditions:
            raise BadRequest("If-None-Exist needs at least one search condition", code="value")
        request.count, request.total, request.summary_count = 2, "none", False
        request.includes, request.revincludes = [], []
        matches = run_search(session, request).matches
        if len(matches) > 1:
            raise PreconditionFailed(
                f"If-None-Exist {query[:120]!r} matches more than one {resource_type}",
                details_code="multiple-matches",
            )
        if not matches:
            return None
        found = store.get_current(session, resource_type, matches[0][0])
        if found is not None:
            self.authorize(
                session, resource_type, self.owner_of(session, resource_type, found.id, found.content), publisher
            )
        return found

    def create_conditional(
        self, session: Session, resource_type: str, body: Mapping[str, Any], publisher: str, if_none_exist: str | None
    ) -> WriteResult:
        """POST: create, unless `if_none_exist` finds the resource already (a replayed create)."""
        if if_none_exist is not None:
            check_type(resource_type)
            store.write_lock(session)
            found = self.conditional_match(session, resource_type, if_none_exist, publisher)
            if found is not None:
                return WriteResult(found, created=False, changed=False)
        return self.write(session, resource_type, None, body, publisher)

    def _old_owner(self, session: Session, current: Stored) -> str | None:
        try:
            return self.owner_of(session, current.resource_type, current.id, current.content)
        except ServiceError:
            return None

    def soft_delete(
        self,
        session: Session,
        resource_type: str,
        resource_id: str,
        publisher: str,
        *,
        if_match: str | None = None,
        precondition_required: bool = False,
    ) -> WriteResult:
        """FHIR delete without deleting: the resource is set inactive in a new version."""
        check_type(resource_type)
        check_id(resource_id)
        store.write_lock(session)
        current = store.get_current(session, resource_type, resource_id)
        if current is None:
            raise NotFound(f"{resource_type}/{resource_id} is not in the directory")
        body = deactivated(resource_type, without_server_meta(current.content))
        return self.write(
            session,
            resource_type,
            resource_id,
            body,
            publisher,
            if_match=if_match,
            precondition_required=precondition_required,
            validate=False,
        )

    def _sync_mandate(self, session: Session, affiliation_id: str, content: dict[str, Any], owner: str) -> None:
        mandated: str | None = None
        codes = {
            (c.get("system"), c.get("code"))
            for cc in content.get("code") or []
            for c in (cc.get("coding") or [] if isinstance(cc, dict) else [])
            if isinstance(c, dict)
        }
        if content.get("active") is True and (AUTHORIZATION_TYPE_SYSTEM, MANDATE_CODE) in codes:
            participant = content.get("participatingOrganization") or {}
            identifier = participant.get("identifier") or {}
            if identifier.get("system") == SYSTEM_URA and isinstance(identifier.get("value"), str):
                mandated = URA.parse(identifier["value"]).value
            else:
                parsed = parse_reference(participant.get("reference"), self.base_url)
                if parsed is not None and parsed[0] == "Organization":
                    target = store.get_current(session, *parsed)
                    mandated = ura_of(target.content) if target is not None else None
            if mandated is None:
                raise Unprocessable(
                    "a mandate (lrza-careprovider-admin) needs participatingOrganization with a URA",
                    code="business-rule",
                    details_code="mandate-without-ura",
                )
        lrza.set_mandate(session, affiliation_id, owner, mandated)

    def transaction(
        self, session: Session, bundle: Mapping[str, Any], publisher: str, *, precondition_required: bool = False
    ) -> list[dict[str, Any]]:
        """Apply a transaction Bundle atomically: DELETEs, then POSTs, then PUTs, each in Bundle order
        (`request.ifMatch` per entry; `precondition_required` as for `write`)."""
        entries = bundle_entries(dict(bundle), ("transaction",))
        if len(entries) > MAX_TRANSACTION_ENTRIES:
            raise BadRequest(f"a transaction holds at most {MAX_TRANSACTION_ENTRIES} entries", code="too-costly")
        parsed: list[_Entry] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise BadRequest(f"entry {index}: not an object", code="structure")
            request = entry.get("request") or {}
            method = str(request.get("method", "")).upper()
            url = str(request.get("url", "")).split("?", 1)[0].strip("/")
            parts = url.split("/")
            if method not in ("POST", "PUT", "DELETE") or len(parts) > 2 or parts[0] not in MCSD_TYPES:
                raise BadRequest(f"entry {index}: unsupported request {method} {url[:80]}", code="not-supported")
            rid = parts[1] if len(parts) == 2 else None
            if method in ("PUT", "DELETE") and rid is None:
                raise BadRequest(f"entry {index}: {method} needs {parts[0]}/<id>", code="invalid")
            resource = entry.get("resource")
            if method != "DELETE" and not isinstance(resource, dict):
                raise BadRequest(f"entry {index}: {method} needs a resource", code="required")
            if_match = request.get("ifMatch")
            if_none_exist = request.get("ifNoneExist")
            parsed.append(
                _Entry(
                    index,
                    method,
                    parts[0],
                    rid,
                    resource if isinstance(resource, dict) else None,
                    entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None,
                    if_match if isinstance(if_match, str) else None,
                    if_none_exist if isinstance(if_none_exist, str) and method == "POST" else None,
                )
            )
        # Give each POSTed resource its id first, so other entries may refer to its urn:uuid.
        assigned: dict[str, str] = {}
        if any(item.if_none_exist for item in parsed):
            store.write_lock(session)
        for item in parsed:
            if item.method == "POST" and item.if_none_exist:
                try:
                    item.existing = self.conditional_match(session, item.resource_type, item.if_none_exist, publisher)
                except ServiceError as exc:
                    exc.diagnostics = f"entry {item.index} (POST {item.resource_type}): {exc.diagnostics}"
                    raise
            if item.method == "POST":
                item.resource_id = item.existing.id if item.existing is not None else str(uuid.uuid4())
                if item.full_url and item.full_url.startswith("urn:uuid:"):
                    assigned[item.full_url] = f"{item.resource_type}/{item.resource_id}"
        results: dict[int, dict[str, Any]] = {}
        order = {"DELETE": 0, "POST": 1, "PUT": 2}
        for item in sorted(parsed, key=lambda e: (order[e.method], e.index)):
            try:
                if item.existing is not None:
                    result = WriteResult(item.existing, created=False, changed=False)
                elif item.method == "DELETE":
                    assert item.resource_id is not None
                    result = self.soft_delete(
                        session,
                        item.resource_type,
                        item.resource_id,
                        publisher,
                        if_match=item.if_match,
                        precondition_required=precondition_required,
                    )
                else:
                    body = _rewrite_references(item.resource or {}, assigned)
                    if item.method == "POST":
                        body["id"] = item.resource_id
                    result = self.write(
                        session,
                        item.resource_type,
                        item.resource_id,
                        body,
                        publisher,
                        if_match=item.if_match,
                        precondition_required=precondition_required,
                    )
            except ServiceError as exc:
                exc.diagnostics = f"entry {item.index} ({item.method} {item.resource_type}): {exc.diagnostics}"
                raise
            results[item.index] = {
                "status": "201 Created" if result.created else "200 OK",
                "location": f"{item.resource_type}/{result.stored.id}/_history/{result.stored.version_id}",
                "etag": result.stored.etag,
                "lastModified": us_to_instant(result.stored.last_updated),
            }
        return [results[i] for i in range(len(parsed))]

    # ---- async entry points ------------------------------------------------------------------

    async def create(
        self, resource_type: str, body: Mapping[str, Any], publisher: str, if_none_exist: str | None = None
    ) -> WriteResult:
        return await self.database.run(self.create_conditional, resource_type, body, publisher, if_none_exist)

    # The entry points for requests from outside: optimistic locking as configured.

    async def update(
        self, resource_type: str, resource_id: str, body: Mapping[str, Any], publisher: str, if_match: str | None
    ) -> WriteResult:
        return await self.database.run(
            self.write,
            resource_type,
            resource_id,
            body,
            publisher,
            if_match=if_match,
            precondition_required=self.settings.require_if_match,
        )

    async def delete(self, resource_type: str, resource_id: str, publisher: str, if_match: str | None) -> WriteResult:
        return await self.database.run(
            self.soft_delete,
            resource_type,
            resource_id,
            publisher,
            if_match=if_match,
            precondition_required=self.settings.require_if_match,
        )

    async def apply_transaction(self, bundle: Mapping[str, Any], publisher: str) -> list[dict[str, Any]]:
        return await self.database.run(
            self.transaction, bundle, publisher, precondition_required=self.settings.require_if_match
        )

    async def read(self, resource_type: str, resource_id: str) -> Stored:
        check_id(resource_id)
        found = await self.database.run(store.get_current, resource_type, resource_id, readonly=True)
        if found is None:
            raise NotFound(f"{resource_type}/{resource_id} is not in the directory")
        return found

    async def vread(self, resource_type: str, resource_id: str, version: str) -> dict[str, Any]:
        check_id(resource_id)
        if not version.isdigit() or len(version) > 9:
            raise NotFound(f"{resource_type}/{resource_id} has no version {version[:20]!r}")
        found = await self.database.run(store.get_version, resource_type, resource_id, int(version), readonly=True)
        if found is None:
            raise NotFound(f"{resource_type}/{resource_id} has no version {version}")
        return found

    async def search(self, request: SearchRequest) -> tuple[SearchResult, int]:
        def work(session: Session) -> tuple[SearchResult, int]:
            store.custom_plans(session, time_limit=self.settings.read_time_limit)
            return run_search(session, request), store.high_water_mark(session)

        return await self.database.run(work, readonly=True)

    async def history(
        self, request: HistoryRequest, *, resource_type: str | None = None, resource_id: str | None = None
    ) -> tuple[list[HistoryRow], bool, int | None, int]:
        """(rows, more pages?, total on the first page, directory high-water mark)."""

        def work(session: Session) -> tuple[list[HistoryRow], bool, int | None, int]:
            store.custom_plans(session, time_limit=self.settings.read_time_limit)
            rows = store.history_page(
                session,
                resource_type=resource_type,
                resource_id=resource_id,
                since=request.since,
                cursor=request.cursor,
                ascending=request.ascending,
                limit=request.count,
            )
            more = len(rows) > request.count
            # A complete answer on its first page carries its total; counting more costs a scan.
            total = len(rows) if request.cursor is None and not more else None
            return rows[: request.count], more, total, store.high_water_mark(session)

        return await self.database.run(work, readonly=True)


def _rewrite_references(resource: Mapping[str, Any], assigned: Mapping[str, str]) -> dict[str, Any]:
    """Replace `urn:uuid:` references to entries POSTed in the same transaction by their new ids."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
            ref = out.get("reference")
            if isinstance(ref, str) and ref in assigned:
                out["reference"] = assigned[ref]
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return dict(walk(dict(resource)))


def history_entries(rows: Sequence[HistoryRow], base_url: str) -> list[str]:
    """Bundle entries (JSON text) of a history page; every version carries its resource (no hard
    deletes). The stored JSON is spliced in as it is, not decoded and encoded again."""
    out = []
    for row in rows:
        created = row.method == "POST"
        request = {"method": row.method, "url": row.resource_type if created else f"{row.resource_type}/{row.id}"}
        response = {
            "status": "201 Created" if created else "200 OK",
            "etag": f'W/"{row.version_id}"',
            "lastModified": us_to_instant(row.last_updated),
        }
        out.append(
            f'{{"fullUrl":{json.dumps(f"{base_url}/{row.resource_type}/{row.id}")},"resource":{row.content},'
            f'"request":{json.dumps(request)},"response":{json.dumps(response)}}}'
        )
    return out
