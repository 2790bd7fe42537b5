"""`ldn audit verify`: walk every source's chain and name the first broken record.

For each source, in sequence order from its anchor (after a retention purge) or from the start:
- the anchor's and every checkpoint's Ed25519 signature must check out with a trusted key;
- sequence numbers must be contiguous (a gap means deleted records);
- each record's `prev_hash` must be the previous record's hash (a break means a record was
  inserted, removed and renumbered, reordered, or rewritten);
- each record's hash must match its content (a mismatch means it was modified);
- where a signed checkpoint exists, the record's hash must equal the signed one (a mismatch
  means the chain was recomputed after that point: only a signed checkpoint can tell);
- the chain head (last sequence number and hash) must match the last record, so tail deletion
  and appended forgeries are found too.

Records are streamed in batches of plain tuples (no ORM objects), the canonical text is assembled
from the columns, and only the first failure of a source is diagnosed in detail by looking at a
small window of records around it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ldn.audit.chain import GENESIS_HASH, StoredRecord, canonical_record, record_hash
from ldn.audit.keys import CheckpointSigner
from ldn.audit.store import AuditStore
from ldn.audit.tables import audit_record
from ldn.core.storage import Database

__all__ = ["Breakage", "SourceResult", "VerifyReport", "verify_database", "verify_source"]


@dataclass(frozen=True, slots=True)
class Breakage:
    """The first broken record of a source and what is wrong with it.

    kind: `modified`, `deleted`, `inserted`, `reordered`, `rewritten` (hash differs from a signed
    checkpoint), `bad-checkpoint`, `bad-anchor` or `unknown-source`.
    """

    source: str
    seq: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.source} #{self.seq}: {self.kind}: {self.message}"


@dataclass(slots=True)
class SourceResult:
    source: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    anchored_at: int | None = None
    breakage: Breakage | None = None

    @property
    def ok(self) -> bool:
        return self.breakage is None


@dataclass(slots=True)
class VerifyReport:
    sources: list[SourceResult] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sources)

    @property
    def records(self) -> int:
        return sum(s.records for s in self.sources)

    @property
    def breakages(self) -> list[Breakage]:
        return [s.breakage for s in self.sources if s.breakage is not None]


def _original_seq(record: StoredRecord, around: int, *, reach: int = 6) -> int | None:
    """The sequence number under which this record's content hashes to its stored hash, if any."""
    for candidate in sorted(range(max(1, around - reach), around + reach + 1), key=lambda s: abs(s - around)):
        canonical = canonical_record(
            record.source,
            candidate,
            record.event_id,
            record.event_code,
            record.action,
            record.outcome,
            record.occurred_at,
            record.recorded_at,
            record.organization_ura,
            record.user_id,
            record.patient_hash,
            record.trace_id,
            record.prev_hash,
            record.detail,
        )
        if record_hash(canonical) == record.record_hash:
            return candidate
    return None


def _diagnose(session: Session, source: str, seq: int, start_seq: int, start_hash: str) -> Breakage:
    """Classify the first failure at `seq` (link or content) by looking at the records around it."""
    window = {r.seq: r for r in AuditStore.window(session, source, max(start_seq + 1, seq - 3), seq + 8)}
    record = window[seq]
    previous = window.get(seq - 1)
    expected_prev = previous.record_hash if previous else (start_hash if seq - 1 == start_seq else None)
    before_previous = window.get(seq - 2)
    link_ok = record.prev_hash == expected_prev
    if not link_ok:
        later = {r.record_hash: r.seq for r in window.values() if r.seq > seq}
        if record.prev_hash in later:
            return Breakage(
                source,
                seq,
                "reordered",
                f"record {seq} follows record {later[record.prev_hash]} in the chain: records were reordered",
            )
    original = _original_seq(record, seq)
    if original is None:
        return Breakage(source, seq, "modified", f"record {seq} does not match its hash: its content was changed")
    if original > seq:
        return Breakage(
            source,
            seq,
            "deleted",
            f"record {seq} was deleted (later records renumbered: record {original} now sits at {seq})",
        )
    if original < seq:
        return Breakage(
            source,
            original,
            "inserted",
            f"record {original} was inserted (the record that belonged at {original} now sits at {seq})",
        )
    if before_previous is not None and record.prev_hash == before_previous.record_hash:
        return Breakage(source, seq - 1, "inserted", f"record {seq - 1} was inserted into the chain")
    return Breakage(
        source, seq - 1, "modified", f"record {seq - 1} was changed and re-hashed (record {seq} does not link to it)"
    )


def verify_source(
    session: Session, signer: CheckpointSigner, source: str, *, upto_seq: int | None = None
) -> SourceResult:
    """Verify one source's chain (up to `upto_seq` when given: used by the retention purge)."""
    result = SourceResult(source)
    heads = {h["source"]: h for h in AuditStore.heads(session)}
    head = heads.get(source)
    anchor = AuditStore.anchor(session, source)
    start_seq, start_hash = 0, GENESIS_HASH
    if anchor is not None:
        if not signer.verify(anchor.key_id, anchor.payload(), anchor.signature):
            result.breakage = Breakage(source, anchor.seq, "bad-anchor", "the purge anchor's signature is not valid")
            return result
        start_seq, start_hash = anchor.seq, anchor.record_hash
        result.anchored_at = anchor.seq
        below = session.execute(
            select(func.min(audit_record.c.seq)).where(
                audit_record.c.source == source, audit_record.c.seq <= anchor.seq
            )
        ).scalar()
        if below is not None:
            result.breakage = Breakage(
                source, int(below), "inserted", f"record {below} lies before the purge anchor at {anchor.seq}"
            )
            return result
    checkpoints: dict[int, str] = {}
    for checkpoint in AuditStore.checkpoints(session, source, seq_from=start_seq, seq_to=upto_seq):
        if not signer.verify(checkpoint.key_id, checkpoint.payload(), checkpoint.signature):
            result.breakage = Breakage(
                source, checkpoint.seq, "bad-checkpoint", f"checkpoint at {checkpoint.seq} has an invalid signature"
            )
            return result
        checkpoints[checkpoint.seq] = checkpoint.record_hash
    result.checkpoints = len(checkpoints)
    if anchor is not None and checkpoints.get(anchor.seq, anchor.record_hash) != anchor.record_hash:
        result.breakage = Breakage(source, anchor.seq, "bad-anchor", "the anchor disagrees with the checkpoint")
        return result

    sha256 = hashlib.sha256
    expected = start_seq + 1
    last_hash = start_hash
    last_good_checkpoint = start_seq
    count = 0
    failure: tuple[int, str] | None = None
    # The hot loop: four plain values per record from the driver, the canonical text assembled
    # by the database exactly as chain.canonical_record does (tests check both against rfc8785).
    for batch in AuditStore.canonical_batches(session, source, after_seq=start_seq, upto_seq=upto_seq):
        for seq, prev, stored, canonical in batch:
            if seq != expected:
                missing = f"record {expected}" if seq == expected + 1 else f"records {expected}..{seq - 1}"
                result.breakage = Breakage(source, expected, "deleted", f"{missing} missing")
                break
            if prev != last_hash:
                failure = (seq, "link")
                break
            digest = sha256(canonical.encode()).hexdigest()
            if digest != stored:
                failure = (seq, "content")
                break
            signed = checkpoints.get(seq)
            if signed is not None:
                if signed != digest:
                    result.breakage = Breakage(
                        source,
                        seq,
                        "rewritten",
                        f"record {seq} differs from its signed checkpoint: the chain after record "
                        f"{last_good_checkpoint} was recomputed",
                    )
                    break
                last_good_checkpoint = seq
            last_hash = digest
            expected += 1
            count += 1
            if result.first_seq is None:
                result.first_seq = seq
        if result.breakage is not None or failure is not None:
            break
    result.records = count
    result.last_seq = expected - 1 if count else None
    if failure is not None:
        result.breakage = _diagnose(session, source, failure[0], start_seq, start_hash)
        return result
    if result.breakage is not None:
        return result
    last_seq = expected - 1
    if upto_seq is not None:
        if last_seq != upto_seq:
            result.breakage = Breakage(source, last_seq + 1, "deleted", f"record {last_seq + 1} is missing")
        return result
    missing_checkpoint = [s for s in checkpoints if s > last_seq]
    if head is None:
        if count:
            result.breakage = Breakage(
                source, start_seq + 1, "unknown-source", f"records of source {source} without a chain head"
            )
        return result
    head_seq, head_hash = int(head["last_seq"]), str(head["last_hash"])
    if head_seq > last_seq or missing_checkpoint:
        upto = max([head_seq, *missing_checkpoint])
        result.breakage = Breakage(
            source, last_seq + 1, "deleted", f"records {last_seq + 1}..{upto} are missing (the chain ended at {upto})"
        )
    elif head_seq < last_seq:
        result.breakage = Breakage(
            source, head_seq + 1, "inserted", f"record {head_seq + 1} lies beyond the chain head ({head_seq})"
        )
    elif head_hash != last_hash:
        result.breakage = Breakage(
            source, last_seq, "modified", f"record {last_seq} does not match the hash kept in the chain head"
        )
    return result


def verify_database(database: Database, signer: CheckpointSigner, *, source: str | None = None) -> VerifyReport:
    """Verify every source (or one); read-only, streaming."""
    started = time.perf_counter()
    report = VerifyReport()
    with database.transaction(readonly=True) as session:
        names = AuditStore.sources(session)
        if source is not None:
            names = [source] if source in names else []
        for name in names:
            report.sources.append(verify_source(session, signer, name))
    report.elapsed = time.perf_counter() - started
    return report
