"""Benchmark: token requests per second (full chain validation, signatures, replay store) and
introspection per second, cached and uncached. Runs in one process on one event loop (one core).

    python bench/auth_tokens.py [--tokens 600] [--calls 5000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import embedded_network, machine


async def run(args: argparse.Namespace) -> None:
    from ldn.auth.client import TokenClient
    from ldn.auth.resource_server import resource_server_for
    from ldn.auth.token_service import CLIENT_ASSERTION_TYPE, JWT_BEARER
    from ldn.auth.trust_store import trust_store

    network = embedded_network(args.database_url)
    base = "http://bench.local"
    async with (
        network.app.router.lifespan_context(network.app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=network.app), base_url=base) as http,
    ):
        import os

        store = trust_store(Path(os.environ["LDN_AUTH_PKI_DIR"]), network.topology)
        tokens = TokenClient(store.credential("00000020"), http, use_dpop=False)
        endpoint = f"{base}/auth/token"
        # Assertions are made before timing: we measure the server, not the client's signing.
        forms = [
            {
                "grant_type": JWT_BEARER,
                "assertion": tokens.assertion(f"{base}/auth", user_id="900000011"),
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": tokens.client_assertion(endpoint),
                "scope": "nvi:read",
            }
            for _ in range(args.tokens)
        ]
        await http.post(endpoint, data=forms.pop())  # warm up
        started = time.perf_counter()
        issued = []
        for form in forms:
            response = await http.post(endpoint, data=form)
            assert response.status_code == 200, response.text
            issued.append(response.json()["access_token"])
        elapsed = time.perf_counter() - started
        print(
            f"token requests: {len(forms)} in {elapsed:.2f} s = {len(forms) / elapsed:.0f}/s "
            "(x5c chain + CRL validation, 2 ES256 verifications, 2 jti inserts, token insert)"
        )

        rs = resource_server_for(network.apps["registry"].state.ctx)
        token = issued[0]
        await rs.introspect(token)
        started = time.perf_counter()
        for _ in range(args.calls):
            await rs.introspect(token)
        elapsed = time.perf_counter() - started
        print(f"introspection, cached: {args.calls} in {elapsed:.3f} s = {args.calls / elapsed:,.0f}/s")

        whoami = f"{base}/auth/whoami"
        headers = {"Authorization": f"Bearer {token}"}
        n = max(1, args.calls // 5)
        started = time.perf_counter()
        for _ in range(n):
            assert (await http.get(whoami, headers=headers)).status_code == 200
        elapsed = time.perf_counter() - started
        print(f"protected request end to end (HTTP, cached introspection): {n / elapsed:,.0f}/s")

        n = min(len(issued), max(1, args.calls // 10))
        started = time.perf_counter()
        for value in issued[:n]:
            rs.cache._items.clear()
            data = await rs.introspect(value)
            assert data["active"] is True
        elapsed = time.perf_counter() - started
        print(f"introspection, uncached (HTTP round trip + client authentication): {n / elapsed:,.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=600)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"database: {args.database_url or 'SQLite (temporary file, WAL)'}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
