"""Settings of the synthetic EHR (prefix `LDN_EHR_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ldn.core.config import register_settings
from ldn.ehr.generator import DEFAULT_SEED


@register_settings
class EhrSettings(BaseSettings):
    """Synthetic EHR: what each care-provider node's FHIR store is filled with."""

    model_config = SettingsConfigDict(env_prefix="LDN_EHR_", extra="ignore")

    autoload: bool = Field(
        True,
        description="At node start, fill the node's FHIR store with the synthetic EHR when the store is empty "
        "(a store that holds anything is left alone).",
    )
    seed: str = Field(
        DEFAULT_SEED,
        min_length=1,
        max_length=200,
        description="Seed of the synthetic EHR: the same seed and topology give the same data, ids included.",
    )
