"""The PRS service layer: recipients, key versions and OPRF evaluation (SPEC §6, steps 3-4).

What the PRS holds: per recipient (organisation, scope) its public P-256 key and its key version
numbers; the OPRF keys themselves are derived from the master secret (`ldn.localization.prs.keys`).
What it never holds: inputs, outputs, identifiers, pseudonyms or any link between requests. An
evaluation is pure computation: validate the blinded element, multiply by the recipient's key,
seal the result to the recipient, forget.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session

from ldn.core.errors import BadRequest, NotFound, Unprocessable
from ldn.core.identifiers import URA, IdentifierError
from ldn.core.storage import Database
from ldn.localization import derivation, oprf
from ldn.localization.envelope import (
    EnvelopeError,
    EnvelopeSealer,
    b64url_decode,
    validate_recipient_public_jwk,
)
from ldn.localization.prs import store
from ldn.localization.prs.keys import PrsKeyring
from ldn.localization.settings import PrsSettings

logger = logging.getLogger("ldn.prs")

_ORGANIZATION = re.compile(r"\Aura:([0-9]{8})\Z")
_VERSION = re.compile(r"\A[1-9][0-9]{0,8}\Z")
_RESCAN_INTERVAL = 5.0


def parse_recipient(organization: Any, scope: Any) -> tuple[str, str]:
    """Validate ``recipient_organization`` (``ura:<URA>``) and ``recipient_scope``."""
    match = _ORGANIZATION.match(organization) if isinstance(organization, str) else None
    if match is None:
        raise BadRequest(
            "recipient_organization must be 'ura:' followed by an 8-digit URA",
            code="value",
            expression=["recipient_organization"],
        )
    try:
        URA.parse(match.group(1))
        derivation.hkdf_info(organization, scope)
    except (IdentifierError, derivation.DerivationError) as exc:
        raise BadRequest(f"invalid recipient: {exc}", code="value", expression=["recipient_scope"]) from None
    return organization, scope


def parse_key_version(value: Any, *, expression: str = "oprf_key_version") -> int | None:
    """An optional key version as sent on the wire (a decimal string, as in the JWE header)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _VERSION.match(value):
        raise BadRequest("oprf_key_version must be a positive decimal number", code="value", expression=[expression])
    return int(value)


def parse_blinded_input(value: Any, expression: str) -> bytes:
    """Decode and validate one ``blinded_input``: canonical base64url of a non-identity element."""
    if not isinstance(value, str):
        raise BadRequest("blinded_input must be a base64url string", code="value", expression=[expression])
    try:
        raw = b64url_decode(value, "blinded_input")
    except EnvelopeError as exc:
        raise BadRequest(str(exc), code="value", details_code="malformed-base64url", expression=[expression]) from None
    try:
        return oprf.deserialize_element(raw)
    except oprf.InvalidElementError as exc:
        raise BadRequest(
            f"blinded_input is not a valid ristretto255 element: {exc}",
            code="value",
            details_code="invalid-element",
            expression=[expression],
        ) from None


@dataclass(frozen=True)
class _Entry:
    recipient: store.Recipient
    sealer: EnvelopeSealer
    expires: float

    def version(self, requested: int | None) -> int:
        if requested is None:
            return self.recipient.current_version
        if requested not in self.recipient.active_versions:
            known = {v.version for v in self.recipient.versions}
            reason = "retired" if requested in known else "unknown"
            raise Unprocessable(
                f"key version {requested} of this recipient is {reason}",
                details_code=f"key-version-{reason}",
                expression=["oprf_key_version"],
            )
        return requested


@dataclass(frozen=True)
class RecipientInfo:
    """Public facts about a recipient, for clients that search across a key transition."""

    organization: str
    scope: str
    kid: str
    current_version: int
    active_versions: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "recipient_organization": self.organization,
            "recipient_scope": self.scope,
            "kid": self.kid,
            "current_key_version": str(self.current_version),
            "active_key_versions": [str(v) for v in self.active_versions],
        }


class PrsService:
    """Evaluation and recipient administration; safe to share between requests and threads."""

    def __init__(
        self, database: Database, keyring: PrsKeyring, settings: PrsSettings, recipients_dir: Path | None = None
    ) -> None:
        self.database = database
        self.keyring = keyring
        self.settings = settings
        self.recipients_dir = recipients_dir
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._last_scan = 0.0

    # ------------------------------------------------------------------ recipients

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def invalidate(self) -> None:
        self._entries.clear()

    def _load_entry(self, session: Session, organization: str, scope: str) -> _Entry | None:
        recipient = store.get_recipient(session, organization, scope)
        if recipient is None or not recipient.active_versions:
            return None
        sealer = EnvelopeSealer(recipient.public_jwk, origin=self.keyring.origin)
        return _Entry(recipient, sealer, time.monotonic() + self.settings.recipient_cache_seconds)

    async def _entry(self, organization: str, scope: str) -> _Entry:
        key = (organization, scope)
        entry = self._entries.get(key)
        if entry is not None and entry.expires > time.monotonic():
            return entry
        entry = await self.database.run(self._load_entry, organization, scope, readonly=True)
        if entry is None and self.recipients_dir is not None and time.monotonic() - self._last_scan > _RESCAN_INTERVAL:
            # A recipient may have been dropped into the bootstrap directory since the last scan.
            await anyio.to_thread.run_sync(self.load_bootstrap_dir)
            entry = await self.database.run(self._load_entry, organization, scope, readonly=True)
        if entry is None:
            raise Unprocessable(
                "the recipient is not registered at the PRS (or has no active key)",
                details_code="unknown-recipient",
                expression=["recipient_organization", "recipient_scope"],
            )
        self._entries[key] = entry
        return entry

    def register_recipient(self, organization: str, scope: str, jwk: Any) -> tuple[store.Recipient, bool]:
        """Register or update a recipient's public key (administrative)."""
        organization, scope = parse_recipient(organization, scope)
        try:
            public, kid = validate_recipient_public_jwk(jwk)
        except EnvelopeError as exc:
            raise BadRequest(f"jwk: {exc}", code="value", expression=["jwk"]) from None
        with self.database.transaction() as session:
            recipient, created = store.upsert_recipient(session, organization, scope, public, kid, self._now())
        self._entries.pop((organization, scope), None)
        logger.info("recipient %s|%s %s (kid %s)", organization, scope, "registered" if created else "updated", kid)
        return recipient, created

    def _require(self, session: Session, organization: str, scope: str) -> store.Recipient:
        recipient = store.get_recipient(session, organization, scope)
        if recipient is None:
            raise NotFound("the recipient is not registered at the PRS", details_code="unknown-recipient")
        return recipient

    def rotate(self, organization: str, scope: str) -> int:
        """Add a new current key version; older versions stay usable until retired."""
        organization, scope = parse_recipient(organization, scope)
        with self.database.transaction() as session:
            version = store.add_key_version(session, self._require(session, organization, scope).id, self._now())
        self._entries.pop((organization, scope), None)
        logger.info("recipient %s|%s rotated to key version %d", organization, scope, version)
        return version

    def retire(self, organization: str, scope: str, version: int) -> None:
        """End a key version's transition: evaluations under it are refused from now on."""
        organization, scope = parse_recipient(organization, scope)
        with self.database.transaction() as session:
            recipient = self._require(session, organization, scope)
            if version == recipient.current_version:
                raise Unprocessable("the current key version cannot be retired; rotate first")
            if not store.retire_key_version(session, recipient.id, version, self._now()):
                raise NotFound(f"no active key version {version} for this recipient")
        self._entries.pop((organization, scope), None)
        logger.info("recipient %s|%s retired key version %d", organization, scope, version)

    def recipients(self) -> list[store.Recipient]:
        with self.database.transaction(readonly=True) as session:
            return store.list_recipients(session)

    async def recipient_info(self, organization: str, scope: str) -> RecipientInfo:
        organization, scope = parse_recipient(organization, scope)
        entry = await self._entry(organization, scope)
        r = entry.recipient
        return RecipientInfo(r.organization, r.scope, r.kid, r.current_version, r.active_versions)

    def load_bootstrap_dir(self) -> int:
        """Register the recipients described in the bootstrap directory; returns how many changed.

        Each ``*.json`` holds ``{"recipient_organization", "recipient_scope", "jwk"}``. A file
        whose key is already registered changes nothing, so reading the directory again is cheap.
        """
        self._last_scan = time.monotonic()
        directory = self.recipients_dir
        if directory is None or not directory.is_dir():
            return 0
        changed = 0
        for path in sorted(directory.glob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
                organization, scope = parse_recipient(
                    document.get("recipient_organization"), document.get("recipient_scope")
                )
                public, kid = validate_recipient_public_jwk(document.get("jwk"))
            except (OSError, ValueError, AttributeError, BadRequest) as exc:
                logger.warning("ignoring recipient file %s: %s", path.name, getattr(exc, "diagnostics", exc))
                continue
            with self.database.transaction(readonly=True) as session:
                existing = store.get_recipient(session, organization, scope)
            if existing is not None and existing.kid == kid:
                continue
            self.register_recipient(organization, scope, public)
            changed += 1
        return changed

    # ------------------------------------------------------------------ evaluation

    async def evaluate(self, organization: str, scope: str, blinded: bytes, version: int | None = None) -> str:
        """One evaluation: ``skS(recipient, version) * blinded``, sealed to the recipient.

        ``blinded`` must come from `parse_blinded_input` (validated)."""
        entry = await self._entry(organization, scope)
        chosen = entry.version(version)
        private_key = self.keyring.oprf_private_key(organization, scope, chosen)
        return entry.sealer.seal(
            self._evaluate(private_key, blinded), oprf_key_version=str(chosen), element_validated=True
        )

    @staticmethod
    def _evaluate(private_key: bytes, blinded: bytes) -> bytes:
        # Inputs arrive validated (`parse_blinded_input`) and the key is derived, never zero, so
        # the group operation runs without checking again; its output is a valid element.
        return oprf.blind_evaluate_validated(private_key, blinded)

    async def evaluate_batch(
        self, organization: str, scope: str, blinded: Sequence[bytes], version: int | None = None
    ) -> list[str]:
        """Many evaluations for one recipient; the CPU work runs off the event loop."""
        entry = await self._entry(organization, scope)
        chosen = entry.version(version)
        private_key = self.keyring.oprf_private_key(organization, scope, chosen)
        label = str(chosen)

        def work() -> list[str]:
            seal, evaluate = entry.sealer.seal, self._evaluate
            return [seal(evaluate(private_key, b), oprf_key_version=label, element_validated=True) for b in blinded]

        return await anyio.to_thread.run_sync(work)
