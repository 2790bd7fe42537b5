"""Helpers for the agreement-system tests: paths, a fixed today, and a builder for crafted systems."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from ldn.afspraken import AgreementRepository, Problem, run_checks

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "afsprakenstelsel"
#: Fixed "today" so expiry checks do not depend on the clock.
TODAY = date(2026, 11, 22)

_KIND_LAYER = {
    "P": ("principle", "organisatorisch"),
    "G": ("governance-rule", "organisatorisch"),
    "JUR": ("agreement", "juridisch"),
    "ORG": ("agreement", "organisatorisch"),
    "SEM": ("agreement", "semantisch"),
    "TA": ("technical-agreement", "technisch"),
    "SPEC": ("specification", "technisch"),
    "REF": ("standard-reference", "technisch"),
}


class LasBuilder:
    """Writes a small agreement system to disk; every default is valid, tests break one thing."""

    def __init__(self, base: Path) -> None:
        self.root = base / "las"
        shutil.copytree(SHIPPED / "schema", self.root / "schema")
        (self.root / "agreements" / "history").mkdir(parents=True)
        (self.root / "releases").mkdir()

    def agreement(
        self, agreement_id: str, *, in_history: bool = False, drop: tuple[str, ...] = (), **fields: Any
    ) -> dict[str, Any]:
        code = agreement_id.split("-")[1]
        kind, layer = _KIND_LAYER[code]
        version = fields.get("version", "1.0.0")
        data: dict[str, Any] = {
            "id": agreement_id,
            "version": version,
            "title": f"Afspraak {agreement_id}",
            "layer": layer,
            "kind": kind,
            "topic": f"test.{agreement_id.lower()}",
            "status": "normative",
            "plateau": "2026-2027",
            "text": "Een deelnemer MOET zich aan deze testafspraak houden, zonder uitzondering.",
            "history": [{"version": version, "date": "2026-03-01", "change": "Eerste vaststelling."}],
        }
        if kind == "technical-agreement":
            data["conformance_tests"] = ["NTV-TEST-001"]
        if kind == "standard-reference":
            data["owner"] = "IETF"
            data["reference"] = {"title": "Test RFC", "url": "https://www.rfc-editor.org/rfc/rfc9999"}
        data.update(fields)
        for key in drop:
            data.pop(key, None)
        name = f"{agreement_id}@{version}.yaml" if in_history else f"{agreement_id}.yaml"
        folder = self.root / "agreements" / ("history" if in_history else "")
        self.write(folder / name, data)
        return data

    def release(
        self,
        version: str,
        agreements: dict[str, str],
        *,
        date: str = "2026-03-01",
        status: str = "current",
        filename: str | None = None,
    ) -> None:
        data = {
            "version": version,
            "date": date,
            "status": status,
            "notes": f"Testrelease {version}.",
            "agreements": agreements,
        }
        self.write(self.root / "releases" / f"{filename or version}.yaml", data)

    def harmonisation(self, systems: dict[str, Any], topics: list[str] | None = None) -> None:
        data = {"updated": "2026-09-01", "topics": topics or ["identification"], "systems": systems}
        self.write(self.root / "harmonisation.yaml", data)

    @staticmethod
    def write(path: Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Dates are written as plain strings; the loader keeps them as strings for the schema.
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

    def load(self) -> AgreementRepository:
        return AgreementRepository.load(self.root)

    def check(self, today: date = TODAY, repo_root: Path | None = None) -> list[Problem]:
        return run_checks(self.load(), today, repo_root or self.root.parent)


def codes(problems: list[Problem], severity: str | None = None) -> set[str]:
    return {p.code for p in problems if severity is None or p.severity == severity}


def only(problems: list[Problem], code: str) -> list[Problem]:
    return [p for p in problems if p.code == code]
