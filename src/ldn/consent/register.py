"""The consent service layer: the register (choices, opt-outs, overrides) and the questions on it.

Rules that live here, not in the routers:
- Choices are append-only. Recording a choice for a scope (holder x requester x data category)
  that the same recorder already has a current, overlapping choice for makes a new version of
  that choice (the latest word wins); otherwise a new choice. Withdrawing writes a `withdrawn`
  version. Nothing is overwritten; only the `superseded` flag of the replaced version flips.
- One request may not hold two choices for the same scope with overlapping validity (400).
- Every change enqueues notifications for the patient's subscriptions in the same transaction
  (transactional outbox), so a committed change is never lost for a subscriber.
- The closed question reads the patient's current state from the per-citizen cache (one indexed
  query on a miss) and the pure core `decide`. A Permit by vital-interest override is written to
  the override log, which the citizen can read.

Audit: `ConsentRegister._audit` is the single place where this service reports audit events,
through `ldn.audit` (catalogue codes 040100 consent.question, 040200 consent.choice.changed,
040300 consent.opt-out.changed, 040400 consent.vital-interest). Events are recorded before the
answer goes out; when the audit log can neither store nor spool them the request fails (503).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ldn.audit import (
    AuditEvent,
    AuditLogger,
    AuditObject,
    AuditUser,
    EventTypes,
    Outcome,
    system_user,
    user_from_caller,
)
from ldn.auth.resource_server import Caller
from ldn.consent import store
from ldn.consent.cache import CitizenState, StateCache
from ldn.consent.categories import NVI_TO_MITZ, DataCategory
from ldn.consent.decision import ClosedQuestion, Decision, OptOut, Result, decide, permitted_for
from ldn.consent.keys import BsnKeys
from ldn.consent.model import ChoiceDecision, ChoiceSource, ConsentChoice, Party
from ldn.consent.schemas import ChoiceDraft
from ldn.consent.settings import ConsentSettings
from ldn.consent.subscriptions import choice_entry, notification_bundle, optout_consent, optout_entry
from ldn.core.errors import BadRequest, Conflict, Gone, NotFound, PreconditionFailed
from ldn.core.identifiers import BSN, URA
from ldn.core.storage import Database
from ldn.core.topology import Topology

__all__ = [
    "TOPOLOGY_FACILITY_TYPES",
    "Actor",
    "ChoiceRecord",
    "ConsentRegister",
    "OptOutKind",
]

logger = logging.getLogger("ldn.consent")

# RoleCodeNL facility type of each organisation type in the topology (for the open question and
# for callers that do not state their own facility type).
TOPOLOGY_FACILITY_TYPES: dict[str, str] = {
    "huisartspraktijk": "Z3",
    "ziekenhuis": "V4",
    "apotheek": "J8",
    "verpleeghuis": "R5",
    "ggz-instelling": "G5",
    "laboratorium": "L1",
}

OptOutKind = str  # "primary" | "secondary"
OPTOUT_KINDS = ("primary", "secondary")
CITIZEN = "citizen"
_MITZ_CODES = frozenset(c.value for c in DataCategory)
_EVENT_TYPES = {
    "consent.question": EventTypes.CONSENT_QUESTION,
    "consent.choice.changed": EventTypes.CONSENT_CHOICE_CHANGED,
    "consent.opt-out.changed": EventTypes.CONSENT_OPT_OUT_CHANGED,
    "consent.vital-interest": EventTypes.CONSENT_VITAL_INTEREST,
}


@dataclass(frozen=True)
class Actor:
    """Who asks or changes something: recorded on every version and named in the audit trail."""

    recorded_by: str  # "citizen" or the organisation's URA
    client_id: str
    organization_ura: str | None = None
    user_id: str | None = None
    user_role: str | None = None
    caller: Caller | None = field(default=None, compare=False, repr=False)

    def audit_user(self) -> AuditUser:
        if self.caller is not None:
            # ldn.audit's CallerLike protocol declares settable attributes; the frozen Caller
            # has read-only ones, which mypy treats as incompatible though they read the same.
            return user_from_caller(cast(Any, self.caller))
        return system_user(self.client_id or "consent", self.organization_ura)


@dataclass(frozen=True)
class ChoiceRecord:
    """A stored version of a choice as the API shows it."""

    choice: ConsentChoice
    status: str  # active | withdrawn
    recorded_by: str
    current: bool = True
    created: bool = False

    def view(self) -> dict[str, Any]:
        c = self.choice
        return {
            "id": c.id,
            "version": c.version,
            "status": self.status,
            "current": self.current,
            "holder": str(c.holder),
            "data_category": c.data_category.value,
            "requester": str(c.requester),
            "decision": c.decision.value,
            "valid_from": c.valid_from.isoformat(),
            "valid_until": c.valid_until.isoformat() if c.valid_until else None,
            "implied": c.implied,
            "source": c.source.value,
            "recorded_by": self.recorded_by,
            "recorded_at": c.recorded_at.isoformat(),
        }


# -- (de)serialising choices without their BSN -------------------------------------------------------


def _body(choice: ConsentChoice) -> str:
    return json.dumps(
        {
            "holder": str(choice.holder),
            "requester": str(choice.requester),
            "data_category": choice.data_category.value,
            "decision": choice.decision.value,
            "valid_from": choice.valid_from.isoformat(),
            "valid_until": choice.valid_until.isoformat() if choice.valid_until else None,
            "implied": choice.implied,
            "source": choice.source.value,
            "recorded_at": choice.recorded_at.isoformat(),
        },
        separators=(",", ":"),
    )


@lru_cache(maxsize=4096)
def _party(compact: str) -> Party:
    # Parties repeat across millions of choices: validate each distinct one once, share the object.
    return Party.model_validate(compact)


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("stored time without timezone")
    return value


def choice_from_row(bsn: str, choice_id: str, version: int, body: str) -> ConsentChoice:
    """Rebuild a stored choice. Rows were validated when written; this is the hot path on a cache
    miss, so it checks types cheaply (enums, aware datetimes, memoised parties) instead of
    running full model validation again."""
    data = json.loads(body)
    until = data.get("valid_until")
    return ConsentChoice.model_construct(
        id=choice_id,
        version=int(version),
        bsn=bsn,
        holder=_party(data["holder"]),
        data_category=DataCategory(data["data_category"]),
        requester=_party(data["requester"]),
        decision=ChoiceDecision(data["decision"]),
        valid_from=_aware(data["valid_from"]),
        valid_until=_aware(until) if until else None,
        implied=bool(data.get("implied", False)),
        recorded_at=_aware(data["recorded_at"]),
        source=ChoiceSource(data["source"]),
    )


def _overlaps(a_from: datetime, a_until: datetime | None, b_from: datetime, b_until: datetime | None) -> bool:
    return (b_until is None or a_from < b_until) and (a_until is None or b_from < a_until)


def _same_scope(a: ConsentChoice, b: ConsentChoice) -> bool:
    return a.holder == b.holder and a.requester == b.requester and a.data_category == b.data_category


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(str(e.get("msg")) for e in exc.errors()[:5])


# -- notifications built inside the change's transaction ----------------------------------------

# A change renders its FHIR entry per subscription, with the BSN that subscription holds (sealed):
# the register itself never needs to recover a BSN to notify.
EntryBuilder = Callable[[str], dict[str, Any]]


@dataclass
class _Changes:
    bsn_hash: str
    entries: list[EntryBuilder] = field(default_factory=list)


class ConsentRegister:
    """Service layer of the consent function (see module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        topology: Topology,
        settings: ConsentSettings,
        keys: BsnKeys,
        base_url: str,
        on_enqueued: Callable[[], None] = lambda: None,
        audit: Callable[[], AuditLogger] | None = None,
    ) -> None:
        self.database = database
        self.topology = topology
        self.settings = settings
        self.keys = keys
        self.base_url = base_url.rstrip("/")
        self.cache = StateCache(settings.cache_size, settings.cache_ttl)
        self.on_enqueued = on_enqueued
        self.audit = audit

    # -- AUDIT HOOK --------------------------------------------------------------------------------

    async def _audit(
        self,
        event: str,
        *,
        actor: Actor,
        bsn: str | None,
        outcome: Outcome = Outcome.SUCCESS,
        categories: Sequence[str] = (),
        counterpart: str | None = None,
        detail: str | None = None,
        checks: Sequence[str] = (),
    ) -> None:
        """The single call site for this service's audit events (see the module docstring)."""
        if self.audit is None:
            return
        patient = (
            () if bsn is None or not BSN.is_valid(bsn) else (AuditObject.patient(bsn, data_categories=categories),)
        )
        record = AuditEvent(
            type=_EVENT_TYPES[event],
            outcome=outcome,
            users=(actor.audit_user(),),
            objects=patient,
            checks=tuple(checks),
            outcome_detail=detail[:500] if detail else None,
            counterpart_ura=counterpart if counterpart is not None and URA.is_valid(counterpart) else None,
        )
        await self.audit().record(record)

    def bsn_hash(self, bsn: str) -> str:
        return self.keys.bsn_hash(bsn)

    # -- reading state ---------------------------------------------------------------------------

    def _load_state_sync(self, session: Session, bsn: str, key: str) -> CitizenState:
        current: list[ConsentChoice] = []
        primary = secondary = False
        for row in store.current_state(session, key):
            if row.row_type == "c":
                if row.status == "active":
                    current.append(choice_from_row(bsn, row.key, row.version, row.body))
            elif row.key == "primary":
                primary = bool(row.objected)
            elif row.key == "secondary":
                secondary = bool(row.objected)
        return CitizenState(tuple(current), OptOut(primary=primary, secondary=secondary))

    async def state(self, bsn: str) -> CitizenState:
        """Current choices and opt-outs of a citizen: from the cache, or one indexed load."""
        key = self.bsn_hash(bsn)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        token = self.cache.token()
        loaded = await self.database.run(self._load_state_sync, bsn, key, readonly=True)
        self.cache.put(key, loaded, token)
        return loaded

    def state_sync(self, bsn: str) -> CitizenState:
        """Synchronous variant for benchmarks and tools (no event loop)."""
        key = self.bsn_hash(bsn)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        token = self.cache.token()
        with self.database.transaction(readonly=True) as session:
            loaded = self._load_state_sync(session, bsn, key)
        self.cache.put(key, loaded, token)
        return loaded

    # -- the closed and the open question ----------------------------------------------------------

    @staticmethod
    def normalise_category(value: str | None) -> str | None:
        """Mitz codes pass unchanged; an NVI data category is mapped to its Mitz category."""
        if value is not None and value in NVI_TO_MITZ:
            return NVI_TO_MITZ[value].value
        return value

    async def closed_question(self, question: ClosedQuestion, *, actor: Actor) -> Decision:
        bsn = question.bsn
        if bsn is not None and BSN.is_valid(bsn):
            state = await self.state(bsn)
            decision = decide(question, state.choices, state.optout)
        else:
            decision = decide(question, ())
        if decision.override and bsn is not None:
            await self.log_override(
                bsn=bsn,
                via="closed-question",
                holder_ura=question.holder_ura or "",
                requester_ura=question.requester_ura,
                requester_facility_type=question.requester_facility_type,
                data_category=question.data_category,
                professional_id=question.professional_id,
                professional_role=question.professional_role,
                reason=decision.override_reason or "",
                actor=actor,
            )
        await self._audit(
            "consent.question",
            actor=actor,
            bsn=bsn,
            outcome=Outcome.ERROR if decision.result is Result.INDETERMINATE else Outcome.SUCCESS,
            categories=[question.data_category] if question.data_category in _MITZ_CODES else [],
            counterpart=question.requester_ura,
            detail=f"{decision.result.value}: {decision.rule}",
            checks=("mitz-consent", "ehds-primary-use-opt-out"),
        )
        return decision

    def closed_question_sync(self, question: ClosedQuestion) -> Decision:
        """The decision without override logging or audit: for benchmarks of the lookup path."""
        if question.bsn is not None and BSN.is_valid(question.bsn):
            state = self.state_sync(question.bsn)
            return decide(question, state.choices, state.optout)
        return decide(question, ())

    def facility_type_of(self, ura: str) -> str | None:
        try:
            org = self.topology.organization(ura)
        except KeyError:
            return None
        return TOPOLOGY_FACILITY_TYPES.get(org.type)

    async def open_question(
        self,
        *,
        bsn: str,
        requester_ura: str,
        requester_facility_type: str,
        holders: Sequence[tuple[str, str]] | None,
        categories: Sequence[DataCategory] | None,
        purpose_of_use: str,
        professional_id: str | None,
        professional_role: str | None,
        actor: Actor,
    ) -> list[tuple[str, str, DataCategory, Decision]]:
        """(holder URA, holder facility type, category, decision) for every holder and category."""
        if holders is None:
            holders = [
                (org.ura, TOPOLOGY_FACILITY_TYPES[org.type])
                for org in self.topology.organizations
                if org.ura != requester_ura and org.type in TOPOLOGY_FACILITY_TYPES
            ]
        state = await self.state(bsn)
        cats = tuple(categories) if categories else tuple(DataCategory)
        answers = permitted_for(
            bsn,
            requester_ura,
            requester_facility_type,
            holders,
            state.choices,
            state.optout,
            datetime.now(UTC),
            categories=cats,
            purpose_of_use=purpose_of_use,
            professional_id=professional_id,
            professional_role=professional_role,
        )
        types = dict(holders)
        out = [(ura, types.get(ura, ""), cat, decision) for ura, cat, decision in answers]
        permits = sum(1 for *_, d in out if d.result is Result.PERMIT)
        await self._audit(
            "consent.question",
            actor=actor,
            bsn=bsn,
            categories=[c.value for c in cats],
            counterpart=requester_ura,
            detail=f"open question: {permits} of {len(out)} holder/category pairs permitted",
            checks=("mitz-consent", "ehds-primary-use-opt-out"),
        )
        return out

    # -- overrides ------------------------------------------------------------------------------------

    async def log_override(
        self,
        *,
        bsn: str,
        via: str,
        holder_ura: str,
        requester_ura: str | None,
        requester_facility_type: str | None,
        data_category: str | None,
        professional_id: str | None,
        professional_role: str | None,
        reason: str,
        actor: Actor,
    ) -> dict[str, Any]:
        entry = {
            "id": str(uuid.uuid4()),
            "bsn_hash": self.bsn_hash(bsn),
            "occurred_at": datetime.now(UTC),
            "via": via,
            "holder_ura": holder_ura,
            "requester_ura": requester_ura,
            "requester_facility_type": requester_facility_type,
            "data_category": data_category,
            "professional_id": professional_id,
            "professional_role": professional_role,
            "reason": reason,
            "recorded_by": actor.client_id[:200],
        }
        await self.database.run(lambda session: store.insert_override(session, **entry))
        await self._audit(
            "consent.vital-interest",
            actor=actor,
            bsn=bsn,
            categories=[data_category] if data_category in _MITZ_CODES else [],
            counterpart=requester_ura,
            detail=f"{via}: {reason}",
        )
        return _override_view(entry)

    async def overrides(self, bsn: str) -> list[dict[str, Any]]:
        rows = await self.database.run(store.overrides_for, self.bsn_hash(bsn), readonly=True)
        return [_override_view(dict(r._mapping)) for r in rows]

    # -- choices: reading ---------------------------------------------------------------------------

    async def choices(self, bsn: str, *, history: bool = False, recorded_by: str | None = None) -> list[ChoiceRecord]:
        key = self.bsn_hash(bsn)

        def load(session: Session) -> list[ChoiceRecord]:
            if history:
                rows = store.choice_history(session, key)
                return [
                    ChoiceRecord(
                        choice_from_row(bsn, r.choice_id, r.version, r.body),
                        r.status,
                        r.recorded_by,
                        current=not r.superseded,
                    )
                    for r in rows
                    if recorded_by is None or r.recorded_by == recorded_by
                ]
            rows = store.current_choices(session, key)
            return [
                ChoiceRecord(choice_from_row(bsn, r.choice_id, r.version, r.body), r.status, r.recorded_by)
                for r in rows
                if r.status == "active" and (recorded_by is None or r.recorded_by == recorded_by)
            ]

        records: list[ChoiceRecord] = await self.database.run(load, readonly=True)
        return sorted(records, key=lambda r: (r.choice.recorded_at, r.choice.id, r.choice.version))

    # -- choices: changing ----------------------------------------------------------------------------

    def _build(
        self,
        bsn: str,
        draft: ChoiceDraft,
        *,
        choice_id: str,
        version: int,
        source: ChoiceSource,
        now: datetime,
    ) -> ConsentChoice:
        try:
            return ConsentChoice(
                id=choice_id,
                version=version,
                bsn=bsn,
                holder=draft.holder,
                data_category=draft.data_category,
                requester=draft.requester,
                decision=draft.decision,
                valid_from=draft.valid_from or now,
                valid_until=draft.valid_until,
                implied=draft.implied,
                recorded_at=now,
                source=source,
            )
        except ValidationError as exc:
            raise BadRequest(f"invalid choice: {_validation_message(exc)}", code="invalid") from None

    @staticmethod
    def check_conflicts(choices: Sequence[ConsentChoice]) -> None:
        """Two choices of one request about the same scope and overlapping periods: a 400."""
        for i, a in enumerate(choices):
            for j in range(i + 1, len(choices)):
                b = choices[j]
                if _same_scope(a, b) and _overlaps(a.valid_from, a.valid_until, b.valid_from, b.valid_until):
                    kind = "duplicate" if a.decision == b.decision else "conflicting"
                    raise BadRequest(
                        f"{kind} choices in one request: items {i} and {j} are both about holder {a.holder}, "
                        f"requester {a.requester}, category {a.data_category.value} for overlapping periods",
                        code="business-rule",
                        details_code="conflicting-choices",
                        expression=[f"choices[{i}]", f"choices[{j}]"],
                    )

    async def record_choices(
        self, bsn: str, drafts: Sequence[ChoiceDraft], *, source: ChoiceSource, actor: Actor
    ) -> list[ChoiceRecord]:
        """Record choices all-or-nothing; each either a new choice or a new version (see module docstring)."""
        if not drafts:
            raise BadRequest("no choices given", code="required")
        if len(drafts) > self.settings.max_choices_per_request:
            raise BadRequest(f"at most {self.settings.max_choices_per_request} choices per request", code="too-long")
        now = datetime.now(UTC)
        candidates = [
            self._build(bsn, d, choice_id=uuid.uuid4().hex, version=1, source=source, now=now) for d in drafts
        ]
        self.check_conflicts(candidates)
        key = self.bsn_hash(bsn)

        def work(session: Session) -> list[ChoiceRecord]:
            existing = [
                (r, choice_from_row(bsn, r.choice_id, r.version, r.body))
                for r in store.current_choices(session, key)
                if r.status == "active" and r.recorded_by == actor.recorded_by
            ]
            changes = _Changes(key)
            out: list[ChoiceRecord] = []
            for candidate in candidates:
                previous = next(
                    (
                        c
                        for _, c in existing
                        if _same_scope(c, candidate)
                        and c.source == candidate.source
                        and _overlaps(c.valid_from, c.valid_until, candidate.valid_from, candidate.valid_until)
                    ),
                    None,
                )
                if previous is not None:
                    if not store.supersede_choice(session, previous.id, previous.version):
                        raise Conflict("the choice was changed concurrently; retry", details_code="concurrent-change")
                    stored = candidate.model_copy(update={"id": previous.id, "version": previous.version + 1})
                else:
                    stored = candidate
                self._insert(session, stored, key, "active", actor)
                out.append(ChoiceRecord(stored, "active", actor.recorded_by, created=previous is None))
                changes.entries.append(self._choice_builder(stored))
            self._enqueue(session, changes, now)
            return out

        records: list[ChoiceRecord] = await self._write(work)
        self._after_change(key)
        for record in records:
            await self._audit_choice(
                bsn, record.choice.id, record.choice.version, actor, "created" if record.created else "new version"
            )
        return records

    async def replace_choice(
        self,
        choice_id: str,
        draft: ChoiceDraft,
        *,
        bsn: str,
        source: ChoiceSource,
        actor: Actor,
        expected_version: int | None = None,
    ) -> ChoiceRecord:
        """A new version of `choice_id` with the content of `draft` (only by its own recorder)."""
        now = datetime.now(UTC)
        key = self.bsn_hash(bsn)

        def work(session: Session) -> ChoiceRecord:
            row = self._own_row(session, choice_id, key, actor, allow_any_recorder=False)
            if expected_version is not None and row.version != expected_version:
                raise PreconditionFailed(
                    f"choice is at version {row.version}, not {expected_version}", details_code="version-mismatch"
                )
            stored = self._build(bsn, draft, choice_id=choice_id, version=row.version + 1, source=source, now=now)
            if not store.supersede_choice(session, choice_id, row.version):
                raise Conflict("the choice was changed concurrently; retry", details_code="concurrent-change")
            self._insert(session, stored, key, "active", actor)
            changes = _Changes(key, [self._choice_builder(stored)])
            self._enqueue(session, changes, now)
            return ChoiceRecord(stored, "active", actor.recorded_by)

        record: ChoiceRecord = await self._write(work)
        self._after_change(key)
        await self._audit_choice(bsn, choice_id, record.choice.version, actor, "new version")
        return record

    async def withdraw_choice(
        self,
        choice_id: str,
        *,
        bsn: str,
        actor: Actor,
        allow_any_recorder: bool,
        expected_version: int | None = None,
    ) -> ChoiceRecord:
        """Write a `withdrawn` version. A citizen may withdraw any choice about them (their word is
        final, also over an implied consent a provider recorded); a provider only its own. The
        BSN is required: the register cannot recover it from a choice, and the audit names it."""
        now = datetime.now(UTC)
        key = self.bsn_hash(bsn)

        def work(session: Session) -> tuple[int, str, str]:
            row = self._own_row(session, choice_id, key, actor, allow_any_recorder=allow_any_recorder)
            if expected_version is not None and row.version != expected_version:
                raise PreconditionFailed(
                    f"choice is at version {row.version}, not {expected_version}", details_code="version-mismatch"
                )
            row_key = str(row.bsn_hash)
            if not store.supersede_choice(session, choice_id, row.version):
                raise Conflict("the choice was changed concurrently; retry", details_code="concurrent-change")
            data = json.loads(row.body)
            data["recorded_at"] = now.isoformat()
            body = json.dumps(data, separators=(",", ":"))
            store.insert_choice(
                session,
                choice_id=choice_id,
                version=row.version + 1,
                bsn_hash=row_key,
                status="withdrawn",
                body=body,
                recorded_at=now,
                recorded_by=actor.recorded_by,
            )
            version = row.version + 1

            def build(subscriber_bsn: str) -> dict[str, Any]:
                choice = choice_from_row(subscriber_bsn, choice_id, version, body)
                return choice_entry(choice, self.base_url, withdrawn=True)

            self._enqueue(session, _Changes(row_key, [build]), now)
            return version, body, row_key

        version, body, row_key = await self._write(work)
        self._after_change(row_key)
        await self._audit_choice(bsn, choice_id, version, actor, "withdrawn")
        return ChoiceRecord(choice_from_row(bsn, choice_id, version, body), "withdrawn", actor.recorded_by)

    def _own_row(self, session: Session, choice_id: str, key: str, actor: Actor, *, allow_any_recorder: bool) -> Any:
        row = store.current_choice(session, choice_id)
        # Someone else's choice answers exactly like a missing one: ids reveal nothing.
        if row is None or row.bsn_hash != key:
            raise NotFound(f"no choice {choice_id}")
        if not allow_any_recorder and row.recorded_by != actor.recorded_by:
            raise NotFound(f"no choice {choice_id}")
        if row.status == "withdrawn":
            raise Gone(f"choice {choice_id} has been withdrawn", details_code="choice-withdrawn")
        return row

    def _insert(self, session: Session, choice: ConsentChoice, key: str, status: str, actor: Actor) -> None:
        store.insert_choice(
            session,
            choice_id=choice.id,
            version=choice.version,
            bsn_hash=key,
            status=status,
            body=_body(choice),
            recorded_at=choice.recorded_at,
            recorded_by=actor.recorded_by,
        )

    def _choice_builder(self, choice: ConsentChoice) -> EntryBuilder:
        def build(subscriber_bsn: str) -> dict[str, Any]:
            return choice_entry(choice.model_copy(update={"bsn": subscriber_bsn}), self.base_url)

        return build

    async def _audit_choice(self, bsn: str, choice_id: str, version: int, actor: Actor, change: str) -> None:
        await self._audit(
            "consent.choice.changed", actor=actor, bsn=bsn, detail=f"choice {choice_id} v{version}: {change}"
        )

    # -- opt-outs -----------------------------------------------------------------------------------

    async def optouts(self, bsn: str, *, history: bool = False) -> dict[str, Any]:
        key = self.bsn_hash(bsn)

        def load(session: Session) -> dict[str, Any]:
            current = {r.kind: r for r in store.current_optouts(session, key)}
            view: dict[str, Any] = {}
            for kind in OPTOUT_KINDS:
                row = current.get(kind)
                view[kind] = {
                    "objected": bool(row.objected) if row else False,
                    "version": int(row.version) if row else 0,
                    "since": _iso(row.recorded_at) if row else None,
                }
            if history:
                view["history"] = [
                    {
                        "kind": r.kind,
                        "version": int(r.version),
                        "objected": bool(r.objected),
                        "recorded_at": _iso(r.recorded_at),
                    }
                    for r in store.optout_history(session, key)
                ]
            return view

        return await self.database.run(load, readonly=True)

    async def set_optout(self, bsn: str, kind: str, *, objected: bool, actor: Actor) -> dict[str, Any]:
        """Object (or withdraw the objection) to primary or secondary use; idempotent."""
        if kind not in OPTOUT_KINDS:
            raise NotFound(f"no opt-out kind {kind!r}; use primary or secondary")
        key = self.bsn_hash(bsn)
        now = datetime.now(UTC)
        resource_id = f"ehds-{kind}-{key[:16]}"

        def work(session: Session) -> tuple[bool, int]:
            current = {r.kind: r for r in store.current_optouts(session, key)}.get(kind)
            if current is not None and bool(current.objected) == objected:
                return False, int(current.version)
            if current is None and not objected:
                return False, 0
            version = 1 if current is None else int(current.version) + 1
            if current is not None and not store.supersede_optout(session, key, kind, int(current.version)):
                raise Conflict("the opt-out was changed concurrently; retry", details_code="concurrent-change")
            store.insert_optout(
                session,
                bsn_hash=key,
                kind=kind,
                version=version,
                objected=objected,
                recorded_at=now,
                recorded_by=actor.recorded_by,
            )

            def build(subscriber_bsn: str) -> dict[str, Any]:
                resource = optout_consent(
                    subscriber_bsn, kind, objected=objected, version=version, recorded_at=now, resource_id=resource_id
                )
                return optout_entry(resource, self.base_url)

            self._enqueue(session, _Changes(key, [build]), now)
            return True, version

        changed, version = await self._write(work)
        if changed:
            self._after_change(key)
            await self._audit(
                "consent.opt-out.changed",
                actor=actor,
                bsn=bsn,
                detail=f"EHDS {kind}-use opt-out v{version}: {'objected' if objected else 'objection withdrawn'}",
            )
        return {"kind": kind, "objected": objected, "version": version, "changed": changed}

    # -- transactions, outbox and cache ---------------------------------------------------------------

    async def _write(self, work: Callable[[Session], Any]) -> Any:
        try:
            return await self.database.run(work)
        except IntegrityError:
            # Two writers raced for the same next version: the unique constraint caught it.
            raise Conflict("the register was changed concurrently; retry", details_code="concurrent-change") from None

    def _enqueue(self, session: Session, changes: _Changes, now: datetime) -> None:
        if not changes.entries:
            return
        for sub in store.live_subscriptions_for(session, changes.bsn_hash, now):
            opened = json.loads(self.keys.open(sub.sealed, "subscription"))
            bsn = opened["bsn"]
            bundle = notification_bundle([build(bsn) for build in changes.entries])
            payload = self.keys.seal(json.dumps(bundle, separators=(",", ":")).encode(), "outbox")
            store.enqueue(session, sub.id, payload, now)

    def _after_change(self, key: str) -> None:
        self.cache.invalidate(key)
        self.on_enqueued()


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; everything is stored in UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _override_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "occurred_at": _iso(row["occurred_at"]),
        "via": row["via"],
        "holder_ura": row["holder_ura"],
        "requester_ura": row.get("requester_ura"),
        "requester_facility_type": row.get("requester_facility_type"),
        "data_category": row.get("data_category"),
        "professional_id": row.get("professional_id"),
        "professional_role": row.get("professional_role"),
        "reason": row["reason"],
    }
