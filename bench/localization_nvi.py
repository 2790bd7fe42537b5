"""NVI: registrations per second through batched Bundles, and lookup latency at scale.

    python bench/localization_nvi.py register                    # 20,000 records over HTTP, SQLite
    python bench/localization_nvi.py lookup                      # SQLite, up to 1 million records
    python bench/localization_nvi.py lookup --postgres           # PostgreSQL, up to 10 million
    python bench/localization_nvi.py lookup --database-url URL --sizes 100000,1000000

register: serves the NVI app alone in `--workers` uvicorn processes (loopback, random ports; the
token check replaced by a fixed caller) and posts transaction Bundles of `--bundle` List entries, each
entry a different patient, so every record costs a full decode + JWE open (ECDH) + origin-tag
check + unblind (scalar multiplication) + lookup hash + sealing + insert. The identifiers are
made beforehand (blind, evaluate, seal, as the PRS would), in parallel, and are not timed.

lookup: loads synthetic records straight into `nvi_record` (8 records per patient, random-looking
32-byte lookup hashes, 20,000 custodians) with executemany (SQLite) or binary COPY (PostgreSQL),
dropping and rebuilding the unique index around each load; at each size it times lookups exactly
as the NVI runs them (one read transaction, ``pseudonym IN (...)`` on the unique index) and shows
the query plan. At the largest size it also registers real records through the NVI service and
times complete searches (identifier decode, JWE open, unblind, hash, query) in process.
With --postgres a throwaway database (`ldn_bench_nvi` for lookup, `ldn_bench_nvi_register` for
register) is created on postgresql+psycopg://postgres@127.0.0.1:5432 and dropped afterwards
(lookup: unless --keep; measure again later with --reuse <directory>). The CPU accounting of
register counts the NVI processes and the load generator, not the PostgreSQL server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.common import machine, percentile  # noqa: E402
from bench.localization_prs_http import NODELAY, cpu_seconds, start_servers, stop_servers  # noqa: E402

RECIPIENT = ("ura:90000901", "nationale-verwijsindex")
BENCH_URA = "00000020"
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "ldn_bench_nvi"
REGISTER_DB = "ldn_bench_nvi_register"  # its own, so a kept lookup database survives
CATEGORIES = (
    "Condition",
    "MedicationRequest",
    "MedicationUse",
    "ObservationLaboratory",
    "Imaging",
    "Procedure",
    "Encounter",
    "AllergyIntolerance",
)
RECORDS_PER_PATIENT = len(CATEGORIES)


# ---------------------------------------------------------------------------------- shared set-up


def nvi_workdir(workdir: Path, database_url: str, master: bytes) -> dict[str, str]:
    """NVI keys, PRS origin JWKS file and storage key v1 in the database; returns the NVI env."""
    from ldn.core.storage import open_database
    from ldn.localization.nvi.keys import NviKeyMaterial, StorageKeyManager
    from ldn.localization.prs.keys import PrsKeyring

    material = NviKeyMaterial(workdir / "nvi")
    material.jwe_private_jwk()
    jwks = workdir / "prs-jwks.json"
    jwks.write_text(json.dumps({"keys": [PrsKeyring(master).origin.public_jwk()]}))
    database = open_database(database_url, upgrade=True)
    with database.transaction() as session:
        StorageKeyManager(database, material, 60).initialize(session)
    database.dispose()
    return {
        "LDN_DATA_DIR": str(workdir),
        "LDN_DATABASE_URL": database_url,
        "LDN_NVI_PRS_JWKS_FILE": str(jwks),
        "LDN_NVI_PUBLISH_TO_PRS_DIR": "",
    }


def make_identifiers(args: tuple[bytes, dict[str, Any], list[str]]) -> list[str]:
    """NVI identifiers for BSNs, made as client + PRS would (runs in a worker process)."""
    from ldn.localization import derivation, envelope, oprf
    from ldn.localization.prs.keys import PrsKeyring

    master, nvi_public, bsns = args
    keyring = PrsKeyring(master)
    key = keyring.oprf_private_key(*RECIPIENT, 1)
    sealer = envelope.EnvelopeSealer(nvi_public, origin=keyring.origin)
    out = []
    for bsn in bsns:
        blinded = oprf.blind(derivation.derive_oprf_input(bsn, *RECIPIENT))
        evaluated = oprf.blind_evaluate(key, blinded.blinded_element)
        out.append(envelope.encode_nvi_identifier(sealer.seal(evaluated, oprf_key_version="1"), blinded.blind))
    return out


def bench_bsns(count: int, offset: int = 0) -> list[str]:
    from ldn.core.identifiers import is_valid_bsn

    out: list[str] = []
    candidate = 100_000_000 + offset * 11
    while len(out) < count:
        text = f"{candidate:09d}"
        if is_valid_bsn(text):
            out.append(text)
        candidate += 1
    return out


def identifiers_parallel(master: bytes, nvi_public: dict[str, Any], bsns: list[str], processes: int) -> list[str]:
    chunks = [bsns[i : i + 500] for i in range(0, len(bsns), 500)]
    with ProcessPoolExecutor(processes) as pool:
        results = pool.map(make_identifiers, [(master, nvi_public, chunk) for chunk in chunks])
        return [identifier for chunk in results for identifier in chunk]


# ---------------------------------------------------------------------------------- register


def server_app() -> Any:
    """uvicorn factory (one per worker): the NVI app with a fixed caller, configured from env."""
    from ldn.auth.resource_server import Caller
    from ldn.core.config import CoreSettings
    from ldn.core.http import HttpClientFactory
    from ldn.core.logging import configure_logging
    from ldn.core.service import NetworkDirectory, ServiceContext
    from ldn.core.storage import Database
    from ldn.core.topology import load_topology
    from ldn.localization.nvi import api

    configure_logging("WARNING", "json")
    settings = CoreSettings()
    ctx = ServiceContext(
        name="nvi",
        base_url=os.environ["BENCH_BASE_URL"],
        settings=settings,
        topology=load_topology(),
        database=Database(settings.resolved_database_url()),
        http=HttpClientFactory(),
        directory=NetworkDirectory(),
    )
    app = api.create_app(ctx)
    caller = Caller(
        client_id=BENCH_URA,
        organization_ura=BENCH_URA,
        organization_name="bench",
        scopes=frozenset({"nvi:read", "nvi:write"}),
        user_id="900000011",
        user_role="01.015",
    )

    async def fixed_caller() -> Caller:
        return caller

    app.dependency_overrides[api.NVI_WRITE] = fixed_caller
    app.dependency_overrides[api.NVI_READ] = fixed_caller
    return app


async def post_bundles(bases: list[str], bundles: list[bytes], concurrency: int) -> tuple[float, int]:
    """Post the Bundles with ``concurrency`` in flight, spread over the servers."""
    import httpx

    created = 0
    queue = list(reversed(bundles))
    clients = [
        # TCP_NODELAY: without it Nagle's algorithm and delayed ACKs can add ~40 ms per request.
        httpx.AsyncClient(base_url=base, transport=httpx.AsyncHTTPTransport(socket_options=NODELAY), timeout=300)
        for base in bases
    ]
    try:

        async def worker(k: int) -> None:
            nonlocal created
            client = clients[k % len(clients)]
            while queue:
                body = queue.pop()
                response = await client.post("/", content=body, headers={"Content-Type": "application/fhir+json"})
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                created += sum(1 for e in response.json()["entry"] if e["response"]["status"].startswith("201"))

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return time.perf_counter() - started, created
    finally:
        for client in clients:
            await client.aclose()


def run_register(args: argparse.Namespace) -> None:

    from ldn.core.storage import Database
    from ldn.localization.nvi import store
    from ldn.localization.nvi.keys import NviKeyMaterial
    from ldn.localization.nvi.records import registration_list

    workdir = Path(tempfile.mkdtemp(prefix="ldn-bench-nvi-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'ldn.db'}"
    if args.postgres:
        database_url = create_postgres_database(REGISTER_DB)
    master = os.urandom(32)
    env = nvi_workdir(workdir, database_url, master)
    nvi_public = {k: v for k, v in NviKeyMaterial(workdir / "nvi").jwe_private_jwk().items() if k != "d"}

    print(f"machine: {machine()}")
    started = time.perf_counter()
    identifiers = identifiers_parallel(master, nvi_public, bench_bsns(args.records), os.cpu_count() or 2)
    print(f"made {len(identifiers)} identifiers (blind, evaluate, seal) in {time.perf_counter() - started:.1f} s")
    bundles = []
    for k in range(0, len(identifiers), args.bundle):
        entries = [
            {
                "request": {"method": "POST", "url": "List"},
                "resource": registration_list(BENCH_URA, CATEGORIES[i % len(CATEGORIES)], value, BENCH_URA),
            }
            for i, value in enumerate(identifiers[k : k + args.bundle], start=k)
        ]
        bundles.append(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode())

    server_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    servers, bases = start_servers(args.workers, server_env, "bench.localization_nvi:server_app")
    try:
        print(f"server: NVI alone, {args.workers} uvicorn process(es) on {', '.join(bases)} (loopback)")
        print(f"database: {redact(database_url)}")
        print(f"load average before: {os.getloadavg()}")
        # The first Bundle warms up every worker (storage keys, origin keys); it is not timed.
        warm = bundles[: len(bases)]
        asyncio.run(post_bundles(bases, warm, len(bases)))
        pids = [server.pid for server in servers]
        cpu_before = cpu_seconds(pids)
        elapsed, created = asyncio.run(post_bundles(bases, bundles[len(bases) :], args.concurrency))
        cpu = cpu_seconds(pids) - cpu_before
        print(f"load average after: {os.getloadavg()}")
        timed = (len(bundles) - len(bases)) * args.bundle
        database = Database(database_url)
        with database.transaction(readonly=True) as session:
            total = store.count_records(session)
        database.dispose()
        assert total == len(identifiers), f"expected {len(identifiers)} rows, found {total}"
        rate = created / elapsed
        print()
        print("| what | figure |")
        print("|---|---|")
        print(f"| records registered (timed) | {created:,} in {len(bundles) - len(bases)} Bundles of {args.bundle} |")
        print(f"| wall time | {elapsed:.2f} s ({args.concurrency} Bundles in flight, {args.workers} processes) |")
        print(f"| registrations/s (wall clock) | {rate:,.0f} |")
        print(f"| CPU per registration (servers + client) | {cpu / created * 1e6:,.0f} µs |")
        cores = os.cpu_count() or 2
        print(f"| capacity of {cores} otherwise idle cores (from CPU time) | {created / cpu * cores:,.0f}/s |")
        print(f"| rows in nvi_record afterwards | {total:,} |")
        verdict = "meets" if rate >= 2000 else "MISSES"
        print(f"\nregistrations: {rate:,.0f}/s ({verdict} the 2,000/s target); timed entries {timed:,}")
    finally:
        stop_servers(servers)
        shutil.rmtree(workdir, ignore_errors=True)
        if args.postgres:
            drop_postgres_database(REGISTER_DB)


# ---------------------------------------------------------------------------------- lookup


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def create_postgres_database(name: str = BENCH_DB) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(name: str = BENCH_DB) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def patient_hash(patient: int) -> bytes:
    return sha256(b"ldn-bench-patient" + patient.to_bytes(8, "big")).digest()


SEALED = bytes(60)  # the sealed element is only read by a rekey; a constant keeps loading fast
CREATED = datetime(2026, 11, 1, tzinfo=UTC)


def rows(start: int, stop: int) -> Any:
    for i in range(start, stop):
        patient, slot = divmod(i, RECORDS_PER_PATIENT)
        yield (
            uuid.UUID(int=(0xBE0C << 112) | i),
            patient_hash(patient),
            1,
            f"{(patient * 7 + slot * 2503) % 20000:08d}",
            CATEGORIES[slot],
            "1",
            "bench-client",
            SEALED,
            CREATED,
        )


COLUMNS = (
    "id, pseudonym, storage_key_version, custodian_ura, category, oprf_key_version, "
    "source_client_id, sealed_element, created_at"
)


def drop_indexes(database: Any) -> None:
    from sqlalchemy import text

    with database.engine.begin() as connection:
        if database.is_sqlite:
            # SQLite keeps the constraint as an automatic index it cannot drop: rebuild the table.
            connection.execute(text("ALTER TABLE nvi_record RENAME TO nvi_record_old"))
            connection.execute(
                text(
                    "CREATE TABLE nvi_record (id CHAR(32) NOT NULL PRIMARY KEY, pseudonym BLOB NOT NULL, "
                    "storage_key_version SMALLINT NOT NULL, custodian_ura VARCHAR(8) NOT NULL, "
                    "category VARCHAR(64) NOT NULL, oprf_key_version VARCHAR(64) NOT NULL, "
                    "source_client_id VARCHAR(255) NOT NULL, sealed_element BLOB NOT NULL, "
                    "created_at DATETIME NOT NULL)"
                )
            )
            copy_rows = f"INSERT INTO nvi_record ({COLUMNS}) SELECT {COLUMNS} FROM nvi_record_old"  # noqa: S608
            connection.execute(text(copy_rows))
            connection.execute(text("DROP TABLE nvi_record_old"))
        else:
            connection.execute(text("ALTER TABLE nvi_record DROP CONSTRAINT IF EXISTS uq_nvi_record_subject"))
            connection.execute(text("DROP INDEX IF EXISTS ix_nvi_record_custodian"))


def create_indexes(database: Any) -> None:
    from sqlalchemy import text

    with database.engine.begin() as connection:
        if database.is_sqlite:
            connection.execute(
                text("CREATE UNIQUE INDEX uq_nvi_record_subject ON nvi_record (pseudonym, custodian_ura, category)")
            )
        else:
            connection.execute(
                text(
                    "ALTER TABLE nvi_record ADD CONSTRAINT uq_nvi_record_subject "
                    "UNIQUE (pseudonym, custodian_ura, category)"
                )
            )
        connection.execute(text("CREATE INDEX ix_nvi_record_custodian ON nvi_record (custodian_ura, id)"))
        connection.execute(text("ANALYZE nvi_record" if not database.is_sqlite else "ANALYZE"))


def load(database: Any, start: int, stop: int) -> None:
    if database.is_sqlite:
        raw = database.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("BEGIN")
            chunk = 100_000
            for k in range(start, stop, chunk):
                cursor.executemany(
                    f"INSERT INTO nvi_record ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",  # noqa: S608 - constants
                    ((r[0].hex, *r[1:8], r[8].isoformat(sep=" ")) for r in rows(k, min(stop, k + chunk))),
                )
            cursor.execute("COMMIT")
        finally:
            raw.close()
        return
    raw = database.engine.raw_connection()
    try:
        connection = raw.driver_connection
        types = ["uuid", "bytea", "int2", "varchar", "varchar", "varchar", "varchar", "bytea", "timestamptz"]
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY nvi_record ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(types)
            for row in rows(start, stop):
                copy.write_row(row)
        connection.commit()
    finally:
        raw.close()


def explain(database: Any) -> str:
    from sqlalchemy import text

    probe = patient_hash(1)
    with database.engine.connect() as connection:
        if database.is_sqlite:
            plan = connection.execute(
                text("EXPLAIN QUERY PLAN SELECT * FROM nvi_record WHERE pseudonym IN (:p)"), {"p": probe}
            ).all()
            return " / ".join(str(r[-1]) for r in plan)
        plan = connection.execute(
            text("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM nvi_record WHERE pseudonym IN (:p)"), {"p": probe}
        ).all()
        lines = [r[0].strip() for r in plan]
        return " / ".join(line for line in lines if "Scan" in line or "Cond" in line or "Execution" in line)


def time_lookups(database: Any, patients: int, count: int) -> list[float]:
    from ldn.localization.nvi import store

    rng = random.Random(patients)
    durations = []
    for _ in range(count):
        wanted = patient_hash(rng.randrange(patients))
        started = time.perf_counter()
        with database.transaction(readonly=True) as session:
            found = store.find_by_pseudonyms(session, [wanted], limit=1000)
        durations.append(time.perf_counter() - started)
        assert len(found) == RECORDS_PER_PATIENT, len(found)
    return durations


async def service_searches(database: Any, workdir: Path, master: bytes, count: int) -> list[float]:
    """Register `count` real patients through the service into the big table, then time searches."""
    from ldn.auth.resource_server import Caller
    from ldn.localization.envelope import EnvelopeOpener
    from ldn.localization.nvi.keys import NviKeyMaterial, StorageKeyManager
    from ldn.localization.nvi.records import registration_list
    from ldn.localization.nvi.service import NviService, origin_keys_from_file
    from ldn.localization.settings import NviSettings

    material = NviKeyMaterial(workdir / "nvi")
    settings = NviSettings(key_state_seconds=60)
    service = NviService(
        database,
        StorageKeyManager(database, material, 60),
        EnvelopeOpener(material.jwe_private_jwk()),
        settings,
        origin_keys_from_file(workdir / "prs-jwks.json"),
    )
    caller = Caller(
        client_id=BENCH_URA,
        organization_ura=BENCH_URA,
        organization_name="bench",
        scopes=frozenset({"nvi:read", "nvi:write"}),
        user_id="900000011",
        user_role="01.015",
    )
    public = {k: v for k, v in material.jwe_private_jwk().items() if k != "d"}
    bsns = bench_bsns(count, offset=random.randrange(10_000_000, 50_000_000))
    identifiers = make_identifiers((master, public, bsns))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "List"}, "resource": registration_list(BENCH_URA, c, v, BENCH_URA)}
            for v in identifiers
            for c in ("Condition", "Imaging")
        ],
    }
    await service.transaction(caller, bundle)
    fresh = make_identifiers((master, public, bsns))  # a search uses a new identifier
    durations = []
    for value in fresh:
        started = time.perf_counter()
        found = await service.search(caller, [value], None)
        durations.append(time.perf_counter() - started)
        assert len(found) == 2
    return durations


def run_lookup(args: argparse.Namespace) -> None:
    from ldn.core.storage import Database

    if args.reuse:
        # A database (and key directory) kept by an earlier run with --keep: measure again.
        workdir = Path(args.reuse)
        database_url = (workdir / "database_url").read_text().strip()
        master = bytes.fromhex((workdir / "master.hex").read_text().strip())
        sizes: list[int] = []
    else:
        workdir = Path(tempfile.mkdtemp(prefix="ldn-bench-nvi-"))
        if args.postgres:
            database_url = create_postgres_database()
        else:
            database_url = args.database_url or f"sqlite:///{workdir / 'ldn.db'}"
        default_sizes = "100000,1000000,10000000" if "postgresql" in database_url else "10000,100000,1000000"
        sizes = [int(s) for s in (args.sizes or default_sizes).split(",")]
        master = os.urandom(32)
        nvi_workdir(workdir, database_url, master)
        (workdir / "database_url").write_text(database_url)
        (workdir / "master.hex").write_text(master.hex())
    database = Database(database_url)
    print(f"machine: {machine()}")
    print(f"database: {redact(database_url)}")
    print(f"load average before: {os.getloadavg()}")
    results = []
    loaded = 0
    try:
        for size in sizes:
            drop_indexes(database)
            started = time.perf_counter()
            load(database, loaded, size)
            load_time = time.perf_counter() - started
            started = time.perf_counter()
            create_indexes(database)
            index_time = time.perf_counter() - started
            results.append(measure(database, size, size - loaded, load_time, index_time, args.lookups))
            loaded = size
            (workdir / "synthetic_rows").write_text(str(size))
        if not sizes:
            # The synthetic rows (the service searches of earlier runs added a few real ones).
            loaded = int((workdir / "synthetic_rows").read_text())
            results.append(measure(database, loaded, 0, 0.0, 0.0, args.lookups))
        plan = explain(database)
        searches = asyncio.run(service_searches(database, workdir, master, args.searches))
        print(f"load average after: {os.getloadavg()}")
        print()
        print("| rows in nvi_record | load (this step) | index build | lookup p50 | lookup p99 | max |")
        print("|---|---|---|---|---|---|")
        for size, load_time, index_time, p50, p99, worst in results:
            print(
                f"| {size:,} | {load_time:.1f} s | {index_time:.1f} s | {p50:.3f} ms | {p99:.3f} ms | {worst:.2f} ms |"
            )
        sms = [d * 1000 for d in searches]
        print(
            f"\ncomplete search through the NVI service at {loaded:,} rows ({len(sms)} searches: decode, JWE "
            f"open, unblind, hash, query): p50 {percentile(sms, 50):.2f} ms, p99 {percentile(sms, 99):.2f} ms"
        )
        print(f"query plan: {plan}")
        verdict = "meets" if results[-1][4] < 10 else "MISSES"
        print(f"\nlookup p99 at {loaded:,} rows: {results[-1][4]:.3f} ms ({verdict} the 10 ms target)")
    finally:
        database.dispose()
        if args.keep or args.reuse:
            print(f"kept: --reuse {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            if args.postgres:
                drop_postgres_database()


def measure(
    database: Any, size: int, step: int, load_time: float, index_time: float, lookups: int
) -> tuple[int, float, float, float, float, float]:
    patients = size // RECORDS_PER_PATIENT
    time_lookups(database, patients, 200)  # warm caches
    ms = [d * 1000 for d in time_lookups(database, patients, lookups)]
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    print(
        f"{size:>11,} rows: loaded {step:,} in {load_time:.1f} s, index {index_time:.1f} s; "
        f"lookup p50 {p50:.3f} ms p99 {p99:.3f} ms",
        flush=True,
    )
    return size, load_time, index_time, p50, p99, max(ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["register", "lookup"])
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in a temp dir)")
    parser.add_argument("--postgres", action="store_true", help=f"use a throwaway PostgreSQL database {BENCH_DB}")
    parser.add_argument("--keep", action="store_true", help="lookup: keep the database and key directory")
    parser.add_argument("--reuse", default=None, help="lookup: measure again on a directory kept with --keep")
    parser.add_argument("--records", type=int, default=20000, help="register: records to register")
    parser.add_argument("--bundle", type=int, default=1000, help="register: entries per Bundle")
    parser.add_argument("--workers", type=int, default=2, help="register: server processes (one uvicorn each)")
    parser.add_argument("--concurrency", type=int, default=2, help="register: Bundles in flight")
    parser.add_argument("--sizes", default=None, help="lookup: comma-separated table sizes")
    parser.add_argument("--lookups", type=int, default=2000, help="lookup: timed lookups per size")
    parser.add_argument("--searches", type=int, default=200, help="lookup: complete service searches at the end")
    args = parser.parse_args()
    if args.mode == "register":
        run_register(args)
    else:
        run_lookup(args)


if __name__ == "__main__":
    main()
