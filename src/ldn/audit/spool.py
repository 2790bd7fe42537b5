"""The durable local spool: where events wait, in order, while the audit store is unreachable.

One SQLite file per log source (`<spool_dir>/<source>/spool.sqlite3`, WAL, `synchronous=FULL`,
so a committed append survives a crash or power loss). Each entry is the event's wire form,
encrypted with AES-256-GCM (the spool sits on a node's disk and events carry BSNs; the key comes
from `LDN_AUDIT_SPOOL_KEY` or a file generated next to the spool). Entries are delivered oldest
first and deleted only after the store has acknowledged them; an entry the store refuses outright
(malformed, which only a bug can cause) moves to a dead-letter table instead of blocking the
queue, and stays there for an operator.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ldn.audit.keys import AuditKeyError, read_key_material

__all__ = ["Spool", "SpoolEntry", "SpoolError", "spool_key"]


class SpoolError(OSError):
    """The spool cannot take or give events (disk full, read-only, corrupt)."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    id: int
    event: dict[str, Any]


def spool_key(spool_dir: Path, configured: str | None) -> bytes:
    """The spool's AES key: configured, or generated once into `<spool_dir>/spool.key` (0600)."""
    if configured:
        return read_key_material(configured, name="LDN_AUDIT_SPOOL_KEY")[:32]
    path = spool_dir / "spool.key"
    try:
        if not path.exists():
            spool_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_bytes(32).hex().encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return read_key_material(path.read_text(encoding="ascii"), name="spool.key")[:32]
    except FileExistsError:
        return read_key_material(path.read_text(encoding="ascii"), name="spool.key")[:32]
    except (OSError, AuditKeyError) as exc:
        raise SpoolError(f"spool key unavailable: {exc.__class__.__name__}") from None


class Spool:
    """An ordered, durable, encrypted queue of wire-form events for one log source."""

    def __init__(self, directory: Path, source: str, key: bytes) -> None:
        self.path = directory / source / "spool.sqlite3"
        self.source = source
        self._aead = AESGCM(key)
        self._aad = f"ldn-audit-spool:{source}".encode()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)"
                )
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS dead_letter (id INTEGER PRIMARY KEY, body BLOB NOT NULL, reason TEXT)"
                )
            except (OSError, sqlite3.Error) as exc:
                raise SpoolError(f"cannot open the audit spool: {exc.__class__.__name__}") from None
            self._conn = conn
        return self._conn

    def _seal(self, event: dict[str, Any]) -> bytes:
        nonce = secrets.token_bytes(12)
        plain = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return nonce + self._aead.encrypt(nonce, plain, self._aad)

    def _open(self, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(self._aead.decrypt(body[:12], body[12:], self._aad))
        except (InvalidTag, ValueError) as exc:
            raise SpoolError(f"spool entry cannot be read: {exc.__class__.__name__}") from None
        if not isinstance(data, dict):
            raise SpoolError("spool entry is not an event")
        return data

    def append(self, events: list[dict[str, Any]]) -> None:
        """Append durably (one fsync'd transaction), or raise SpoolError."""
        bodies = [(self._seal(e),) for e in events]
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany("INSERT INTO spool (body) VALUES (?)", bodies)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except (OSError, sqlite3.Error) as exc:
                raise SpoolError(f"cannot write to the audit spool: {exc.__class__.__name__}") from None

    def peek(self, limit: int) -> list[SpoolEntry]:
        """The oldest `limit` entries, in order (not removed)."""
        with self._lock:
            if self._conn is None and not self.exists():
                return []
            conn = self._connection()
            try:
                rows = conn.execute("SELECT id, body FROM spool ORDER BY id LIMIT ?", (limit,)).fetchall()
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot read the audit spool: {exc.__class__.__name__}") from None
        return [SpoolEntry(int(r[0]), self._open(bytes(r[1]))) for r in rows]

    def ack(self, upto_id: int) -> None:
        """Remove delivered entries (every id up to and including `upto_id`)."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("DELETE FROM spool WHERE id <= ?", (upto_id,))
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot update the audit spool: {exc.__class__.__name__}") from None

    def dead_letter(self, entries: list[SpoolEntry], reason: str) -> None:
        """Move entries the store refuses outright aside, so they do not block the queue."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO dead_letter (id, body, reason) SELECT id, body, ? FROM spool WHERE id = ?",
                    [(reason, e.id) for e in entries],
                )
                conn.executemany("DELETE FROM spool WHERE id = ?", [(e.id,) for e in entries])
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot update the audit spool: {exc.__class__.__name__}") from None

    def count(self) -> int:
        with self._lock:
            if self._conn is None and not self.exists():
                return 0
            return int(self._connection().execute("SELECT count(*) FROM spool").fetchone()[0])

    def dead_letters(self) -> int:
        with self._lock:
            if self._conn is None and not self.exists():
                return 0
            return int(self._connection().execute("SELECT count(*) FROM dead_letter").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
