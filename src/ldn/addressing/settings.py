"""Settings of the addressing function (prefix `LDN_ADDRESSING_`).

The replica's sync interval and jitter live here and nowhere else, so the agreement system can
later drive them from one governed parameter.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ldn.afspraken import governed
from ldn.core.config import register_settings


@register_settings
class AddressingSettings(BaseSettings):
    """LRZa register, central mCSD directory and the nodes' local replicas (update clients)."""

    model_config = SettingsConfigDict(env_prefix="LDN_ADDRESSING_", extra="ignore")

    # Governed by LAS-TA-ADDR-001: defaults come from the active LAS release (ldn.afspraken.governed);
    # setting the variable is a deviation from the agreement.
    sync_interval: float = Field(
        default_factory=governed.sync_interval,
        gt=0,
        description="Seconds between a replica's incremental syncs (`_history?_since=`). Default: `sync_interval` "
        "of LAS-TA-ADDR-001 in the active LAS release; setting it deviates from the agreement.",
    )
    sync_jitter: float = Field(
        default_factory=governed.sync_jitter,
        ge=0,
        description="Largest random delay (seconds) added to each sync interval, so nodes do not poll in step. "
        "Default: `sync_jitter` of LAS-TA-ADDR-001 in the active LAS release; setting it deviates from it.",
    )
    sync_enabled: bool = Field(True, description="Run the replica update client inside every node.")
    sync_initial_delay: float = Field(
        1.0, ge=0, description="Seconds after start-up before a node's first sync (plus a random part up to as much)."
    )
    sync_page_size: int = Field(1000, ge=1, le=1000, description="`_count` a replica asks for per page.")
    sync_max_retries: int = Field(
        5, ge=0, description="Retries of one request within a sync run (429, 5xx, network errors) before the run stops."
    )
    sync_backoff: float = Field(
        2.0, gt=0, description="Base of the exponential back-off (seconds) after a transient sync failure."
    )
    sync_max_retry_after: float = Field(
        600.0, gt=0, description="Longest `Retry-After` (seconds) a replica honours; longer waits end the run."
    )
    search_default_count: int = Field(50, ge=1, description="Page size of a directory search without `_count`.")
    search_max_count: int = Field(1000, ge=1, description="Largest `_count` accepted on search; larger gets 400.")
    history_default_count: int = Field(100, ge=1, description="Page size of `_history` without `_count`.")
    history_max_count: int = Field(1000, ge=1, description="Largest `_count` accepted on `_history`; larger gets 400.")
    read_time_limit: float = Field(
        10.0,
        gt=0,
        description="Longest a directory or LRZa search, or a `_history` page, may run on PostgreSQL (seconds); "
        "longer is stopped with 503 `timeout`.",
    )
    require_if_match: bool = Field(
        True,
        description="Refuse updates and deletes of an existing resource without `If-Match` (428 Precondition "
        "Required), as LAS-TA-ADDR-002 requires; `false` deviates from that agreement (FHIR's own default).",
    )
    publish_on_startup: bool = Field(
        True,
        description="Publish the topology's providers (Organization, Endpoints, services) when mCSD starts.",
    )
