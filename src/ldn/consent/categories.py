"""Code tables of the consent function: Mitz data categories, care-provider categories, NVI mapping.

Everything the decision core compares against lives here, in one place, as immutable tables.

Sources (public material read for the codes; nothing copied):
- Mitz data categories ("gegevenscategorie", OID 2.16.840.1.113883.2.4.3.111.5.10.1): GGC002
  Behandelgegevens, GGC012 Uitslagen, GGC013 Medicatiegegevens. Seen in the Mitz connector of
  bastion365/nl-generic-functions (mitz-connector/src/constants.js and its README: "Defaults to
  GGC002. When only labresults can be requested, GGC012 should be used. When only medication
  data can be requested, GGC013 should be used") and in nuts-foundation/nuts-knooppunt
  (component/mitz/xacml). The hierarchy "GGC002 covers GGC012 and GGC013" follows
  RIVO-Noord/zorgviewer-ig (input/pagecontent/design-toestemming.md, "Huidige MITZ toestemmingen
  (v3.8.1)": "Uitslagen (zit ook in #1)", "Medicatiegegevens (zit ook in #1)", #1 being
  Behandelgegevens). The FHIR code system URI http://fhir.nl/otv/CodeSystem/gegevenscategorie is
  the one Mitz puts in Consent.category of its Consent-Mitz-Notify 3.8.0 notifications (example
  in nuts-knooppunt component/mitz/example/example_notification_bundle.xml).
- Care-provider (facility) types: RoleCodeNL organisation codes, OID 2.16.840.1.113883.2.4.15.1060
  (Nictiz "zorgaanbiedertype"), the code system Mitz expects for the healthcare-facility-type
  attributes. The subset and its Dutch names follow bastion365 mitz-connector constants.js. Note:
  an "openbare apotheek" is J8 there, not A1; A1/H1 appear only in an unrelated NVI proof of
  concept and are not in this table.
- Consulting-provider groups ("raadplegende zorgaanbiedercategorie", RPZACnnn): the codes and
  names Mitz uses in the OTV-ProviderCategory extension of its notifications (same example file).
  ASSUMPTION: which facility type belongs to which group is not published in anything we found;
  the membership table below is ldn's own, chosen from the group names. Every facility type in
  the table belongs to at least one group, so a group choice can never silently miss a requester.
- NVI data categories: SPEC §6 (nl-gf-data-categories-cs); the mapping to Mitz categories is the
  one the brief fixes (medication -> GGC013, laboratory/diagnostic/imaging -> GGC012, rest GGC002).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "ALL_DATA_CATEGORIES",
    "ANCESTORS",
    "DATA_CATEGORY_DISPLAY",
    "DATA_CATEGORY_SYSTEM_OID",
    "DATA_CATEGORY_SYSTEM_URI",
    "DESCENDANTS",
    "FACILITY_TYPES",
    "FACILITY_TYPE_SYSTEM_OID",
    "FACILITY_TYPE_SYSTEM_URI",
    "GROUPS_OF_FACILITY_TYPE",
    "NVI_CATEGORIES",
    "NVI_TO_MITZ",
    "PROVIDER_GROUPS",
    "PROVIDER_GROUP_MEMBERS",
    "PROVIDER_GROUP_SYSTEM_URI",
    "DataCategory",
    "is_ancestor",
    "mitz_category_for_nvi",
    "nvi_categories_for",
]

DATA_CATEGORY_SYSTEM_OID = "2.16.840.1.113883.2.4.3.111.5.10.1"
DATA_CATEGORY_SYSTEM_URI = "http://fhir.nl/otv/CodeSystem/gegevenscategorie"
FACILITY_TYPE_SYSTEM_OID = "2.16.840.1.113883.2.4.15.1060"
# The system URI Mitz uses on Organization.type in its notification bundles.
FACILITY_TYPE_SYSTEM_URI = "http://nictiz.nl/fhir/NamingSystem/organization-type"
PROVIDER_GROUP_SYSTEM_URI = "http://fhir.nl/otv/CodeSystem/raadplegende-zorgaanbiedercategorie"


class DataCategory(StrEnum):
    """Mitz data category (gegevenscategorie); the value is the Mitz code."""

    TREATMENT = "GGC002"  # Behandelgegevens: the parent of the other two
    RESULTS = "GGC012"  # Uitslagen
    MEDICATION = "GGC013"  # Medicatiegegevens


ALL_DATA_CATEGORIES: tuple[DataCategory, ...] = tuple(DataCategory)

DATA_CATEGORY_DISPLAY: Mapping[DataCategory, str] = MappingProxyType(
    {
        DataCategory.TREATMENT: "Behandelgegevens",
        DataCategory.RESULTS: "Uitslagen",
        DataCategory.MEDICATION: "Medicatiegegevens",
    }
)

_PARENT: Mapping[DataCategory, DataCategory] = MappingProxyType(
    {DataCategory.RESULTS: DataCategory.TREATMENT, DataCategory.MEDICATION: DataCategory.TREATMENT}
)


def _ancestors(category: DataCategory) -> tuple[DataCategory, ...]:
    chain: list[DataCategory] = []
    current = _PARENT.get(category)
    while current is not None:
        chain.append(current)
        current = _PARENT.get(current)
    return tuple(chain)


# Strict ancestors / descendants, precomputed so the decision core never walks the tree per call.
ANCESTORS: Mapping[DataCategory, tuple[DataCategory, ...]] = MappingProxyType({c: _ancestors(c) for c in DataCategory})
DESCENDANTS: Mapping[DataCategory, tuple[DataCategory, ...]] = MappingProxyType(
    {c: tuple(d for d in DataCategory if c in ANCESTORS[d]) for c in DataCategory}
)


def is_ancestor(ancestor: DataCategory, category: DataCategory) -> bool:
    """True when `ancestor` strictly contains `category` (GGC002 contains GGC012 and GGC013)."""
    return ancestor in ANCESTORS[category]


# RoleCodeNL organisation types (2.16.840.1.113883.2.4.15.1060), the subset ldn knows.
FACILITY_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "V4": "Ziekenhuis",
        "V5": "Universitair Medisch Centrum",
        "V6": "Algemeen ziekenhuis",
        "Z4": "Zelfstandig behandelcentrum",
        "Z5": "Diagnostisch centrum",
        "B1": "Beeldvormende diagnostiek",
        "B2": "Echocentrum",
        "X3": "Verplegings- of verzorgingsinstelling",
        "R5": "Verpleeghuis",
        "M1": "Verzorgingstehuis",
        "J8": "Openbare apotheek",
        "K9": "Zelfstandig opererende ziekenhuisapotheek",
        "Z3": "Huisartspraktijk (zelfstandig of groepspraktijk)",
        "K3": "Apotheekhoudende huisartspraktijk",
        "N6": "Huisartsenpost (t.b.v. dienstwaarneming)",
        "L1": "Laboratorium",
        "P4": "Polikliniek (als onderdeel van een ziekenhuis)",
        "R8": "Revalidatiecentrum",
        "P6": "Preventieve gezondheidszorg (waaronder Bevolkingsonderzoek)",
        "G5": "Geestelijke Gezondheidszorg",
        "G6": "Verstandelijk gehandicaptenzorg",
        "T2": "Thuiszorg",
        "JGZ": "Jeugdgezondheidszorg",
        "G3": "Verloskundigenpraktijk",
    }
)

# Mitz consulting-provider groups (codes and names as Mitz sends them).
PROVIDER_GROUPS: Mapping[str, str] = MappingProxyType(
    {
        "RPZAC001": "Huisartsen en huisartsenposten",
        "RPZAC003": "Geestelijke gezondheidszorg (GGZ)",
        "RPZAC004": "Verpleging en verzorging",
        "RPZAC005": "Apotheken",
        "RPZAC103": "Overige zorg (tandartsen, paramedici, jeugdgezondheidszorg)",
        "RPZAC104": "Ziekenhuizen, medische centra, klinieken, laboratoria en diagnostische centra",
        "RPZAC200": "Zorgaanbieders in de Europese Unie buiten Nederland",
    }
)

# ASSUMPTION (see module docstring): ldn's own membership table. K3 (dispensing GP) is both a GP
# practice and a pharmacy, so a choice about either group reaches it. RPZAC200 has no Dutch
# facility type; it can only be matched once cross-border requesters exist.
PROVIDER_GROUP_MEMBERS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "RPZAC001": frozenset({"Z3", "K3", "N6"}),
        "RPZAC003": frozenset({"G5"}),
        "RPZAC004": frozenset({"X3", "R5", "M1", "T2", "G6"}),
        "RPZAC005": frozenset({"J8", "K9", "K3"}),
        "RPZAC103": frozenset({"JGZ", "G3", "P6"}),
        "RPZAC104": frozenset({"V4", "V5", "V6", "Z4", "Z5", "B1", "B2", "L1", "P4", "R8"}),
        "RPZAC200": frozenset(),
    }
)

GROUPS_OF_FACILITY_TYPE: Mapping[str, frozenset[str]] = MappingProxyType(
    {code: frozenset(g for g, members in PROVIDER_GROUP_MEMBERS.items() if code in members) for code in FACILITY_TYPES}
)

# NVI data categories (SPEC §6, code system nl-gf-data-categories-cs).
NVI_CATEGORIES: frozenset[str] = frozenset(
    {
        "AllergyIntolerance",
        "Condition",
        "Imaging",
        "MedicationRequest",
        "MedicationUse",
        "ObservationLaboratory",
        "ObservationVitalSigns",
        "Procedure",
        "Patient",
        "Encounter",
        "Episode",
        "AdvanceDirective",
        "DiagnosticReport",
        "Device",
        "Alert",
        "Consent",
    }
)

_NVI_MEDICATION = frozenset({"MedicationRequest", "MedicationUse"})
_NVI_RESULTS = frozenset({"ObservationLaboratory", "DiagnosticReport", "Imaging"})

NVI_TO_MITZ: Mapping[str, DataCategory] = MappingProxyType(
    {
        code: (
            DataCategory.MEDICATION
            if code in _NVI_MEDICATION
            else DataCategory.RESULTS
            if code in _NVI_RESULTS
            else DataCategory.TREATMENT
        )
        for code in sorted(NVI_CATEGORIES)
    }
)


def mitz_category_for_nvi(nvi_code: str) -> DataCategory:
    """The Mitz category a consent question must ask for data of NVI category `nvi_code`.

    Raises KeyError for a code that is not an NVI data category: guessing "treatment data" for an
    unknown code would let a typo widen or narrow what a citizen's choice covers.
    """
    return NVI_TO_MITZ[nvi_code]


def nvi_categories_for(category: DataCategory) -> frozenset[str]:
    """All NVI categories a permit for Mitz `category` covers (its own and its descendants')."""
    covered = {category, *DESCENDANTS[category]}
    return frozenset(code for code, mitz in NVI_TO_MITZ.items() if mitz in covered)
