"""Logs are JSON, carry request and trace ids, and never contain a BSN; traceparent propagates."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, Request

from ldn.core.config import CoreSettings
from ldn.core.http import HttpClientFactory
from ldn.core.logging import TraceContext, configure_logging
from ldn.core.service import NetworkDirectory, ServiceContext, create_service_app
from ldn.core.storage import Database
from ldn.core.topology import Topology

BSN = "999990019"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("DEBUG", "json", stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.fixture
def apps(settings: CoreSettings, topology: Topology, database: Database):  # type: ignore[no-untyped-def]
    http = HttpClientFactory()
    directory = NetworkDirectory(services={"upstream": "http://upstream.test"})

    def ctx(name: str, base: str) -> ServiceContext:
        return ServiceContext(name, base, settings, topology, database, http, directory)

    upstream_router = APIRouter()

    @upstream_router.get("/echo")
    async def echo(request: Request) -> dict[str, str | None]:
        return {"traceparent": request.headers.get("traceparent"), "request_id": request.headers.get("x-request-id")}

    caller_router = APIRouter()

    @caller_router.post("/leaky/{value}")
    async def leaky(value: str, request: Request) -> None:
        body = await request.body()
        logging.getLogger("ldn.test").info("got body %s for %s", body.decode(), value)
        raise ValueError(f"could not handle patient {value}")

    @caller_router.get("/call")
    async def call() -> dict[str, object]:
        response = await http.client().get("http://upstream.test/echo")
        return response.json()  # type: ignore[no-any-return]

    upstream = create_service_app(ctx("upstream", "http://upstream.test"), title="up", routers=[upstream_router])
    caller = create_service_app(ctx("caller", "http://caller.test"), title="caller", routers=[caller_router])
    http.register_local("http://upstream.test", upstream)
    return caller


async def test_bsn_never_reaches_log_output(apps, log_stream: io.StringIO) -> None:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=apps, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://caller.test") as c:
        response = await c.post(f"/leaky/{BSN}?identifier=bsn%7C{BSN}", content=json.dumps({"bsn": BSN}))
    assert response.status_code == 500
    output = log_stream.getvalue()
    assert "could not handle patient" in output  # the exception was logged...
    assert "got body" in output
    assert BSN not in output  # ...but never the BSN, from path, query, body or exception
    assert "[BSN]" in output
    for line in output.strip().splitlines():
        json.loads(line)  # every line is one JSON object


async def test_traceparent_accepted_and_propagated(apps, log_stream: io.StringIO) -> None:  # type: ignore[no-untyped-def]
    incoming = TraceContext.new()
    transport = httpx.ASGITransport(app=apps)
    async with httpx.AsyncClient(transport=transport, base_url="http://caller.test") as c:
        response = await c.get("/call", headers={"traceparent": incoming.header(), "x-request-id": "req-123"})
    assert response.status_code == 200
    seen = TraceContext.parse(response.json()["traceparent"])
    assert seen is not None
    assert seen.trace_id == incoming.trace_id  # same trace...
    assert seen.span_id != incoming.span_id  # ...new span
    assert response.json()["request_id"] == "req-123"
    returned = TraceContext.parse(response.headers["traceparent"])
    assert returned is not None and returned.trace_id == incoming.trace_id
    access = [json.loads(line) for line in log_stream.getvalue().splitlines() if '"ldn.access"' in line]
    assert any(e.get("trace_id") == incoming.trace_id and e.get("request_id") == "req-123" for e in access)


def test_invalid_traceparent_starts_a_new_trace() -> None:
    assert TraceContext.parse("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None
    assert TraceContext.parse("garbage") is None
    assert TraceContext.parse("00-" + "a" * 32 + "-" + "b" * 16 + "-01") is not None


async def test_request_id_generated_when_missing_or_invalid(client: httpx.AsyncClient) -> None:
    response = await client.get("/registry/health", headers={"x-request-id": "bad id with spaces"})
    assert response.headers["x-request-id"] != "bad id with spaces"
    assert len(response.headers["x-request-id"]) == 32
