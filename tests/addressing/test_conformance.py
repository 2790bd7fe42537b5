"""Conformance tests that the addressing agreements name by id (LAS-TA-ADDR-002, LAS-TA-ADDR-003).

Most rules are proven by the functional tests the agreements list as well; the ones here are
named after the rule they check, so an NTV report reads as the agreement does.
"""

from __future__ import annotations

import pytest

from tests.addressing.conftest import MCSD, Stack, as_org

WRITER = {**as_org("00000040"), "Content-Type": "application/fhir+json"}


@pytest.mark.xfail(
    strict=True,
    reason="LAS-TA-ADDR-002 1.0.0 (release 1.1.0) refuses DELETE; ldn implements version 1.1.0 of that "
    "agreement (release 2.0.0), where a DELETE sets the resource inactive: this rule of 1.0.0 is not met.",
)
async def test_delete_is_refused(stack: Stack) -> None:
    url = f"{MCSD}/Endpoint/ep-00000040-token"
    response = await stack.client.delete(url, headers={**WRITER, "If-Match": 'W/"1"'})
    assert response.status_code in (405, 409)
    assert (await stack.client.get(url, headers=WRITER)).json()["status"] == "active"


async def test_update_without_if_match_refused(stack: Stack) -> None:
    url = f"{MCSD}/Organization/org-00000040"
    current = (await stack.client.get(url, headers=WRITER)).json()
    response = await stack.client.put(url, headers=WRITER, json={**current, "name": "Rijnstad"})
    assert response.status_code == 428
    assert response.json()["issue"][0]["code"] == "required"
    assert (await stack.client.get(url, headers=WRITER)).json()["meta"]["versionId"] == current["meta"]["versionId"]


async def test_practitioner_resources_refused(stack: Stack) -> None:
    """No Practitioner or PractitionerRole in the address book: there is no legal basis (LAS-TA-ADDR-003)."""
    practitioner = {"resourceType": "Practitioner", "id": "p1", "name": [{"family": "Jansen"}]}
    role = {"resourceType": "PractitionerRole", "id": "r1", "organization": {"reference": "Organization/org-00000040"}}
    for rtype, body in (("Practitioner", practitioner), ("PractitionerRole", role)):
        created = await stack.client.post(f"{MCSD}/{rtype}", headers=WRITER, json=body)
        assert created.status_code == 404 and created.json()["issue"][0]["code"] == "not-supported", rtype
        put = await stack.client.put(f"{MCSD}/{rtype}/{body['id']}", headers=WRITER, json=body)
        assert put.status_code == 404, rtype
        searched = await stack.client.get(f"{MCSD}/{rtype}", headers=WRITER)
        assert searched.status_code == 404, rtype
    in_bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": practitioner, "request": {"method": "PUT", "url": "Practitioner/p1"}}],
    }
    assert (await stack.client.post(f"{MCSD}/", headers=WRITER, json=in_bundle)).status_code == 400
    # Nor can they be reached through the resources that are served.
    refused = await stack.client.get(
        f"{MCSD}/Organization?_revinclude=PractitionerRole:organization",
        headers={**WRITER, "Prefer": "handling=strict"},
    )
    assert refused.status_code == 400
    metadata = (await stack.client.get(f"{MCSD}/metadata")).json()
    served = {r["type"] for r in metadata["rest"][0]["resource"]}
    assert not served & {"Practitioner", "PractitionerRole"}
