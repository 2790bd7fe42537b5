"""`ldn query`, `ldn refer`, `ldn inbox`: what they send (to the professional's own node, with a Dezi
declaration) and how they show the answer. The answers are real ones from the shared network."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ldn.cli import app
from ldn.network.runtime import write_network_json
from ldn.patterns import cli as patterns_cli
from ldn.patterns.driver import NetworkDriver
from ldn.patterns.identity import authenticator_for
from tests.patterns.conftest import GP, GP_DOCTOR, HOSPITAL, INTERNIST, node_ctx

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANNA = "999990007"


class Recorder:
    """Stands in for the HTTP call: remembers what the command sent, answers a real answer."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, str, Any]] = []

    async def __call__(self, uzi: str, method: str, path: str, body: Any = None) -> httpx.Response:
        self.calls.append((uzi, method, path, body))
        return self.answer


async def _invoke(args: list[str]) -> Any:
    # The command runs its own event loop: in a thread, next to the test's.
    return await asyncio.to_thread(CliRunner().invoke, app, args)


async def test_query_command(driver: NetworkDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    await driver.permit_all(ANNA)
    recorder = Recorder(await driver.query(INTERNIST, ANNA, categories=["Condition"]))
    monkeypatch.setattr(patterns_cli, "_call", recorder)
    result = await _invoke(["query", "--as", INTERNIST, "--patient", ANNA, "--category", "Condition"])
    assert result.exit_code == 0, result.output
    assert recorder.calls == [
        (INTERNIST, "POST", "/patterns/query", {"as": INTERNIST, "patient": ANNA, "categories": ["Condition"]})
    ]
    assert "Huisartsenpraktijk De Linde" in result.output and "ok" in result.output and "Condition" in result.output
    assert ANNA not in result.output
    as_json = await _invoke(["query", "--as", INTERNIST, "--patient", ANNA, "--json"])
    assert json.loads(as_json.output)["resourceType"] == "Bundle"
    bad = await _invoke(["query", "--as", INTERNIST, "--patient", "123456789"])
    assert bad.exit_code == 2


async def test_refer_and_inbox_commands(driver: NetworkDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = await driver.refer(GP_DOCTOR, HOSPITAL, ANNA, "ziekenhuiszorg")
    recorder = Recorder(sent)
    monkeypatch.setattr(patterns_cli, "_call", recorder)
    result = await _invoke(
        ["refer", "--as", GP_DOCTOR, "--to", HOSPITAL, "--patient", ANNA, "--service", "ziekenhuiszorg", "--days", "7"]
    )
    assert result.exit_code == 0, result.output
    assert recorder.calls[0][2] == "/patterns/referrals"
    assert recorder.calls[0][3] == {
        "as": GP_DOCTOR,
        "to": HOSPITAL,
        "patient": ANNA,
        "service": "ziekenhuiszorg",
        "restriction_days": 7,
    }
    assert sent.json()["id"] in result.output and "requested" in result.output
    inbox = Recorder(await driver.inbox(INTERNIST))
    monkeypatch.setattr(patterns_cli, "_call", inbox)
    listed = await _invoke(["inbox", "--as", INTERNIST])
    assert listed.exit_code == 0, listed.output
    assert "Huisartsenpraktijk De Linde" in listed.output and ANNA not in listed.output and "*******07" in listed.output
    item = next(
        e["resource"]["id"]
        for e in (await driver.inbox(INTERNIST)).json()["entry"]
        if e["resource"]["focus"]["reference"] == f"Task/{sent.json()['id']}"
    )
    pulled = Recorder(await driver.act(INTERNIST, item, "pull"))
    monkeypatch.setattr(patterns_cli, "_call", pulled)
    result = await _invoke(["inbox", "--as", INTERNIST, "--pull", item])
    assert result.exit_code == 0 and f"pulled from {GP}: ok" in result.output
    assert pulled.calls[0][2] == f"/patterns/inbox/{item}/pull"
    both = await _invoke(["inbox", "--as", INTERNIST, "--pull", item, "--accept", item])
    assert both.exit_code == 2


async def test_refusals_are_shown_with_their_reason(driver: NetworkDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = await driver.refer(GP_DOCTOR, "00000099", ANNA, "ziekenhuiszorg")
    monkeypatch.setattr(patterns_cli, "_call", Recorder(refused))
    result = await _invoke(
        ["refer", "--as", GP_DOCTOR, "--to", "00000099", "--patient", ANNA, "--service", "ziekenhuiszorg"]
    )
    assert result.exit_code == 1 and "422 unknown-receiver" in result.output


async def test_the_call_goes_to_the_professionals_node_with_a_valid_declaration(
    driver: NetworkDriver, net: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_network_json(net.directory, net.settings.data_dir)
    monkeypatch.setenv("LDN_DATA_DIR", str(net.settings.data_dir))
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": []})

    monkeypatch.setattr(
        patterns_cli, "http_client", lambda *a, **k: httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    response = await asyncio.to_thread(
        asyncio.run, patterns_cli._call(GP_DOCTOR, "POST", "/patterns/query", {"as": GP_DOCTOR})
    )
    assert response.status_code == 200
    assert str(seen[0].url) == f"{driver.node_url(GP)}/patterns/query"
    declaration = seen[0].headers["authorization"].removeprefix("Bearer ")
    professional = await authenticator_for(node_ctx(net, GP), GP).verify(declaration, claimed_uzi=GP_DOCTOR)
    assert professional.organization_ura == GP and professional.role == "01.015"
