"""Search in the mCSD directory (ITI-90): the mCSD parameters, includes, paging and bad input."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from ldn.addressing.codes import LDN_SERVICE_TYPE_SYSTEM, NICTIZ_ORG_TYPE_SYSTEM, PAYLOAD_TYPE_SYSTEM, SYSTEM_URA
from tests.addressing.conftest import MCSD, Stack, as_org
from tests.addressing.factories import organization

H = as_org("00000020")


async def ids(stack: Stack, query: str, **headers: str) -> list[str]:
    response = await stack.client.get(f"{MCSD}/{query}", headers={**H, **headers})
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"]


async def test_token_parameters(stack: Stack) -> None:
    assert await ids(stack, f"Organization?identifier={SYSTEM_URA}|00000040") == ["org-00000040"]
    assert await ids(stack, "Organization?identifier=00000040") == ["org-00000040"]
    assert await ids(stack, "Organization?identifier=http://other.system|00000040") == []
    gps = await ids(stack, f"Organization?type={NICTIZ_ORG_TYPE_SYSTEM}|Z3")
    assert gps == ["org-00000020", "org-00000030"]
    assert await ids(stack, "Organization?type=Z3,V4") == ["org-00000020", "org-00000030", "org-00000040"]
    assert len(await ids(stack, "Organization?active=true")) == 6
    assert await ids(stack, "Organization?active=false") == []
    notifications = await ids(stack, f"Endpoint?payload-type={PAYLOAD_TYPE_SYSTEM}|pull-notification")
    assert len(notifications) == 6 and all(i.endswith("-notification") for i in notifications)
    gps_services = await ids(stack, f"HealthcareService?service-type={LDN_SERVICE_TYPE_SYSTEM}|huisartsenzorg")
    assert gps_services == ["hs-00000020-huisartsenzorg", "hs-00000030-huisartsenzorg"]
    not_off = await ids(stack, "Endpoint?status:not=active")
    assert not_off == []
    assert len(await ids(stack, "Endpoint?connection-type=hl7-fhir-rest&_count=100")) == 12


async def test_string_parameters(stack: Stack) -> None:
    assert await ids(stack, "Organization?name=zieken") == ["org-00000040"]
    assert await ids(stack, "Organization?name=ZIEKENHUIS%20rijn") == ["org-00000040"]
    assert await ids(stack, "Organization?name:exact=Ziekenhuis Rijnstad") == ["org-00000040"]
    assert await ids(stack, "Organization?name:exact=ziekenhuis rijnstad") == []
    assert await ids(stack, "Organization?name:contains=linde") == ["org-00000020"]
    assert await ids(stack, "Organization?name=apotheek,ggz") == ["org-00000050", "org-00000070"]
    assert await ids(stack, "Organization?address-city=utrecht") == ["org-00000020", "org-00000050", "org-00000070"]


async def test_reference_parameters_and_missing(stack: Stack) -> None:
    await stack.client.put(
        f"{MCSD}/Organization/dept-1",
        headers={**as_org("00000040"), "Content-Type": "application/fhir+json"},
        json=organization("dept-1", name="Cardiologie", part_of="org-00000040"),
    )
    assert await ids(stack, "Organization?partof=Organization/org-00000040") == ["dept-1"]
    assert await ids(stack, "Organization?partof=org-00000040") == ["dept-1"]
    assert await ids(stack, f"Organization?partof={quote(MCSD)}/Organization/org-00000040") == ["dept-1"]
    assert await ids(stack, "Organization?partof:Organization=org-00000040") == ["dept-1"]
    top_level = await ids(stack, "Organization?partof:missing=true")
    assert "dept-1" not in top_level and len(top_level) == 6
    assert await ids(stack, "Organization?endpoint=Endpoint/ep-00000050-fhir") == ["org-00000050"]
    assert await ids(stack, "HealthcareService?organization=org-00000060") == [
        "hs-00000060-verpleeghuiszorg",
        "hs-00000060-verwijzing",
    ]
    kvk = await ids(stack, "Endpoint?organization:identifier=http://www.kvk.nl/|81234567&_count=100")
    assert len(kvk) == 9  # zorgsoft manages the endpoints of three practices
    bad = await stack.client.get(f"{MCSD}/Organization?partof=Endpoint/x", headers=H)
    assert bad.status_code == 400


async def test_include_and_revinclude(stack: Stack) -> None:
    response = await stack.client.get(
        f"{MCSD}/Organization?identifier=00000040&_include=Organization:endpoint"
        "&_revinclude=HealthcareService:organization",
        headers=H,
    )
    entries = response.json()["entry"]
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in entries}
    assert modes == {("Organization", "match"), ("Endpoint", "include"), ("HealthcareService", "include")}
    assert len([e for e in entries if e["resource"]["resourceType"] == "Endpoint"]) == 3
    assert len([e for e in entries if e["resource"]["resourceType"] == "HealthcareService"]) == 2
    services = await stack.client.get(
        f"{MCSD}/HealthcareService?service-type=verwijzing-ontvangen&_include=HealthcareService:endpoint"
        "&_include=HealthcareService:organization:Organization&_count=2",
        headers=H,
    )
    body = services.json()
    kinds = [e["resource"]["resourceType"] for e in body["entry"]]
    assert kinds.count("HealthcareService") == 2 and kinds.count("Endpoint") == 2 and kinds.count("Organization") == 2


async def test_paging_with_count_and_cursor(stack: Stack) -> None:
    seen: list[str] = []
    url: str | None = f"{MCSD}/Endpoint?_count=5&_total=accurate"
    pages = 0
    while url:
        body = (await stack.client.get(url, headers=H)).json()
        pages += 1
        if pages == 1:
            assert body["total"] == 18
        seen += [e["resource"]["id"] for e in body["entry"]]
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        assert pages < 10
    assert pages == 4 and len(seen) == 18 and len(set(seen)) == 18 and seen == sorted(seen)
    count_only = (await stack.client.get(f"{MCSD}/Endpoint?_count=0", headers=H)).json()
    assert count_only["total"] == 18 and count_only["entry"] == []
    no_total = (await stack.client.get(f"{MCSD}/Endpoint?_total=none", headers=H)).json()
    assert "total" not in no_total
    # Without `_total`, a result that does not fit one page is not counted; one that fits is.
    assert "total" not in (await stack.client.get(f"{MCSD}/Endpoint?_count=5", headers=H)).json()
    assert (await stack.client.get(f"{MCSD}/Endpoint?_count=50", headers=H)).json()["total"] == 18


async def test_last_updated_and_id(stack: Stack) -> None:
    org = (await stack.client.get(f"{MCSD}/Organization/org-00000070", headers=H)).json()
    stamp = org["meta"]["lastUpdated"]
    assert await ids(stack, f"Organization?_lastUpdated=ge{quote(stamp)}") == ["org-00000070"]
    assert len(await ids(stack, f"Organization?_lastUpdated=lt{quote(stamp)}")) == 5
    assert await ids(stack, "Organization?_lastUpdated=gt2999-01-01") == []
    assert len(await ids(stack, f"Organization?_lastUpdated={stamp[:4]}")) == 6
    assert len(await ids(stack, f"Organization?_lastUpdated=ne{stamp[:4]}")) == 0
    assert await ids(stack, "Organization?_id=org-00000050,org-00000060") == ["org-00000050", "org-00000060"]


async def test_unknown_parameters_follow_the_prefer_handling_rule(stack: Stack) -> None:
    lenient = await stack.client.get(f"{MCSD}/Organization?identifier=00000040&colour=blue", headers=H)
    body = lenient.json()
    assert lenient.status_code == 200
    assert [e["resource"]["id"] for e in body["entry"] if e["search"]["mode"] == "match"] == ["org-00000040"]
    outcome = next(e for e in body["entry"] if e["search"]["mode"] == "outcome")["resource"]
    assert outcome["issue"][0]["severity"] == "warning" and "colour" in outcome["issue"][0]["diagnostics"]
    assert "colour" not in body["link"][0]["url"]
    strict = await stack.client.get(
        f"{MCSD}/Organization?identifier=00000040&colour=blue", headers={**H, "Prefer": "handling=strict"}
    )
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["code"] == "not-supported"
    for query in ("name:sounds-like=x", "organization.name=x", "_sort=name", "_include=Endpoint:organization"):
        response = await stack.client.get(f"{MCSD}/Organization?{query}", headers={**H, "Prefer": "handling=strict"})
        assert response.status_code == 400, query
        assert (await stack.client.get(f"{MCSD}/Organization?{query}", headers=H)).status_code == 200, query


@pytest.mark.parametrize(
    "query",
    [
        "Organization?_count=1001",
        "Organization?_count=-1",
        "Organization?_count=ten",
        "Organization?active=maybe",
        "Organization?_lastUpdated=yesterday",
        "Organization?_lastUpdated=2026-13-01",
        "Organization?_cursor=../../etc",
        "Organization?_total=lots",
        "Organization?identifier=|",
        "Organization?_id=a/b",
    ],
)
async def test_bad_values_are_400(stack: Stack, query: str) -> None:
    response = await stack.client.get(f"{MCSD}/{query}", headers=H)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_count_beyond_the_maximum(stack: Stack) -> None:
    response = await stack.client.get(f"{MCSD}/Endpoint?_count=5000", headers=H)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["code"] == "too-costly" and "1000" in issue["diagnostics"]


async def test_post_search(stack: Stack) -> None:
    response = await stack.client.post(
        f"{MCSD}/Organization/_search", headers=H, data={"identifier": "00000050", "_count": "5"}
    )
    assert response.status_code == 200
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["org-00000050"]
    wrong = await stack.client.post(f"{MCSD}/Organization/_search", headers=H, json={"identifier": "x"})
    assert wrong.status_code == 415


async def test_combined_conditions_match_each_resource_once(stack: Stack) -> None:
    """Several conditions together (the driver and the checked ones differ per database), with a
    resource that matches one condition through two index rows (its name and its alias)."""
    cardio = {**organization("dept-cardio", name="Cardiologie", part_of="org-00000040"), "alias": ["Cardio Poli"]}
    created = await stack.client.put(
        f"{MCSD}/Organization/dept-cardio",
        headers={**as_org("00000040"), "Content-Type": "application/fhir+json"},
        json=cardio,
    )
    assert created.status_code == 201, created.text
    both = await stack.client.get(f"{MCSD}/Organization?name=cardio&active=true&_total=accurate", headers=H)
    assert [e["resource"]["id"] for e in both.json()["entry"]] == ["dept-cardio"]
    assert both.json()["total"] == 1
    assert await ids(stack, "Organization?name=cardio&partof=org-00000040&active=true") == ["dept-cardio"]
    assert await ids(stack, "Organization?name=cardio&partof=org-00000020") == []
    assert await ids(stack, "Organization?name=cardio&active:not=true") == []
    assert await ids(stack, "Organization?_id=org-00000020,org-00000040&type=Z3") == ["org-00000020"]
    stamp = (await stack.client.get(f"{MCSD}/Organization/dept-cardio", headers=H)).json()["meta"]["lastUpdated"]
    assert await ids(stack, f"Organization?active=true&_lastUpdated=ge{quote(stamp)}") == ["dept-cardio"]
    assert await ids(stack, f"Organization?active=true&_lastUpdated=lt{quote(stamp)}&type=V4") == ["org-00000040"]
    notifying = await ids(stack, "Endpoint?payload-type=pull-notification&status:not=off&connection-type=hl7-fhir-rest")
    assert len(notifying) == 6

    seen: list[str] = []
    url: str | None = f"{MCSD}/Endpoint?status=active&connection-type=hl7-fhir-rest&_count=5&_total=accurate"
    while url:
        body = (await stack.client.get(url, headers=H)).json()
        assert body.get("total", 12) == 12
        seen += [e["resource"]["id"] for e in body["entry"]]
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        assert len(seen) <= 12
    assert len(seen) == 12 and seen == sorted(set(seen))


async def test_oversized_searches_are_refused_before_they_cost(stack: Stack) -> None:
    """One request cannot make a statement the database refuses or one that runs for minutes."""
    many = ",".join(f"0000{i:04d}" for i in range(101))
    for query in (
        f"Organization?identifier={many}",
        f"Organization?_id={many}",
        "Organization?" + "&".join(f"name=a{i}" for i in range(51)),
        f"Organization?name={'x' * 2049}",
        f"Endpoint?organization={many}",
    ):
        response = await stack.client.get(f"{MCSD}/{query}", headers=H)
        assert response.status_code == 400, (query[:60], response.text[:200])
        assert response.json()["issue"][0]["code"] == "too-costly"
    huge = await stack.client.post(
        f"{MCSD}/Organization/_search", headers=H, data={"identifier": ",".join(str(i) for i in range(100_000))}
    )
    assert huge.status_code == 400 and huge.json()["issue"][0]["code"] == "too-costly"
    # At the limit, the search runs.
    limit = ",".join(["00000040", *(f"1{i:07d}" for i in range(99))])
    assert await ids(stack, f"Organization?identifier={limit}") == ["org-00000040"]


def test_a_runaway_query_is_stopped_on_postgresql(postgres: Any) -> None:
    """Behind the size limits: on PostgreSQL a directory read that runs too long is stopped and
    answered 503 `timeout` (the one error mapping), never left running."""
    from sqlalchemy import text

    from ldn.addressing.store import custom_plans
    from ldn.core.errors import error_response
    from ldn.core.storage import Database
    from tests.conftest import POSTGRES_ADMIN_URL

    database = Database(POSTGRES_ADMIN_URL)
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as stopped, database.transaction(readonly=True) as session:
            custom_plans(session, time_limit=0.2)
            session.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 3
        response = error_response(None, stopped.value)
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert json.loads(bytes(response.body))["issue"][0]["code"] == "timeout"
        with database.transaction(readonly=True) as session:  # the limit was local to that transaction
            assert session.execute(text("SHOW statement_timeout")).scalar() == "0"
    finally:
        database.dispose()
