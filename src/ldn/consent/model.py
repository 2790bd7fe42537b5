"""Consent choices as recorded by citizens or providers (SPEC §7), validated on the way in.

A `ConsentChoice` is one Mitz-style choice: for patient `bsn`, may data of `data_category` held by
`holder` be made available to `requester`, permit or deny, within a validity period. Choices are
validated once, when they are built; the decision core then trusts them and stays allocation-free.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ldn.consent.categories import (
    FACILITY_TYPES,
    PROVIDER_GROUPS,
    DataCategory,
)
from ldn.core.identifiers import URA, RoleCode, UziNumber, is_valid_bsn

__all__ = [
    "ChoiceDecision",
    "ChoiceSource",
    "ConsentChoice",
    "Party",
    "PartyKind",
]

# Validity of identifiers is decided in one place, ldn.core.identifiers (SPEC §2). These thin
# predicates keep the decision core's hot path free of exceptions for the valid case.
_is_ura = URA.is_valid
_is_uzi = UziNumber.is_valid
_is_role = RoleCode.is_valid


def _is_bsn(value: object) -> bool:
    """9 ASCII digits passing the 11-check; all zeros is refused (it passes the sum trivially)."""
    return is_valid_bsn(value)


class PartyKind(StrEnum):
    """How a choice names the holder or the requester, from most to least specific."""

    ORGANIZATION = "ura"  # one named organisation, by URA
    FACILITY_TYPE = "type"  # every organisation of one RoleCodeNL facility type
    PROVIDER_GROUP = "group"  # every organisation in one Mitz consulting-provider group
    ANY = "any"  # everyone


class Party(BaseModel):
    """The holder or requester side of a choice.

    Also accepts the compact string forms `ura:00000659`, `type:Z3`, `group:RPZAC005` and `any`,
    which `str()` produces, so choices read well in fixtures and logs.
    """

    # hide_input_in_errors: validation errors end up in logs and must never carry a BSN.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: PartyKind
    code: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_compact(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data == PartyKind.ANY.value:
                return {"kind": PartyKind.ANY}
            kind, sep, code = data.partition(":")
            if not sep:
                raise ValueError("party must be 'any' or '<ura|type|group>:<code>'")
            return {"kind": kind, "code": code}
        return data

    @model_validator(mode="after")
    def _check_code(self) -> Self:
        kind, code = self.kind, self.code
        if kind is PartyKind.ANY:
            if code is not None:
                raise ValueError("party 'any' takes no code")
        elif kind is PartyKind.ORGANIZATION:
            if not _is_ura(code):
                raise ValueError("URA must be exactly 8 ASCII digits")
        elif kind is PartyKind.FACILITY_TYPE:
            if code not in FACILITY_TYPES:
                raise ValueError("unknown facility type code")
        elif code not in PROVIDER_GROUPS:
            raise ValueError("unknown provider group code")
        return self

    @classmethod
    def organization(cls, ura: str) -> Party:
        return cls(kind=PartyKind.ORGANIZATION, code=ura)

    @classmethod
    def facility_type(cls, code: str) -> Party:
        return cls(kind=PartyKind.FACILITY_TYPE, code=code)

    @classmethod
    def group(cls, code: str) -> Party:
        return cls(kind=PartyKind.PROVIDER_GROUP, code=code)

    @classmethod
    def any(cls) -> Party:
        return cls(kind=PartyKind.ANY)

    def __str__(self) -> str:
        return self.kind.value if self.code is None else f"{self.kind.value}:{self.code}"


class ChoiceDecision(StrEnum):
    PERMIT = "permit"
    DENY = "deny"


class ChoiceSource(StrEnum):
    CITIZEN = "citizen"  # recorded by the citizen (e.g. in a consent app)
    PROVIDER_RECORDED = "provider-recorded"  # recorded by a care provider on the citizen's behalf


class ConsentChoice(BaseModel):
    """One versioned consent choice. Immutable; a change is a new version with the same id.

    Validity is the half-open interval [valid_from, valid_until). Implied consent (veronderstelde
    toestemming) is never assumed by the code: it must be recorded as a choice with implied=True,
    which is always a permit and always provider-recorded.
    """

    # hide_input_in_errors: validation errors end up in logs and must never carry a BSN.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # The FHIR id alphabet, so every choice can travel as a Consent resource.
    id: str = Field(pattern=r"^[A-Za-z0-9\-.]{1,64}$")  # rust regex: $ is end of text
    version: int = Field(ge=1)
    bsn: str
    holder: Party
    data_category: DataCategory
    requester: Party
    decision: ChoiceDecision
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None
    implied: bool = False
    recorded_at: AwareDatetime
    source: ChoiceSource

    @model_validator(mode="after")
    def _check(self) -> Self:
        # Messages never repeat the BSN: validation errors end up in logs.
        if not _is_bsn(self.bsn):
            raise ValueError("bsn must be 9 digits passing the 11-check")
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.implied:
            if self.decision is not ChoiceDecision.PERMIT:
                raise ValueError("implied consent is a permit; an implied deny is meaningless")
            if self.source is not ChoiceSource.PROVIDER_RECORDED:
                raise ValueError("implied consent is recorded by the provider, not the citizen")
        return self

    def __repr__(self) -> str:
        # Keep the BSN out of reprs (tracebacks, debug logs).
        return (
            f"ConsentChoice(id={self.id!r}, version={self.version}, holder={self.holder}, "
            f"data_category={self.data_category.value}, requester={self.requester}, "
            f"decision={self.decision.value})"
        )

    __str__ = __repr__
