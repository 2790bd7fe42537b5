"""Addressing benchmark: replica sync of a national-size directory, search and `_history` latency.

    python bench/addressing_sync.py                      # 20,000 organisations, SQLite
    python bench/addressing_sync.py --orgs 2000          # a quick run
    python bench/addressing_sync.py --postgres           # on PostgreSQL (LDN_TEST_POSTGRES_URL)

What it does:
1. generates a directory of N organisations, each with 3 Endpoints and 2 HealthcareServices (and
   the LRZa register for them) in a separate process, straight into the directory's tables;
2. serves the LRZa and mCSD apps with uvicorn in another process (token checks replaced by a
   fixed caller: this measures addressing, not authentication);
3. in this process (whose peak memory is reported) runs a replica's initial sync against it over
   loopback HTTP, then makes 1,000 changes through the directory's service layer and times the
   incremental sync;
4. measures search latency (mixed ITI-90 queries) and `_history` page latency (ITI-91).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

TYPES = ("huisartspraktijk", "ziekenhuis", "apotheek", "verpleeghuis", "ggz-instelling", "laboratorium")
CITIES = ("Utrecht", "Amsterdam", "Rotterdam", "Den Haag", "Groningen", "Zwolle", "Arnhem", "Maastricht", "Leiden")
BENCH_URA = "00000020"  # the caller the server pretends every request comes from


def ura_of(i: int) -> str:
    return f"3{i:07d}"


# ---- process 1: generate ----------------------------------------------------------------------


def generate(db_url: str, orgs: int, base: str) -> None:
    from sqlalchemy import insert

    from ldn.addressing import lrza
    from ldn.addressing.codes import source_uri
    from ldn.addressing.model import now_us, us_to_instant
    from ldn.addressing.publication import participant_resources
    from ldn.addressing.searchparams import extract
    from ldn.addressing.store import dumps
    from ldn.addressing.tables import mcsd_history, mcsd_resources, mcsd_search
    from ldn.core.storage import Database
    from ldn.core.topology import Organization, Vendor

    started = time.perf_counter()
    db = Database(db_url)
    db.upgrade()
    rng = random.Random(20261122)
    # 25 software vendors, each publishing for 1/25th of the providers.
    vendors = [Vendor(id=f"vendor-{v}", name=f"Leverancier {v} B.V.", kvk=f"8{v:07d}") for v in range(25)]
    stamp = now_us() - 10_000_000_000
    batch_orgs = 1000
    mcsd_base = f"{base}/mcsd"
    for start in range(0, orgs, batch_orgs):
        providers = []
        resources, history, index = [], [], []
        for i in range(start, min(orgs, start + batch_orgs)):
            ura = ura_of(i)
            org_type = TYPES[i % len(TYPES)]
            city = rng.choice(CITIES)
            vendor = vendors[i % len(vendors)]
            org = Organization(
                ura=ura, agb=f"0{i:07d}", name=f"Zorgaanbieder {i} {city}", type=org_type, city=city, vendor=vendor.id
            )
            providers.append(
                lrza.Provider(
                    ura=ura,
                    name=org.name,
                    org_type=org_type,
                    agb=org.agb,
                    city=city,
                    vendor_name=vendor.name,
                    vendor_kvk=vendor.kvk,
                )
            )
            node_base = f"https://node{i}.example.org"
            node = {"name": org.name, "base": node_base, "fhir": f"{node_base}/fhir"}
            for rtype, rid, body in participant_resources(org, vendor, node):
                stamp += 1
                content = {
                    "resourceType": rtype,
                    "id": rid,
                    "meta": {"versionId": "1", "lastUpdated": us_to_instant(stamp), "source": source_uri(ura)},
                    **{k: v for k, v in body.items() if k not in ("resourceType", "id")},
                }
                text = dumps(content)
                resources.append(
                    {
                        "resource_type": rtype,
                        "id": rid,
                        "version_id": 1,
                        "last_updated": stamp,
                        "publisher_ura": ura,
                        "content": text,
                    }
                )
                history.append(
                    {
                        "resource_type": rtype,
                        "id": rid,
                        "version_id": 1,
                        "last_updated": stamp,
                        "method": "POST",
                        "content": text,
                    }
                )
                index.extend(
                    {"resource_type": rtype, "res_id": rid, "param": p, "system": s, "value": v}
                    for p, s, v in extract(rtype, content, mcsd_base)
                )
        with db.transaction() as session:
            lrza.upsert_providers(session, providers)
            session.execute(insert(mcsd_resources), resources)
            session.execute(insert(mcsd_history), history)
            for chunk in range(0, len(index), 5000):
                session.execute(insert(mcsd_search), index[chunk : chunk + 5000])
    # Statistics as a running directory would have them (autovacuum on PostgreSQL).
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    db.dispose()
    print(json.dumps({"generated_orgs": orgs, "seconds": round(time.perf_counter() - started, 1)}), flush=True)


# ---- process 2: serve -------------------------------------------------------------------------


def directory_app(db_url: str, base: str) -> Any:
    """The LRZa and mCSD apps on `db_url`, token checks replaced by a fixed caller."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from ldn.addressing import api_lrza, api_mcsd
    from ldn.addressing.service import create_lrza_app, create_mcsd_app
    from ldn.auth.resource_server import Caller
    from ldn.core.config import CoreSettings
    from ldn.core.http import HttpClientFactory
    from ldn.core.service import NetworkDirectory, ServiceContext
    from ldn.core.storage import Database
    from ldn.core.topology import load_topology

    os.environ["LDN_ADDRESSING_PUBLISH_ON_STARTUP"] = "false"
    settings = CoreSettings(database_url=db_url, log_level="WARNING")
    database = Database(db_url)
    directory = NetworkDirectory(services={"mcsd": f"{base}/mcsd", "lrza": f"{base}/lrza"})
    http = HttpClientFactory()
    topology = load_topology()

    async def caller() -> Caller:
        return Caller(
            client_id="bench",
            organization_ura=BENCH_URA,
            organization_name="bench",
            scopes=frozenset({"mcsd:read", "lrza:read"}),
        )

    mcsd = create_mcsd_app(ServiceContext("mcsd", f"{base}/mcsd", settings, topology, database, http, directory))
    lrza_app = create_lrza_app(ServiceContext("lrza", f"{base}/lrza", settings, topology, database, http, directory))
    mcsd.dependency_overrides[api_mcsd.MCSD_READ] = caller
    lrza_app.dependency_overrides[api_lrza.LRZA_READ] = caller
    return Starlette(routes=[Mount("/mcsd", app=mcsd), Mount("/lrza", app=lrza_app)])


def serve(db_url: str, port: int, base: str) -> None:
    import uvicorn

    from ldn.core.logging import configure_logging

    configure_logging("WARNING", "json")
    uvicorn.run(
        directory_app(db_url, base), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- process 3: mutate ------------------------------------------------------------------------


def mutate(db_url: str, changes: int, orgs: int, base: str) -> None:
    from ldn.addressing import store
    from ldn.addressing.directory import DirectoryService
    from ldn.addressing.model import deactivated, without_server_meta
    from ldn.addressing.settings import AddressingSettings
    from ldn.core.storage import Database

    db = Database(db_url)
    service = DirectoryService(db, AddressingSettings(), f"{base}/mcsd")
    rng = random.Random(7)
    started = time.perf_counter()
    done = 0
    while done < changes:
        with db.transaction() as session:
            for _ in range(min(100, changes - done)):
                i = rng.randrange(orgs)
                ura = ura_of(i)
                kind = rng.choice(("endpoint", "service", "organization"))
                if kind == "endpoint":
                    rtype, rid = "Endpoint", f"ep-{ura}-{rng.choice(('fhir', 'notification', 'token'))}"
                elif kind == "service":
                    rtype, rid = "HealthcareService", f"hs-{ura}-verwijzing"
                else:
                    rtype, rid = "Organization", f"org-{ura}"
                current = store.get_current(session, rtype, rid)
                assert current is not None
                body = without_server_meta(current.content)
                if rtype == "Endpoint":
                    body["address"] = f"https://moved{uuid.uuid4().hex[:8]}.example.org/fhir"
                elif rtype == "HealthcareService" and rng.random() < 0.5:
                    body = deactivated(rtype, body)
                else:
                    body["name"] = f"{body.get('name', '')} *"
                service.write(session, rtype, rid, body, ura)
                done += 1
    print(json.dumps({"changes": done, "seconds": round(time.perf_counter() - started, 1)}), flush=True)


# ---- main: the replica, the measurements ------------------------------------------------------


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
        "mean_ms": round(statistics.mean(ordered) * 1000, 2),
    }


def _queries(rng: random.Random, orgs: int) -> list[Any]:
    return [
        lambda: f"Organization?identifier=http://fhir.nl/fhir/NamingSystem/ura|{ura_of(rng.randrange(orgs))}",
        lambda: f"Organization?name=zorgaanbieder%20{rng.randrange(orgs)}&_count=20",
        lambda: f"Organization?type=Z3&active=true&address-city={quote(rng.choice(CITIES))}&_count=50",
        lambda: (
            f"Endpoint?organization:identifier=http://www.kvk.nl/|8{rng.randrange(25):07d}"
            "&payload-type=pull-notification&_count=50"
        ),
        lambda: "HealthcareService?service-type=verwijzing-ontvangen&_include=HealthcareService:endpoint&_count=50",
        lambda: (
            f"Organization?identifier={ura_of(rng.randrange(orgs))}&_include=Organization:endpoint"
            "&_revinclude=HealthcareService:organization"
        ),
        lambda: f"HealthcareService?organization=org-{ura_of(rng.randrange(orgs))}",
        lambda: "Endpoint?status=active&_lastUpdated=ge2020-01-01&_count=100",
    ]


async def _search_latency(http: Any, mcsd: str, requests: int, orgs: int, server_pid: int) -> dict[str, Any]:
    rng = random.Random(11)
    queries = _queries(rng, orgs)
    per_query: dict[int, list[float]] = {i: [] for i in range(len(queries))}
    samples: list[float] = []
    server_cpu = process_cpu_seconds(server_pid)
    for n in range(requests):
        index = n % len(queries)
        url = f"{mcsd}/{queries[index]()}"
        t = time.perf_counter()
        response = await http.get(url)
        took = time.perf_counter() - t
        assert response.status_code == 200, (url, response.text[:300])
        per_query[index].append(took)
        samples.append(took)
    server_cpu_per_request = (process_cpu_seconds(server_pid) - server_cpu) / requests
    names = [q().split("&_count")[0][:60] for q in _queries(random.Random(0), orgs)]
    return {
        "requests": len(samples),
        **percentiles(samples),
        "directory_cpu_ms_per_request": round(server_cpu_per_request * 1000, 2),
        "p95_ms_per_query": {names[i]: percentiles(v)["p95_ms"] for i, v in per_query.items()},
    }


async def measure(
    args: argparse.Namespace, directory_url: str, replica_url: str, base: str, server_pid: int
) -> dict[str, Any]:
    import httpx

    from ldn.addressing.model import instant_to_us, us_to_instant
    from ldn.addressing.replica import NoToken, ReplicaLookups, ReplicaSyncer
    from ldn.addressing.settings import AddressingSettings
    from ldn.core.storage import Database

    results: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    replica_db = Database(replica_url)
    replica_db.upgrade()
    limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        syncer = ReplicaSyncer(
            replica_db,
            BENCH_URA,
            mcsd_url=f"{base}/mcsd",
            lrza_url=f"{base}/lrza",
            http=http,
            tokens=NoToken(),
            settings=AddressingSettings(sync_page_size=1000),
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu, server_cpu = own_cpu_seconds(), process_cpu_seconds(server_pid)
        started = time.perf_counter()
        report = await syncer.sync_once()
        elapsed = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        status = await ReplicaLookups(replica_db, BENCH_URA).status()
        results["initial_sync"] = {
            "resources": status.resources,
            "applied": report.applied,
            "dropped": report.dropped,
            "pages": report.pages,
            "requests": syncer.client.requests,
            "seconds": round(elapsed, 2),
            "resources_per_second": round(status.resources / elapsed),
            "replica_cpu_seconds": round(own_cpu_seconds() - cpu, 1),
            "directory_cpu_seconds": round(process_cpu_seconds(server_pid) - server_cpu, 1),
            "peak_rss_mb": round(rss_after / 1024, 1),
            "rss_before_sync_mb": round(rss_before / 1024, 1),
        }
        print(json.dumps({"initial_sync": results["initial_sync"]}), flush=True)

        mutated = subprocess.run(
            [
                sys.executable,
                __file__,
                "mutate",
                "--db",
                directory_url,
                "--changes",
                str(args.changes),
                "--orgs",
                str(args.orgs),
                "--base",
                base,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results["mutations"] = json.loads(mutated.stdout.strip().splitlines()[-1])
        cpu = own_cpu_seconds()
        started = time.perf_counter()
        report = await syncer.sync_once()
        elapsed = time.perf_counter() - started
        results["incremental_sync"] = {
            "changes": args.changes,
            "applied": report.applied,
            "skipped": report.skipped,
            "pages": report.pages,
            "seconds": round(elapsed, 2),
            "replica_cpu_seconds": round(own_cpu_seconds() - cpu, 2),
        }
        print(json.dumps({"incremental_sync": results["incremental_sync"]}), flush=True)

        lookups = ReplicaLookups(replica_db, BENCH_URA)
        rng = random.Random(3)
        samples = []
        cpu = own_cpu_seconds()
        for _ in range(300):
            ura = ura_of(rng.randrange(args.orgs))
            t = time.perf_counter()
            await lookups.endpoints(ura, "pull-notification")
            samples.append(time.perf_counter() - t)
        results["replica_lookup_endpoints"] = {
            **percentiles(samples),
            "cpu_ms_per_lookup": round((own_cpu_seconds() - cpu) / 300 * 1000, 2),
        }

        mcsd = f"{base}/mcsd"
        await _search_latency(http, mcsd, 40, args.orgs, server_pid)  # warm up
        results["search"] = await _search_latency(http, mcsd, args.searches, args.orgs, server_pid)
        print(json.dumps({"search": results["search"]}), flush=True)

        first = (await http.get(f"{mcsd}/_history?_count=1&_sort=_lastUpdated")).json()
        newest = (await http.get(f"{mcsd}/_history?_count=1")).json()
        lo_us = instant_to_us(first["entry"][0]["response"]["lastModified"])
        hi_us = instant_to_us(newest["entry"][0]["response"]["lastModified"])
        for count in (100, 1000):
            samples = []
            server_cpu = process_cpu_seconds(server_pid)
            for n in range(args.history):
                since = us_to_instant(rng.randrange(lo_us, hi_us))
                level = "_history" if n % 2 == 0 else rng.choice(("Endpoint", "Organization", "HealthcareService"))
                level = level if level == "_history" else f"{level}/_history"
                url = f"{mcsd}/{level}?_since={quote(since)}&_sort=_lastUpdated&_count={count}"
                t = time.perf_counter()
                response = await http.get(url)
                took = time.perf_counter() - t
                assert response.status_code == 200, response.text[:300]
                samples.append(took)
                # and one page further along, by cursor
                next_url = next((link["url"] for link in response.json()["link"] if link["relation"] == "next"), None)
                if next_url:
                    t = time.perf_counter()
                    assert (await http.get(next_url)).status_code == 200
                    samples.append(time.perf_counter() - t)
            results[f"history_page_count_{count}"] = {
                "requests": len(samples),
                **percentiles(samples),
                "directory_cpu_ms_per_request": round(
                    (process_cpu_seconds(server_pid) - server_cpu) / len(samples) * 1000, 2
                ),
            }
            print(json.dumps({f"history_page_count_{count}": results[f"history_page_count_{count}"]}), flush=True)
    replica_db.dispose()
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="run", choices=("run", "generate", "serve", "mutate"))
    parser.add_argument("--orgs", type=int, default=20000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=800)
    parser.add_argument("--history", type=int, default=100)
    parser.add_argument("--postgres", action="store_true", help="use PostgreSQL at LDN_TEST_POSTGRES_URL")
    parser.add_argument("--db")
    parser.add_argument("--port", type=int)
    parser.add_argument("--base")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files (printed) for inspection")
    args = parser.parse_args()
    if args.mode == "generate":
        generate(args.db, args.orgs, args.base)
        return
    if args.mode == "serve":
        serve(args.db, args.port, args.base)
        return
    if args.mode == "mutate":
        mutate(args.db, args.changes, args.orgs, args.base)
        return

    workdir = Path(tempfile.mkdtemp(prefix="ldn-bench-addressing-"))
    created: list[str] = []
    if args.postgres:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin_url = os.environ.get("LDN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        urls = []
        for role in ("directory", "replica"):
            name = f"ldn_bench_{role}_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            created.append(name)
            urls.append(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
        directory_url, replica_url = urls
    else:
        directory_url = f"sqlite:///{workdir / 'directory.db'}"
        replica_url = f"sqlite:///{workdir / 'replica.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = None
    try:
        gen = subprocess.run(
            [sys.executable, __file__, "generate", "--db", directory_url, "--orgs", str(args.orgs), "--base", base],
            check=True,
            capture_output=True,
            text=True,
        )
        generated = json.loads(gen.stdout.strip().splitlines()[-1])
        print(json.dumps(generated), flush=True)
        server = subprocess.Popen(
            [sys.executable, __file__, "serve", "--db", directory_url, "--port", str(port), "--base", base],
        )
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("directory server did not start") from None
                time.sleep(0.2)
        results = asyncio.run(measure(args, directory_url, replica_url, base, server.pid))
        results = {
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "database": "postgresql" if args.postgres else "sqlite",
            },
            "orgs": args.orgs,
            "generated": generated,
            **results,
        }
        print(json.dumps(results, indent=2))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if args.keep:
            print(f"kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if created:
            from sqlalchemy import create_engine, text

            admin = create_engine(
                os.environ.get("LDN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                isolation_level="AUTOCOMMIT",
            )
            with admin.connect() as conn:
                for name in created:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
