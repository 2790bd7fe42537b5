"""Each node's NVI registrations follow its FHIR store: the initial load at start-up, and on change."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete

from ldn.node import fhir_store
from ldn.node.fhir_api import node_fhir_service
from ldn.patterns.client import client_for
from ldn.patterns.driver import NetworkDriver
from ldn.patterns.holdings import holdings_changed, initial_load
from ldn.patterns.identity import authenticator_for
from tests.patterns.conftest import BSN_SYSTEM, GP, HOSPITAL, INTERNIST, node_ctx

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANNA = "999990007"
FINN = "999990056"  # only at the GP


async def _registered(driver: NetworkDriver, net: Any, bsn: str) -> set[tuple[str, str]]:
    ctx = node_ctx(net, HOSPITAL)
    professional = await authenticator_for(ctx, HOSPITAL).verify(driver.declaration(INTERNIST))
    records = await client_for(ctx, HOSPITAL).localization(professional).search(bsn)
    return {(r.custodian_ura, r.category) for r in records}


def _stored(net: Any, bsn: str) -> set[tuple[str, str]]:
    out = set()
    with net.database.transaction(readonly=True) as session:
        for org in net.topology.organizations:
            for category in fhir_store.stored_holdings(session, org.ura).get(bsn, set()):
                out.add((org.ura, category))
    return out


async def test_every_node_registered_what_it_holds_at_start_up(driver: NetworkDriver, net: Any) -> None:
    for bsn in (ANNA, FINN):
        stored = _stored(net, bsn)
        assert stored
        assert await _registered(driver, net, bsn) == stored
    assert {u for u, _ in _stored(net, ANNA)} == set(net.topology.citizen(ANNA).providers)


async def test_initial_load_again_creates_nothing(driver: NetworkDriver, net: Any) -> None:
    report = await initial_load(node_ctx(net, GP), GP)
    assert report.patients > 0 and report.summary.created == 0 and report.summary.existing > 0


async def test_a_change_in_the_store_is_registered(driver: NetworkDriver, net: Any) -> None:
    ctx = node_ctx(net, HOSPITAL)
    hasher = node_fhir_service(ctx, HOSPITAL).hasher
    patient = {
        "resourceType": "Patient",
        "id": "finn-at-hospital",
        "identifier": [{"system": BSN_SYSTEM, "value": FINN}],
        "name": [{"family": "Dekker"}],
    }
    condition = {
        "resourceType": "Condition",
        "id": "finn-fracture",
        "subject": {"reference": "Patient/finn-at-hospital"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "263204007", "display": "Fracture"}]},
    }
    items = [
        fhir_store.NewResource(patient, "Patient", None, hasher(FINN)),
        fhir_store.NewResource(condition, "Condition", None, hasher(FINN)),
    ]
    with net.database.transaction() as session:
        fhir_store.insert_resources(session, HOSPITAL, items)
    summary = await holdings_changed(ctx, HOSPITAL, FINN)
    assert summary.created == 2
    assert {(HOSPITAL, "Patient"), (HOSPITAL, "Condition")} <= await _registered(driver, net, FINN)
    with net.database.transaction() as session:
        table = fhir_store.node_fhir_resource
        session.execute(
            delete(table).where(
                table.c.node_ura == HOSPITAL, table.c.resource_id.in_(["finn-at-hospital", "finn-fracture"])
            )
        )
    removed = await holdings_changed(ctx, HOSPITAL, FINN)
    assert removed.deleted == 2
    assert not {u for u, _ in await _registered(driver, net, FINN)} & {HOSPITAL}
