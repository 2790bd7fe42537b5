"""Shared fixtures: a fresh database per test (SQLite, or PostgreSQL when LDN_TEST_DATABASE=postgres),
settings rooted in a temporary directory, and the embedded network with an in-process client."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ldn.core.config import CoreSettings
from ldn.core.storage import Database
from ldn.core.topology import Topology, load_topology

BACKEND = os.environ.get("LDN_TEST_DATABASE", "sqlite").lower()
POSTGRES_ADMIN_URL = os.environ.get("LDN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
NETWORK_BASE = "http://ldn.test"


def postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


class PostgresDatabases:
    """Creates and drops throwaway databases on the admin connection."""

    def __init__(self, admin_url: str) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.admin_url = make_url(admin_url)

    def create(self, name: str, template: str | None = None) -> str:
        with self.admin.connect() as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    if not postgres_available():
        if BACKEND == "postgres":
            pytest.fail("LDN_TEST_DATABASE=postgres but PostgreSQL is not reachable")
        pytest.skip("PostgreSQL not reachable")
    pg = PostgresDatabases(POSTGRES_ADMIN_URL)
    yield pg
    pg.admin.dispose()


@pytest.fixture(scope="session")
def _template_database(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database that each test copies: migrations run once per worker."""
    if BACKEND == "postgres":
        pg: PostgresDatabases = request.getfixturevalue("postgres")
        name = f"ldn_tpl_{uuid.uuid4().hex[:10]}"
        url = pg.create(name)
        db = Database(url)
        db.upgrade()
        db.dispose()
        yield name
        pg.drop(name)
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        db = Database(f"sqlite:///{path}")
        db.upgrade()
        db.dispose()
        yield str(path)


@pytest.fixture
def database_url(_template_database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a fresh, fully migrated database for this test only."""
    if BACKEND == "postgres":
        pg: PostgresDatabases = request.getfixturevalue("postgres")
        name = f"ldn_t_{uuid.uuid4().hex[:12]}"
        url = pg.create(name, template=_template_database)
        yield url
        pg.drop(name)
    else:
        path = tmp_path / "ldn.db"
        shutil.copyfile(_template_database, path)
        yield f"sqlite:///{path}"


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> CoreSettings:
    return CoreSettings(data_dir=tmp_path / "var", database_url=database_url, log_format="json")


@pytest.fixture(scope="session", autouse=True)
def _shared_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One test PKI per test worker (key generation is the slow part); tests that revoke
    certificates point LDN_AUTH_PKI_DIR at a directory of their own."""
    directory = tmp_path_factory.mktemp("pki")
    saved = os.environ.get("LDN_AUTH_PKI_DIR")
    os.environ["LDN_AUTH_PKI_DIR"] = str(directory)
    yield directory
    if saved is None:
        os.environ.pop("LDN_AUTH_PKI_DIR", None)
    else:
        os.environ["LDN_AUTH_PKI_DIR"] = saved


@pytest.fixture(scope="session")
def topology() -> Topology:
    return load_topology()


@pytest.fixture
async def network(settings: CoreSettings, topology: Topology, database: Database) -> AsyncIterator[object]:
    """The embedded network, lifespan started, reachable in-process at NETWORK_BASE."""
    from ldn.network.runtime import build_network

    net = build_network(settings, topology, database, base_url=NETWORK_BASE)
    async with net.app.router.lifespan_context(net.app):
        yield net


@pytest.fixture
async def client(network: object) -> AsyncIterator[httpx.AsyncClient]:
    app = network.app  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=NETWORK_BASE
    ) as c:
        yield c
