"""Relational storage: one SQLAlchemy 2 engine per process, Alembic migrations per component.

SQLite (WAL mode) is the embedded default at `var/ldn.db`; PostgreSQL (psycopg 3) is used when
`LDN_DATABASE_URL` says so. Rules every service follows:
- a store (the SQL layer) receives a `Session` and never commits;
- the service layer owns the transaction: `with db.transaction() as session: ...`, or
  `await db.run(fn, ...)` from async code, which runs `fn(session, ...)` in a worker thread
  inside one transaction, committed on success and rolled back on any exception.
Each component keeps its migrations in `ldn/<component>/migrations/` as an Alembic branch of
its own (branch label = component name), so components evolve independently; `upgrade()`
applies all heads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

P = ParamSpec("P")
T = TypeVar("T")

PACKAGE_DIR = Path(__file__).resolve().parent.parent


class Base(DeclarativeBase):
    """Declarative base shared by every component's tables (one MetaData for the network)."""


def migration_locations() -> list[Path]:
    """Every component's migration folder, found by convention `ldn/<component>/migrations`."""
    return sorted(p for p in PACKAGE_DIR.glob("*/migrations") if p.is_dir() and p.parent.name != "migrations")


class Database:
    """An engine plus session factories, with SQLite tuned for concurrent use."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if database in ("", ":memory:"):
                kwargs["poolclass"] = NullPool
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            self._tune_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readonly_sessions = sessionmaker(self.engine.execution_options(ldn_readonly=True), expire_on_commit=False)

    @staticmethod
    def _tune_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module so BEGIN is ours.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers take the write lock up front: a deferred transaction that later upgrades
            # to a writer fails at once with SQLITE_BUSY instead of waiting its turn.
            if conn.get_execution_options().get("ldn_readonly"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        factory = self._readonly_sessions if readonly else self._sessions
        with factory() as session, session.begin():
            yield session

    async def run(self, fn: Callable[..., T], *args: Any, readonly: bool = False, **kwargs: Any) -> T:
        """Run `fn(session, *args, **kwargs)` in a worker thread inside one transaction."""

        def _work() -> T:
            with self.transaction(readonly=readonly) as session:
                return fn(session, *args, **kwargs)

        return await anyio.to_thread.run_sync(partial(_work))

    def alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in migration_locations()))
        cfg.set_main_option("sqlalchemy.url", self.url.render_as_string(hide_password=False))
        return cfg

    def upgrade(self) -> None:
        """Apply every component's migrations up to its head."""
        from alembic import command

        cfg = self.alembic_config()
        with self.engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "heads")
            connection.commit()

    def current_heads(self) -> set[str]:
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return set()
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            return {r[0] for r in rows}

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, echo: bool = False, upgrade: bool = False) -> Database:
    db = Database(url, echo=echo)
    if upgrade:
        db.upgrade()
    return db
