"""Benchmark: verification speed of the audit chain (target: 1 million records in at most 20 s).

    python -m bench.audit_verify                                   # SQLite in a temporary directory
    python -m bench.audit_verify --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ldn_bench_audit

Loads `--records` records into one source's chain (real hash chain and signed checkpoints; the
rows are generated from a few hundred protected events with fresh ids, traces and times, and
bulk-inserted, so loading stays quick), then times `verify` over the whole database, streaming.
A PostgreSQL database named in --database-url is dropped and created again (name must start
with ldn_bench) and dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.audit_common import drop_postgres, fresh_database_url, holder_events, machine, synthetic_bsns
from ldn.audit.context import audit_store
from ldn.audit.model import format_time
from ldn.audit.settings import AuditSettings
from ldn.audit.verify import verify_database
from ldn.core.storage import open_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: temporary SQLite)")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000, help="records per load transaction")
    parser.add_argument("--runs", type=int, default=2, help="timed verification runs (the best is reported too)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args()

    url = fresh_database_url(args.database_url)
    database = open_database(url, upgrade=True)
    store = audit_store(AuditSettings(), Path(tempfile.mkdtemp(prefix="ldn-bench-audit-keys-")))
    print(f"machine: {machine()}")
    print(f"database: {database.url.get_backend_name()}; records {args.records:,}")

    templates = store.prepare(holder_events(500, bsns=synthetic_bsns(500)))
    begin = datetime.now(UTC) - timedelta(seconds=args.records)
    clock = int(time.time() * 1000)
    started = time.perf_counter()
    for start in range(0, args.records, args.batch):
        rows = []
        for n in range(start, min(start + args.batch, args.records)):
            template = templates[n % len(templates)]
            rows.append(
                template._replace(
                    event_id=f"{clock + n // 1000:012x}{secrets.token_hex(10)}",
                    trace_id=secrets.token_hex(16),
                    occurred_at=format_time(begin + timedelta(seconds=n)),
                )
            )
        with database.transaction() as session:
            store.append_prepared(session, rows)
    load = time.perf_counter() - started
    print(f"loaded {args.records:,} records in {load:.1f} s ({args.records / load:,.0f}/s, incl. hashing)")

    timings = []
    for run in range(args.runs):
        cpu = time.process_time()
        report = verify_database(database, store.keys.signer)
        cpu = time.process_time() - cpu
        assert report.ok and report.records == args.records, report.breakages
        timings.append(report.elapsed)
        checkpoints = sum(s.checkpoints for s in report.sources)
        print(
            f"verify run {run + 1}: {report.records:,} records, {checkpoints} signed checkpoints, "
            f"{report.elapsed:.2f} s ({report.records / report.elapsed:,.0f} records/s; this process used "
            f"{cpu:.2f} s CPU)"
        )
    per_million = min(timings) / args.records * 1_000_000
    print(f"best: {min(timings):.2f} s; {per_million:.1f} s per million records")
    database.dispose()
    if not args.keep:
        drop_postgres(url)


if __name__ == "__main__":
    main()
