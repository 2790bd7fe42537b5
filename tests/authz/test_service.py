"""The `authz` service: explain and decide for a given input, the policy catalogue, reload; 400 for
input that does not fit the model, 200 with allow=false for a refusal, and the usual refusals of
unauthenticated, unauthorised, replayed and oversized requests."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ldn.authz.pdp import PolicyDecisionPoint
from tests.auth_helpers import token_for
from tests.authz.inputs import GP, PHARMACIST, merge, nvi_search, pull

PARTICIPANT = "00000020"
OPERATOR = "90000905"  # operates authz (and auth)


class Authz:
    def __init__(self, client: httpx.AsyncClient, network: Any) -> None:
        self.client = client
        self.network = network
        self.base = network.directory.service_url("authz")
        self._headers: dict[tuple[str, str], dict[str, str]] = {}

    async def headers(self, org: str = PARTICIPANT, scope: str = "authz:explain") -> dict[str, str]:
        key = (org, scope)
        if key not in self._headers:
            token = await token_for(self.client, self.network, org=org, scope=scope)
            self._headers[key] = {"Authorization": f"Bearer {token.value}"}
        return self._headers[key]

    async def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", None) or await self.headers()
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **headers}
        return await self.client.post(f"{self.base}{path}", content=content, headers=sent, **kw)


@pytest.fixture
def authz(client: httpx.AsyncClient, network: Any) -> Authz:
    return Authz(client, network)


async def test_explain_gives_decision_rules_and_release(authz: Authz) -> None:
    response = await authz.post("/explain", pull(PHARMACIST, "MedicationRequest"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["allow"] is True
    assert body["policy"] == "pull" and body["policy_release"] == "1.1.0"
    assert "pull:consent-permit" in body["rules_matched"] and "policy:pull" in body["rules_matched"]
    assert "data.ldn.authz.pull.allow" in body["true_rules"]
    assert body["agreements"] == ["LAS-TA-AUTHZ-000", "LAS-TA-AUTHZ-001"]
    assert body["decision"]["allow"] is True
    assert response.headers["cache-control"] == "no-store"


async def test_decide_equals_the_decision_point(authz: Authz, pdp: PolicyDecisionPoint) -> None:
    for raw in (pull(GP, "Condition"), pull(PHARMACIST, "Condition"), nvi_search(GP)):
        response = await authz.post("/decide", raw)
        assert response.status_code == 200, response.text
        assert response.json() == pdp.decide(raw).model_dump(mode="json")


async def test_unknown_role_is_a_decision_not_an_error(authz: Authz) -> None:
    for path in ("/decide", "/explain"):
        response = await authz.post(path, pull("99.999", "Condition"))
        assert response.status_code == 200, response.text
        assert response.json()["allow"] is False
        assert "unknown-role" in response.json()["reasons"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(merge(pull(), {"subject": None}), "missing-input:subject", id="missing subject"),
        pytest.param(merge(pull(), {"context": {"service": None}}), "missing-input:context.service", id="no service"),
        pytest.param(
            pull(subject={"subject_role": ["huisarts"]}), "invalid-input:subject.subject_role.0", id="malformed role"
        ),
        pytest.param(pull(context={"ehds_opt_out": True}), "invalid-input:context.ehds_opt_out", id="unknown field"),
        pytest.param(pull(context={"patient_bsn": "123456789"}), "invalid-input:context.patient_bsn", id="bad BSN"),
    ],
)
async def test_input_outside_the_model_is_a_400(authz: Authz, raw: dict[str, Any], code: str) -> None:
    for path in ("/decide", "/explain"):
        response = await authz.post(path, raw)
        assert response.status_code == 400, response.text
        issue = response.json()["issue"][0]
        assert issue["details"]["coding"][0]["code"] == code
        assert "123456789" not in response.text


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"", "application/json", 400),
        (json.dumps(pull()).encode(), "text/plain", 415),
    ],
)
async def test_malformed_bodies(authz: Authz, content: bytes, content_type: str, status: int) -> None:
    headers = {**(await authz.headers()), "Content-Type": content_type}
    response = await authz.client.post(f"{authz.base}/decide", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_oversized_input_is_a_413(authz: Authz) -> None:
    raw = pull(context={"request_id": "x" * 70_000})
    response = await authz.post("/decide", raw)
    assert response.status_code == 413


async def test_token_and_scope_are_required(authz: Authz) -> None:
    anonymous = await authz.client.post(f"{authz.base}/explain", json=pull())
    assert anonymous.status_code == 401
    other_scope = await authz.post("/decide", pull(), headers=await authz.headers(scope="nvi:read"))
    assert other_scope.status_code == 403
    assert other_scope.json()["error"] == "insufficient_scope"


async def test_replayed_dpop_proof_is_refused(authz: Authz) -> None:
    token = await token_for(authz.client, authz.network, org=PARTICIPANT, scope="authz:explain", dpop=True)
    url = f"{authz.base}/decide"
    headers = dict(token.headers("POST", url))
    first = await authz.post("/decide", pull(), headers=headers)
    assert first.status_code == 200, first.text
    replay = await authz.post("/decide", pull(), headers=headers)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_dpop_proof"


async def test_policies_lists_release_policies_and_agreements(authz: Authz) -> None:
    response = await authz.client.get(f"{authz.base}/policies")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["release"] == "1.1.0" and body["status"] == "loaded"
    assert body["digest"].startswith("sha256:")
    packages = {p["package"]: p["agreement"] for p in body["policies"]}
    assert packages["ldn.authz.pull"] == "LAS-TA-AUTHZ-001"
    assert packages["ldn.authz.vital_interest"] == "LAS-TA-AUTHZ-005"
    assert all(p["release"] == "1.1.0" for p in body["policies"])
    cited = {a["id"]: a for a in body["agreements"]}
    assert set(cited) == {f"LAS-TA-AUTHZ-00{i}" for i in range(6)}
    assert cited["LAS-TA-AUTHZ-001"]["in_release"] is True
    assert all(a["registered"] for a in cited.values())
    assert "data.ldn.tables.role_categories" in body["tables"]


async def test_reload_is_for_the_operator(authz: Authz) -> None:
    refused = await authz.post("/policies/reload", {})
    assert refused.status_code == 403
    response = await authz.post("/policies/reload", {}, headers=await authz.headers(OPERATOR, "authz:admin"))
    assert response.status_code == 200, response.text
    assert response.json() == {"reloaded": True, "release": "1.1.0"}


async def test_health_reports_the_policies(authz: Authz) -> None:
    response = await authz.client.get(f"{authz.base}/health")
    assert response.status_code == 200
    assert response.json()["checks"]["policies"] == "ok"
