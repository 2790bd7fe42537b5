"""NVI key material: the JWE key pair it is known by at the PRS, and its storage keyring.

Files under `<key_dir>` (default `<data_dir>/nvi`, mode 0700, files 0600):
- ``jwe-private.json``: the NVI's P-256 private JWK; PRS envelopes are sealed to its public half
  (``jwe-public.json``), which the NVI also publishes for the PRS (bootstrap, see the PRS).
- ``keyring.json``: ``{"data_key": b64url, "storage_keys": {"<version>": b64url}}``. A storage key
  keys the lookup hash ``HMAC-SHA256(storage_key_vN, element)``; the data key seals each record's
  element (AES-256-GCM) so the lookup hash can be recomputed under a new storage key.

Which storage key versions are in use lives in the database (`nvi_storage_key`), shared by every
NVI process: the newest active version is the one written, every active version is read. Each
process re-reads that table at most every `key_state_seconds` (`StorageKeyManager`), which is
what makes an online rotation safe (`ldn.localization.nvi.rekey`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ldn.core.storage import Database
from ldn.localization.envelope import b64url_decode, b64url_encode
from ldn.localization.keyfiles import create_private_file_once, ensure_private_dir, write_json_atomic
from ldn.localization.nvi import store

_CHECK_TEXT = b"ldn-nvi-storage-key-check|v1"
_ELEMENT_AAD = b"ldn-nvi-element|v1|"
_NONCE_BYTES = 12


class KeyringError(RuntimeError):
    """Key material is missing or does not match what the database says is in use."""


def key_check_value(key: bytes) -> bytes:
    """A short public fingerprint of a storage key, stored next to its version."""
    return hmac.new(key, _CHECK_TEXT, sha256).digest()[:16]


class NviKeyMaterial:
    """The NVI's key files (see module doc); thread-safe, multi-process safe for additions."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir
        self._lock = threading.Lock()
        self._keyring: dict[str, Any] | None = None

    @property
    def private_jwk_path(self) -> Path:
        return self.key_dir / "jwe-private.json"

    @property
    def public_jwk_path(self) -> Path:
        return self.key_dir / "jwe-public.json"

    @property
    def keyring_path(self) -> Path:
        return self.key_dir / "keyring.json"

    # ------------------------------------------------------------------ JWE key pair

    def jwe_private_jwk(self) -> dict[str, Any]:
        """The NVI's private P-256 JWK, created (0600) on first use."""
        ensure_private_dir(self.key_dir)
        if not self.private_jwk_path.exists():
            key = ECKey.generate_key("P-256", parameters={"use": "enc", "alg": "ECDH-ES+A256KW"}, private=True)
            private = dict(key.as_dict(private=True))
            private["kid"] = key.thumbprint()
            create_private_file_once(self.private_jwk_path, json.dumps(private, indent=2).encode("utf-8"))
        document: dict[str, Any] = json.loads(self.private_jwk_path.read_text(encoding="utf-8"))
        return document

    def jwe_public_jwk(self) -> dict[str, Any]:
        private = self.jwe_private_jwk()
        public = {k: v for k, v in private.items() if k != "d"}
        if not self.public_jwk_path.exists():
            write_json_atomic(self.public_jwk_path, public, private=False)
        return public

    # ------------------------------------------------------------------ keyring

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        ensure_private_dir(self.key_dir)
        fd = os.open(self.key_dir / ".keyring.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read_keyring_file(self) -> dict[str, Any] | None:
        try:
            document: dict[str, Any] = json.loads(self.keyring_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return document

    def keyring(self, *, reload: bool = False) -> dict[str, Any]:
        """The keyring document, created with a fresh data key (and no storage key) if absent."""
        with self._lock:
            if self._keyring is not None and not reload:
                return self._keyring
            with self._file_lock():
                document = self._read_keyring_file()
                if document is None:
                    document = {"data_key": b64url_encode(os.urandom(32)), "storage_keys": {}}
                    write_json_atomic(self.keyring_path, document)
            self._keyring = document
            return document

    def data_key(self) -> bytes:
        return b64url_decode(self.keyring()["data_key"], "data key")

    def storage_key(self, version: int) -> bytes | None:
        for attempt in (False, True):
            text = self.keyring(reload=attempt)["storage_keys"].get(str(version))
            if text is not None:
                return b64url_decode(text, "storage key")
        return None

    def add_storage_key(self, version: int) -> bytes:
        """Add storage key ``version`` to the keyring file (idempotent: an existing one is kept)."""
        with self._lock, self._file_lock():
            document = self._read_keyring_file() or {"data_key": b64url_encode(os.urandom(32)), "storage_keys": {}}
            existing = document["storage_keys"].get(str(version))
            if existing is None:
                document["storage_keys"][str(version)] = b64url_encode(os.urandom(32))
                write_json_atomic(self.keyring_path, document)
            self._keyring = document
            return b64url_decode(document["storage_keys"][str(version)], "storage key")


@dataclass(frozen=True)
class StorageKeys:
    """One process's view of the storage keys: which to write, which to read."""

    write_version: int
    read: tuple[tuple[int, bytes], ...] = field(repr=False)
    loaded_at: float

    @property
    def write_key(self) -> bytes:
        return dict(self.read)[self.write_version]

    def lookup_hashes(self, element: bytes) -> list[bytes]:
        """The element's lookup hash under every readable version (query with IN)."""
        return [hmac.new(key, element, sha256).digest() for _, key in self.read]

    def write_hash(self, element: bytes) -> bytes:
        return hmac.new(self.write_key, element, sha256).digest()


class ElementSealer:
    """Seals a record's unblinded element under the data key, bound to the record id."""

    def __init__(self, data_key: bytes) -> None:
        self._aead = AESGCM(data_key)

    def seal(self, element: bytes, record_id: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, element, _ELEMENT_AAD + record_id)

    def open(self, sealed: bytes, record_id: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _ELEMENT_AAD + record_id)
        except InvalidTag as exc:
            raise KeyringError("a sealed element does not open with the data key") from exc


class StorageKeyManager:
    """Keeps a process's `StorageKeys` fresh (at most `ttl` seconds old) from the database."""

    def __init__(self, database: Database, material: NviKeyMaterial, ttl: float) -> None:
        self.database = database
        self.material = material
        self.ttl = ttl
        self._snapshot: StorageKeys | None = None
        self._initialized = False
        self.element_sealer = ElementSealer(material.data_key())

    def _load(self, session: Session) -> StorageKeys:
        rows = store.storage_key_rows(session)
        if not rows:
            raise KeyringError("no storage key in the database; the NVI has not been initialised")
        read: list[tuple[int, bytes]] = []
        for row in rows:
            if row.status != store.ACTIVE:
                continue
            key = self.material.storage_key(row.version)
            if key is None:
                raise KeyringError(f"storage key version {row.version} is in use but missing from the keyring")
            if not hmac.compare_digest(key_check_value(key), row.check_value):
                raise KeyringError(f"storage key version {row.version} in the keyring does not match the database")
            read.append((row.version, key))
        if not read:
            raise KeyringError("no active storage key")
        read.sort(reverse=True)  # newest first: it is the one written and the likeliest hit
        return StorageKeys(write_version=read[0][0], read=tuple(read), loaded_at=time.monotonic())

    def initialize(self, session: Session) -> None:
        """Create storage key version 1 on a fresh database; verify the keyring otherwise."""
        if not store.storage_key_rows(session):
            key = self.material.storage_key(1) or self.material.add_storage_key(1)
            try:
                with session.begin_nested():
                    store.insert_storage_key(session, 1, key_check_value(key), datetime.now(UTC))
            except IntegrityError:
                pass  # another process initialised it at the same moment
        self._snapshot = self._load(session)
        self._initialized = True

    def refresh(self, session: Session) -> StorageKeys:
        if not self._initialized:
            self.initialize(session)
        else:
            self._snapshot = self._load(session)
        assert self._snapshot is not None
        return self._snapshot

    def cached(self) -> StorageKeys | None:
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.loaded_at < self.ttl:
            return snapshot
        return None

    async def current(self) -> StorageKeys:
        snapshot = self.cached()
        if snapshot is not None:
            return snapshot
        # Once initialised, a refresh only reads (no SQLite write lock for it).
        return await self.database.run(self.refresh, readonly=self._initialized)

    def current_sync(self) -> StorageKeys:
        snapshot = self.cached()
        if snapshot is not None:
            return snapshot
        with self.database.transaction() as session:
            return self.refresh(session)
