"""PRS key management: one master secret, everything else derived from it.

Per recipient (organisation, scope) and key version the OPRF key is
``DeriveKeyPair(seed, info)`` (RFC 9497 §3.2.1) with
``seed = HKDF-SHA256(master, salt="ldn-prs-oprf-key-v1", info="{org}|{scope}|{version}")``, so the
PRS database needs no secret at all: it holds recipient public keys and version numbers. Rotating a
recipient's key is adding a version number; losing the database loses no key; losing the master
secret loses every key (keep it in an HSM or secret store in production).

The origin key (a static P-256 key that lets recipients check an envelope came from the PRS, see
`ldn.localization.envelope`) is derived from the same master.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ldn.localization import oprf
from ldn.localization.envelope import OriginKey, b64url_encode
from ldn.localization.keyfiles import create_private_file_once
from ldn.localization.settings import PrsSettings

logger = logging.getLogger("ldn.prs.keys")

MIN_MASTER_SECRET_BYTES = 32
_KEY_CACHE_SIZE = 4096


class MasterSecretError(ValueError):
    """The configured master secret is missing, unreadable or too short."""


def parse_master_secret(text: str) -> bytes:
    """Hex, or base64/base64url with or without padding; at least 32 bytes."""
    value = text.strip()
    decoded: bytes | None = None
    if len(value) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in value):
        decoded = bytes.fromhex(value)
    else:
        try:
            decoded = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            decoded = None
    if decoded is None or len(decoded) < MIN_MASTER_SECRET_BYTES:
        raise MasterSecretError(f"the PRS master secret must encode at least {MIN_MASTER_SECRET_BYTES} bytes")
    return decoded


def load_master_secret(settings: PrsSettings, data_dir: Path) -> bytes:
    """The master secret from `LDN_PRS_MASTER_SECRET`, else from its file (created 0600 if absent)."""
    if settings.master_secret is not None and settings.master_secret.get_secret_value():
        return parse_master_secret(settings.master_secret.get_secret_value())
    path = settings.resolved_master_key_file(data_dir)
    if create_private_file_once(path, (b64url_encode(os.urandom(32)) + "\n").encode("ascii")):
        logger.info("generated a new PRS master secret at %s", path)
    try:
        return parse_master_secret(path.read_text(encoding="ascii"))
    except OSError as exc:
        raise MasterSecretError(f"cannot read the PRS master secret file {path}: {exc.strerror}") from None


class PrsKeyring:
    """Derives (and caches) OPRF keys per recipient and version, and the origin key."""

    def __init__(self, master_secret: bytes) -> None:
        if len(master_secret) < MIN_MASTER_SECRET_BYTES:
            raise MasterSecretError(f"the PRS master secret must be at least {MIN_MASTER_SECRET_BYTES} bytes")
        self._master = master_secret
        self._cache: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        origin_seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ldn-prs-origin-v1", info=b"origin").derive(
            master_secret
        )
        self.origin = OriginKey.from_seed(origin_seed)

    def __repr__(self) -> str:
        return f"PrsKeyring(origin={self.origin.kid})"

    def oprf_key_pair(self, organization: str, scope: str, version: int) -> oprf.KeyPair:
        """The (deterministic) key pair of one recipient key version; never cached by the caller."""
        label = f"{organization}|{scope}|{version}".encode()
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ldn-prs-oprf-key-v1", info=label).derive(self._master)
        return oprf.derive_key_pair(seed, b"ldn-prs|" + label)

    def oprf_private_key(self, organization: str, scope: str, version: int) -> bytes:
        """The private scalar, from an LRU cache (derivation costs a base-point multiplication)."""
        key = (organization, scope, version)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        private = self.oprf_key_pair(organization, scope, version).private_key
        with self._lock:
            self._cache[key] = private
            while len(self._cache) > _KEY_CACHE_SIZE:
                self._cache.popitem(last=False)
        return private
