"""HTML pages of the afspraken service: server-rendered Jinja2, no JavaScript needed.

Pages: overview, agreements (by layer, plateau and status), one agreement with its history,
releases with their notes, one release, a release diff, temporary agreements with expiry dates,
harmonisation progress and the governed parameters. Links are built from the mount point
(``root_path``), so the pages work under ``/afspraken`` in the embedded network and at ``/`` when
the service runs alone.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ldn.afspraken.model import HarmonisationStatus, Kind, Layer, Plateau, ReleaseStatus, Status
from ldn.afspraken.service import AfsprakenService
from ldn.core.errors import ServiceError

__all__ = ["LABELS", "web_router"]

TEMPLATE_DIR = Path(__file__).parent / "templates"

#: Dutch labels (the agreement system's own language), with English where a reader may need it.
LABELS: dict[str, str] = {
    # layers
    "juridisch": "Juridisch",
    "organisatorisch": "Organisatorisch",
    "semantisch": "Semantisch",
    "technisch": "Technisch",
    # kinds
    "principle": "Uitgangspunt",
    "agreement": "Afspraak",
    "technical-agreement": "Technische afspraak",
    "specification": "Specificatie",
    "standard-reference": "Verwijzing naar standaard",
    "governance-rule": "Beheerregel",
    # statuses
    "draft": "Concept",
    "candidate": "Kandidaat",
    "trial": "Proef",
    "normative": "Normatief",
    "informative": "Informatief",
    "phased-out": "Uitgefaseerd",
    "withdrawn": "Ingetrokken",
    # release statuses
    "current": "Huidige release",
    "previous": "Vorige release (geldig)",
    "retired": "Vervallen",
    "planned": "Gepland",
    # harmonisation
    "own": "Eigen afspraak",
    "refers": "Verwijst naar LAS",
    "transition": "In transitie",
    # temporary states
    "replaced": "Vervangen",
    "expired": "Verlopen",
    "expiring": "Verloopt binnenkort",
    "valid": "Geldig",
    "not-yet-valid": "Nog niet geldig",
    # network parameter states
    "governed": "Volgt de afspraak",
    "deviation": "Afwijking (overschreven)",
    "hard-coded": "Vaste waarde in code",
    "conflict": "Wijkt af (vaste waarde)",
    "unused": "Nog niet gebruikt",
    "unavailable": "Niet beschikbaar",
    "missing": "Ontbreekt in release",
    # conformance test states
    "exists": "Aanwezig",
    "planned-test": "Gepland",
    "missing-test": "Ontbreekt",
    "symbolic": "NTV-testgeval",
}


def _label(value: Any) -> str:
    key = getattr(value, "value", value)
    return LABELS.get(str(key), str(key))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["label"] = _label
    env.filters["css"] = lambda v: str(getattr(v, "value", v)).replace(".", "-")
    return env


def web_router(service: AfsprakenService) -> APIRouter:
    templates = Jinja2Templates(env=_environment())
    router = APIRouter(tags=["pages"], include_in_schema=False)

    def render(request: Request, name: str, nav: str, status_code: int = 200, **context: Any) -> Response:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        context.update(
            base=base,
            nav=nav,
            active=service.active_version,
            current=service.repo.current_release().version,
        )
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def error_page(request: Request, exc: ServiceError) -> Response:
        # Pages answer in HTML; the JSON API keeps its OperationOutcome.
        return render(request, "error.html", "", status_code=exc.status, message=exc.diagnostics, status=exc.status)

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        active = service.active()
        by_layer_status: dict[tuple[str, str], int] = Counter((a.layer.value, a.status.value) for a in active)
        by_layer_plateau: dict[tuple[str, str], int] = Counter((a.layer.value, a.plateau.value) for a in active)
        statuses = [s for s in Status if any(a.status is s for a in active)]
        return render(
            request,
            "index.html",
            "overview",
            release=active,
            releases=service.releases(),
            layers=list(Layer),
            plateaus=list(Plateau),
            statuses=statuses,
            by_layer_status=by_layer_status,
            by_layer_plateau=by_layer_plateau,
            temporary=[
                t for t in service.temporary() if t.status_in_active is not None and t.status_in_active.is_binding
            ],
            harmonisation=service.harmonisation(),
        )

    @router.get("/agreements", response_class=HTMLResponse)
    async def agreements(
        request: Request,
        layer: str | None = Query(None, max_length=32),
        plateau: str | None = Query(None, max_length=32),
        status: str | None = Query(None, max_length=32),
        kind: str | None = Query(None, max_length=32),
        release: str | None = Query(None, max_length=32),
    ) -> Response:
        try:
            found = service.agreements(layer=layer, plateau=plateau, status=status, kind=kind, release=release)
        except ServiceError as exc:
            return error_page(request, exc)
        grouped = {lay: [a for a in found if a.layer is lay] for lay in Layer}
        return render(
            request,
            "agreements.html",
            "agreements",
            grouped=grouped,
            total=len(found),
            selected={"layer": layer, "plateau": plateau, "status": status, "kind": kind, "release": release},
            layers=list(Layer),
            plateaus=list(Plateau),
            statuses=list(Status),
            kinds=list(Kind),
            release_versions=list(reversed(service.repo.release_versions())),
            shown_release=release or service.active_version,
        )

    @router.get("/agreements/{agreement_id}", response_class=HTMLResponse)
    async def agreement(
        request: Request, agreement_id: str, version: str | None = Query(None, max_length=32)
    ) -> Response:
        try:
            a = service.agreement(agreement_id, version)
        except ServiceError as exc:
            return error_page(request, exc)
        return render(
            request,
            "agreement.html",
            "agreements",
            a=a,
            history=service.history(a.id),
            releases_of=service.releases_of(a.id),
            related=service.related(a.id),
            tests=service.tests_of(a),
            known=set(service.repo.ids()),
        )

    @router.get("/releases", response_class=HTMLResponse)
    async def releases(request: Request) -> Response:
        views = service.releases()
        versions = [v.version for v in views]
        pairs = [(versions[i + 1], versions[i]) for i in range(len(versions) - 1)]
        return render(request, "releases.html", "releases", views=views, versions=versions, pairs=pairs)

    @router.get("/releases/{version}", response_class=HTMLResponse)
    async def release(request: Request, version: str) -> Response:
        try:
            rel = service.release(version)
        except ServiceError as exc:
            return error_page(request, exc)
        view = next(v for v in service.releases() if v.version == rel.version)
        grouped = {lay: [a for a in rel if a.layer is lay] for lay in Layer}
        return render(request, "release.html", "releases", view=view, rel=rel, grouped=grouped)

    @router.get("/diff", response_class=HTMLResponse)
    async def diff_form(
        request: Request,
        old: str = Query("", alias="from", max_length=32),
        new: str = Query("", alias="to", max_length=32),
    ) -> Response:
        # The release-notes page's form submits here; send the reader to the canonical URL.
        try:
            service.release(old)
            service.release(new)
        except ServiceError as exc:
            return error_page(request, exc)
        base = str(request.scope.get("root_path", "")).rstrip("/")
        return RedirectResponse(f"{base}/releases/{old}/diff/{new}", status_code=303)

    @router.get("/releases/{old}/diff/{new}", response_class=HTMLResponse)
    async def release_diff(request: Request, old: str, new: str) -> Response:
        try:
            d = service.diff(old, new)
        except ServiceError as exc:
            return error_page(request, exc)
        return render(request, "diff.html", "releases", d=d, versions=[v.version for v in service.releases()])

    @router.get("/temporary", response_class=HTMLResponse)
    async def temporary(request: Request) -> Response:
        return render(request, "temporary.html", "temporary", rows=service.temporary(), today=service.today())

    @router.get("/harmonisation", response_class=HTMLResponse)
    async def harmonisation(request: Request) -> Response:
        systems = service.harmonisation()
        topics = [t.topic for t in systems[0].topics] if systems else []
        return render(
            request,
            "harmonisation.html",
            "harmonisation",
            systems=systems,
            topics=topics,
            statuses=list(HarmonisationStatus),
            updated=None if service.repo.harmonisation is None else service.repo.harmonisation.updated,
        )

    @router.get("/parameters", response_class=HTMLResponse)
    async def parameters(request: Request, release: str | None = Query(None, max_length=32)) -> Response:
        try:
            rows = service.parameters(release)
        except ServiceError as exc:
            return error_page(request, exc)
        shown = release or service.active_version
        network = service.network() if shown == service.active_version else []
        return render(
            request,
            "parameters.html",
            "parameters",
            rows=rows,
            network=network,
            shown_release=shown,
            release_versions=list(reversed(service.repo.release_versions())),
        )

    # Keep the ReleaseStatus import meaningful for templates that compare statuses.
    templates.env.globals["ReleaseStatus"] = ReleaseStatus
    return router
