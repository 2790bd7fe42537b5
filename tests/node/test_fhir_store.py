"""The node FHIR store: BSN hash key, idempotent loading, no BSN in indexed columns, search SQL."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from ldn.core.config import CoreSettings
from ldn.core.http import HttpClientFactory
from ldn.core.service import NetworkDirectory, ServiceContext
from ldn.core.storage import Database
from ldn.core.topology import Topology
from ldn.ehr import holdings, node_resources
from ldn.node import fhir_store as store
from ldn.node.fhir_api import NodeFhirService
from ldn.node.fhir_store import BsnHasher, DateFilter, SearchCriteria, TokenFilter

GP, PHARMACY = "00000020", "00000050"
ANNA = "999990007"


def _service(settings: CoreSettings, topology: Topology, database: Database, ura: str) -> NodeFhirService:
    ctx = ServiceContext(
        name=f"node-{ura}",
        base_url=f"http://ldn.test/nodes/{ura}",
        settings=settings,
        topology=topology,
        database=database,
        http=HttpClientFactory(),
        directory=NetworkDirectory(),
    )
    return NodeFhirService(ctx, ura)


# ---------------------------------------------------------------------------------------- key


def test_key_file_is_private_and_stable(tmp_path: Path) -> None:
    hasher = BsnHasher.for_node(tmp_path, GP)
    path = BsnHasher.key_path(tmp_path, GP)
    assert path == tmp_path / "node" / GP / "bsn-hash.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = BsnHasher.for_node(tmp_path, GP)
    assert hasher(ANNA) == again(ANNA)
    assert len(hasher(ANNA)) == 32
    other_node = BsnHasher.for_node(tmp_path, PHARMACY)
    assert other_node(ANNA) != hasher(ANNA)  # unlinkable across nodes
    assert ANNA not in repr(hasher) and "bsn" not in path.read_text()


def test_loose_key_permissions_are_tightened(tmp_path: Path) -> None:
    BsnHasher.for_node(tmp_path, GP)
    path = BsnHasher.key_path(tmp_path, GP)
    os.chmod(path, 0o644)
    BsnHasher.for_node(tmp_path, GP)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["not hex at all", "abcd", ""])
def test_a_broken_key_file_stops_the_node(tmp_path: Path, content: str) -> None:
    path = BsnHasher.key_path(tmp_path, GP)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(RuntimeError, match="BSN hash key file"):
        BsnHasher.for_node(tmp_path, GP)
    with pytest.raises(ValueError, match="32 bytes"):
        BsnHasher(b"short")


# ---------------------------------------------------------------------------------------- loading


async def test_loading_is_idempotent_and_only_into_an_empty_store(
    settings: CoreSettings, topology: Topology, database: Database
) -> None:
    service = _service(settings, topology, database, GP)
    expected = len(node_resources(topology, GP))
    assert await service.load_synthetic_ehr() == expected
    assert await service.load_synthetic_ehr() == 0
    with database.transaction() as session:
        assert len(session.execute(select(store.node_fhir_resource.c.resource_id)).all()) == expected
    # a store that holds anything is left alone, whatever the seed
    pharmacy = _service(settings, topology, database, PHARMACY)
    one = node_resources(topology, PHARMACY)[0]
    with database.transaction() as session:
        store.insert_resources(
            session, PHARMACY, [store.NewResource(one.resource, one.category, None, pharmacy.hasher(one.bsn))]
        )
    assert await pharmacy.load_synthetic_ehr(seed="another") == 0
    with database.transaction() as session:
        assert store.delete_node(session, PHARMACY) == 1
    assert await pharmacy.load_synthetic_ehr() == len(node_resources(topology, PHARMACY))


async def test_no_bsn_in_any_indexed_column(settings: CoreSettings, topology: Topology, database: Database) -> None:
    service = _service(settings, topology, database, GP)
    await service.load_synthetic_ehr()
    r, t = store.node_fhir_resource, store.node_fhir_token
    bsns = [c.bsn for c in topology.citizens]
    with database.transaction() as session:
        indexed = session.execute(select(*[c for c in r.c if c.name != "resource"])).all()
        tokens = session.execute(select(t)).all()
    assert indexed and tokens
    flat = " ".join(str(tuple(row)) for row in [*indexed, *tokens])
    for bsn in bsns:
        assert bsn not in flat
        assert bsn.encode() not in b"".join(row.patient_bsn_hash or b"" for row in indexed)
    assert {row.patient_bsn_hash for row in indexed} == {
        service.hasher(c.bsn) for c in topology.citizens if GP in c.providers
    }


async def test_stored_holdings_equal_the_generated_ones(
    settings: CoreSettings, topology: Topology, database: Database
) -> None:
    service = _service(settings, topology, database, PHARMACY)
    await service.load_synthetic_ehr()
    with database.transaction(readonly=True) as session:
        assert store.stored_holdings(session, PHARMACY) == holdings(PHARMACY, topology)


# ---------------------------------------------------------------------------------------- search SQL


async def test_search_filters_sort_and_page(settings: CoreSettings, topology: Topology, database: Database) -> None:
    service = _service(settings, topology, database, GP)
    await service.load_synthetic_ehr()
    anna = service.hasher(ANNA)
    with database.transaction(readonly=True) as session:
        everything, total = store.search(session, GP, "Observation", SearchCriteria(anna), count=100, offset=0)
        assert total == len(everything) > 10
        stamps = [r.last_updated for r in everything]
        assert stamps == sorted(stamps, reverse=True)
        labs, lab_total = store.search(
            session,
            GP,
            "Observation",
            SearchCriteria(anna, tokens=(TokenFilter("category", ((None, "laboratory"),)),)),
            count=100,
            offset=0,
        )
        assert 0 < lab_total < total and all(r.category == "ObservationLaboratory" for r in labs)
        bp, _ = store.search(
            session,
            GP,
            "Observation",
            SearchCriteria(anna, tokens=(TokenFilter("code", (("http://loinc.org", "85354-9"), ("x", "y"))),)),
            count=100,
            offset=0,
        )
        assert bp and all(r.resource["code"]["coding"][0]["code"] == "85354-9" for r in bp)
        wrong_system, _ = store.search(
            session,
            GP,
            "Observation",
            SearchCriteria(anna, tokens=(TokenFilter("code", (("http://snomed.info/sct", "85354-9"),)),)),
            count=100,
            offset=0,
        )
        assert wrong_system == []
        cut = everything[len(everything) // 2].last_updated
        high = datetime.max.replace(tzinfo=UTC)
        recent, _ = store.search(
            session,
            GP,
            "Observation",
            SearchCriteria(anna, dates=(DateFilter("last_updated", (("ge", cut, high),)),)),
            count=100,
            offset=0,
        )
        assert recent and all(r.last_updated >= cut for r in recent)
        assert len(recent) < total
        page2, total2 = store.search(session, GP, "Observation", SearchCriteria(anna), count=5, offset=5)
        assert total2 == total and [r.resource_id for r in page2] == [r.resource_id for r in everything[5:10]]
        beyond, _ = store.search(session, GP, "Observation", SearchCriteria(anna), count=5, offset=total)
        assert beyond == []
        stranger, stranger_total = store.search(
            session, GP, "Observation", SearchCriteria(b"\x00" * 32), count=5, offset=0
        )
        assert stranger == [] and stranger_total == 0


def test_clinical_date_and_tokens_of() -> None:
    observation = {
        "resourceType": "Observation",
        "effectiveDateTime": "2026-01-02T03:04:05+01:00",
        "status": "final",
        "category": [{"coding": [{"system": "s", "code": "laboratory"}]}],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "x" * 300}, {"system": "http://loinc.org", "code": "1-8"}]
        },
    }
    assert store.clinical_date(observation) == datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert store.clinical_date({"resourceType": "Observation", "effectiveDateTime": "garbage"}) is None
    assert store.clinical_date({"resourceType": "Patient"}) is None
    assert store.tokens_of(observation) == [
        ("category", "s", "laboratory"),
        ("code", "http://loinc.org", "1-8"),  # the over-long code is not indexed
        ("status", "", "final"),
    ]
