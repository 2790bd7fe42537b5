"""Policy enforcement point (PEP) in front of a node's FHIR API: decide, then pass or refuse (403).

Per request: the caller (from the token, via ``ldn.auth.resource_server``) and the request become
the policy input (:mod:`ldn.authz.input_builder`), together with

* the patient as the node's own data has it: a named local Patient id is resolved in the node's
  store and must agree with the BSN the request concerns (else ``patient-mismatch``);
* the Mitz closed question, asked of the consent service over HTTP with a national token the node
  obtains with its own credential, once per Mitz data category the request touches (only when
  every answer is Permit is the consent Permit); its EHDS primary-use opt-out and vital-interest
  override reach the policy as ``ehds_primary_optout`` (see the input builder).

The decision comes from the in-process policy decision point through the decision cache, in a
worker thread (rego-cpp evaluation is blocking C code; every worker thread has its own
interpreter). Anything that goes wrong is a deny, never a pass: a consent service that errs or is
slow (``consent-unavailable``), a decision point that errs, failed to load its policies or is
slower than ``decision_timeout_ms`` (``pdp-unavailable``), a patient lookup that fails
(``patient-lookup-failed``), the whole authorization taking longer than ``enforce_timeout``.

A refusal is :class:`AccessDenied`, a ``Forbidden`` (403 OperationOutcome) whose details code
is the decision's main reason and which carries the decision for the audit log. Every decision
(allow or deny) is also left on ``request.state.authz_decision``.

How a service enforces (the node FHIR API does exactly this in its ``authorize_request`` hook)::

    await pep_for(ctx).enforce(
        request, caller, resource_type="Condition", interaction="search-type",
        patient_bsn=bsn, patient_id=None, data_holder_ura=ura, categories=frozenset({"Condition"}),
    )
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio.to_thread
import httpx
from starlette.requests import Request

from ldn.auth.resource_server import Caller
from ldn.authz.input_builder import (
    PURPOSE_TREAT,
    ConsentOutcome,
    bgz_record_types,
    facility_type_of,
    fhir_relative_path,
    node_fhir_input,
    patient_id_of,
)
from ldn.authz.model import AuthzInput, Decision, Explanation
from ldn.authz.pdp import PDP_ERROR, DecisionCache, PolicyDecisionPoint
from ldn.authz.settings import AuthzSettings
from ldn.core.errors import Forbidden, ServiceError
from ldn.core.identifiers import redact_bsns
from ldn.core.logging import request_id_var, trace_var
from ldn.core.service import ServiceContext

__all__ = [
    "CONSENT_UNAVAILABLE",
    "PATIENT_LOOKUP_FAILED",
    "PDP_UNAVAILABLE",
    "PEP_ERROR",
    "VITAL_INTEREST_HEADER",
    "AccessDenied",
    "ConsentAnswer",
    "ConsentClient",
    "ConsentUnavailable",
    "DecisionEngine",
    "PolicyEnforcementPoint",
    "authorize_fhir_request",
    "combine_answers",
    "decision_engine",
    "mitz_categories_for",
    "pep_for",
    "primary_reason",
    "vital_interest_reason_of",
]

logger = logging.getLogger("ldn.authz.pep")

PDP_UNAVAILABLE = "pdp-unavailable"
CONSENT_UNAVAILABLE = "consent-unavailable"
PATIENT_LOOKUP_FAILED = "patient-lookup-failed"
PEP_ERROR = "pep-error"

# A professional states a vital interest (EHDS opt-out override) in this header; the value is the
# reason, percent-encoded UTF-8. The consent service logs it and shows it to the citizen.
VITAL_INTEREST_HEADER = "X-Ldn-Vital-Interest"
MAX_REASON_LENGTH = 1000

# The consent service's rule for a refusal by the EHDS primary-use objection (ldn.consent.decision).
_OPTOUT_RULE = "ehds-primary-use-optout"
_TREATMENT = "GGC002"
_MITZ_ORDER = {"Permit": 0, "NotApplicable": 1, "Indeterminate": 2, "Deny": 3}

# The reason named in a refusal's details code: the first that matches, in this order (the most
# telling for the caller first); otherwise the first reason in sort order.
_REASON_PRIORITY = (
    PDP_UNAVAILABLE,
    CONSENT_UNAVAILABLE,
    PATIENT_LOOKUP_FAILED,
    PEP_ERROR,
    "missing-input",
    "invalid-input",
    "no-applicable-policy",
    "policy-release-mismatch",
    "patient-mismatch",
    "patient-missing",
    "unknown-role",
    "unknown-resource-type",
    "ehds-primary-optout",
    "vital-interest-reason-missing",
    "consent-not-permit",
    "role-not-allowed-category",
)


class ConsentUnavailable(RuntimeError):
    """The consent service could not answer (network, status, body): the request is refused."""


class AccessDenied(Forbidden):
    """The policy said no (403). ``decision`` holds every reason, for the audit log."""

    def __init__(self, decision: Decision) -> None:
        reason = primary_reason(decision)
        shown = ", ".join(decision.reasons[:10]) or reason
        super().__init__(
            redact_bsns(f"access refused by the authorization policy: {shown}")[:1000],
            details_code=reason,
        )
        self.decision = decision


def primary_reason(decision: Decision) -> str:
    """The reason a refusal names first (see ``_REASON_PRIORITY``)."""
    reasons = [r for r in decision.reasons if not r.startswith("allowed-by:")]
    for code in _REASON_PRIORITY:
        for reason in reasons:
            if reason == code or reason.startswith(code + ":"):
                return reason
    return reasons[0] if reasons else "access-denied"


# --- the decision point, shared per process -------------------------------------------------------


class DecisionEngine:
    """A decision point with its cache and worker threads, evaluated off the event loop."""

    def __init__(self, pdp: PolicyDecisionPoint, cache: DecisionCache, *, threads: int = 4) -> None:
        self.pdp = pdp
        self.cache = cache
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ldn-pdp")

    @classmethod
    def load(cls, settings: AuthzSettings) -> DecisionEngine:
        pdp = PolicyDecisionPoint(settings.resolved_policy_dir())  # not strict: a broken set denies all
        cache = DecisionCache(pdp, maxsize=settings.cache_size, ttl_seconds=settings.cache_ttl)
        return cls(pdp, cache, threads=settings.pdp_threads)

    async def decide(self, raw: AuthzInput | Mapping[str, Any], *, timeout: float) -> Decision:
        """The (cached) decision; ``pdp-unavailable`` when the point errs or takes too long."""
        release = self.pdp.policy_release
        future: Future[Decision] | None = None
        try:
            future = self.executor.submit(self.cache.decide, raw)
            decision = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            if future is not None:
                future.cancel()  # still queued behind busy workers: never start it
            logger.warning("authz decision took longer than %.0f ms: denied", timeout * 1000)
            return Decision.deny([PDP_UNAVAILABLE], release)
        except Exception as exc:  # noqa: BLE001 - fail closed
            logger.error("authz decision failed: %s", redact_bsns(exc.__class__.__name__))
            return Decision.deny([PDP_UNAVAILABLE], release)
        if decision.has_reason(PDP_ERROR):
            return Decision.deny([PDP_UNAVAILABLE], decision.policy_release)
        return decision

    async def explain(self, raw: AuthzInput | Mapping[str, Any], *, timeout: float) -> Explanation:
        """Decision and every rule that held (uncached; about 30 ms)."""
        release = self.pdp.policy_release
        try:
            future = self.executor.submit(self.pdp.explain, raw)
            explanation = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except Exception as exc:  # noqa: BLE001 - fail closed, timeouts included
            logger.error("authz explain failed: %s", exc.__class__.__name__)
            return Explanation(decision=Decision.deny([PDP_UNAVAILABLE], release), true_rules=[])
        if explanation.decision.has_reason(PDP_ERROR):
            return Explanation(decision=Decision.deny([PDP_UNAVAILABLE], release), true_rules=[])
        return explanation


_ENGINES: dict[tuple[Path, int, float, int], DecisionEngine] = {}
_ENGINES_LOCK = threading.Lock()


def decision_engine(settings: AuthzSettings | None = None) -> DecisionEngine:
    """The process's engine for the configured policy directory: the embedded network's nodes and
    the authz service share one compiled policy set, one cache and one thread pool."""
    settings = settings or AuthzSettings()
    key = (settings.resolved_policy_dir().resolve(), settings.cache_size, settings.cache_ttl, settings.pdp_threads)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = DecisionEngine.load(settings)
            _ENGINES[key] = engine
        return engine


# --- the consent closed question over HTTP --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentAnswer:
    """One closed-question answer: Permit/Deny/NotApplicable/Indeterminate, its rule, override."""

    result: str
    rule: str
    override: bool


class ConsentClient:
    """Asks the consent service's closed question (``POST /consent/closed-question``) as a node.

    The token (scope ``consent:read`` at the national authorization server) is obtained with the
    node's own credential and cached by the token client until shortly before it expires.
    """

    SCOPE = "consent:read"

    def __init__(self, ctx: ServiceContext, ura: str, *, dpop: bool = True) -> None:
        self.ctx = ctx
        self.ura = ura
        self.dpop = dpop
        self._tokens: Any = None
        self._lock = asyncio.Lock()

    async def _token_client(self) -> Any:
        if self._tokens is None:
            async with self._lock:
                if self._tokens is None:
                    from ldn.auth.client import TokenClient
                    from ldn.auth.settings import AuthSettings
                    from ldn.auth.trust_store import trust_store

                    pki = AuthSettings().resolved_pki_dir(self.ctx.settings.data_dir)
                    store = await anyio.to_thread.run_sync(trust_store, pki, self.ctx.topology)
                    self._tokens = TokenClient(store.credential(self.ura), self.ctx.http.client(), use_dpop=self.dpop)
        return self._tokens

    async def ask(self, question: Mapping[str, Any]) -> ConsentAnswer:
        """One closed question; raises :class:`ConsentUnavailable` unless the service answered."""
        try:
            url = f"{self.ctx.directory.service_url('consent').rstrip('/')}/closed-question"
            endpoint = f"{self.ctx.directory.service_url('auth').rstrip('/')}/token"
            tokens = await self._token_client()
            for attempt in range(2):
                # A token the service no longer accepts (revoked, server restarted) is renewed once.
                token = await tokens.token(endpoint, self.SCOPE, use_cache=attempt == 0)
                response = await self.ctx.http.client().post(
                    url, json=dict(question), headers=dict(token.headers("POST", url))
                )
                if response.status_code != 401:
                    break
        except ConsentUnavailable:
            raise
        except (httpx.HTTPError, LookupError, OSError) as exc:
            raise ConsentUnavailable(f"consent service unreachable: {exc.__class__.__name__}") from None
        except Exception as exc:  # noqa: BLE001 - token errors and the rest: refuse, never pass
            raise ConsentUnavailable(f"consent question failed: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise ConsentUnavailable(f"consent service answered {response.status_code}")
        try:
            body = response.json()
            result, rule, override = body["decision"], body.get("rule") or "", body.get("override") is True
        except (ValueError, KeyError, TypeError):
            raise ConsentUnavailable("consent service answer is not a closed-question answer") from None
        if result not in _MITZ_ORDER or not isinstance(rule, str):
            raise ConsentUnavailable("consent service answer is not a closed-question answer")
        return ConsentAnswer(result, rule, override)

    async def closed_question(self, *, mitz_categories: Iterable[str], question: Mapping[str, Any]) -> ConsentOutcome:
        """Ask for every category (concurrently) and combine: Permit only if all are Permit."""
        categories = sorted(set(mitz_categories)) or [_TREATMENT]
        answers = await asyncio.gather(*(self.ask({**question, "data_category": c}) for c in categories))
        return combine_answers(answers)


def combine_answers(answers: Sequence[ConsentAnswer]) -> ConsentOutcome:
    """The combined consent outcome: the worst answer (Deny > Indeterminate > NotApplicable > Permit)."""
    worst = max(answers, key=lambda a: _MITZ_ORDER[a.result])
    optout = any(
        (a.result == "Deny" and a.rule.startswith(_OPTOUT_RULE)) or (a.result == "Permit" and a.override)
        for a in answers
    )
    return ConsentOutcome(
        answer=worst.result,
        optout=optout,
        override=any(a.override for a in answers),
        rules=tuple(a.rule for a in answers),
    )


def mitz_categories_for(categories: Iterable[str]) -> set[str]:
    """The Mitz categories a request must ask consent for, from its NVI data categories. An
    unknown code asks for treatment data (GGC002), the parent category: the broadest question."""
    from ldn.consent.categories import mitz_category_for_nvi

    out: set[str] = set()
    for code in categories:
        try:
            out.add(mitz_category_for_nvi(code).value)
        except KeyError:
            out.add(_TREATMENT)
    return out or {_TREATMENT}


# --- the enforcement point ------------------------------------------------------------------------

PatientResolver = Callable[[str], Awaitable[str | None]]


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PolicyEnforcementPoint:
    """The PEP of one node (data holder ``ura``); built from the node's ServiceContext."""

    def __init__(
        self,
        ctx: ServiceContext,
        ura: str,
        *,
        settings: AuthzSettings | None = None,
        engine: DecisionEngine | None = None,
        consent: ConsentClient | None = None,
        patient_resolver: PatientResolver | None = None,
    ) -> None:
        self.ctx = ctx
        self.ura = ura
        self.settings = settings or AuthzSettings()
        self.engine = engine or decision_engine(self.settings)
        self.consent = consent or ConsentClient(ctx, ura, dpop=self.settings.consent_dpop)
        self._resolve_patient = patient_resolver or self._node_patient
        self.holder_facility_type = facility_type_of(ctx.topology, ura)

    async def _node_patient(self, patient_id: str) -> str | None:
        from ldn.node.fhir_api import node_fhir_service

        found = await node_fhir_service(self.ctx, self.ura).resolve_patient(("reference", patient_id))
        return found.patient_bsn

    async def enforce(
        self,
        request: Request,
        caller: Caller,
        *,
        resource_type: str,
        interaction: str,
        patient_bsn: str | None,
        patient_id: str | None,
        data_holder_ura: str | None = None,
        resource_id: str | None = None,
        categories: Iterable[str] = (),
        referral: Mapping[str, Any] | None = None,
        vital_interest_reason: str | None = None,
        record_types: Sequence[str] | None = None,
    ) -> Decision:
        """Return the allowing decision, or raise :class:`AccessDenied` (403)."""
        decision = await self.decide(
            request,
            caller,
            resource_type=resource_type,
            interaction=interaction,
            patient_bsn=patient_bsn,
            patient_id=patient_id,
            data_holder_ura=data_holder_ura,
            resource_id=resource_id,
            categories=categories,
            referral=referral,
            vital_interest_reason=vital_interest_reason,
            record_types=record_types,
        )
        if not decision.allow:
            raise AccessDenied(decision)
        return decision

    async def decide(
        self,
        request: Request,
        caller: Caller,
        *,
        resource_type: str,
        interaction: str,
        patient_bsn: str | None,
        patient_id: str | None,
        data_holder_ura: str | None = None,
        resource_id: str | None = None,
        categories: Iterable[str] = (),
        referral: Mapping[str, Any] | None = None,
        vital_interest_reason: str | None = None,
        record_types: Sequence[str] | None = None,
    ) -> Decision:
        """The decision for one request; never raises, never allows on error."""
        stage = PEP_ERROR
        try:
            async with asyncio.timeout(self.settings.enforce_timeout):
                stage = PATIENT_LOOKUP_FAILED
                patient_bsn = await self._patient(patient_bsn, patient_id)
                stage = CONSENT_UNAVAILABLE
                consent = await self._consent(
                    caller, patient_bsn, data_holder_ura or self.ura, categories, referral, vital_interest_reason
                )
                stage = PEP_ERROR
                raw = self._input(
                    request,
                    caller,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    interaction=interaction,
                    data_holder_ura=data_holder_ura or self.ura,
                    patient_bsn=patient_bsn,
                    patient_id=patient_id,
                    consent=consent,
                    referral=referral,
                    vital_interest_reason=vital_interest_reason,
                    record_types=record_types,
                )
                stage = PDP_UNAVAILABLE
                decision = await self.engine.decide(raw, timeout=self.settings.decision_timeout_ms / 1000)
        except _Refused as refused:
            decision = Decision.deny([refused.reason], self.engine.pdp.policy_release)
        except TimeoutError:
            logger.warning("authorization took longer than %.1f s (%s): denied", self.settings.enforce_timeout, stage)
            decision = Decision.deny([stage], self.engine.pdp.policy_release)
        except ConsentUnavailable as exc:
            logger.warning("consent closed question failed, access denied: %s", exc)
            decision = Decision.deny([CONSENT_UNAVAILABLE], self.engine.pdp.policy_release)
        except Exception as exc:  # noqa: BLE001 - fail closed
            logger.error("authorization failed (%s): %s", stage, exc.__class__.__name__)
            decision = Decision.deny([stage], self.engine.pdp.policy_release)
        request.state.authz_decision = decision
        if not decision.allow:
            logger.info(
                "authz deny: policy=%s reasons=%s",
                decision.policy or "-",
                redact_bsns(",".join(decision.reasons))[:500],
            )
        return decision

    async def _patient(self, patient_bsn: str | None, patient_id: str | None) -> str | None:
        """The BSN of the patient, checked against the node's own data when a Patient id is named."""
        if patient_id is None:
            return patient_bsn
        try:
            resolved = await self._resolve_patient(patient_id)
        except ServiceError:
            raise _Refused("invalid-input:context.patient_id") from None
        if patient_bsn is not None and resolved != patient_bsn:
            raise _Refused("patient-mismatch")
        return resolved if resolved is not None else patient_bsn

    async def _consent(
        self,
        caller: Caller,
        patient_bsn: str | None,
        holder_ura: str,
        categories: Iterable[str],
        referral: Mapping[str, Any] | None,
        vital_interest_reason: str | None,
    ) -> ConsentOutcome | None:
        if referral is not None:
            return None  # a referral is its own authorization base: no Mitz question (notified_pull)
        if patient_bsn is None:
            return ConsentOutcome(answer="Indeterminate", rules=("no patient BSN to ask about",))
        question: dict[str, Any] = {
            "bsn": patient_bsn,
            "holder_ura": holder_ura,
            "holder_facility_type": facility_type_of(self.ctx.topology, holder_ura),
            "requester_ura": caller.organization_ura,
            "requester_facility_type": facility_type_of(self.ctx.topology, caller.organization_ura),
            "professional_id": caller.user_id,
            "professional_role": caller.user_role,
            "purpose_of_use": PURPOSE_TREAT,
        }
        if vital_interest_reason:
            question["vital_interest_reason"] = vital_interest_reason
        question = {k: v for k, v in question.items() if v is not None}
        return await self.consent.closed_question(mitz_categories=mitz_categories_for(categories), question=question)

    def _input(
        self,
        request: Request,
        caller: Caller,
        *,
        resource_type: str,
        resource_id: str | None,
        interaction: str,
        data_holder_ura: str,
        patient_bsn: str | None,
        patient_id: str | None,
        consent: ConsentOutcome | None,
        referral: Mapping[str, Any] | None,
        vital_interest_reason: str | None,
        record_types: Sequence[str] | None,
    ) -> dict[str, Any]:
        trace = trace_var.get()
        return node_fhir_input(
            client_id=caller.client_id,
            subject_id=caller.user_id,
            subject_organization_id=caller.organization_ura,
            subject_organization=caller.organization_name,
            subject_role=caller.user_role,
            subject_facility_type=facility_type_of(self.ctx.topology, caller.organization_ura),
            resource_type=resource_type,
            resource_id=resource_id,
            interaction=interaction,
            method=request.method,
            path=fhir_relative_path(request.url.path),
            query_items=list(request.query_params.multi_items()),
            data_holder_ura=data_holder_ura,
            data_holder_facility_type=(
                self.holder_facility_type
                if data_holder_ura == self.ura
                else facility_type_of(self.ctx.topology, data_holder_ura)
            ),
            patient_bsn=patient_bsn,
            patient_bsn_from_token=caller.patient,
            patient_id=patient_id,
            consent=consent,
            referral=referral,
            vital_interest_reason=vital_interest_reason,
            record_types=record_types,
            request_id=request_id_var.get() or None,
            traceparent=trace.header() if trace is not None else None,
        )


_DISABLED = "disabled"


def pep_for(ctx: ServiceContext, settings: AuthzSettings | None = None) -> PolicyEnforcementPoint:
    """The enforcement point of a node service (``node-<URA>``), made on first use."""
    existing = ctx.extras.get("authz_pep")
    if isinstance(existing, PolicyEnforcementPoint):
        return existing
    if not ctx.name.startswith("node-"):
        raise LookupError(f"service {ctx.name} is not a node: it has no FHIR enforcement point")
    pep = PolicyEnforcementPoint(ctx, ctx.name.removeprefix("node-"), settings=settings)
    ctx.extras["authz_pep"] = pep
    return pep


def vital_interest_reason_of(request: Request) -> str | None:
    """The stated vital interest (header ``X-Ldn-Vital-Interest``, percent-encoded UTF-8)."""
    values = request.headers.getlist(VITAL_INTEREST_HEADER)
    if len(values) != 1:
        return None  # absent, or ambiguous: no override
    reason = " ".join(unquote(values[0], errors="replace").split())[:MAX_REASON_LENGTH]
    return reason or None


async def authorize_fhir_request(
    request: Request,
    caller: Caller,
    resource_type: str,
    patient_bsn: str | None,
    *,
    interaction: str,
    resource_id: str | None = None,
    search_params: Mapping[str, Sequence[str]] | None = None,
    categories: Iterable[str] = frozenset(),
    sensitivity: str | None = None,
) -> Decision | None:
    """The node FHIR API's ``authorize_request`` hook body: enforce, or raise AccessDenied (403).

    Returns None only when enforcement is switched off (``LDN_AUTHZ_PEP_ENABLED=false``).
    ``sensitivity`` is not an input of release 1.1.0 of the policies and is not used.
    """
    del sensitivity
    ctx: ServiceContext = request.app.state.ctx
    pep = ctx.extras.get("authz_pep")
    if pep is None:
        settings = AuthzSettings()
        if not settings.pep_enabled:
            logger.warning("authorization enforcement is switched off for %s (LDN_AUTHZ_PEP_ENABLED)", ctx.name)
            ctx.extras["authz_pep"] = _DISABLED
            return None
        pep = pep_for(ctx, settings)
    if not isinstance(pep, PolicyEnforcementPoint):
        return None  # switched off for this node (the warning was logged once)
    categories = frozenset(categories)
    record_types = bgz_record_types(categories) if interaction == "operation" else None
    return await pep.enforce(
        request,
        caller,
        resource_type=resource_type,
        interaction=interaction,
        patient_bsn=patient_bsn,
        patient_id=patient_id_of(resource_type, resource_id, search_params),
        resource_id=resource_id,
        categories=categories,
        vital_interest_reason=vital_interest_reason_of(request),
        record_types=record_types,
    )
