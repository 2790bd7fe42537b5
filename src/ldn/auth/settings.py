"""Settings of the authentication function (prefix `LDN_AUTH_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ldn.afspraken import governed
from ldn.core.config import register_settings


@register_settings
class AuthSettings(BaseSettings):
    """Token service, trust material and resource-server behaviour."""

    model_config = SettingsConfigDict(env_prefix="LDN_AUTH_", extra="ignore")

    pki_dir: Path | None = Field(None, description="Test PKI directory; default `<data_dir>/pki`.")
    # Governed by the agreement system: the default is read from the active LAS release
    # (ldn.afspraken.governed); setting the variable is a deviation from the agreement.
    access_token_lifetime: int = Field(
        default_factory=governed.access_token_lifetime,
        gt=0,
        le=900,
        description="Access-token lifetime in seconds (at most 15 minutes). Default: `access_token_lifetime` of "
        "LAS-TA-AUTH-002 in the active LAS release; setting it deviates from the agreement.",
    )
    clock_skew: int = Field(
        default_factory=governed.clock_skew,
        ge=0,
        le=60,
        description="Allowed clock skew in seconds for iat/nbf/exp checks. Default: `clock_skew` of LAS-TA-AUTH-001 "
        "in the active LAS release; setting it deviates from the agreement.",
    )
    max_assertion_lifetime: int = Field(
        default_factory=governed.max_assertion_lifetime,
        gt=0,
        description="Longest accepted lifetime (exp - iat) of a client assertion or assertion, seconds. Default: "
        "`max_assertion_lifetime` of LAS-TA-AUTH-001 in the active LAS release; setting it deviates from it.",
    )
    dpop_proof_max_age: int = Field(60, gt=0, description="How old (seconds) a DPoP proof's `iat` may be.")
    introspection_cache_size: int = Field(
        10000, gt=0, description="Entries in a resource server's introspection cache (cached until token exp)."
    )
    dezi_declaration_lifetime: int = Field(
        3600, gt=0, description="Lifetime in seconds of Dezi declarations issued by the test identity provider."
    )
    test_citizen_login: bool = Field(
        True,
        description="Enable the test citizen login (a stand-in for DigiD; never enable in production).",
    )
    tls: bool = Field(False, description="Serve with mutual TLS (set by `ldn up --tls`).")

    def resolved_pki_dir(self, data_dir: Path) -> Path:
        return self.pki_dir if self.pki_dir is not None else data_dir / "pki"
