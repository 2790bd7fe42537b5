"""Settings of the localization function: the PRS (prefix `LDN_PRS_`) and the NVI (`LDN_NVI_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ldn.core.config import register_settings


@register_settings
class PrsSettings(BaseSettings):
    """Pseudonymisation service (PRS): master secret, recipient bootstrap, limits."""

    model_config = SettingsConfigDict(env_prefix="LDN_PRS_", extra="ignore")

    master_secret: SecretStr | None = Field(
        None,
        description="Master secret (base64url or hex, at least 32 bytes) from which every per-recipient, "
        "per-version OPRF key and the origin key are derived. Empty: read `master_key_file`, generating it "
        "(mode 0600) on first start.",
    )
    master_key_file: Path | None = Field(
        None,
        description="File holding the master secret when `LDN_PRS_MASTER_SECRET` is unset; "
        "default `<data_dir>/prs/master.key`.",
    )
    recipients_dir: Path | None = Field(
        None,
        description="Bootstrap directory of recipient registrations (`*.json` with recipient_organization, "
        "recipient_scope, jwk), read at start and when an unknown recipient is asked for; default "
        "`<data_dir>/prs/recipients`.",
    )
    recipient_cache_seconds: float = Field(
        2.0, ge=0, description="How long a recipient's key versions and public key are cached (seconds)."
    )
    max_batch: int = Field(1000, gt=0, le=10000, description="Most blinded inputs in one batch evaluation.")

    def resolved_master_key_file(self, data_dir: Path) -> Path:
        return self.master_key_file if self.master_key_file is not None else data_dir / "prs" / "master.key"

    def resolved_recipients_dir(self, data_dir: Path) -> Path:
        return self.recipients_dir if self.recipients_dir is not None else data_dir / "prs" / "recipients"


@register_settings
class NviSettings(BaseSettings):
    """National referral index (NVI): key material, storage-key rotation, limits."""

    model_config = SettingsConfigDict(env_prefix="LDN_NVI_", extra="ignore")

    key_dir: Path | None = Field(
        None,
        description="Directory of the NVI's JWE key pair and storage keyring (mode 0700); default `<data_dir>/nvi`.",
    )
    recipient_scope: str = Field(
        "nationale-verwijsindex", description="The NVI's PRS recipient scope (HKDF info and key binding)."
    )
    publish_to_prs_dir: Path | None = Field(
        None,
        description="Where the NVI writes its PRS recipient registration at start (the PRS bootstrap "
        "directory); default `<data_dir>/prs/recipients`. Set to an empty path to disable.",
    )
    prs_jwks_file: Path | None = Field(
        None,
        description="PRS origin keys (JWKS) from a file instead of fetching `<prs>/.well-known/jwks.json`.",
    )
    key_state_seconds: float = Field(
        1.0, gt=0, description="How long an NVI process trusts its view of the storage-key versions (seconds)."
    )
    rekey_grace_seconds: float | None = Field(
        None,
        ge=0,
        description="Wait after publishing a new storage key before converting rows; default "
        "`2 * key_state_seconds + 1`.",
    )
    rekey_batch_size: int = Field(1000, gt=0, le=100000, description="Rows converted per rekey transaction.")
    max_bundle_entries: int = Field(5000, gt=0, description="Most entries in one registration Bundle.")
    max_identifier_age: int = Field(
        900, gt=0, description="Oldest PRS answer (seconds since its `iat`) accepted in an NVI identifier."
    )
    clock_skew: int = Field(60, ge=0, description="Allowed clock difference with the PRS (seconds).")
    max_search_results: int = Field(1000, gt=0, description="Most Lists returned for one patient search.")

    def resolved_key_dir(self, data_dir: Path) -> Path:
        return self.key_dir if self.key_dir is not None else data_dir / "nvi"

    def resolved_publish_dir(self, data_dir: Path) -> Path | None:
        if self.publish_to_prs_dir is None:
            return data_dir / "prs" / "recipients"
        return None if str(self.publish_to_prs_dir) in ("", ".") else self.publish_to_prs_dir

    def resolved_rekey_grace(self) -> float:
        if self.rekey_grace_seconds is not None:
            return self.rekey_grace_seconds
        return 2 * self.key_state_seconds + 1.0
