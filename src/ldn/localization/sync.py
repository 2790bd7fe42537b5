"""The node-side NVI synchroniser: keep the referral index in step with what the EHR holds.

The EHR (any source: a later issue builds the synthetic one in `ldn.ehr`) is seen through one
small interface, `HoldingsSource`: it yields ``Holding(bsn, categories)``, "we hold data of these
categories about this patient". The synchroniser

- **initial load** (`initial_load`): registers every holding, in batched PRS evaluations and
  Bundles. Registration is idempotent, so running it again (after a crash, or to re-register
  everything after a PRS key rotation) creates only what is missing;
- **on change** (`on_change`): makes the organisation's records for one patient exactly the
  categories it now holds, atomically (one Bundle: delete its records for the patient, post the
  current set; an empty set removes the patient);

After a PRS key rotation the NVI cannot convert existing records (they are keyed by the old PRS
key's element and the NVI never sees a BSN), so the custodian re-registers: `initial_load` again
creates every record under the new key version; once all custodians have done so the operators
retire the old PRS key version and purge its records (`ldn nvi purge-oprf-version`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ldn.core.identifiers import BSN
from ldn.core.topology import Topology
from ldn.localization.categories import DATA_CATEGORIES
from ldn.localization.client import LocalizationClient, RegistrationSummary

logger = logging.getLogger("ldn.localization.sync")


@dataclass(frozen=True)
class Holding:
    """The organisation holds data of ``categories`` about the patient with ``bsn``."""

    bsn: str
    categories: frozenset[str]

    def __post_init__(self) -> None:
        BSN.parse(self.bsn)
        unknown = sorted(self.categories - set(DATA_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown data category {unknown[0][:64]!r}")

    def __repr__(self) -> str:  # never a BSN in a repr
        return f"Holding(bsn=***{self.bsn[-2:]}, categories={sorted(self.categories)})"


class HoldingsSource(Protocol):
    """Anything that can list an organisation's holdings (an EHR, a file, the topology)."""

    def holdings(self) -> AsyncIterator[Holding]: ...


# What each kind of organisation typically holds (the synthetic network's assumption).
DEFAULT_CATEGORIES_BY_TYPE: Mapping[str, frozenset[str]] = {
    "huisartspraktijk": frozenset({"Condition", "MedicationRequest", "ObservationVitalSigns", "AllergyIntolerance"}),
    "ziekenhuis": frozenset({"Condition", "Imaging", "ObservationLaboratory", "Procedure", "DiagnosticReport"}),
    "apotheek": frozenset({"MedicationUse", "MedicationRequest", "AllergyIntolerance"}),
    "verpleeghuis": frozenset({"Episode", "ObservationVitalSigns", "AdvanceDirective"}),
    "ggz-instelling": frozenset({"Condition", "Episode", "Encounter"}),
    "laboratorium": frozenset({"ObservationLaboratory", "DiagnosticReport"}),
}


class TopologyHoldings:
    """Holdings of one organisation derived from the topology's citizens' ``providers`` lists."""

    def __init__(
        self, topology: Topology, ura: str, categories: Mapping[str, frozenset[str]] = DEFAULT_CATEGORIES_BY_TYPE
    ) -> None:
        self.topology = topology
        self.ura = ura
        org = topology.organization(ura)
        self.categories = categories.get(org.type, frozenset({"Patient"}))

    async def holdings(self) -> AsyncIterator[Holding]:
        for citizen in self.topology.citizens:
            if self.ura in citizen.providers:
                yield Holding(citizen.bsn, self.categories)


class StaticHoldings:
    """Holdings from a list (tests, files, one-off loads)."""

    def __init__(self, items: Iterable[Holding]) -> None:
        self.items = list(items)

    async def holdings(self) -> AsyncIterator[Holding]:
        for item in self.items:
            yield item


@dataclass(frozen=True)
class SyncReport:
    patients: int
    summary: RegistrationSummary


class NviSynchroniser:
    """Registers an organisation's holdings at the NVI through a `LocalizationClient`."""

    def __init__(self, client: LocalizationClient, *, chunk_patients: int = 500) -> None:
        self.client = client
        self.chunk_patients = chunk_patients

    async def initial_load(self, source: HoldingsSource) -> SyncReport:
        """Register every holding (idempotent; also the re-registration after a PRS rotation)."""
        patients = 0
        summary = RegistrationSummary()
        chunk: list[tuple[str, frozenset[str]]] = []
        async for holding in source.holdings():
            patients += 1
            chunk.append((holding.bsn, holding.categories))
            if len(chunk) >= self.chunk_patients:
                summary += await self.client.register_many(chunk)
                chunk = []
        if chunk:
            summary += await self.client.register_many(chunk)
        logger.info(
            "initial load for %s: %d patient(s), %d record(s) created, %d already present",
            self.client.custodian_ura,
            patients,
            summary.created,
            summary.existing,
        )
        return SyncReport(patients, summary)

    async def on_change(self, bsn: str, categories: Iterable[str]) -> RegistrationSummary:
        """The EHR's holdings for one patient changed: make the NVI say exactly this."""
        holding = Holding(bsn, frozenset(categories))
        if not holding.categories:
            return RegistrationSummary(deleted=await self.client.delete(holding.bsn))
        return await self.client.replace(holding.bsn, holding.categories)
