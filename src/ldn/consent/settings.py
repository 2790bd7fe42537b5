"""Settings of the consent service (prefix `LDN_CONSENT_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ldn.core.config import register_settings


@register_settings
class ConsentSettings(BaseSettings):
    """Consent register, closed/open question, subscriptions and their outbox."""

    model_config = SettingsConfigDict(env_prefix="LDN_CONSENT_", extra="ignore")

    bsn_hash_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key (hex or base64, at least 32 bytes) for the BSN lookup hash. "
        "Empty: generated once into `<data_dir>/consent/bsn-hash.key` (mode 0600).",
    )
    encryption_key: SecretStr | None = Field(
        None,
        description="AES-256-GCM key (hex or base64, 32 bytes) for BSNs kept for subscriptions and "
        "queued notifications. Empty: generated once into `<data_dir>/consent/encryption.key` (mode 0600).",
    )
    cache_size: int = Field(
        100_000, ge=0, description="Citizens whose current choices are cached in memory (0 disables the cache)."
    )
    cache_ttl: float = Field(
        30.0,
        ge=0,
        description="Seconds a cached citizen entry is trusted. Changes made through this process invalidate "
        "at once; the TTL bounds staleness when several processes share one database (0: no expiry).",
    )
    max_choices_per_request: int = Field(50, gt=0, description="Most choices one citizen request may record.")
    outbox_interval: float = Field(
        1.0, gt=0, description="Seconds between outbox delivery rounds (a change also wakes the worker)."
    )
    outbox_backoff_base: float = Field(
        1.0, gt=0, description="First retry delay (seconds) after a failed delivery; doubles per attempt."
    )
    outbox_backoff_cap: float = Field(300.0, gt=0, description="Longest retry delay (seconds) between attempts.")
    outbox_batch: int = Field(100, gt=0, description="Notifications delivered per subscription per round.")
    delivery_timeout: float = Field(5.0, gt=0, description="Timeout (seconds) of one rest-hook delivery.")
    allow_loopback_hooks: bool = Field(
        True,
        description="Accept rest-hook endpoints on loopback addresses (127.0.0.0/8, ::1, localhost); "
        "test networks only.",
    )
    allowed_hook_origins: list[str] = Field(
        default_factory=list,
        description="Further origins (`https://host:port`) a rest-hook endpoint may use, besides the "
        "network's own origin. JSON list in the environment.",
    )
