"""The LRZa register: FHIR read and search of Organization, and the sources linked to each URA."""

from __future__ import annotations

from ldn.addressing.codes import LRZA_SOURCE_EXTENSION, NICTIZ_ORG_TYPE_SYSTEM, SYSTEM_AGB, SYSTEM_URA
from ldn.addressing.lrza import sources_from_fhir
from tests.addressing.conftest import LRZA, MCSD, Stack, as_org
from tests.addressing.factories import mandate

H = as_org("00000030")


async def search_ids(stack: Stack, query: str) -> list[str]:
    response = await stack.client.get(f"{LRZA}/Organization?{query}", headers=H)
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json()["entry"] if e["search"]["mode"] == "match"]


async def test_register_is_seeded_from_the_topology(stack: Stack, topology) -> None:  # type: ignore[no-untyped-def]
    body = (await stack.client.get(f"{LRZA}/Organization", headers=H)).json()
    assert body["total"] == len(topology.organizations)
    hospital = (await stack.client.get(f"{LRZA}/Organization/00000040", headers=H)).json()
    assert hospital["name"] == "Ziekenhuis Rijnstad" and hospital["active"] is True
    assert {"system": SYSTEM_AGB, "value": "06000040"} in hospital["identifier"]
    assert sources_from_fhir(hospital) == {"00000040"}
    vendor = next(e for e in hospital["extension"] if e["url"].endswith("lrza-software-vendor"))
    assert vendor["valueReference"]["identifier"]["value"] == "82345678"  # Medisys


async def test_search_parameters(stack: Stack) -> None:
    assert await search_ids(stack, f"identifier={SYSTEM_URA}|00000050") == ["00000050"]
    assert await search_ids(stack, "identifier=01000030") == ["00000030"]  # AGB, no system
    assert await search_ids(stack, "identifier=http://elsewhere|00000050") == []
    assert await search_ids(stack, "name=gezondheids") == ["00000030"]
    assert await search_ids(stack, "name:contains=hoven") == ["00000060"]
    assert await search_ids(stack, f"type={NICTIZ_ORG_TYPE_SYSTEM}|J8") == ["00000050"]
    assert await search_ids(stack, "type=huisartspraktijk") == ["00000020", "00000030"]
    assert len(await search_ids(stack, "active=true&_count=2")) == 2
    assert await search_ids(stack, "_lastUpdated=gt2999") == []


async def test_paging_and_bad_input(stack: Stack) -> None:
    first = (await stack.client.get(f"{LRZA}/Organization?_count=4", headers=H)).json()
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = (await stack.client.get(next_url, headers=H)).json()
    assert [e["resource"]["id"] for e in first["entry"] + second["entry"]] == sorted(
        e["resource"]["id"] for e in first["entry"] + second["entry"]
    )
    assert len(first["entry"] + second["entry"]) == 6
    many = ",".join(f"1{i:07d}" for i in range(101))
    oversized = (f"identifier={many}", f"_id={many}", "&".join(f"name=a{i}" for i in range(51)), f"name={'x' * 2049}")
    for query in ("_count=5000", "active=perhaps", "_lastUpdated=soon", "_cursor=abc", *oversized):
        response = await stack.client.get(f"{LRZA}/Organization?{query}", headers=H)
        assert response.status_code == 400, query[:60]
        assert response.json()["resourceType"] == "OperationOutcome"
    lenient = (await stack.client.get(f"{LRZA}/Organization?shoe-size=42", headers=H)).json()
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"
    strict = await stack.client.get(f"{LRZA}/Organization?shoe-size=42", headers={**H, "Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert (await stack.client.get(f"{LRZA}/Organization/12345678", headers=H)).status_code == 404
    assert (await stack.client.get(f"{LRZA}/Organization/1234", headers=H)).status_code == 400
    assert (await stack.client.get(f"{LRZA}/Organization")).status_code == 401
    assert (await stack.client.get(f"{LRZA}/metadata")).json()["resourceType"] == "CapabilityStatement"


async def test_a_mandate_links_a_source_and_bumps_the_entry(stack: Stack) -> None:
    before = (await stack.client.get(f"{LRZA}/Organization/00000060", headers=H)).json()
    response = await stack.client.put(
        f"{MCSD}/OrganizationAffiliation/mandate-60",
        headers={**as_org("00000060"), "Content-Type": "application/fhir+json"},
        json=mandate("mandate-60", "org-00000060", "00000020"),
    )
    assert response.status_code == 201, response.text
    after = (await stack.client.get(f"{LRZA}/Organization/00000060", headers=H)).json()
    assert sources_from_fhir(after) == {"00000060", "00000020"}
    assert int(after["meta"]["versionId"]) == int(before["meta"]["versionId"]) + 1
    assert after["meta"]["lastUpdated"] > before["meta"]["lastUpdated"]
    changed = await search_ids(stack, f"_lastUpdated=gt{after['meta']['lastUpdated'][:19]}")
    assert changed in ([], ["00000060"])
    since = await search_ids(stack, f"_lastUpdated=ge{before['meta']['lastUpdated'].replace('+', '%2B')}")
    assert "00000060" in since
    assert [e for e in after["extension"] if e["url"] == LRZA_SOURCE_EXTENSION][1]["valueIdentifier"]["value"] == (
        "00000020"
    )
