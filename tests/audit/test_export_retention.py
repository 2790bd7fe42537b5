"""Supervisor export (FHIR AuditEvent Bundle, JSON Lines) and retention purge to a signed anchor."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldn.audit.catalogue import EventTypes
from ldn.audit.export import export_stream, parse_period
from ldn.audit.retention import purge, retention_cutoff
from ldn.audit.store import AuditQuery, AuditStore
from ldn.audit.verify import verify_database
from ldn.cli import app as ldn_app
from ldn.core.config import CoreSettings
from ldn.core.errors import BadRequest
from ldn.core.fhir import validate_resource
from ldn.core.storage import Database
from ldn.core.topology import Topology
from tests.audit.helpers import BSN_ANNA, BSN_BRAM, HOLDER, REQUESTER, append, holder_read, sql

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def _seed(database: Database, store: AuditStore) -> None:
    """Holder records on 1, 2 and 3 March 2026 and one requester record on 2 March."""
    append(
        database,
        store,
        [
            holder_read(1, when=datetime(2026, 3, 1, 10, tzinfo=UTC)),
            holder_read(2, when=datetime(2026, 3, 2, 23, 59, tzinfo=UTC), bsn=BSN_BRAM),
            holder_read(3, when=datetime(2026, 3, 3, 0, 0, tzinfo=UTC)),
        ],
    )
    append(database, store, [holder_read(4, source=REQUESTER, when=datetime(2026, 3, 2, 9, tzinfo=UTC))])


def _text(
    database: Database, store: AuditStore, topology: Topology, fmt: str, since: str, until: str, org: str | None
) -> str:
    period = parse_period(since, until)
    return "".join(export_stream(database, period, org, fmt, store.keys.bsn, topology))  # type: ignore[arg-type]


def test_fhir_export_is_a_valid_bundle_of_audit_events(
    database: Database, store: AuditStore, topology: Topology
) -> None:
    _seed(database, store)
    bundle = json.loads(_text(database, store, topology, "fhir", "2026-03-01", "2026-03-02", "00000040"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    events = [e["resource"] for e in bundle["entry"]]
    assert len(events) == 2  # 1 and 2 March, the holder only
    for event in events:
        validate_resource(event, "AuditEvent")
    first = events[0]
    assert first["type"]["code"] == EventTypes.FHIR_READ_HOLDER.code
    assert first["action"] == "R" and first["outcome"] == "0"
    assert first["source"]["observer"]["identifier"]["value"] == "00000040"
    assert first["source"]["observer"]["display"] == "Ziekenhuis Rijnstad"
    patient = next(e for e in first["entity"] if e["role"]["code"] == "1")
    assert patient["what"]["identifier"] == {"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": BSN_ANNA}
    assert {"type": "data-category", "valueString": "GGC002"} in patient["detail"]
    agent = first["agent"][0]
    assert agent["who"]["identifier"]["value"] == "900000011" and agent["requestor"] is True
    assert agent["role"][0]["coding"][0]["code"] == "01.015"
    chain = next(x for x in first["extension"] if x["url"].endswith("audit-chain"))
    assert {"url": "seq", "valueString": "1"} in chain["extension"]
    assert events[1]["entity"][0]["what"]["identifier"]["value"] == BSN_BRAM


def test_jsonl_export_by_period_for_all_organisations(
    database: Database, store: AuditStore, topology: Topology
) -> None:
    _seed(database, store)
    text = _text(database, store, topology, "jsonl", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", None)
    lines = [json.loads(line) for line in text.splitlines()]
    assert sorted((line["chain"]["source"], line["chain"]["seq"]) for line in lines) == [
        (REQUESTER.source_id, 1),
        (HOLDER.source_id, 2),
    ]
    holder = next(line for line in lines if line["chain"]["source"] == HOLDER.source_id)
    assert holder["objects"][0]["identifier"] == BSN_BRAM
    assert holder["type"]["key"] == "fhir.read.holder"
    assert len(holder["chain"]["record_hash"]) == 64
    empty = _text(database, store, topology, "jsonl", "2025-01-01", "2025-12-31", None)
    assert empty == ""


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-13-01", "2026-12-31"),
        ("yesterday", "2026-12-31"),
        ("2026-01-01T00:00:00", "2026-02-01T00:00:00Z"),
        ("2026-02-01", "2026-01-01"),
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
        ("", "2026-01-01"),
        (None, "2026-01-01"),
        ("1900-01-01", "2026-01-01"),
    ],
)
def test_malformed_export_periods_are_refused(since: str | None, until: str) -> None:
    with pytest.raises(BadRequest):
        parse_period(since, until)


def test_retention_cutoff_is_calendar_years() -> None:
    assert retention_cutoff(NOW, 5) == datetime(2021, 6, 15, 12, 0, tzinfo=UTC)
    assert retention_cutoff(datetime(2028, 2, 29, tzinfo=UTC), 5) == datetime(2023, 2, 28, tzinfo=UTC)


def _aged(database: Database, store: AuditStore) -> None:
    """25 records from 7 years ago down to 3 years ago, in time order."""
    start = NOW - timedelta(days=7 * 365)
    step = timedelta(days=4 * 365 / 24)
    for chunk in range(5):
        append(database, store, [holder_read(chunk * 5 + i, when=start + (chunk * 5 + i) * step) for i in range(5)])


def test_purge_removes_old_records_and_keeps_the_rest_verifiable(database: Database, store: AuditStore) -> None:
    _aged(database, store)
    cutoff = retention_cutoff(NOW, 5)
    old = sum(1 for i in range(25) if NOW - timedelta(days=7 * 365) + i * timedelta(days=4 * 365 / 24) < cutoff)
    results = purge(database, store, now=NOW, years=5)
    result = next(r for r in results if r.source == HOLDER.source_id)
    assert result.refused is None
    assert result.removed == old and result.anchored_at == old
    report = verify_database(database, store.keys.signer)
    assert report.ok, report.breakages
    holder = next(s for s in report.sources if s.source == HOLDER.source_id)
    assert holder.anchored_at == old and holder.first_seq == old + 1 and holder.records == 25 - old
    # The chain goes on from the anchor; a second purge has nothing to do.
    append(database, store, [holder_read(99, when=NOW)])
    assert verify_database(database, store.keys.signer).ok
    again = purge(database, store, now=NOW, years=5)
    assert all(r.removed == 0 for r in again)
    with database.transaction(readonly=True) as session:
        remaining = AuditStore.query(session, AuditQuery(organization_ura="00000040", limit=100))
    assert all(r.occurred_at >= "2021-06-15" for r in remaining)


def test_purge_refuses_to_destroy_a_broken_chain(tamper: Database, store: AuditStore) -> None:
    _aged(tamper, store)
    sql(tamper, "UPDATE audit_record SET outcome = 'error' WHERE source = :s AND seq = 2", s=HOLDER.source_id)
    results = purge(tamper, store, now=NOW, years=5)
    result = next(r for r in results if r.source == HOLDER.source_id)
    assert result.removed == 0 and result.refused is not None and result.refused.seq == 2


def test_a_forged_anchor_is_detected(database: Database, store: AuditStore) -> None:
    _aged(database, store)
    purge(database, store, now=NOW, years=5)
    sql(database, "UPDATE audit_anchor SET seq = seq + 1 WHERE source = :s", s=HOLDER.source_id)
    report = verify_database(database, store.keys.signer)
    assert [b.kind for b in report.breakages] == ["bad-anchor"]


@pytest.fixture
def cli_env(settings: CoreSettings, database_url: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("LDN_DATABASE_URL", "LDN_DATA_DIR", "LDN_AUDIT_CHECKPOINT_EVERY")}
    os.environ.update(
        LDN_DATABASE_URL=database_url, LDN_DATA_DIR=str(settings.data_dir), LDN_AUDIT_CHECKPOINT_EVERY="10"
    )
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_cli_export_and_purge(database: Database, store: AuditStore, cli_env: None, tmp_path: Path) -> None:
    _aged(database, store)
    _seed(database, store)
    runner = CliRunner()
    target = tmp_path / "export.jsonl"
    args = ["--from", "2026-03-01", "--to", "2026-03-03", "--format", "jsonl", "--output", str(target)]
    done = runner.invoke(ldn_app, ["audit", "export", *args])
    assert done.exit_code == 0, done.output
    assert len(target.read_text().splitlines()) == 4
    bad = runner.invoke(ldn_app, ["audit", "export", "--from", "2026-03-09", "--to", "2026-03-01"])
    assert bad.exit_code == 2
    bad_org = runner.invoke(ldn_app, ["audit", "export", "--from", "2026-03-01", "--to", "2026-03-09", "--org", "1"])
    assert bad_org.exit_code == 2
    # The export itself is in the audit service's own chain.
    with database.transaction(readonly=True) as session:
        logged = AuditStore.query(session, AuditQuery(event_codes=(EventTypes.AUDIT_EXPORT.code,)))
    assert len(logged) == 1 and logged[0].source == "audit"
    purged = runner.invoke(ldn_app, ["audit", "purge", "--now", NOW.isoformat()])
    assert purged.exit_code == 0, purged.output
    assert "anchored at" in purged.output
    checked = runner.invoke(ldn_app, ["audit", "verify"])
    assert checked.exit_code == 0, checked.output
    signed = runner.invoke(ldn_app, ["audit", "checkpoint"])
    assert signed.exit_code == 0 and "checkpoint(s) signed" in signed.output
