"""Where events go: straight into the audit store's database, or over HTTP to the audit service.

Both sinks raise `SinkUnavailable` when the store cannot be reached now (retry later: the logger
spools) and `SinkRefused` when the store will never take the batch (a bug: it is set aside).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Protocol

import anyio
import anyio.to_thread
import httpx
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ldn.audit.model import AuditEvent
from ldn.audit.store import AppendResult, AuditStore, SourceMismatch
from ldn.core.storage import Database

__all__ = ["AuditSink", "DatabaseSink", "HttpSink", "SinkRefused", "SinkUnavailable", "TokenProvider"]

logger = logging.getLogger("ldn.audit")

# (method, url) -> Authorization (and DPoP) headers for one request.
TokenProvider = Callable[[str, str], Awaitable[dict[str, str]]]


class SinkUnavailable(Exception):
    """The audit store cannot be reached or is failing now; try again later."""


class SinkRefused(Exception):
    """The audit store refuses this batch for good (it is malformed or not the caller's to write)."""


class AuditSink(Protocol):
    async def append(self, events: Sequence[AuditEvent]) -> None: ...

    async def aclose(self) -> None: ...


class DatabaseSink:
    """Appends in this process, in one transaction per batch (the embedded network, the audit service)."""

    def __init__(self, database: Database, store: AuditStore, *, timeout: float = 5.0) -> None:
        self.database = database
        self.store = store
        self.timeout = timeout

    def _append(self, events: Sequence[AuditEvent]) -> AppendResult:
        return self.store.append_to(self.database, self.store.prepare(events))

    async def append(self, events: Sequence[AuditEvent]) -> None:
        try:
            with anyio.fail_after(self.timeout):
                # An abandoned attempt may still commit later: the store skips event ids it has,
                # so the spooled copy delivered afterwards is not stored twice.
                await anyio.to_thread.run_sync(partial(self._append, events), abandon_on_cancel=True)
        except TimeoutError:
            raise SinkUnavailable("audit store did not answer in time") from None
        except SourceMismatch as exc:
            raise SinkRefused(str(exc)) from None
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            raise SinkUnavailable(f"audit store failing: {exc.__class__.__name__}") from None

    async def aclose(self) -> None:
        return None


class HttpSink:
    """POSTs batches to the audit service (`POST /audit/events`, scope audit:write)."""

    def __init__(
        self,
        client: Callable[[], httpx.AsyncClient],
        url: str,
        *,
        token_provider: TokenProvider | None = None,
        max_batch: int = 1000,
        timeout: float = 5.0,
    ) -> None:
        self._client = client
        self.url = url.rstrip("/") + "/events"
        self.token_provider = token_provider
        self.max_batch = max_batch
        self.timeout = timeout

    async def append(self, events: Sequence[AuditEvent]) -> None:
        for start in range(0, len(events), self.max_batch):
            headers: dict[str, str] = {}
            if self.token_provider is not None:
                try:
                    headers.update(await self.token_provider("POST", self.url))
                except Exception as exc:  # noqa: BLE001 - no token now means: not deliverable now
                    raise SinkUnavailable(f"no token for the audit service: {exc.__class__.__name__}") from None
            body: dict[str, Any] = {"events": [e.to_wire() for e in events[start : start + self.max_batch]]}
            try:
                response = await self._client().post(self.url, json=body, headers=headers, timeout=self.timeout)
            except httpx.HTTPError as exc:
                raise SinkUnavailable(f"audit service unreachable: {exc.__class__.__name__}") from None
            if response.status_code in (200, 201):
                continue
            if response.status_code in (400, 413, 422):
                raise SinkRefused(f"audit service refused the batch ({response.status_code})")
            # 401/403 (token or configuration), 429, 5xx: may heal; keep the events and retry.
            raise SinkUnavailable(f"audit service answered {response.status_code}")

    async def aclose(self) -> None:
        return None
