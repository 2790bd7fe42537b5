"""Both sides of an exchange log it, joined by one W3C trace id; a node started alone writes over HTTP.

The exchange here is a FHIR search by a GP (requester node 00000020) at a hospital (holder node
00000040) over the embedded network, with real tokens: the requester logs its request, the
holder logs what it answered, and the trace id travels in `traceparent`. The full referral
(notified pull) version of this test comes with the communication-patterns issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends

from ldn.audit import (
    AuditEvent,
    AuditObject,
    AuditUnavailable,
    EventTypes,
    Outcome,
    audit_logger,
    user_from_caller,
)
from ldn.audit.context import AuditTokenProvider, _sink_kind, audit_store, source_for
from ldn.audit.logger import AuditLogger
from ldn.audit.settings import AuditSettings
from ldn.audit.sinks import HttpSink
from ldn.audit.spool import Spool, spool_key
from ldn.audit.store import AuditQuery, AuditStore
from ldn.audit.verify import verify_database
from ldn.auth.resource_server import Caller, require_caller
from ldn.core.http import HttpClientFactory
from ldn.core.logging import TraceContext, current_trace, trace_var
from ldn.core.service import ServiceContext
from tests.audit.helpers import BSN_ANNA
from tests.auth_helpers import citizen_token_for, token_for
from tests.conftest import NETWORK_BASE

HOLDER_URA, REQUESTER_URA = "00000040", "00000020"


def _install_holder_search(network: Any) -> str:
    """A FHIR search on the holder node that records the access before answering."""
    app = network.apps[f"node-{HOLDER_URA}"]
    ctx: ServiceContext = app.state.ctx

    async def search(caller: Caller = Depends(require_caller("fhir:read"))) -> dict[str, Any]:
        assert caller.patient is not None
        await audit_logger(ctx).record(
            AuditEvent(
                type=EventTypes.FHIR_SEARCH_HOLDER,
                outcome=Outcome.SUCCESS,
                users=[user_from_caller(caller)],
                objects=[AuditObject.patient(caller.patient, data_categories=["GGC013"], query="MedicationRequest?")],
                checks=["token", "consent:permit"],
                counterpart_ura=caller.organization_ura,
            )
        )
        return {"resourceType": "Bundle", "type": "searchset", "total": 0}

    if not any(getattr(r, "path", "") == "/test-fhir/MedicationRequest" for r in app.router.routes):
        app.add_api_route("/test-fhir/MedicationRequest", search, methods=["GET"])
    return f"{network.directory.node_url(HOLDER_URA)}/test-fhir/MedicationRequest"


async def test_an_exchange_leaves_matching_events_on_both_sides_joined_by_one_trace(
    client: httpx.AsyncClient, network: Any
) -> None:
    url = _install_holder_search(network)
    requester_ctx: ServiceContext = network.apps[f"node-{REQUESTER_URA}"].state.ctx
    token = await token_for(
        client, network, org=REQUESTER_URA, scope="fhir:read", audience=HOLDER_URA, user="900000011", patient=BSN_ANNA
    )
    trace = TraceContext.new()
    reset = trace_var.set(trace)  # the requester's unit of work
    try:
        response = await requester_ctx.http.client().get(url, headers=token.headers("GET", url))
        assert response.status_code == 200, response.text
        await audit_logger(requester_ctx).record(
            AuditEvent(
                type=EventTypes.FHIR_SEARCH_REQUESTER,
                outcome=Outcome.SUCCESS,
                users=[user_from_caller(_gp_as_caller())],
                objects=[AuditObject.patient(BSN_ANNA, data_categories=["GGC013"], query="MedicationRequest?")],
                counterpart_ura=HOLDER_URA,
            )
        )
        assert current_trace() == trace
    finally:
        trace_var.reset(reset)

    events_url = f"{network.directory.service_url('audit')}/events"
    supervisor = await token_for(client, network, org="90000907", scope="audit:read audit:export")
    params = {"trace_id": trace.trace_id}
    both = await client.get(events_url, params=params, headers=supervisor.headers("GET", events_url))
    assert both.status_code == 200, both.text
    events = {e["source"]["id"]: e for e in both.json()["events"]}
    assert set(events) == {f"node-{REQUESTER_URA}", f"node-{HOLDER_URA}"}
    holder, requester = events[f"node-{HOLDER_URA}"], events[f"node-{REQUESTER_URA}"]
    assert holder["type"]["key"] == "fhir.search.holder" and requester["type"]["key"] == "fhir.search.requester"
    assert holder["counterpart"]["ura"] == REQUESTER_URA and requester["counterpart"]["ura"] == HOLDER_URA
    assert holder["users"][0]["user_id"] == requester["users"][0]["user_id"] == "900000011"
    holder_patient = holder["objects"][0]
    assert holder_patient["bsn_hash"] == requester["objects"][0]["bsn_hash"]
    # Each side alone sees only its own half of the trace.
    own = await token_for(client, network, org=HOLDER_URA, scope="audit:read")
    half = await client.get(events_url, params=params, headers=own.headers("GET", events_url))
    assert [e["source"]["id"] for e in half.json()["events"]] == [f"node-{HOLDER_URA}"]
    # And the citizen sees both, with names.
    me = f"{network.directory.service_url('audit')}/citizen/me"
    anna = await citizen_token_for(client, network, BSN_ANNA)
    accesses = (await client.get(me, headers=anna.headers("GET", me))).json()["accesses"]
    assert {a["logged_by"]["ura"] for a in accesses} == {HOLDER_URA, REQUESTER_URA}
    assert all(a["data_categories"] == [{"code": "GGC013", "name": "Medicatiegegevens"}] for a in accesses)
    signer = audit_store(AuditSettings(), network.settings.data_dir).keys.signer
    assert verify_database(network.database, signer).ok


class _Gp:
    client_id = "00000020"
    organization_ura = REQUESTER_URA
    organization_name = "Huisartsenpraktijk De Linde"
    user_id = "900000011"
    user_role = "01.015"
    user_name = "A. de Vries"
    citizen_bsn = None


def _gp_as_caller() -> Any:
    return _Gp()


def test_embedded_services_write_to_the_database_and_lone_ones_over_http(network: Any) -> None:
    ctx: ServiceContext = network.apps[f"node-{REQUESTER_URA}"].state.ctx
    assert _sink_kind(ctx, AuditSettings()) == "database"
    assert source_for(ctx).organization_ura == REQUESTER_URA
    nvi: ServiceContext = network.apps["nvi"].state.ctx
    assert source_for(nvi).organization_ura == "90000901" and source_for(nvi).source_type == "national"
    alone = ServiceContext(
        name=f"node-{REQUESTER_URA}",
        base_url="http://node20.example:8090",
        settings=ctx.settings,
        topology=ctx.topology,
        database=ctx.database,
        http=HttpClientFactory(local_apps={"http://node20.example:8090": network.app}),
        directory=ctx.directory,
    )
    assert _sink_kind(alone, AuditSettings()) == "http"
    assert _sink_kind(alone, AuditSettings(sink="database")) == "database"


class _SwitchableHttp(HttpClientFactory):
    """The network, reachable in-process, or (during an outage) connection refused."""

    def __init__(self, app: Any) -> None:
        super().__init__(local_apps={NETWORK_BASE: app})
        self.available = True

    def client(self, *, cert: tuple[str, str] | None = None) -> httpx.AsyncClient:
        if self.available:
            return super().client(cert=cert)

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        return httpx.AsyncClient(transport=httpx.MockTransport(refuse))


async def test_a_lone_node_writes_over_http_and_spools_while_the_service_is_down(network: Any, tmp_path: Path) -> None:
    http = _SwitchableHttp(network.app)
    base: ServiceContext = network.apps[f"node-{REQUESTER_URA}"].state.ctx
    ctx = ServiceContext(
        name=f"node-{REQUESTER_URA}",
        base_url="http://node20.example:8090",
        settings=base.settings,
        topology=base.topology,
        database=base.database,
        http=http,
        directory=base.directory,
    )
    spool_dir = tmp_path / "spool"
    sink = HttpSink(
        http.client, ctx.directory.service_url("audit"), token_provider=AuditTokenProvider(ctx, REQUESTER_URA)
    )
    audit = AuditLogger(
        source_for(ctx), sink, Spool(spool_dir, ctx.name, spool_key(spool_dir, None)), retry_initial=0.05, retry_max=0.2
    )

    def request(n: int) -> AuditEvent:
        return AuditEvent(
            type=EventTypes.NVI_SEARCH,
            outcome=Outcome.SUCCESS,
            users=[user_from_caller(_gp_as_caller())],
            objects=[AuditObject.patient(BSN_ANNA, query=f"search-{n}")],
        )

    await audit.record(request(0))
    http.available = False
    for n in range(1, 6):
        await audit.record(request(n))
    assert audit.spooling and await audit.spooled() == 5
    http.available = True
    assert await audit.flush(timeout=10)
    with network.database.transaction(readonly=True) as session:
        stored = AuditStore.query(session, AuditQuery(organization_ura=REQUESTER_URA, limit=50))
    queries = [r.detail_data()["objects"][0]["query"] for r in sorted(stored, key=lambda r: r.seq)]
    assert queries == [f"search-{n}" for n in range(6)]
    await audit.aclose()


async def test_a_lone_node_without_spool_refuses_when_the_service_is_down(network: Any) -> None:
    http = _SwitchableHttp(network.app)
    http.available = False
    base: ServiceContext = network.apps[f"node-{REQUESTER_URA}"].state.ctx
    sink = HttpSink(http.client, base.directory.service_url("audit"))
    audit = AuditLogger(source_for(base), sink, None)
    with pytest.raises(AuditUnavailable):
        await audit.record(
            AuditEvent(type=EventTypes.NVI_SEARCH, outcome=Outcome.SUCCESS, users=[user_from_caller(_gp_as_caller())])
        )
