"""`_history` (ITI-91): type, system and instance level, `_since`, cursor paging, versions."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.addressing.conftest import MCSD, Stack, as_org, if_match

H = as_org("00000020")
W = {**as_org("00000040"), "Content-Type": "application/fhir+json"}


async def follow(stack: Stack, url: str) -> tuple[list[dict], int]:  # type: ignore[type-arg]
    entries: list[dict] = []  # type: ignore[type-arg]
    pages = 0
    next_url: str | None = url
    while next_url:
        response = await stack.client.get(next_url, headers=H)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["type"] == "history"
        entries += body["entry"]
        pages += 1
        next_url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
    return entries, pages


async def test_system_and_type_history(stack: Stack) -> None:
    everything, pages = await follow(stack, f"{MCSD}/_history?_count=10&_sort=_lastUpdated")
    assert len(everything) == 36 and pages == 4
    stamps = [e["response"]["lastModified"] for e in everything]
    assert stamps == sorted(stamps) and len(set(stamps)) == 36  # strictly increasing
    first = everything[0]
    assert first["request"] == {"method": "POST", "url": "Organization"}
    assert first["response"]["status"] == "201 Created" and first["response"]["etag"] == 'W/"1"'
    assert first["fullUrl"] == f"{MCSD}/Organization/{first['resource']['id']}"
    endpoints, _ = await follow(stack, f"{MCSD}/Endpoint/_history?_count=100")
    assert len(endpoints) == 18 and {e["resource"]["resourceType"] for e in endpoints} == {"Endpoint"}
    newest_first, _ = await follow(stack, f"{MCSD}/_history?_count=7")
    assert [e["resource"]["id"] for e in newest_first] == [e["resource"]["id"] for e in reversed(everything)]


async def test_since_returns_changes_with_versions(stack: Stack) -> None:
    body = (await stack.client.get(f"{MCSD}/_history?_count=1", headers=H)).json()
    mark = body["meta"]["lastUpdated"]
    org = (await stack.client.get(f"{MCSD}/Organization/org-00000040", headers=H)).json()
    org["name"] = "Ziekenhuis Rijnstad (locatie Arnhem)"
    updated = await stack.client.put(f"{MCSD}/Organization/org-00000040", headers={**W, **if_match(org)}, json=org)
    assert updated.status_code == 200, updated.text
    deleted = await stack.client.delete(f"{MCSD}/Endpoint/ep-00000040-token", headers={**W, "If-Match": 'W/"1"'})
    assert deleted.status_code == 200, deleted.text
    changes, _ = await follow(stack, f"{MCSD}/_history?_since={quote(mark)}&_sort=_lastUpdated")
    # `_since` is inclusive: the last version before the changes comes back too.
    assert [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in changes][-2:] == [
        ("org-00000040", "2"),
        ("ep-00000040-token", "2"),
    ]
    assert changes[-1]["resource"]["status"] == "off"  # a delete is a new, inactive version
    assert changes[-1]["request"] == {"method": "PUT", "url": "Endpoint/ep-00000040-token"}
    instance, _ = await follow(stack, f"{MCSD}/Organization/org-00000040/_history")
    assert [e["resource"]["meta"]["versionId"] for e in instance] == ["2", "1"]
    type_level, _ = await follow(stack, f"{MCSD}/Organization/_history?_since={quote(mark)}")
    assert [e["resource"]["id"] for e in type_level] == ["org-00000040"]


async def test_history_bad_input(stack: Stack) -> None:
    for query, status in (
        ("_history?_count=1001", 400),
        ("_history?_count=0", 400),
        ("_history?_since=not-a-date", 400),
        ("_history?_cursor=abc", 400),
        ("_history?" + "&".join(f"_at={i}" for i in range(51)), 400),
        (f"_history?_since={'2' * 2049}", 400),
        ("Patient/_history", 404),
    ):
        response = await stack.client.get(f"{MCSD}/{query}", headers=H)
        assert response.status_code == status, query
        assert response.json()["resourceType"] == "OperationOutcome"
    lenient = await stack.client.get(f"{MCSD}/_history?_at=2026&_count=1", headers=H)
    assert lenient.status_code == 200 and lenient.json()["entry"][-1]["search"]["mode"] == "outcome"
    strict = await stack.client.get(f"{MCSD}/_history?_at=2026", headers={**H, "Prefer": "handling=strict"})
    assert strict.status_code == 400
    anonymous = await stack.client.get(f"{MCSD}/_history")
    assert anonymous.status_code == 401


@pytest.mark.parametrize("level", ["_history", "Endpoint/_history"])
async def test_cursor_pages_do_not_repeat_or_skip_under_writes(stack: Stack, level: str) -> None:
    first = (await stack.client.get(f"{MCSD}/{level}?_count=5&_sort=_lastUpdated", headers=H)).json()
    # A write between pages lands at the end (ascending order), so nothing shifts.
    deleted = await stack.client.delete(
        f"{MCSD}/Endpoint/ep-00000020-fhir", headers={**as_org("00000020"), "If-Match": 'W/"1"'}
    )
    assert deleted.status_code == 200, deleted.text
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    rest, _ = await follow(stack, next_url)
    ids = [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in first["entry"] + rest]
    assert len(ids) == len(set(ids))
    assert ids[-1] == ("ep-00000020-fhir", "2")
