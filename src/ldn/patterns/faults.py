"""Fault injection for the embedded network: a holder that is down, hangs, or answers garbage.

Used by `ldn demo`, the tests and the benchmarks, never by a running node. In the embedded network
every node is an app mounted at `/nodes/<URA>` on the root app; a fault swaps that mount's app for
a wrapper, and restoring puts the node back:

- `down`: every request to the node is answered `503 Service Unavailable` with an
  OperationOutcome and `Retry-After`, as a load balancer in front of a stopped node answers (its
  token endpoint included);
- `hang`: the node's FHIR API never answers (its token endpoint still does): a slow holder;
- `garbage`: the node's FHIR API answers `200` with a body that is not FHIR.

Nothing about the node itself changes: its data, tokens and audit log stay as they were.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Fault", "FaultyNode", "holder_fault"]

Fault = Literal["down", "hang", "garbage"]


class FaultyNode:
    """An ASGI wrapper around a node app that misbehaves in one of the `Fault` ways."""

    def __init__(self, app: ASGIApp, ura: str, fault: Fault) -> None:
        self.app = app
        self.ura = ura
        self.fault = fault

    def _fhir(self, scope: Scope) -> bool:
        path = str(scope.get("path", ""))
        return path.split(f"/nodes/{self.ura}", 1)[-1].startswith("/fhir")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.fault == "down":
            await _answer(send, 503, _outcome("transient", "the node is down"), {"retry-after": "30"})
        elif self.fault == "hang" and self._fhir(scope):
            await asyncio.Event().wait()  # until the caller gives up (cancellation)
        elif self.fault == "garbage" and self._fhir(scope):
            await _answer(send, 200, b'{"this": "is not FHIR", "entry": 42}', {"content-type": "application/fhir+json"})
        else:
            await self.app(scope, receive, send)


def _outcome(code: str, text: str) -> bytes:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return json.dumps(body).encode()


async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = {"content-type": "application/fhir+json", **headers, "content-length": str(len(body))}
    await send(
        {"type": "http.response.start", "status": status, "headers": [(k.encode(), v.encode()) for k, v in raw.items()]}
    )
    await send({"type": "http.response.body", "body": body})


def _mount(network: Any, ura: str) -> Mount:
    for route in network.app.router.routes:
        if isinstance(route, Mount) and route.name == f"node-{ura}":
            return route
    raise LookupError(f"no node {ura} is mounted in this network")


@contextmanager
def holder_fault(network: Any, ura: str, fault: Fault) -> Iterator[None]:
    """Make node `ura` of an embedded network misbehave for the duration of the block."""
    mount = _mount(network, ura)
    original = mount.app
    mount.app = FaultyNode(original, ura, fault)
    try:
        yield
    finally:
        mount.app = original
