"""The pure decision core of the consent function: the closed and the open question (SPEC §7).

`decide` answers the Mitz closed question (gesloten vraag) from a patient's recorded choices and
EHDS opt-out, without I/O. Only `Result.PERMIT` means "you may share".

Rules, in the order they are applied:

1. Input. Every required input must be present and valid: bsn (11-check), holder_ura,
   holder_facility_type (known RoleCodeNL code), data_category (Mitz code), requester_ura,
   requester_facility_type, professional_id (UZI/Dezi, 9 digits), professional_role (NN.NNN),
   purpose_of_use, at (timezone-aware). Otherwise: Indeterminate, naming the missing or invalid
   inputs (never their values). `mandated` is informational and optional.
2. Purpose of use. Mitz consent covers care for the patient: TREAT, and COC, which the Mitz
   implementation guide 3.8.2 §3.2.4.2 also admits as a consultation situation (as cited in public
   Mitz clients). Any other purpose (research, public health, payment, ...) is outside what these
   choices express: NotApplicable, rule "purpose-not-covered". Secondary use is governed by the
   EHDS secondary-use opt-out and data permits elsewhere, never by this answer.
3. EHDS primary-use opt-out. An objection gives Deny, rule "ehds-primary-use-optout", whatever
   the choices say, unless the question carries a vital-interest override with a non-empty
   reason: then Permit with override=True and the reason, which the caller must log and report.
   An override without a reason is refused (Deny). The override lifts the opt-out only; it is
   not a break-the-glass over a citizen's Mitz choices (no rule in SPEC asks for that).
4. Choices. A choice counts when it is about this BSN, is the latest version of its id recorded
   at or before `at` (a later version supersedes it from its recorded_at on, so a withdrawal
   cannot resurrect an older version), and `at` lies in [valid_from, valid_until). It matches
   when holder, requester and data category all match.
5. Specificity. Each matching choice gets the tuple
       (holder level, requester level, category level)
   with party levels ura=3 > facility type=2 > provider group=1 > any=0 and category levels
   exact=1 > ancestor=0, compared lexicographically: holder first (a Mitz choice is made per data
   holder), then requester, then data category. The most specific matching choices win; among
   equally specific ones deny wins. Nothing matching: NotApplicable.
6. Sub-categories. A Permit for a parent category (GGC002) is turned into Deny when any of its
   sub-categories (GGC012, GGC013) would itself be decided Deny for the same question: a holder
   that shares "all treatment data" after a Permit would otherwise also share the results or
   medication the citizen refused. This only ever narrows a Permit.

Specificity levels, rule strings and result names are part of the audit trail: keep them stable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from ldn.consent.categories import (
    ANCESTORS,
    DESCENDANTS,
    FACILITY_TYPES,
    GROUPS_OF_FACILITY_TYPE,
    DataCategory,
)
from ldn.consent.model import (
    ChoiceDecision,
    ConsentChoice,
    PartyKind,
    _is_bsn,
    _is_role,
    _is_ura,
    _is_uzi,
)

__all__ = [
    "COVERED_PURPOSES",
    "ClosedQuestion",
    "Decision",
    "OptOut",
    "Result",
    "Specificity",
    "decide",
    "permitted_for",
]

# Purposes of use the choices speak about (v3 PurposeOfUse codes, see rule 2 above).
COVERED_PURPOSES: frozenset[str] = frozenset({"TREAT", "COC"})

RULE_OPTOUT = "ehds-primary-use-optout"
RULE_OVERRIDE = "ehds-primary-use-optout overridden: vital interest"
RULE_NO_MATCH = "no matching choice"
RULE_PURPOSE = "purpose-not-covered"


class Result(StrEnum):
    """XACML decision values; only PERMIT allows sharing."""

    PERMIT = "Permit"
    DENY = "Deny"
    NOT_APPLICABLE = "NotApplicable"
    INDETERMINATE = "Indeterminate"


class Specificity(NamedTuple):
    """How specific a matching choice is; compared lexicographically (see module docstring)."""

    holder: int
    requester: int
    category: int

    def __str__(self) -> str:
        return f"h{self.holder}r{self.requester}c{self.category}"


_PARTY_LEVEL_ORG = 3
_PARTY_LEVEL_TYPE = 2
_PARTY_LEVEL_GROUP = 1
_PARTY_LEVEL_ANY = 0
_NO_MATCH = -1


@dataclass(frozen=True, slots=True)
class OptOut:
    """A citizen's EHDS objections: to primary-use exchange and, separately, to secondary use."""

    primary: bool = False
    secondary: bool = False


@dataclass(frozen=True, slots=True)
class ClosedQuestion:
    """The closed question as asked by a data holder. Every field may be absent on purpose:
    `decide` turns absent or invalid input into Indeterminate instead of raising."""

    bsn: str | None = None
    holder_ura: str | None = None
    holder_facility_type: str | None = None
    data_category: str | None = None  # Mitz event code, e.g. "GGC002"
    requester_ura: str | None = None
    requester_facility_type: str | None = None
    professional_id: str | None = None  # UZI/Dezi number of the responsible professional
    professional_role: str | None = None  # UZI/Dezi role code, e.g. "01.015"
    purpose_of_use: str | None = None  # e.g. "TREAT"
    mandated: bool | None = None  # the requester acts mandated by the responsible professional
    at: datetime | None = None
    vital_interest_override: bool = False
    override_reason: str | None = None

    def __repr__(self) -> str:
        # The BSN stays out of reprs: questions end up in tracebacks.
        return (
            f"ClosedQuestion(holder_ura={self.holder_ura!r}, data_category={self.data_category!r}, "
            f"requester_ura={self.requester_ura!r}, purpose_of_use={self.purpose_of_use!r}, "
            f"at={self.at!r})"
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer. `rule` says in words what decided; `matched` holds the winning choices.

    `missing` and `invalid` name the inputs that made a decision Indeterminate. When `override`
    is set the caller MUST log the decision with `override_reason` and report it.
    """

    result: Result
    rule: str
    matched: tuple[ConsentChoice, ...] = ()
    specificity: Specificity | None = None
    override: bool = False
    override_reason: str | None = None
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @property
    def permitted(self) -> bool:
        return self.result is Result.PERMIT


# HL7 v3 PurposeOfUse codes are short upper-case words (TREAT, ETREAT, HRESCH, PUBHLTH, ...).
_PURPOSE = re.compile(r"\A[A-Z][A-Z_]{1,31}\Z")
_CATEGORY_BY_CODE: dict[str, DataCategory] = {c.value: c for c in DataCategory}
_CATEGORY_CODES: frozenset[str] = frozenset(_CATEGORY_BY_CODE)


def _is_aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _is_purpose(value: object) -> bool:
    return isinstance(value, str) and _PURPOSE.match(value) is not None


def _professional_ok(q: ClosedQuestion, required: bool) -> bool:
    if q.professional_id is None and q.professional_role is None and not required:
        return True
    return _is_uzi(q.professional_id) and _is_role(q.professional_role)


def _check_inputs(q: ClosedQuestion, *, professional_required: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(missing, invalid) input names, in a fixed order; ((), ()) when all is well."""
    # Fast path (the common case): one chain of checks, no allocation.
    if (
        _is_bsn(q.bsn)
        and _is_ura(q.holder_ura)
        and q.holder_facility_type in FACILITY_TYPES
        and q.data_category in _CATEGORY_CODES
        and _is_ura(q.requester_ura)
        and q.requester_facility_type in FACILITY_TYPES
        and _professional_ok(q, professional_required)
        and _is_purpose(q.purpose_of_use)
        and _is_aware(q.at)
    ):
        return (), ()
    checks: list[tuple[str, object, bool]] = [
        ("bsn", q.bsn, _is_bsn(q.bsn)),
        ("holder_ura", q.holder_ura, _is_ura(q.holder_ura)),
        ("holder_facility_type", q.holder_facility_type, q.holder_facility_type in FACILITY_TYPES),
        ("data_category", q.data_category, q.data_category in _CATEGORY_CODES),
        ("requester_ura", q.requester_ura, _is_ura(q.requester_ura)),
        ("requester_facility_type", q.requester_facility_type, q.requester_facility_type in FACILITY_TYPES),
    ]
    if professional_required or q.professional_id is not None:
        checks.append(("professional_id", q.professional_id, _is_uzi(q.professional_id)))
    if professional_required or q.professional_role is not None:
        checks.append(("professional_role", q.professional_role, _is_role(q.professional_role)))
    checks.append(("purpose_of_use", q.purpose_of_use, _is_purpose(q.purpose_of_use)))
    checks.append(("at", q.at, _is_aware(q.at)))
    missing = tuple(name for name, value, _ in checks if value is None or value == "")
    invalid = tuple(name for name, value, ok in checks if not ok and not (value is None or value == ""))
    return missing, invalid


class _Best:
    """Running winner for one target category. Slots keep it cheap; lists are created lazily."""

    __slots__ = ("denies", "permits", "spec")

    def __init__(self) -> None:
        self.spec: tuple[int, int, int] | None = None
        self.permits: list[ConsentChoice] | None = None
        self.denies: list[ConsentChoice] | None = None

    def offer(self, spec: tuple[int, int, int], choice: ConsentChoice) -> None:
        if self.spec is None or spec > self.spec:
            self.spec = spec
            self.permits = None
            self.denies = None
        elif spec < self.spec:
            return
        # Fail closed: anything that is not exactly a permit counts as a deny. `==` rather than
        # `is` so a choice built without validation (model_copy(update=...)) is still read right.
        if choice.decision != ChoiceDecision.PERMIT:
            if self.denies is None:
                self.denies = [choice]
            else:
                self.denies.append(choice)
        elif self.permits is None:
            self.permits = [choice]
        else:
            self.permits.append(choice)

    def decision(self) -> Decision:
        if self.spec is None:
            return _NOT_APPLICABLE
        spec = Specificity(*self.spec)
        if self.denies:
            winners = tuple(self.denies)
            if self.permits:
                rule = f"deny wins on equal specificity {spec}: {_names(winners)}"
            else:
                rule = f"{_names(winners)} (specificity {spec})"
            return Decision(Result.DENY, rule, winners, spec)
        winners = tuple(self.permits or ())
        return Decision(Result.PERMIT, f"{_names(winners)} (specificity {spec})", winners, spec)


def _names(choices: Iterable[ConsentChoice]) -> str:
    return ", ".join(f"choice {c.id} v{c.version} {c.decision!s}" for c in choices)


_NOT_APPLICABLE = Decision(Result.NOT_APPLICABLE, RULE_NO_MATCH)


def _level(kind: PartyKind, code: str | None, ura: str, ftype: str, groups: frozenset[str]) -> int:
    """Party specificity level of a matching party, _NO_MATCH otherwise (see rule 5)."""
    if kind == PartyKind.ANY:
        return _PARTY_LEVEL_ANY
    if kind == PartyKind.ORGANIZATION:
        return _PARTY_LEVEL_ORG if code == ura else _NO_MATCH
    if kind == PartyKind.FACILITY_TYPE:
        return _PARTY_LEVEL_TYPE if code == ftype else _NO_MATCH
    if kind == PartyKind.PROVIDER_GROUP:
        return _PARTY_LEVEL_GROUP if code in groups else _NO_MATCH
    return _NO_MATCH  # unknown kind: matches nothing


def _evaluate(
    bsn: str,
    holder_ura: str,
    holder_type: str,
    category: DataCategory,
    requester_ura: str,
    requester_type: str,
    at: datetime,
    choices: Sequence[ConsentChoice],
) -> Decision:
    """Rules 4-6 for inputs already validated. Hot path: one dict and a few small objects per
    call, specificities as plain tuples until a winner is known."""
    holder_groups = GROUPS_OF_FACILITY_TYPE[holder_type]
    requester_groups = GROUPS_OF_FACILITY_TYPE[requester_type]
    ancestors = ANCESTORS[category]
    children = DESCENDANTS[category]
    own = _Best()
    sub = [(_Best(), child, ANCESTORS[child]) for child in children] if children else None

    # Rule 4, versions: the latest version of each id recorded at or before `at`.
    latest: dict[str, int] | None = None
    if len(choices) > 1:
        latest = {}
        for c in choices:
            if c.recorded_at <= at and c.version > latest.get(c.id, 0):
                latest[c.id] = c.version

    for c in choices:
        if c.bsn != bsn or c.recorded_at > at or at < c.valid_from:
            continue
        until = c.valid_until
        if until is not None and at >= until:
            continue
        if latest is not None and latest.get(c.id) != c.version:
            continue
        holder = c.holder
        h = _level(holder.kind, holder.code, holder_ura, holder_type, holder_groups)
        if h < 0:
            continue
        requester = c.requester
        r = _level(requester.kind, requester.code, requester_ura, requester_type, requester_groups)
        if r < 0:
            continue
        cat = c.data_category
        if cat == category:
            own.offer((h, r, 1), c)
        elif cat in ancestors:
            own.offer((h, r, 0), c)
        if sub is not None:
            for best, child, child_ancestors in sub:
                if cat == child:
                    best.offer((h, r, 1), c)
                elif cat in child_ancestors:
                    best.offer((h, r, 0), c)

    decision = own.decision()
    if decision.result is Result.PERMIT and sub is not None:
        for best, child, _ in sub:
            child_decision = best.decision()
            if child_decision.result is Result.DENY:
                return Decision(
                    Result.DENY,
                    f"sub-category {child.value} denied by {child_decision.rule}",
                    child_decision.matched,
                    child_decision.specificity,
                )
    return decision


def _indeterminate(missing: tuple[str, ...], invalid: tuple[str, ...]) -> Decision:
    parts = []
    if missing:
        parts.append("missing input: " + ", ".join(missing))
    if invalid:
        parts.append("invalid input: " + ", ".join(invalid))
    return Decision(Result.INDETERMINATE, "; ".join(parts), missing=missing, invalid=invalid)


def _optout_decision(q: ClosedQuestion) -> Decision:
    reason = q.override_reason.strip() if q.override_reason else ""
    if q.vital_interest_override and reason:
        return Decision(Result.PERMIT, RULE_OVERRIDE, override=True, override_reason=reason)
    if q.vital_interest_override:
        return Decision(Result.DENY, RULE_OPTOUT + " (override refused: no reason given)")
    return Decision(Result.DENY, RULE_OPTOUT)


def _decide(
    q: ClosedQuestion,
    choices: Sequence[ConsentChoice],
    optout: OptOut | None,
    *,
    professional_required: bool,
) -> Decision:
    missing, invalid = _check_inputs(q, professional_required=professional_required)
    if missing or invalid:
        return _indeterminate(missing, invalid)
    bsn, holder_ura, holder_type = q.bsn, q.holder_ura, q.holder_facility_type
    requester_ura, requester_type = q.requester_ura, q.requester_facility_type
    purpose, at, category = q.purpose_of_use, q.at, _CATEGORY_BY_CODE.get(q.data_category or "")
    # _check_inputs already proved all of these present; this re-check only narrows the types
    # (and stays fail-closed should the two ever drift apart).
    if (
        bsn is None
        or holder_ura is None
        or holder_type is None
        or requester_ura is None
        or requester_type is None
        or purpose is None
        or at is None
        or category is None
    ):
        return _indeterminate(("internal",), ())
    if purpose not in COVERED_PURPOSES:
        return Decision(Result.NOT_APPLICABLE, f"{RULE_PURPOSE}: {purpose}")
    if optout is not None and optout.primary:
        lifted = _optout_decision(q)
        if lifted.override:
            # The override lifts only the EHDS objection, never the citizen's own explicit refusals.
            underlying = _evaluate(bsn, holder_ura, holder_type, category, requester_ura, requester_type, at, choices)
            if underlying.result is Result.DENY:
                return underlying
        return lifted
    return _evaluate(bsn, holder_ura, holder_type, category, requester_ura, requester_type, at, choices)


def decide(
    question: ClosedQuestion,
    choices: Sequence[ConsentChoice],
    optout: OptOut | None = None,
) -> Decision:
    """Answer the closed question from `choices` (pre-filtered per BSN is fine) and `optout`.

    Pure and total: never raises for bad input, never returns Permit when input is missing.
    """
    return _decide(question, choices, optout, professional_required=True)


def permitted_for(
    bsn: str,
    requester_ura: str,
    requester_facility_type: str,
    holders: Iterable[tuple[str, str]],
    choices: Sequence[ConsentChoice],
    optout: OptOut | None,
    at: datetime,
    *,
    categories: Iterable[DataCategory] = tuple(DataCategory),
    purpose_of_use: str = "TREAT",
    professional_id: str | None = None,
    professional_role: str | None = None,
) -> list[tuple[str, DataCategory, Decision]]:
    """The open question: for each (holder URA, holder facility type) and each category, the
    decision a closed question from this requester would get.

    Returns every (holder_ura, category, decision) triple, in input order, so a caller can both
    act on the Permits and log why the rest were not. The professional is optional here (the
    choices never depend on it); when given it is validated like in `decide`. A vital-interest
    override is deliberately not available on the open question.
    """
    cats = tuple(categories)
    out: list[tuple[str, DataCategory, Decision]] = []
    for holder_ura, holder_type in holders:
        for cat in cats:
            q = ClosedQuestion(
                bsn=bsn,
                holder_ura=holder_ura,
                holder_facility_type=holder_type,
                data_category=cat.value,
                requester_ura=requester_ura,
                requester_facility_type=requester_facility_type,
                professional_id=professional_id,
                professional_role=professional_role,
                purpose_of_use=purpose_of_use,
                at=at,
            )
            out.append((holder_ura, cat, _decide(q, choices, optout, professional_required=False)))
    return out
