"""Driving an embedded network as its users would: professionals, citizens, and a failing holder.

`NetworkDriver` wraps a built network (`ldn.network.runtime.Network`) and an HTTP client for it.
It speaks only the public HTTP APIs: a professional's node API with their Dezi declaration (issued
with the local Dezi test key, as `ldn token --as` does), the consent service's citizen API with a
citizen token from the test citizen login, the audit service as its supervisor. The demo, the tests
and the benchmarks use it, so what they show is what a client of the network would see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from ldn.auth.client import TokenClient
from ldn.auth.dezi_service import dezi_issuer, issue_declaration_for
from ldn.auth.settings import AuthSettings
from ldn.auth.trust_store import trust_store
from ldn.core.logging import TraceContext
from ldn.patterns.client import client_for
from ldn.patterns.faults import Fault, holder_fault

__all__ = ["NetworkDriver"]


class NetworkDriver:
    """Helpers bound to one embedded network and a client that reaches it."""

    def __init__(self, network: Any, http: httpx.AsyncClient) -> None:
        self.network = network
        self.http = http
        self._declarations: dict[str, str] = {}

    # ---- readiness ----------------------------------------------------------------------------

    async def ready(self, timeout: float = 60.0) -> None:
        """Wait until every node's address book is loaded and its holdings are at the NVI."""
        async with asyncio.timeout(timeout):
            nodes = [(ura, self.network.apps[f"node-{ura}"].state.ctx) for ura in self.network.directory.nodes]
            await asyncio.gather(*(client_for(ctx, ura).ensure_replica() for ura, ctx in nodes))
            for _, ctx in nodes:
                task = ctx.extras.get("patterns_nvi_sync")
                if isinstance(task, asyncio.Task):
                    await asyncio.shield(task)

    # ---- who is who ---------------------------------------------------------------------------

    def employer(self, uzi: str) -> str:
        return str(self.network.topology.professional(uzi)[1].ura)

    def declaration(self, uzi: str) -> str:
        if uzi not in self._declarations:
            issuer = dezi_issuer(self.network.settings.data_dir, self.network.directory.service_url("dezi"))
            self._declarations[uzi] = issue_declaration_for(issuer, self.network.topology, uzi)
        return self._declarations[uzi]

    def node_url(self, ura: str) -> str:
        return str(self.network.directory.node_url(ura))

    def _headers(self, uzi: str, trace: TraceContext | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.declaration(uzi)}"}
        if trace is not None:
            headers["traceparent"] = trace.child().header()
        return headers

    # ---- the professional's node API ----------------------------------------------------------

    async def query(
        self,
        uzi: str,
        bsn: str,
        *,
        categories: Sequence[str] | None = None,
        budget_ms: int | None = None,
        holders: Sequence[str] | None = None,
        vital_interest_reason: str | None = None,
        trace: TraceContext | None = None,
        node: str | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"as": uzi, "patient": bsn}
        optional = {
            "categories": list(categories) if categories is not None else None,
            "budget_ms": budget_ms,
            "holders": list(holders) if holders is not None else None,
            "vital_interest_reason": vital_interest_reason,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        url = f"{self.node_url(node or self.employer(uzi))}/patterns/query"
        return await self.http.post(url, json=body, headers=self._headers(uzi, trace))

    async def refer(
        self,
        uzi: str,
        to: str,
        bsn: str,
        service: str,
        *,
        categories: Sequence[str] | None = None,
        restriction_days: int | None = None,
        trace: TraceContext | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"as": uzi, "to": to, "patient": bsn, "service": service}
        if categories is not None:
            body["categories"] = list(categories)
        if restriction_days is not None:
            body["restriction_days"] = restriction_days
        url = f"{self.node_url(self.employer(uzi))}/patterns/referrals"
        return await self.http.post(url, json=body, headers=self._headers(uzi, trace))

    async def referral(self, uzi: str, referral_id: str) -> httpx.Response:
        url = f"{self.node_url(self.employer(uzi))}/patterns/referrals/{referral_id}"
        return await self.http.get(url, headers=self._headers(uzi, None))

    async def cancel(self, uzi: str, referral_id: str, *, trace: TraceContext | None = None) -> httpx.Response:
        url = f"{self.node_url(self.employer(uzi))}/patterns/referrals/{referral_id}/cancel"
        return await self.http.post(url, json={"as": uzi}, headers=self._headers(uzi, trace))

    async def inbox(self, uzi: str) -> httpx.Response:
        url = f"{self.node_url(self.employer(uzi))}/patterns/inbox"
        return await self.http.get(url, headers=self._headers(uzi, None))

    async def act(
        self, uzi: str, referral_id: str, action: str, *, trace: TraceContext | None = None
    ) -> httpx.Response:
        url = f"{self.node_url(self.employer(uzi))}/patterns/inbox/{referral_id}/{action}"
        return await self.http.post(url, json={"as": uzi}, headers=self._headers(uzi, trace))

    # ---- citizens (consent) -------------------------------------------------------------------

    async def citizen_headers(self, bsn: str) -> dict[str, str]:
        url = f"{self.network.directory.service_url('auth')}/citizen/token"
        response = await self.http.post(url, data={"bsn": bsn})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def consent(self, bsn: str, choices: Sequence[Mapping[str, Any]]) -> httpx.Response:
        url = f"{self.network.directory.service_url('consent')}/citizen/choices"
        response = await self.http.post(url, json={"choices": list(choices)}, headers=await self.citizen_headers(bsn))
        response.raise_for_status()
        return response

    async def permit_all(self, bsn: str) -> None:
        """The citizen permits every holder to share treatment data (GGC002 and below) with anyone."""
        await self.consent(
            bsn, [{"holder": "any", "requester": "any", "data_category": "GGC002", "decision": "permit"}]
        )

    async def refuse_holder(self, bsn: str, holder_ura: str) -> None:
        await self.consent(
            bsn,
            [{"holder": f"ura:{holder_ura}", "requester": "any", "data_category": "GGC002", "decision": "deny"}],
        )

    async def opt_out(self, bsn: str, kind: str = "primary") -> None:
        url = f"{self.network.directory.service_url('consent')}/citizen/opt-out/{kind}"
        response = await self.http.post(url, headers=await self.citizen_headers(bsn))
        response.raise_for_status()

    async def overrides(self, bsn: str) -> list[dict[str, Any]]:
        url = f"{self.network.directory.service_url('consent')}/citizen/overrides"
        response = await self.http.get(url, headers=await self.citizen_headers(bsn))
        response.raise_for_status()
        return list(response.json()["overrides"])

    # ---- the audit log, as its supervisor ------------------------------------------------------

    async def audit_events(self, trace_id: str) -> list[dict[str, Any]]:
        operator = self.network.topology.operator_of("audit")
        assert operator is not None
        pki = AuthSettings().resolved_pki_dir(self.network.settings.data_dir)
        credential = trust_store(pki, self.network.topology).credential(operator.ura)
        tokens = TokenClient(credential, self.http, use_dpop=False)
        token = await tokens.token(f"{self.network.directory.service_url('auth')}/token", "audit:read audit:export")
        url = f"{self.network.directory.service_url('audit')}/events"
        events: list[dict[str, Any]] = []
        params: dict[str, str] = {"trace_id": trace_id, "_count": "100"}
        while True:
            response = await self.http.get(url, params=params, headers=token.headers("GET", url))
            response.raise_for_status()
            body = response.json()
            events.extend(body["events"])
            cursor = body.get("next")
            if not cursor or not body["events"]:
                return events
            params["cursor"] = str(cursor)

    # ---- faults -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def fault(self, ura: str, fault: Fault) -> Iterator[None]:
        with holder_fault(self.network, ura, fault):
            yield
