"""Key material of the consent service: the BSN lookup hash and the encryption of kept BSNs.

- Lookup: HMAC-SHA256 of the BSN under a secret key. Every table is keyed by this hash, so a
  patient's rows are found with one indexed query and a database dump alone reveals no BSN
  (a plain hash of a 9-digit number is reversed in seconds; a keyed one is not).
- Encryption: AES-256-GCM with a random nonce, for the few places the BSN must be recovered
  (a subscription's criteria, queued notifications that carry Consent resources). The associated
  data names the purpose, so a ciphertext cannot be moved from one column to another.

Keys come from `LDN_CONSENT_BSN_HASH_KEY` / `LDN_CONSENT_ENCRYPTION_KEY`, or are generated once
into `<data_dir>/consent/` with mode 0600. Neither a key nor a BSN is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from ldn.consent.settings import ConsentSettings

__all__ = ["BsnKeys", "ConsentKeyError", "load_keys"]


class ConsentKeyError(RuntimeError):
    """Key material is missing, unusable, or a ciphertext does not open."""


def _decode(value: str, *, name: str, exact: int | None = None) -> bytes:
    text = value.strip()
    raw: bytes | None = None
    if text and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        raw = bytes.fromhex(text)
    else:
        with contextlib.suppress(binascii.Error, ValueError):
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if raw is None or len(raw) < 32 or (exact is not None and len(raw) != exact):
        size = f"exactly {exact}" if exact is not None else "at least 32"
        raise ConsentKeyError(f"{name} must be hex or base64 of {size} bytes")
    return raw


def _create_exclusive(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 unless it exists; when two processes race, the first wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if the target exists: never two different keys
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _key(configured: SecretStr | None, path: Path, *, name: str, exact: int | None = None) -> bytes:
    if configured is not None and configured.get_secret_value().strip():
        return _decode(configured.get_secret_value(), name=name, exact=exact)
    if not path.exists():
        _create_exclusive(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
    return _decode(path.read_text(encoding="ascii"), name=str(path.name), exact=exact)


class BsnKeys:
    """Keyed hash (lookup) and authenticated encryption (recovery) of BSNs and notification payloads."""

    def __init__(self, hash_key: bytes, encryption_key: bytes) -> None:
        self._hash_key = hash_key
        self._aead = AESGCM(encryption_key)
        self.key_id = hashlib.sha256(b"ldn-consent-key-id" + encryption_key).hexdigest()[:8]

    def bsn_hash(self, bsn: str) -> str:
        return hmac.new(self._hash_key, bsn.encode("ascii"), hashlib.sha256).hexdigest()

    def seal(self, plaintext: bytes, purpose: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext, f"ldn-consent:{purpose}".encode())
        return f"v1:{self.key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, token: str, purpose: str) -> bytes:
        try:
            version, key_id, body = token.split(":", 2)
            if version != "v1" or key_id != self.key_id:
                raise ConsentKeyError("sealed with another key")
            raw = base64.b64decode(body, validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], f"ldn-consent:{purpose}".encode())
        except (ValueError, InvalidTag, binascii.Error):
            raise ConsentKeyError("sealed value cannot be opened") from None

    def __repr__(self) -> str:
        return f"BsnKeys(key_id={self.key_id})"


def load_keys(settings: ConsentSettings, data_dir: Path) -> BsnKeys:
    directory = data_dir / "consent"
    hash_key = _key(settings.bsn_hash_key, directory / "bsn-hash.key", name="LDN_CONSENT_BSN_HASH_KEY")
    enc_key = _key(settings.encryption_key, directory / "encryption.key", name="LDN_CONSENT_ENCRYPTION_KEY", exact=32)
    return BsnKeys(hash_key, enc_key)
