"""Consent benchmark: the closed question with 1 million stored choices (100,000 citizens x 10).

    python bench/consent_closed_question.py                          # SQLite, 1M choices
    python bench/consent_closed_question.py --choices 100000         # a quick run
    python bench/consent_closed_question.py --postgres               # PostgreSQL (LDN_TEST_POSTGRES_URL)

What it does:
1. loads N choices (10 per citizen, mixed holders/requesters/categories/decisions, 2% of citizens
   with an EHDS primary-use objection) straight into the consent tables with executemany;
2. in-process, through the service layer (`ConsentRegister.closed_question_sync`: BSN hash, the
   per-citizen cache or one indexed query, the decision core): decisions per second and per-call
   latency, cold (cache off: every question reads the database) and warm (cache holding all);
3. over HTTP: starts the whole network (`ldn up`, uvicorn on 127.0.0.1, a random port) on that
   database in a child process, gets a real access token (RFC 7523, scope consent:read), and
   POSTs JSON closed questions (`/consent/closed-question`) with keep-alive connections at each
   concurrency: throughput and p50/p95/p99 latency. Every HTTP question is authenticated
   (introspection cached) and recorded in the NEN 7513 audit log, as in production; a second
   run with the consent service's audit hook off separates the service's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.common import machine, percentile  # noqa: E402

HOLDER, HOLDER_TYPE = "00000020", "Z3"  # GP practice asks...
REQUESTER, REQUESTER_TYPE = "00000050", "J8"  # ...whether the pharmacy may have the data
PHARMACIST, ROLE = "900000041", "17.000"
GP_USER = "900000011"
HOLDERS = ("ura:00000020", "ura:00000030", "ura:00000040", "type:Z3", "type:V4", "group:RPZAC001", "any")
REQUESTERS = ("ura:00000050", "ura:00000040", "type:J8", "type:V4", "group:RPZAC005", "group:RPZAC104", "any")
CATEGORIES = ("GGC002", "GGC012", "GGC013")
WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def bsns(count: int, start: int = 20_000_000) -> list[str]:
    """`count` distinct BSNs passing the 11-check (one per 8-digit prefix that admits one)."""
    out: list[str] = []
    prefix = start
    while len(out) < count:
        digits = f"{prefix:08d}"
        check = sum(int(d) * w for d, w in zip(digits, WEIGHTS, strict=True)) % 11
        if check <= 9:
            out.append(digits + str(check))
        prefix += 1
    return out


def generate(database_url: str, data_dir: Path, citizens: list[str], per_citizen: int, seed: int) -> float:
    """Load the choices and opt-outs; returns seconds taken."""
    from sqlalchemy import insert

    from ldn.consent.keys import load_keys
    from ldn.consent.settings import ConsentSettings
    from ldn.consent.tables import choices, optouts
    from ldn.core.storage import open_database

    rng = random.Random(seed)
    keys = load_keys(ConsentSettings(), data_dir)
    database = open_database(database_url, upgrade=True)
    recorded = datetime.now(UTC) - timedelta(days=1)
    recorded_text = recorded.isoformat()
    scopes = [(h, r, c) for h in HOLDERS for r in REQUESTERS for c in CATEGORIES]
    bodies: dict[tuple[str, str, str, str], str] = {}
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    optout_rows: list[dict[str, Any]] = []

    def flush() -> None:
        with database.engine.begin() as conn:
            conn.execute(insert(choices), batch)
        batch.clear()

    for bsn in citizens:
        bsn_hash = keys.bsn_hash(bsn)
        for holder, requester, category in rng.sample(scopes, per_citizen):
            decision = "permit" if rng.random() < 0.7 else "deny"
            key = (holder, requester, category, decision)
            body = bodies.get(key)
            if body is None:
                body = json.dumps(
                    {
                        "holder": holder,
                        "requester": requester,
                        "data_category": category,
                        "decision": decision,
                        "valid_from": recorded_text,
                        "valid_until": None,
                        "implied": False,
                        "source": "citizen",
                        "recorded_at": recorded_text,
                    },
                    separators=(",", ":"),
                )
                bodies[key] = body
            batch.append(
                {
                    "choice_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                    "version": 1,
                    "bsn_hash": bsn_hash,
                    "status": "active",
                    "body": body,
                    "recorded_at": recorded,
                    "recorded_by": "citizen",
                    "superseded": False,
                }
            )
        if rng.random() < 0.02:
            optout_rows.append(
                {
                    "bsn_hash": bsn_hash,
                    "kind": "primary",
                    "version": 1,
                    "objected": True,
                    "recorded_at": recorded,
                    "recorded_by": "citizen",
                    "superseded": False,
                }
            )
        if len(batch) >= 50_000:
            flush()
    if batch:
        flush()
    if optout_rows:
        with database.engine.begin() as conn:
            conn.execute(insert(optouts), optout_rows)
    if database.is_sqlite:
        with database.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with database.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE consent_choices")
            conn.commit()
    database.dispose()
    return time.perf_counter() - started


def question_for(bsn: str, category: str) -> Any:
    from ldn.consent.decision import ClosedQuestion

    return ClosedQuestion(
        bsn=bsn,
        holder_ura=HOLDER,
        holder_facility_type=HOLDER_TYPE,
        data_category=category,
        requester_ura=REQUESTER,
        requester_facility_type=REQUESTER_TYPE,
        professional_id=PHARMACIST,
        professional_role=ROLE,
        purpose_of_use="TREAT",
        at=datetime.now(UTC),
    )


def in_process(database_url: str, data_dir: Path, citizens: list[str], questions: int, seed: int) -> None:
    from ldn.consent.cache import StateCache
    from ldn.consent.register import Actor, ConsentRegister
    from ldn.core.config import CoreSettings
    from ldn.core.storage import open_database
    from ldn.core.topology import load_topology
    from ldn.network.runtime import build_network

    rng = random.Random(seed)
    database = open_database(database_url)
    settings = CoreSettings(data_dir=data_dir, database_url=database_url, log_level="WARNING")
    os.environ["LDN_AUTH_PKI_DIR"] = str(data_dir / "pki")
    network = build_network(settings, load_topology(), database, base_url="http://bench.local")
    register: ConsentRegister = network.apps["consent"].state.ctx.extras["consent_register"]

    def picks(n: int) -> list[tuple[str, str]]:
        return [(rng.choice(citizens), rng.choice(CATEGORIES)) for _ in range(n)]

    def run(items: list[tuple[str, str]]) -> tuple[float, list[float], dict[str, int]]:
        latencies: list[float] = []
        results: dict[str, int] = {}
        started = time.perf_counter()
        for bsn, category in items:
            t0 = time.perf_counter()
            decision = register.closed_question_sync(question_for(bsn, category))
            latencies.append(time.perf_counter() - t0)
            results[decision.result.value] = results.get(decision.result.value, 0) + 1
        return time.perf_counter() - started, latencies, results

    def report(label: str, elapsed: float, latencies: list[float], results: dict[str, int] | None = None) -> None:
        ms = [v * 1000 for v in latencies]
        shown = f"; results {dict(sorted(results.items()))}" if results else ""
        print(
            f"  {label}: {len(latencies) / elapsed:,.0f} decisions/s; per call p50 {percentile(ms, 50):.3f} ms, "
            f"p99 {percentile(ms, 99):.3f} ms{shown}"
        )

    print(f"in-process, service layer ({len(citizens):,} citizens):")
    register.cache = StateCache(0, 0)
    cold_n = max(1000, questions // 5)
    report(f"lookup + decision, cache off, {cold_n:,} questions (one indexed query each)", *run(picks(cold_n)))

    register.cache = StateCache(len(citizens), 0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fill_started = time.perf_counter()
    for bsn in citizens:
        register.state_sync(bsn)
    fill = time.perf_counter() - fill_started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"  cache filled with all {len(citizens):,} citizens in {fill:.1f} s "
        f"({len(citizens) / fill:,.0f} loads/s); peak RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB"
    )
    report(f"lookup + decision, all cached, {questions:,} questions", *run(picks(questions)))

    async def full(concurrency: int, n: int) -> tuple[float, list[float]]:
        """`ConsentRegister.closed_question` as the HTTP route calls it: with the audit record."""
        actor = Actor(recorded_by=HOLDER, client_id="bench", organization_ura=HOLDER)
        queue = picks(n)
        latencies: list[float] = []

        async def worker() -> None:
            while queue:
                bsn, category = queue.pop()
                t0 = time.perf_counter()
                await register.closed_question(question_for(bsn, category), actor=actor)
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies

    async def audited() -> None:
        async with network.app.router.lifespan_context(network.app):
            await full(1, 200)  # warm-up: audit store, chain head
            n = max(1000, questions // 20)
            for concurrency in (1, 32):
                report(
                    f"with the audit record (NEN 7513), all cached, concurrency {concurrency}",
                    *await full(concurrency, n),
                )

    asyncio.run(audited())
    database.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def access_token(base: str, data_dir: Path) -> str:
    import httpx

    from ldn.auth.client import TokenClient
    from ldn.auth.trust_store import trust_store
    from ldn.core.topology import load_topology

    async with httpx.AsyncClient(timeout=30) as http:
        credential = trust_store(data_dir / "pki", load_topology()).credential(HOLDER)
        token = await TokenClient(credential, http, use_dpop=False).token(
            f"{base}/auth/token", "consent:read", user_id=GP_USER
        )
        return token.value


def over_http(
    port: int, data_dir: Path, citizens: list[str], requests: int, concurrencies: list[int], seed: int, *, audit: bool
) -> None:
    """The client is the standard library's http.client, one keep-alive connection per thread:
    on this VM httpx's AsyncClient alone adds about 8 ms per loopback request (measured against
    a bare uvicorn app: http.client 0.7 ms, httpx sync 2 ms, httpx async 8 ms), which would
    drown the server's own latency."""
    import http.client
    import threading

    base = f"http://127.0.0.1:{port}"
    rng = random.Random(seed)
    sample = rng.sample(citizens, min(len(citizens), 5000))
    token = asyncio.run(access_token(base, data_dir))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def body(bsn: str, category: str) -> bytes:
        return json.dumps(
            {
                "bsn": bsn,
                "holder_ura": HOLDER,
                "holder_facility_type": HOLDER_TYPE,
                "data_category": category,
                "requester_ura": REQUESTER,
                "requester_facility_type": REQUESTER_TYPE,
                "professional_id": PHARMACIST,
                "professional_role": ROLE,
                "purpose_of_use": "TREAT",
            }
        ).encode()

    def run(concurrency: int, picks: list[str]) -> tuple[float, list[float]]:
        payloads = [body(bsn, rng.choice(CATEGORIES)) for bsn in picks]
        latencies: list[float] = []
        lock = threading.Lock()
        errors: list[str] = []

        def worker() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine: list[float] = []
            while True:
                with lock:
                    if not payloads:
                        break
                    payload = payloads.pop()
                t0 = time.perf_counter()
                connection.request("POST", "/consent/closed-question", body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                mine.append(time.perf_counter() - t0)
                if response.status != 200:
                    errors.append(f"HTTP {response.status}: {data[:200]!r}")
                    break
            connection.close()
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(errors[0])
        return time.perf_counter() - started, latencies

    def report(label: str, elapsed: float, latencies: list[float]) -> None:
        ms = [v * 1000 for v in latencies]
        print(
            f"  {label}: {len(latencies) / elapsed:,.0f} questions/s; p50 {percentile(ms, 50):.2f} ms, "
            f"p95 {percentile(ms, 95):.2f} ms, p99 {percentile(ms, 99):.2f} ms"
        )

    what = "audit record per question (as `ldn up`)" if audit else "consent audit hook off (cost without the audit log)"
    print(f"over HTTP ({base}, JSON closed question, Bearer token, {what}):")
    report(f"first pass over {len(sample):,} citizens (server cache cold), concurrency 1", *run(1, list(sample)))
    for concurrency in concurrencies:
        picks = [rng.choice(sample) for _ in range(requests)]
        report(f"{requests:,} questions, concurrency {concurrency} (cache warm)", *run(concurrency, picks))


def serve_without_audit(data_dir: Path, database_url: str, port: int) -> None:
    """Child-process mode: the same network as `ldn up`, with the consent service's audit hook
    switched off, to separate the consent service's own cost from the audit log's."""
    from ldn.core.config import CoreSettings
    from ldn.core.logging import configure_logging
    from ldn.core.storage import open_database
    from ldn.core.topology import load_topology
    from ldn.network.runtime import build_network, serve, write_network_json

    settings = CoreSettings(data_dir=data_dir, database_url=database_url, host="127.0.0.1", port=port)
    configure_logging("WARNING", "json")
    database = open_database(database_url, upgrade=True)
    network = build_network(settings, load_topology(), database)
    network.apps["consent"].state.ctx.extras["consent_register"].audit = None
    asyncio.run(
        serve(
            network.app, host="127.0.0.1", port=port, on_started=lambda: write_network_json(network.directory, data_dir)
        )
    )


def start_network(data_dir: Path, database_url: str, port: int, *, audit: bool = True) -> subprocess.Popen[bytes]:
    (data_dir / "network.json").unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "LDN_DATA_DIR": str(data_dir),
            "LDN_DATABASE_URL": database_url,
            "LDN_LOG_LEVEL": "WARNING",
            "LDN_AUTH_PKI_DIR": str(data_dir / "pki"),
            "PYTHONPATH": str(ROOT / "src"),
        }
    )
    if audit:
        command = [sys.executable, "-m", "ldn.cli", "up", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [sys.executable, __file__, "--serve-without-audit", str(port), "--data-dir", str(data_dir)]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    while not (data_dir / "network.json").exists():
        if process.poll() is not None:
            raise RuntimeError(f"ldn up exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("ldn up did not start within 180 s")
        time.sleep(0.2)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--choices", type=int, default=1_000_000)
    parser.add_argument("--per-citizen", type=int, default=10)
    parser.add_argument("--questions", type=int, default=100_000, help="in-process questions (warm)")
    parser.add_argument("--http-requests", type=int, default=5_000, help="HTTP questions per concurrency level")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated HTTP concurrency levels")
    parser.add_argument("--postgres", action="store_true", help="use PostgreSQL at LDN_TEST_POSTGRES_URL")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--no-http-without-audit", action="store_true", help="skip the HTTP run without audit")
    parser.add_argument("--serve-without-audit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_without_audit:
        serve_without_audit(args.data_dir, os.environ["LDN_DATABASE_URL"], args.serve_without_audit)
        return

    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    data_dir = Path(tempfile.mkdtemp(prefix="ldn-bench-consent-"))
    admin = None
    db_name = None
    if args.postgres:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin_url = os.environ.get("LDN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        db_name = f"ldn_bench_consent_{hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        database_url = make_url(admin_url).set(database=db_name).render_as_string(hide_password=False)
    else:
        database_url = f"sqlite:///{data_dir / 'ldn.db'}"
    print(f"database: {'PostgreSQL' if args.postgres else 'SQLite (WAL)'}")

    citizens = bsns(max(1, args.choices // args.per_citizen))
    try:
        seconds = generate(database_url, data_dir, citizens, args.per_citizen, args.seed)
        total = len(citizens) * args.per_citizen
        print(
            f"loaded {total:,} choices for {len(citizens):,} citizens in {seconds:.1f} s "
            f"({total / seconds:,.0f} rows/s)"
        )
        in_process(database_url, data_dir, citizens, args.questions, args.seed)
        concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
        for audit in (True, False) if not args.no_http_without_audit else (True,):
            port = free_port()
            process = start_network(data_dir, database_url, port, audit=audit)
            try:
                over_http(port, data_dir, citizens, args.http_requests, concurrencies, args.seed, audit=audit)
            finally:
                stop(process)
    finally:
        if admin is not None and db_name is not None:
            from sqlalchemy import text

            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            admin.dispose()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
