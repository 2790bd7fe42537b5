"""Key material of the audit log: BSN protection and checkpoint signing.

- BSN lookup: HMAC-SHA256 with a secret key (truncated to 128 bits), so records of one patient
  can be found without storing the BSN (a plain hash of a 9-digit number is trivially
  reversed; a keyed one is not).
- BSN value: AES-256-GCM with a random nonce (`v1:<key id>:<base64 nonce||ciphertext>`), so a
  supervisor's export can name the patient; the associated data binds it to its purpose.
- Checkpoints: Ed25519. The private key lives in `<data_dir>/audit/checkpoint-key.pem` (created
  on first use, mode 0600); verifiers trust its public key plus any `*.pem` in the trusted-keys
  directory (keys used before a rotation).

Keys come from configuration or are generated once into the data directory. No key, and no
BSN, is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import itertools
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from ldn.audit.settings import AuditSettings

__all__ = ["AuditKeyError", "AuditKeys", "BsnProtector", "CheckpointSigner", "load_audit_keys", "read_key_material"]

_BSN_AAD = b"ldn-audit-bsn-v1"


class AuditKeyError(RuntimeError):
    """Key material is missing or unusable."""


def read_key_material(value: str, *, name: str, min_bytes: int = 32) -> bytes:
    """Decode a key given as hex or (url-safe) base64; at least `min_bytes` long."""
    text = value.strip()
    raw: bytes | None = None
    if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        raw = bytes.fromhex(text)
    else:
        with contextlib.suppress(binascii.Error, ValueError):
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if raw is None or len(raw) < min_bytes:
        raise AuditKeyError(f"{name} must be hex or base64 of at least {min_bytes} bytes")
    return raw


def _create_exclusive(path: Path, data: bytes) -> None:
    """Create `path` (mode 0600) unless it exists; a concurrent creator wins and we keep theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link() fails if the target exists, so two processes never both install a key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _file_key(path: Path, *, name: str) -> bytes:
    if not path.exists():
        _create_exclusive(path, base64.b64encode(secrets.token_bytes(32)) + b"\n")
    return read_key_material(path.read_text(encoding="ascii"), name=name)


class BsnProtector:
    """Keyed hash (lookup) and authenticated encryption (recovery) of BSNs."""

    def __init__(self, hash_key: bytes, encryption_key: bytes) -> None:
        if len(encryption_key) not in (16, 24, 32):
            encryption_key = hashlib.sha256(encryption_key).digest()
        # HMAC (RFC 2104) with the padded key states computed once: every access hashes a BSN.
        padded = hash_key if len(hash_key) <= 64 else hashlib.sha256(hash_key).digest()
        padded = padded.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        self._aead = AESGCM(encryption_key)
        self.key_id = hashlib.sha256(b"ldn-audit-key-id" + encryption_key).hexdigest()[:8]
        # GCM nonces: a random 32-bit prefix per process plus a 64-bit counter, so they never
        # repeat under one key without a system call per event.
        self._nonce_prefix = secrets.token_bytes(4)
        self._nonce_counter = itertools.count()

    def lookup_hash(self, bsn: str) -> str:
        """HMAC-SHA256 of the BSN, truncated to 128 bits (32 hex digits).

        128 bits keep collisions out of reach for any number of citizens, and half the key
        length makes the patient index, which every access updates at a random place, markedly
        cheaper to maintain.
        """
        inner = self._inner.copy()
        inner.update(bsn.encode("ascii"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:32]

    def encrypt(self, bsn: str) -> str:
        nonce = self._nonce_prefix + next(self._nonce_counter).to_bytes(8, "big")
        sealed = self._aead.encrypt(nonce, bsn.encode("ascii"), _BSN_AAD)
        return f"v1:{self.key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, token: str) -> str:
        try:
            version, key_id, body = token.split(":", 2)
            if version != "v1" or key_id != self.key_id:
                raise AuditKeyError("BSN was encrypted with another key")
            raw = base64.b64decode(body, validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], _BSN_AAD).decode("ascii")
        except (ValueError, InvalidTag, binascii.Error):
            raise AuditKeyError("encrypted BSN cannot be decrypted") from None

    def __repr__(self) -> str:
        return f"BsnProtector(key_id={self.key_id})"


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class CheckpointSigner:
    """Signs checkpoint payloads; verifies with the current key or any trusted earlier key."""

    private_key: Ed25519PrivateKey | None
    trusted: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.private_key is not None:
            public = self.private_key.public_key()
            self.trusted.setdefault(key_id_of(public), public)

    @property
    def key_id(self) -> str:
        if self.private_key is None:
            raise AuditKeyError("no checkpoint signing key")
        return key_id_of(self.private_key.public_key())

    def sign(self, payload: bytes) -> str:
        if self.private_key is None:
            raise AuditKeyError("no checkpoint signing key")
        return base64.b64encode(self.private_key.sign(payload)).decode("ascii")

    def verify(self, key_id: str, payload: bytes, signature: str) -> bool:
        key = self.trusted.get(key_id)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(signature, validate=True), payload)
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True

    def __repr__(self) -> str:
        return f"CheckpointSigner(trusted={sorted(self.trusted)})"


def _load_signing_key(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _create_exclusive(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path.name} is not an Ed25519 private key")
    return key


def _trusted_public_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    if not directory.is_dir():
        return keys
    for pem in sorted(directory.glob("*.pem")):
        key = serialization.load_pem_public_key(pem.read_bytes())
        if isinstance(key, Ed25519PublicKey):
            keys[key_id_of(key)] = key
    return keys


@dataclass
class AuditKeys:
    """Everything the store needs: BSN protection and checkpoint signing."""

    bsn: BsnProtector
    signer: CheckpointSigner


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def load_audit_keys(settings: AuditSettings, data_dir: Path) -> AuditKeys:
    """Keys from configuration, or from (generated on first use) files under `<data_dir>/audit/`."""
    base = data_dir / "audit"
    hash_text = _secret(settings.bsn_hash_key)
    enc_text = _secret(settings.bsn_encryption_key)
    hash_key = (
        read_key_material(hash_text, name="LDN_AUDIT_BSN_HASH_KEY")
        if hash_text
        else _file_key(base / "bsn-hash.key", name="bsn-hash.key")
    )
    enc_key = (
        read_key_material(enc_text, name="LDN_AUDIT_BSN_ENCRYPTION_KEY")
        if enc_text
        else _file_key(base / "bsn-encryption.key", name="bsn-encryption.key")
    )
    signing = _load_signing_key(settings.checkpoint_key_file or base / "checkpoint-key.pem")
    trusted = _trusted_public_keys(settings.trusted_checkpoint_keys_dir or base / "trusted-keys")
    return AuditKeys(BsnProtector(hash_key, enc_key), CheckpointSigner(signing, trusted))
