"""PRS over HTTP: OPRF evaluations per second, single and batched, on loopback.

    python bench/localization_prs_http.py                       # 2 workers, 10 s per mode
    python bench/localization_prs_http.py --workers 1 --seconds 5

Serves the PRS app alone with `--workers` uvicorn processes on 127.0.0.1 (random free ports,
loopback only) and drives them from this process with httpx, spreading requests over them:
- single:  ``POST /evaluate`` with one blinded input, `--concurrency` requests in flight;
- batched: ``POST /evaluate/batch`` with `--batch` blinded inputs per request.
The token check is replaced by a fixed caller (prs:read): this measures the PRS, not
authentication (the resource server caches introspection per token anyway). Every answer is a
real sealed JWE; a sample is opened with the recipient's key and checked against the OPRF.
The load generator shares the machine's cores with the server, so the figures are conservative.
Because a shared machine may give the run less than its cores, the script also counts the CPU
time the servers and the load generator used (/proc) and reports the capacity of the cores:
evaluations per CPU-second of the whole set-up times the number of cores.
Target (issue 5): batched >= 5,000 evaluations/s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402

RECIPIENT = ("ura:90000901", "nationale-verwijsindex")
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def server_app() -> Any:
    """uvicorn factory (one per worker): the PRS app with a fixed caller, configured from env."""
    from ldn.auth.resource_server import Caller
    from ldn.core.config import CoreSettings
    from ldn.core.http import HttpClientFactory
    from ldn.core.logging import configure_logging
    from ldn.core.service import NetworkDirectory, ServiceContext
    from ldn.core.storage import Database
    from ldn.core.topology import load_topology
    from ldn.localization.prs import api

    configure_logging("WARNING", "json")
    settings = CoreSettings()
    ctx = ServiceContext(
        name="prs",
        base_url=os.environ["BENCH_BASE_URL"],
        settings=settings,
        topology=load_topology(),
        database=Database(settings.resolved_database_url()),
        http=HttpClientFactory(),
        directory=NetworkDirectory(),
    )
    app = api.create_app(ctx)
    caller = Caller(
        client_id="00000020", organization_ura="00000020", organization_name="bench", scopes=frozenset({"prs:read"})
    )

    async def fixed_caller() -> Caller:  # async: FastAPI would run a sync one in a thread pool
        return caller

    app.dependency_overrides[api.PRS_READ] = fixed_caller
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(workdir: Path, database_url: str | None, master_hex: str) -> tuple[dict[str, str], Any]:
    """Database, master secret and the NVI recipient's key; returns the server env and the key."""
    from joserfc.jwk import ECKey
    from pydantic import SecretStr

    from ldn.core.storage import open_database
    from ldn.localization.prs.keys import PrsKeyring
    from ldn.localization.prs.service import PrsService
    from ldn.localization.settings import PrsSettings

    url = database_url or f"sqlite:///{workdir / 'ldn.db'}"
    database = open_database(url, upgrade=True)
    recipient_key = ECKey.generate_key("P-256", private=True)
    settings = PrsSettings(master_secret=SecretStr(master_hex))
    service = PrsService(database, PrsKeyring(bytes.fromhex(master_hex)), settings)
    service.register_recipient(*RECIPIENT, recipient_key.as_dict(private=False))
    database.dispose()
    env = {
        "LDN_DATA_DIR": str(workdir),
        "LDN_DATABASE_URL": url,
        "LDN_PRS_MASTER_SECRET": master_hex,
        "LDN_PRS_RECIPIENT_CACHE_SECONDS": "30",
    }
    return env, recipient_key


async def drive(
    bases: list[str], path: str, bodies: list[bytes], *, seconds: float, concurrency: int, per_request: int
) -> tuple[float, float, list[Any]]:
    """``concurrency`` request loops spread round-robin over the servers; evaluations per second."""
    import httpx

    done = 0
    samples: list[Any] = []
    clients = [
        # TCP_NODELAY: httpx's async transport writes headers and body separately; without it,
        # Nagle's algorithm and delayed ACKs can add ~40 ms to a request on loopback.
        httpx.AsyncClient(base_url=base, transport=httpx.AsyncHTTPTransport(socket_options=NODELAY), timeout=60)
        for base in bases
    ]
    headers = {"Content-Type": "application/json"}
    try:
        for client in clients:  # warm-up: connections, recipient cache, key derivation
            for body in bodies[:concurrency]:
                (await client.post(path, content=body, headers=headers)).raise_for_status()
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        async def worker(offset: int) -> None:
            nonlocal done
            client = clients[offset % len(clients)]
            i = offset
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                response = await client.post(path, content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                done += per_request
                if len(samples) < 3:
                    samples.append((body, response.json()))
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return done / elapsed, elapsed, samples


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (from /proc), plus this process's own."""
    import resource

    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    own = resource.getrusage(resource.RUSAGE_SELF)
    return total + own.ru_utime + own.ru_stime


def start_servers(count: int, env: dict[str, str], factory: str) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """``count`` single-process uvicorn servers on free loopback ports.

    Separate processes rather than ``uvicorn --workers``: with uvicorn's worker processes every
    request took ~44 ms here even for a trivial ASGI app (1.6 ms with one process), the pattern
    of Nagle's algorithm meeting delayed ACKs; that would measure TCP, not the service. A
    deployment balances over processes behind a proxy the same way.
    """
    import httpx

    servers, bases = [], []
    for _ in range(count):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [
            sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        servers.append(subprocess.Popen(command, env={**env, "BENCH_BASE_URL": base}, cwd=ROOT))
        bases.append(base)
    for base in bases:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            stop_servers(servers)
            raise SystemExit("server did not start")
    return servers, bases


def stop_servers(servers: list[subprocess.Popen[bytes]]) -> None:
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="server processes (one uvicorn each)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each mode")
    parser.add_argument("--batch", type=int, default=1000, help="blinded inputs per batch request")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (single mode)")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="requests in flight (batched mode)")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in a temp dir)")
    args = parser.parse_args()

    from ldn.localization import envelope, oprf
    from ldn.localization.envelope import b64url_encode
    from ldn.localization.prs.keys import PrsKeyring

    workdir = Path(tempfile.mkdtemp(prefix="ldn-bench-prs-"))
    master_hex = os.urandom(32).hex()
    env, recipient_key = prepare(workdir, args.database_url, master_hex)
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    servers, bases = start_servers(args.workers, env, "bench.localization_prs_http:server_app")
    try:
        print(f"machine: {machine()}")
        print(f"server: PRS alone, {args.workers} uvicorn process(es) on {', '.join(bases)} (loopback)")
        print(f"load average before: {os.getloadavg()}")
        # Blinded inputs are uniformly random group elements: HashToGroup of distinct strings
        # is as good as blinding real identifiers, and much faster to prepare.
        inputs = [b64url_encode(oprf.hash_to_group(i.to_bytes(4, "big"))) for i in range(max(args.batch * 4, 2000))]
        single = [
            json.dumps(
                {"blinded_input": v, "recipient_organization": RECIPIENT[0], "recipient_scope": RECIPIENT[1]}
            ).encode()
            for v in inputs[:2000]
        ]
        batches = [
            json.dumps(
                {
                    "blinded_inputs": inputs[k : k + args.batch],
                    "recipient_organization": RECIPIENT[0],
                    "recipient_scope": RECIPIENT[1],
                }
            ).encode()
            for k in range(0, len(inputs) - args.batch + 1, args.batch)
        ]
        pids = [server.pid for server in servers]
        cpu_before = cpu_seconds(pids)
        single_rate, single_time, single_samples = asyncio.run(
            drive(bases, "/evaluate", single, seconds=args.seconds, concurrency=args.concurrency, per_request=1)
        )
        single_cpu = cpu_seconds(pids) - cpu_before
        cpu_before = cpu_seconds(pids)
        batch_rate, batch_time, batch_samples = asyncio.run(
            drive(
                bases,
                "/evaluate/batch",
                batches,
                seconds=args.seconds,
                concurrency=args.batch_concurrency,
                per_request=args.batch,
            )
        )
        batch_cpu = cpu_seconds(pids) - cpu_before
        print(f"load average after: {os.getloadavg()}")

        # Correctness of a sample: the recipient opens the envelope; it is skS * input.
        key = PrsKeyring(bytes.fromhex(master_hex)).oprf_private_key(*RECIPIENT, 1)
        body, answer = single_samples[0]
        element = envelope.open_evaluated_output(answer["evaluated_output"], recipient_key)
        blinded = envelope.b64url_decode(json.loads(body)["blinded_input"])
        assert element == oprf.blind_evaluate(key, blinded), "wrong evaluation"
        body, answer = batch_samples[0]
        first = envelope.open_evaluated_output(answer["evaluated_outputs"][0], recipient_key)
        assert first == oprf.blind_evaluate(key, envelope.b64url_decode(json.loads(body)["blinded_inputs"][0]))

        # CPU accounting: what one evaluation costs in CPU time (servers + this load generator),
        # and so what the 2 cores deliver when nothing else runs on them.
        cores = os.cpu_count() or 2
        single_capacity = single_rate * single_time / single_cpu * cores
        batch_capacity = batch_rate * batch_time / batch_cpu * cores
        print()
        print("| mode | evaluations/s (wall clock) | CPU per evaluation (server + client) | capacity of the cores |")
        print("|---|---|---|---|")
        print(
            f"| single `POST /evaluate`, {args.concurrency} in flight | {single_rate:,.0f} | "
            f"{single_cpu / (single_rate * single_time) * 1e6:,.0f} µs | {single_capacity:,.0f}/s |"
        )
        print(
            f"| batched `POST /evaluate/batch` ({args.batch} per request), {args.batch_concurrency} in flight | "
            f"{batch_rate:,.0f} | {batch_cpu / (batch_rate * batch_time) * 1e6:,.0f} µs | {batch_capacity:,.0f}/s |"
        )
        verdict = "meets" if batch_rate >= 5000 else "MISSES"
        print(f"\nbatched: {batch_rate:,.0f} evaluations/s wall clock ({verdict} the 5,000/s target)")
        print(f"batched capacity of {cores} otherwise idle cores (from CPU time): {batch_capacity:,.0f}/s")
    finally:
        stop_servers(servers)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
