"""Governance checks on the agreement system (SPEC §3, memo §5 "sturen op samenhang en kwaliteit").

``run_checks(repo, today, repo_root)`` returns every problem found; the system "passes" when none
has severity ``error``. Codes are stable so that tools and tests can rely on them (severity error unless noted):

- loading: ``schema`` (with file and JSON path), ``yaml``, ``filename``, ``duplicate-version``,
  ``duplicate-release``, ``history-newer``, ``history-without-current``, ``model``;
- agreements: ``dangling-reference``, ``dangling-supersedes``, ``dangling-replaced-by``,
  ``dangling-text-reference`` (the text names an unknown id),
  ``self-reference``, ``history-version`` (last history entry is not this version),
  ``temporary-period`` (valid_until not after valid_from), ``temporary-too-long`` (longer than
  LAS-G-TEMP-001 allows), ``ta-without-tests``;
- conformance tests: ``conformance-test-missing`` (file exists, test does not, or the id is
  unusable), ``conformance-test-planned`` (warning: the file does not exist yet);
- releases: ``release-semver``, ``release-unknown-agreement``, ``release-unknown-version``,
  ``release-cadence`` (more than two major/minor releases in a calendar year),
  ``release-current`` (not exactly one current), ``release-previous`` (previous is not n-1),
  ``release-order`` (versions, dates and statuses disagree), ``release-draft`` (warning: a
  current/previous release contains a draft), ``release-reference-outside`` (warning: an agreement
  references one the release does not contain);
- compatibility (LAS-G-COMPAT-001, between consecutive releases with the same major version):
  ``release-compat-removed`` (an agreement disappears), ``release-compat-agreement-major`` (an
  agreement's major version rises: an incompatible change needs a new major release),
  ``release-compat-parameter`` (a parameter disappears or changes unit or value type);
- release content: ``duplicate-normative-topic``, ``duplicate-parameter``,
  ``superseded-still-binding``, ``temporary-expired`` (an expired temporary agreement is still
  normative/trial in the current release), ``temporary-expiring`` (warning, within 90 days);
- harmonisation: ``harmonisation-unknown-id``, ``harmonisation-unknown-topic``,
  ``harmonisation-missing-topic`` (warning), ``harmonisation-overdue`` (warning).
"""

from __future__ import annotations

import ast
import calendar
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from ldn.afspraken.model import (
    Agreement,
    HarmonisationStatus,
    Kind,
    Problem,
    ReleaseStatus,
    SemVer,
    Status,
    is_compatible,
)
from ldn.afspraken.repository import AfsprakenError, AgreementRepository, ResolvedRelease

__all__ = [
    "MAX_FEATURE_RELEASES_PER_YEAR",
    "ConformanceTest",
    "conformance_test_state",
    "conformance_tests",
    "errors",
    "harmonisation_summary",
    "is_compatible",
    "passes",
    "run_checks",
]

#: Fallback for LAS-G-RELEASE-001 when the repository does not govern the value itself.
MAX_FEATURE_RELEASES_PER_YEAR = 2
CADENCE_PARAMETER = "max_feature_releases_per_year"
#: Fallback for LAS-G-TEMP-001.
MAX_TEMPORARY_MONTHS = 24
TEMPORARY_PARAMETER = "max_temporary_validity"
EXPIRY_WARNING = timedelta(days=90)
_MENTIONED_ID = re.compile(r"\bLAS-(?:P|G|JUR|ORG|SEM|TA|SPEC|REF)-[A-Z][A-Z0-9]{1,11}-[0-9]{3}\b")
_NODE_ID = re.compile(r"^(?P<file>tests/[^:]+\.py)::(?P<names>[^\[]+)(\[.*\])?$")


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


def passes(problems: Iterable[Problem]) -> bool:
    """True when no problem has severity error; that is what "the check passes" means."""
    return not errors(problems)


def run_checks(repo: AgreementRepository, today: date, repo_root: Path | str | None = None) -> list[Problem]:
    """All governance checks. ``repo_root`` is where conformance test paths are resolved
    (default: the directory containing the agreement system)."""
    root = Path(repo_root) if repo_root is not None else repo.root.resolve().parent
    problems: list[Problem] = list(repo.problems)
    problems += _check_agreements(repo)
    problems += _check_conformance_tests(repo, root)
    problems += _check_releases(repo, today)
    problems += _check_harmonisation(repo, today)
    return sorted(set(problems), key=lambda p: (p.severity != "error", p.location, p.code, p.message))


# --------------------------------------------------------------------------------------------
# Per agreement version


def _loc(repo: AgreementRepository, a: Agreement, path: str = "") -> str:
    where = repo.display_path(repo.source(a))
    return f"{where}:{path}" if path else where


def _add_months(start: date, months: int) -> date:
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def _governed_int(repo: AgreementRepository, name: str, unit: str, default: int) -> int:
    # Limits the checks enforce are themselves governed parameters (LAS-G-*). A repository that
    # does not define one, or has no usable current release, falls back to the memo's value.
    try:
        info = repo.parameter_info(name)
    except AfsprakenError:
        return default
    if info.unit != unit or not isinstance(info.value, int) or isinstance(info.value, bool):
        return default
    return info.value


def _check_agreements(repo: AgreementRepository) -> list[Problem]:
    out: list[Problem] = []
    max_months = _governed_int(repo, TEMPORARY_PARAMETER, "mo", MAX_TEMPORARY_MONTHS)
    for a in repo.all_versions():
        for field_name, ids in (("references", a.references), ("supersedes", a.supersedes)):
            for i, ref in enumerate(ids):
                where = _loc(repo, a, f"$.{field_name}[{i}]")
                if ref == a.id:
                    out.append(Problem("self-reference", where, f"{a.id} names itself in {field_name}"))
                elif ref not in repo:
                    code = "dangling-reference" if field_name == "references" else "dangling-supersedes"
                    out.append(Problem(code, where, f"{a.id} {field_name} unknown agreement {ref}"))
        # Ids named in the text are references too; a typo there misleads just as much.
        for ref in sorted(set(_MENTIONED_ID.findall(a.text + "\n" + (a.rationale or "")))):
            if ref not in repo:
                out.append(
                    Problem(
                        "dangling-text-reference",
                        _loc(repo, a, "$.text"),
                        f"{a.id} mentions unknown agreement {ref} in its text",
                    )
                )
        if a.temporary is not None:
            t = a.temporary
            if t.replaced_by is not None and t.replaced_by not in repo:
                out.append(
                    Problem(
                        "dangling-replaced-by",
                        _loc(repo, a, "$.temporary.replaced_by"),
                        f"{a.id} is replaced by unknown agreement {t.replaced_by}",
                    )
                )
            if t.valid_until >= _add_months(t.valid_from, max_months):
                out.append(
                    Problem(
                        "temporary-too-long",
                        _loc(repo, a, "$.temporary.valid_until"),
                        f"{a.id} is valid from {t.valid_from} until {t.valid_until}, longer than the"
                        f" {max_months} months a temporary agreement may last (LAS-G-TEMP-001)",
                    )
                )
            if t.valid_until <= t.valid_from:
                out.append(
                    Problem(
                        "temporary-period",
                        _loc(repo, a, "$.temporary"),
                        f"valid_until {t.valid_until} is not after valid_from {t.valid_from}",
                    )
                )
        if a.history[-1].version != a.version:
            out.append(
                Problem(
                    "history-version",
                    _loc(repo, a, f"$.history[{len(a.history) - 1}].version"),
                    f"last history entry is {a.history[-1].version}, agreement version is {a.version}",
                )
            )
        if a.kind is Kind.TECHNICAL_AGREEMENT and not a.conformance_tests:
            out.append(
                Problem(
                    "ta-without-tests",
                    _loc(repo, a, "$.conformance_tests"),
                    f"technical agreement {a.id}@{a.version} lists no conformance test:"
                    " every technical agreement must be testable",
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# Conformance tests


@dataclass(frozen=True, slots=True)
class ConformanceTest:
    """A conformance test id and where it stands.

    ``state`` is ``exists``, ``planned`` (the file does not exist yet), ``missing`` (the file
    exists, the test does not), ``symbolic`` (an NTV-... id), ``malformed`` or ``unparsable``.
    """

    node_id: str
    state: str


@lru_cache(maxsize=512)
def _test_names(path: Path, mtime_ns: int) -> frozenset[str] | None:
    # mtime_ns is part of the cache key so an edited test file is re-read.
    del mtime_ns
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return frozenset(names)


def _test_state(node_id: str, repo_root: Path) -> str:
    if node_id.startswith("NTV-"):
        return "symbolic"
    m = _NODE_ID.match(node_id)
    if m is None:
        return "malformed"
    path = repo_root / m.group("file")
    if not path.is_file():
        return "planned"
    names = _test_names(path, path.stat().st_mtime_ns)
    if names is None:
        return "unparsable"
    return "exists" if m.group("names") in names else "missing"


def conformance_test_state(node_id: str, repo_root: Path) -> str:
    """Where one conformance test id stands (see :class:`ConformanceTest` for the states)."""
    return _test_state(node_id, repo_root)


def conformance_tests(
    repo: AgreementRepository, repo_root: Path, release: str | ResolvedRelease | None = None
) -> dict[str, list[ConformanceTest]]:
    """Per agreement id, the state of each conformance test (newest versions, or a release's)."""
    pool: Iterable[Agreement] = repo if release is None else repo.release(release)
    return {
        a.id: [ConformanceTest(t, _test_state(t, repo_root)) for t in a.conformance_tests]
        for a in pool
        if a.conformance_tests
    }


def _check_conformance_tests(repo: AgreementRepository, repo_root: Path) -> list[Problem]:
    out: list[Problem] = []
    for a in repo.all_versions():
        for i, node_id in enumerate(a.conformance_tests):
            state = _test_state(node_id, repo_root)
            where = _loc(repo, a, f"$.conformance_tests[{i}]")
            if state == "planned":
                out.append(
                    Problem(
                        "conformance-test-planned",
                        where,
                        f"{node_id} is planned: {node_id.split('::')[0]} does not exist yet",
                        "warning",
                    )
                )
            elif state == "missing":
                out.append(
                    Problem(
                        "conformance-test-missing",
                        where,
                        f"{node_id}: the file exists but has no such test",
                    )
                )
            elif state in ("malformed", "unparsable"):
                out.append(Problem("conformance-test-missing", where, f"{node_id}: {state}"))
    return out


# --------------------------------------------------------------------------------------------
# Releases


def _rloc(repo: AgreementRepository, version: str, path: str = "") -> str:
    where = repo.display_path(repo.release_sources[version])
    return f"{where}:{path}" if path else where


def _check_releases(repo: AgreementRepository, today: date) -> list[Problem]:
    out: list[Problem] = []
    valid: list[str] = []
    for version in sorted(repo.releases):
        if SemVer.is_valid(version):
            valid.append(version)
        else:
            out.append(
                Problem(
                    "release-semver",
                    _rloc(repo, version, "$.version"),
                    f"release version {version!r} is not a semantic version x.y.z",
                )
            )
    valid.sort(key=SemVer.parse)

    for version in sorted(repo.releases):
        out += _check_release_content(repo, repo.release(version), today)

    # Cadence: at most two major/minor releases per calendar year (patch releases are repairs).
    per_year: dict[int, list[str]] = defaultdict(list)
    for version in valid:
        if not SemVer.parse(version).is_patch:
            per_year[repo.releases[version].date.year].append(version)
    limit = _cadence_limit(repo)
    for year, versions in sorted(per_year.items()):
        if len(versions) > limit:
            out.append(
                Problem(
                    "release-cadence",
                    _rloc(repo, versions[-1]),
                    f"{len(versions)} major/minor releases in {year} ({', '.join(versions)});"
                    f" at most {limit} a year are allowed (LAS-G-RELEASE-001)",
                )
            )

    current = [v for v in repo.releases if repo.releases[v].status is ReleaseStatus.CURRENT]
    if len(current) != 1:
        where = _rloc(repo, sorted(current)[-1]) if current else repo.display_path(repo.root / "releases")
        out.append(
            Problem(
                "release-current",
                where,
                f"exactly one release must be current, found {len(current)}"
                + (f": {', '.join(sorted(current))}" if current else ""),
            )
        )

    # Ordering: a higher version never takes effect before a lower one.
    for older, newer in itertools.pairwise(valid):
        if repo.releases[newer].date < repo.releases[older].date:
            out.append(
                Problem(
                    "release-order",
                    _rloc(repo, newer, "$.date"),
                    f"release {newer} is dated {repo.releases[newer].date},"
                    f" before release {older} ({repo.releases[older].date})",
                )
            )

    if len(current) == 1 and current[0] in valid:
        out += _check_n_minus_one(repo, current[0], valid)
    out += _check_compatibility(repo, valid)
    return out


def _value_type(value: object) -> str:
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, int | float):
        return "number"  # 900 -> 900.5 keeps every reader working
    return "list" if isinstance(value, list) else "text"


def _check_compatibility(repo: AgreementRepository, valid: list[str]) -> list[Problem]:
    """An application built for x.a.b must work with every later x.c.d (LAS-G-COMPAT-001).

    Lifecycle status changes are allowed in a minor release (LAS-G-RELEASE-001); what breaks a
    conforming implementation is an agreement that disappears, an agreement version with a
    higher major number, or a governed parameter a service reads that vanishes or changes its
    unit or type.
    """
    out: list[Problem] = []
    for older, newer in itertools.pairwise(valid):
        if SemVer.parse(older).major != SemVer.parse(newer).major:
            continue
        a, b = repo.release(older), repo.release(newer)
        for agreement_id, old in sorted(a.agreements.items()):
            where = _rloc(repo, newer, f"$.agreements.{agreement_id}")
            new = b.agreements.get(agreement_id)
            if new is None:
                if agreement_id not in b.release.agreements:  # unresolvable entries are reported already
                    out.append(
                        Problem(
                            "release-compat-removed",
                            _rloc(repo, newer, "$.agreements"),
                            f"release {newer} drops {agreement_id}, which {older} contains; removing an"
                            f" agreement is incompatible and needs a new major release (LAS-G-COMPAT-001)",
                        )
                    )
                continue
            if new.semver.major > old.semver.major:
                out.append(
                    Problem(
                        "release-compat-agreement-major",
                        where,
                        f"{agreement_id} goes from {old.version} in release {older} to {new.version} in"
                        f" {newer}: a new major version of an agreement is incompatible and belongs in"
                        f" release {SemVer.parse(newer).major + 1}.0.0 (LAS-G-COMPAT-001)",
                    )
                )
            for name, p in sorted(old.parameters.items()):
                q = new.parameters.get(name)
                if q is None:
                    change = "is removed"
                elif q.unit != p.unit:
                    change = f"changes unit from {p.unit!r} to {q.unit!r}"
                elif _value_type(q.value) != _value_type(p.value):
                    change = f"changes type from {_value_type(p.value)} to {_value_type(q.value)}"
                else:
                    continue
                out.append(
                    Problem(
                        "release-compat-parameter",
                        where,
                        f"parameter {name} of {agreement_id} {change} between releases {older} and"
                        f" {newer}; services reading it would break (LAS-G-COMPAT-001)",
                    )
                )
    return out


def _cadence_limit(repo: AgreementRepository) -> int:
    return _governed_int(repo, CADENCE_PARAMETER, "1", MAX_FEATURE_RELEASES_PER_YEAR)


def _check_n_minus_one(repo: AgreementRepository, current: str, valid: list[str]) -> list[Problem]:
    out: list[Problem] = []
    cur = SemVer.parse(current)
    released = [v for v in valid if repo.releases[v].status is not ReleaseStatus.PLANNED]
    before = [v for v in released if SemVer.parse(v) < cur]
    expected_previous = before[-1] if before else None
    previous = [v for v in repo.releases if repo.releases[v].status is ReleaseStatus.PREVIOUS]
    for v in previous:
        if v != expected_previous:
            out.append(
                Problem(
                    "release-previous",
                    _rloc(repo, v, "$.status"),
                    f"release {v} is marked previous, but the release just before current"
                    f" {current} is {expected_previous or 'none'} (n-1)",
                )
            )
    if expected_previous is not None and expected_previous not in previous:
        status = repo.releases[expected_previous].status
        out.append(
            Problem(
                "release-previous",
                _rloc(repo, expected_previous, "$.status"),
                f"release {expected_previous} is the one just before current {current} and must"
                f" be 'previous' (n-1 stays valid), not '{status}'",
            )
        )
    for v in valid:
        rel = repo.releases[v]
        if rel.status is ReleaseStatus.PLANNED and SemVer.parse(v) <= cur:
            out.append(
                Problem(
                    "release-order",
                    _rloc(repo, v, "$.status"),
                    f"planned release {v} is not newer than current release {current}",
                )
            )
        if rel.status is ReleaseStatus.CURRENT or rel.status is ReleaseStatus.PLANNED:
            continue
        if SemVer.parse(v) > cur:
            out.append(
                Problem(
                    "release-order",
                    _rloc(repo, v, "$.status"),
                    f"release {v} is '{rel.status}' but newer than current release {current}",
                )
            )
    return out


def _check_release_content(repo: AgreementRepository, rel: ResolvedRelease, today: date) -> list[Problem]:
    out: list[Problem] = []
    version = rel.version
    for agreement_id, agreement_version in rel.missing:
        code = "release-unknown-version" if agreement_id in repo else "release-unknown-agreement"
        what = (
            f"agreement {agreement_id} has no version {agreement_version}"
            if agreement_id in repo
            else f"unknown agreement {agreement_id}"
        )
        out.append(Problem(code, _rloc(repo, version, f"$.agreements.{agreement_id}"), what))

    normative_by_topic: dict[str, list[str]] = defaultdict(list)
    parameter_owners: dict[str, list[str]] = defaultdict(list)
    for a in rel:
        if a.status is Status.NORMATIVE:
            normative_by_topic[a.topic].append(a.id)
        if a.status is not Status.WITHDRAWN:
            for name in a.parameters:
                parameter_owners[name].append(a.id)
    for topic, ids in sorted(normative_by_topic.items()):
        if len(ids) > 1:
            out.append(
                Problem(
                    "duplicate-normative-topic",
                    _rloc(repo, version, "$.agreements"),
                    f"release {version} has {len(ids)} normative agreements on topic {topic!r}: {', '.join(ids)}",
                )
            )
    for name, ids in sorted(parameter_owners.items()):
        if len(ids) > 1:
            out.append(
                Problem(
                    "duplicate-parameter",
                    _rloc(repo, version, "$.agreements"),
                    f"parameter {name!r} is defined by {', '.join(ids)} in release {version};"
                    " lookups by name would be ambiguous",
                )
            )

    # A superseded (or replaced temporary) agreement may stay in a release for migration, but
    # only as phased-out/withdrawn: two binding texts for one obligation is the inconsistency
    # the memo's "herijken" step exists to remove.
    for a in rel:
        if not a.status.is_binding:
            continue
        old_ids = list(a.supersedes)
        for old_id in old_ids:
            old = rel.agreements.get(old_id)
            if old is not None and old.status.is_binding:
                out.append(
                    Problem(
                        "superseded-still-binding",
                        _rloc(repo, version, f"$.agreements.{old_id}"),
                        f"{old_id} is {old.status} in release {version} although {a.id}"
                        " supersedes it; set it to phased-out or withdrawn",
                    )
                )

    # A reference to an agreement the release does not contain sends readers of that release
    # to text that is not in force for them.
    for a in rel:
        for ref in a.references:
            if ref in repo and ref not in rel:
                out.append(
                    Problem(
                        "release-reference-outside",
                        _rloc(repo, version, f"$.agreements.{a.id}"),
                        f"{a.id}@{a.version} references {ref}, which is not part of release {version}",
                        "warning",
                    )
                )

    if rel.status in (ReleaseStatus.CURRENT, ReleaseStatus.PREVIOUS):
        for a in rel:
            if a.status is Status.DRAFT:
                out.append(
                    Problem(
                        "release-draft",
                        _rloc(repo, version, f"$.agreements.{a.id}"),
                        f"{rel.status} release {version} contains draft agreement {a.id}",
                        "warning",
                    )
                )

    if rel.status is ReleaseStatus.CURRENT:
        for a in rel:
            t = a.temporary
            if t is None or not a.status.is_binding:
                continue
            if t.expired(today):
                out.append(
                    Problem(
                        "temporary-expired",
                        _loc(repo, a, "$.temporary.valid_until"),
                        f"temporary agreement {a.id} expired on {t.valid_until} but is still"
                        f" {a.status} in current release {version}; re-evaluate it"
                        f" (expected replacement: {t.replaced_by_expected})",
                    )
                )
            elif t.valid_until - today <= EXPIRY_WARNING:
                out.append(
                    Problem(
                        "temporary-expiring",
                        _loc(repo, a, "$.temporary.valid_until"),
                        f"temporary agreement {a.id} expires on {t.valid_until}",
                        "warning",
                    )
                )
    return out


# --------------------------------------------------------------------------------------------
# Harmonisation


def harmonisation_summary(repo: AgreementRepository) -> dict[str, dict[str, int]]:
    """Per existing agreement system: how many generic topics it still owns, refers or moves."""
    if repo.harmonisation is None:
        return {}
    summary: dict[str, dict[str, int]] = {}
    for name, system in sorted(repo.harmonisation.systems.items()):
        counts = Counter(t.status.value for t in system.topics.values())
        summary[name] = {s.value: counts.get(s.value, 0) for s in HarmonisationStatus}
    return summary


def _check_harmonisation(repo: AgreementRepository, today: date) -> list[Problem]:
    h = repo.harmonisation
    if h is None:
        return []
    where = repo.display_path(repo.root / "harmonisation.yaml")
    out: list[Problem] = []
    tracked = set(h.topics)
    for name, system in sorted(h.systems.items()):
        for topic in sorted(tracked - set(system.topics)):
            out.append(
                Problem(
                    "harmonisation-missing-topic",
                    f"{where}:$.systems.{name}.topics",
                    f"{name} does not state whether it owns or refers for topic {topic!r}",
                    "warning",
                )
            )
        for topic, entry in sorted(system.topics.items()):
            path = f"{where}:$.systems.{name}.topics.{topic}"
            if topic not in tracked:
                out.append(
                    Problem(
                        "harmonisation-unknown-topic",
                        path,
                        f"{name} lists topic {topic!r}, which is not one of {sorted(tracked)}",
                    )
                )
            for i, las_id in enumerate(entry.las):
                if las_id not in repo:
                    out.append(
                        Problem(
                            "harmonisation-unknown-id",
                            f"{path}.las[{i}]",
                            f"{name}/{topic} refers to unknown LAS agreement {las_id}",
                        )
                    )
            if (
                entry.status is HarmonisationStatus.TRANSITION
                and entry.target_date is not None
                and entry.target_date < today
            ):
                out.append(
                    Problem(
                        "harmonisation-overdue",
                        f"{path}.target_date",
                        f"{name}/{topic} was to refer to the LAS by {entry.target_date}",
                        "warning",
                    )
                )
    return out
