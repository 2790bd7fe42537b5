"""Request bodies of the consent API (JSON), validated with pydantic; unknown fields are refused.

Closed-question fields are all optional on purpose: an absent input must reach the decision core,
which answers Indeterminate and names it (SPEC §7: a missing input never gives Permit).
"""

from __future__ import annotations

from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from ldn.consent.categories import DataCategory
from ldn.consent.model import ChoiceDecision, Party

__all__ = [
    "ChoiceDraft",
    "ChoicesRequest",
    "ClosedQuestionRequest",
    "HolderRef",
    "OpenQuestionRequest",
    "OverrideRequest",
    "check_reason",
]

MAX_REASON = 1000


def check_reason(value: str | None) -> str | None:
    """A vital-interest reason: printable text, not blank, at most MAX_REASON characters."""
    if value is None:
        return None
    text = " ".join(value.split())  # fold newlines and tabs: the reason is shown to the citizen as one line
    if not text:
        raise ValueError("a vital-interest override needs a reason (it is logged and shown to the citizen)")
    if len(text) > MAX_REASON:
        raise ValueError(f"reason is longer than {MAX_REASON} characters")
    if any(not ch.isprintable() for ch in text):
        raise ValueError("reason contains control characters")
    return text


class _Body(BaseModel):
    # hide_input_in_errors: validation messages are returned and logged; they must not echo a BSN.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ClosedQuestionRequest(_Body):
    """The closed question (gesloten vraag) as JSON; the inputs of SPEC §7."""

    bsn: str | None = None
    holder_ura: str | None = None
    holder_facility_type: str | None = None
    data_category: str | None = Field(
        None, description="Mitz category (GGC002, GGC012, GGC013) or an NVI data category (e.g. MedicationRequest)"
    )
    requester_ura: str | None = None
    requester_facility_type: str | None = None
    professional_id: str | None = Field(None, description="UZI/Dezi number of the responsible professional")
    professional_role: str | None = Field(None, description="UZI/Dezi role code, e.g. 01.015")
    purpose_of_use: str | None = Field(None, description="TREAT or COC")
    mandated: bool | None = None
    vital_interest_reason: str | None = Field(
        None,
        description="Ask for a vital-interest override of an EHDS primary-use objection; logged, shown to the citizen",
    )

    @field_validator("vital_interest_reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return check_reason(value)


class HolderRef(_Body):
    ura: str
    facility_type: str


class OpenQuestionRequest(_Body):
    """The open question: which holders may share which categories with this requester."""

    bsn: str
    requester_ura: str | None = Field(None, description="default: the calling organisation")
    requester_facility_type: str | None = Field(None, description="default: from the network topology")
    holders: list[HolderRef] | None = Field(
        None, max_length=500, description="holders to evaluate (e.g. from the NVI); default: every participant"
    )
    data_categories: list[DataCategory] | None = Field(None, max_length=3)
    purpose_of_use: str = "TREAT"
    professional_id: str | None = None
    professional_role: str | None = None


class ChoiceDraft(_Body):
    """One choice as a citizen (or a provider) states it; the register adds id, version and times."""

    holder: Party
    data_category: DataCategory
    requester: Party
    decision: ChoiceDecision
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    implied: bool = False

    @model_validator(mode="after")
    def _period(self) -> Self:
        if self.valid_from is not None and self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from (validity cannot end before it starts)")
        return self


class ChoicesRequest(_Body):
    """Several choices recorded together (all or nothing). `bsn`, if present, must be the caller's own."""

    bsn: str | None = None
    choices: list[ChoiceDraft] = Field(min_length=1)


class OverrideRequest(_Body):
    """A data holder records that it made data available on vital interest (reason required)."""

    bsn: str
    requester_ura: str | None = None
    requester_facility_type: str | None = None
    data_category: str | None = None
    professional_id: str | None = None
    professional_role: str | None = None
    reason: str

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        checked = check_reason(value)
        assert checked is not None  # check_reason only returns None for None
        return checked
