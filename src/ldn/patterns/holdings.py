"""A node's registrations at the NVI follow what its FHIR store holds (SPEC §6, localization sync).

`initial_load` registers every (patient, data category) the store holds, idempotently (a restart
re-registers nothing that exists); it runs in the background when a node starts
(`LDN_PATTERNS_NVI_SYNC_ON_STARTUP`). `holdings_changed` is the on-change path: after the EHR
recorded or removed data about a patient, the node's records for that patient become exactly what
the store now holds (one atomic Bundle at the NVI).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from ldn.core.identifiers import SYSTEM_BSN
from ldn.core.service import ServiceContext
from ldn.localization.categories import DATA_CATEGORIES
from ldn.localization.client import RegistrationSummary
from ldn.localization.sync import Holding, NviSynchroniser, SyncReport
from ldn.node import fhir_store
from ldn.node.fhir_api import node_fhir_service
from ldn.patterns.client import client_for

__all__ = ["NodeHoldings", "holdings_changed", "initial_load", "initial_load_in_background"]

logger = logging.getLogger("ldn.patterns.holdings")


class NodeHoldings:
    """The node's FHIR store as a `HoldingsSource`: BSN -> NVI data categories it holds."""

    def __init__(self, ctx: ServiceContext, ura: str) -> None:
        self.ctx = ctx
        self.ura = ura

    async def holdings(self) -> AsyncIterator[Holding]:
        found = await self.ctx.database.run(fhir_store.stored_holdings, self.ura, readonly=True)
        for bsn, categories in sorted(found.items()):
            known = frozenset(c for c in categories if c in DATA_CATEGORIES)
            if known:
                yield Holding(bsn, known)


def _synchroniser(ctx: ServiceContext, ura: str) -> NviSynchroniser:
    return NviSynchroniser(client_for(ctx, ura).localization())


async def initial_load(ctx: ServiceContext, ura: str) -> SyncReport:
    """Register everything the node holds (idempotent)."""
    return await _synchroniser(ctx, ura).initial_load(NodeHoldings(ctx, ura))


async def initial_load_in_background(ctx: ServiceContext, ura: str, *, delay: float = 0.0, attempts: int = 5) -> None:
    """The start-up initial load, retried with backoff (a node may start before the NVI does)."""
    if delay:
        await asyncio.sleep(delay)
    for attempt in range(attempts):
        try:
            report = await initial_load(ctx, ura)
            logger.info(
                "node %s registered its holdings at the NVI: %d patient(s), %d new record(s)",
                ura,
                report.patients,
                report.summary.created,
            )
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried, then logged; the node keeps serving
            wait = min(60.0, 2.0**attempt)
            logger.warning(
                "node %s: NVI initial load failed (%s); attempt %d of %d",
                ura,
                exc.__class__.__name__,
                attempt + 1,
                attempts,
            )
            if attempt + 1 < attempts:
                await asyncio.sleep(wait)


async def holdings_changed(ctx: ServiceContext, ura: str, bsn: str) -> RegistrationSummary:
    """The store's data about one patient changed: make the NVI say exactly what it holds now."""
    fhir = node_fhir_service(ctx, ura)
    patient = await fhir.resolve_patient(("identifier", f"{SYSTEM_BSN}|{bsn}"))
    record = await fhir.patient_record(patient)
    categories = {r.category for r in record if r.category in DATA_CATEGORIES}
    return await _synchroniser(ctx, ura).on_change(bsn, categories)
