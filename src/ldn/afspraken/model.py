"""Typed model of the Landelijk afsprakenstelsel: agreements, releases, harmonisation, problems.

The YAML files are validated against the JSON schemas in ``afsprakenstelsel/schema`` first; these
pydantic models are the typed view the rest of the code works with. Models are frozen: a loaded
agreement version is a fact, not something services may tweak at runtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal, NamedTuple, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Agreement",
    "Harmonisation",
    "HarmonisationStatus",
    "HarmonisationSystem",
    "HarmonisationTopic",
    "HistoryEntry",
    "Kind",
    "Layer",
    "Parameter",
    "ParameterValue",
    "Plateau",
    "Problem",
    "Reference",
    "Release",
    "ReleaseStatus",
    "SemVer",
    "Severity",
    "Status",
    "Temporary",
    "is_compatible",
]

#: What a governed parameter can hold; the YAML type is the type a service receives.
ParameterValue: TypeAlias = bool | int | float | str | list[str | int | float]

_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class SemVer(NamedTuple):
    """A strict ``x.y.z`` version (no pre-release or build suffix: releases are frozen sets)."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse ``x.y.z``; raise ValueError for anything else (leading zeros, suffixes, ``1.2``)."""
        m = _SEMVER.match(text)
        if m is None:
            raise ValueError(f"not a semantic version x.y.z: {text!r}")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    @classmethod
    def is_valid(cls, text: str) -> bool:
        return _SEMVER.match(text) is not None

    @property
    def is_patch(self) -> bool:
        """True for a patch release (x.y.z with z > 0); those do not count towards the cadence."""
        return self.patch > 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class Layer(StrEnum):
    JURIDISCH = "juridisch"
    ORGANISATORISCH = "organisatorisch"
    SEMANTISCH = "semantisch"
    TECHNISCH = "technisch"


class Kind(StrEnum):
    PRINCIPLE = "principle"
    AGREEMENT = "agreement"
    TECHNICAL_AGREEMENT = "technical-agreement"
    SPECIFICATION = "specification"
    STANDARD_REFERENCE = "standard-reference"
    GOVERNANCE_RULE = "governance-rule"


class Status(StrEnum):
    DRAFT = "draft"
    CANDIDATE = "candidate"
    TRIAL = "trial"
    NORMATIVE = "normative"
    INFORMATIVE = "informative"
    PHASED_OUT = "phased-out"
    WITHDRAWN = "withdrawn"

    @property
    def is_binding(self) -> bool:
        """Normative and trial agreements are what participants must (or, in trial, do) implement."""
        return self in (Status.NORMATIVE, Status.TRIAL)


class Plateau(StrEnum):
    P2026_2027 = "2026-2027"
    P2028_2030 = "2028-2030"
    P2031_2035 = "2031-2035"


class ReleaseStatus(StrEnum):
    CURRENT = "current"
    PREVIOUS = "previous"
    RETIRED = "retired"
    PLANNED = "planned"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Parameter(_Frozen):
    """A governed value, e.g. ``access_token_lifetime = 900 s``."""

    value: ParameterValue
    unit: str
    description: str | None = None


class Reference(_Frozen):
    """An external standard (title plus URL or identifier, and the version the LAS refers to)."""

    title: str
    url: str | None = None
    identifier: str | None = None
    version: str | None = None


class Temporary(_Frozen):
    """The validity block of a tussentijdse afspraak."""

    valid_from: date
    valid_until: date
    replaced_by_expected: str
    replaced_by: str | None = None

    def expired(self, today: date) -> bool:
        return self.valid_until < today


class HistoryEntry(_Frozen):
    version: str
    date: date
    change: str


class Agreement(_Frozen):
    """One version of one agreement."""

    id: str
    version: str
    title: str
    layer: Layer
    kind: Kind
    topic: str
    status: Status
    plateau: Plateau
    owner: str | None = None
    reference: Reference | None = None
    text: str
    rationale: str | None = None
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    references: list[str] = Field(default_factory=list)
    supersedes: list[str] = Field(default_factory=list)
    temporary: Temporary | None = None
    conformance_tests: list[str] = Field(default_factory=list)
    history: list[HistoryEntry]

    @property
    def key(self) -> tuple[str, str]:
        return (self.id, self.version)

    @property
    def semver(self) -> SemVer:
        return SemVer.parse(self.version)

    @property
    def is_temporary(self) -> bool:
        return self.temporary is not None

    @property
    def is_technical_agreement(self) -> bool:
        return self.kind is Kind.TECHNICAL_AGREEMENT


class Release(_Frozen):
    """A frozen set of agreement versions (``agreements`` maps id -> agreement version)."""

    version: str
    date: date
    status: ReleaseStatus
    title: str | None = None
    notes: str
    agreements: dict[str, str]

    @property
    def semver(self) -> SemVer:
        """Parsed version; raises ValueError for a malformed one (the checks report that)."""
        return SemVer.parse(self.version)


class HarmonisationStatus(StrEnum):
    OWN = "own"
    REFERS = "refers"
    TRANSITION = "transition"


class HarmonisationTopic(_Frozen):
    status: HarmonisationStatus
    las: list[str] = Field(default_factory=list)
    target_date: date | None = None
    note: str | None = None


class HarmonisationSystem(_Frozen):
    description: str
    beheerder: str
    url: str | None = None
    topics: dict[str, HarmonisationTopic]


class Harmonisation(_Frozen):
    updated: date
    topics: list[str]
    systems: dict[str, HarmonisationSystem]


Severity: TypeAlias = Literal["error", "warning"]


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One finding of loading or checking. ``location`` is ``<file>[:<json path>]`` or an id."""

    code: str
    location: str
    message: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        return f"{self.severity}: [{self.code}] {self.location}: {self.message}"


def is_compatible(app_version: str, release: Release | str) -> bool:
    """An application built for LAS release ``app_version`` is compatible when the major matches.

    Minor and patch releases only add or tighten compatibly (LAS-G-COMPAT-001), so an application
    built for 1.0.0 runs against 1.1.0 but not against 2.0.0.
    """
    target = release.version if isinstance(release, Release) else release
    return SemVer.parse(app_version).major == SemVer.parse(target).major
