"""SQL for the authentication function. Functions take a Session and never commit."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ldn.auth.tables import access_tokens, dezi_revocations, used_jti


def remember_jti(session: Session, namespace: str, jti: str, expires_at: datetime) -> bool:
    """Record a jti; False when it was seen before (a replay)."""
    try:
        with session.begin_nested():
            session.execute(insert(used_jti).values(namespace=namespace, jti=jti, expires_at=expires_at))
    except IntegrityError:
        return False
    return True


def prune_expired(session: Session, now: datetime) -> None:
    """Forget jti values and tokens that can no longer be replayed or used."""
    session.execute(delete(used_jti).where(used_jti.c.expires_at < now))
    session.execute(delete(access_tokens).where(access_tokens.c.expires_at < now))


def save_token(session: Session, token_hash: str, issuer: str, claims: dict[str, Any], expires_at: datetime) -> None:
    session.execute(
        insert(access_tokens).values(
            token_hash=token_hash, issuer=issuer, claims=json.dumps(claims), expires_at=expires_at
        )
    )


def load_token(session: Session, token_hash: str, issuer: str) -> dict[str, Any] | None:
    row = session.execute(
        select(access_tokens.c.claims).where(access_tokens.c.token_hash == token_hash, access_tokens.c.issuer == issuer)
    ).first()
    return None if row is None else dict(json.loads(row[0]))


def revoke_declaration(session: Session, verklaring_id: str, now: datetime) -> bool:
    try:
        with session.begin_nested():
            session.execute(insert(dezi_revocations).values(verklaring_id=verklaring_id, revoked_at=now))
    except IntegrityError:
        return False
    return True


def declaration_revoked(session: Session, verklaring_id: str) -> bool:
    row = session.execute(
        select(dezi_revocations.c.verklaring_id).where(dezi_revocations.c.verklaring_id == verklaring_id)
    ).first()
    return row is not None
