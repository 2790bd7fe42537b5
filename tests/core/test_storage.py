"""Storage: migrations apply per component branch, transactions are all-or-nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from ldn.core.storage import Database, migration_locations


def _insert(session, key: str) -> None:  # type: ignore[no-untyped-def]
    session.execute(
        text("INSERT INTO core_state (key, value, updated_at) VALUES (:k, 'v', :t)"),
        {"k": key, "t": datetime.now(UTC)},
    )


def test_every_component_branch_is_at_head(database: Database) -> None:
    heads = database.current_heads()
    assert "core_0001" in heads
    script_heads = set(_script_heads(database))
    assert heads == script_heads


def _script_heads(database: Database) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(database.alembic_config()).get_heads())


def test_migration_locations_found_by_convention() -> None:
    assert any(p.parent.name == "core" for p in migration_locations())


def test_transaction_commits_on_success(database: Database) -> None:
    with database.transaction() as session:
        _insert(session, "a")
    with database.transaction(readonly=True) as session:
        assert session.execute(text("SELECT count(*) FROM core_state WHERE key='a'")).scalar_one() == 1


def test_transaction_rolls_back_everything_on_failure(database: Database) -> None:
    with pytest.raises(RuntimeError), database.transaction() as session:
        _insert(session, "b1")
        _insert(session, "b2")
        raise RuntimeError("half way")
    with database.transaction(readonly=True) as session:
        assert session.execute(text("SELECT count(*) FROM core_state WHERE key LIKE 'b%'")).scalar_one() == 0


async def test_run_in_worker_thread(database: Database) -> None:
    await database.run(_insert, "c")

    def count(session) -> int:  # type: ignore[no-untyped-def]
        return int(session.execute(text("SELECT count(*) FROM core_state")).scalar_one())

    assert await database.run(count, readonly=True) == 1


def test_upgrade_is_idempotent(database: Database) -> None:
    before = database.current_heads()
    database.upgrade()
    assert database.current_heads() == before


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    db.dispose()


@pytest.mark.postgres
def test_postgres_throwaway_database_really_used(postgres) -> None:  # type: ignore[no-untyped-def]
    name = f"ldn_probe_{uuid.uuid4().hex[:8]}"
    url = postgres.create(name)
    try:
        db = Database(url)
        db.upgrade()
        with db.transaction() as session:
            _insert(session, "pg")
            assert session.execute(text("SELECT version()")).scalar_one().startswith("PostgreSQL")
        assert "core_0001" in db.current_heads()
        db.dispose()
    finally:
        postgres.drop(name)
