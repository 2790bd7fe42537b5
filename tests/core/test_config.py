"""Configuration: environment variables are read, and docs/CONFIGURATION.md lists every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from ldn.cli import render_configuration_doc
from ldn.core.config import CoreSettings, registered_settings

ROOT = Path(__file__).resolve().parents[2]


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDN_PORT", "9191")
    monkeypatch.setenv("LDN_MAX_BODY_BYTES", "1024")
    settings = CoreSettings()
    assert settings.port == 9191
    assert settings.max_body_bytes == 1024
    assert settings.resolved_database_url().startswith("sqlite:///")


def test_invalid_setting_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDN_LOG_LEVEL", "LOUD")
    with pytest.raises(ValueError, match="log_level"):
        CoreSettings()


def test_configuration_doc_is_current() -> None:
    expected = render_configuration_doc()
    actual = (ROOT / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8")
    assert actual == expected, "run: ldn config docs --output docs/CONFIGURATION.md"
    for cls in registered_settings():
        prefix = cls.model_config.get("env_prefix", "")
        for name in cls.model_fields:
            assert f"`{prefix}{name.upper()}`" in actual
