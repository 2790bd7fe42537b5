"""Load the agreement system from disk, validate every file, and answer questions about it.

Layout (see ``afsprakenstelsel/README.md``)::

    afsprakenstelsel/
      schema/{agreement,release,harmonisation}.schema.json
      agreements/<ID>.yaml                 newest version of each agreement
      agreements/history/<ID>@<ver>.yaml   every earlier version still named by some release
      releases/<x.y.z>.yaml                frozen id -> version maps
      harmonisation.yaml

Services read governed parameters through :meth:`AgreementRepository.parameter`, e.g.
``default_repository().parameter("LAS-TA-AUTH-002", "access_token_lifetime", expect=int)``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, overload

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import ValidationError as PydanticValidationError

from ldn.afspraken.model import (
    Agreement,
    Harmonisation,
    Kind,
    Layer,
    Parameter,
    ParameterValue,
    Plateau,
    Problem,
    Release,
    ReleaseStatus,
    SemVer,
    Status,
)

__all__ = [
    "AfsprakenError",
    "AgreementRepository",
    "AmbiguousParameterError",
    "GovernedParameter",
    "RepositoryError",
    "ResolvedRelease",
    "UnknownAgreementError",
    "UnknownParameterError",
    "UnknownReleaseError",
    "default_repository",
    "find_root",
    "load_yaml",
]

T = TypeVar("T", bool, int, float, str, list[Any])

AGREEMENT_ID = re.compile(r"^LAS-(P|G|JUR|ORG|SEM|TA|SPEC|REF)-[A-Z][A-Z0-9]{1,11}-[0-9]{3}$")
ENV_ROOT = "LDN_AFSPRAKENSTELSEL"
ENV_RELEASE = "LDN_LAS_RELEASE"


class AfsprakenError(Exception):
    """Base class for lookups and loads that cannot be answered."""


class RepositoryError(AfsprakenError):
    """Raised by a strict load when the files contain errors; carries the problems."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"agreement system has {len(problems)} error(s):\n{shown}{more}")


class UnknownAgreementError(AfsprakenError, LookupError):
    pass


class UnknownReleaseError(AfsprakenError, LookupError):
    pass


class UnknownParameterError(AfsprakenError, LookupError):
    pass


class AmbiguousParameterError(AfsprakenError, LookupError):
    pass


# --------------------------------------------------------------------------------------------
# YAML and schema handling


# The C parser is several times faster than the pure-Python one; fall back when libyaml is absent.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StringDateLoader(_SafeBase):  # type: ignore[misc,valid-type]
    """Safe loader that leaves dates as strings, so the JSON schema sees exactly what was written."""


_StringDateLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> Any:
    """Parse one YAML file with dates kept as strings."""
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_StringDateLoader)  # noqa: S506 - a SafeLoader subclass


@lru_cache(maxsize=16)
def _validator(schema_path: Path) -> Draft202012Validator:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _schema_problems(data: Any, validator: Draft202012Validator, where: str) -> list[Problem]:
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: (e.json_path, e.message)):
        problems.append(Problem("schema", f"{where}:{err.json_path}", err.message))
    return problems


# --------------------------------------------------------------------------------------------
# Resolved releases and parameters


@dataclass(frozen=True, slots=True)
class GovernedParameter:
    """A parameter value together with where it comes from (for logs and explanations)."""

    name: str
    value: ParameterValue
    unit: str
    description: str | None
    agreement_id: str
    agreement_version: str
    release: str


@dataclass(frozen=True)
class ResolvedRelease:
    """A release with its agreement versions looked up. ``missing`` lists unresolvable entries."""

    release: Release
    agreements: Mapping[str, Agreement]
    missing: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> str:
        return self.release.version

    @property
    def status(self) -> ReleaseStatus:
        return self.release.status

    def __contains__(self, agreement_id: object) -> bool:
        return agreement_id in self.agreements

    def __iter__(self) -> Iterator[Agreement]:
        return iter(sorted(self.agreements.values(), key=lambda a: a.id))

    def __len__(self) -> int:
        return len(self.agreements)

    def get(self, agreement_id: str) -> Agreement:
        try:
            return self.agreements[agreement_id]
        except KeyError:
            raise UnknownAgreementError(f"{agreement_id} is not part of release {self.version}") from None

    def find_parameter(self, name: str) -> list[Agreement]:
        """Agreements in this release (not withdrawn) that define parameter ``name``."""
        return [a for a in self if name in a.parameters and a.status is not Status.WITHDRAWN]


# --------------------------------------------------------------------------------------------
# The repository


@dataclass
class AgreementRepository:
    """All agreement versions, releases and the harmonisation table of one agreement system."""

    root: Path
    versions: dict[tuple[str, str], Agreement] = field(default_factory=dict)
    latest: dict[str, str] = field(default_factory=dict)
    releases: dict[str, Release] = field(default_factory=dict)
    harmonisation: Harmonisation | None = None
    problems: list[Problem] = field(default_factory=list)
    sources: dict[tuple[str, str], Path] = field(default_factory=dict)
    release_sources: dict[str, Path] = field(default_factory=dict)
    default_release: str | None = None

    # ---- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, root: Path | str, *, strict: bool = False, release: str | None = None) -> AgreementRepository:
        """Load ``root``; file problems land in ``.problems`` (or raise when ``strict``).

        ``release`` pins the release that :meth:`parameter` uses when none is given (the
        "switch release" knob); without it the release with status ``current`` is used.
        """
        repo = cls(root=Path(root), default_release=release)
        repo._load_all()
        if strict:
            errors = [p for p in repo.problems if p.is_error]
            if errors:
                raise RepositoryError(errors)
        if release is not None and release not in repo.releases:
            raise UnknownReleaseError(f"release {release} does not exist in {repo.root}")
        return repo

    def display_path(self, path: Path) -> str:
        """``path`` relative to the parent of the root (``afsprakenstelsel/agreements/X.yaml``)."""
        try:
            return str(Path(self.root.name) / path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _read(self, path: Path, validator: Draft202012Validator) -> Any | None:
        where = self.display_path(path)
        try:
            data = load_yaml(path)
        except yaml.YAMLError as exc:
            self.problems.append(Problem("yaml", where, f"not valid YAML: {exc}"))
            return None
        schema_problems = _schema_problems(data, validator, where)
        if schema_problems:
            self.problems.extend(schema_problems)
            return None
        return data

    def _load_all(self) -> None:
        schema_dir = self.root / "schema"
        if not (schema_dir / "agreement.schema.json").is_file():
            raise AfsprakenError(f"{self.root} is not an agreement system: schema/agreement.schema.json is missing")
        agreement_v = _validator((schema_dir / "agreement.schema.json").resolve())
        release_v = _validator((schema_dir / "release.schema.json").resolve())
        harmonisation_v = _validator((schema_dir / "harmonisation.schema.json").resolve())

        agreements_dir = self.root / "agreements"
        for path in sorted(agreements_dir.glob("*.yaml")):
            self._load_agreement(path, agreement_v, history=False)
        for path in sorted((agreements_dir / "history").glob("*.yaml")):
            self._load_agreement(path, agreement_v, history=True)
        self._check_latest_is_newest()

        for path in sorted((self.root / "releases").glob("*.yaml")):
            data = self._read(path, release_v)
            if data is None:
                continue
            where = self.display_path(path)
            try:
                rel = Release.model_validate(data)
            except PydanticValidationError as exc:
                self.problems.append(Problem("model", where, str(exc)))
                continue
            if path.stem != rel.version:
                self.problems.append(Problem("filename", where, f"file name must be {rel.version}.yaml"))
            if rel.version in self.releases:
                self.problems.append(Problem("duplicate-release", where, f"release {rel.version} defined twice"))
                continue
            self.releases[rel.version] = rel
            self.release_sources[rel.version] = path

        harmonisation_path = self.root / "harmonisation.yaml"
        if harmonisation_path.exists():
            data = self._read(harmonisation_path, harmonisation_v)
            if data is not None:
                try:
                    self.harmonisation = Harmonisation.model_validate(data)
                except PydanticValidationError as exc:
                    self.problems.append(Problem("model", self.display_path(harmonisation_path), str(exc)))

    def _load_agreement(self, path: Path, validator: Draft202012Validator, *, history: bool) -> None:
        data = self._read(path, validator)
        if data is None:
            return
        where = self.display_path(path)
        try:
            agreement = Agreement.model_validate(data)
        except PydanticValidationError as exc:  # the schema should have caught it; say so plainly
            self.problems.append(Problem("model", where, str(exc)))
            return
        expected = f"{agreement.id}@{agreement.version}" if history else agreement.id
        if path.stem != expected:
            self.problems.append(Problem("filename", where, f"file name must be {expected}.yaml (id/version inside)"))
            return
        if agreement.key in self.versions:
            other = self.display_path(self.sources[agreement.key])
            self.problems.append(
                Problem(
                    "duplicate-version",
                    where,
                    f"{agreement.id} version {agreement.version} is also defined in {other}",
                )
            )
            return
        self.versions[agreement.key] = agreement
        self.sources[agreement.key] = path
        if not history:
            self.latest[agreement.id] = agreement.version

    def _check_latest_is_newest(self) -> None:
        # The main file holds the newest text; a newer version hidden in history/ would mean
        # readers of agreements/<ID>.yaml see an outdated agreement.
        for (agreement_id, version), agreement in self.versions.items():
            current = self.latest.get(agreement_id)
            if current is None:
                self.problems.append(
                    Problem(
                        "history-without-current",
                        self.display_path(self.sources[agreement.key]),
                        f"{agreement_id}@{version} is in history/ but agreements/{agreement_id}.yaml does not exist",
                    )
                )
            elif SemVer.parse(version) > SemVer.parse(current):
                self.problems.append(
                    Problem(
                        "history-newer",
                        self.display_path(self.sources[agreement.key]),
                        f"history version {version} is newer than the main file's {current}",
                    )
                )

    # ---- agreements ------------------------------------------------------------------------

    def __contains__(self, agreement_id: object) -> bool:
        return agreement_id in self.latest

    def __iter__(self) -> Iterator[Agreement]:
        """Newest version of every agreement, sorted by id."""
        return (self.versions[(i, self.latest[i])] for i in sorted(self.latest))

    def __len__(self) -> int:
        return len(self.latest)

    def ids(self) -> list[str]:
        return sorted(self.latest)

    def get(self, agreement_id: str, version: str | None = None) -> Agreement:
        """The newest version of an agreement, or the named version."""
        if version is None:
            if agreement_id not in self.latest:
                raise UnknownAgreementError(f"unknown agreement {agreement_id}")
            version = self.latest[agreement_id]
        try:
            return self.versions[(agreement_id, version)]
        except KeyError:
            raise UnknownAgreementError(f"unknown agreement version {agreement_id}@{version}") from None

    def all_versions(self, agreement_id: str | None = None) -> list[Agreement]:
        """Every loaded version (of one agreement), oldest first."""
        found = [a for a in self.versions.values() if agreement_id in (None, a.id)]
        return sorted(found, key=lambda a: (a.id, a.semver))

    def source(self, agreement: Agreement) -> Path:
        return self.sources[agreement.key]

    def find(
        self,
        *,
        layer: Layer | str | None = None,
        kind: Kind | str | None = None,
        plateau: Plateau | str | None = None,
        status: Status | str | None = None,
        topic: str | None = None,
        temporary: bool | None = None,
        release: str | ResolvedRelease | None = None,
    ) -> list[Agreement]:
        """Agreements matching all given filters: newest versions, or those frozen in ``release``."""
        pool: Iterable[Agreement] = self if release is None else self.release(release)
        return [
            a
            for a in pool
            if (layer is None or a.layer == layer)
            and (kind is None or a.kind == kind)
            and (plateau is None or a.plateau == plateau)
            and (status is None or a.status == status)
            and (topic is None or a.topic == topic)
            and (temporary is None or a.is_temporary == temporary)
        ]

    def by_layer(self, layer: Layer | str, release: str | None = None) -> list[Agreement]:
        return self.find(layer=layer, release=release)

    def by_plateau(self, plateau: Plateau | str, release: str | None = None) -> list[Agreement]:
        return self.find(plateau=plateau, release=release)

    def by_status(self, status: Status | str, release: str | None = None) -> list[Agreement]:
        return self.find(status=status, release=release)

    # ---- releases --------------------------------------------------------------------------

    def release_versions(self) -> list[str]:
        """Versions of well-formed releases, oldest first (malformed ones are reported by checks)."""
        return sorted((v for v in self.releases if SemVer.is_valid(v)), key=SemVer.parse)

    def release(self, version: str | ResolvedRelease) -> ResolvedRelease:
        """The release ``version`` with each agreement id resolved to its frozen version."""
        if isinstance(version, ResolvedRelease):
            return version
        try:
            rel = self.releases[version]
        except KeyError:
            raise UnknownReleaseError(f"unknown release {version}") from None
        resolved: dict[str, Agreement] = {}
        missing: list[tuple[str, str]] = []
        for agreement_id, agreement_version in rel.agreements.items():
            agreement = self.versions.get((agreement_id, agreement_version))
            if agreement is None:
                missing.append((agreement_id, agreement_version))
            else:
                resolved[agreement_id] = agreement
        return ResolvedRelease(rel, resolved, tuple(missing))

    def _with_status(self, status: ReleaseStatus) -> list[Release]:
        return [r for r in self.releases.values() if r.status is status]

    def current_release(self) -> ResolvedRelease:
        """The one release with status ``current``."""
        current = self._with_status(ReleaseStatus.CURRENT)
        if len(current) != 1:
            found = ", ".join(sorted(r.version for r in current)) or "none"
            raise UnknownReleaseError(f"expected exactly one current release, found {found}")
        return self.release(current[0].version)

    def previous_release(self) -> ResolvedRelease | None:
        previous = self._with_status(ReleaseStatus.PREVIOUS)
        return self.release(previous[0].version) if len(previous) == 1 else None

    def valid_releases(self) -> list[ResolvedRelease]:
        """Releases a participant may implement today: current and previous (n-1)."""
        out = [self.current_release()]
        previous = self.previous_release()
        if previous is not None:
            out.append(previous)
        return out

    def active_release(self, on: date, *, include_planned: bool = False) -> ResolvedRelease | None:
        """The release in force on ``on``: the newest one whose date has been reached.

        Planned releases are announcements, not law: they only count with ``include_planned``.
        """
        candidates = [
            r
            for r in self.releases.values()
            if SemVer.is_valid(r.version)
            and r.date <= on
            and (include_planned or r.status is not ReleaseStatus.PLANNED)
        ]
        if not candidates:
            return None
        best = max(candidates, key=lambda r: (r.date, r.semver))
        return self.release(best.version)

    def _pick_release(self, release: str | ResolvedRelease | None) -> ResolvedRelease:
        if release is not None:
            return self.release(release)
        if self.default_release is not None:
            return self.release(self.default_release)
        return self.current_release()

    # ---- governed parameters ---------------------------------------------------------------

    def parameter_info(
        self,
        agreement_or_name: str,
        name: str | None = None,
        *,
        release: str | ResolvedRelease | None = None,
    ) -> GovernedParameter:
        """Look up a governed parameter with its provenance. See :meth:`parameter`."""
        rel = self._pick_release(release)
        if AGREEMENT_ID.match(agreement_or_name):
            agreement = rel.get(agreement_or_name)
            if name is None:
                if len(agreement.parameters) != 1:
                    names = ", ".join(sorted(agreement.parameters)) or "none"
                    raise UnknownParameterError(f"{agreement.id} has parameters [{names}]: name the one you want")
                name = next(iter(agreement.parameters))
            if name not in agreement.parameters:
                names = ", ".join(sorted(agreement.parameters)) or "none"
                raise UnknownParameterError(
                    f"{agreement.id}@{agreement.version} (release {rel.version}) has no parameter"
                    f" {name!r}; it has [{names}]"
                )
        else:
            if name is not None:
                raise UnknownAgreementError(f"not an agreement id: {agreement_or_name!r}")
            name = agreement_or_name
            owners = rel.find_parameter(name)
            if not owners:
                raise UnknownParameterError(f"no agreement in release {rel.version} defines {name!r}")
            if len(owners) > 1:
                ids = ", ".join(a.id for a in owners)
                raise AmbiguousParameterError(
                    f"{name!r} is defined by several agreements in release {rel.version}: {ids}"
                )
            agreement = owners[0]
        p: Parameter = agreement.parameters[name]
        return GovernedParameter(
            name=name,
            value=p.value,
            unit=p.unit,
            description=p.description,
            agreement_id=agreement.id,
            agreement_version=agreement.version,
            release=rel.version,
        )

    @overload
    def parameter(
        self,
        agreement_or_name: str,
        name: str | None = None,
        *,
        release: str | ResolvedRelease | None = None,
        expect: None = None,
    ) -> ParameterValue: ...

    @overload
    def parameter(
        self,
        agreement_or_name: str,
        name: str | None = None,
        *,
        release: str | ResolvedRelease | None = None,
        expect: type[T],
    ) -> T: ...

    def parameter(
        self,
        agreement_or_name: str,
        name: str | None = None,
        *,
        release: str | ResolvedRelease | None = None,
        expect: type[Any] | None = None,
    ) -> Any:
        """The value of a governed parameter in ``release`` (default: the pinned or current one).

        ``repo.parameter("LAS-TA-AUTH-002", "access_token_lifetime")`` -> ``900``;
        ``repo.parameter("access_token_lifetime")`` finds the one agreement defining the name.
        With ``expect=int`` the value is type-checked (a bool is not accepted as an int) and the
        return type is narrowed for the caller; ``expect=float`` also accepts integers.
        """
        info = self.parameter_info(agreement_or_name, name, release=release)
        value = info.value
        if expect is None:
            return value
        if expect is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        # bool is a subclass of int in Python; a governed "true" must never pass as a number.
        ok = isinstance(value, expect) and not (isinstance(value, bool) and expect is not bool)
        if not ok:
            raise TypeError(
                f"parameter {info.name} of {info.agreement_id} is {type(value).__name__}"
                f" {value!r}, expected {expect.__name__}"
            )
        return value


# --------------------------------------------------------------------------------------------
# Finding the shipped agreement system


def find_root(start: Path | None = None) -> Path:
    """Locate ``afsprakenstelsel/``: ``$LDN_AFSPRAKENSTELSEL``, else walk up from here or cwd."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env)
    starts = [start] if start is not None else [Path(__file__).resolve(), Path.cwd().resolve()]
    for origin in starts:
        for directory in [origin, *origin.parents]:
            candidate = directory / "afsprakenstelsel"
            if (candidate / "schema" / "agreement.schema.json").is_file():
                return candidate
    raise AfsprakenError(f"cannot find the afsprakenstelsel directory; set {ENV_ROOT} to its path")


@lru_cache(maxsize=4)
def _cached(root: Path, release: str | None) -> AgreementRepository:
    return AgreementRepository.load(root, strict=True, release=release)


def default_repository(root: Path | None = None, release: str | None = None) -> AgreementRepository:
    """The shipped agreement system, loaded strictly once per process.

    ``release`` (or ``$LDN_LAS_RELEASE``) pins the release parameters come from; by default the
    release with status ``current`` is used.
    """
    chosen = release if release is not None else os.environ.get(ENV_RELEASE) or None
    return _cached((root or find_root()).resolve(), chosen)
