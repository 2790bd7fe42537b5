"""The audit service over HTTP with real tokens: append, organisation queries, citizen inzage, export."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ldn.audit.catalogue import EventTypes
from ldn.audit.model import AuditEvent, AuditSource
from ldn.audit.store import AuditQuery, AuditStore
from ldn.auth.client import TokenRequestError
from ldn.core.config import CoreSettings
from ldn.core.fhir import validate_resource
from tests.audit.helpers import BSN_ANNA, BSN_BRAM, HOLDER, REQUESTER, holder_read
from tests.auth_helpers import citizen_token_for, token_for

MAX_BODY = 256 * 1024


@pytest.fixture
def settings(settings: CoreSettings, monkeypatch: pytest.MonkeyPatch) -> CoreSettings:
    """A small body limit and batch size, set before the network (and its audit service) is built."""
    monkeypatch.setenv("LDN_AUDIT_MAX_BATCH", "50")
    return settings.model_copy(update={"max_body_bytes": MAX_BODY})


@pytest.fixture
def audit_url(network: Any) -> str:
    return str(network.directory.service_url("audit"))


async def _headers(
    client: httpx.AsyncClient, network: Any, org: str, scope: str, method: str, url: str
) -> dict[str, str]:
    token = await token_for(client, network, org=org, scope=scope)
    return token.headers(method, url)


def _batch(*events: AuditEvent) -> dict[str, Any]:
    return {"events": [e.to_wire() for e in events]}


async def _post(client: httpx.AsyncClient, network: Any, audit_url: str, org: str, body: Any) -> httpx.Response:
    url = f"{audit_url}/events"
    headers = await _headers(client, network, org, "audit:write", "POST", url)
    return await client.post(url, json=body, headers=headers)


async def _seed(client: httpx.AsyncClient, network: Any, audit_url: str) -> str:
    """An exchange for Anna (requester 00000020, holder 00000040, one trace) and one read for Bram."""
    trace = "ab" * 16
    requester = AuditEvent(
        type=EventTypes.FHIR_SEARCH_REQUESTER,
        outcome="success",  # type: ignore[arg-type]
        users=holder_read(0).users,
        objects=holder_read(0).objects,
        counterpart_ura="00000040",
        trace_id=trace,
        source=REQUESTER,
    )
    assert (await _post(client, network, audit_url, "00000020", _batch(requester))).status_code == 200
    response = await _post(
        client, network, audit_url, "00000040", _batch(holder_read(1, trace_id=trace), holder_read(2, bsn=BSN_BRAM))
    )
    assert response.status_code == 200, response.text
    return trace


async def test_append_batch_and_replay(client: httpx.AsyncClient, network: Any, audit_url: str) -> None:
    body = _batch(*(holder_read(n) for n in range(3)))
    first = await _post(client, network, audit_url, "00000040", body)
    assert first.status_code == 200, first.text
    assert first.json() == {"stored": 3, "duplicates": 0, "last_seq": {HOLDER.source_id: 3}}
    replay = await _post(client, network, audit_url, "00000040", body)
    assert replay.json() == {"stored": 0, "duplicates": 3, "last_seq": {HOLDER.source_id: 3}}


async def test_append_refuses_other_organisations_sources(
    client: httpx.AsyncClient, network: Any, audit_url: str
) -> None:
    not_ours = await _post(client, network, audit_url, "00000020", _batch(holder_read(1)))
    assert not_ours.status_code == 403
    assert "not the caller" in not_ours.json()["issue"][0]["diagnostics"]
    foreign_source = AuditSource("nvi", "national", "00000020")
    wrong = await _post(client, network, audit_url, "00000020", _batch(holder_read(1, source=foreign_source)))
    assert wrong.status_code == 403
    assert "does not belong" in wrong.json()["issue"][0]["diagnostics"]


MALFORMED_BATCHES: list[Any] = [
    {"events": []},
    {"events": "x"},
    {"evnts": []},
    [],
    {"events": [{"type": "060100"}]},
    {"events": [{**holder_read(1).to_wire(), "type": "123456"}]},
    {"events": [{**holder_read(1).to_wire(), "objects": [{"id_type": "BSN", "identifier": "123456789"}]}]},
    {"events": [{**holder_read(1).to_wire(), "trace_id": "0" * 31}]},
    {"events": [holder_read(n).to_wire() for n in range(51)]},
]


async def test_append_refuses_malformed_batches(client: httpx.AsyncClient, network: Any, audit_url: str) -> None:
    url = f"{audit_url}/events"
    headers = await _headers(client, network, "00000040", "audit:write", "POST", url)
    for body in MALFORMED_BATCHES:
        response = await client.post(url, json=body, headers=headers)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
        assert BSN_ANNA not in response.text
    with network.database.transaction(readonly=True) as session:
        assert AuditStore.query(session, AuditQuery(organization_ura="00000040")) == []


async def test_append_needs_the_right_token_type_and_size(
    client: httpx.AsyncClient, network: Any, audit_url: str
) -> None:
    url = f"{audit_url}/events"
    body = _batch(holder_read(1))
    assert (await client.post(url, json=body)).status_code == 401
    assert (await client.post(url, json=body, headers={"Authorization": "Bearer nonsense"})).status_code == 401
    reader = await _headers(client, network, "00000040", "audit:read", "POST", url)
    assert (await client.post(url, json=body, headers=reader)).status_code == 403
    writer = await _headers(client, network, "00000040", "audit:write", "POST", url)
    wrong_type = await client.post(url, content=json.dumps(body), headers={**writer, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    bad_json = await client.post(url, content=b"{", headers={**writer, "Content-Type": "application/json"})
    assert bad_json.status_code == 400
    huge = await client.post(url, content=b"x" * (MAX_BODY + 1), headers={**writer, "Content-Type": "application/json"})
    assert huge.status_code == 413


async def test_citizen_sees_own_accesses_with_readable_names(
    client: httpx.AsyncClient, network: Any, audit_url: str
) -> None:
    trace = await _seed(client, network, audit_url)
    url = f"{audit_url}/citizen/me"
    anna = await citizen_token_for(client, network, BSN_ANNA)
    response = await client.get(url, headers=anna.headers("GET", url))
    assert response.status_code == 200, response.text
    accesses = response.json()["accesses"]
    assert len(accesses) == 2 and {a["trace_id"] for a in accesses} == {trace}
    holder_side = next(a for a in accesses if a["logged_by"]["ura"] == "00000040")
    assert holder_side["by"]["name"] == "A. de Vries"
    assert holder_side["by"]["role_name"] == "Huisarts"
    assert holder_side["for_organization"] == {"ura": "00000020", "name": "Huisartsenpraktijk De Linde"}
    assert holder_side["logged_by"]["name"] == "Ziekenhuis Rijnstad"
    assert holder_side["data_categories"] == [{"code": "GGC002", "name": "Behandelgegevens"}]
    assert holder_side["what"]["title"] == EventTypes.FHIR_READ_HOLDER.title_nl
    assert BSN_ANNA not in response.text and "bsn" not in response.text.lower()
    # Bram sees only his own record; Anna's viewing is logged but not shown back to her.
    bram = await citizen_token_for(client, network, BSN_BRAM)
    assert len((await client.get(url, headers=bram.headers("GET", url))).json()["accesses"]) == 1
    again = await client.get(url, headers=anna.headers("GET", url))
    assert len(again.json()["accesses"]) == 2
    with network.database.transaction(readonly=True) as session:
        views = AuditStore.query(session, AuditQuery(event_codes=(EventTypes.AUDIT_CITIZEN_VIEW.code,)))
    assert len(views) == 3


async def test_citizen_cannot_see_another_citizens_log(client: httpx.AsyncClient, network: Any, audit_url: str) -> None:
    await _seed(client, network, audit_url)
    url = f"{audit_url}/citizen/me"
    anna = await citizen_token_for(client, network, BSN_ANNA)
    for params in ({"patient": BSN_BRAM}, {"bsn": BSN_BRAM}, {"patient": BSN_ANNA}):
        refused = await client.get(url, params=params, headers=anna.headers("GET", url))
        assert refused.status_code == 403
        assert BSN_BRAM not in refused.text
    events = f"{audit_url}/events"
    as_org = await client.get(events, params={"trace_id": "ab" * 16}, headers=anna.headers("GET", events))
    assert as_org.status_code == 403
    org_token = await _headers(client, network, "00000020", "audit:read", "GET", url)
    assert (await client.get(url, headers=org_token)).status_code == 403
    assert (await client.get(url)).status_code == 401
    bad = await client.get(url, params={"_count": 0}, headers=anna.headers("GET", url))
    assert bad.status_code == 400


async def test_organisation_query_shows_own_records_and_trace_both_sides_only_to_supervisor(
    client: httpx.AsyncClient, network: Any, audit_url: str
) -> None:
    trace = await _seed(client, network, audit_url)
    url = f"{audit_url}/events"
    hospital = await _headers(client, network, "00000040", "audit:read", "GET", url)
    own = await client.get(url, headers=hospital)
    assert own.status_code == 200, own.text
    assert {e["organization"]["ura"] for e in own.json()["events"]} == {"00000040"}
    assert len(own.json()["events"]) == 2
    assert BSN_ANNA not in own.text and BSN_BRAM not in own.text
    one_side = await client.get(url, params={"trace_id": trace}, headers=hospital)
    assert [e["source"]["id"] for e in one_side.json()["events"]] == [HOLDER.source_id]
    other = await client.get(url, params={"organization": "00000020"}, headers=hospital)
    assert other.status_code == 403
    by_user = await client.get(url, params={"user": "900000011"}, headers=hospital)
    assert len(by_user.json()["events"]) == 2
    supervisor = await _headers(client, network, "90000907", "audit:read audit:export", "GET", url)
    both = await client.get(url, params={"trace_id": trace}, headers=supervisor)
    assert both.status_code == 200
    sides = {(e["source"]["id"], e["type"]["key"]) for e in both.json()["events"]}
    assert sides == {(HOLDER.source_id, "fhir.read.holder"), (REQUESTER.source_id, "fhir.search.requester")}


async def test_organisation_query_bad_input(client: httpx.AsyncClient, network: Any, audit_url: str) -> None:
    url = f"{audit_url}/events"
    hospital = await _headers(client, network, "00000040", "audit:read", "GET", url)
    for params in (
        {"trace_id": "XYZ"},
        {"organization": "123"},
        {"_count": 0},
        {"_count": 100000},
        {"cursor": "!!!"},
        {"patient": BSN_ANNA},
        {"colour": "red"},
    ):
        response = await client.get(url, params=params, headers=hospital)
        assert response.status_code == 400, (params, response.text)
        assert BSN_ANNA not in response.text


async def test_search_by_patient_in_the_body_and_paging(
    client: httpx.AsyncClient, network: Any, audit_url: str
) -> None:
    await _seed(client, network, audit_url)
    await _post(client, network, audit_url, "00000040", _batch(*(holder_read(10 + n) for n in range(4))))
    url = f"{audit_url}/events/_search"
    hospital = await _headers(client, network, "00000040", "audit:read", "POST", url)
    found = await client.post(url, json={"patient": BSN_ANNA, "_count": 3}, headers=hospital)
    assert found.status_code == 200, found.text
    page = found.json()
    assert len(page["events"]) == 3 and page["next"]
    rest = await client.post(url, json={"patient": BSN_ANNA, "_count": 3, "cursor": page["next"]}, headers=hospital)
    assert len(rest.json()["events"]) == 2 and rest.json()["next"] is None
    seen = [e["event_id"] for e in page["events"] + rest.json()["events"]]
    assert len(set(seen)) == 5
    for body in ({"patient": "123456789"}, {"patient": 999990007}, {"nope": 1}, {"_count": "3"}, []):
        response = await client.post(url, json=body, headers=hospital)
        assert response.status_code == 400, (body, response.text)


async def test_export_for_supervisors_only(client: httpx.AsyncClient, network: Any, audit_url: str) -> None:
    await _seed(client, network, audit_url)
    url = f"{audit_url}/export"
    supervisor = await _headers(client, network, "90000907", "audit:export", "GET", url)
    params = {"from": "2020-01-01", "to": "2099-12-31", "organization": "00000040"}
    response = await client.get(url, params=params, headers=supervisor)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    resources = [e["resource"] for e in bundle["entry"]]
    assert len(resources) == 2
    for resource in resources:
        validate_resource(resource, "AuditEvent")
    assert {r["entity"][0]["what"]["identifier"]["value"] for r in resources} == {BSN_ANNA, BSN_BRAM}
    lines = await client.get(url, params={**params, "format": "jsonl"}, headers=supervisor)
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert len(lines.text.splitlines()) == 2
    with network.database.transaction(readonly=True) as session:
        logged = AuditStore.query(session, AuditQuery(event_codes=(EventTypes.AUDIT_EXPORT.code,)))
    assert len(logged) == 2
    for bad in (
        {"from": "2026-13-01", "to": "2026-12-31"},
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00Z"},
        {"to": "2026-01-01"},
        {"from": "2026-01-01", "to": "2026-02-01", "format": "xml"},
        {"from": "2026-01-01", "to": "2026-02-01", "organization": "12"},
        {"from": "2026-01-01", "to": "2026-02-01", "extra": "1"},
    ):
        refused = await client.get(url, params=bad, headers=supervisor)
        assert refused.status_code == 400, (bad, refused.text)
    reader = await _headers(client, network, "00000040", "audit:read", "GET", url)
    assert (await client.get(url, params=params, headers=reader)).status_code == 403
    with pytest.raises(TokenRequestError):
        await token_for(client, network, org="00000040", scope="audit:export")
