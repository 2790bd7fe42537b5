"""Synthetic electronic health records for the embedded network's care providers.

`patient_resources` / `node_resources` generate deterministic, realistic FHIR R4 data per citizen
and provider from the topology; `holdings(ura)` says which NVI data categories (SPEC §6) a provider
holds about whom; `ldn.ehr.bgz` renders a patient's data as a BgZ 2017 (FHIR STU3) Bundle.
"""

from __future__ import annotations

from ldn.ehr.generator import (
    DEFAULT_SEED,
    PATIENT_DATA_TYPES,
    REFERENCE_TIME,
    ClinicalProfile,
    EhrHoldings,
    EhrResource,
    clinical_profile,
    data_category,
    holdings,
    node_resources,
    patient_resources,
    sensitivity,
)

__all__ = [
    "DEFAULT_SEED",
    "PATIENT_DATA_TYPES",
    "REFERENCE_TIME",
    "ClinicalProfile",
    "EhrHoldings",
    "EhrResource",
    "clinical_profile",
    "data_category",
    "holdings",
    "node_resources",
    "patient_resources",
    "sensitivity",
]
