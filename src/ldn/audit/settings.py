"""Settings of the audit log (`LDN_AUDIT_*`): keys, retention, checkpoints, spool and sink."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ldn.afspraken import governed
from ldn.core.config import register_settings
from ldn.core.identifiers import URA


@register_settings
class AuditSettings(BaseSettings):
    """NEN 7513 audit log: BSN protection keys, retention, signed checkpoints, spool and delivery."""

    model_config = SettingsConfigDict(env_prefix="LDN_AUDIT_", extra="ignore")

    bsn_hash_key: SecretStr | None = Field(
        None,
        description="Key (base64 or hex, at least 32 bytes) for the keyed hash (HMAC-SHA256) that makes "
        "BSNs searchable. Empty: generated once into `<data_dir>/audit/bsn-hash.key`. Never logged.",
    )
    bsn_encryption_key: SecretStr | None = Field(
        None,
        description="AES-256-GCM key (base64 or hex, 32 bytes) for the encrypted BSN in each record. "
        "Empty: generated once into `<data_dir>/audit/bsn-encryption.key`. Never logged.",
    )
    checkpoint_key_file: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs checkpoints; created on first use. "
        "Default `<data_dir>/audit/checkpoint-key.pem`.",
    )
    trusted_checkpoint_keys_dir: Path | None = Field(
        None,
        description="Directory of extra trusted public keys (`*.pem`) for verifying checkpoints signed "
        "by earlier keys. Default `<data_dir>/audit/trusted-keys`.",
    )
    checkpoint_every: int = Field(
        10_000, ge=1, description="Sign a checkpoint each time a source's chain passes a multiple of this many records."
    )
    checkpoint_interval_seconds: float = Field(
        300.0,
        gt=0,
        description="The audit service also signs a checkpoint for every source with new records this often.",
    )
    retention_years: int = Field(
        default_factory=governed.retention_years,
        ge=1,
        description="Keep records at least this many years (NEN 7513: at least 5); `ldn audit purge` "
        "removes older ones. Default: `retention_years` of LAS-TA-LOG-001 in the active LAS release; setting "
        "it deviates from the agreement.",
    )
    sink: Literal["auto", "database", "http"] = Field(
        "auto",
        description="Where a service writes its events: `database` (same database as the audit service), "
        "`http` (POST /audit/events), or `auto` (database when the audit service runs in this process).",
    )
    spool_dir: Path | None = Field(
        None,
        description="Durable local spool used while the audit store is unreachable. Default `<data_dir>/audit-spool`.",
    )
    spool_key: SecretStr | None = Field(
        None,
        description="AES-256-GCM key (base64 or hex) for spooled events. Empty: generated into the spool directory.",
    )
    store_timeout_seconds: float = Field(
        5.0, gt=0, description="How long one delivery to the audit store may take before the event goes to the spool."
    )
    retry_max_seconds: float = Field(30.0, gt=0, description="Longest wait between attempts to deliver spooled events.")
    max_batch: int = Field(1000, ge=1, le=10_000, description="Most events in one POST /audit/events batch.")
    supervisor_uras: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated URAs of supervisors (besides the audit service's operator) allowed to "
        "export and to see both sides of a trace.",
    )

    @field_validator("supervisor_uras", mode="before")
    @classmethod
    def _uras(cls, value: object) -> list[str]:
        if value is None or value == "":
            return []
        items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        return [URA.parse(str(item).strip()).value for item in items if str(item).strip()]
