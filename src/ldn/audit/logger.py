"""`AuditLogger`: the one call every service and node uses, `await audit.record(event)`.

What `record` guarantees when it returns: the event is either in the audit store or durably in
the local spool, in the order the calls were made. When neither is possible it raises
`AuditUnavailable` (a 503 `ServiceError`), and the caller must refuse the access it was about to
grant: record before answering.

How: concurrent `record` calls are grouped into one batch (group commit) by a single writer
task, so one source's chain is extended in call order. While the store is reachable batches go
straight to it; on the first failure the logger switches to spooling, and every later batch goes
to the spool behind the earlier ones until a background flusher has delivered all of them, oldest
first, and switches back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread

from ldn.audit.model import AuditEvent, AuditEventError, AuditSource
from ldn.audit.sinks import AuditSink, SinkRefused, SinkUnavailable
from ldn.audit.spool import Spool, SpoolEntry, SpoolError
from ldn.core.errors import Unavailable
from ldn.core.logging import TraceContext, current_trace

__all__ = ["AuditLogger", "AuditUnavailable"]

logger = logging.getLogger("ldn.audit")


class AuditUnavailable(Unavailable):
    """The event could be neither stored nor spooled: refuse the access (503, `audit-unavailable`)."""

    def __init__(self, diagnostics: str = "the access cannot be logged (NEN 7513), so it is refused") -> None:
        super().__init__(diagnostics, details_code="audit-unavailable", headers={"Retry-After": "5"})


_Pending = tuple[list[AuditEvent], "asyncio.Future[None]"]


class AuditLogger:
    """Records events of one log source through a sink, with a durable spool in front."""

    def __init__(
        self,
        source: AuditSource,
        sink: AuditSink | Callable[[], AuditSink],
        spool: Spool | None,
        *,
        batch_limit: int = 1000,
        retry_initial: float = 0.2,
        retry_max: float = 30.0,
    ) -> None:
        self.source = source
        self._sink_or_factory = sink
        self._sink: AuditSink | None = None
        self.spool = spool
        self.batch_limit = batch_limit
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._spool_lock: asyncio.Lock | None = None
        self._spooling = False
        self._started = False
        self.delivered_from_spool = 0

    # --- public API ---------------------------------------------------------------------

    async def record(self, *events: AuditEvent) -> None:
        """Store (or durably spool) these events, in order; AuditUnavailable when impossible."""
        if not events:
            return
        trace = current_trace()
        trace_id = trace.trace_id if trace is not None else TraceContext.new().trace_id
        completed = []
        for event in events:
            if not isinstance(event, AuditEvent):
                raise AuditEventError("record() takes AuditEvent values")
            completed.append(event.completed(self.source, trace_id))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((completed, future))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_pending())
        # Shielded: a caller that goes away (client disconnect) does not cancel the write.
        await asyncio.shield(future)

    @property
    def spooling(self) -> bool:
        return self._spooling

    async def spooled(self) -> int:
        if self.spool is None:
            return 0
        return await anyio.to_thread.run_sync(self.spool.count)

    async def start(self) -> None:
        """Resume delivery of events a previous run left in the spool."""
        await self._ensure_started()

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending or spooled (True), or `timeout` passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            writer_busy = self._writer is not None and not self._writer.done()
            if not self._pending and not writer_busy and not self._spooling:
                return True
            if self._spooling:
                self._ensure_flusher()
            await asyncio.sleep(0.02)
        return False

    async def aclose(self) -> None:
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(Exception):
                await self._writer
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
            self._flusher = None
        if self._sink is not None:
            await self._sink.aclose()
        if self.spool is not None:
            self.spool.close()
        self._started = False

    # --- internals ----------------------------------------------------------------------

    def sink(self) -> AuditSink:
        if self._sink is None:
            candidate = self._sink_or_factory
            self._sink = candidate() if callable(candidate) and not hasattr(candidate, "append") else candidate  # type: ignore[assignment]
        assert self._sink is not None
        return self._sink

    def _lock(self) -> asyncio.Lock:
        if self._spool_lock is None:
            self._spool_lock = asyncio.Lock()
        return self._spool_lock

    async def _ensure_started(self) -> None:
        if self._started:
            return
        self._started = True
        if self.spool is not None and self.spool.exists():
            try:
                left = await anyio.to_thread.run_sync(self.spool.count)
            except SpoolError:
                left = 0
            if left:
                logger.warning("audit spool holds %d event(s) from an earlier run; delivering", left)
                self._spooling = True
                self._ensure_flusher()

    async def _write_pending(self) -> None:
        # Calls are queued before any await, so the queue order is the call order.
        await self._ensure_started()
        while self._pending:
            # Let callers that are ready to run (woken by the previous batch) queue their events
            # first, so one transaction carries many of them (group commit).
            await asyncio.sleep(0)
            batch: list[_Pending] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0][0]) <= self.batch_limit):
                item = self._pending.pop(0)
                batch.append(item)
                size += len(item[0])
            events = [event for chunk, _ in batch for event in chunk]
            try:
                await self._deliver(events)
            except AuditUnavailable as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(AuditUnavailable(exc.diagnostics))
            except BaseException as exc:  # deliver never raises others on purpose; do not strand callers
                if not isinstance(exc, asyncio.CancelledError):
                    logger.error("audit logging of %s failed: %s", self.source.source_id, exc.__class__.__name__)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(AuditUnavailable(f"audit logging failed: {exc.__class__.__name__}"))
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def _deliver(self, events: list[AuditEvent]) -> None:
        async with self._lock():
            if self._spooling:
                await self._to_spool(events)
                self._ensure_flusher()
                return
        try:
            await self.sink().append(events)
            return
        except SinkUnavailable as exc:
            logger.warning("audit store unavailable (%s); spooling events of %s", exc, self.source.source_id)
        except SinkRefused as exc:
            logger.error("audit store refused events of %s: %s", self.source.source_id, exc)
            raise AuditUnavailable("the audit store refused the event") from None
        async with self._lock():
            self._spooling = True
            await self._to_spool(events)
        self._ensure_flusher()

    async def _to_spool(self, events: Sequence[AuditEvent]) -> None:
        if self.spool is None:
            raise AuditUnavailable("the audit store is unavailable and this service has no spool")
        wire = [e.to_wire() for e in events]
        try:
            await anyio.to_thread.run_sync(self.spool.append, wire)
        except SpoolError as exc:
            logger.error("audit spool of %s failed: %s", self.source.source_id, exc)
            raise AuditUnavailable("the audit store is unavailable and the event cannot be spooled") from None

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        assert self.spool is not None
        spool = self.spool
        delay = self.retry_initial
        while True:
            try:
                async with self._lock():
                    entries = await anyio.to_thread.run_sync(spool.peek, self.batch_limit)
                    if not entries:
                        self._spooling = False
                        logger.info("audit spool of %s drained", self.source.source_id)
                        return
                await self._deliver_entries(spool, entries)
                delay = self.retry_initial
            except SinkUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
            except SpoolError as exc:
                logger.error("audit spool of %s unreadable: %s", self.source.source_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
            except Exception as exc:  # noqa: BLE001 - a stopped flusher would strand the spool
                logger.error("audit spool delivery of %s failed: %s", self.source.source_id, exc.__class__.__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)

    async def _deliver_entries(self, spool: Spool, entries: list[SpoolEntry]) -> None:
        events: list[AuditEvent] = []
        good: list[SpoolEntry] = []
        for entry in entries:
            try:
                events.append(AuditEvent.from_wire(entry.event))
                good.append(entry)
            except AuditEventError as exc:
                await anyio.to_thread.run_sync(spool.dead_letter, [entry], f"unreadable: {exc}")
        if not good:
            return
        try:
            await self.sink().append(events)
        except SinkRefused as exc:
            if len(good) == 1:
                logger.error("audit store refused a spooled event of %s: %s", self.source.source_id, exc)
                await anyio.to_thread.run_sync(spool.dead_letter, good, str(exc))
                return
            # Find the refused one(s): deliver one by one, in order.
            for entry, event in zip(good, events, strict=True):
                await self._deliver_one(spool, entry, event)
            return
        await anyio.to_thread.run_sync(spool.ack, good[-1].id)
        self.delivered_from_spool += len(good)

    async def _deliver_one(self, spool: Spool, entry: SpoolEntry, event: AuditEvent) -> None:
        try:
            await self.sink().append([event])
        except SinkRefused as exc:
            await anyio.to_thread.run_sync(spool.dead_letter, [entry], str(exc))
            return
        await anyio.to_thread.run_sync(spool.ack, entry.id)
        self.delivered_from_spool += 1

    def describe(self) -> dict[str, Any]:
        return {"source": self.source.source_id, "spooling": self._spooling}
