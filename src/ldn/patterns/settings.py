"""Settings of the communication patterns (prefix `LDN_PATTERNS_`).

Two values are network parameters of the agreement system and take their default from the active
LAS release: `holder_timeout` (LAS-TA-PULL-002) and `restriction_period` (LAS-TA-NOTIF-001).
Setting them by environment variable deviates from the agreement (`ldn afspraken parameters`).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ldn.afspraken import governed
from ldn.core.config import register_settings

__all__ = ["PatternsSettings"]


@register_settings
class PatternsSettings(BaseSettings):
    """Communication patterns: raadplegen (indexed pull) and verwijzen (notified pull) at every node."""

    model_config = SettingsConfigDict(env_prefix="LDN_PATTERNS_", extra="ignore")

    holder_timeout: float = Field(
        default_factory=governed.holder_timeout,
        gt=0,
        le=120,
        description="Seconds an indexed pull waits for one data holder. Default: `holder_timeout` of "
        "LAS-TA-PULL-002 in the active LAS release; setting it deviates from the agreement.",
    )
    query_budget_ms: int = Field(
        5_000,
        gt=0,
        le=60_000,
        description="Default total time budget of one query (localization plus every holder), milliseconds; a "
        "request may ask for less or more up to `max_query_budget_ms`.",
    )
    max_query_budget_ms: int = Field(
        30_000, gt=0, le=300_000, description="Largest time budget a query request may ask for (milliseconds)."
    )
    dpop: bool = Field(
        True,
        description="Bind the tokens a node obtains for other nodes (queries, notifications, pulls) to a DPoP key "
        "(RFC 9449). `false` uses plain Bearer tokens (for a deployment where mutual TLS binds them instead).",
    )
    max_parallel_requests: int = Field(
        4,
        gt=0,
        le=64,
        description="Requests a query keeps in flight at once at one holder (its searches and pages).",
    )
    max_pages_per_search: int = Field(
        10, gt=0, le=1000, description="Search result pages followed per query at one holder (`next` links)."
    )
    max_answer_bytes: int = Field(
        5 * 1024 * 1024,
        gt=0,
        description="Largest answer accepted from a holder or sender (bytes); larger is an invalid response.",
    )
    restriction_period: int = Field(
        default_factory=governed.restriction_period_days,
        gt=0,
        le=3650,
        description="Longest restriction period of a referral in days (restriction.period.end at most this far "
        "after sending). Default: `restriction_period` of LAS-TA-NOTIF-001 in the active LAS release.",
    )
    default_restriction_days: int = Field(
        14,
        gt=0,
        le=3650,
        description="Restriction period of a referral when the sender names none (days; capped at "
        "`restriction_period`).",
    )
    nvi_sync_on_startup: bool = Field(
        True,
        description="At node start, register what the node's FHIR store holds at the NVI (the synchroniser's "
        "initial load, in the background; idempotent). Changes are registered as they happen.",
    )
    nvi_sync_delay: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="Seconds a node waits after start before its NVI initial load (lets a cold network settle).",
    )
    max_listed_queries: int = Field(
        50, gt=0, le=500, description="Most read-resource and search-resource inputs in one notification Task."
    )
