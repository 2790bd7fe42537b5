"""Diff two releases of the agreement system: what a participant has to look at when migrating.

``diff_releases(repo, "1.0.0", "1.1.0")`` lists agreements added, removed and changed; for a
changed agreement it names the version change, status change, parameter changes (with units),
other changed fields and a unified diff of the text.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ldn.afspraken.model import Agreement, Parameter, ParameterValue, Status
from ldn.afspraken.repository import AgreementRepository, ResolvedRelease

__all__ = [
    "AgreementChange",
    "ParameterChange",
    "ReleaseDiff",
    "diff_agreements",
    "diff_releases",
]

# Fields compared generically; text, status, parameters and version get dedicated treatment.
_OTHER_FIELDS = (
    "title",
    "layer",
    "kind",
    "topic",
    "plateau",
    "owner",
    "reference",
    "rationale",
    "references",
    "supersedes",
    "temporary",
    "conformance_tests",
)


@dataclass(frozen=True, slots=True)
class ParameterChange:
    name: str
    old: Parameter | None
    new: Parameter | None

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"

    @property
    def old_value(self) -> ParameterValue | None:
        return None if self.old is None else self.old.value

    @property
    def new_value(self) -> ParameterValue | None:
        return None if self.new is None else self.new.value

    def __str__(self) -> str:
        def show(p: Parameter | None) -> str:
            return "-" if p is None else f"{p.value} {p.unit}"

        return f"parameter {self.name}: {show(self.old)} -> {show(self.new)}"


@dataclass(frozen=True)
class AgreementChange:
    id: str
    old: Agreement
    new: Agreement
    parameters: list[ParameterChange] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    text_diff: list[str] = field(default_factory=list)

    @property
    def old_version(self) -> str:
        return self.old.version

    @property
    def new_version(self) -> str:
        return self.new.version

    @property
    def status_change(self) -> tuple[Status, Status] | None:
        if self.old.status is self.new.status:
            return None
        return (self.old.status, self.new.status)

    @property
    def text_changed(self) -> bool:
        return bool(self.text_diff)


@dataclass(frozen=True)
class ReleaseDiff:
    old: str
    new: str
    added: list[Agreement] = field(default_factory=list)
    removed: list[Agreement] = field(default_factory=list)
    changed: list[AgreementChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def change(self, agreement_id: str) -> AgreementChange:
        for c in self.changed:
            if c.id == agreement_id:
                return c
        raise KeyError(f"{agreement_id} did not change between {self.old} and {self.new}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the CLI's --json and the web view)."""
        return {
            "old": self.old,
            "new": self.new,
            "added": [{"id": a.id, "version": a.version, "status": a.status.value} for a in self.added],
            "removed": [{"id": a.id, "version": a.version, "status": a.status.value} for a in self.removed],
            "changed": [
                {
                    "id": c.id,
                    "old_version": c.old_version,
                    "new_version": c.new_version,
                    "status": (
                        None
                        if c.status_change is None
                        else {"old": c.status_change[0].value, "new": c.status_change[1].value}
                    ),
                    "parameters": [
                        {
                            "name": p.name,
                            "change": p.kind,
                            "old": None if p.old is None else p.old.model_dump(exclude_none=True),
                            "new": None if p.new is None else p.new.model_dump(exclude_none=True),
                        }
                        for p in c.parameters
                    ],
                    "fields": c.fields,
                    "text_diff": c.text_diff,
                }
                for c in self.changed
            ],
            "unchanged": self.unchanged,
        }

    def format(self, *, with_text: bool = True) -> str:
        """Human-readable report."""
        lines = [f"LAS release {self.old} -> {self.new}"]
        if self.is_empty:
            lines.append("  no changes")
        for a in self.added:
            lines.append(f"+ {a.id}@{a.version} [{a.status}] {a.title}")
        for a in self.removed:
            lines.append(f"- {a.id}@{a.version} [{a.status}] {a.title}")
        for c in self.changed:
            lines.append(f"~ {c.id} {c.old_version} -> {c.new_version} {c.new.title}")
            if c.status_change is not None:
                lines.append(f"    status: {c.status_change[0]} -> {c.status_change[1]}")
            lines.extend(f"    {p}" for p in c.parameters)
            if c.fields:
                lines.append(f"    fields: {', '.join(c.fields)}")
            if c.text_diff:
                lines.append("    text changed")
                if with_text:
                    lines.extend(f"      {line}" for line in c.text_diff)
        return "\n".join(lines)


def _parameter_changes(old: Agreement, new: Agreement) -> list[ParameterChange]:
    changes = []
    for name in sorted(set(old.parameters) | set(new.parameters)):
        a, b = old.parameters.get(name), new.parameters.get(name)
        if a != b:
            changes.append(ParameterChange(name, a, b))
    return changes


def diff_agreements(old: Agreement, new: Agreement) -> AgreementChange | None:
    """The change between two versions of one agreement, or None when they are the same."""
    if old == new:
        return None
    text_diff = list(
        difflib.unified_diff(
            old.text.splitlines(),
            new.text.splitlines(),
            fromfile=f"{old.id}@{old.version}",
            tofile=f"{new.id}@{new.version}",
            lineterm="",
        )
    )
    fields = [f for f in _OTHER_FIELDS if getattr(old, f) != getattr(new, f)]
    return AgreementChange(
        id=new.id,
        old=old,
        new=new,
        parameters=_parameter_changes(old, new),
        fields=fields,
        text_diff=text_diff,
    )


def diff_releases(repo: AgreementRepository, old: str | ResolvedRelease, new: str | ResolvedRelease) -> ReleaseDiff:
    """Compare two releases agreement by agreement."""
    a, b = repo.release(old), repo.release(new)
    added = [b.agreements[i] for i in sorted(set(b.agreements) - set(a.agreements))]
    removed = [a.agreements[i] for i in sorted(set(a.agreements) - set(b.agreements))]
    changed: list[AgreementChange] = []
    unchanged: list[str] = []
    for agreement_id in sorted(set(a.agreements) & set(b.agreements)):
        change = diff_agreements(a.agreements[agreement_id], b.agreements[agreement_id])
        if change is None:
            unchanged.append(agreement_id)
        else:
            changed.append(change)
    return ReleaseDiff(a.version, b.version, added, removed, changed, unchanged)
