"""The mCSD directory's write rules (ITI-130): validation, URA chain, mandates, If-Match, soft delete."""

from __future__ import annotations

import json

import pytest

from ldn.addressing.codes import SYSTEM_URA, source_uri
from tests.addressing.conftest import MCSD, Stack, as_org, if_match
from tests.addressing.factories import endpoint, location, mandate, organization, service

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def headers(org: str, **extra: str) -> dict[str, str]:
    return {**as_org(org), **FHIR_JSON, **extra}


def outcome_code(response) -> str:  # type: ignore[no-untyped-def]
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["code"])


async def test_topology_is_published_on_startup(stack: Stack, topology) -> None:  # type: ignore[no-untyped-def]
    for rtype, expected in (("Organization", 6), ("Endpoint", 18), ("HealthcareService", 12)):
        response = await stack.client.get(f"{MCSD}/{rtype}?_summary=count", headers=as_org("00000020"))
        assert response.json()["total"] == expected, rtype
    org = (await stack.client.get(f"{MCSD}/Organization/org-00000040", headers=as_org("00000030"))).json()
    assert org["identifier"][0] == {"use": "official", "system": SYSTEM_URA, "value": "00000040"}
    assert org["meta"]["source"] == source_uri("00000040")
    ep = (await stack.client.get(f"{MCSD}/Endpoint/ep-00000040-notification", headers=as_org("00000030"))).json()
    assert ep["address"] == f"{stack.directory.nodes['00000040']['fhir']}/Task"
    token = (await stack.client.get(f"{MCSD}/Endpoint/ep-00000040-token", headers=as_org("00000030"))).json()
    assert token["address"] == f"{stack.directory.nodes['00000040']['base']}/auth/token"


async def test_publication_is_idempotent(stack: Stack, topology) -> None:  # type: ignore[no-untyped-def]
    from ldn.addressing.publication import publish_topology

    report = await stack.database.run(publish_topology, stack.service, topology, stack.directory)
    assert report.written == 0 and report.registered == 0
    assert report.unchanged == 36
    history = (await stack.client.get(f"{MCSD}/_history?_count=100", headers=as_org("00000020"))).json()
    assert history["total"] == 36  # one version each, nothing new


async def test_create_read_update_with_versions_and_etags(stack: Stack) -> None:
    created = await stack.client.post(
        f"{MCSD}/Organization",
        headers=headers("00000040"),
        json=organization("x", name="Cardiologie", part_of="org-00000040"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    rid = body["id"]
    assert rid != "x"  # POST ignores a client id
    assert body["meta"]["versionId"] == "1"
    assert created.headers["etag"] == 'W/"1"'
    assert created.headers["location"] == f"{MCSD}/Organization/{rid}/_history/1"

    read = await stack.client.get(f"{MCSD}/Organization/{rid}", headers=as_org("00000020"))
    assert read.headers["etag"] == 'W/"1"' and read.headers["last-modified"].endswith("GMT")

    body["name"] = "Cardiologie en Hartchirurgie"
    updated = await stack.client.put(
        f"{MCSD}/Organization/{rid}", headers=headers("00000040", **{"If-Match": 'W/"1"'}), json=body
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["meta"]["versionId"] == "2"
    assert updated.headers["etag"] == 'W/"2"'
    assert updated.json()["meta"]["lastUpdated"] > body["meta"]["lastUpdated"]

    stale = await stack.client.put(
        f"{MCSD}/Organization/{rid}", headers=headers("00000040", **{"If-Match": 'W/"1"'}), json=body
    )
    assert stale.status_code == 412
    assert outcome_code(stale) == "conflict"

    v1 = await stack.client.get(f"{MCSD}/Organization/{rid}/_history/1", headers=as_org("00000020"))
    assert v1.json()["name"] == "Cardiologie"
    missing_version = await stack.client.get(f"{MCSD}/Organization/{rid}/_history/9", headers=as_org("00000020"))
    assert missing_version.status_code == 404


async def test_update_without_changes_makes_no_new_version(stack: Stack) -> None:
    current = (await stack.client.get(f"{MCSD}/Organization/org-00000020", headers=as_org("00000020"))).json()
    again = await stack.client.put(
        f"{MCSD}/Organization/org-00000020", headers=headers("00000020", **if_match(current)), json=current
    )
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == current["meta"]["versionId"]


async def test_put_creates_with_client_id_and_prefer_return(stack: Stack) -> None:
    minimal = await stack.client.put(
        f"{MCSD}/Location/loc-1",
        headers=headers("00000050", Prefer="return=minimal"),
        json=location("loc-1", "org-00000050"),
    )
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["location"].endswith("/Location/loc-1/_history/1")
    outcome = await stack.client.put(
        f"{MCSD}/Location/loc-1",
        headers=headers("00000050", Prefer="return=OperationOutcome", **{"If-Match": 'W/"1"'}),
        json={**location("loc-1", "org-00000050"), "name": "Hoofdlocatie"},
    )
    assert outcome.status_code == 200 and outcome.json()["resourceType"] == "OperationOutcome"


async def test_delete_sets_inactive_and_keeps_the_resource(stack: Stack) -> None:
    response = await stack.client.delete(
        f"{MCSD}/Endpoint/ep-00000030-token", headers={**as_org("00000030"), "If-Match": 'W/"1"'}
    )
    assert response.status_code == 200
    assert response.json()["resourceType"] == "OperationOutcome"
    kept = (await stack.client.get(f"{MCSD}/Endpoint/ep-00000030-token", headers=as_org("00000030"))).json()
    assert kept["status"] == "off" and kept["meta"]["versionId"] == "2"
    again = await stack.client.delete(
        f"{MCSD}/Endpoint/ep-00000030-token", headers={**as_org("00000030"), "If-Match": 'W/"2"'}
    )
    assert again.status_code == 200 and "already inactive" in again.text
    org = await stack.client.delete(
        f"{MCSD}/Organization/org-00000030", headers={**as_org("00000030"), "If-Match": 'W/"1"'}
    )
    assert org.status_code == 200
    assert (await stack.client.get(f"{MCSD}/Organization/org-00000030", headers=as_org("00000030"))).json()[
        "active"
    ] is False
    stale = await stack.client.delete(
        f"{MCSD}/Organization/org-00000030", headers={**as_org("00000030"), "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    unknown = await stack.client.delete(f"{MCSD}/Organization/nope", headers=as_org("00000030"))
    assert unknown.status_code == 404


async def test_changes_need_if_match(stack: Stack) -> None:
    """LAS-TA-ADDR-002: changing an existing resource needs If-Match (428 without, 412 when stale)."""
    url = f"{MCSD}/Endpoint/ep-00000020-fhir"
    current = (await stack.client.get(url, headers=as_org("00000020"))).json()
    changed = {**current, "address": "https://linde.example.org/fhir"}
    blind = await stack.client.put(url, headers=headers("00000020"), json=changed)
    assert blind.status_code == 428 and outcome_code(blind) == "required"
    blind_delete = await stack.client.delete(url, headers=as_org("00000020"))
    assert blind_delete.status_code == 428
    blind_bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": location("loc-tx", "org-00000020"), "request": {"method": "PUT", "url": "Location/loc-tx"}},
            {"resource": changed, "request": {"method": "PUT", "url": "Endpoint/ep-00000020-fhir"}},
        ],
    }
    refused = await stack.client.post(f"{MCSD}/", headers=headers("00000020"), json=blind_bundle)
    assert refused.status_code == 428 and "entry 1" in refused.json()["issue"][0]["diagnostics"]
    assert (await stack.client.get(f"{MCSD}/Location/loc-tx", headers=as_org("00000020"))).status_code == 404
    assert (await stack.client.get(url, headers=as_org("00000020"))).json()["meta"]["versionId"] == "1"

    blind_bundle["entry"][1]["request"]["ifMatch"] = 'W/"1"'
    done = await stack.client.post(f"{MCSD}/", headers=headers("00000020"), json=blind_bundle)
    assert done.status_code == 200, done.text
    assert [e["response"]["status"] for e in done.json()["entry"]] == ["201 Created", "200 OK"]
    # Creating with a client id needs no version; a replayed change with the old one is stale.
    created = await stack.client.put(
        f"{MCSD}/Location/loc-new", headers=headers("00000020"), json=location("loc-new", "org-00000020")
    )
    assert created.status_code == 201
    replayed = await stack.client.put(url, headers=headers("00000020", **if_match(current)), json=changed)
    assert replayed.status_code == 412


async def test_a_replayed_create_with_if_none_exist_creates_once(stack: Stack) -> None:
    body = endpoint("e", custodian="00000020", address="https://linde.example.org/notify")
    body["identifier"][0]["value"] = "urn:uuid:7d3f0c52-5a7e-4a55-9d1e-1c2b3a4d5e6f"
    condition = {"If-None-Exist": "identifier=urn:ietf:rfc:3986|urn:uuid:7d3f0c52-5a7e-4a55-9d1e-1c2b3a4d5e6f"}
    first = await stack.client.post(f"{MCSD}/Endpoint", headers=headers("00000020", **condition), json=body)
    assert first.status_code == 201, first.text
    replay = await stack.client.post(f"{MCSD}/Endpoint", headers=headers("00000020", **condition), json=body)
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    assert replay.headers["etag"] == 'W/"1"'
    found = await stack.client.get(
        f"{MCSD}/Endpoint?identifier=urn:uuid:7d3f0c52-5a7e-4a55-9d1e-1c2b3a4d5e6f", headers=as_org("00000020")
    )
    assert len(found.json()["entry"]) == 1
    # Someone without a mandate for what the condition finds is refused, not told "found".
    foreign = await stack.client.post(f"{MCSD}/Endpoint", headers=headers("00000030", **condition), json=body)
    assert foreign.status_code == 403
    # A condition matching several resources, or an unknown or empty one, is refused.
    several = await stack.client.post(
        f"{MCSD}/Endpoint", headers=headers("00000020", **{"If-None-Exist": "status=active"}), json=body
    )
    assert several.status_code == 412
    for bad in ("colour=blue", "", "_count=1"):
        refused = await stack.client.post(
            f"{MCSD}/Endpoint", headers=headers("00000020", **{"If-None-Exist": bad}), json=body
        )
        assert refused.status_code == 400, bad
    # In a transaction, a found resource is what the entry's urn:uuid refers to.
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b6e2a7c-9d51-4f0e-8a3b-5c6d7e8f9a0b",
                "resource": body,
                "request": {"method": "POST", "url": "Endpoint", "ifNoneExist": condition["If-None-Exist"]},
            },
            {
                "resource": {
                    **service("hs-notify", "org-00000020", code="verwijzing-ontvangen"),
                    "endpoint": [{"reference": "urn:uuid:0b6e2a7c-9d51-4f0e-8a3b-5c6d7e8f9a0b"}],
                },
                "request": {"method": "POST", "url": "HealthcareService"},
            },
        ],
    }
    done = await stack.client.post(f"{MCSD}/", headers=headers("00000020"), json=bundle)
    assert done.status_code == 200, done.text
    statuses = [e["response"]["status"] for e in done.json()["entry"]]
    assert statuses == ["200 OK", "201 Created"]
    created = done.json()["entry"][1]["response"]["location"].split("/_history")[0]
    hs = (await stack.client.get(f"{MCSD}/{created}", headers=as_org("00000020"))).json()
    assert hs["endpoint"] == [{"reference": f"Endpoint/{first.json()['id']}"}]


async def test_if_match_optional_when_configured(stack: Stack) -> None:
    stack.service.settings = stack.service.settings.model_copy(update={"require_if_match": False})
    url = f"{MCSD}/Endpoint/ep-00000020-fhir"
    current = (await stack.client.get(url, headers=as_org("00000020"))).json()
    changed = {**current, "address": "https://linde.example.org/fhir"}
    updated = await stack.client.put(url, headers=headers("00000020"), json=changed)
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"
    stale = await stack.client.put(url, headers=headers("00000020", **if_match(current)), json=current)
    assert stale.status_code == 412  # a version that is sent is still checked


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"resourceType": "Organization", "name": 12, "active": "yes"}, 400, "structure"),  # invalid FHIR
        ({"resourceType": "Organization", "bogus": True}, 400, "structure"),  # unknown element
        ({"resourceType": "Patient", "id": "p"}, 400, "invalid"),  # wrong type for the URL
        (organization("o1", name="Los"), 422, "business-rule"),  # no URA, no partOf
        (organization("o2", part_of="does-not-exist"), 422, "business-rule"),  # chain to nowhere
        (organization("o3", ura="12345678"), 422, "business-rule"),  # URA not in the LRZa
        (organization("o4", ura="1234"), 400, "value"),  # malformed URA
    ],
)
async def test_invalid_or_unchained_resources_are_refused(stack: Stack, body, status, code) -> None:  # type: ignore[no-untyped-def]
    response = await stack.client.post(f"{MCSD}/Organization", headers=headers("00000020"), json=body)
    assert response.status_code == status, response.text
    assert outcome_code(response) == code


async def test_every_type_needs_a_chain(stack: Stack) -> None:
    cases = [
        ("Endpoint", endpoint("e1")),
        ("HealthcareService", {**service("h1", "org-00000020"), "providedBy": {"display": "no reference"}}),
        ("Location", {**location("l1", "org-00000020"), "managingOrganization": {"reference": "Organization/zzz"}}),
        ("Endpoint", endpoint("e2", custodian="00000099")),  # custodian URA without an Organization
    ]
    for rtype, body in cases:
        response = await stack.client.post(f"{MCSD}/{rtype}", headers=headers("00000020"), json=body)
        assert response.status_code == 422, (rtype, response.text)
        assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "no-ura-chain"
    ok = await stack.client.post(
        f"{MCSD}/Endpoint", headers=headers("00000020"), json=endpoint("e3", custodian="00000020")
    )
    assert ok.status_code == 201


async def test_writes_without_a_mandate_are_refused(stack: Stack) -> None:
    # 00000030 writes for 00000040 without a mandate: refused.
    refused = await stack.client.post(
        f"{MCSD}/Endpoint", headers=headers("00000030"), json=endpoint("e", owner_org="org-00000040")
    )
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "no-mandate"
    # Nor may it change (or hijack by re-pointing) another provider's resource.
    ep = (await stack.client.get(f"{MCSD}/Endpoint/ep-00000040-fhir", headers=as_org("00000030"))).json()
    hijack = {**ep, "identifier": [], "managingOrganization": {"reference": "Organization/org-00000030"}}
    response = await stack.client.put(f"{MCSD}/Endpoint/ep-00000040-fhir", headers=headers("00000030"), json=hijack)
    assert response.status_code == 403
    deleting = await stack.client.delete(f"{MCSD}/HealthcareService/hs-00000040-verwijzing", headers=as_org("00000030"))
    assert deleting.status_code == 403


async def test_a_mandate_lets_another_organisation_publish(stack: Stack) -> None:
    # The mandated party may not register the mandate itself.
    self_made = await stack.client.put(
        f"{MCSD}/OrganizationAffiliation/m1",
        headers=headers("00000050"),
        json=mandate("m1", "org-00000040", "00000050"),
    )
    assert self_made.status_code == 403
    made = await stack.client.put(
        f"{MCSD}/OrganizationAffiliation/m1",
        headers=headers("00000040"),
        json=mandate("m1", "org-00000040", "00000050"),
    )
    assert made.status_code == 201, made.text
    allowed = await stack.client.post(
        f"{MCSD}/Endpoint", headers=headers("00000050"), json=endpoint("e", owner_org="org-00000040")
    )
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["meta"]["source"] == source_uri("00000050")
    # Still refused for an organisation without a mandate.
    other = await stack.client.post(
        f"{MCSD}/Endpoint", headers=headers("00000060"), json=endpoint("e", owner_org="org-00000040")
    )
    assert other.status_code == 403
    # Withdrawing the mandate (delete = inactive) withdraws the right.
    withdrawn = await stack.client.delete(
        f"{MCSD}/OrganizationAffiliation/m1", headers={**as_org("00000040"), "If-Match": 'W/"1"'}
    )
    assert withdrawn.status_code == 200
    again = await stack.client.post(
        f"{MCSD}/Endpoint", headers=headers("00000050"), json=endpoint("e", owner_org="org-00000040")
    )
    assert again.status_code == 403


async def test_ura_rules_duplicate_and_immutable(stack: Stack) -> None:
    duplicate = await stack.client.post(
        f"{MCSD}/Organization", headers=headers("00000020"), json=organization("d", ura="00000020")
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["issue"][0]["code"] == "duplicate"
    current = (await stack.client.get(f"{MCSD}/Organization/org-00000020", headers=as_org("00000020"))).json()
    current["identifier"] = [{"system": SYSTEM_URA, "value": "00000030"}]
    # Without a mandate from 00000030, taking its URA is refused outright ...
    refused = await stack.client.put(f"{MCSD}/Organization/org-00000020", headers=headers("00000020"), json=current)
    assert refused.status_code == 403
    # ... and with one, a URA still never changes.
    await stack.client.put(
        f"{MCSD}/OrganizationAffiliation/m-30-20",
        headers=headers("00000030"),
        json=mandate("m-30-20", "org-00000030", "00000020"),
    )
    changed = await stack.client.put(
        f"{MCSD}/Organization/org-00000020", headers=headers("00000020", **if_match(current)), json=current
    )
    assert changed.status_code == 422
    assert changed.json()["issue"][0]["details"]["coding"][0]["code"] == "ura-immutable"


async def test_request_level_bad_input(stack: Stack) -> None:
    url = f"{MCSD}/Organization/org-00000020"
    current = (await stack.client.get(url, headers=as_org("00000020"))).json()
    mismatch = await stack.client.put(f"{MCSD}/Organization/other-id", headers=headers("00000020"), json=current)
    assert mismatch.status_code == 400
    bad_etag = await stack.client.put(url, headers=headers("00000020", **{"If-Match": "version-one"}), json=current)
    assert bad_etag.status_code == 400
    not_json = await stack.client.put(url, headers=headers("00000020"), content=b"{not json")
    assert not_json.status_code == 400 and outcome_code(not_json) == "structure"
    wrong_media = await stack.client.put(
        url, headers={**as_org("00000020"), "Content-Type": "text/plain"}, content=json.dumps(current)
    )
    assert wrong_media.status_code == 415
    unknown_type = await stack.client.get(f"{MCSD}/Patient", headers=as_org("00000020"))
    assert unknown_type.status_code == 404 and outcome_code(unknown_type) == "not-supported"
    bad_id = await stack.client.get(f"{MCSD}/Organization/{'x' * 65}", headers=as_org("00000020"))
    assert bad_id.status_code == 400
    too_big = await stack.client.post(
        f"{MCSD}/Organization",
        headers=headers("00000020"),
        content=b'{"resourceType":"Organization","name":"' + b"x" * (11 * 1024 * 1024) + b'"}',
    )
    assert too_big.status_code == 413
    anonymous = await stack.client.get(f"{MCSD}/Organization")
    assert anonymous.status_code == 401


async def test_transaction_is_all_or_nothing(stack: Stack) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1c1b48-39f4-4c1e-9a51-2d8d0c1c0a01",
                "resource": organization("tmp", name="Poli", part_of="org-00000040"),
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "resource": {
                    **service("hs-poli", "x", code="ziekenhuiszorg"),
                    "providedBy": {"reference": "urn:uuid:6f1c1b48-39f4-4c1e-9a51-2d8d0c1c0a01"},
                },
                "request": {"method": "PUT", "url": "HealthcareService/hs-poli"},
            },
        ],
    }
    done = await stack.client.post(f"{MCSD}/", headers=headers("00000040"), json=bundle)
    assert done.status_code == 200, done.text
    statuses = [e["response"]["status"] for e in done.json()["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    hs = (await stack.client.get(f"{MCSD}/HealthcareService/hs-poli", headers=as_org("00000040"))).json()
    assert hs["providedBy"]["reference"].startswith("Organization/")

    failing = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": location("loc-ok", "org-00000040"), "request": {"method": "PUT", "url": "Location/loc-ok"}},
            {"resource": location("loc-bad", "org-00000030"), "request": {"method": "PUT", "url": "Location/loc-bad"}},
        ],
    }
    refused = await stack.client.post(f"{MCSD}/", headers=headers("00000040"), json=failing)
    assert refused.status_code == 403
    assert "entry 1" in refused.json()["issue"][0]["diagnostics"]
    nothing = await stack.client.get(f"{MCSD}/Location/loc-ok", headers=as_org("00000040"))
    assert nothing.status_code == 404  # the first entry was rolled back with the second
    not_a_transaction = await stack.client.post(
        f"{MCSD}/", headers=headers("00000040"), json={"resourceType": "Bundle", "type": "batch", "entry": []}
    )
    assert not_a_transaction.status_code == 400


async def test_capability_statement(stack: Stack) -> None:
    response = await stack.client.get(f"{MCSD}/metadata")
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    types = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(types) == {"Organization", "Location", "HealthcareService", "Endpoint", "OrganizationAffiliation"}
    org_params = {p["name"] for p in types["Organization"]["searchParam"]}
    assert {"identifier", "name", "type", "active", "partof", "endpoint", "_lastUpdated"} <= org_params
    assert "Endpoint:organization" not in types["Organization"]["searchInclude"]
    assert "Organization:endpoint" in types["Organization"]["searchInclude"]
    assert "HealthcareService:organization" in types["Organization"]["searchRevInclude"]
    assert {"code": "history-system"} in body["rest"][0]["interaction"]
