"""Wiring the audit log into a service: `audit_logger(ctx)` and helpers to name the user.

The log source of a service is its name (`node-00000020`, `nvi`, ...) and its organisation is the
node's URA or the operator of the national service. The sink is chosen on first use:
- `database` when the audit service runs in this process (the embedded network) or when this is
  the audit service itself: the same database, no HTTP hop;
- `http` otherwise (a node or service started alone): `POST <audit>/events` with a token for
  scope `audit:write` from the national authorization server, obtained with the organisation's
  own credential (or through `ctx.extras["audit_token_provider"]` when the deployment supplies one).
Either way a durable spool under `<data_dir>/audit-spool/<source>/` sits in front.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from ldn.audit.keys import AuditKeys, load_audit_keys
from ldn.audit.logger import AuditLogger
from ldn.audit.model import AuditSource, AuditUser
from ldn.audit.settings import AuditSettings
from ldn.audit.sinks import AuditSink, DatabaseSink, HttpSink
from ldn.audit.spool import Spool, spool_key
from ldn.audit.store import AuditStore
from ldn.core.http import origin_of
from ldn.core.service import ServiceContext

__all__ = [
    "CallerLike",
    "audit_keys",
    "audit_logger",
    "audit_store",
    "source_for",
    "system_user",
    "user_from_caller",
]

_EXTRA = "ldn.audit.logger"
_TOKEN = re.compile(r"\A[\x21\x23-\x5b\x5d-\x7e]{1,128}\Z")
_keys_lock = threading.Lock()
_keys_cache: dict[tuple[str, str], AuditKeys] = {}


def audit_keys(settings: AuditSettings, data_dir: Path) -> AuditKeys:
    """Keys for this data directory and configuration, loaded (or generated) once per process."""
    fingerprint = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()
    cache_key = (str(data_dir.resolve()), fingerprint)
    with _keys_lock:
        keys = _keys_cache.get(cache_key)
        if keys is None:
            keys = load_audit_keys(settings, data_dir)
            _keys_cache[cache_key] = keys
        return keys


def audit_store(settings: AuditSettings, data_dir: Path) -> AuditStore:
    return AuditStore(audit_keys(settings, data_dir), checkpoint_every=settings.checkpoint_every)


def source_for(ctx: ServiceContext) -> AuditSource:
    """The log source of a service: its name, kind and organisation."""
    if ctx.name.startswith("node-"):
        return AuditSource(ctx.name, "node", ctx.name.removeprefix("node-"), ctx.base_url)
    operator = ctx.topology.operator_of(ctx.name)
    if operator is None:
        raise LookupError(f"service {ctx.name!r} has no operating organisation in the topology")
    return AuditSource(ctx.name, "national", operator.ura, ctx.base_url)


def _sink_kind(ctx: ServiceContext, settings: AuditSettings) -> str:
    if settings.sink != "auto":
        return settings.sink
    if ctx.name == "audit":
        return "database"
    audit_url = ctx.directory.services.get("audit")
    if audit_url is None:
        # No audit service in this network: the records still land in the shared database,
        # where `ldn audit verify` and a later audit service find them.
        return "database"
    local = {origin_of(o) for o in ctx.http.local_apps}
    return "database" if origin_of(audit_url) in local else "http"


class AuditTokenProvider:
    """Tokens for scope `audit:write` at the national authorization server, obtained with the
    organisation's own credential (for a node or service that writes over HTTP)."""

    SCOPE = "audit:write"

    def __init__(self, ctx: ServiceContext, ura: str) -> None:
        self.ctx = ctx
        self.ura = ura
        self._client: Any = None

    async def __call__(self, method: str, url: str) -> dict[str, str]:
        if self._client is None:
            from ldn.auth.client import TokenClient
            from ldn.auth.settings import AuthSettings
            from ldn.auth.trust_store import trust_store

            pki = AuthSettings().resolved_pki_dir(self.ctx.settings.data_dir)
            store = await anyio.to_thread.run_sync(trust_store, pki, self.ctx.topology)
            self._client = TokenClient(store.credential(self.ura), self.ctx.http.client(), use_dpop=True)
        endpoint = f"{self.ctx.directory.service_url('auth').rstrip('/')}/token"
        token = await self._client.token(endpoint, self.SCOPE)
        return dict(token.headers(method, url))


def _make_sink(ctx: ServiceContext, settings: AuditSettings) -> AuditSink:
    if _sink_kind(ctx, settings) == "database":
        return DatabaseSink(
            ctx.database, audit_store(settings, ctx.settings.data_dir), timeout=settings.store_timeout_seconds
        )
    return HttpSink(
        ctx.http.client,
        ctx.directory.service_url("audit"),
        token_provider=ctx.extras.get("audit_token_provider")
        or AuditTokenProvider(ctx, source_for(ctx).organization_ura),
        max_batch=settings.max_batch,
        timeout=settings.store_timeout_seconds,
    )


def audit_logger(ctx: ServiceContext, settings: AuditSettings | None = None) -> AuditLogger:
    """The service's AuditLogger (one per service context, created on first use)."""
    existing = ctx.extras.get(_EXTRA)
    if isinstance(existing, AuditLogger):
        return existing
    settings = settings or AuditSettings()
    source = source_for(ctx)
    spool_dir = settings.spool_dir or ctx.settings.data_dir / "audit-spool"
    configured = settings.spool_key.get_secret_value() if settings.spool_key else None

    def spool_factory() -> Spool:
        return Spool(spool_dir, source.source_id, spool_key(spool_dir, configured))

    spool: Spool | None
    try:
        spool = spool_factory()
    except OSError:
        # No spool (no key, no disk): the logger still records directly and refuses the access
        # when the store is down, which is the safe failure.
        spool = None
    logger = AuditLogger(
        source,
        lambda: _make_sink(ctx, settings),
        spool,
        batch_limit=settings.max_batch,
        retry_max=settings.retry_max_seconds,
    )
    ctx.extras[_EXTRA] = logger
    return logger


class CallerLike(Protocol):
    """The attributes of `ldn.auth.resource_server.Caller` the audit log reads (a Protocol, so
    that `ldn.auth` may itself log through `ldn.audit` without an import cycle)."""

    @property
    def client_id(self) -> str: ...
    @property
    def organization_ura(self) -> str: ...
    @property
    def organization_name(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def user_role(self) -> str | None: ...
    @property
    def user_name(self) -> str | None: ...
    @property
    def citizen_bsn(self) -> str | None: ...


def _token_or_digest(value: str, prefix: str) -> str:
    if _TOKEN.match(value):
        return value
    return f"{prefix}:{hashlib.sha256(value.encode('utf-8')).hexdigest()[:32]}"


def user_from_caller(caller: CallerLike, *, responsible: AuditUser | None = None) -> AuditUser:
    """The initiating user of a request, from the authenticated caller.

    A professional (token with a user id) is named by UZI/Dezi number, role and name; a system
    without a user by its client id; a citizen as `self` (the patient object names them).
    """
    access_point = getattr(caller, "client_id", None) or None
    if getattr(caller, "citizen_bsn", None):
        return AuditUser("self", id_system="citizen", access_point=access_point)
    organization = getattr(caller, "organization_ura", None) or None
    extra: dict[str, Any] = {}
    if responsible is not None:
        extra = {
            "responsible_id": responsible.user_id,
            "responsible_role": responsible.role,
            "responsible_name": responsible.name,
        }
    user_id = getattr(caller, "user_id", None)
    if user_id:
        return AuditUser(
            user_id,
            id_system="dezi",
            role=getattr(caller, "user_role", None) or None,
            name=getattr(caller, "user_name", None) or None,
            organization_ura=organization,
            access_point=access_point,
            **extra,
        )
    return AuditUser(
        _token_or_digest(access_point or "unknown", "client"),
        id_system="system",
        name=getattr(caller, "organization_name", None) or None,
        organization_ura=organization,
        access_point=access_point,
        **extra,
    )


def system_user(name: str, organization_ura: str | None = None) -> AuditUser:
    """A service acting on its own (a background job, the command line)."""
    return AuditUser(_token_or_digest(name, "system"), id_system="system", name=name, organization_ura=organization_ura)
