"""Never lost: while the store is unavailable events wait in the durable spool and arrive later in
order; when not even the spool works, the access is refused (503)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ldn.audit.logger import AuditLogger, AuditUnavailable
from ldn.audit.model import AuditEvent
from ldn.audit.sinks import AuditSink, DatabaseSink, SinkRefused
from ldn.audit.spool import Spool, spool_key
from ldn.audit.store import AuditStore
from ldn.audit.verify import verify_database
from ldn.core.errors import install_error_handlers
from ldn.core.storage import Database
from tests.audit.helpers import BSN_ANNA, HOLDER, holder_read

DEAD_URL = "postgresql+psycopg://postgres@127.0.0.1:1/unreachable?connect_timeout=1"


class SwitchableSink:
    """The real store, or (during an outage) a store whose database cannot be reached at all."""

    def __init__(self, up: AuditSink, down: AuditSink) -> None:
        self.up, self.down = up, down
        self.available = True

    async def append(self, events: Sequence[AuditEvent]) -> None:
        await (self.up if self.available else self.down).append(events)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def dead_database() -> Iterator[Database]:
    db = Database(DEAD_URL)
    yield db
    db.dispose()


def _spool(tmp_path: Path) -> Spool:
    directory = tmp_path / "spool"
    return Spool(directory, HOLDER.source_id, spool_key(directory, None))


def _order(database: Database) -> list[int]:
    """The request numbers of the stored records, in chain order."""
    with database.transaction(readonly=True) as session:
        records = AuditStore.window(session, HOLDER.source_id, 1, 10**9)
    return [int(json.loads(r.detail)["objects"][0]["query"].rsplit("-", 1)[1]) for r in records]


async def test_outage_during_traffic_spools_and_delivers_in_order(
    database: Database, dead_database: Database, store: AuditStore, tmp_path: Path
) -> None:
    sink = SwitchableSink(DatabaseSink(database, store), DatabaseSink(dead_database, store, timeout=3))
    audit = AuditLogger(HOLDER, sink, _spool(tmp_path), retry_initial=0.05, retry_max=0.2)
    # Traffic: concurrent requests, each recording its access before answering.
    await asyncio.gather(*(audit.record(holder_read(n)) for n in range(40)))
    sink.available = False
    await asyncio.gather(*(audit.record(holder_read(n)) for n in range(40, 80)))
    for n in range(80, 90):  # one by one as well
        await audit.record(holder_read(n))
    assert audit.spooling
    assert await audit.spooled() == 50
    assert len(_order(database)) == 40
    await asyncio.sleep(0.3)  # retries fail while the store is down; nothing is lost or reordered
    assert await audit.spooled() == 50
    # Still down: new traffic keeps queueing behind the spooled events.
    await audit.record(holder_read(90))
    sink.available = True
    await audit.record(holder_read(91))
    assert await audit.flush(timeout=10)
    assert not audit.spooling
    assert _order(database) == list(range(92))
    assert audit.delivered_from_spool >= 51
    report = verify_database(database, store.keys.signer)
    assert report.ok and report.records == 92
    await audit.aclose()


async def test_stuck_store_times_out_to_the_spool_without_duplicates(
    database: Database, store: AuditStore, tmp_path: Path
) -> None:
    audit = AuditLogger(HOLDER, DatabaseSink(database, store, timeout=0.3), _spool(tmp_path), retry_initial=0.05)
    await audit.record(holder_read(0))
    release = threading.Event()
    locked = threading.Event()

    def hold_lock() -> None:
        with database.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE audit_chain_head IN ACCESS EXCLUSIVE MODE")
            else:
                conn.exec_driver_sql("COMMIT")  # leave the implicit BEGIN IMMEDIATE of the pool
                conn.exec_driver_sql("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(20)
            conn.exec_driver_sql("COMMIT")

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert locked.wait(10)
    try:
        for n in range(1, 6):
            await audit.record(holder_read(n))  # each waits at most the store timeout
        assert audit.spooling
    finally:
        release.set()
        holder.join()
    assert await audit.flush(timeout=20)
    # The abandoned attempts may also have committed: every event is stored exactly once, in order.
    await asyncio.sleep(0.5)
    assert _order(database) == list(range(6))
    assert verify_database(database, store.keys.signer).ok
    await audit.aclose()


def _app(audit: AuditLogger) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/patient-data")
    async def read() -> dict[str, str]:
        await audit.record(holder_read(1))  # record before answering
        return {"data": "the patient's data"}

    return app


async def test_access_is_refused_when_the_event_cannot_even_be_spooled(
    dead_database: Database, store: AuditStore, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be")
    broken_spool = Spool(blocker, HOLDER.source_id, b"k" * 32)
    audit = AuditLogger(HOLDER, DatabaseSink(dead_database, store, timeout=3), broken_spool)
    transport = httpx.ASGITransport(app=_app(audit))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        response = await client.get("/patient-data")
    assert response.status_code == 503
    body = response.json()
    assert body["issue"][0]["code"] == "transient"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "audit-unavailable"
    assert "patient's data" not in response.text
    assert response.headers["retry-after"] == "5"
    with pytest.raises(AuditUnavailable):
        await audit.record(holder_read(2))
    await audit.aclose()


async def test_access_proceeds_while_events_can_be_spooled(
    dead_database: Database, store: AuditStore, tmp_path: Path
) -> None:
    audit = AuditLogger(HOLDER, DatabaseSink(dead_database, store, timeout=3), _spool(tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(audit)), base_url="http://node") as client:
        response = await client.get("/patient-data")
    assert response.status_code == 200
    assert await audit.spooled() == 1
    await audit.aclose()


async def test_without_a_spool_a_store_outage_refuses_the_access(dead_database: Database, store: AuditStore) -> None:
    audit = AuditLogger(HOLDER, DatabaseSink(dead_database, store, timeout=3), None)
    with pytest.raises(AuditUnavailable):
        await audit.record(holder_read(1))


async def test_spool_survives_a_restart(
    database: Database, dead_database: Database, store: AuditStore, tmp_path: Path
) -> None:
    first = AuditLogger(HOLDER, DatabaseSink(dead_database, store, timeout=3), _spool(tmp_path), retry_initial=5)
    for n in range(5):
        await first.record(holder_read(n))
    await first.aclose()  # the process stops with events still spooled
    assert _order(database) == []
    second = AuditLogger(HOLDER, DatabaseSink(database, store), _spool(tmp_path), retry_initial=0.05)
    await second.start()
    assert await second.flush(timeout=10)
    assert _order(database) == [0, 1, 2, 3, 4]
    await second.aclose()


async def test_spooled_events_are_encrypted_at_rest(dead_database: Database, store: AuditStore, tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    audit = AuditLogger(HOLDER, DatabaseSink(dead_database, store, timeout=3), spool, retry_initial=5)
    await audit.record(holder_read(1, bsn=BSN_ANNA))
    await audit.aclose()
    raw = b"".join(p.read_bytes() for p in spool.path.parent.iterdir() if p.name.startswith("spool.sqlite3"))
    assert BSN_ANNA.encode() not in raw
    assert b"900000011" not in raw
    with sqlite3.connect(spool.path) as conn:
        assert conn.execute("SELECT count(*) FROM spool").fetchone()[0] == 1
    key_file = tmp_path / "spool" / "spool.key"
    assert key_file.stat().st_mode & 0o077 == 0


class PoisonSink:
    """A store that refuses one particular event outright (as only a bug could cause)."""

    def __init__(self, inner: AuditSink) -> None:
        self.inner = inner
        self.available = False

    async def append(self, events: Sequence[AuditEvent]) -> None:
        if not self.available:
            from ldn.audit.sinks import SinkUnavailable

            raise SinkUnavailable("down")
        if any(e.objects[0].query.rsplit("=", 1)[1] == "obs-2" for e in events if e.objects[0].query):
            raise SinkRefused("refused")
        await self.inner.append(events)

    async def aclose(self) -> None:
        return None


async def test_a_refused_spooled_event_is_set_aside_not_blocking_the_rest(
    database: Database, store: AuditStore, tmp_path: Path
) -> None:
    sink = PoisonSink(DatabaseSink(database, store))
    spool = _spool(tmp_path)
    audit = AuditLogger(HOLDER, sink, spool, retry_initial=0.05, retry_max=0.1)
    for n in range(5):
        await audit.record(holder_read(n))
    sink.available = True
    assert await audit.flush(timeout=10)
    assert _order(database) == [0, 1, 3, 4]
    assert spool.dead_letters() == 1
    await audit.aclose()
