"""Test doubles for the enforcement point: a node context without I/O, a scripted consent service,
callers and requests (synthetic data only)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from starlette.requests import Request

from ldn.auth.resource_server import Caller
from ldn.authz.pep import ConsentAnswer, ConsentClient, ConsentUnavailable, DecisionEngine, PolicyEnforcementPoint
from ldn.authz.settings import AuthzSettings
from ldn.core.config import CoreSettings
from ldn.core.http import HttpClientFactory
from ldn.core.service import NetworkDirectory, ServiceContext
from ldn.core.storage import Database
from ldn.core.topology import Topology

GP_URA = "00000020"  # huisartspraktijk (Z3): the data holder in these tests
HOSPITAL_URA = "00000040"  # ziekenhuis (V4)
PHARMACY_URA = "00000050"  # apotheek (J8)
INTERNIST = "900000031"
PHARMACIST_UZI = "900000041"
BSN = "999990019"
OTHER_BSN = "999990020"
BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"


def caller(
    org: str = HOSPITAL_URA,
    user: str | None = INTERNIST,
    role: str | None = "01.016",
    patient: str | None = None,
    client_id: str = "client-hospital",
) -> Caller:
    return Caller(
        client_id=client_id,
        organization_ura=org,
        organization_name="Ziekenhuis Rijnstad",
        scopes=frozenset({"fhir:read"}),
        user_id=user,
        user_role=role,
        patient=patient,
    )


def request(
    path: str = f"/nodes/{GP_URA}/fhir/Condition",
    query: str = f"patient.identifier={BSN_SYSTEM}|{BSN}",
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
) -> Request:
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": query.encode(),
        "headers": raw_headers,
        "scheme": "http",
        "server": ("ldn.test", 80),
        "client": ("127.0.0.1", 1234),
    }
    return Request(scope)


def node_context(topology: Topology, tmp_path: Path, ura: str = GP_URA) -> ServiceContext:
    """A node's context with nothing behind it: consent and patient lookups are stubbed."""
    return ServiceContext(
        name=f"node-{ura}",
        base_url=f"http://ldn.test/nodes/{ura}",
        settings=CoreSettings(data_dir=tmp_path / "var"),
        topology=topology,
        database=cast(Database, None),
        http=HttpClientFactory(),
        directory=NetworkDirectory(),
    )


class ScriptedConsent(ConsentClient):
    """The consent service's answers per Mitz category (default Permit); records every question."""

    def __init__(self, ctx: ServiceContext, ura: str = GP_URA) -> None:
        super().__init__(ctx, ura, dpop=False)
        self.answers: dict[str, ConsentAnswer] = {}
        self.default = ConsentAnswer("Permit", "choice c1 v1 permit (specificity h0r0c1)", False)
        self.questions: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self.delay = 0.0

    async def ask(self, question: Mapping[str, Any]) -> ConsentAnswer:
        self.questions.append(dict(question))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.answers.get(str(question.get("data_category")), self.default)

    def unavailable(self) -> None:
        self.error = ConsentUnavailable("consent service answered 503")


class Patients:
    """The node's own patients: local Patient id -> BSN."""

    def __init__(self, known: Mapping[str, str] | None = None) -> None:
        self.known = dict(known or {"p1": BSN})
        self.asked: list[str] = []

    async def __call__(self, patient_id: str) -> str | None:
        self.asked.append(patient_id)
        return self.known.get(patient_id)


def make_pep(
    ctx: ServiceContext,
    engine: DecisionEngine,
    consent: ConsentClient,
    patients: Patients | None = None,
    **settings: Any,
) -> PolicyEnforcementPoint:
    return PolicyEnforcementPoint(
        ctx,
        GP_URA,
        settings=AuthzSettings(**settings),
        engine=engine,
        consent=consent,
        patient_resolver=patients or Patients(),
    )
