"""Benchmark: audit events appended per second, in batches (target: at least 20,000/s).

    python -m bench.audit_append                                   # SQLite in a temporary directory
    python -m bench.audit_append --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ldn_bench_audit

Measures three things on a fresh, migrated database:
1. the store path every sink ends in: BSN protection + hash chain + bulk insert + commit, per
   batch of `--batch` events (the figure the target is about), with one writer thread and, with
   `--writers N`, again with N threads taking batches in turn (an audit service receiving
   concurrent batches: one thread protects and serialises while another inserts);
2. the same through `AuditLogger.record` with `--concurrency` callers recording one event each
   (the group commit a busy service sees);
3. building and validating events at the call site (for scale).
On a shared machine the wall-clock figures depend on what else runs; the CPU time this process
used is printed too (for SQLite that is all the work; for PostgreSQL the server's share is not
in it), together with the load average at the start.
A PostgreSQL database named in --database-url is dropped and created again (name must start
with ldn_bench) and dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from bench.audit_common import drop_postgres, fresh_database_url, holder_events, machine, synthetic_bsns
from ldn.audit.context import audit_store
from ldn.audit.logger import AuditLogger
from ldn.audit.settings import AuditSettings
from ldn.audit.sinks import DatabaseSink
from ldn.audit.verify import verify_database
from ldn.core.storage import open_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: temporary SQLite)")
    parser.add_argument("--events", type=int, default=200_000, help="events for the batch figure")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch (one transaction)")
    parser.add_argument("--logger-events", type=int, default=20_000, help="events for the AuditLogger figure")
    parser.add_argument("--concurrency", type=int, default=200, help="concurrent record() callers")
    parser.add_argument(
        "--writers", type=int, default=1, help="if above 1: a second batch figure with this many writer threads"
    )
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args()

    url = fresh_database_url(args.database_url)
    database = open_database(url, upgrade=True)
    data_dir = Path(tempfile.mkdtemp(prefix="ldn-bench-audit-keys-"))
    store = audit_store(AuditSettings(), data_dir)
    bsns = synthetic_bsns(800)
    print(f"machine: {machine()}")
    print(f"database: {database.url.get_backend_name()}; batch {args.batch}; events {args.events}")

    started = time.perf_counter()
    events = holder_events(args.events, bsns=bsns)
    build = time.perf_counter() - started
    print(f"build+validate events: {args.events / build:,.0f} events/s ({build / args.events * 1e6:.1f} us each)")

    def append_all(writers: int, batch_events: list) -> float:  # type: ignore[type-arg]
        """Append in batches with `writers` threads taking batches in turn (an audit service
        receiving concurrent POSTs): one prepares (BSN protection, JSON) while another inserts."""
        batches = [batch_events[i : i + args.batch] for i in range(0, len(batch_events), args.batch)]
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    if not batches:
                        return
                    chunk = batches.pop(0)
                store.append_to(database, store.prepare(chunk))

        begin = time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - begin

    phases = [(1, events)]
    if args.writers > 1:
        phases.append((args.writers, holder_events(args.events, bsns=bsns)))
    for writers, chunk in phases:
        cpu = time.process_time()
        elapsed = append_all(writers, chunk)
        cpu = time.process_time() - cpu
        print(
            f"append in batches of {args.batch}, {writers} writer thread(s): {len(chunk) / elapsed:,.0f} events/s "
            f"({len(chunk):,} events in {elapsed:.2f} s; this process used {cpu:.2f} s CPU = "
            f"{len(chunk) / cpu:,.0f} events per CPU-second)"
        )

    logger_events = holder_events(args.logger_events, bsns=bsns)

    async def through_logger() -> float:
        sink = DatabaseSink(database, store, timeout=60)
        audit = AuditLogger(logger_events[0].source, sink, None)  # type: ignore[arg-type]
        queue = iter(logger_events)

        async def caller() -> None:
            for event in queue:
                await audit.record(event)

        begin = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        return time.perf_counter() - begin

    seconds = asyncio.run(through_logger())
    print(
        f"AuditLogger.record, {args.concurrency} concurrent callers (group commit): "
        f"{args.logger_events / seconds:,.0f} events/s"
    )
    report = verify_database(database, store.keys.signer)
    print(f"verify afterwards: ok={report.ok}, {report.records} records in {report.elapsed:.2f} s")
    database.dispose()
    if not args.keep:
        drop_postgres(url)


if __name__ == "__main__":
    main()
