"""The `afspraken` service: the agreement system published as web pages and a JSON API.

Public and read-only (the agreement system is public; no token is needed). Mounted at
``/afspraken`` and operated by Beheer Landelijk dekkend netwerk (URA 90000908).

- ``AfsprakenService`` is the service layer: filters, look-ups, history, diffs, expiry and
  harmonisation views over an :class:`AgreementRepository`; unknown ids raise ``NotFound``,
  malformed input ``BadRequest``.
- ``api_router`` answers JSON under ``/api`` (errors as OperationOutcome).
- ``ldn.afspraken.web`` renders the HTML pages from the same service layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Query
from starlette.staticfiles import StaticFiles

from ldn.afspraken.checks import EXPIRY_WARNING, ConformanceTest, conformance_test_state, run_checks
from ldn.afspraken.diff import AgreementChange, ReleaseDiff, diff_agreements, diff_releases
from ldn.afspraken.governed import NETWORK_PARAMETERS, NetworkParameter, active_release, network_parameters
from ldn.afspraken.model import (
    Agreement,
    HarmonisationStatus,
    Kind,
    Layer,
    Plateau,
    Problem,
    ReleaseStatus,
    SemVer,
    Status,
    is_compatible,
)
from ldn.afspraken.repository import (
    AGREEMENT_ID,
    AfsprakenError,
    AgreementRepository,
    ResolvedRelease,
    default_repository,
)
from ldn.afspraken.settings import AfsprakenSettings
from ldn.core.errors import BadRequest, NotFound
from ldn.core.service import ServiceContext, ServiceDefinition, create_service_app
from ldn.core.topology import Topology

__all__ = [
    "AfsprakenService",
    "HarmonisationView",
    "ReleaseView",
    "TemporaryView",
    "VersionView",
    "agreement_json",
    "api_router",
    "create_app",
    "service_definitions",
]

STATIC_DIR = Path(__file__).parent / "static"
E = TypeVar("E", bound=StrEnum)
_VERSION_TEXT = re.compile(r"^[0-9A-Za-z.\-]{1,32}$")


def _enum(cls: type[E], value: str | None, name: str) -> E | None:
    """Parse a filter value; anything outside the enumeration is a 400 naming the allowed values."""
    if value is None or value == "":
        return None
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise BadRequest(f"{name} must be one of {allowed}", code="value", expression=[name]) from None


def _shown(text: str) -> str:
    """User input echoed in an error: short, and only the characters an id or version can hold."""
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "?" for ch in text[:40])
    return cleaned + ("..." if len(text) > 40 else "")


@dataclass(frozen=True)
class VersionView:
    """One version of an agreement, the releases that contain it, and what changed from the one before."""

    agreement: Agreement
    releases: list[str]
    change: AgreementChange | None


@dataclass(frozen=True)
class ReleaseView:
    release: ResolvedRelease
    valid: bool
    compatible_with_current: bool
    by_status: dict[str, int]

    @property
    def version(self) -> str:
        return self.release.version


@dataclass(frozen=True)
class TemporaryView:
    """A tussentijdse afspraak with its validity and where it stands today."""

    agreement: Agreement
    status_in_active: Status | None
    days_left: int
    state: str  # replaced, expired, expiring, valid, not-yet-valid

    @property
    def valid_from(self) -> date:
        assert self.agreement.temporary is not None
        return self.agreement.temporary.valid_from

    @property
    def valid_until(self) -> date:
        assert self.agreement.temporary is not None
        return self.agreement.temporary.valid_until


@dataclass(frozen=True)
class HarmonisationTopicView:
    topic: str
    status: HarmonisationStatus | None
    las: list[str]
    target_date: date | None
    note: str | None


@dataclass(frozen=True)
class HarmonisationView:
    name: str
    description: str
    beheerder: str
    url: str | None
    topics: list[HarmonisationTopicView]

    def topics_with(self, status: HarmonisationStatus) -> list[str]:
        return [t.topic for t in self.topics if t.status is status]

    @property
    def refers_share(self) -> int:
        """Percentage of the tracked generic topics for which the system refers to the LAS."""
        total = len(self.topics)
        return round(100 * len(self.topics_with(HarmonisationStatus.REFERS)) / total) if total else 0


class AfsprakenService:
    """Read-only questions about one agreement system; the rules behind pages and API."""

    def __init__(
        self,
        repo: AgreementRepository,
        *,
        today: Callable[[], date] = date.today,
        tests_root: Path | None = None,
    ) -> None:
        self.repo = repo
        self.today = today
        self.tests_root = tests_root or repo.root.resolve().parent

    # ---- releases ----------------------------------------------------------------------------

    @property
    def active_version(self) -> str:
        return active_release(self.repo)

    def active(self) -> ResolvedRelease:
        return self.repo.release(self.active_version)

    def release(self, version: str) -> ResolvedRelease:
        if not SemVer.is_valid(version):
            raise BadRequest(f"not a release version x.y.z: {_shown(version)!r}", code="value")
        if version not in self.repo.releases:
            known = ", ".join(self.repo.release_versions())
            raise NotFound(f"no release {version}; known releases: {known}")
        return self.repo.release(version)

    def releases(self) -> list[ReleaseView]:
        """Every release, newest first, with whether it is valid now (current or previous, n-1)."""
        current = self.repo.current_release().version
        out = []
        for version in reversed(self.repo.release_versions()):
            rel = self.repo.release(version)
            counts: dict[str, int] = {}
            for a in rel:
                counts[a.status.value] = counts.get(a.status.value, 0) + 1
            out.append(
                ReleaseView(
                    release=rel,
                    valid=rel.status in (ReleaseStatus.CURRENT, ReleaseStatus.PREVIOUS),
                    compatible_with_current=is_compatible(version, current),
                    by_status=counts,
                )
            )
        return out

    def diff(self, old: str, new: str) -> ReleaseDiff:
        return diff_releases(self.repo, self.release(old), self.release(new))

    # ---- agreements --------------------------------------------------------------------------

    def agreements(
        self,
        *,
        layer: str | None = None,
        plateau: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        release: str | None = None,
        temporary: bool | None = None,
    ) -> list[Agreement]:
        """Agreements of ``release`` (default: the active release) matching every filter."""
        rel = self.release(release) if release else self.active()
        return self.repo.find(
            layer=_enum(Layer, layer, "layer"),
            plateau=_enum(Plateau, plateau, "plateau"),
            status=_enum(Status, status, "status"),
            kind=_enum(Kind, kind, "kind"),
            temporary=temporary,
            release=rel,
        )

    def agreement(self, agreement_id: str, version: str | None = None) -> Agreement:
        """The version in the active release, else the newest version (planned-only agreements)."""
        if not AGREEMENT_ID.match(agreement_id):
            raise NotFound(f"not an agreement id: {_shown(agreement_id)!r}")
        if agreement_id not in self.repo:
            raise NotFound(f"no agreement {agreement_id}")
        if version is not None:
            if not _VERSION_TEXT.match(version):
                raise BadRequest(f"not a version: {_shown(version)!r}", code="value")
            try:
                return self.repo.get(agreement_id, version)
            except AfsprakenError:
                raise NotFound(f"{agreement_id} has no version {version}") from None
        active = self.active()
        return active.get(agreement_id) if agreement_id in active else self.repo.get(agreement_id)

    def releases_of(self, agreement_id: str) -> dict[str, str]:
        """Release version -> the agreement version it contains, oldest release first."""
        out = {}
        for version in self.repo.release_versions():
            v = self.repo.releases[version].agreements.get(agreement_id)
            if v is not None:
                out[version] = v
        return out

    def history(self, agreement_id: str) -> list[VersionView]:
        """Every version, newest first, with its releases and the change from the version before."""
        self.agreement(agreement_id)
        releases = self.releases_of(agreement_id)
        versions = self.repo.all_versions(agreement_id)
        out = []
        for i, a in enumerate(versions):
            previous = versions[i - 1] if i > 0 else None
            change = diff_agreements(previous, a) if previous is not None else None
            out.append(VersionView(a, [r for r, v in releases.items() if v == a.version], change))
        return list(reversed(out))

    def related(self, agreement_id: str) -> dict[str, list[str]]:
        """Agreements that reference, or supersede, this one (newest versions)."""
        referenced_by = [a.id for a in self.repo if agreement_id in a.references]
        superseded_by = [a.id for a in self.repo if agreement_id in a.supersedes]
        return {"referenced_by": referenced_by, "superseded_by": superseded_by}

    def tests_of(self, agreement: Agreement) -> list[ConformanceTest]:
        return [ConformanceTest(t, conformance_test_state(t, self.tests_root)) for t in agreement.conformance_tests]

    # ---- temporary agreements ----------------------------------------------------------------

    def temporary(self) -> list[TemporaryView]:
        """Every temporary agreement (newest version), soonest expiry first."""
        today = self.today()
        active = self.active()
        out = []
        for a in self.repo.find(temporary=True):
            t = a.temporary
            assert t is not None
            in_active = active.agreements.get(a.id)
            if t.replaced_by is not None:
                state = "replaced"
            elif t.expired(today):
                state = "expired"
            elif t.valid_from > today:
                state = "not-yet-valid"
            elif t.valid_until - today <= EXPIRY_WARNING:
                state = "expiring"
            else:
                state = "valid"
            out.append(
                TemporaryView(
                    agreement=a,
                    status_in_active=None if in_active is None else in_active.status,
                    days_left=(t.valid_until - today).days,
                    state=state,
                )
            )
        return sorted(out, key=lambda v: (v.valid_until, v.agreement.id))

    # ---- harmonisation -----------------------------------------------------------------------

    def harmonisation(self) -> list[HarmonisationView]:
        h = self.repo.harmonisation
        if h is None:
            return []
        out = []
        for name, system in sorted(h.systems.items()):
            topics = []
            for topic in h.topics:
                entry = system.topics.get(topic)
                topics.append(
                    HarmonisationTopicView(
                        topic=topic,
                        status=None if entry is None else entry.status,
                        las=[] if entry is None else list(entry.las),
                        target_date=None if entry is None else entry.target_date,
                        note=None if entry is None else entry.note,
                    )
                )
            out.append(HarmonisationView(name, system.description, system.beheerder, system.url, topics))
        return out

    # ---- parameters and checks ---------------------------------------------------------------

    def parameters(self, release: str | None = None) -> list[dict[str, Any]]:
        """Every parameter of ``release`` (default: active) with its agreement and network use."""
        rel = self.release(release) if release else self.active()
        used = {s.name: s for s in NETWORK_PARAMETERS}
        rows = []
        for a in rel:
            if a.status is Status.WITHDRAWN:
                continue
            for name, p in sorted(a.parameters.items()):
                spec = used.get(name)
                rows.append(
                    {
                        "name": name,
                        "value": p.value,
                        "unit": p.unit,
                        "description": p.description,
                        "agreement": a.id,
                        "agreement_version": a.version,
                        "agreement_status": a.status.value,
                        "used_by_network": spec is not None and spec.agreement_id == a.id,
                    }
                )
        return sorted(rows, key=lambda r: (r["agreement"], r["name"]))

    def network(self) -> list[NetworkParameter]:
        """The parameters the network reads, with this process's effective values."""
        return network_parameters(self.repo)

    def checks(self) -> list[Problem]:
        return run_checks(self.repo, self.today(), self.tests_root)


# ---------------------------------------------------------------------------------------------
# JSON views


def agreement_summary(a: Agreement) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id,
        "version": a.version,
        "title": a.title,
        "layer": a.layer.value,
        "kind": a.kind.value,
        "topic": a.topic,
        "status": a.status.value,
        "plateau": a.plateau.value,
    }
    if a.owner:
        out["owner"] = a.owner
    if a.temporary is not None:
        out["temporary"] = a.temporary.model_dump(mode="json", exclude_none=True)
    return out


def agreement_json(service: AfsprakenService, a: Agreement) -> dict[str, Any]:
    """The full agreement with the releases it is part of and its version history."""
    body = a.model_dump(mode="json", exclude_none=True)
    body["releases"] = service.releases_of(a.id)
    body["versions"] = [v.agreement.version for v in reversed(service.history(a.id))]
    body.update(service.related(a.id))
    return body


def release_summary(view: ReleaseView) -> dict[str, Any]:
    r = view.release.release
    return {
        "version": r.version,
        "date": r.date.isoformat(),
        "status": r.status.value,
        "title": r.title,
        "notes": r.notes,
        "agreements": len(view.release),
        "valid": view.valid,
        "compatible_with_current": view.compatible_with_current,
        "by_status": view.by_status,
    }


def api_router(service: AfsprakenService) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["afspraken"])

    @router.get("/agreements", summary="Agreements of a release (default: active), filtered")
    async def list_agreements(
        layer: str | None = Query(None, max_length=32),
        plateau: str | None = Query(None, max_length=32),
        status: str | None = Query(None, max_length=32),
        kind: str | None = Query(None, max_length=32),
        release: str | None = Query(None, max_length=32),
        temporary: bool | None = None,
    ) -> dict[str, Any]:
        found = service.agreements(
            layer=layer, plateau=plateau, status=status, kind=kind, release=release, temporary=temporary
        )
        return {
            "release": release or service.active_version,
            "total": len(found),
            "agreements": [agreement_summary(a) for a in found],
        }

    @router.get("/agreements/{agreement_id}", summary="One agreement (active version, or ?version=)")
    async def get_agreement(agreement_id: str, version: str | None = Query(None, max_length=32)) -> dict[str, Any]:
        return agreement_json(service, service.agreement(agreement_id, version))

    @router.get("/agreements/{agreement_id}/history", summary="Every version of an agreement with its changes")
    async def agreement_history(agreement_id: str) -> dict[str, Any]:
        versions = []
        for v in service.history(agreement_id):
            entry: dict[str, Any] = {
                "version": v.agreement.version,
                "status": v.agreement.status.value,
                "releases": v.releases,
                "change": v.agreement.history[-1].change,
                "date": v.agreement.history[-1].date.isoformat(),
            }
            if v.change is not None:
                entry["diff"] = {
                    "from": v.change.old_version,
                    "parameters": [str(p) for p in v.change.parameters],
                    "fields": v.change.fields,
                    "text_diff": v.change.text_diff,
                }
            versions.append(entry)
        return {"id": agreement_id, "versions": versions}

    @router.get("/releases", summary="All releases, newest first")
    async def list_releases() -> dict[str, Any]:
        views = service.releases()
        return {
            "current": service.repo.current_release().version,
            "active": service.active_version,
            "releases": [release_summary(v) for v in views],
        }

    @router.get("/releases/{version}", summary="One release: notes and its frozen agreement versions")
    async def get_release(version: str) -> dict[str, Any]:
        rel = service.release(version)
        view = next(v for v in service.releases() if v.version == rel.version)
        return {**release_summary(view), "agreement_versions": dict(sorted(rel.release.agreements.items()))}

    @router.get("/releases/{old}/diff/{new}", summary="What changed between two releases")
    async def release_diff(old: str, new: str) -> dict[str, Any]:
        return service.diff(old, new).to_dict()

    @router.get("/parameters", summary="Governed parameters of the active release (or ?release=)")
    async def parameters(release: str | None = Query(None, max_length=32)) -> dict[str, Any]:
        body: dict[str, Any] = {
            "release": release or service.active_version,
            "parameters": service.parameters(release),
        }
        if release is None or release == service.active_version:
            body["network"] = [p.to_dict() for p in service.network()]
        return body

    @router.get("/temporary", summary="Temporary agreements (tussentijdse afspraken) with their expiry")
    async def temporary() -> dict[str, Any]:
        return {
            "today": service.today().isoformat(),
            "agreements": [
                {
                    **agreement_summary(v.agreement),
                    "status_in_active_release": None if v.status_in_active is None else v.status_in_active.value,
                    "days_left": v.days_left,
                    "state": v.state,
                }
                for v in service.temporary()
            ],
        }

    @router.get("/harmonisation", summary="Per existing agreement system: generic topics own / refers / transition")
    async def harmonisation() -> dict[str, Any]:
        systems = {}
        for h in service.harmonisation():
            systems[h.name] = {
                "description": h.description,
                "beheerder": h.beheerder,
                "url": h.url,
                "refers_share": h.refers_share,
                **{s.value: h.topics_with(s) for s in HarmonisationStatus},
                "topics": {
                    t.topic: {
                        "status": None if t.status is None else t.status.value,
                        "las": t.las,
                        "target_date": None if t.target_date is None else t.target_date.isoformat(),
                        "note": t.note,
                    }
                    for t in h.topics
                },
            }
        return {"systems": systems}

    @router.get("/checks", summary="Governance checks on the published agreement system")
    async def checks() -> dict[str, Any]:
        problems = service.checks()
        return {
            "passes": not any(p.is_error for p in problems),
            "errors": sum(p.is_error for p in problems),
            "warnings": sum(not p.is_error for p in problems),
            "problems": [
                {"severity": p.severity, "code": p.code, "location": p.location, "message": p.message} for p in problems
            ],
        }

    return router


# ---------------------------------------------------------------------------------------------
# Service wiring


def build_service(ctx: ServiceContext) -> AfsprakenService:
    """The service layer for ``ctx``; tests may hand in a repository or a clock through extras."""
    repo = ctx.extras.get("afspraken_repository")
    if repo is None:
        settings = AfsprakenSettings()
        repo = default_repository(settings.afsprakenstelsel, settings.las_release)
    today = ctx.extras.get("afspraken_today") or date.today
    return AfsprakenService(repo, today=today)


def create_app(ctx: ServiceContext) -> FastAPI:
    from ldn.afspraken.web import web_router

    service = build_service(ctx)

    async def agreements_loaded() -> None:
        service.active()

    app = create_service_app(
        ctx,
        title="ldn afspraken",
        description="Landelijk afsprakenstelsel: agreements, releases, diffs, temporary agreements and "
        "harmonisation, as pages and a public JSON API.",
        routers=[api_router(service), web_router(service)],
        health_checks=[("agreements", agreements_loaded)],
    )
    app.state.afspraken = service
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def service_definitions(topology: Topology) -> list[ServiceDefinition]:
    return [
        ServiceDefinition(name="afspraken", title="Landelijk afsprakenstelsel", prefix="/afspraken", factory=create_app)
    ]
