"""Builders and helpers shared by the audit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from ldn.audit.catalogue import EventTypes
from ldn.audit.model import AuditEvent, AuditObject, AuditSource, AuditUser, Outcome
from ldn.audit.store import AuditStore
from ldn.core.storage import Database

HOLDER = AuditSource("node-00000040", "node", "00000040", "http://ldn.test/nodes/00000040")
REQUESTER = AuditSource("node-00000020", "node", "00000020", "http://ldn.test/nodes/00000020")
GP = AuditUser("900000011", role="01.015", name="A. de Vries", organization_ura="00000020")
BSN_ANNA = "999990007"
BSN_BRAM = "999990019"


def holder_read(
    n: int = 0,
    *,
    source: AuditSource = HOLDER,
    bsn: str = BSN_ANNA,
    trace_id: str | None = None,
    when: datetime | None = None,
    outcome: Outcome = Outcome.SUCCESS,
) -> AuditEvent:
    """A holder-side FHIR read by the GP of 00000020; `n` is kept in the query, to follow order."""
    return AuditEvent(
        type=EventTypes.FHIR_READ_HOLDER,
        outcome=outcome,
        users=[GP],
        objects=[AuditObject.patient(bsn, data_categories=["GGC002"], query=f"Observation?_id=obs-{n}")],
        checks=["token", "consent:permit"],
        counterpart_ura="00000020",
        trace_id=trace_id or f"{n + 1:032x}",
        source=source,
        occurred_at=when or datetime.now(UTC),
    )


def append(database: Database, store: AuditStore, events: list[AuditEvent]) -> None:
    with database.transaction() as session:
        store.append(session, events)


def fill(database: Database, store: AuditStore, count: int, *, source: AuditSource = HOLDER) -> None:
    """`count` records, spread over the last `count` minutes (oldest first)."""
    start = datetime.now(UTC) - timedelta(minutes=count)
    events = [holder_read(i, source=source, when=start + timedelta(minutes=i)) for i in range(count)]
    append(database, store, events)


def sql(database: Database, statement: str, **params: object) -> None:
    with database.engine.begin() as conn:
        conn.execute(text(statement), params)
