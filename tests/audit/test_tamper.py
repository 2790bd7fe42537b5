"""Tamper evidence: change, delete, insert or reorder rows directly in the database, and `verify`
names the first broken record and the kind of breakage."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ldn.audit.chain import StoredRecord, record_hash
from ldn.audit.store import AuditStore
from ldn.audit.verify import Breakage, verify_database
from ldn.cli import app as ldn_app
from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from tests.audit.helpers import HOLDER, REQUESTER, append, holder_read, sql

SOURCE = HOLDER.source_id


@pytest.fixture
def chain(tamper: Database, store: AuditStore) -> Database:
    """30 records of the holder in three appends (checkpoints at 10, 20, 30), 5 of the requester."""
    for start in (0, 10, 20):
        append(tamper, store, [holder_read(start + i) for i in range(10)])
    append(tamper, store, [holder_read(100 + i, source=REQUESTER) for i in range(5)])
    assert verify_database(tamper, store.keys.signer).ok
    return tamper


def _breakage(database: Database, store: AuditStore) -> Breakage:
    report = verify_database(database, store.keys.signer)
    assert not report.ok
    broken = report.breakages
    assert [b.source for b in broken] == [SOURCE], "only the tampered source is reported"
    others = [s for s in report.sources if s.source == REQUESTER.source_id]
    assert others[0].ok and others[0].records == 5
    return broken[0]


def _record(database: Database, seq: int) -> StoredRecord:
    with database.transaction(readonly=True) as session:
        return AuditStore.window(session, SOURCE, seq, seq)[0]


def _insert(database: Database, record: StoredRecord) -> None:
    data = record.as_dict()
    columns = ", ".join(data)
    marks = ", ".join(f":{k}" for k in data)
    sql(database, f"INSERT INTO audit_record ({columns}) VALUES ({marks})", **data)  # noqa: S608


def _forge(template: StoredRecord, *, seq: int, prev_hash: str, **changes: object) -> StoredRecord:
    """A record an attacker who knows the algorithm (but not the signing key) can make."""
    forged = dataclasses.replace(template, seq=seq, prev_hash=prev_hash, record_hash="", **changes)  # type: ignore[arg-type]
    return dataclasses.replace(forged, record_hash=record_hash(forged.canonical()))


def _shift(database: Database, first: int, by: int) -> None:
    # Two steps, so the primary key never sees two rows with the same number.
    sql(database, "UPDATE audit_record SET seq = seq + 1000000 WHERE source = :s AND seq >= :f", s=SOURCE, f=first)
    sql(
        database,
        "UPDATE audit_record SET seq = seq - 1000000 + :by WHERE source = :s AND seq >= 1000000",
        s=SOURCE,
        by=by,
    )


def _rehash_from(database: Database, seq: int, last: int) -> None:
    prev = _record(database, seq - 1).record_hash
    for n in range(seq, last + 1):
        fixed = _forge(_record(database, n), seq=n, prev_hash=prev)
        sql(
            database,
            "UPDATE audit_record SET prev_hash = :p, record_hash = :h WHERE source = :s AND seq = :n",
            p=prev,
            h=fixed.record_hash,
            s=SOURCE,
            n=n,
        )
        prev = fixed.record_hash
    sql(database, "UPDATE audit_chain_head SET last_hash = :h WHERE source = :s", h=prev, s=SOURCE)


def test_changed_column_is_named(chain: Database, store: AuditStore) -> None:
    sql(chain, "UPDATE audit_record SET outcome = 'refused' WHERE source = :s AND seq = 15", s=SOURCE)
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (15, "modified")


def test_changed_detail_is_named(chain: Database, store: AuditStore) -> None:
    record = _record(chain, 7)
    detail = json.loads(record.detail)
    detail["users"][0]["name"] = "Someone Else"
    sql(
        chain,
        "UPDATE audit_record SET detail = :d WHERE source = :s AND seq = 7",
        d=json.dumps(detail, sort_keys=True, separators=(",", ":")),
        s=SOURCE,
    )
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (7, "modified")


def test_changed_and_rehashed_record_is_named(chain: Database, store: AuditStore) -> None:
    forged = _forge(_record(chain, 15), seq=15, prev_hash=_record(chain, 14).record_hash, outcome="refused")
    sql(
        chain,
        "UPDATE audit_record SET outcome = 'refused', record_hash = :h WHERE source = :s AND seq = 15",
        h=forged.record_hash,
        s=SOURCE,
    )
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (15, "modified")
    assert "re-hashed" in broken.message


def test_deleted_record_is_named(chain: Database, store: AuditStore) -> None:
    sql(chain, "DELETE FROM audit_record WHERE source = :s AND seq = 15", s=SOURCE)
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (15, "deleted")


def test_deleted_and_renumbered_records_are_named(chain: Database, store: AuditStore) -> None:
    sql(chain, "DELETE FROM audit_record WHERE source = :s AND seq IN (15, 16)", s=SOURCE)
    _shift(chain, 17, -2)
    sql(chain, "UPDATE audit_chain_head SET last_seq = 28 WHERE source = :s", s=SOURCE)
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (15, "deleted")


def test_inserted_record_is_named(chain: Database, store: AuditStore) -> None:
    template = _record(chain, 14)
    _shift(chain, 15, 1)
    sql(chain, "UPDATE audit_chain_head SET last_seq = 31 WHERE source = :s", s=SOURCE)
    _insert(chain, _forge(template, seq=15, prev_hash=template.record_hash, event_id="f" * 32, outcome="refused"))
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (15, "inserted")


def test_record_appended_behind_the_chain_is_named(chain: Database, store: AuditStore) -> None:
    last = _record(chain, 30)
    _insert(chain, _forge(last, seq=31, prev_hash=last.record_hash, event_id="e" * 32))
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (31, "inserted")


def test_reordered_records_are_named(chain: Database, store: AuditStore) -> None:
    sql(chain, "UPDATE audit_record SET seq = 1000015 WHERE source = :s AND seq = 15", s=SOURCE)
    sql(chain, "UPDATE audit_record SET seq = 15 WHERE source = :s AND seq = 16", s=SOURCE)
    sql(chain, "UPDATE audit_record SET seq = 16 WHERE source = :s AND seq = 1000015", s=SOURCE)
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (15, "reordered")


def test_deleted_tail_is_named(chain: Database, store: AuditStore) -> None:
    sql(chain, "DELETE FROM audit_record WHERE source = :s AND seq >= 29", s=SOURCE)
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (29, "deleted")


def test_recomputed_chain_is_caught_by_the_signed_checkpoint(chain: Database, store: AuditStore) -> None:
    sql(chain, "UPDATE audit_record SET outcome = 'refused' WHERE source = :s AND seq = 15", s=SOURCE)
    _rehash_from(chain, 15, 30)
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (20, "rewritten")
    assert "after record 10" in broken.message


def test_forged_checkpoint_signature_is_named(chain: Database, store: AuditStore) -> None:
    sql(chain, "UPDATE audit_checkpoint SET signature = :sig WHERE source = :s AND seq = 20", sig="AAAA", s=SOURCE)
    broken = _breakage(chain, store)
    assert (broken.seq, broken.kind) == (20, "bad-checkpoint")


@pytest.fixture
def cli_env(settings: CoreSettings, database_url: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("LDN_DATABASE_URL", "LDN_DATA_DIR", "LDN_AUDIT_CHECKPOINT_EVERY")}
    os.environ["LDN_DATABASE_URL"] = database_url
    os.environ["LDN_DATA_DIR"] = str(Path(settings.data_dir))
    os.environ["LDN_AUDIT_CHECKPOINT_EVERY"] = "10"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_cli_verify_names_the_first_broken_record(chain: Database, store: AuditStore, cli_env: None) -> None:
    runner = CliRunner()
    clean = runner.invoke(ldn_app, ["audit", "verify"])
    assert clean.exit_code == 0, clean.output
    assert SOURCE in clean.output
    sql(chain, "DELETE FROM audit_record WHERE source = :s AND seq = 12", s=SOURCE)
    broken = runner.invoke(ldn_app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"{SOURCE} #12: deleted" in broken.output
    only_other = runner.invoke(ldn_app, ["audit", "verify", "--source", REQUESTER.source_id])
    assert only_other.exit_code == 0
    missing = runner.invoke(ldn_app, ["audit", "verify", "--source", "nope"])
    assert missing.exit_code == 2
