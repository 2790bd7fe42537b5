"""Property: whatever sequence of creates, updates and deactivations happens at the source, with
syncs at any moment and any page size, a final sync leaves the replica equal to the source."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ldn.addressing import store
from ldn.addressing.model import deactivated, without_server_meta
from ldn.addressing.replica import NoToken, ReplicaSyncer
from ldn.addressing.settings import AddressingSettings
from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from ldn.core.topology import Topology
from tests.addressing.conftest import BASE, LRZA, MCSD, as_org, build_stack_apps
from tests.addressing.factories import endpoint, organization, service
from tests.addressing.test_replica import assert_replica_equals_directory

URAS = ("00000020", "00000040", "00000070")
_examples = itertools.count(1)

operation = st.one_of(
    st.tuples(st.just("endpoint"), st.sampled_from(URAS)),
    st.tuples(st.just("department"), st.sampled_from(URAS)),
    st.tuples(st.just("service"), st.sampled_from(URAS)),
    st.tuples(st.just("update"), st.integers(0, 50)),
    st.tuples(st.just("deactivate"), st.integers(0, 50)),
    st.tuples(st.just("reactivate"), st.integers(0, 50)),
    st.tuples(st.just("sync"), st.just(None)),
)


async def scenario(
    core: CoreSettings, topology: Topology, database: Database, ops: list[tuple[str, Any]], page: int
) -> None:
    example = next(_examples)
    owner = f"7{example:07d}"
    root, mcsd_app, lrza_app, _ = build_stack_apps(core, topology, database)
    async with AsyncExitStack() as stack:
        for app in (lrza_app, mcsd_app):
            await stack.enter_async_context(app.router.lifespan_context(app))
        service_layer = mcsd_app.state.ctx.extras["mcsd_directory"]
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=root), base_url=BASE, headers=as_org(owner))
        )
        syncer = ReplicaSyncer(
            database,
            owner,
            mcsd_url=MCSD,
            lrza_url=LRZA,
            http=http,
            tokens=NoToken(),
            settings=AddressingSettings(sync_page_size=page),
        )
        made: list[tuple[str, str, str]] = []  # (type, id, owner URA)
        for n, (kind, arg) in enumerate(ops):
            rid = f"x{example}-{n}"
            with database.transaction() as session:
                if kind == "endpoint":
                    body = endpoint(rid, custodian=arg, address=f"https://{rid}.example/fhir")
                    service_layer.write(session, "Endpoint", rid, body, arg)
                    made.append(("Endpoint", rid, arg))
                elif kind == "department":
                    body = organization(rid, name=f"Afdeling {n}", part_of=f"org-{arg}")
                    service_layer.write(session, "Organization", rid, body, arg)
                    made.append(("Organization", rid, arg))
                elif kind == "service":
                    body = service(rid, f"org-{arg}", code="ggz", name=f"Dienst {n}")
                    service_layer.write(session, "HealthcareService", rid, body, arg)
                    made.append(("HealthcareService", rid, arg))
                elif kind in ("update", "deactivate", "reactivate") and made:
                    rtype, target, ura = made[arg % len(made)]
                    current = store.get_current(session, rtype, target)
                    assert current is not None
                    body = without_server_meta(current.content)
                    if kind == "update":
                        key = "address" if rtype == "Endpoint" else "name"
                        body[key] = f"{body.get(key, '')}+"
                    elif kind == "deactivate":
                        body = deactivated(rtype, body)
                    else:
                        body = {**body, **({"status": "active"} if rtype == "Endpoint" else {"active": True})}
                    service_layer.write(session, rtype, target, body, ura)
            if kind == "sync":
                await syncer.sync_once()
        await syncer.sync_once()
    assert_replica_equals_directory(database, owner)


@pytest.mark.slow
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=20), page=st.integers(min_value=1, max_value=9))
def test_replica_converges_to_the_source(
    settings: CoreSettings,
    topology: Topology,
    database: Database,
    ops: list[tuple[str, Any]],
    page: int,
) -> None:
    asyncio.run(scenario(settings, topology, database, ops, page))
