"""SQL of the PRS: recipients and their key versions. Functions take a Session and never commit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from ldn.localization.tables import prs_key_version, prs_recipient

ACTIVE = "active"
RETIRED = "retired"


@dataclass(frozen=True)
class KeyVersion:
    version: int
    status: str
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class Recipient:
    id: int
    organization: str
    scope: str
    public_jwk: dict[str, Any]
    kid: str
    versions: tuple[KeyVersion, ...]

    @property
    def active_versions(self) -> tuple[int, ...]:
        return tuple(v.version for v in self.versions if v.status == ACTIVE)

    @property
    def current_version(self) -> int:
        """The newest active version: what evaluations use unless they name another."""
        return max(self.active_versions)


def _versions(session: Session, recipient_ids: list[int]) -> dict[int, list[KeyVersion]]:
    out: dict[int, list[KeyVersion]] = {rid: [] for rid in recipient_ids}
    if not recipient_ids:
        return out
    rows = session.execute(
        select(prs_key_version)
        .where(prs_key_version.c.recipient_id.in_(recipient_ids))
        .order_by(prs_key_version.c.recipient_id, prs_key_version.c.version)
    ).mappings()
    for row in rows:
        out[row["recipient_id"]].append(KeyVersion(row["version"], row["status"], row["created_at"], row["retired_at"]))
    return out


def _recipient(row: Any, versions: list[KeyVersion]) -> Recipient:
    return Recipient(
        id=row["id"],
        organization=row["organization"],
        scope=row["scope"],
        public_jwk=json.loads(row["public_jwk"]),
        kid=row["kid"],
        versions=tuple(versions),
    )


def get_recipient(session: Session, organization: str, scope: str) -> Recipient | None:
    row = (
        session.execute(
            select(prs_recipient).where(prs_recipient.c.organization == organization, prs_recipient.c.scope == scope)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return _recipient(row, _versions(session, [row["id"]])[row["id"]])


def list_recipients(session: Session) -> list[Recipient]:
    rows = list(
        session.execute(select(prs_recipient).order_by(prs_recipient.c.organization, prs_recipient.c.scope)).mappings()
    )
    versions = _versions(session, [r["id"] for r in rows])
    return [_recipient(r, versions[r["id"]]) for r in rows]


def upsert_recipient(
    session: Session, organization: str, scope: str, public_jwk: dict[str, Any], kid: str, now: datetime
) -> tuple[Recipient, bool]:
    """Register a recipient (with key version 1) or replace its public key; True when new."""
    existing = get_recipient(session, organization, scope)
    document = json.dumps(public_jwk, sort_keys=True, separators=(",", ":"))
    if existing is None:
        result = session.execute(
            insert(prs_recipient).values(
                organization=organization, scope=scope, public_jwk=document, kid=kid, created_at=now, updated_at=now
            )
        )
        recipient_id = int(result.inserted_primary_key[0])  # type: ignore[attr-defined]
        session.execute(
            insert(prs_key_version).values(recipient_id=recipient_id, version=1, status=ACTIVE, created_at=now)
        )
        created = True
    else:
        session.execute(
            update(prs_recipient)
            .where(prs_recipient.c.id == existing.id)
            .values(public_jwk=document, kid=kid, updated_at=now)
        )
        created = False
    recipient = get_recipient(session, organization, scope)
    assert recipient is not None
    return recipient, created


def add_key_version(session: Session, recipient_id: int, now: datetime) -> int:
    """A new (current) key version; older versions stay active until retired."""
    latest = session.execute(
        select(func.max(prs_key_version.c.version)).where(prs_key_version.c.recipient_id == recipient_id)
    ).scalar_one()
    version = int(latest or 0) + 1
    session.execute(
        insert(prs_key_version).values(recipient_id=recipient_id, version=version, status=ACTIVE, created_at=now)
    )
    return version


def retire_key_version(session: Session, recipient_id: int, version: int, now: datetime) -> bool:
    result = session.execute(
        update(prs_key_version)
        .where(
            prs_key_version.c.recipient_id == recipient_id,
            prs_key_version.c.version == version,
            prs_key_version.c.status == ACTIVE,
        )
        .values(status=RETIRED, retired_at=now)
    )
    return bool(getattr(result, "rowcount", 0))
