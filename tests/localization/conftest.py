"""Fixtures for the localization tests: the embedded network with PRS and NVI, tokens, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from ldn.core.topology import Topology
from ldn.localization.client import LocalizationClient
from ldn.localization.nvi.service import NviService
from ldn.localization.prs.service import PrsService
from tests.auth_helpers import token_for
from tests.conftest import BACKEND, NETWORK_BASE

# Professionals in the default topology (UZI number per organisation URA).
PROFESSIONAL = {
    "00000020": "900000011",
    "00000030": "900000021",
    "00000040": "900000031",
    "00000050": "900000041",
    "00000060": "900000051",
    "00000070": "900000061",
}
NVI_RECIPIENT = ("ura:90000901", "nationale-verwijsindex")
PRS_OPERATOR = "90000902"


@dataclass
class Loc:
    """Helpers bound to one embedded network: URLs, tokens (cached), node-side clients."""

    client: httpx.AsyncClient
    network: Any
    _tokens: dict[tuple[str, str, str | None], Any] = field(default_factory=dict)

    @property
    def prs_url(self) -> str:
        return str(self.network.directory.service_url("prs"))

    @property
    def nvi_url(self) -> str:
        return str(self.network.directory.service_url("nvi"))

    @property
    def prs(self) -> PrsService:
        service: PrsService = self.network.apps["prs"].state.ctx.extras["prs_service"]
        return service

    @property
    def nvi(self) -> NviService:
        service: NviService = self.network.apps["nvi"].state.ctx.extras["nvi_service"]
        return service

    async def token(self, org: str, scope: str, user: str | None = None) -> Any:
        key = (org, scope, user)
        if key not in self._tokens:
            self._tokens[key] = await token_for(self.client, self.network, org=org, scope=scope, user=user)
        return self._tokens[key]

    async def headers(self, method: str, url: str, *, org: str, scope: str, user: str | None = None) -> dict[str, str]:
        token = await self.token(org, scope, user)
        return dict(token.headers(method, url))

    def auth(self, org: str, *, professional: bool = True) -> Any:
        """`AuthHeaders` for a node: nvi:read tokens carry a professional when asked."""

        async def headers(method: str, url: str, scope: str) -> Mapping[str, str]:
            user = PROFESSIONAL.get(org) if (professional and scope == "nvi:read") else None
            return await self.headers(method, url, org=org, scope=scope, user=user)

        return headers

    def node_client(self, org: str, *, professional: bool = True, **kwargs: Any) -> LocalizationClient:
        return LocalizationClient(
            self.client,
            prs_url=self.prs_url,
            nvi_url=self.nvi_url,
            auth=self.auth(org, professional=professional),
            custodian_ura=org,
            **kwargs,
        )


# Nodes register what their FHIR stores hold at start-up, in the background (ldn.patterns); these
# tests count records, so they start from an empty referral index.
NO_STARTUP_SYNC = ("LDN_PATTERNS_NVI_SYNC_ON_STARTUP", "false")


@pytest.fixture(autouse=True)
def _no_startup_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(*NO_STARTUP_SYNC)


@pytest.fixture
async def loc(client: httpx.AsyncClient, network: Any) -> Loc:
    return Loc(client, network)


@pytest.fixture
def fast_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short key-state and cache intervals, for tests of rotation (set before the network)."""
    monkeypatch.setenv("LDN_NVI_KEY_STATE_SECONDS", "0.05")
    monkeypatch.setenv("LDN_PRS_RECIPIENT_CACHE_SECONDS", "0")


@pytest.fixture
async def fast_network(
    fast_keys: None, settings: CoreSettings, topology: Topology, database: Database
) -> AsyncIterator[Any]:
    from ldn.network.runtime import build_network

    net = build_network(settings, topology, database, base_url=NETWORK_BASE)
    async with net.app.router.lifespan_context(net.app):
        yield net


@pytest.fixture
async def fast_loc(fast_network: Any) -> AsyncIterator[Loc]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fast_network.app, raise_app_exceptions=False), base_url=NETWORK_BASE
    ) as c:
        yield Loc(c, fast_network)


def nvi_private_jwk(network: Any) -> dict[str, Any]:
    from ldn.localization.nvi.keys import NviKeyMaterial
    from ldn.localization.settings import NviSettings

    material = NviKeyMaterial(NviSettings().resolved_key_dir(network.settings.data_dir))
    return material.jwe_private_jwk()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_loc(
    _template_database: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Loc]:
    """One network for a whole test module (building one costs most of a second): for modules
    whose tests do not depend on each other's data. Mark the module
    ``pytestmark = pytest.mark.asyncio(loop_scope="module")``."""
    import shutil
    import uuid

    from ldn.core.topology import load_topology
    from ldn.network.runtime import build_network

    directory = tmp_path_factory.mktemp("shared")
    pg = None
    if BACKEND == "postgres":
        pg = request.getfixturevalue("postgres")
        name = f"ldn_m_{uuid.uuid4().hex[:12]}"
        url = pg.create(name, template=_template_database)
    else:
        shutil.copyfile(_template_database, directory / "ldn.db")
        url = f"sqlite:///{directory / 'ldn.db'}"
    database = Database(url)
    settings = CoreSettings(data_dir=directory / "var", database_url=url, log_format="json")
    patch = pytest.MonkeyPatch()
    patch.setenv(*NO_STARTUP_SYNC)
    net = build_network(settings, load_topology(), database, base_url=NETWORK_BASE)
    try:
        async with (
            net.app.router.lifespan_context(net.app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=net.app, raise_app_exceptions=False), base_url=NETWORK_BASE
            ) as c,
        ):
            yield Loc(c, net)
    finally:
        patch.undo()
        database.dispose()
        if pg is not None:
            pg.drop(name)


def make_bsn(seed: int) -> str:
    """A valid test BSN (99xxxxxxx, passing the 11-check), distinct per seed (0 <= seed < 10**6)."""
    from ldn.core.identifiers import is_valid_bsn

    base = 990_000_000 + seed * 100
    for candidate in range(base, base + 100):
        if is_valid_bsn(str(candidate)):
            return str(candidate)
    raise AssertionError("no valid BSN in range")  # pragma: no cover


def registration_bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def post_entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"request": {"method": "POST", "url": "List"}, "resource": resource}
