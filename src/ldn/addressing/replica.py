"""A node's local replica of the mCSD directory: the update client and the lookups.

The update client (IHE mCSD Update Client, Generic Functions IG sync flow):
- initial load: per resource type (Organization, Location, HealthcareService, Endpoint,
  OrganizationAffiliation) a search without parameters, page by page; the directory's time of the
  first page (Bundle.meta.lastUpdated) is T0;
- then, and every `sync_interval` seconds (plus or minus `sync_jitter`), `_history?_since=` from
  the watermark, oldest first, following `next` links.
Each page is applied in one transaction together with the resume point (the next page URL during
the initial load, the new watermark afterwards), so a crash loses at most the page in flight and
the client resumes exactly there. Applying is idempotent: a version is stored only when it is
newer than the one the replica holds. 429 and 503 are honoured with their `Retry-After`.

Anti-spoofing: before a version is stored, its publisher (`meta.source`) must be a source the
LRZa links to the URA its chain ends at (for an Organization with a URA: that URA). Anything else
is dropped and logged. Resources whose chain cannot be resolved yet (their parent arrives later)
are kept but stay invisible to lookups until a later pass resolves and checks them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import anyio
import httpx
from fastapi import FastAPI
from sqlalchemy import and_, delete, insert, select, text, update
from sqlalchemy.orm import Session

from ldn.addressing.codes import (
    LDN_SERVICE_TYPE_SYSTEM,
    PAYLOAD_TYPE_SYSTEM,
    SYSTEM_URA,
    source_ura,
)
from ldn.addressing.lrza import sources_from_fhir
from ldn.addressing.model import MCSD_TYPES, chain_link, instant_to_us, is_active, ura_of, us_to_instant
from ldn.addressing.searchparams import extract
from ldn.addressing.settings import AddressingSettings
from ldn.addressing.store import custom_plans, dumps
from ldn.addressing.tables import replica_index, replica_resources, replica_state
from ldn.core.service import ServiceContext
from ldn.core.storage import Database

logger = logging.getLogger("ldn.addressing.replica")

RR, RI, RS = replica_resources, replica_index, replica_state

# Recommended load order (Generic Functions IG): parents before what refers to them.
LOAD_ORDER: tuple[str, ...] = ("Organization", "Location", "HealthcareService", "Endpoint", "OrganizationAffiliation")
# Only what the lookups need is indexed in a replica (a replica is read by lookups, not by FHIR search).
_REPLICA_PARAMS: dict[str, frozenset[str]] = {
    "Organization": frozenset({"identifier", "endpoint", "partof"}),
    "Location": frozenset({"organization"}),
    "HealthcareService": frozenset({"service-type", "organization", "endpoint"}),
    "Endpoint": frozenset({"payload-type"}),
    "OrganizationAffiliation": frozenset(),
}


class SyncError(RuntimeError):
    """A sync run failed; the replica keeps its last good state and resume point."""


class SyncDeferred(SyncError):
    """The directory asked us to come back later (429/503 with a long Retry-After)."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"directory asked to retry after {delay:.0f} s")
        self.delay = delay


class _NeedsFreshRegister(Exception):
    """A page would drop resources: refresh the LRZa view once before deciding."""


class TokenProvider(Protocol):
    async def headers(self, method: str, url: str) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


class NoToken:
    """For tests and tools that reach the directory without authentication."""

    async def headers(self, method: str, url: str) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        return None


class NodeTokenProvider:
    """Access tokens (scopes `mcsd:read lrza:read`) from the national authorization server,
    obtained with the node's own organisation credential."""

    SCOPE = "mcsd:read lrza:read"

    def __init__(self, ctx: ServiceContext, ura: str) -> None:
        self.ctx = ctx
        self.ura = ura
        self._client: Any = None
        self._fresh = False

    async def _token_client(self) -> Any:
        if self._client is None:
            from ldn.auth.client import TokenClient
            from ldn.auth.settings import AuthSettings
            from ldn.auth.trust_store import trust_store

            pki = AuthSettings().resolved_pki_dir(self.ctx.settings.data_dir)
            store = await anyio.to_thread.run_sync(trust_store, pki, self.ctx.topology)
            self._client = TokenClient(store.credential(self.ura), self.ctx.http.client(), use_dpop=True)
        return self._client

    async def headers(self, method: str, url: str) -> dict[str, str]:
        client = await self._token_client()
        endpoint = f"{self.ctx.directory.service_url('auth').rstrip('/')}/token"
        token = await client.token(endpoint, self.SCOPE, use_cache=not self._fresh)
        self._fresh = False
        return dict(token.headers(method, url))

    def invalidate(self) -> None:
        self._fresh = True


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class DirectoryClient:
    """GETs JSON from the directory and the LRZa with authentication, retries and Retry-After."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenProvider,
        settings: AddressingSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.tokens = tokens
        self.settings = settings
        self.sleep = sleep
        self.requests = 0

    def _backoff(self, attempt: int) -> float:
        base: float = self.settings.sync_backoff * (2**attempt)
        return float(min(base, self.settings.sync_max_retry_after) * (0.5 + random.random() / 2))

    async def get_json(self, url: str) -> dict[str, Any]:
        attempts = self.settings.sync_max_retries
        reauthenticated = False
        for attempt in range(attempts + 1):
            last = attempt == attempts
            try:
                headers = await self.tokens.headers("GET", url)
                headers["Accept"] = "application/fhir+json"
                self.requests += 1
                response = await self.http.get(url, headers=headers)
            except httpx.HTTPError as exc:
                if last:
                    raise SyncError(f"directory unreachable: {exc.__class__.__name__}") from None
                await self.sleep(self._backoff(attempt))
                continue
            status = response.status_code
            if status in (429, 503):
                delay = retry_after_seconds(response.headers.get("retry-after"))
                wait = self._backoff(attempt) if delay is None else delay
                if wait > self.settings.sync_max_retry_after or last:
                    raise SyncDeferred(wait)
                logger.info("directory answered %s; retrying after %.1f s", status, wait)
                await self.sleep(wait)
                continue
            if status == 401 and not reauthenticated:
                reauthenticated = True
                self.tokens.invalidate()
                continue
            if status >= 500:
                if last:
                    raise SyncError(f"directory answered {status}")
                await self.sleep(self._backoff(attempt))
                continue
            if status != 200:
                raise SyncError(f"directory answered {status}: {_diagnostics(response)}")
            try:
                body = response.json()
            except ValueError:
                raise SyncError("directory answered with malformed JSON") from None
            if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
                raise SyncError("directory answered with something other than a Bundle")
            return body
        raise SyncError("retries exhausted")  # pragma: no cover - the loop always returns or raises


def _diagnostics(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str((body.get("issue") or [{}])[0].get("diagnostics", ""))[:200]
    except (ValueError, AttributeError, IndexError):
        return response.text[:200]


def _next_link(bundle: dict[str, Any], allowed_base: str) -> str | None:
    """The `next` link, if it stays on the server we sync from (never send our token elsewhere)."""
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            url: str = link["url"]
            ours, theirs = urlsplit(allowed_base), urlsplit(url)
            inside = theirs.path.startswith(ours.path.rstrip("/") + "/")
            if (ours.scheme, ours.netloc) != (theirs.scheme, theirs.netloc) or not inside:
                raise SyncError("next link points away from the directory")
            return url
    return None


# ---- the LRZa as the replica sees it ---------------------------------------------------------


class LrzaView:
    """Which sources the LRZa links to each URA, refreshed incrementally (`_lastUpdated=ge`)."""

    def __init__(self, client: DirectoryClient, base_url: str, page_size: int) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.entries: dict[str, tuple[bool, frozenset[str]]] = {}
        self.watermark: int | None = None

    async def refresh(self) -> None:
        params: list[tuple[str, str]] = [("_count", str(self.page_size)), ("_total", "none")]
        if self.watermark is not None:
            params.append(("_lastUpdated", f"ge{us_to_instant(self.watermark)}"))
        url: str | None = f"{self.base_url}/Organization?{urlencode(params)}"
        while url:
            bundle = await self.client.get_json(url)
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict) or resource.get("resourceType") != "Organization":
                    continue
                ura = ura_of(resource)
                if ura is None:
                    continue
                self.entries[ura] = (resource.get("active") is not False, sources_from_fhir(resource))
                stamp = (resource.get("meta") or {}).get("lastUpdated")
                if isinstance(stamp, str):
                    value = instant_to_us(stamp)
                    self.watermark = value if self.watermark is None else max(self.watermark, value)
            url = _next_link(bundle, self.base_url)

    def allows(self, ura: str, source: str | None, *, provider_only: bool = False) -> bool:
        entry = self.entries.get(ura)
        if entry is None or not entry[0] or source is None:
            return False
        return source == ura if provider_only else source in entry[1]


# ---- replica storage -------------------------------------------------------------------------


@dataclass
class ReplicaState:
    phase: str = "initial"
    watermark: int | None = None
    initial_t0: int | None = None
    initial_type: str | None = None
    initial_next: str | None = None
    applied: int = 0
    dropped: int = 0
    last_success_at: datetime | None = None
    last_error: str | None = None


def load_state(session: Session, owner: str) -> ReplicaState:
    row = session.execute(select(RS).where(RS.c.replica_owner == owner)).first()
    if row is None:
        return ReplicaState()
    return ReplicaState(
        phase=row.phase,
        watermark=row.watermark,
        initial_t0=row.initial_t0,
        initial_type=row.initial_type,
        initial_next=row.initial_next,
        applied=row.applied or 0,
        dropped=row.dropped or 0,
        last_success_at=row.last_success_at,
        last_error=row.last_error,
    )


def save_state(session: Session, owner: str, **values: Any) -> None:
    values["updated_at"] = datetime.now(UTC)
    done = session.execute(update(RS).where(RS.c.replica_owner == owner).values(**values))
    if not getattr(done, "rowcount", 0):
        defaults = {"phase": "initial", "applied": 0, "dropped": 0}
        session.execute(insert(RS).values(replica_owner=owner, **{**defaults, **values}))


def analyze_replica(session: Session) -> None:
    """Fresh planner statistics after a bulk load (PostgreSQL): tables that grew from nothing
    within minutes would otherwise be planned as if they were still empty."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE addressing_replica_resource"))
        session.execute(text("ANALYZE addressing_replica_index"))


@dataclass(frozen=True)
class Incoming:
    resource_type: str
    id: str
    version_id: int
    last_updated: int
    source: str | None
    content: dict[str, Any]


def incoming(resource: Any) -> Incoming | None:
    """A resource from a page as the replica keeps it; None for what the replica ignores."""
    if not isinstance(resource, dict) or resource.get("resourceType") not in MCSD_TYPES:
        return None
    rid = resource.get("id")
    meta = resource.get("meta") or {}
    version = meta.get("versionId")
    stamp = meta.get("lastUpdated")
    if not isinstance(rid, str) or not isinstance(version, str) or not version.isdigit() or not isinstance(stamp, str):
        raise SyncError(f"{resource.get('resourceType')} without id, meta.versionId or meta.lastUpdated")
    return Incoming(
        resource["resourceType"], rid, int(version), instant_to_us(stamp), source_ura(meta.get("source")), resource
    )


@dataclass
class ApplyResult:
    applied: int = 0
    skipped: int = 0
    dropped: int = 0
    dropped_keys: list[tuple[str, str]] = field(default_factory=list)


def _bulk_insert(session: Session, table: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """A driver-level executemany of rows holding every column of `table` in its order: an
    initial load inserts hundreds of thousands of rows, and per-row parameter processing in the
    SQL toolkit would cost more than the database does."""
    if not rows:
        return
    columns = [column.name for column in table.columns]
    marker = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    placeholders = ", ".join([marker] * len(columns))
    # Table and column names come from the table definitions, never from input.
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    connection = session.connection()
    for chunk in _chunks(rows, 5000):
        connection.exec_driver_sql(statement, list(chunk))


def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ReplicaStore:
    """SQL of one node's replica (all rows carry `replica_owner`). Functions never commit."""

    def __init__(self, owner: str, base_url: str) -> None:
        self.owner = owner
        self.base_url = base_url

    def _existing(
        self, session: Session, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, str | None]]:
        by_type: dict[str, list[str]] = {}
        for rtype, rid in set(keys):
            by_type.setdefault(rtype, []).append(rid)
        out: dict[tuple[str, str], tuple[int, str | None]] = {}
        for rtype, ids in by_type.items():
            for chunk in _chunks(sorted(ids)):
                rows = session.execute(
                    select(RR.c.id, RR.c.version_id, RR.c.owner_ura).where(
                        RR.c.replica_owner == self.owner, RR.c.resource_type == rtype, RR.c.id.in_(chunk)
                    )
                ).all()
                out.update({(rtype, r[0]): (r[1], r[2]) for r in rows})
        return out

    def _check(self, item: Incoming, owner: str, register: LrzaView) -> bool:
        return register.allows(owner, item.source, provider_only=item.resource_type == "OrganizationAffiliation")

    def apply(self, session: Session, items: Sequence[Incoming], register: LrzaView, *, final: bool) -> ApplyResult:
        """Store the newer versions among `items` (in order). With `final` False, raise
        `_NeedsFreshRegister` instead of dropping, so the caller can refresh the LRZa view first."""
        result = ApplyResult()
        custom_plans(session)  # the replica grows from empty to national size during a load
        keys = [(i.resource_type, i.id) for i in items]
        parents = []
        for item in items:
            link = chain_link(item.resource_type, item.content, self.base_url)
            if link.parent is not None:
                parents.append(link.parent)
        existing = self._existing(session, keys + parents)
        versions = {k: v[0] for k, v in existing.items()}
        owners = {k: v[1] for k, v in existing.items()}
        latest: dict[tuple[str, str], tuple[Incoming, str | None]] = {}
        for item in items:
            key = (item.resource_type, item.id)
            if versions.get(key, 0) >= item.version_id:
                result.skipped += 1
                continue
            link = chain_link(item.resource_type, item.content, self.base_url)
            owner: str | None
            if link.ura is not None:
                owner = link.ura
            elif link.parent is not None:
                owner = owners.get(link.parent)  # None: the parent is not here (yet)
            else:
                owner = None
            keep = True
            if link.broken or (owner is not None and not self._check(item, owner, register)):
                keep = False
            if not keep:
                if not final:
                    raise _NeedsFreshRegister
                result.dropped += 1
                result.dropped_keys.append(key)
                logger.warning(
                    "replica %s dropped %s/%s version %s: publisher %s is not a source the LRZa links to URA %s",
                    self.owner,
                    item.resource_type,
                    item.id,
                    item.version_id,
                    item.source or "(none)",
                    owner or "(no URA chain)",
                )
                continue
            versions[key] = item.version_id
            owners[key] = owner
            latest[key] = (item, owner)
            result.applied += 1
        if latest:
            self._write(session, latest, replaced={k for k in latest if k in existing})
        return result

    def _write(
        self,
        session: Session,
        latest: dict[tuple[str, str], tuple[Incoming, str | None]],
        replaced: set[tuple[str, str]],
    ) -> None:
        # Only rows the replica already holds are deleted first (none during an initial load).
        by_type: dict[str, list[str]] = {}
        for rtype, rid in sorted(replaced):
            by_type.setdefault(rtype, []).append(rid)
        for rtype, ids in by_type.items():
            for chunk in _chunks(ids):
                session.execute(
                    delete(RR).where(RR.c.replica_owner == self.owner, RR.c.resource_type == rtype, RR.c.id.in_(chunk))
                )
                session.execute(
                    delete(RI).where(
                        RI.c.replica_owner == self.owner, RI.c.resource_type == rtype, RI.c.res_id.in_(chunk)
                    )
                )
        resource_rows: list[tuple[Any, ...]] = []
        index_rows: list[tuple[Any, ...]] = []
        for (rtype, rid), (item, owner) in latest.items():
            resource_rows.append(
                (self.owner, rtype, rid, item.version_id, item.last_updated, item.source, owner, dumps(item.content))
            )
            wanted = _REPLICA_PARAMS.get(rtype, frozenset())
            for param, system, value in extract(rtype, item.content, self.base_url, wanted):
                if param in wanted:
                    index_rows.append((self.owner, rtype, param, value, system, rid))
        _bulk_insert(session, RR, resource_rows)
        _bulk_insert(session, RI, index_rows)

    def remove(self, session: Session, keys: Sequence[tuple[str, str]]) -> None:
        for rtype, rid in keys:
            session.execute(
                delete(RR).where(RR.c.replica_owner == self.owner, RR.c.resource_type == rtype, RR.c.id == rid)
            )
            session.execute(
                delete(RI).where(RI.c.replica_owner == self.owner, RI.c.resource_type == rtype, RI.c.res_id == rid)
            )

    def resolve_pending(self, session: Session, register: LrzaView) -> int:
        """Give resources whose parent arrived later their owner (checking their publisher then);
        returns how many were dropped."""
        dropped = 0
        for _ in range(10):
            rows = session.execute(
                select(RR.c.resource_type, RR.c.id, RR.c.source_ura, RR.c.content).where(
                    RR.c.replica_owner == self.owner, RR.c.owner_ura.is_(None)
                )
            ).all()
            if not rows:
                break
            progress = False
            for rtype, rid, source, content in rows:
                link = chain_link(rtype, json.loads(content), self.base_url)
                if link.parent is None:
                    continue
                parent_owner = session.execute(
                    select(RR.c.owner_ura).where(
                        RR.c.replica_owner == self.owner,
                        RR.c.resource_type == link.parent[0],
                        RR.c.id == link.parent[1],
                    )
                ).scalar()
                if parent_owner is None:
                    continue
                progress = True
                if register.allows(parent_owner, source, provider_only=rtype == "OrganizationAffiliation"):
                    session.execute(
                        update(RR)
                        .where(RR.c.replica_owner == self.owner, RR.c.resource_type == rtype, RR.c.id == rid)
                        .values(owner_ura=parent_owner)
                    )
                else:
                    logger.warning(
                        "replica %s dropped %s/%s: publisher %s is not a source the LRZa links to URA %s",
                        self.owner,
                        rtype,
                        rid,
                        source or "(none)",
                        parent_owner,
                    )
                    self.remove(session, [(rtype, rid)])
                    dropped += 1
            if not progress:
                break
        return dropped


# ---- the update client -----------------------------------------------------------------------


@dataclass
class SyncReport:
    pages: int = 0
    applied: int = 0
    skipped: int = 0
    dropped: int = 0
    phase: str = ""


class ReplicaSyncer:
    """The update client of one node: `sync_once` does one run, `run_forever` repeats it."""

    def __init__(
        self,
        database: Database,
        owner: str,
        *,
        mcsd_url: str,
        lrza_url: str,
        http: httpx.AsyncClient,
        tokens: TokenProvider,
        settings: AddressingSettings | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.database = database
        self.owner = owner
        self.mcsd_url = mcsd_url.rstrip("/")
        self.settings = settings or AddressingSettings()
        self.client = DirectoryClient(http, tokens, self.settings, sleep=sleep)
        self.register = LrzaView(self.client, lrza_url, self.settings.sync_page_size)
        self.store = ReplicaStore(owner, self.mcsd_url)
        self.sleep = sleep
        self._lock = asyncio.Lock()

    @classmethod
    def for_node(cls, ctx: ServiceContext, ura: str, settings: AddressingSettings) -> ReplicaSyncer:
        return cls(
            ctx.database,
            ura,
            mcsd_url=ctx.directory.service_url("mcsd"),
            lrza_url=ctx.directory.service_url("lrza"),
            http=ctx.http.client(),
            tokens=NodeTokenProvider(ctx, ura),
            settings=settings,
        )

    async def _apply_page(self, resources: Sequence[Any], state: dict[str, Any], report: SyncReport) -> None:
        items = [i for i in (incoming(r) for r in resources) if i is not None]

        def work(session: Session, final: bool) -> ApplyResult:
            result = self.store.apply(session, items, self.register, final=final)
            current = load_state(session, self.owner)
            save_state(
                session,
                self.owner,
                **state,
                applied=current.applied + result.applied,
                dropped=current.dropped + result.dropped,
            )
            return result

        try:
            result = await self.database.run(work, False)
        except _NeedsFreshRegister:
            await self.register.refresh()
            result = await self.database.run(work, True)
        report.pages += 1
        report.applied += result.applied
        report.skipped += result.skipped
        report.dropped += result.dropped

    async def sync_once(self) -> SyncReport:
        """One sync run: finish (or start) the initial load, then catch up through `_history`."""
        async with self._lock:
            report = SyncReport()
            try:
                state = await self.database.run(load_state, self.owner, readonly=True)
                await self.register.refresh()
                if state.phase == "initial":
                    await self._initial_load(state, report)
                    await self.database.run(analyze_replica)
                    state = await self.database.run(load_state, self.owner, readonly=True)
                await self._incremental(state, report)
                dropped = await self.database.run(self.store.resolve_pending, self.register)
                report.dropped += dropped
                now = datetime.now(UTC)
                await self.database.run(save_state, self.owner, phase="ready", last_success_at=now, last_error=None)
                report.phase = "ready"
            except SyncError as exc:
                await self.database.run(save_state, self.owner, last_error=str(exc)[:500])
                raise
            return report

    async def _initial_load(self, state: ReplicaState, report: SyncReport) -> None:
        page = self.settings.sync_page_size
        start = LOAD_ORDER.index(state.initial_type) if state.initial_type in LOAD_ORDER else 0
        t0 = state.initial_t0
        url = state.initial_next
        for position in range(start, len(LOAD_ORDER)):
            rtype = LOAD_ORDER[position]
            if url is None:
                url = f"{self.mcsd_url}/{rtype}?{urlencode({'_count': page, '_total': 'none'})}"
            while url is not None:
                bundle = await self.client.get_json(url)
                if t0 is None:
                    stamp = (bundle.get("meta") or {}).get("lastUpdated")
                    t0 = instant_to_us(stamp) if isinstance(stamp, str) else None
                    if t0 is None:
                        raise SyncError("the directory's first page carries no meta.lastUpdated")
                resources = [
                    e.get("resource")
                    for e in bundle.get("entry") or []
                    if isinstance(e, dict) and (e.get("search") or {}).get("mode", "match") == "match"
                ]
                next_url = _next_link(bundle, self.mcsd_url)
                values: dict[str, Any] = {"initial_t0": t0}
                if next_url is not None:
                    values.update(initial_type=rtype, initial_next=next_url)
                elif position + 1 < len(LOAD_ORDER):
                    values.update(initial_type=LOAD_ORDER[position + 1], initial_next=None)
                else:
                    # Load done: from now on, `_history` from T0 catches up on what changed meanwhile.
                    values.update(phase="catchup", watermark=t0, initial_type=None, initial_next=None)
                await self._apply_page(
                    [r for r in resources if isinstance(r, dict) and r.get("resourceType") == rtype], values, report
                )
                url = next_url

    async def _incremental(self, state: ReplicaState, report: SyncReport) -> None:
        """Follow `_history?_since=<watermark>&_sort=_lastUpdated` page by page.

        Each page is stored together with the newest time it holds as the new watermark, which is
        right only while pages come oldest first (asked for with `_sort`, which ldn's directory
        honours). A directory that ignores `_sort` and pages newest first (the FHIR default) would
        make a crash between pages skip older changes: once a page is out of order, the watermark
        stays where the run began until the last page (LAS-TA-ADDR-001: the new `_since` is
        recorded after all pages). Applying is by version, so the order never changes the result.
        """
        start = state.watermark
        saved, newest = start, start
        in_order = True
        params: list[tuple[str, str]] = [("_sort", "_lastUpdated"), ("_count", str(self.settings.sync_page_size))]
        if start is not None:
            params.insert(0, ("_since", us_to_instant(start)))
        url: str | None = f"{self.mcsd_url}/_history?{urlencode(params)}"
        while url is not None:
            bundle = await self.client.get_json(url)
            resources = []
            stamps: list[int] = []
            removed: list[tuple[str, str]] = []
            for entry in bundle.get("entry") or []:
                if not isinstance(entry, dict):
                    continue
                resource = entry.get("resource")
                if isinstance(resource, dict):
                    resources.append(resource)
                    item = incoming(resource)
                    if item is not None:
                        stamps.append(item.last_updated)
                elif (entry.get("request") or {}).get("method") == "DELETE":
                    parts = str((entry.get("request") or {}).get("url", "")).split("/")
                    if len(parts) == 2 and parts[0] in MCSD_TYPES:
                        removed.append((parts[0], parts[1]))
            if stamps:
                in_order = (
                    in_order
                    and (newest is None or stamps[0] >= newest)
                    and all(a <= b for a, b in itertools.pairwise(stamps))
                )
                newest = max(stamps) if newest is None else max(newest, *stamps)
                if in_order:
                    saved = newest
            if removed:
                # Our directory never hard-deletes; another server might: follow it.
                await self.database.run(self.store.remove, removed)
            await self._apply_page(resources, {"watermark": saved}, report)
            url = _next_link(bundle, self.mcsd_url)
        if newest != saved:
            await self.database.run(save_state, self.owner, watermark=newest)

    def next_delay(self) -> float:
        """`sync_interval` plus a random 0..`sync_jitter` seconds (LAS-TA-ADDR-001), so nodes
        started together do not poll the directory in step."""
        return max(1.0, self.settings.sync_interval + random.uniform(0, self.settings.sync_jitter))

    async def run_forever(self) -> None:
        """Sync now (after a short start-up delay), then about every `sync_interval` seconds."""
        delay = self.settings.sync_initial_delay * (1 + random.random())
        failures = 0
        while True:
            await self.sleep(delay)
            try:
                report = await self.sync_once()
                failures = 0
                delay = self.next_delay()
                if report.applied or report.dropped:
                    logger.info(
                        "replica %s synced: %d applied, %d dropped, %d pages",
                        self.owner,
                        report.applied,
                        report.dropped,
                        report.pages,
                    )
            except SyncDeferred as exc:
                delay = max(exc.delay, 1.0)
                logger.warning("replica %s: sync deferred %.0f s by the directory", self.owner, delay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive; the next run resumes
                failures += 1
                delay = min(self.settings.sync_interval, self.settings.sync_backoff * 2**failures)
                logger.warning("replica %s: sync failed (%s); retrying in %.0f s", self.owner, exc, delay)


# ---- lookups ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointInfo:
    id: str
    address: str
    status: str
    name: str | None
    payload_types: tuple[tuple[str, str], ...]
    connection_type: tuple[str, str] | None
    owner_ura: str | None

    def serves(self, payload_type: str) -> bool:
        system, code = _token(payload_type, PAYLOAD_TYPE_SYSTEM)
        return (system, code) in self.payload_types


@dataclass(frozen=True)
class ServiceInfo:
    id: str
    name: str | None
    types: tuple[tuple[str, str], ...]
    organization_ura: str
    organization_name: str | None
    active: bool
    endpoints: tuple[EndpointInfo, ...]


@dataclass(frozen=True)
class OrganizationInfo:
    id: str
    ura: str
    name: str | None
    active: bool
    endpoint_ids: tuple[str, ...]


@dataclass(frozen=True)
class ReplicaStatus:
    owner: str
    phase: str
    watermark: str | None
    resources: int
    applied: int
    dropped: int
    last_success_at: datetime | None
    last_error: str | None

    @property
    def ready(self) -> bool:
        return self.phase == "ready"


def _token(value: str, default_system: str) -> tuple[str, str]:
    system, bar, code = value.partition("|")
    return (system, code) if bar else (default_system, value)


def _endpoint_ids(content: dict[str, Any]) -> list[str]:
    """Ids of the Endpoints a resource's `endpoint` list refers to (relative or absolute)."""
    ids = []
    for entry in content.get("endpoint") or []:
        reference = entry.get("reference") if isinstance(entry, dict) else None
        if isinstance(reference, str):
            head, _, rid = reference.rpartition("/")
            if rid and (head == "Endpoint" or head.endswith("/Endpoint")):
                ids.append(rid)
    return ids


def _endpoint_info(rid: str, content: dict[str, Any], owner: str | None) -> EndpointInfo:
    payloads = tuple(
        (str(c.get("system") or ""), str(c.get("code")))
        for cc in content.get("payloadType") or []
        if isinstance(cc, dict)
        for c in cc.get("coding") or []
        if isinstance(c, dict) and c.get("code")
    )
    ct = content.get("connectionType")
    connection = (str(ct.get("system") or ""), str(ct.get("code"))) if isinstance(ct, dict) and ct.get("code") else None
    return EndpointInfo(
        id=rid,
        address=str(content.get("address", "")),
        status=str(content.get("status", "")),
        name=content.get("name"),
        payload_types=payloads,
        connection_type=connection,
        owner_ura=owner,
    )


class AddressNotFound(LookupError):
    """No (active) endpoint or organisation answers the lookup."""


class ReplicaLookups:
    """What other functions ask addressing, answered from a node's local replica.

    Only resources whose chain to a URA has been resolved and checked against the LRZa are
    visible. Payload and service types are codes of the ldn systems (`fhir-query-r4`,
    `pull-notification`, `oauth-token`, ...) or `system|code`.
    """

    def __init__(self, database: Database, owner: str) -> None:
        self.database = database
        self.owner = owner

    def _organization(self, session: Session, ura: str) -> tuple[str, dict[str, Any]] | None:
        row = session.execute(
            select(RR.c.id, RR.c.content)
            .join(
                RI,
                and_(
                    RI.c.replica_owner == RR.c.replica_owner,
                    RI.c.resource_type == RR.c.resource_type,
                    RI.c.res_id == RR.c.id,
                ),
            )
            .where(
                RR.c.replica_owner == self.owner,
                RR.c.resource_type == "Organization",
                RR.c.owner_ura == ura,
                RI.c.param == "identifier",
                RI.c.system == SYSTEM_URA,
                RI.c.value == ura,
            )
        ).first()
        return None if row is None else (row[0], json.loads(row[1]))

    def _endpoints(self, session: Session, ura: str, payload_type: str | None) -> list[EndpointInfo]:
        found: dict[str, tuple[dict[str, Any], str | None]] = {}
        query = select(RR.c.id, RR.c.content, RR.c.owner_ura).where(
            RR.c.replica_owner == self.owner, RR.c.resource_type == "Endpoint", RR.c.owner_ura == ura
        )
        for rid, content, owner in session.execute(query).all():
            found[rid] = (json.loads(content), owner)
        organization = self._organization(session, ura)
        if organization is not None:
            # The Organization's own `endpoint` list (already at hand) names endpoints that another
            # organisation's chain owns, e.g. a shared regional gateway.
            refs = _endpoint_ids(organization[1])
            missing = [r for r in refs if r not in found]
            if missing:
                for rid, content, owner in session.execute(
                    select(RR.c.id, RR.c.content, RR.c.owner_ura).where(
                        RR.c.replica_owner == self.owner,
                        RR.c.resource_type == "Endpoint",
                        RR.c.id.in_(missing),
                        RR.c.owner_ura.is_not(None),
                    )
                ).all():
                    found[rid] = (json.loads(content), owner)
        infos = [_endpoint_info(rid, content, owner) for rid, (content, owner) in sorted(found.items())]
        if payload_type is not None:
            infos = [e for e in infos if e.serves(payload_type)]
        return infos

    async def organization(self, ura: str) -> OrganizationInfo | None:
        def work(session: Session) -> OrganizationInfo | None:
            found = self._organization(session, ura)
            if found is None:
                return None
            rid, content = found
            refs = tuple(_endpoint_ids(content))
            return OrganizationInfo(rid, ura, content.get("name"), is_active("Organization", content), refs)

        return await self.database.run(work, readonly=True)

    async def endpoints(
        self, ura: str, payload_type: str | None = None, *, active_only: bool = True
    ) -> list[EndpointInfo]:
        """The Endpoints of care provider `ura` (optionally only those serving `payload_type`)."""
        infos = await self.database.run(self._endpoints, ura, payload_type, readonly=True)
        return [e for e in infos if e.status == "active"] if active_only else infos

    async def endpoint_address(self, ura: str, payload_type: str) -> str:
        """The address of the (first) active endpoint of `ura` serving `payload_type`."""
        found = await self.endpoints(ura, payload_type)
        if not found:
            raise AddressNotFound(f"no active {payload_type} endpoint for URA {ura} in the local directory")
        return found[0].address

    async def fhir_base(self, ura: str) -> str:
        return await self.endpoint_address(ura, "fhir-query-r4")

    async def notification_endpoint(self, ura: str) -> str:
        return await self.endpoint_address(ura, "pull-notification")

    async def token_endpoint(self, ura: str) -> str:
        return await self.endpoint_address(ura, "oauth-token")

    async def services(
        self, service_type: str, *, ura: str | None = None, active_only: bool = True
    ) -> list[ServiceInfo]:
        """HealthcareServices of a type (`code` of the ldn service-type system, or `system|code`)."""
        system, code = _token(service_type, LDN_SERVICE_TYPE_SYSTEM)

        def work(session: Session) -> list[ServiceInfo]:
            sub = select(RI.c.res_id).where(
                RI.c.replica_owner == self.owner,
                RI.c.resource_type == "HealthcareService",
                RI.c.param == "service-type",
                RI.c.value == code,
                RI.c.system == system,
            )
            query = select(RR.c.id, RR.c.content, RR.c.owner_ura).where(
                RR.c.replica_owner == self.owner,
                RR.c.resource_type == "HealthcareService",
                RR.c.owner_ura.is_not(None),
                RR.c.id.in_(sub),
            )
            if ura is not None:
                query = query.where(RR.c.owner_ura == ura)
            out = []
            names: dict[str, str | None] = {}
            for rid, raw, owner in session.execute(query.order_by(RR.c.id)).all():
                content = json.loads(raw)
                active = is_active("HealthcareService", content)
                if active_only and not active:
                    continue
                if owner not in names:
                    org = self._organization(session, owner)
                    names[owner] = org[1].get("name") if org else None
                endpoint_ids = _endpoint_ids(content)
                endpoints = []
                if endpoint_ids:
                    for eid, econtent, eowner in session.execute(
                        select(RR.c.id, RR.c.content, RR.c.owner_ura).where(
                            RR.c.replica_owner == self.owner,
                            RR.c.resource_type == "Endpoint",
                            RR.c.id.in_(endpoint_ids),
                            RR.c.owner_ura.is_not(None),
                        )
                    ).all():
                        info = _endpoint_info(eid, json.loads(econtent), eowner)
                        if not active_only or info.status == "active":
                            endpoints.append(info)
                types = tuple(
                    (str(c.get("system") or ""), str(c.get("code")))
                    for cc in content.get("type") or []
                    if isinstance(cc, dict)
                    for c in cc.get("coding") or []
                    if isinstance(c, dict) and c.get("code")
                )
                out.append(ServiceInfo(rid, content.get("name"), types, owner, names[owner], active, tuple(endpoints)))
            return out

        return await self.database.run(work, readonly=True)

    async def status(self) -> ReplicaStatus:
        def work(session: Session) -> ReplicaStatus:
            from sqlalchemy import func

            state = load_state(session, self.owner)
            count = session.execute(
                select(func.count()).select_from(RR).where(RR.c.replica_owner == self.owner)
            ).scalar()
            return ReplicaStatus(
                owner=self.owner,
                phase=state.phase,
                watermark=us_to_instant(state.watermark) if state.watermark else None,
                resources=int(count or 0),
                applied=state.applied,
                dropped=state.dropped,
                last_success_at=state.last_success_at,
                last_error=state.last_error,
            )

        return await self.database.run(work, readonly=True)


def lookups_for(ctx: ServiceContext) -> ReplicaLookups:
    """The lookups of the node whose context this is (set up by `replica_lifespan`)."""
    found = ctx.extras.get("addressing")
    if not isinstance(found, ReplicaLookups):
        raise LookupError(f"service {ctx.name} has no addressing replica")
    return found


def replica_lifespan(ctx: ServiceContext, node_ura: str) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan for a node app: exposes `ReplicaLookups` (ctx.extras["addressing"],
    app.state.addressing) and runs the node's update client in the background."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = AddressingSettings()
        lookups = ReplicaLookups(ctx.database, node_ura)
        ctx.extras["addressing"] = lookups
        app.state.addressing = lookups
        task: asyncio.Task[None] | None = None
        if settings.sync_enabled and "mcsd" in ctx.directory.services and "lrza" in ctx.directory.services:
            syncer = ReplicaSyncer.for_node(ctx, node_ura, settings)
            ctx.extras["addressing_syncer"] = syncer
            task = asyncio.create_task(syncer.run_forever(), name=f"addressing-replica-{node_ura}")
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    return lifespan
