"""The enforcement point in front of a real node FHIR API, asking the real consent service over HTTP
with the node's own national token: pass with a Permit, 403 with a reason otherwise, and refusal
when the consent service or the decision point is down."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ldn.authz.pep import PolicyEnforcementPoint, pep_for
from ldn.consent.model import ChoiceSource
from ldn.consent.register import Actor, ConsentRegister
from ldn.consent.schemas import ChoiceDraft
from tests.auth_helpers import token_for

GP, HOSPITAL, PHARMACY = "00000020", "00000040", "00000050"
INTERNIST, PHARMACIST = "900000031", "900000041"
BRAM = "999990019"  # patient of the GP, the hospital and the pharmacy
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
CITIZEN = Actor(recorded_by="citizen", client_id="test")


class Node:
    """The GP's node as a hospital professional (or the pharmacist) sees it."""

    def __init__(self, client: httpx.AsyncClient, network: Any) -> None:
        self.client = client
        self.network = network
        self.base = f"{network.directory.node_url(GP)}/fhir"

    @property
    def register(self) -> ConsentRegister:
        register = self.network.apps["consent"].state.ctx.extras["consent_register"]
        assert isinstance(register, ConsentRegister)
        return register

    @property
    def pep(self) -> PolicyEnforcementPoint:
        return pep_for(self.network.apps[f"node-{GP}"].state.ctx)

    async def permit(self, bsn: str = BRAM, category: str = "GGC002") -> None:
        draft = {"holder": "any", "requester": "any", "data_category": category, "decision": "permit"}
        await self.register.record_choices(
            bsn, [ChoiceDraft.model_validate(draft)], source=ChoiceSource.CITIZEN, actor=CITIZEN
        )

    async def get(
        self, path: str, *, org: str = HOSPITAL, user: str = INTERNIST, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        url = f"{self.base}/{path}"
        token = await token_for(self.client, self.network, org=org, scope="fhir:read", audience=GP, user=user)
        return await self.client.get(url, headers={**token.headers("GET", url), **(headers or {})})


@pytest.fixture
def node(client: httpx.AsyncClient, network: Any) -> Node:
    return Node(client, network)


def reason(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "forbidden"
    assert BRAM not in response.text
    code: str = body["issue"][0]["details"]["coding"][0]["code"]
    return code


SEARCH = f"Condition?patient.identifier={BSN_SYSTEM}|{BRAM}"


async def test_pass_only_with_a_mitz_permit(node: Node) -> None:
    assert reason(await node.get(SEARCH)) == "consent-not-permit"
    await node.permit()
    allowed = await node.get(SEARCH)
    assert allowed.status_code == 200, allowed.text
    entries = [e for e in allowed.json().get("entry", []) if e["resource"]["resourceType"] == "Condition"]
    assert entries
    # the patient resolved from the node's own data: by local Patient id and by reading a resource
    patients = await node.get(f"Patient?identifier={BSN_SYSTEM}|{BRAM}")
    assert patients.status_code == 200, patients.text
    patient_id = patients.json()["entry"][0]["resource"]["id"]
    by_reference = await node.get(f"Condition?patient=Patient/{patient_id}")
    assert by_reference.status_code == 200, by_reference.text
    assert len(by_reference.json().get("entry", [])) == len(allowed.json().get("entry", []))
    read = await node.get(f"Condition/{entries[0]['resource']['id']}")
    assert read.status_code == 200, read.text
    assert (await node.get(f"Patient/$bgz?patient.identifier={BSN_SYSTEM}|{BRAM}")).status_code == 200


async def test_role_limits_what_may_be_seen(node: Node) -> None:
    await node.permit()
    refused = await node.get(SEARCH, org=PHARMACY, user=PHARMACIST)
    assert reason(refused) == "role-not-allowed-category:Condition"
    medication = await node.get(
        f"MedicationRequest?patient.identifier={BSN_SYSTEM}|{BRAM}", org=PHARMACY, user=PHARMACIST
    )
    assert medication.status_code == 200, medication.text


async def test_optout_refused_and_vital_interest_override_logged(node: Node) -> None:
    await node.permit()
    await node.register.set_optout(BRAM, "primary", objected=True, actor=CITIZEN)
    assert reason(await node.get(SEARCH)) == "ehds-primary-optout"
    stated = {"X-Ldn-Vital-Interest": "bewusteloos%20binnengebracht"}
    overridden = await node.get(SEARCH, headers=stated)
    assert overridden.status_code == 200, overridden.text
    overrides = await node.register.overrides(BRAM)
    assert overrides and "bewusteloos binnengebracht" in str(overrides)


async def test_consent_service_down_refuses(node: Node, network: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    await node.permit()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("consent register unavailable")

    monkeypatch.setattr(node.register, "closed_question", broken)
    assert reason(await node.get(SEARCH)) == "consent-unavailable"  # the consent service answers 500
    monkeypatch.setitem(network.directory.services, "consent", "http://127.0.0.1:9/consent")
    assert reason(await node.get(SEARCH)) == "consent-unavailable"  # nothing listens there


async def test_pdp_down_refuses(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    await node.permit()
    assert (await node.get(SEARCH)).status_code == 200

    def down(raw: Any) -> Any:
        raise RuntimeError("rego interpreter crashed")

    monkeypatch.setattr(node.pep.engine.cache, "decide", down)
    assert reason(await node.get(SEARCH)) == "pdp-unavailable"


async def test_enforcement_can_be_switched_off_for_development(monkeypatch: pytest.MonkeyPatch, node: Node) -> None:
    monkeypatch.setenv("LDN_AUTHZ_PEP_ENABLED", "false")
    allowed = await node.get(SEARCH)  # no consent recorded: only the token checks apply
    assert allowed.status_code == 200, allowed.text
