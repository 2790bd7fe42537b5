"""docs/audit-events.md is generated from the catalogue in the code and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from ldn.audit.catalogue import CATALOGUE, render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-events.md"


def test_audit_events_doc_matches_the_catalogue() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/audit-events.md is out of date: run `ldn audit catalogue --output docs/audit-events.md`"
    )


def test_every_event_type_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code, item in CATALOGUE.items():
        assert f"| {code} | `{item.key}` |" in text
