"""From NVI data categories to the FHIR searches a node's FHIR API answers, and back.

One search per category, always for one patient: by BSN (`patient.identifier`) when querying a
holder that localization pointed to, by the holder's own Patient id (`patient=Patient/<id>`) in
the queries a referral lists (the receiver then needs no BSN in a URL it did not get from the
sender). Categories a node's FHIR API has no resource type for (Imaging, DiagnosticReport, ...)
have no search: a holder registered for them is reported, not asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, urlencode

from ldn.core.identifiers import SYSTEM_BSN
from ldn.localization.categories import DATA_CATEGORIES

__all__ = [
    "CATEGORY_SEARCHES",
    "QUERYABLE_CATEGORIES",
    "check_categories",
    "is_relative_query",
    "referral_searches",
    "searches_by_bsn",
]

# category -> (resource type, extra search parameters)
CATEGORY_SEARCHES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "Patient": ("Patient", ()),
    "AllergyIntolerance": ("AllergyIntolerance", ()),
    "Condition": ("Condition", ()),
    "Encounter": ("Encounter", ()),
    "MedicationRequest": ("MedicationRequest", ()),
    "MedicationUse": ("MedicationStatement", ()),
    "Procedure": ("Procedure", ()),
    "ObservationLaboratory": ("Observation", (("category", "laboratory"),)),
    "ObservationVitalSigns": ("Observation", (("category", "vital-signs"),)),
}
QUERYABLE_CATEGORIES = frozenset(CATEGORY_SEARCHES)
PAGE_SIZE = 100
# Characters kept as they are in a query string: readable in logs and the referral's list.
_SAFE = ":/|"


def check_categories(categories: Iterable[str]) -> list[str]:
    """Sorted, known NVI data categories; ValueError naming the first unknown one."""
    chosen = sorted(set(categories))
    for code in chosen:
        if code not in DATA_CATEGORIES:
            raise ValueError(f"unknown data category {code[:64]!r}")
    return chosen


def searches_by_bsn(bsn: str, categories: Iterable[str]) -> dict[str, str]:
    """category -> search (relative to a FHIR base) for the queryable categories, by BSN."""
    out: dict[str, str] = {}
    for category in sorted(set(categories) & QUERYABLE_CATEGORIES):
        rtype, extra = CATEGORY_SEARCHES[category]
        selector = "identifier" if rtype == "Patient" else "patient.identifier"
        params = [(selector, f"{SYSTEM_BSN}|{bsn}"), *extra, ("_count", str(PAGE_SIZE))]
        out[category] = f"{rtype}?{urlencode(params, safe=_SAFE, quote_via=quote)}"
    return out


def referral_searches(patient_id: str, categories: Iterable[str]) -> list[str]:
    """The reads and searches a referral lists for the sender's Patient id and categories."""
    out = [f"Patient/{patient_id}"]
    for category in sorted(set(categories) & QUERYABLE_CATEGORIES):
        rtype, extra = CATEGORY_SEARCHES[category]
        if rtype == "Patient":
            continue  # the read above
        params = [("patient", f"Patient/{patient_id}"), *extra]
        query = f"{rtype}?{urlencode(params, safe=_SAFE, quote_via=quote)}"
        if query not in out:
            out.append(query)
    return out


def is_relative_query(query: str) -> bool:
    """A read or search relative to a FHIR base: `Type/id` or `Type?params` (no scheme, host, `..`)."""
    if not query or len(query) > 2000 or not query.isascii() or not query.isprintable():
        return False
    if "://" in query or query.startswith("/") or ".." in query or "#" in query or " " in query:
        return False
    path = query.split("?", 1)[0]
    parts = path.split("/")
    if not parts[0][:1].isupper() or not parts[0].isalpha():
        return False
    return len(parts) <= 2 and all(parts)
