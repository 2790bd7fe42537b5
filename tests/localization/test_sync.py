"""The node-side client and synchroniser: initial load from the topology, changes, PRS rotation."""

from __future__ import annotations

import pytest

from ldn.core.topology import Topology
from ldn.localization.nvi import store
from ldn.localization.sync import (
    DEFAULT_CATEGORIES_BY_TYPE,
    Holding,
    NviSynchroniser,
    StaticHoldings,
    TopologyHoldings,
)
from tests.localization.conftest import NVI_RECIPIENT, Loc, make_bsn

SEARCHER = "00000050"


async def test_initial_load_registers_what_every_node_holds(loc: Loc, topology: Topology) -> None:
    for org in topology.organizations:
        report = await NviSynchroniser(loc.node_client(org.ura)).initial_load(TopologyHoldings(topology, org.ura))
        holders = [c for c in topology.citizens if org.ura in c.providers]
        assert report.patients == len(holders)
        assert report.summary.created == len(holders) * len(DEFAULT_CATEGORIES_BY_TYPE[org.type])
    searcher = loc.node_client(SEARCHER)
    for citizen in topology.citizens[:6]:
        found = await searcher.search(citizen.bsn)
        expected = {
            (ura, category)
            for ura in citizen.providers
            for category in DEFAULT_CATEGORIES_BY_TYPE[topology.organization(ura).type]
        }
        assert {(r.custodian_ura, r.category) for r in found} == expected
    # Running the initial load again creates nothing: registration is idempotent.
    again = await NviSynchroniser(loc.node_client("00000020")).initial_load(TopologyHoldings(topology, "00000020"))
    assert again.summary.created == 0 and again.summary.existing > 0


async def test_on_change_replaces_and_removes(loc: Loc) -> None:
    bsn = make_bsn(4000)
    sync = NviSynchroniser(loc.node_client("00000030"))
    await sync.initial_load(StaticHoldings([Holding(bsn, frozenset({"Condition", "Encounter"}))]))
    await sync.on_change(bsn, {"Encounter", "Imaging"})
    found = await loc.node_client(SEARCHER).search(bsn)
    assert {r.category for r in found} == {"Encounter", "Imaging"}
    summary = await sync.on_change(bsn, set())
    assert summary.deleted == 2
    assert await loc.node_client(SEARCHER).search(bsn) == []


async def test_bulk_load_spans_several_bundles_and_prs_batches(loc: Loc) -> None:
    client = loc.node_client("00000040", prs_batch_size=7, bundle_size=10)
    holdings = [Holding(make_bsn(4100 + i), frozenset({"Condition", "Imaging"})) for i in range(25)]
    report = await NviSynchroniser(client, chunk_patients=9).initial_load(StaticHoldings(holdings))
    assert report.patients == 25 and report.summary.created == 50
    assert len(await loc.node_client(SEARCHER).search(holdings[-1].bsn)) == 2


def test_holdings_are_validated_and_never_show_a_bsn() -> None:
    holding = Holding("999990019", frozenset({"Condition"}))
    assert "999990019" not in repr(holding)
    with pytest.raises(ValueError, match="BSN"):
        Holding("123456789", frozenset({"Condition"}))
    with pytest.raises(ValueError, match="category"):
        Holding("999990019", frozenset({"Astrology"}))


async def test_prs_key_rotation_transition_and_re_registration(fast_loc: Loc) -> None:
    """Rotate the NVI's PRS key: old records stay findable during the transition (the client
    asks for every active version), the synchroniser re-registers, the old version is retired
    and its records purged."""
    loc = fast_loc
    org = "00000020"
    holdings = StaticHoldings([Holding(make_bsn(4200 + i), frozenset({"Condition"})) for i in range(5)])
    sync = NviSynchroniser(loc.node_client(org))
    await sync.initial_load(holdings)
    searcher = loc.node_client(SEARCHER)
    bsn = holdings.items[0].bsn

    assert loc.prs.rotate(*NVI_RECIPIENT) == 2
    assert await searcher.active_key_versions() == ["1", "2"]
    # A client that asks only for the current version no longer finds the old records ...
    assert await searcher.search(bsn, all_key_versions=False) == []
    # ... one that asks for every active version does.
    assert len(await searcher.search(bsn)) == 1

    report = await sync.initial_load(holdings)  # re-registration under version 2
    assert report.summary.created == 5
    assert len(await searcher.search(bsn, all_key_versions=False)) == 1
    assert len(await searcher.search(bsn)) == 1  # one answer per fact, not one per version

    loc.prs.retire(*NVI_RECIPIENT, 1)
    with loc.network.database.transaction() as session:
        assert store.purge_oprf_version_batch(session, "1", 1000) == 5
    assert await searcher.active_key_versions() == ["2"]
    assert len(await searcher.search(bsn)) == 1


async def test_client_with_a_real_token_client(loc: Loc) -> None:
    """`token_auth` adapts ldn.auth's TokenClient (cached tokens per scope, DPoP proofs)."""
    from ldn.localization.client import LocalizationClient, token_auth
    from tests.auth_helpers import token_client, token_endpoint

    tokens = token_client(loc.client, loc.network, "00000030", dpop=True)
    client = LocalizationClient(
        loc.client,
        prs_url=loc.prs_url,
        nvi_url=loc.nvi_url,
        auth=token_auth(tokens, token_endpoint(loc.network, "auth")),
        custodian_ura="00000030",
    )
    bsn = make_bsn(4300)
    summary = await client.register(bsn, {"Encounter"})
    assert summary.created == 1
    assert await client.delete(bsn) == 1
