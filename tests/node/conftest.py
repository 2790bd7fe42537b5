"""Helpers for the node FHIR API tests: URLs, node tokens, GETs with the right headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.auth_helpers import token_for

GP, GP2, HOSPITAL, PHARMACY, NURSING, GGZ = "00000020", "00000030", "00000040", "00000050", "00000060", "00000070"
INTERNIST = "900000031"  # at the hospital
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"
ANNA, BRAM = "999990007", "999990019"  # both patients of the GP, the hospital and the pharmacy


@dataclass
class Fhir:
    client: httpx.AsyncClient
    network: Any

    def base(self, ura: str = GP) -> str:
        return f"{self.network.directory.node_url(ura)}/fhir"

    async def token(
        self,
        *,
        audience: str = GP,
        org: str = HOSPITAL,
        scope: str = "fhir:read",
        patient: str | None = None,
        user: str | None = INTERNIST,
    ) -> Any:
        return await token_for(
            self.client, self.network, org=org, scope=scope, audience=audience, user=user, patient=patient
        )

    async def get(self, url: str, token: Any = None, **headers: str) -> httpx.Response:
        sent = dict(token.headers("GET", url)) if token is not None else {}
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        return await self.client.get(url, headers=sent)

    def search_url(self, rtype: str, query: str, ura: str = GP) -> str:
        return f"{self.base(ura)}/{rtype}?{query}"


def patient_query(bsn: str, name: str = "patient.identifier") -> str:
    return f"{name}={BSN_SYSTEM}|{bsn}"


@pytest.fixture(autouse=True)
def _fhir_api_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the FHIR API and its token rules, not the policy decisions behind
    `authorize_request` (tests/authz covers those): the PEP is switched off as its setting allows."""
    monkeypatch.setenv("LDN_AUTHZ_PEP_ENABLED", "false")


@pytest.fixture
def fhir(client: httpx.AsyncClient, network: Any) -> Fhir:
    return Fhir(client, network)
