"""Subscriptions (FHIR R4, rest-hook) and the delivery outbox: a receiver that is down misses
nothing; every notification arrives once and in order when it is back."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from ldn.consent.notifications import backoff_delay
from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from ldn.core.topology import Topology

from .service_helpers import CITIZEN_BSN, GP, OPERATOR, OTHER_CITIZEN_BSN, PHARMACIST, PHARMACY, ConsentApi

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


@pytest.fixture
async def network(
    monkeypatch: pytest.MonkeyPatch, settings: CoreSettings, topology: Topology, database: Database
) -> AsyncIterator[object]:
    """The embedded network with a fast outbox (delivery rounds and retries in tens of milliseconds)."""
    from ldn.network.runtime import build_network
    from tests.conftest import NETWORK_BASE

    monkeypatch.setenv("LDN_CONSENT_OUTBOX_INTERVAL", "0.05")
    monkeypatch.setenv("LDN_CONSENT_OUTBOX_BACKOFF_BASE", "0.05")
    monkeypatch.setenv("LDN_CONSENT_OUTBOX_BACKOFF_CAP", "0.2")
    monkeypatch.setenv("LDN_CONSENT_DELIVERY_TIMEOUT", "2")
    net = build_network(settings, topology, database, base_url=NETWORK_BASE)
    async with net.app.router.lifespan_context(net.app):
        yield net


@pytest.fixture
def api(client: httpx.AsyncClient, network: Any) -> ConsentApi:
    return ConsentApi(client, network)


class Receiver:
    """A rest-hook receiver on a real loopback socket that can answer 503, stop and come back."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.accepted: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.refused = 0
        self.failing = False
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        body = await request.body()
        if self.failing:
            self.refused += 1
            await Response(status_code=503)(scope, receive, send)
            return
        self.accepted.append((dict(request.headers), json.loads(body)))
        await Response(status_code=200)(scope, receive, send)

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def subscription(endpoint: str, bsn: str = CITIZEN_BSN, **channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Medicatieoverdracht: toestemming volgen",
        "criteria": f"Consent?patient:identifier={BSN_SYSTEM}|{bsn}",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json", **channel},
    }


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def test_outbox_delivers_everything_once_and_in_order_across_an_outage(
    api: ConsentApi, receiver: Receiver
) -> None:
    pharmacy = await api.provider(PHARMACY, scope="consent:subscribe", user=PHARMACIST)
    created = await api.client.post(
        f"{api.base}/Subscription",
        json=subscription(receiver.url, header=["Authorization: Bearer receiver-secret"]),
        headers=pharmacy,
    )
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["status"] == "active" and sub["id"]
    assert created.headers["location"].endswith(f"/Subscription/{sub['id']}")

    citizen = await api.citizen()
    url = f"{api.base}/citizen/choices"
    choice = {"holder": f"ura:{GP}", "requester": "type:J8", "data_category": "GGC013", "decision": "permit"}

    # 1. Receiver up: delivered.
    choice_id = (await api.client.post(url, headers=citizen, json={"choices": [choice]})).json()["choices"][0]["id"]
    await eventually(lambda: len(receiver.accepted) == 1)

    # 2. Receiver answers 503: kept and retried, the subscription shows the error.
    receiver.failing = True
    await api.client.put(f"{url}/{choice_id}", headers=citizen, json={**choice, "decision": "deny"})
    await eventually(lambda: receiver.refused >= 2)
    read = await api.client.get(f"{api.base}/Subscription/{sub['id']}", headers=pharmacy)
    assert read.json()["status"] == "error" and "503" in read.json()["error"]

    # 3. Receiver gone (connection refused): more changes queue up behind the failing one.
    await receiver.stop()
    await api.client.post(f"{api.base}/citizen/opt-out/primary", headers=citizen)
    await api.client.delete(f"{url}/{choice_id}", headers=citizen)
    await asyncio.sleep(0.3)  # several failed rounds against a closed port
    assert len(receiver.accepted) == 1

    # 4. Back up: everything arrives, once, in order.
    receiver.failing = False
    await receiver.start()
    await eventually(lambda: len(receiver.accepted) == 4)
    await asyncio.sleep(0.3)  # and nothing more (no duplicates)
    assert len(receiver.accepted) == 4

    events = [int(h["x-ldn-event"]) for h, _ in receiver.accepted]
    assert events == sorted(events) and len(set(events)) == 4
    assert all(h["x-ldn-subscription"] == sub["id"] for h, _ in receiver.accepted)
    assert all(h["authorization"] == "Bearer receiver-secret" for h, _ in receiver.accepted)
    assert all(h["content-type"] == "application/fhir+json" for h, _ in receiver.accepted)

    bundles = [b for _, b in receiver.accepted]
    for bundle in bundles:
        Bundle.model_validate(bundle)
        assert bundle["type"] == "history" and len(bundle["entry"]) == 1
    resources = [b["entry"][0]["resource"] for b in bundles]
    assert [(r["id"], r["meta"]["versionId"], r["status"]) for r in resources] == [
        (choice_id, "1", "active"),
        (choice_id, "2", "active"),
        (resources[2]["id"], "1", "active"),
        (choice_id, "3", "inactive"),
    ]
    assert resources[0]["provision"]["type"] == "permit" and resources[1]["provision"]["type"] == "deny"
    assert resources[2]["category"][0]["coding"][0]["code"] == "primary-use"
    assert all(r["patient"]["identifier"] == {"system": BSN_SYSTEM, "value": CITIZEN_BSN} for r in resources)
    assert [b["entry"][0]["request"]["method"] for b in bundles] == ["POST", "PUT", "PUT", "PUT"]

    status = (await api.client.get(f"{api.base}/Subscription/{sub['id']}", headers=pharmacy)).json()["status"]
    assert status == "active"
    counts = (
        await api.network.apps["consent"]
        .state.ctx.extras["consent_register"]
        .database.run(
            lambda s: dict(s.execute(text("SELECT state, count(*) FROM consent_outbox GROUP BY state")).all())
        )
    )
    assert counts == {"delivered": 4}


async def test_other_patients_changes_are_not_sent(api: ConsentApi, receiver: Receiver) -> None:
    pharmacy = await api.provider(PHARMACY, scope="consent:subscribe", user=PHARMACIST)
    await api.client.post(f"{api.base}/Subscription", json=subscription(receiver.url), headers=pharmacy)
    other = await api.citizen(OTHER_CITIZEN_BSN)
    await api.client.post(f"{api.base}/citizen/opt-out/secondary", headers=other)
    await api.client.post(f"{api.base}/citizen/opt-out/secondary", headers=await api.citizen())
    await eventually(lambda: len(receiver.accepted) == 1)
    await asyncio.sleep(0.2)
    assert len(receiver.accepted) == 1
    resource = receiver.accepted[0][1]["entry"][0]["resource"]
    assert resource["patient"]["identifier"]["value"] == CITIZEN_BSN


async def test_ending_a_subscription_stops_and_cancels_delivery(api: ConsentApi, receiver: Receiver) -> None:
    pharmacy = await api.provider(PHARMACY, scope="consent:subscribe", user=PHARMACIST)
    sub = (await api.client.post(f"{api.base}/Subscription", json=subscription(receiver.url), headers=pharmacy)).json()
    receiver.failing = True
    citizen = await api.citizen()
    await api.client.post(f"{api.base}/citizen/opt-out/secondary", headers=citizen)
    await eventually(lambda: receiver.refused >= 1)

    gp = await api.provider(GP, scope="consent:subscribe")
    not_theirs = await api.client.delete(f"{api.base}/Subscription/{sub['id']}", headers=gp)
    assert not_theirs.status_code == 404
    assert (await api.client.get(f"{api.base}/Subscription/{sub['id']}", headers=gp)).status_code == 404

    ended = await api.client.delete(f"{api.base}/Subscription/{sub['id']}", headers=pharmacy)
    assert ended.status_code == 204
    receiver.failing = False
    await api.client.delete(f"{api.base}/citizen/opt-out/secondary", headers=citizen)
    await asyncio.sleep(0.3)
    assert receiver.accepted == []
    shown = (await api.client.get(f"{api.base}/Subscription/{sub['id']}", headers=pharmacy)).json()
    assert shown["status"] == "off"
    # The operator may end any subscription.
    other = (
        await api.client.post(f"{api.base}/Subscription", json=subscription(receiver.url), headers=pharmacy)
    ).json()
    operator = await api.provider(OPERATOR, scope="consent:admin", user=None)
    assert (await api.client.delete(f"{api.base}/Subscription/{other['id']}", headers=operator)).status_code == 204


async def test_invalid_subscriptions_are_refused(api: ConsentApi, receiver: Receiver) -> None:
    pharmacy = await api.provider(PHARMACY, scope="consent:subscribe", user=PHARMACIST)
    url = f"{api.base}/Subscription"
    ok = subscription(receiver.url)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("websocket channel", {**ok, "channel": {**ok["channel"], "type": "websocket"}}, "not-supported"),
        ("email channel", {**ok, "channel": {**ok["channel"], "type": "email"}}, "not-supported"),
        ("unknown channel", {**ok, "channel": {**ok["channel"], "type": "pigeon"}}, "not-supported"),
        ("no payload", {**ok, "channel": {k: v for k, v in ok["channel"].items() if k != "payload"}}, "not-supported"),
        ("other resource", {**ok, "criteria": f"Observation?patient:identifier={BSN_SYSTEM}|{CITIZEN_BSN}"}, "invalid"),
        ("extra criteria", {**ok, "criteria": ok["criteria"] + "&status=active"}, "invalid"),
        ("other system", {**ok, "criteria": f"Consent?patient:identifier=urn:x|{CITIZEN_BSN}"}, "invalid"),
        ("invalid BSN", {**ok, "criteria": f"Consent?patient:identifier={BSN_SYSTEM}|999990018"}, "value"),
        ("foreign endpoint", subscription("https://evil.example.org/hook"), "security"),
        ("metadata endpoint", subscription("http://169.254.169.254/latest/meta-data"), "security"),
        ("credentials in URL", subscription(f"http://user:pw@127.0.0.1:{receiver.port}/hook"), "invalid"),
        ("not http", subscription("file:///etc/passwd"), "invalid"),
        ("reserved header", subscription(receiver.url, header=["Host: evil"]), "invalid"),
        ("header injection", subscription(receiver.url, header=["X-A: b\r\nX-B: c"]), "invalid"),
        ("ended already", {**ok, "end": "2020-01-01T00:00:00Z"}, "invalid"),
        ("not requested", {**ok, "status": "off"}, "invalid"),
        ("not a Subscription", {"resourceType": "Consent"}, "invalid"),
    ]
    for name, body, code in cases:
        response = await api.client.post(url, json=body, headers=pharmacy)
        assert response.status_code == 400, (name, response.text)
        assert response.json()["issue"][0]["code"] == code, (name, response.text)
        assert CITIZEN_BSN not in response.json()["issue"][0]["diagnostics"] or name == "invalid BSN"
    no_scope = await api.client.post(url, json=ok, headers=await api.provider(PHARMACY, user=PHARMACIST))
    assert no_scope.status_code == 403
    citizen = await api.client.post(url, json=ok, headers=await api.citizen())
    assert citizen.status_code == 403
    # The network's own origin is allowed (a node's notification endpoint, say).
    own = await api.client.post(
        url, json=subscription(f"{api.network.directory.node_url(PHARMACY)}/hook"), headers=pharmacy
    )
    assert own.status_code == 201


def test_backoff_is_exponential_and_capped() -> None:
    assert [backoff_delay(n, 1.0, 30.0) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_delay(100, 0.5, 300.0) == 300.0
