"""Authorization benchmark: latency the enforcement point adds to a node FHIR request, p50/p99.

    python bench/authz_pep.py                    # SQLite, 300 requests per variant
    python bench/authz_pep.py --requests 1000
    python bench/authz_pep.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ldn_bench

The same request, `GET /nodes/00000020/fhir/Condition?patient.identifier=<bsn>` by a hospital
internist (real node token, DPoP-free Bearer), is sent through the embedded network in-process
(httpx ASGI transport, no sockets), one at a time, in four variants, interleaved round by round so
that machine noise hits all of them alike:

- bypass: the enforcement point switched off (only the token checks of the FHIR API);
- PEP, cached decision: the consent closed question over HTTP (the node's own national token,
  DPoP-bound, introspected and replay-checked at the consent service; in-process here, so no
  network round trip) plus the policy decision answered from the decision cache;
- PEP, uncached decision: the same with the decision cache emptied before each request, so
  the Rego policies are evaluated every time;
- enforce() alone: `PolicyEnforcementPoint.decide` called directly (no HTTP request around it),
  cached, as a check on the difference above.

The added latency is the PEP variant's percentile minus the bypass variant's percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.common import embedded_network, machine, percentile  # noqa: E402

GP, HOSPITAL, INTERNIST, BRAM = "00000020", "00000040", "900000031", "999990019"
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


def figures(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "mean": sum(ms) / len(ms)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from ldn.auth.client import TokenClient
    from ldn.auth.trust_store import trust_store
    from ldn.authz.pep import pep_for
    from ldn.consent.model import ChoiceSource
    from ldn.consent.register import Actor
    from ldn.consent.schemas import ChoiceDraft

    network = embedded_network(args.database_url)
    async with network.app.router.lifespan_context(network.app):
        transport = httpx.ASGITransport(app=network.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client:
            register = network.apps["consent"].state.ctx.extras["consent_register"]
            permit = {"holder": "any", "requester": "any", "data_category": "GGC002", "decision": "permit"}
            await register.record_choices(
                BRAM,
                [ChoiceDraft.model_validate(permit)],
                source=ChoiceSource.CITIZEN,
                actor=Actor(recorded_by="citizen", client_id="bench"),
            )
            pki = Path(os.environ["LDN_AUTH_PKI_DIR"])
            tokens = TokenClient(trust_store(pki, network.topology).credential(HOSPITAL), client, use_dpop=False)
            endpoint = f"{network.directory.node_url(GP)}/auth/token"
            token = await tokens.token(endpoint, "fhir:read", user_id=INTERNIST)
            url = f"{network.directory.node_url(GP)}/fhir/Condition?patient.identifier={BSN_SYSTEM}|{BRAM}"
            headers = token.headers("GET", url)
            ctx = network.apps[f"node-{GP}"].state.ctx
            pep = pep_for(ctx)

            async def get() -> float:
                t0 = time.perf_counter()
                response = await client.get(url, headers=headers)
                elapsed = time.perf_counter() - t0
                assert response.status_code == 200, response.text
                return elapsed

            async def bypass() -> float:
                ctx.extras["authz_pep"] = "disabled"
                try:
                    return await get()
                finally:
                    ctx.extras["authz_pep"] = pep

            async def cached() -> float:
                return await get()

            async def uncached() -> float:
                pep.engine.cache.clear()
                return await get()

            request = httpx.Request("GET", url)  # for enforce() alone: a Starlette request is built below
            from starlette.requests import Request

            from ldn.auth.resource_server import Caller

            caller = Caller(
                client_id=HOSPITAL,
                organization_ura=HOSPITAL,
                organization_name="Ziekenhuis Rijnstad",
                scopes=frozenset({"fhir:read"}),
                user_id=INTERNIST,
                user_role="01.016",
            )
            scope = {
                "type": "http",
                "method": "GET",
                "path": request.url.path,
                "root_path": "",
                "query_string": request.url.query,
                "headers": [],
                "scheme": "http",
                "server": ("bench.local", 80),
            }

            async def enforce_only() -> float:
                t0 = time.perf_counter()
                decision = await pep.decide(
                    Request(dict(scope)),
                    caller,
                    resource_type="Condition",
                    interaction="search-type",
                    patient_bsn=BRAM,
                    patient_id=None,
                    categories={"Condition"},
                )
                elapsed = time.perf_counter() - t0
                assert decision.allow, decision.reasons
                return elapsed

            variants = {"bypass": bypass, "pep_cached": cached, "pep_uncached": uncached, "enforce_only": enforce_only}
            for fn in variants.values():  # warm-up: tokens, introspection caches, interpreters, pools
                for _ in range(20):
                    await fn()
            samples: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.requests):
                for name, fn in variants.items():
                    samples[name].append(await fn())
            return {name: figures(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests per variant")
    parser.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"database: {'SQLite' if args.database_url is None else args.database_url.split('@')[-1]}")
    result = asyncio.run(run(args))
    print()
    print(f"{'variant':<14} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, fig in result.items():
        print(f"{name:<14} {fig['p50']:>8.2f} {fig['p99']:>8.2f} {fig['mean']:>8.2f}")
    base = result["bypass"]
    for name in ("pep_cached", "pep_uncached"):
        fig = result[name]
        print(
            f"added by the PEP ({name.removeprefix('pep_')} decision): p50 {fig['p50'] - base['p50']:+.2f} ms, "
            f"p99 {fig['p99'] - base['p99']:+.2f} ms"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
