"""Helpers for the consent service tests: tokens for the usual callers, questions, synthetic BSNs."""

from __future__ import annotations

from typing import Any

import httpx

from ldn.consent.model import ChoiceSource
from ldn.consent.register import Actor, ChoiceRecord, ConsentRegister
from ldn.consent.schemas import ChoiceDraft
from tests.auth_helpers import citizen_token_for, token_for

GP = "00000020"  # Huisartsenpraktijk De Linde (Z3)
GP_USER = "900000011"
OTHER_GP = "00000030"
HOSPITAL = "00000040"  # Ziekenhuis Rijnstad (V4)
HOSPITAL_USER = "900000031"
PHARMACY = "00000050"  # Apotheek Centrum (J8)
PHARMACIST = "900000041"
OPERATOR = "90000904"  # operator of the consent service
CITIZEN_BSN = "999990019"  # Bram, in the topology (can log in)
OTHER_CITIZEN_BSN = "999990007"  # Anna

_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def synthetic_bsn(n: int) -> str:
    """The n-th 99xxxxxxx number passing the 11-check (not in the topology; fine for questions)."""
    candidate = 990_000_000 + n * 10
    while True:
        digits = f"{candidate:09d}"
        total = sum(int(d) * w for d, w in zip(digits[:8], _WEIGHTS, strict=True))
        if total % 11 < 10 and (total % 11) == int(digits[8]):
            return digits
        candidate += 1


def question(bsn: str = CITIZEN_BSN, **overrides: Any) -> dict[str, Any]:
    """A complete closed question: the GP (holder) asks whether the pharmacy may get medication data."""
    body: dict[str, Any] = {
        "bsn": bsn,
        "holder_ura": GP,
        "holder_facility_type": "Z3",
        "data_category": "GGC013",
        "requester_ura": PHARMACY,
        "requester_facility_type": "J8",
        "professional_id": PHARMACIST,
        "professional_role": "17.000",
        "purpose_of_use": "TREAT",
        "mandated": False,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


class ConsentApi:
    """The consent service of an embedded network, with cached tokens per caller."""

    def __init__(self, client: httpx.AsyncClient, network: Any) -> None:
        self.client = client
        self.network = network
        self.base = network.directory.service_url("consent")
        self._tokens: dict[tuple[Any, ...], str] = {}

    @property
    def register(self) -> ConsentRegister:
        register = self.network.apps["consent"].state.ctx.extras["consent_register"]
        assert isinstance(register, ConsentRegister)
        return register

    async def provider(self, org: str = GP, scope: str = "consent:read", user: str | None = GP_USER) -> dict[str, str]:
        key = ("org", org, scope, user)
        if key not in self._tokens:
            token = await token_for(self.client, self.network, org=org, scope=scope, user=user)
            self._tokens[key] = token.value
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    async def citizen(self, bsn: str = CITIZEN_BSN) -> dict[str, str]:
        key = ("citizen", bsn)
        if key not in self._tokens:
            token = await citizen_token_for(self.client, self.network, bsn)
            self._tokens[key] = token.value
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    async def ask(self, body: dict[str, Any], *, org: str = GP) -> httpx.Response:
        return await self.client.post(f"{self.base}/closed-question", json=body, headers=await self.provider(org))

    async def decision(self, body: dict[str, Any], *, org: str = GP) -> dict[str, Any]:
        response = await self.ask(body, org=org)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def record(
        self,
        bsn: str,
        *drafts: dict[str, Any],
        source: ChoiceSource = ChoiceSource.CITIZEN,
        recorded_by: str = "citizen",
    ) -> list[ChoiceRecord]:
        """Record choices straight through the service layer (fast set-up for decision tables)."""
        return await self.register.record_choices(
            bsn,
            [ChoiceDraft.model_validate(d) for d in drafts],
            source=source,
            actor=Actor(recorded_by=recorded_by, client_id="test"),
        )
