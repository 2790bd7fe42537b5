"""The one HTTP client helper every service uses to call another.

In the embedded network all services live in one process: calls to the network's own origin go
through an in-process ASGI transport (no sockets, same code path). Calls elsewhere use real
sockets, with the caller's TLS client certificate when mutual TLS is on. Every outgoing request
carries a W3C `traceparent` (a child span of the current request) and the current request id.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.types import ASGIApp

from ldn.core.logging import outgoing_traceparent, request_id_var


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends requests for known origins to in-process ASGI apps, the rest over the network."""

    def __init__(self, local: Mapping[str, ASGIApp], network: httpx.AsyncBaseTransport) -> None:
        self._local = {origin_of(o): httpx.ASGITransport(app=app) for o, app in local.items()}
        self._network = network

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._local.get(origin_of(str(request.url)))
        if transport is not None:
            return await transport.handle_async_request(request)
        return await self._network.handle_async_request(request)

    async def aclose(self) -> None:
        await self._network.aclose()


async def _add_context_headers(request: httpx.Request) -> None:
    request.headers["traceparent"] = outgoing_traceparent()
    request_id = request_id_var.get()
    if request_id:
        request.headers["X-Request-Id"] = request_id


class HttpClientFactory:
    """Builds (and pools) httpx clients bound to the network's routing and TLS settings."""

    def __init__(
        self,
        *,
        local_apps: Mapping[str, ASGIApp] | None = None,
        timeout: float = 10.0,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        self.local_apps: dict[str, ASGIApp] = dict(local_apps or {})
        self.timeout = timeout
        self.verify = verify
        self._clients: dict[Any, httpx.AsyncClient] = {}

    def register_local(self, origin: str, app: ASGIApp) -> None:
        """Route calls for `origin` in-process (must happen before the first client is made)."""
        self.local_apps[origin] = app

    def client(self, *, cert: tuple[str, str] | None = None) -> httpx.AsyncClient:
        """A pooled async client; one per client certificate."""
        key = cert
        existing = self._clients.get(key)
        if existing is not None and not existing.is_closed:
            return existing
        verify: ssl.SSLContext | str | bool = self.verify
        if cert is not None:
            context = ssl.create_default_context(cafile=self.verify if isinstance(self.verify, str) else None)
            if isinstance(self.verify, ssl.SSLContext):
                context = self.verify
            context.load_cert_chain(cert[0], cert[1])
            verify = context
        network = httpx.AsyncHTTPTransport(verify=verify, retries=0)
        client = httpx.AsyncClient(
            transport=RoutingTransport(self.local_apps, network),
            timeout=self.timeout,
            event_hooks={"request": [_add_context_headers]},
            follow_redirects=False,
        )
        self._clients[key] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
