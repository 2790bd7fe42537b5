"""Settings of the authorization function (prefix `LDN_AUTHZ_`) and where the Rego policies live.

The policy directory is `LDN_AUTHZ_POLICY_DIR` when set. Otherwise the first `policies/` directory
holding a `main.rego`, searched upwards from this file (a source checkout or a `pip install -e .`:
`<repo>/src/ldn/authz/settings.py` finds `<repo>/policies`) and then from the working directory.
A wheel installed into site-packages carries no `policies/`: set the variable there.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ldn.afspraken import governed
from ldn.core.config import register_settings

__all__ = ["POLICY_DIR_ENV", "AuthzSettings", "find_policy_dir"]

POLICY_DIR_ENV = "LDN_AUTHZ_POLICY_DIR"
_ENTRY_MODULE = "main.rego"


def find_policy_dir(start: Path | None = None) -> Path | None:
    """The nearest `policies/` directory with a `main.rego` above `start` (default: this file, then
    the working directory); None when there is none."""
    origins = [start] if start is not None else [Path(__file__).resolve(), Path.cwd().resolve()]
    for origin in origins:
        for directory in [origin, *origin.parents]:
            candidate = directory / "policies"
            if (candidate / _ENTRY_MODULE).is_file():
                return candidate
    return None


@register_settings
class AuthzSettings(BaseSettings):
    """Policy decision point (Rego policies), the node's enforcement point and the `authz` service."""

    model_config = SettingsConfigDict(env_prefix="LDN_AUTHZ_", extra="ignore")

    policy_dir: Path | None = Field(
        None,
        description="Directory with the Rego policies (`*.rego`, `data/*.json`). Empty: the `policies/` of the "
        "source tree or editable install (searched upwards from the package, then from the working directory).",
    )
    pep_enabled: bool = Field(
        True,
        description="Enforce the policy decision on every node FHIR request. `false` leaves only the token checks "
        "and logs a warning per node: for development and tests of the FHIR API itself, never in production.",
    )
    decision_timeout_ms: int = Field(
        default_factory=governed.decision_timeout_ms,
        gt=0,
        le=60_000,
        description="Longest policy evaluation (milliseconds); later is a deny (`pdp-unavailable`). Default: "
        "`decision_timeout` of LAS-TA-AUTHZ-001 in the active LAS release; setting it deviates from the agreement.",
    )
    enforce_timeout: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Longest a node request may wait for its whole authorization (patient lookup, consent closed "
        "question, policy decision), seconds; later is a deny.",
    )
    cache_size: int = Field(10_000, gt=0, description="Decisions kept in the decision cache (LRU).")
    cache_ttl: float = Field(
        30.0,
        gt=0,
        description="Seconds a cached decision is reused (it is also dropped when the policy release changes).",
    )
    pdp_threads: int = Field(
        4, gt=0, le=64, description="Worker threads evaluating policies (each holds its own Rego interpreter)."
    )
    consent_dpop: bool = Field(
        True,
        description="Bind the node's token for the consent service to a DPoP key (RFC 9449), as other nodes' "
        "service calls do; `false` uses a plain Bearer token.",
    )
    max_input_bytes: int = Field(
        65_536, gt=0, description="Largest authorization input the `authz` service accepts (bytes); larger gets 413."
    )

    def resolved_policy_dir(self) -> Path:
        """The policy directory to load (may not exist: the decision point then denies everything)."""
        if self.policy_dir is not None:
            return self.policy_dir
        found = find_policy_dir()
        return found if found is not None else Path("policies")
