"""Communication patterns benchmark: raadplegen across 4 holders, and the referral round trip.

    python bench/patterns_query.py                      # SQLite, defaults below
    python bench/patterns_query.py --queries 200 --concurrency 1 4 8 --duration 10
    python bench/patterns_query.py --bearer             # tokens without DPoP (as with mTLS binding)
    python bench/patterns_query.py --postgres           # PostgreSQL at LDN_TEST_POSTGRES_URL

What it measures, all in one process on the embedded network (no sockets; every hop is a real
HTTP request through the in-process ASGI transport, with real tokens, consent questions, policy
decisions and NEN 7513 records on both sides):

1. **Indexed pull latency**: a GP of another practice (UZI 900000021) asks its node for everything
   about a patient (BSN 999990007) with four holders (GP, hospital, pharmacy, nursing home):
   NVI localization (PRS + NVI), four holders asked concurrently (one search per data category,
   22 searches in all, each with its consent question at the holder), merge. Sequential queries
   after a warm-up (tokens and decisions cached as they would be for a working professional):
   p50/p95/p99; then the same for one category (one search per holder).
2. **Throughput**: N concurrent clients, each issuing queries back to back for D seconds:
   queries per second and latency under load.
3. **Referral round trip**: refer (workflow Task + notification), accept (status to the sender),
   pull (workflow Task + every listed query), complete: per step and in total.

Before measuring, the script waits until the 1-minute load average is below 4 (up to 5 minutes)
and prints the load it ran under.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.common import machine, percentile  # noqa: E402

REQUESTER = "900000021"  # huisarts at 00000030, not a holder of the patient's data
PATIENT = "999990007"  # held by 00000020, 00000040, 00000050, 00000060
GP_DOCTOR, INTERNIST, HOSPITAL = "900000011", "900000031", "00000040"
REFERRED = ("999990019", "999990196", "999990111", "999990147", "999990172")


def _ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
        f"mean {statistics.fmean(ms):.1f} ms (n={len(ms)})"
    )


def _wait_for_quiet(limit: float = 4.0, patience: float = 300.0) -> float:
    deadline = time.monotonic() + patience
    load = os.getloadavg()[0]
    while load > limit and time.monotonic() < deadline:
        print(f"load average {load:.2f} > {limit}: waiting", flush=True)
        time.sleep(15)
        load = os.getloadavg()[0]
    return load


async def _bench(args: argparse.Namespace) -> None:
    import httpx

    from ldn.patterns.demo import build_demo_network
    from ldn.patterns.driver import NetworkDriver
    from ldn.patterns.raadplegen import holder_statuses

    workdir = Path(tempfile.mkdtemp(prefix="ldn-bench-patterns-"))
    os.environ["LDN_AUTH_PKI_DIR"] = str(workdir / "pki")
    database_url = None
    if args.postgres:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = os.environ.get("LDN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        name = f"ldn_bench_{uuid.uuid4().hex[:8]}"
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        database_url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    started = time.perf_counter()
    network = await asyncio.to_thread(build_demo_network, workdir, database_url)
    async with network.app.router.lifespan_context(network.app):
        transport = httpx.ASGITransport(app=network.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ldn.demo", timeout=60) as http:
            driver = NetworkDriver(network, http)
            await driver.ready()
            print(f"network ready in {time.perf_counter() - started:.1f} s")
            await driver.permit_all(PATIENT)

            async def one(categories: list[str] | None = None) -> float:
                began = time.perf_counter()
                response = await driver.query(REQUESTER, PATIENT, categories=categories)
                elapsed = time.perf_counter() - began
                found = holder_statuses(response.json())
                if response.status_code != 200 or {s["status"] for s in found.values()} != {"ok"}:
                    raise RuntimeError(f"unexpected answer: {response.status_code} {found}")
                return elapsed

            for _ in range(args.warmup):
                await one()
            first = await driver.query(REQUESTER, PATIENT)
            holders = holder_statuses(first.json())
            print(f"query: {len(holders)} holders, {first.json()['total']} resources per answer")
            load = _wait_for_quiet()
            print(f"load average before measuring: {load:.2f}")
            latencies = [await one() for _ in range(args.queries)]
            print(f"indexed pull, 4 holders, whole record, sequential: {_ms(latencies)}")
            light = [await one(["Patient"]) for _ in range(args.queries)]
            print(f"indexed pull, 4 holders, one category (Patient), sequential: {_ms(light)}")

            for concurrency in args.concurrency:
                done: list[float] = []
                stop = time.perf_counter() + args.duration

                async def client(done: list[float] = done, stop: float = stop) -> None:
                    while time.perf_counter() < stop:
                        done.append(await one())

                began = time.perf_counter()
                await asyncio.gather(*(client() for _ in range(concurrency)))
                wall = time.perf_counter() - began
                print(f"concurrency {concurrency}: {len(done) / wall:.1f} queries/s; {_ms(done)}")

            steps: dict[str, list[float]] = {"refer": [], "accept": [], "pull": [], "complete": [], "total": []}
            for i in range(args.referrals):
                bsn = REFERRED[i % len(REFERRED)]
                began = time.perf_counter()
                t0 = time.perf_counter()
                sent = await driver.refer(GP_DOCTOR, HOSPITAL, bsn, "ziekenhuiszorg")
                steps["refer"].append(time.perf_counter() - t0)
                if sent.status_code != 201:
                    raise RuntimeError(f"referral refused: {sent.text[:300]}")
                inbox = (await driver.inbox(INTERNIST)).json()
                item = next(
                    e["resource"]["id"]
                    for e in inbox["entry"]
                    if e["resource"]["focus"]["reference"] == f"Task/{sent.json()['id']}"
                )
                for action in ("accept", "pull", "complete"):
                    t0 = time.perf_counter()
                    answer = await driver.act(INTERNIST, item, action)
                    steps[action].append(time.perf_counter() - t0)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{action} failed: {answer.text[:300]}")
                steps["total"].append(time.perf_counter() - began)
            for step, values in steps.items():
                print(f"referral {step}: {_ms(values)}")
    network.database.dispose()
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100, help="sequential queries measured")
    parser.add_argument("--warmup", type=int, default=10, help="queries before measuring")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 8], help="concurrent clients")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency level")
    parser.add_argument("--referrals", type=int, default=20, help="referral round trips")
    parser.add_argument("--bearer", action="store_true", help="Bearer tokens between nodes (no DPoP)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    if args.bearer:
        os.environ["LDN_PATTERNS_DPOP"] = "false"
        os.environ["LDN_AUTHZ_CONSENT_DPOP"] = "false"
    print(f"machine: {machine()}")
    print(
        f"database: {'PostgreSQL' if args.postgres else 'SQLite'}; tokens between nodes: "
        f"{'Bearer' if args.bearer else 'DPoP'}"
    )
    asyncio.run(_bench(args))


if __name__ == "__main__":
    main()
