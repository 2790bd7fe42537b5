"""Configuration: `LDN_*` environment variables read with pydantic-settings.

`CoreSettings` holds what every service shares. A component with settings of its own declares a
`BaseSettings` subclass with its own prefix (for example `LDN_AUTH_`) and decorates it with
`@register_settings`; `ldn config docs` renders every registered class into
`docs/CONFIGURATION.md` and a test keeps that file in step with the code. Secrets come from the
environment (or files it names), never from constants in the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REGISTERED: list[type[BaseSettings]] = []
S = TypeVar("S", bound=type[BaseSettings])


def register_settings(cls: S) -> S:
    """Record a settings class so its variables appear in docs/CONFIGURATION.md."""
    if cls not in _REGISTERED:
        _REGISTERED.append(cls)
    return cls


def registered_settings() -> list[type[BaseSettings]]:
    return list(_REGISTERED)


@register_settings
class CoreSettings(BaseSettings):
    """Settings shared by every service and by the embedded network."""

    model_config = SettingsConfigDict(env_prefix="LDN_", extra="ignore")

    data_dir: Path = Field(
        Path("var"), description="Directory for the database, PKI material, spools and network.json."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. `postgresql+psycopg://postgres@127.0.0.1:5432/ldn`. "
        "Empty: SQLite at `<data_dir>/ldn.db` (WAL mode).",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the embedded network (`ldn up`).")
    public_base_url: str | None = Field(
        None, description="Base URL others use to reach this process; default `http://<host>:<port>`."
    )
    topology: Path | None = Field(
        None,
        description="Topology YAML describing national services, organisations and citizens; "
        "default: the `network.yaml` shipped in the package.",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Largest request body accepted (bytes); larger gets 413."
    )
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    log_format: Literal["json", "text"] = Field("json", description="`json` (one object per line) or `text`.")
    http_timeout: float = Field(10.0, gt=0, description="Default timeout (seconds) for calls between services.")
    sql_echo: bool = Field(False, description="Log every SQL statement (development only).")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return upper

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ldn.db').as_posix()}"

    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


def settings_table_markdown() -> str:
    """Markdown tables (name, default, meaning) of every registered settings class."""
    lines: list[str] = []
    # Sorted by prefix so the document does not depend on the order modules were imported in.
    for cls in sorted(_REGISTERED, key=lambda c: (str(c.model_config.get("env_prefix", "")) != "LDN_", c.__name__)):
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines.append(f"## {cls.__name__}\n")
        doc = (cls.__doc__ or "").strip().splitlines()
        if doc:
            lines.append(doc[0] + "\n")
        lines.append("| Variable | Default | Meaning |")
        lines.append("|---|---|---|")
        for name, field in cls.model_fields.items():
            default: Any = field.default
            if field.default_factory is not None:
                default = "(computed)"
            shown = "" if default is None else f"`{default}`"
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{prefix}{name.upper()}` | {shown} | {meaning} |")
        lines.append("")
    return "\n".join(lines)
