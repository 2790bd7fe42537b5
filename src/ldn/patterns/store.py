"""SQL of the communication patterns: referrals sent and received. Functions take a Session and
never commit (the service layer owns the transaction)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ldn.patterns.tables import referral_in, referral_out

__all__ = [
    "InboxRow",
    "OutboxRow",
    "find_incoming",
    "get_incoming",
    "get_outgoing",
    "insert_incoming",
    "insert_outgoing",
    "list_incoming",
    "list_outgoing",
    "update_incoming",
    "update_outgoing",
]


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class OutboxRow:
    """A referral this node sent: its workflow Task and how the notification went."""

    id: str
    sender_ura: str
    receiver_ura: str
    status: str
    restriction_end: datetime
    service_type: str
    notification_identifier: str
    group_identifier: str
    professional_id: str
    allowed_queries: list[str]
    get_workflow_task: bool
    task: dict[str, Any]
    notification: dict[str, Any]
    delivery: str
    delivery_error: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    def __repr__(self) -> str:  # the Tasks name the patient
        return f"OutboxRow(id={self.id}, receiver={self.receiver_ura}, status={self.status})"


@dataclass(frozen=True)
class InboxRow:
    """A referral this node received: the latest notification Task, its local status, the pull."""

    id: str
    receiver_ura: str
    sender_ura: str
    notification_identifier: str
    group_identifier: str
    authorization_base: str
    status: str
    restriction_end: datetime
    service_type: str | None
    task: dict[str, Any]
    last_modified: str | None
    version: int
    received_at: datetime
    updated_at: datetime
    pulled_at: datetime | None
    pulled_by: str | None
    pull_result: dict[str, Any] | None

    def __repr__(self) -> str:
        return f"InboxRow(id={self.id}, sender={self.sender_ura}, status={self.status})"


def _outbox(row: Any) -> OutboxRow:
    return OutboxRow(
        id=row.id,
        sender_ura=row.sender_ura,
        receiver_ura=row.receiver_ura,
        status=row.status,
        restriction_end=_utc(row.restriction_end),  # type: ignore[arg-type]
        service_type=row.service_type,
        notification_identifier=row.notification_identifier,
        group_identifier=row.group_identifier,
        professional_id=row.professional_id,
        allowed_queries=list(json.loads(row.allowed_queries)),
        get_workflow_task=bool(row.get_workflow_task),
        task=json.loads(row.task),
        notification=json.loads(row.notification),
        delivery=row.delivery,
        delivery_error=row.delivery_error,
        version=row.version,
        created_at=_utc(row.created_at),  # type: ignore[arg-type]
        updated_at=_utc(row.updated_at),  # type: ignore[arg-type]
    )


def _inbox(row: Any) -> InboxRow:
    return InboxRow(
        id=row.id,
        receiver_ura=row.receiver_ura,
        sender_ura=row.sender_ura,
        notification_identifier=row.notification_identifier,
        group_identifier=row.group_identifier,
        authorization_base=row.authorization_base,
        status=row.status,
        restriction_end=_utc(row.restriction_end),  # type: ignore[arg-type]
        service_type=row.service_type,
        task=json.loads(row.task),
        last_modified=row.last_modified,
        version=row.version,
        received_at=_utc(row.received_at),  # type: ignore[arg-type]
        updated_at=_utc(row.updated_at),  # type: ignore[arg-type]
        pulled_at=_utc(row.pulled_at),
        pulled_by=row.pulled_by,
        pull_result=json.loads(row.pull_result) if row.pull_result else None,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for name in ("task", "notification", "pull_result"):
        if name in out and out[name] is not None and not isinstance(out[name], str):
            out[name] = _dumps(out[name])
    if "allowed_queries" in out and not isinstance(out["allowed_queries"], str):
        out["allowed_queries"] = _dumps(list(out["allowed_queries"]))
    if "get_workflow_task" in out:
        out["get_workflow_task"] = 1 if out["get_workflow_task"] else 0
    return out


# ---- sent ----------------------------------------------------------------------------------------


def insert_outgoing(session: Session, **values: Any) -> None:
    session.execute(insert(referral_out).values(**_encode(values)))


def get_outgoing(session: Session, sender_ura: str, referral_id: str, *, for_update: bool = False) -> OutboxRow | None:
    query = select(referral_out).where(referral_out.c.id == referral_id, referral_out.c.sender_ura == sender_ura)
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).first()
    return None if row is None else _outbox(row)


def update_outgoing(session: Session, sender_ura: str, referral_id: str, **values: Any) -> None:
    session.execute(
        update(referral_out)
        .where(referral_out.c.id == referral_id, referral_out.c.sender_ura == sender_ura)
        .values(**_encode(values))
    )


def list_outgoing(session: Session, sender_ura: str, *, limit: int = 100) -> list[OutboxRow]:
    rows = session.execute(
        select(referral_out)
        .where(referral_out.c.sender_ura == sender_ura)
        .order_by(referral_out.c.created_at.desc(), referral_out.c.id)
        .limit(limit)
    ).all()
    return [_outbox(r) for r in rows]


# ---- received ------------------------------------------------------------------------------------


def insert_incoming(session: Session, **values: Any) -> None:
    session.execute(insert(referral_in).values(**_encode(values)))


def find_incoming(
    session: Session, receiver_ura: str, sender_ura: str, identifier: str, *, for_update: bool = False
) -> InboxRow | None:
    query = select(referral_in).where(
        referral_in.c.receiver_ura == receiver_ura,
        referral_in.c.sender_ura == sender_ura,
        referral_in.c.notification_identifier == identifier,
    )
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).first()
    return None if row is None else _inbox(row)


def get_incoming(session: Session, receiver_ura: str, referral_id: str, *, for_update: bool = False) -> InboxRow | None:
    query = select(referral_in).where(referral_in.c.id == referral_id, referral_in.c.receiver_ura == receiver_ura)
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).first()
    return None if row is None else _inbox(row)


def update_incoming(session: Session, receiver_ura: str, referral_id: str, **values: Any) -> None:
    session.execute(
        update(referral_in)
        .where(referral_in.c.id == referral_id, referral_in.c.receiver_ura == receiver_ura)
        .values(**_encode(values))
    )


def list_incoming(session: Session, receiver_ura: str, *, limit: int = 100) -> list[InboxRow]:
    rows = session.execute(
        select(referral_in)
        .where(referral_in.c.receiver_ura == receiver_ura)
        .order_by(referral_in.c.received_at.desc(), referral_in.c.id)
        .limit(limit)
    ).all()
    return [_inbox(r) for r in rows]
