"""Builders for consent tests: one synthetic patient, a GP practice holder and a pharmacy requester."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ldn.consent.decision import ClosedQuestion
from ldn.consent.model import ConsentChoice

BSN = "999990019"  # synthetic, passes the 11-check
OTHER_BSN = "999990007"
HOLDER_URA = "90000001"
OTHER_HOLDER_URA = "90000003"
REQUESTER_URA = "90000002"
OTHER_REQUESTER_URA = "90000004"
UZI = "900000017"
AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

_counter = 0


def choice(
    decision: str = "permit",
    *,
    holder: str = f"ura:{HOLDER_URA}",
    requester: str = "any",
    category: str = "GGC013",
    choice_id: str | None = None,
    **overrides: Any,
) -> ConsentChoice:
    global _counter
    _counter += 1
    data: dict[str, Any] = {
        "id": choice_id or f"c{_counter}",
        "version": 1,
        "bsn": BSN,
        "holder": holder,
        "data_category": category,
        "requester": requester,
        "decision": decision,
        "valid_from": EPOCH,
        "recorded_at": EPOCH,
        "source": "citizen",
    }
    data.update(overrides)
    return ConsentChoice.model_validate(data)


QUESTION = ClosedQuestion(
    bsn=BSN,
    holder_ura=HOLDER_URA,
    holder_facility_type="Z3",  # huisartspraktijk, group RPZAC001
    data_category="GGC013",
    requester_ura=REQUESTER_URA,
    requester_facility_type="J8",  # openbare apotheek, group RPZAC005
    professional_id=UZI,
    professional_role="17.000",
    purpose_of_use="TREAT",
    mandated=False,
    at=AT,
)


def question(**overrides: Any) -> ClosedQuestion:
    return replace(QUESTION, **overrides)


def days(n: int) -> timedelta:
    return timedelta(days=n)
