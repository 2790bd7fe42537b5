"""Storage: the hash chain, its canonical form, BSN protection, checkpoints, append-only tables."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import string
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from ldn.audit.chain import GENESIS_HASH, StoredRecord, canonical_json, record_mapping
from ldn.audit.keys import AuditKeyError, BsnProtector
from ldn.audit.store import AuditQuery, AuditStore, SourceMismatch
from ldn.audit.tables import audit_chain_head, audit_record
from ldn.audit.verify import verify_database
from ldn.core.storage import Database
from tests.audit.helpers import BSN_ANNA, BSN_BRAM, HOLDER, REQUESTER, append, fill, holder_read

# Strings that can occur in details: any Unicode text except lone surrogates.
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(string.ascii_letters + "_-", min_size=1, max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_detail_serialisation_is_rfc8785(value: Any) -> None:
    assert canonical_json(value).encode("utf-8") == rfc8785.dumps(value)


def _records(database: Database, source: str = HOLDER.source_id) -> list[StoredRecord]:
    with database.transaction(readonly=True) as session:
        return AuditStore.window(session, source, 1, 10**9)


def test_canonical_record_is_rfc8785_of_the_record(database: Database, store: AuditStore) -> None:
    append(database, store, [holder_read(i) for i in range(3)])
    for record in _records(database):
        assert record.canonical() == rfc8785.dumps(record_mapping(record.as_dict()))
        assert record.hash_ok()


def test_chain_links_each_record_to_the_previous(database: Database, store: AuditStore) -> None:
    append(database, store, [holder_read(i) for i in range(5)])
    append(database, store, [holder_read(i) for i in range(5, 8)])
    records = _records(database)
    assert [r.seq for r in records] == list(range(1, 9))
    assert records[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.record_hash
    assert [json.loads(r.detail)["objects"][0]["query"] for r in records] == [
        f"Observation?_id=obs-{i}" for i in range(8)
    ]
    with database.transaction(readonly=True) as session:
        head = session.execute(select(audit_chain_head).where(audit_chain_head.c.source == HOLDER.source_id)).one()
    assert head.last_seq == 8 and head.last_hash == records[-1].record_hash


def test_sources_have_separate_chains(database: Database, store: AuditStore) -> None:
    append(database, store, [holder_read(1), holder_read(2, source=REQUESTER), holder_read(3)])
    assert [r.seq for r in _records(database)] == [1, 2]
    assert [r.seq for r in _records(database, REQUESTER.source_id)] == [1]


def test_append_is_idempotent_per_event_id(database: Database, store: AuditStore) -> None:
    events = [holder_read(i) for i in range(4)]
    with database.transaction() as session:
        first = store.append(session, events[:3])
    with database.transaction() as session:
        second = store.append(session, events)  # a retry that overlaps the first delivery
    assert (first.stored, first.duplicates) == (3, 0)
    assert (second.stored, second.duplicates) == (1, 3)
    with database.transaction() as session:
        third = store.append(session, [events[0], events[0]])
    assert third.stored == 0
    assert len(_records(database)) == 4


def test_a_source_belongs_to_one_organisation(database: Database, store: AuditStore) -> None:
    append(database, store, [holder_read(1)])
    from ldn.audit.model import AuditSource

    impostor = AuditSource(HOLDER.source_id, "node", "00000020")
    with pytest.raises(SourceMismatch), database.transaction() as session:
        store.append(session, [holder_read(2, source=impostor)])


def test_bsn_is_never_stored_in_plain_text(database: Database, store: AuditStore) -> None:
    append(database, store, [holder_read(1, bsn=BSN_ANNA), holder_read(2, bsn=BSN_BRAM)])
    with database.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM audit_record")) for v in row)
    assert BSN_ANNA not in dump and BSN_BRAM not in dump
    records = _records(database)
    protector = store.keys.bsn
    assert records[0].patient_hash == protector.lookup_hash(BSN_ANNA) != records[1].patient_hash
    patient = json.loads(records[0].detail)["objects"][0]
    assert "identifier" not in patient
    assert protector.decrypt(patient["bsn_encrypted"]) == BSN_ANNA
    # Lookup by the keyed hash finds exactly that patient's records.
    with database.transaction(readonly=True) as session:
        found = AuditStore.query(session, AuditQuery(patient_hash=protector.lookup_hash(BSN_BRAM)))
    assert [r.seq for r in found] == [2]


def test_bsn_protection_keys_matter() -> None:
    one = BsnProtector(b"h" * 32, b"e" * 32)
    other = BsnProtector(b"H" * 32, b"E" * 32)
    for key in (b"h" * 32, b"long" * 20):
        expected = hmac.new(key, BSN_ANNA.encode(), hashlib.sha256).hexdigest()[:32]
        assert BsnProtector(key, b"e" * 32).lookup_hash(BSN_ANNA) == expected
    assert one.lookup_hash(BSN_ANNA) != other.lookup_hash(BSN_ANNA)
    sealed = one.encrypt(BSN_ANNA)
    assert sealed != one.encrypt(BSN_ANNA)  # random nonce
    with pytest.raises(AuditKeyError):
        other.decrypt(sealed)
    with pytest.raises(AuditKeyError):
        one.decrypt(sealed[:-4] + "AAAA")
    assert "h" * 8 not in repr(one)


def test_checkpoints_are_signed_every_n_records(database: Database, store: AuditStore) -> None:
    fill(database, store, 25)  # checkpoint_every=10 in the test settings
    with database.transaction(readonly=True) as session:
        checkpoints = AuditStore.checkpoints(session, HOLDER.source_id)
    assert [c.seq for c in checkpoints] == [25]  # one append crossing two boundaries: one checkpoint
    append(database, store, [holder_read(100 + i) for i in range(6)])  # 26..31 crosses 30: signed at 31
    append(database, store, [holder_read(200)])  # 32: no boundary
    with database.transaction() as session:
        made = store.checkpoint(session)  # on demand: at the head
        again = store.checkpoint(session)
        checkpoints = AuditStore.checkpoints(session, HOLDER.source_id)
    assert [c.seq for c in checkpoints] == [25, 31, 32]
    assert [c.seq for c in made] == [32] and again == []
    for c in checkpoints:
        assert store.keys.signer.verify(c.key_id, c.payload(), c.signature)
    assert not store.keys.signer.verify(checkpoints[0].key_id, checkpoints[1].payload(), checkpoints[0].signature)


def test_tables_are_append_only(database: Database, store: AuditStore) -> None:
    fill(database, store, 12)
    for statement in (
        "UPDATE audit_record SET outcome = 'refused' WHERE seq = 3",
        "DELETE FROM audit_record WHERE seq = 3",
        "UPDATE audit_checkpoint SET seq = 1",
        "DELETE FROM audit_checkpoint",
    ):
        with pytest.raises(DBAPIError), database.engine.begin() as conn:
            conn.execute(text(statement))
    report = verify_database(database, store.keys.signer)
    assert report.ok and report.records == 12


def test_verify_reports_clean_chains(database: Database, store: AuditStore) -> None:
    fill(database, store, 30)
    fill(database, store, 5, source=REQUESTER)
    report = verify_database(database, store.keys.signer)
    assert report.ok
    by_source = {s.source: s for s in report.sources}
    assert by_source[HOLDER.source_id].records == 30 and by_source[HOLDER.source_id].checkpoints == 1
    assert by_source[REQUESTER.source_id].records == 5
    only = verify_database(database, store.keys.signer, source=REQUESTER.source_id)
    assert [s.source for s in only.sources] == [REQUESTER.source_id]


def test_concurrent_appends_to_one_source_keep_one_chain(database: Database, store: AuditStore) -> None:
    import threading

    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(5):
                append(database, store, [holder_read(offset + i * 10 + j) for j in range(10)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    records = _records(database)
    assert [r.seq for r in records] == list(range(1, 201))
    assert verify_database(database, store.keys.signer).ok
    with database.engine.connect() as conn:
        assert conn.execute(select(audit_record.c.event_id).distinct()).all().__len__() == 200


def test_events_without_a_patient_verify_too(database: Database, store: AuditStore) -> None:
    from ldn.audit.catalogue import EventTypes
    from ldn.audit.model import AuditEvent, AuditUser, Outcome

    system = AuditUser("prs-client", id_system="system")
    events = [
        AuditEvent(
            type=EventTypes.PRS_EVALUATE, outcome=Outcome.SUCCESS, users=[system], source=HOLDER, trace_id="c" * 32
        )
        for _ in range(3)
    ]
    append(database, store, [*events, holder_read(9)])
    records = _records(database)
    assert [r.patient_hash is None for r in records] == [True, True, True, False]
    assert all(r.canonical() == rfc8785.dumps(record_mapping(r.as_dict())) for r in records)
    assert verify_database(database, store.keys.signer).ok


def test_the_database_assembles_the_same_canonical_text(database: Database, store: AuditStore) -> None:
    from ldn.audit.catalogue import EventTypes
    from ldn.audit.model import AuditEvent, AuditUser, Outcome

    system = AuditUser("prs-client", id_system="system", name='Zoë "quoted" \\ naam\n')
    odd = AuditEvent(type=EventTypes.PRS_EVALUATE, outcome=Outcome.SUCCESS, users=[system], source=HOLDER)
    append(database, store, [holder_read(1), odd.completed(HOLDER, "d" * 32)])
    with database.transaction(readonly=True) as session:
        rows = [row for batch in AuditStore.canonical_batches(session, HOLDER.source_id) for row in batch]
    records = _records(database)
    assert [row[3].encode() for row in rows] == [r.canonical() for r in records]
    assert [row[3].encode() for row in rows] == [rfc8785.dumps(record_mapping(r.as_dict())) for r in records]


_free = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
_maybe_free = st.none() | _free
_filled = _free.filter(lambda v: v.strip() != "")
_token = st.text(string.ascii_letters + string.digits + "-_.:/", min_size=1, max_size=20)


@st.composite
def _events(draw: st.DrawFn) -> Any:
    from ldn.audit.catalogue import EventTypes
    from ldn.audit.model import AuditEvent, AuditObject, AuditUser, Outcome

    users = [
        AuditUser(
            draw(_token),
            id_system="system",
            role=draw(st.none() | st.just("01.015")),
            name=draw(_maybe_free),
            organization_ura=draw(st.none() | st.just("00000020")),
            is_initiator=i == 0,
            responsible_id=draw(st.none() | _token),
            responsible_role=draw(st.none() | st.just("30.000")),
            responsible_name=draw(_maybe_free),
            access_point=draw(_maybe_free),
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    objects = [
        AuditObject(
            draw(_token),
            draw(_filled),
            draw(_token),
            draw(st.lists(_filled, max_size=3)),
            draw(_maybe_free),
            draw(_maybe_free),
            draw(_maybe_free),
            draw(_maybe_free),
            draw(_maybe_free),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    if draw(st.booleans()):
        objects.append(AuditObject.patient(BSN_ANNA, data_categories=draw(st.lists(_filled, max_size=2))))
    return AuditEvent(
        type=EventTypes.NVI_SEARCH,
        outcome=Outcome.REFUSED,
        users=users,
        objects=objects,
        checks=draw(st.lists(_filled, max_size=3)),
        outcome_detail=draw(_maybe_free),
        counterpart_ura=draw(st.none() | st.just("00000040")),
        source=HOLDER,
        trace_id="a" * 32,
    )


@settings(max_examples=200, deadline=None)
@given(_events())
def test_fast_detail_serialisation_equals_the_reference(event: Any) -> None:
    from ldn.audit.chain import detail_data, detail_json

    patient_hash, encrypted = ("f" * 64, "v1:abcd:QUJD") if event.patient else (None, None)
    fast = detail_json(event, patient_hash, encrypted)
    reference = detail_data(event, patient_hash, encrypted)
    assert fast == canonical_json(reference)
    assert fast.encode("utf-8") == rfc8785.dumps(reference)
