"""SQL of the consent service. Every function takes a Session and never commits.

Rows are found by `bsn_hash` (the keyed hash of the BSN), never by a BSN.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    String,
    Text,
    and_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from ldn.consent.tables import choices, optouts, outbox, overrides, subscriptions

# -- choices ---------------------------------------------------------------------------------

_CHOICE_COLUMNS = (
    choices.c.choice_id,
    choices.c.version,
    choices.c.status,
    choices.c.body,
    choices.c.recorded_by,
)


# The statements of the closed question's cache-miss path are built once: building a select
# per call costs more than running it on an indexed column.
_CURRENT_CHOICES = select(*_CHOICE_COLUMNS).where(
    choices.c.bsn_hash == bindparam("bsn_hash"), choices.c.superseded.is_(False)
)
_CURRENT_OPTOUTS = select(optouts.c.kind, optouts.c.version, optouts.c.objected, optouts.c.recorded_at).where(
    optouts.c.bsn_hash == bindparam("bsn_hash"), optouts.c.superseded.is_(False)
)


# Both in one round trip for the cache-miss path: row_type "c" rows are choices (key = choice id,
# status, body), "o" rows opt-outs (key = kind, objected).
_CURRENT_STATE = union_all(
    select(
        literal("c").label("row_type"),
        choices.c.choice_id.label("key"),
        choices.c.version,
        choices.c.status,
        choices.c.body,
        cast(null(), Boolean).label("objected"),
    ).where(choices.c.bsn_hash == bindparam("bsn_hash"), choices.c.superseded.is_(False)),
    select(
        literal("o"),
        optouts.c.kind,
        optouts.c.version,
        cast(null(), String),
        cast(null(), Text),
        optouts.c.objected,
    ).where(optouts.c.bsn_hash == bindparam("bsn_hash"), optouts.c.superseded.is_(False)),
)


def current_state(session: Session, bsn_hash: str) -> Sequence[Any]:
    """A patient's current choices and opt-outs in one indexed query (see `_CURRENT_STATE`)."""
    return session.execute(_CURRENT_STATE, {"bsn_hash": bsn_hash}).all()


def current_choices(session: Session, bsn_hash: str) -> Sequence[Any]:
    """The latest version of each of a patient's choices (withdrawn ones included): one indexed query."""
    return session.execute(_CURRENT_CHOICES, {"bsn_hash": bsn_hash}).all()


def choice_history(session: Session, bsn_hash: str) -> Sequence[Any]:
    """Every version of every choice of a patient, oldest first."""
    return session.execute(
        select(*_CHOICE_COLUMNS, choices.c.superseded)
        .where(choices.c.bsn_hash == bsn_hash)
        .order_by(choices.c.recorded_at, choices.c.row_id)
    ).all()


def current_choice(session: Session, choice_id: str) -> Any | None:
    return session.execute(
        select(*_CHOICE_COLUMNS, choices.c.bsn_hash).where(
            choices.c.choice_id == choice_id, choices.c.superseded.is_(False)
        )
    ).first()


def insert_choice(
    session: Session,
    *,
    choice_id: str,
    version: int,
    bsn_hash: str,
    status: str,
    body: str,
    recorded_at: datetime,
    recorded_by: str,
) -> None:
    session.execute(
        insert(choices).values(
            choice_id=choice_id,
            version=version,
            bsn_hash=bsn_hash,
            status=status,
            body=body,
            recorded_at=recorded_at,
            recorded_by=recorded_by,
            superseded=False,
        )
    )


def supersede_choice(session: Session, choice_id: str, version: int) -> bool:
    """Mark `version` as replaced; False when it is not (or no longer) the current version."""
    result = session.execute(
        update(choices)
        .where(choices.c.choice_id == choice_id, choices.c.version == version, choices.c.superseded.is_(False))
        .values(superseded=True)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


# -- opt-outs --------------------------------------------------------------------------------


def current_optouts(session: Session, bsn_hash: str) -> Sequence[Any]:
    return session.execute(_CURRENT_OPTOUTS, {"bsn_hash": bsn_hash}).all()


def optout_history(session: Session, bsn_hash: str) -> Sequence[Any]:
    return session.execute(
        select(optouts.c.kind, optouts.c.version, optouts.c.objected, optouts.c.recorded_at, optouts.c.recorded_by)
        .where(optouts.c.bsn_hash == bsn_hash)
        .order_by(optouts.c.recorded_at, optouts.c.row_id)
    ).all()


def insert_optout(
    session: Session,
    *,
    bsn_hash: str,
    kind: str,
    version: int,
    objected: bool,
    recorded_at: datetime,
    recorded_by: str,
) -> None:
    session.execute(
        insert(optouts).values(
            bsn_hash=bsn_hash,
            kind=kind,
            version=version,
            objected=objected,
            recorded_at=recorded_at,
            recorded_by=recorded_by,
            superseded=False,
        )
    )


def supersede_optout(session: Session, bsn_hash: str, kind: str, version: int) -> bool:
    result = session.execute(
        update(optouts)
        .where(
            optouts.c.bsn_hash == bsn_hash,
            optouts.c.kind == kind,
            optouts.c.version == version,
            optouts.c.superseded.is_(False),
        )
        .values(superseded=True)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


# -- vital-interest overrides ----------------------------------------------------------------


def insert_override(session: Session, **values: Any) -> None:
    session.execute(insert(overrides).values(**values))


def overrides_for(session: Session, bsn_hash: str) -> Sequence[Any]:
    return session.execute(
        select(
            overrides.c.id,
            overrides.c.occurred_at,
            overrides.c.via,
            overrides.c.holder_ura,
            overrides.c.requester_ura,
            overrides.c.requester_facility_type,
            overrides.c.data_category,
            overrides.c.professional_id,
            overrides.c.professional_role,
            overrides.c.reason,
        )
        .where(overrides.c.bsn_hash == bsn_hash)
        .order_by(overrides.c.occurred_at.desc(), overrides.c.id)
    ).all()


# -- subscriptions ---------------------------------------------------------------------------


def insert_subscription(session: Session, **values: Any) -> None:
    session.execute(insert(subscriptions).values(**values))


def get_subscription(session: Session, subscription_id: str) -> Any | None:
    return session.execute(select(subscriptions).where(subscriptions.c.id == subscription_id)).first()


def live_subscriptions_for(session: Session, bsn_hash: str, now: datetime) -> Sequence[Any]:
    """Subscriptions that still want this patient's changes (active or failing, not ended)."""
    return session.execute(
        select(subscriptions.c.id, subscriptions.c.sealed).where(
            subscriptions.c.bsn_hash == bsn_hash,
            subscriptions.c.status.in_(("active", "error")),
            or_(subscriptions.c.end_at.is_(None), subscriptions.c.end_at > now),
        )
    ).all()


def set_subscription_status(session: Session, subscription_id: str, status: str, error: str | None = None) -> None:
    session.execute(
        update(subscriptions).where(subscriptions.c.id == subscription_id).values(status=status, last_error=error)
    )


def set_delivery_health(session: Session, subscription_id: str, status: str, error: str | None = None) -> None:
    """active / error as deliveries succeed or fail; never revives a subscription that was ended."""
    session.execute(
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id, subscriptions.c.status != "off")
        .values(status=status, last_error=error)
    )


# -- outbox ----------------------------------------------------------------------------------


def enqueue(session: Session, subscription_id: str, payload: str, now: datetime) -> None:
    session.execute(
        insert(outbox).values(
            subscription_id=subscription_id,
            payload=payload,
            state="pending",
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )


def subscriptions_with_pending(session: Session, limit: int = 1000) -> list[str]:
    rows = session.execute(
        select(outbox.c.subscription_id)
        .where(outbox.c.state == "pending")
        .group_by(outbox.c.subscription_id)
        .order_by(func.min(outbox.c.id))
        .limit(limit)
    ).all()
    return [r[0] for r in rows]


def claim_subscription(
    session: Session, subscription_id: str, owner: str, now: datetime, until: datetime
) -> Any | None:
    """Take (or renew) the delivery lease of a subscription; None when another deliverer holds it."""
    result = session.execute(
        update(subscriptions)
        .where(
            subscriptions.c.id == subscription_id,
            or_(
                subscriptions.c.lease_until.is_(None),
                subscriptions.c.lease_until < now,
                subscriptions.c.lease_owner == owner,
            ),
        )
        .values(lease_until=until, lease_owner=owner)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return None
    return get_subscription(session, subscription_id)


def prepare_delivery(session: Session, subscription_id: str, owner: str, until: datetime, item_id: int) -> bool:
    """Right before a POST: renew the lease, and confirm the subscription is still live and the
    notification still pending (an ended subscription's queue is cancelled, never sent)."""
    result = session.execute(
        update(subscriptions)
        .where(
            subscriptions.c.id == subscription_id,
            subscriptions.c.lease_owner == owner,
            subscriptions.c.status != "off",
        )
        .values(lease_until=until)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return False
    state = session.execute(select(outbox.c.state).where(outbox.c.id == item_id)).scalar_one_or_none()
    return state == "pending"


def release_subscription(session: Session, subscription_id: str, owner: str) -> None:
    session.execute(
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id, subscriptions.c.lease_owner == owner)
        .values(lease_until=None, lease_owner=None)
    )


def release_leases(session: Session, owner: str) -> None:
    session.execute(
        update(subscriptions).where(subscriptions.c.lease_owner == owner).values(lease_until=None, lease_owner=None)
    )


def pending_items(session: Session, subscription_id: str, limit: int) -> Sequence[Any]:
    return session.execute(
        select(outbox.c.id, outbox.c.payload, outbox.c.attempts, outbox.c.next_attempt_at)
        .where(outbox.c.subscription_id == subscription_id, outbox.c.state == "pending")
        .order_by(outbox.c.id)
        .limit(limit)
    ).all()


def mark_delivered(session: Session, item_id: int, now: datetime) -> None:
    session.execute(
        update(outbox)
        .where(outbox.c.id == item_id, outbox.c.state == "pending")
        .values(state="delivered", delivered_at=now, attempts=outbox.c.attempts + 1, last_error=None)
    )


def mark_failed(session: Session, item_id: int, attempts: int, next_attempt_at: datetime, error: str) -> None:
    session.execute(
        update(outbox)
        .where(outbox.c.id == item_id, outbox.c.state == "pending")
        .values(attempts=attempts, next_attempt_at=next_attempt_at, last_error=error[:300])
    )


def cancel_pending(session: Session, subscription_id: str) -> int:
    result = session.execute(
        update(outbox)
        .where(and_(outbox.c.subscription_id == subscription_id, outbox.c.state == "pending"))
        .values(state="cancelled")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def outbox_counts(session: Session, subscription_id: str) -> dict[str, int]:
    rows = session.execute(
        select(outbox.c.state, func.count()).where(outbox.c.subscription_id == subscription_id).group_by(outbox.c.state)
    ).all()
    return {r[0]: int(r[1]) for r in rows}
