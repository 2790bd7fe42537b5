"""Settings of the agreement system (`LDN_AFSPRAKENSTELSEL`, `LDN_LAS_RELEASE`).

The repository loader reads the same two variables directly (it is used outside services too);
this class documents them in docs/CONFIGURATION.md and gives the afspraken service typed access.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ldn.core.config import register_settings


@register_settings
class AfsprakenSettings(BaseSettings):
    """Landelijk afsprakenstelsel: where the agreements are and which release the network runs on."""

    model_config = SettingsConfigDict(env_prefix="LDN_", extra="ignore")

    afsprakenstelsel: Path | None = Field(
        None,
        description="Directory of the agreement system (agreements, releases, schemas). Default: the "
        "`afsprakenstelsel/` directory found next to the source tree or the working directory.",
    )
    las_release: str | None = Field(
        None,
        pattern=r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$",
        description="LAS release (x.y.z) the network runs on: governed parameters such as the access-token "
        "lifetime are read from it. Default: the release with status `current`.",
    )
