"""Fixtures for audit tests: keys and a store on the per-test database, and a tampering handle."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ldn.audit.context import audit_store
from ldn.audit.keys import AuditKeys
from ldn.audit.settings import AuditSettings
from ldn.audit.store import AuditStore
from ldn.core.config import CoreSettings
from ldn.core.storage import Database


@pytest.fixture
def audit_settings() -> AuditSettings:
    return AuditSettings(checkpoint_every=10)


@pytest.fixture
def store(audit_settings: AuditSettings, settings: CoreSettings) -> AuditStore:
    return audit_store(audit_settings, settings.data_dir)


@pytest.fixture
def keys(store: AuditStore) -> AuditKeys:
    return store.keys


@pytest.fixture
def tamper(database: Database) -> Database:
    """The database with the append-only triggers removed: an attacker with DDL rights."""
    with database.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_record DISABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER"))
        else:
            for name in (
                "audit_record_no_update",
                "audit_record_no_delete",
                "audit_checkpoint_no_update",
                "audit_checkpoint_no_delete",
            ):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    return database
