"""NVI data categories: code system `nl-gf-data-categories-cs` of the Generic Functions IG (SPEC §6).

A localization record says "organisation X holds data of category C about patient P"; C must be one
of these codes. The IG's code system lists more codes (CareTeam, Document, Specimen, ...); the NVI
accepts the set SPEC §6 names, which is also the set the consent function maps onto Mitz data
categories (`ldn.consent.categories.NVI_TO_MITZ`): a category the consent check cannot map would be
a record nobody may ever be shown, so it is refused at the door instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "DATA_CATEGORIES",
    "DATA_CATEGORY_SYSTEM",
    "UnknownCategoryError",
    "category_coding",
    "parse_category_token",
]

DATA_CATEGORY_SYSTEM = "http://minvws.github.io/generiekefuncties-docs/CodeSystem/nl-gf-data-categories-cs"

# code -> Dutch display (the IG's nl-NL designation).
DATA_CATEGORIES: Mapping[str, str] = MappingProxyType(
    {
        "AdvanceDirective": "Wilsverklaring",
        "Alert": "Alert",
        "AllergyIntolerance": "Allergie Intolerantie",
        "Condition": "Aandoeningen",
        "Consent": "Toestemming",
        "Device": "Apparaat",
        "DiagnosticReport": "Diagnostisch verslag",
        "Encounter": "Contactmoment",
        "Episode": "Zorgtrajecten en zorgplannen",
        "Imaging": "Beelden",
        "MedicationRequest": "Medicatie voorschrift",
        "MedicationUse": "Medicatiegebruik",
        "ObservationLaboratory": "Observatie (categorie: Laboratorium)",
        "ObservationVitalSigns": "Observatie (categorie: Vitale functies)",
        "Patient": "Patient",
        "Procedure": "Verrichtingen",
    }
)


class UnknownCategoryError(ValueError):
    """A data category code (or system) the NVI does not accept."""


def category_coding(code: str) -> dict[str, Any]:
    """The `List.code` CodeableConcept for a known category."""
    if code not in DATA_CATEGORIES:
        raise UnknownCategoryError(f"unknown data category {code[:64]!r}")
    return {"coding": [{"system": DATA_CATEGORY_SYSTEM, "code": code, "display": DATA_CATEGORIES[code]}]}


def parse_category_token(token: str) -> str:
    """A FHIR token search value for `code`: ``system|code``, ``|code`` is refused, bare ``code``."""
    system, sep, code = token.partition("|")
    if not sep:
        system, code = DATA_CATEGORY_SYSTEM, token
    if system != DATA_CATEGORY_SYSTEM:
        raise UnknownCategoryError(f"code system must be {DATA_CATEGORY_SYSTEM}")
    if code not in DATA_CATEGORIES:
        raise UnknownCategoryError(f"unknown data category {code[:64]!r}")
    return code
