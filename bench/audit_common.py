"""Shared pieces of the audit benchmarks: machine line, a fresh database, synthetic events."""

from __future__ import annotations

import os
import platform
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ldn.audit.catalogue import EventTypes
from ldn.audit.model import AuditEvent, AuditObject, AuditSource, AuditUser, Outcome


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.platform()} | {cpu} | os.cpu_count()={os.cpu_count()} | Python {platform.python_version()} "
        f"| load average {load} at start"
    )


def fresh_database_url(url: str | None) -> str:
    """A URL to an empty database: a temporary SQLite file, or the PostgreSQL database in `url`
    dropped and created again (it must be a throwaway database, e.g. ldn_bench_audit)."""
    if not url:
        return f"sqlite:///{Path(tempfile.mkdtemp(prefix='ldn-bench-audit-')) / 'audit.db'}"
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        name = parsed.database or ""
        if not name.startswith("ldn_bench"):
            raise SystemExit("refusing to recreate a PostgreSQL database whose name does not start with ldn_bench")
        admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    return url


def drop_postgres(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


def synthetic_bsns(count: int) -> list[str]:
    """Synthetic BSNs in the 99999xxxx test range that pass the 11-check."""
    found: list[str] = []
    candidate = 999990000
    while len(found) < count and candidate <= 999999999:
        digits = f"{candidate:09d}"
        total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
        if total % 11 == 0:
            found.append(digits)
        candidate += 1
    return found


SOURCE = AuditSource("node-00000040", "node", "00000040", "http://bench.local/nodes/00000040")
USERS = [
    AuditUser("900000011", role="01.015", name="A. de Vries", organization_ura="00000020"),
    AuditUser("900000031", role="01.016", name="S. van Dijk", organization_ura="00000040"),
    AuditUser("900000041", role="17.000", name="K. Mulder", organization_ura="00000050"),
]


def holder_events(count: int, *, bsns: list[str], start: datetime | None = None) -> list[AuditEvent]:
    """Realistic holder-side reads: varied patients, users, traces and times."""
    begin = start or datetime.now(UTC) - timedelta(seconds=count)
    events = []
    for n in range(count):
        events.append(
            AuditEvent(
                type=EventTypes.FHIR_READ_HOLDER,
                outcome=Outcome.SUCCESS,
                users=[USERS[n % len(USERS)]],
                objects=[
                    AuditObject.patient(
                        bsns[n % len(bsns)], data_categories=["GGC002"], query=f"Observation?_id=obs-{n}"
                    )
                ],
                checks=["token", "consent:permit", "authz:permit"],
                counterpart_ura=USERS[n % len(USERS)].organization_ura,
                trace_id=secrets.token_hex(16),
                source=SOURCE,
                occurred_at=begin + timedelta(seconds=n),
            )
        )
    return events
