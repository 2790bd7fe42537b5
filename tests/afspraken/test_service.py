"""The afspraken service in the embedded network: public JSON API and HTML pages under /afspraken."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from ldn.afspraken import AgreementRepository
from ldn.core.config import CoreSettings
from ldn.core.http import HttpClientFactory
from ldn.core.service import NetworkDirectory, ServiceContext
from ldn.core.storage import Database
from ldn.core.topology import Topology, load_topology
from tests.afspraken.las_helpers import LasBuilder

API = "/api"


@pytest.fixture(scope="module")
def service_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The afspraken service alone at / (built once: it only reads files), for the API tests."""
    from ldn.afspraken.service import create_app

    data_dir = tmp_path_factory.mktemp("afspraken")
    database = Database(f"sqlite:///{data_dir / 'ldn.db'}")
    settings = CoreSettings(data_dir=data_dir)
    ctx = ServiceContext(
        name="afspraken",
        base_url="http://afspraken.test",
        settings=settings,
        topology=load_topology(),
        database=database,
        http=HttpClientFactory(),
        directory=NetworkDirectory(),
    )
    yield create_app(ctx)
    database.dispose()


@pytest.fixture
async def api(service_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://afspraken.test") as c:
        yield c


@pytest.fixture(autouse=True)
def _current_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LDN_LAS_RELEASE", raising=False)
    monkeypatch.delenv("LDN_AFSPRAKENSTELSEL", raising=False)


def outcome(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    assert "Traceback" not in response.text
    return str(body["issue"][0]["diagnostics"])


async def test_service_is_in_the_directory_and_healthy(network: Any, client: httpx.AsyncClient) -> None:
    assert network.directory.services["afspraken"].endswith("/afspraken")
    assert network.directory.national["afspraken"]["ura"] == "90000908"
    health = (await client.get("/afspraken/health")).json()
    assert health["status"] == "ok" and health["checks"]["agreements"] == "ok"


async def test_agreements_api_filters(api: httpx.AsyncClient, shipped: AgreementRepository) -> None:
    response = await api.get(f"{API}/agreements")
    assert response.status_code == 200
    data = response.json()
    assert data["release"] == "1.1.0" and data["total"] == len(shipped.current_release())
    data = (await api.get(f"{API}/agreements", params={"layer": "juridisch", "plateau": "2026-2027"})).json()
    assert data["total"] > 0
    assert all(a["layer"] == "juridisch" and a["plateau"] == "2026-2027" for a in data["agreements"])
    temporary = (await api.get(f"{API}/agreements", params={"temporary": "true"})).json()
    assert {a["id"] for a in temporary["agreements"]} >= {"LAS-TA-ADDR-004"}
    assert all("temporary" in a for a in temporary["agreements"])
    planned = (await api.get(f"{API}/agreements", params={"release": "2.0.0", "status": "draft"})).json()
    assert [a["id"] for a in planned["agreements"]] == ["LAS-JUR-SECUSE-001"]


@pytest.mark.parametrize(
    ("params", "status", "code", "text"),
    [
        ({"layer": "legal"}, 400, "value", "layer must be one of juridisch"),
        ({"status": "approved"}, 400, "value", "status must be one of draft"),
        ({"plateau": "2040"}, 400, "value", "plateau must be one of"),
        ({"kind": "law"}, 400, "value", "kind must be one of"),
        ({"release": "1.1"}, 400, "value", "not a release version"),
        ({"release": "4.0.0"}, 404, "not-found", "no release 4.0.0"),
        ({"layer": "x" * 100}, 400, "structure", "layer"),
        ({"temporary": "maybe"}, 400, "structure", "temporary"),
    ],
)
async def test_agreements_api_refuses_bad_filters(
    api: httpx.AsyncClient, params: dict[str, str], status: int, code: str, text: str
) -> None:
    assert text in outcome(await api.get(f"{API}/agreements", params=params), status, code)


async def test_one_agreement_with_history(api: httpx.AsyncClient) -> None:
    data = (await api.get(f"{API}/agreements/LAS-TA-AUTH-002")).json()
    assert (data["version"], data["parameters"]["access_token_lifetime"]["value"]) == ("1.1.0", 900)
    assert data["releases"] == {"1.0.0": "1.0.0", "1.1.0": "1.1.0", "2.0.0": "2.0.0"}
    assert data["versions"] == ["1.0.0", "1.1.0", "2.0.0"]
    newer = (await api.get(f"{API}/agreements/LAS-TA-AUTH-002", params={"version": "2.0.0"})).json()
    assert newer["parameters"]["access_token_lifetime"]["value"] == 600
    history = (await api.get(f"{API}/agreements/LAS-TA-AUTH-002/history")).json()
    assert [v["version"] for v in history["versions"]] == ["2.0.0", "1.1.0", "1.0.0"]
    assert history["versions"][0]["diff"]["parameters"] == ["parameter access_token_lifetime: 900 s -> 600 s"]
    assert "diff" not in history["versions"][-1]
    # An agreement that is only in a planned release is shown in its newest version.
    optout = (await api.get(f"{API}/agreements/LAS-JUR-OPTOUT-002")).json()
    assert optout["releases"] == {"2.0.0": "1.0.0"}


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/agreements/LAS-TA-NOPE-001", 404, "not-found"),
        ("/agreements/not-an-id", 404, "not-found"),
        ("/agreements/" + "A" * 300, 404, "not-found"),
        ("/agreements/LAS-TA-AUTH-002?version=9.9.9", 404, "not-found"),
        ("/agreements/LAS-TA-AUTH-002?version=%3Cscript%3E", 400, "value"),
        ("/agreements/LAS-TA-NOPE-001/history", 404, "not-found"),
        ("/releases/3.0.0", 404, "not-found"),
        ("/releases/latest", 400, "value"),
        ("/releases/1.0.0/diff/9.9.9", 404, "not-found"),
        ("/releases/x/diff/1.1.0", 400, "value"),
        ("/parameters?release=0.1.0", 404, "not-found"),
        ("/nothing-here", 404, "not-found"),
    ],
)
async def test_bad_ids_and_releases_are_operation_outcomes(
    api: httpx.AsyncClient, path: str, status: int, code: str
) -> None:
    diagnostics = outcome(await api.get(API + path), status, code)
    assert "<script>" not in diagnostics and "A" * 100 not in diagnostics


async def test_read_only_and_public(api: httpx.AsyncClient) -> None:
    # No token needed to read; nothing can be written.
    assert (await api.get(f"{API}/releases")).status_code == 200
    for method in ("POST", "PUT", "DELETE"):
        response = await api.request(method, f"{API}/agreements/LAS-TA-AUTH-002", content=b"{}")
        assert response.status_code == 405
    big = await api.post(f"{API}/agreements", content=b"x" * (11 * 1024 * 1024))
    assert big.status_code == 413


async def test_releases_and_diff_api(api: httpx.AsyncClient) -> None:
    data = (await api.get(f"{API}/releases")).json()
    assert (data["current"], data["active"]) == ("1.1.0", "1.1.0")
    assert [r["version"] for r in data["releases"]] == ["2.0.0", "1.1.0", "1.0.0"]
    assert [r["valid"] for r in data["releases"]] == [False, True, True]
    one = (await api.get(f"{API}/releases/1.0.0")).json()
    assert one["status"] == "previous" and one["agreement_versions"]["LAS-TA-ADDR-001"] == "1.0.0"
    assert "Eerste release" in one["title"]
    diff = (await api.get(f"{API}/releases/1.1.0/diff/2.0.0")).json()
    change = next(c for c in diff["changed"] if c["id"] == "LAS-TA-AUTH-002")
    assert change["parameters"][0]["old"]["value"] == 900 and change["parameters"][0]["new"]["value"] == 600
    assert [a["id"] for a in diff["removed"]] == ["LAS-TA-ADDR-004"]


async def test_parameters_temporary_harmonisation_and_checks_api(api: httpx.AsyncClient) -> None:
    params = (await api.get(f"{API}/parameters")).json()
    assert params["release"] == "1.1.0"
    rows = {(p["agreement"], p["name"]): p for p in params["parameters"]}
    assert rows[("LAS-TA-AUTH-002", "access_token_lifetime")]["used_by_network"] is True
    assert rows[("LAS-P-SCALE-001", "design_citizens")]["used_by_network"] is False
    network = {p["name"]: p for p in params["network"]}
    assert network["sync_interval"]["state"] == "governed"
    assert network["sync_interval"]["setting"] == "LDN_ADDRESSING_SYNC_INTERVAL"

    temporary = (await api.get(f"{API}/temporary")).json()
    by_id = {a["id"]: a for a in temporary["agreements"]}
    assert by_id["LAS-TA-ADDR-004"]["state"] == "replaced"
    assert by_id["LAS-TA-ADDR-004"]["status_in_active_release"] == "phased-out"
    dates = [a["temporary"]["valid_until"] for a in temporary["agreements"]]
    assert dates == sorted(dates)

    harmonisation = (await api.get(f"{API}/harmonisation")).json()["systems"]
    assert harmonisation["Twiin"]["refers_share"] == 100
    assert "authentication" in harmonisation["MedMij"]["own"]
    assert harmonisation["Nuts"]["topics"]["authentication"]["status"] == "transition"

    checks = (await api.get(f"{API}/checks")).json()
    assert {"passes", "errors", "warnings", "problems"} <= set(checks)


async def test_pages_render_under_the_mount_point(client: httpx.AsyncClient) -> None:
    pages = {
        "/afspraken/": "Afspraken per laag en status",
        "/afspraken/agreements?layer=technisch&status=normative": "LAS-TA-AUTH-002",
        "/afspraken/agreements/LAS-TA-AUTH-002": "Geschiedenis",
        "/afspraken/releases": "Release notes",
        "/afspraken/releases/2.0.0": "Kortere tokens",
        "/afspraken/releases/1.1.0/diff/2.0.0": "access_token_lifetime",
        "/afspraken/temporary": "LAS-TA-ADDR-004",
        "/afspraken/harmonisation": "MedMij",
        "/afspraken/parameters": "LDN_AUTH_ACCESS_TOKEN_LIFETIME",
    }
    for path, text in pages.items():
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert text in response.text, path
        assert 'href="/afspraken/static/las.css"' in response.text
        assert "<script" not in response.text  # no JavaScript needed
    redirect = await client.get("/afspraken/diff", params={"from": "1.0.0", "to": "2.0.0"})
    assert redirect.headers["location"] == "/afspraken/releases/1.0.0/diff/2.0.0"
    css = await client.get("/afspraken/static/las.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_page_errors_are_html(api: httpx.AsyncClient) -> None:
    for path, status in (
        ("/agreements/LAS-TA-NOPE-001", 404),
        ("/agreements?layer=legal", 400),
        ("/releases/9.0.0", 404),
        ("/releases/1.0.0/diff/nope", 400),
        ("/agreements/%3Cscript%3Ealert(1)%3C%5Cscript%3E", 404),
    ):
        response = await api.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html")
        assert "<script>alert" not in response.text
        assert 'role="alert"' in response.text


async def test_diff_form_redirects_to_the_canonical_page(api: httpx.AsyncClient) -> None:
    response = await api.get("/diff", params={"from": "1.0.0", "to": "2.0.0"})
    assert response.status_code == 303
    assert response.headers["location"] == "/releases/1.0.0/diff/2.0.0"
    assert (await api.get("/diff", params={"from": "1.0.0", "to": "x"})).status_code == 400


async def test_pinned_release_is_what_the_service_shows(
    settings: CoreSettings, topology: Topology, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LDN_LAS_RELEASE", "2.0.0")
    async with _standalone(settings, topology, database) as client:
        data = (await client.get("/api/agreements/LAS-TA-AUTH-002")).json()
        assert data["version"] == "2.0.0"
        page = await client.get("/")
        assert "vastgezet; huidige: 1.1.0" in page.text


def _standalone(settings: CoreSettings, topology: Topology, database: Database, **extras: Any) -> httpx.AsyncClient:
    """The afspraken service alone (at /), optionally on a crafted agreement system and date."""
    from ldn.afspraken.service import create_app

    ctx = ServiceContext(
        name="afspraken",
        base_url="http://afspraken.test",
        settings=settings,
        topology=topology,
        database=database,
        http=HttpClientFactory(),
        directory=NetworkDirectory(),
        extras=extras,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://afspraken.test")


async def test_temporary_states_on_a_crafted_system(
    las: LasBuilder, settings: CoreSettings, topology: Topology, database: Database
) -> None:
    def temporary(until: str, **extra: str) -> dict[str, str]:
        return {
            "valid_from": "2026-01-01",
            "valid_until": until,
            "replaced_by_expected": "Een landelijke afspraak over dit onderwerp.",
            **extra,
        }

    las.agreement("LAS-TA-TEST-002", temporary=temporary("2026-10-01"))
    las.agreement("LAS-TA-TEST-003", temporary=temporary("2026-12-31"))
    las.agreement("LAS-TA-TEST-004", temporary=temporary("2027-06-30"))
    las.agreement("LAS-TA-TEST-005", temporary=temporary("2027-06-30", replaced_by="LAS-TA-TEST-001"))
    las.release("1.0.0", {f"LAS-TA-TEST-00{i}": "1.0.0" for i in range(1, 6)})
    repo = las.load()
    async with _standalone(
        settings, topology, database, afspraken_repository=repo, afspraken_today=lambda: date(2026, 11, 22)
    ) as client:
        data = (await client.get("/api/temporary")).json()
        states = {a["id"]: (a["state"], a["days_left"]) for a in data["agreements"]}
        assert states == {
            "LAS-TA-TEST-002": ("expired", -52),
            "LAS-TA-TEST-003": ("expiring", 39),
            "LAS-TA-TEST-004": ("valid", 220),
            "LAS-TA-TEST-005": ("replaced", 220),
        }
        page = await client.get("/temporary")
        assert page.status_code == 200
        assert "Verlopen" in page.text and "52 dagen geleden" in page.text and "nog 39 dagen" in page.text
        checks = (await client.get("/api/checks")).json()
        assert checks["passes"] is False
        assert any(p["code"] == "temporary-expired" and "LAS-TA-TEST-002" in p["message"] for p in checks["problems"])


def test_templates_are_packaged_with_the_module() -> None:
    import ldn.afspraken

    package = Path(ldn.afspraken.__file__).parent
    assert (package / "templates" / "base.html").is_file()
    assert (package / "static" / "las.css").is_file()
