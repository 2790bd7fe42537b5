"""Subscriptions to a patient's consent changes and the outbox that delivers their notifications.

Delivery guarantees:
- at least once, in order per subscription: the oldest pending notification of a subscription
  is retried (exponential backoff, capped) until it is delivered, and nothing behind it is sent
  before it, so a receiver that is down simply receives everything, in order, when it is back;
- every POST carries `X-Ldn-Subscription` (the subscription id) and `X-Ldn-Event` (the outbox
  sequence number, strictly increasing per subscription) so a receiver can drop a duplicate that a
  crash between its 2xx and our bookkeeping could cause;
- one deliverer per subscription at a time, also across processes sharing a database (a lease
  on the subscription row), so order holds with several consent processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session

from ldn.consent import store
from ldn.consent.keys import BsnKeys
from ldn.consent.settings import ConsentSettings
from ldn.consent.subscriptions import (
    HEADER_EVENT,
    HEADER_SUBSCRIPTION,
    SubscriptionRequest,
    check_endpoint,
    subscription_resource,
)
from ldn.core.errors import BadRequest, NotFound
from ldn.core.http import HttpClientFactory
from ldn.core.storage import Database

__all__ = ["OutboxWorker", "Subscriptions", "backoff_delay"]

logger = logging.getLogger("ldn.consent.outbox")


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base, 2*base, 4*base, ... at most cap."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


class Subscriptions:
    """Create, read and end subscriptions (the service layer behind the FHIR Subscription API)."""

    def __init__(self, *, database: Database, keys: BsnKeys, on_change: Callable[[], None] = lambda: None) -> None:
        self.database = database
        self.keys = keys
        self.on_change = on_change

    async def create(self, request: SubscriptionRequest, *, subscriber_ura: str, client_id: str) -> dict[str, Any]:
        subscription_id = str(uuid.uuid4())
        sealed = self.keys.seal(
            json.dumps({"bsn": request.bsn, "headers": [list(h) for h in request.headers]}).encode(), "subscription"
        )
        await self.database.run(
            lambda session: store.insert_subscription(
                session,
                id=subscription_id,
                subscriber_ura=subscriber_ura,
                client_id=client_id[:200],
                bsn_hash=self.keys.bsn_hash(request.bsn),
                sealed=sealed,
                endpoint=request.endpoint,
                reason=request.reason,
                status="active",
                created_at=datetime.now(UTC),
                end_at=request.end,
                lease_until=None,
                last_error=None,
            )
        )
        return subscription_resource(
            subscription_id,
            bsn=request.bsn,
            endpoint=request.endpoint,
            headers=request.headers,
            reason=request.reason,
            status="active",
            end=request.end,
        )

    async def _row(self, subscription_id: str, subscriber_ura: str | None) -> Any:
        row = await self.database.run(store.get_subscription, subscription_id, readonly=True)
        # Another organisation's subscription is reported exactly like a missing one.
        if row is None or (subscriber_ura is not None and row.subscriber_ura != subscriber_ura):
            raise NotFound(f"no Subscription {subscription_id}")
        return row

    async def read(self, subscription_id: str, *, subscriber_ura: str | None) -> dict[str, Any]:
        row = await self._row(subscription_id, subscriber_ura)
        opened = json.loads(self.keys.open(row.sealed, "subscription"))
        status = row.status
        if status != "off" and row.end_at is not None and _aware(row.end_at) <= datetime.now(UTC):
            status = "off"
        return subscription_resource(
            row.id,
            bsn=opened["bsn"],
            endpoint=row.endpoint,
            headers=[tuple(h) for h in opened.get("headers", [])],
            reason=row.reason,
            status=status,
            end=_aware(row.end_at) if row.end_at else None,
            error=row.last_error if status == "error" else None,
        )

    async def delete(self, subscription_id: str, *, subscriber_ura: str | None) -> int:
        """End a subscription; notifications not yet delivered are cancelled. Returns how many."""
        await self._row(subscription_id, subscriber_ura)

        def work(session: Session) -> int:
            store.set_subscription_status(session, subscription_id, "off")
            return store.cancel_pending(session, subscription_id)

        cancelled: int = await self.database.run(work)
        return cancelled

    async def outbox_counts(self, subscription_id: str) -> dict[str, int]:
        counts: dict[str, int] = await self.database.run(store.outbox_counts, subscription_id, readonly=True)
        return counts


class OutboxWorker:
    """Background delivery of queued notifications (started and stopped by the service lifespan)."""

    def __init__(
        self,
        *,
        database: Database,
        http: HttpClientFactory,
        keys: BsnKeys,
        settings: ConsentSettings,
        allowed_origins: Callable[[], Iterable[str]],
    ) -> None:
        self.database = database
        self.http = http
        self.keys = keys
        self.settings = settings
        self.allowed_origins = allowed_origins
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.owner = uuid.uuid4().hex[:8]

    def wake(self) -> None:
        """Deliver soon (called after a change committed); safe before start and after stop."""
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="consent-outbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # A delivery cut short leaves its lease behind: hand it back so a restart (or another
            # process) continues at once instead of waiting for the lease to run out.
            with contextlib.suppress(Exception):
                await self.database.run(store.release_leases, self.owner)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await self.deliver_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything and try again
                logger.warning("outbox round failed: %s", exc.__class__.__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.outbox_interval)
            self._wake.clear()

    async def deliver_round(self) -> int:
        """One pass over every subscription with pending notifications; returns how many were delivered."""
        pending = await self.database.run(store.subscriptions_with_pending, readonly=True)
        delivered = 0
        for subscription_id in pending:
            try:
                delivered += await self._deliver(subscription_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken subscription must not stall the others
                logger.warning("delivery for a subscription failed: %s", exc.__class__.__name__)
        return delivered

    def _lease_until(self) -> datetime:
        # Long enough for one delivery; renewed before each POST, so a crashed deliverer's lease
        # runs out soon while a live one never loses it mid-batch.
        return datetime.now(UTC) + timedelta(seconds=30 + 2 * self.settings.delivery_timeout)

    async def _deliver(self, subscription_id: str) -> int:
        now = datetime.now(UTC)
        sub = await self.database.run(store.claim_subscription, subscription_id, self.owner, now, self._lease_until())
        if sub is None:
            return 0  # another deliverer holds it
        delivered = 0
        try:
            if sub.status == "off" or (sub.end_at is not None and _aware(sub.end_at) <= now):
                await self.database.run(store.cancel_pending, subscription_id)
                return 0
            try:
                check_endpoint(
                    sub.endpoint,
                    allowed_origins=self.allowed_origins(),
                    allow_loopback=self.settings.allow_loopback_hooks,
                )
            except BadRequest:
                # The configuration changed since the subscription was made: keep the queue, say why.
                await self.database.run(store.set_delivery_health, subscription_id, "error", "endpoint not allowed")
                return 0
            opened = json.loads(self.keys.open(sub.sealed, "subscription"))
            extra = dict(opened.get("headers", []))
            items = await self.database.run(
                store.pending_items, subscription_id, self.settings.outbox_batch, readonly=True
            )
            for item in items:
                if _aware(item.next_attempt_at) > datetime.now(UTC):
                    break  # the head is backing off; later items wait behind it to keep the order
                ready = await self.database.run(
                    store.prepare_delivery, subscription_id, self.owner, self._lease_until(), int(item.id)
                )
                if not ready:
                    return delivered  # ended, cancelled, or the lease was taken over: stop here
                error = await self._post(sub.endpoint, subscription_id, int(item.id), item.payload, extra)
                if error is None:
                    await self.database.run(store.mark_delivered, int(item.id), datetime.now(UTC))
                    delivered += 1
                    continue
                attempts = int(item.attempts) + 1
                delay = backoff_delay(attempts, self.settings.outbox_backoff_base, self.settings.outbox_backoff_cap)
                retry_at = datetime.now(UTC) + timedelta(seconds=delay)
                await self.database.run(self._failed, subscription_id, int(item.id), attempts, retry_at, error)
                logger.info("notification delivery failed (attempt %d, retry in %.1fs): %s", attempts, delay, error)
                return delivered
            if delivered and sub.status == "error":
                await self.database.run(store.set_delivery_health, subscription_id, "active", None)
            return delivered
        finally:
            await self.database.run(store.release_subscription, subscription_id, self.owner)

    @staticmethod
    def _failed(
        session: Session, subscription_id: str, item_id: int, attempts: int, retry_at: datetime, error: str
    ) -> None:
        store.mark_failed(session, item_id, attempts, retry_at, error)
        store.set_delivery_health(session, subscription_id, "error", error)

    async def _post(
        self, endpoint: str, subscription_id: str, event: int, sealed: str, extra: dict[str, str]
    ) -> str | None:
        """POST one notification; None on a 2xx, else a short reason (no payload, no BSN)."""
        body = self.keys.open(sealed, "outbox")
        headers = {
            **extra,
            "Content-Type": "application/fhir+json",
            HEADER_SUBSCRIPTION: subscription_id,
            HEADER_EVENT: str(event),
        }
        try:
            response = await self.http.client().post(
                endpoint, content=body, headers=headers, timeout=self.settings.delivery_timeout
            )
        except httpx.HTTPError as exc:
            return f"delivery failed: {exc.__class__.__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"receiver answered {response.status_code}"
