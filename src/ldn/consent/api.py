"""HTTP routes of the consent service. Thin: check the caller and the request, call the service
layer (`register.ConsentRegister`, `notifications.Subscriptions`), shape the answer.

Who may do what (see docs/consent.md):
- closed question (JSON and SOAP/XACML), open question, override log: scope `consent:read`. The
  closed question and an override are the data holder's: the holder in the question must be the
  calling organisation (national services and the operator, `consent:admin`, may ask for any).
  The open question is the requester's: the requester must be the calling organisation.
- FHIR Consent: search by `consent:read` (only choices the caller recorded), `citizen` (own BSN)
  or `consent:admin`; create/update/delete of provider-recorded choices (implied consent) by
  `consent:admin`, or by `consent:read` with a professional in the token and only about data the
  caller holds (holder = own URA).
- FHIR Subscription: `consent:subscribe` (own subscriptions; the operator may end any).
- /citizen/...: scope `citizen`; the BSN is the logged-in citizen's, never another's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from ldn.auth.resource_server import Caller, require_caller
from ldn.consent.categories import FACILITY_TYPES, DataCategory
from ldn.consent.decision import ClosedQuestion, Decision
from ldn.consent.fhir import ConsentFhirError, choices_from_fhir, to_fhir_json
from ldn.consent.model import ChoiceSource, Party
from ldn.consent.notifications import Subscriptions
from ldn.consent.register import Actor, ConsentRegister
from ldn.consent.schemas import (
    ChoiceDraft,
    ChoicesRequest,
    ClosedQuestionRequest,
    OpenQuestionRequest,
    OverrideRequest,
)
from ldn.consent.subscriptions import parse_subscription
from ldn.consent.xacml import XacmlError, parse_query, render_fault, render_response
from ldn.core.errors import BadRequest, Forbidden, OAuthError
from ldn.core.fhir import FhirResponse, bundle_searchset, read_json_body, read_resource
from ldn.core.identifiers import BSN, OID_BSN, SYSTEM_BSN, URA, IdentifierError, RoleCode, UziNumber
from ldn.core.service import ServiceContext

__all__ = ["SOAP_MEDIA_TYPE", "SoapFault", "build_router", "soap_fault_response"]

SOAP_MEDIA_TYPE = "application/soap+xml"
ADMIN = "consent:admin"
READ = "consent:read"
SUBSCRIBE = "consent:subscribe"
CITIZEN = "citizen"
_CHOICE_ID = re.compile(r"\A[A-Za-z0-9\-.]{1,64}\Z")
_IF_MATCH = re.compile(r'\A(?:W/)?"([0-9]{1,9})"\Z')

_XACML_STATUS = {
    "too-large": 413,
    "unsupported-media-type": 415,
    "invalid_token": 401,
    "invalid_dpop_proof": 401,
    "insufficient_scope": 403,
    "not-the-holder": 403,
    "patient-mismatch": 403,
}


class SoapFault(Exception):
    """An error on the SOAP endpoint: answered as a SOAP 1.2 Fault, never as JSON."""

    def __init__(self, error: XacmlError, *, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.status = status or _XACML_STATUS.get(error.code, 400)
        self.headers = headers or {}


def soap_fault_response(exc: SoapFault) -> Response:
    return Response(
        render_fault(exc.error),
        status_code=exc.status,
        media_type=f"{SOAP_MEDIA_TYPE}; charset=utf-8",
        headers=exc.headers,
    )


_xacml_caller = require_caller(READ)


async def soap_caller(request: Request) -> Caller:
    """`require_caller("consent:read")`, with its refusals turned into SOAP faults."""
    try:
        return await _xacml_caller(request)
    except OAuthError as exc:
        raise SoapFault(
            XacmlError(exc.error, exc.description), status=exc.status, headers=exc.response_headers()
        ) from None


def _need_any(caller: Caller, *scopes: str) -> None:
    if not any(caller.has_scope(s) for s in scopes):
        raise OAuthError(
            "insufficient_scope",
            f"token needs one of the scopes: {' '.join(scopes)}",
            scheme="Bearer",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{" ".join(scopes)}"'},
        )


def _actor(caller: Caller) -> Actor:
    if caller.citizen_bsn is not None and caller.has_scope(CITIZEN):
        return Actor(recorded_by="citizen", client_id=caller.client_id, caller=caller)
    return Actor(
        recorded_by=caller.organization_ura,
        client_id=caller.client_id,
        organization_ura=caller.organization_ura,
        user_id=caller.user_id,
        user_role=caller.user_role,
        caller=caller,
    )


def _check_patient_binding(caller: Caller, bsn: str | None) -> None:
    """A token bound to one patient (Caller.patient) may not be used to ask about another."""
    if caller.patient is not None and bsn is not None and bsn != caller.patient:
        raise Forbidden("the access token is bound to another patient", details_code="patient-mismatch")


def _citizen_bsn(caller: Caller, claimed: str | None = None) -> str:
    """The logged-in citizen's BSN; a request about any other BSN is refused (403)."""
    own = caller.citizen_bsn
    if not own:
        raise Forbidden("this API is for a logged-in citizen", details_code="not-a-citizen")
    if claimed is not None and claimed != own:
        raise Forbidden("a citizen may only see and change their own choices", details_code="not-own-bsn")
    return own


def _parse_bsn(value: object, where: str) -> str:
    try:
        return BSN.parse(value).value
    except IdentifierError as exc:
        raise BadRequest(f"{where}: {exc}", code="value", expression=[where]) from None


def _patient_identifier(request: Request, *, allowed: frozenset[str] = frozenset({"patient:identifier"})) -> str:
    """The BSN of a `patient:identifier=<bsn system>|<bsn>` parameter (exactly one; nothing else)."""
    params = request.query_params
    unknown = sorted(set(params.keys()) - allowed - {"_format"})
    if unknown:
        raise BadRequest(f"unsupported parameter(s): {', '.join(unknown)}", code="not-supported")
    values = params.getlist("patient:identifier")
    if len(values) != 1:
        raise BadRequest("exactly one patient:identifier=<bsn system>|<bsn> is required", code="required")
    system, sep, value = values[0].partition("|")
    if not sep or system not in (SYSTEM_BSN, f"urn:oid:{OID_BSN}"):
        raise BadRequest("patient:identifier must use the BSN system", code="value")
    return _parse_bsn(value, "patient:identifier")


def _choice_id(value: str) -> str:
    if not _CHOICE_ID.match(value):
        raise BadRequest("choice id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", code="value")
    return value


def _if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    match = _IF_MATCH.match(header.strip())
    if match is None:
        raise BadRequest('If-Match must be a version ETag such as W/"3"', code="value")
    return int(match.group(1))


def _decision_view(decision: Decision, data_category: str | None) -> dict[str, Any]:
    return {
        "decision": decision.result.value,
        "permitted": decision.permitted,
        "rule": decision.rule,
        "data_category": data_category,
        "matched": [{"id": c.id, "version": c.version, "decision": c.decision.value} for c in decision.matched],
        "specificity": str(decision.specificity) if decision.specificity is not None else None,
        "override": decision.override,
        "missing": list(decision.missing),
        "invalid": list(decision.invalid),
    }


def _choice_response(record: Any, base_url: str, *, status: int) -> FhirResponse:
    choice = record.choice
    return FhirResponse(
        to_fhir_json(choice),
        status_code=status,
        headers={
            "Location": f"{base_url}/Consent/{choice.id}/_history/{choice.version}",
            "ETag": f'W/"{choice.version}"',
        },
    )


def build_router(ctx: ServiceContext, register: ConsentRegister, subscriptions: Subscriptions) -> APIRouter:
    router = APIRouter()
    topology = ctx.topology
    base_url = ctx.base_url.rstrip("/")

    def is_national(ura: str) -> bool:
        try:
            return topology.organization(ura).type == "national-service"
        except KeyError:
            return False

    def check_holder(caller: Caller, holder_ura: str | None, error: Callable[[str], Exception]) -> None:
        # An absent or malformed holder is the decision core's to answer (Indeterminate).
        if holder_ura is None or not URA.is_valid(holder_ura) or holder_ura == caller.organization_ura:
            return
        if caller.has_scope(ADMIN) or is_national(caller.organization_ura):
            return
        raise error("the closed question is asked by the data holder: holder_ura must be your own organisation")

    def forbidden_holder(message: str) -> Exception:
        return Forbidden(message, details_code="not-the-holder")

    def now() -> datetime:
        return datetime.now(UTC)

    # -- closed question ---------------------------------------------------------------------------

    @router.post("/closed-question", tags=["questions"], summary="The closed question (gesloten vraag), JSON")
    async def closed_question(request: Request, caller: Caller = Depends(require_caller(READ))) -> JSONResponse:
        body = ClosedQuestionRequest.model_validate(await read_json_body(request))
        check_holder(caller, body.holder_ura, forbidden_holder)
        _check_patient_binding(caller, body.bsn)
        category = register.normalise_category(body.data_category)
        question = ClosedQuestion(
            bsn=body.bsn,
            holder_ura=body.holder_ura,
            holder_facility_type=body.holder_facility_type,
            data_category=category,
            requester_ura=body.requester_ura,
            requester_facility_type=body.requester_facility_type,
            professional_id=body.professional_id,
            professional_role=body.professional_role,
            purpose_of_use=body.purpose_of_use,
            mandated=body.mandated,
            at=now(),
            vital_interest_override=body.vital_interest_reason is not None,
            override_reason=body.vital_interest_reason,
        )
        decision = await register.closed_question(question, actor=_actor(caller))
        return JSONResponse(_decision_view(decision, category), headers={"Cache-Control": "no-store"})

    @router.post("/xacml", tags=["questions"], summary="The closed question in the Mitz form: SOAP 1.2 + XACML 3.0")
    async def xacml(request: Request, caller: Caller = Depends(soap_caller)) -> Response:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != SOAP_MEDIA_TYPE:
            raise SoapFault(XacmlError("unsupported-media-type", f"content type must be {SOAP_MEDIA_TYPE}"))
        try:
            query = parse_query(await request.body(), at=now())
        except XacmlError as exc:
            raise SoapFault(exc) from None

        def fault(message: str) -> Exception:
            return SoapFault(XacmlError("not-the-holder", message))

        actor = _actor(caller)
        decisions = []
        for item in query.items:
            check_holder(caller, item.question.holder_ura, fault)
            if caller.patient is not None and item.question.bsn not in (None, caller.patient):
                raise SoapFault(XacmlError("patient-mismatch", "the access token is bound to another patient"))
            decisions.append(await register.closed_question(item.question, actor=actor))
        return Response(
            render_response(query, decisions),
            media_type=f"{SOAP_MEDIA_TYPE}; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    # -- open question -----------------------------------------------------------------------------

    @router.post("/open-question", tags=["questions"], summary="The open question: who may share what with me")
    async def open_question(request: Request, caller: Caller = Depends(require_caller(READ))) -> JSONResponse:
        body = OpenQuestionRequest.model_validate(await read_json_body(request))
        bsn = _parse_bsn(body.bsn, "bsn")
        _check_patient_binding(caller, bsn)
        requester = body.requester_ura or caller.organization_ura
        try:
            URA.parse(requester)
        except IdentifierError as exc:
            raise BadRequest(f"requester_ura: {exc}", code="value") from None
        if requester != caller.organization_ura and not (
            caller.has_scope(ADMIN) or is_national(caller.organization_ura)
        ):
            raise Forbidden("the open question is asked by the requester: requester_ura must be your own organisation")
        requester_type = body.requester_facility_type or register.facility_type_of(requester)
        if requester_type is None or requester_type not in FACILITY_TYPES:
            raise BadRequest("requester_facility_type is missing or not a known RoleCodeNL facility type", code="value")
        holders = None
        if body.holders is not None:
            holders = []
            for i, holder in enumerate(body.holders):
                if not URA.is_valid(holder.ura) or holder.facility_type not in FACILITY_TYPES:
                    raise BadRequest(f"holders[{i}]: invalid URA or unknown facility type", code="value")
                holders.append((holder.ura, holder.facility_type))
        for name, value, parser in (
            ("professional_id", body.professional_id, UziNumber),
            ("professional_role", body.professional_role, RoleCode),
        ):
            if value is not None and not parser.is_valid(value):
                raise BadRequest(f"{name} is not valid", code="value")
        answers = await register.open_question(
            bsn=bsn,
            requester_ura=requester,
            requester_facility_type=requester_type,
            holders=holders,
            categories=body.data_categories,
            purpose_of_use=body.purpose_of_use,
            professional_id=body.professional_id,
            professional_role=body.professional_role,
            actor=_actor(caller),
        )
        permitted: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for ura, ftype, category, decision in answers:
            item = {
                "holder_ura": ura,
                "holder_facility_type": ftype,
                "data_category": category.value,
                "decision": decision.result.value,
                "rule": decision.rule,
            }
            (permitted if decision.permitted else refused).append(item)
        return JSONResponse(
            {
                "requester_ura": requester,
                "requester_facility_type": requester_type,
                "permitted": permitted,
                "not_permitted": refused,
            },
            headers={"Cache-Control": "no-store"},
        )

    # -- vital-interest override ----------------------------------------------------------------------

    @router.post("/override", status_code=201, tags=["questions"], summary="Record a vital-interest override")
    async def override(request: Request, caller: Caller = Depends(require_caller(READ))) -> JSONResponse:
        body = OverrideRequest.model_validate(await read_json_body(request))
        bsn = _parse_bsn(body.bsn, "bsn")
        _check_patient_binding(caller, bsn)
        checks = (
            ("requester_ura", body.requester_ura, URA.is_valid),
            ("requester_facility_type", body.requester_facility_type, FACILITY_TYPES.__contains__),
            ("professional_id", body.professional_id, UziNumber.is_valid),
            ("professional_role", body.professional_role, RoleCode.is_valid),
        )
        for name, value, ok in checks:
            if value is not None and not ok(value):
                raise BadRequest(f"{name} is not valid", code="value", expression=[name])
        category = register.normalise_category(body.data_category)
        if category is not None and category not in {c.value for c in DataCategory}:
            raise BadRequest("data_category is not a Mitz or NVI data category", code="value")
        entry = await register.log_override(
            bsn=bsn,
            via="override",
            holder_ura=caller.organization_ura,
            requester_ura=body.requester_ura,
            requester_facility_type=body.requester_facility_type,
            data_category=category,
            professional_id=body.professional_id or caller.user_id,
            professional_role=body.professional_role or caller.user_role,
            reason=body.reason,
            actor=_actor(caller),
        )
        return JSONResponse(entry, status_code=201)

    # -- FHIR Consent ----------------------------------------------------------------------------------

    @router.get("/Consent", tags=["fhir"], summary="Search Consent by patient:identifier")
    async def search_consent(request: Request, caller: Caller = Depends(require_caller())) -> FhirResponse:
        _need_any(caller, READ, ADMIN, CITIZEN)
        bsn = _patient_identifier(request)
        recorded_by: str | None = None
        if caller.has_scope(ADMIN):
            pass
        elif caller.has_scope(CITIZEN) and caller.citizen_bsn is not None:
            _citizen_bsn(caller, bsn)
        else:
            recorded_by = caller.organization_ura  # a provider sees only what it recorded itself
        records = await register.choices(bsn, recorded_by=recorded_by)
        resources = [to_fhir_json(r.choice) for r in records]
        bundle = bundle_searchset(
            resources, base_url=base_url, self_url=f"{base_url}/Consent?{request.url.query}", total=len(resources)
        )
        return FhirResponse(bundle, headers={"Cache-Control": "no-store"})

    def provider_recorder(caller: Caller) -> None:
        _need_any(caller, READ, ADMIN)
        if not caller.has_scope(ADMIN) and not (caller.user_id and caller.user_role):
            raise Forbidden(
                "recording consent on a patient's behalf needs a responsible professional in the token",
                details_code="professional-required",
            )

    async def consent_draft(request: Request, caller: Caller, *, path_id: str | None) -> tuple[str, ChoiceDraft]:
        resource = await read_resource(request, "Consent")
        if path_id is not None and resource.get("id") != path_id:
            raise BadRequest("Consent.id must equal the id in the URL", expression=["Consent.id"])
        prepared = dict(resource)
        prepared.setdefault("id", "new")
        prepared.setdefault("dateTime", now().isoformat())
        try:
            parsed = choices_from_fhir(prepared, source=ChoiceSource.PROVIDER_RECORDED, default_version=1)
        except ConsentFhirError as exc:
            raise BadRequest(str(exc), code="invalid") from None
        if len(parsed) != 1:
            raise BadRequest("one Consent must express exactly one choice (one requester)", code="not-supported")
        choice = parsed[0]
        if choice.source is not ChoiceSource.PROVIDER_RECORDED:
            raise Forbidden("organisations record provider-recorded choices only", details_code="source-not-allowed")
        if not caller.has_scope(ADMIN) and choice.holder != Party.organization(caller.organization_ura):
            raise Forbidden(
                "a provider records choices only about data it holds itself (holder = own URA)",
                details_code="not-the-holder",
            )
        draft = ChoiceDraft(
            holder=choice.holder,
            data_category=choice.data_category,
            requester=choice.requester,
            decision=choice.decision,
            valid_from=choice.valid_from,
            valid_until=choice.valid_until,
            implied=choice.implied,
        )
        return choice.bsn, draft

    @router.post("/Consent", tags=["fhir"], summary="Record a provider-recorded choice (e.g. implied consent)")
    async def create_consent(request: Request, caller: Caller = Depends(require_caller())) -> FhirResponse:
        provider_recorder(caller)
        bsn, draft = await consent_draft(request, caller, path_id=None)
        records = await register.record_choices(
            bsn, [draft], source=ChoiceSource.PROVIDER_RECORDED, actor=_actor(caller)
        )
        return _choice_response(records[0], base_url, status=201 if records[0].created else 200)

    @router.put("/Consent/{choice_id}", tags=["fhir"], summary="New version of a provider-recorded choice")
    async def update_consent(
        choice_id: str, request: Request, caller: Caller = Depends(require_caller())
    ) -> FhirResponse:
        provider_recorder(caller)
        _choice_id(choice_id)
        bsn, draft = await consent_draft(request, caller, path_id=choice_id)
        record = await register.replace_choice(
            choice_id,
            draft,
            bsn=bsn,
            source=ChoiceSource.PROVIDER_RECORDED,
            actor=_actor(caller),
            expected_version=_if_match(request),
        )
        return _choice_response(record, base_url, status=200)

    @router.delete(
        "/Consent/{choice_id}", status_code=204, tags=["fhir"], summary="Withdraw a provider-recorded choice"
    )
    async def delete_consent(choice_id: str, request: Request, caller: Caller = Depends(require_caller())) -> Response:
        provider_recorder(caller)
        _choice_id(choice_id)
        # The register keeps no BSN it could recover: the caller names the patient (checked
        # against the choice; a mismatch answers like an unknown id).
        bsn = _patient_identifier(request)
        await register.withdraw_choice(
            choice_id,
            bsn=bsn,
            actor=_actor(caller),
            allow_any_recorder=caller.has_scope(ADMIN),
            expected_version=_if_match(request),
        )
        return Response(status_code=204)

    # -- FHIR Subscription -----------------------------------------------------------------------------

    @router.post("/Subscription", tags=["fhir"], summary="Subscribe (rest-hook) to a patient's consent changes")
    async def create_subscription(
        request: Request, caller: Caller = Depends(require_caller(SUBSCRIBE))
    ) -> FhirResponse:
        data = await read_json_body(request)
        parsed = parse_subscription(
            data,
            allowed_origins=allowed_hook_origins(ctx, register),
            allow_loopback=register.settings.allow_loopback_hooks,
            now=now(),
        )
        resource = await subscriptions.create(
            parsed, subscriber_ura=caller.organization_ura, client_id=caller.client_id
        )
        return FhirResponse(
            resource, status_code=201, headers={"Location": f"{base_url}/Subscription/{resource['id']}"}
        )

    @router.get("/Subscription/{subscription_id}", tags=["fhir"], summary="Read one of your subscriptions")
    async def read_subscription(
        subscription_id: str, caller: Caller = Depends(require_caller(SUBSCRIBE))
    ) -> FhirResponse:
        resource = await subscriptions.read(subscription_id[:64], subscriber_ura=caller.organization_ura)
        return FhirResponse(resource, headers={"Cache-Control": "no-store"})

    @router.delete("/Subscription/{subscription_id}", status_code=204, tags=["fhir"], summary="End a subscription")
    async def delete_subscription(subscription_id: str, caller: Caller = Depends(require_caller())) -> Response:
        _need_any(caller, SUBSCRIBE, ADMIN)
        owner = None if caller.has_scope(ADMIN) else caller.organization_ura
        await subscriptions.delete(subscription_id[:64], subscriber_ura=owner)
        return Response(status_code=204)

    # -- citizen API -------------------------------------------------------------------------------------

    citizen = require_caller(CITIZEN)

    @router.get("/citizen/choices", tags=["citizen"], summary="My current choices (history=true: every version)")
    async def my_choices(
        history: bool = False, bsn: str | None = None, caller: Caller = Depends(citizen)
    ) -> JSONResponse:
        own = _citizen_bsn(caller, bsn)
        records = await register.choices(own, history=history)
        return JSONResponse({"choices": [r.view() for r in records]}, headers={"Cache-Control": "no-store"})

    @router.post("/citizen/choices", status_code=201, tags=["citizen"], summary="Record choices (all or nothing)")
    async def grant(request: Request, caller: Caller = Depends(citizen)) -> JSONResponse:
        body = ChoicesRequest.model_validate(await read_json_body(request))
        own = _citizen_bsn(caller, body.bsn)
        records = await register.record_choices(own, body.choices, source=ChoiceSource.CITIZEN, actor=_actor(caller))
        return JSONResponse({"choices": [r.view() for r in records]}, status_code=201)

    @router.put("/citizen/choices/{choice_id}", tags=["citizen"], summary="Change one of my choices (new version)")
    async def change(choice_id: str, request: Request, caller: Caller = Depends(citizen)) -> JSONResponse:
        own = _citizen_bsn(caller)
        draft = ChoiceDraft.model_validate(await read_json_body(request))
        record = await register.replace_choice(
            _choice_id(choice_id),
            draft,
            bsn=own,
            source=ChoiceSource.CITIZEN,
            actor=_actor(caller),
            expected_version=_if_match(request),
        )
        return JSONResponse(record.view())

    @router.delete("/citizen/choices/{choice_id}", tags=["citizen"], summary="Withdraw one of my choices")
    async def revoke(choice_id: str, request: Request, caller: Caller = Depends(citizen)) -> JSONResponse:
        own = _citizen_bsn(caller)
        record = await register.withdraw_choice(
            _choice_id(choice_id),
            bsn=own,
            actor=_actor(caller),
            allow_any_recorder=True,
            expected_version=_if_match(request),
        )
        return JSONResponse(record.view())

    @router.get("/citizen/opt-out", tags=["citizen"], summary="My EHDS objections (history=true: every change)")
    async def my_optouts(
        history: bool = False, bsn: str | None = None, caller: Caller = Depends(citizen)
    ) -> JSONResponse:
        own = _citizen_bsn(caller, bsn)
        return JSONResponse(await register.optouts(own, history=history), headers={"Cache-Control": "no-store"})

    @router.post("/citizen/opt-out/{kind}", tags=["citizen"], summary="Object to primary or secondary use")
    async def object_to(kind: str, caller: Caller = Depends(citizen)) -> JSONResponse:
        own = _citizen_bsn(caller)
        return JSONResponse(await register.set_optout(own, kind, objected=True, actor=_actor(caller)))

    @router.delete("/citizen/opt-out/{kind}", tags=["citizen"], summary="Withdraw an objection")
    async def withdraw_objection(kind: str, caller: Caller = Depends(citizen)) -> JSONResponse:
        own = _citizen_bsn(caller)
        return JSONResponse(await register.set_optout(own, kind, objected=False, actor=_actor(caller)))

    @router.get("/citizen/overrides", tags=["citizen"], summary="Vital-interest overrides concerning me")
    async def my_overrides(bsn: str | None = None, caller: Caller = Depends(citizen)) -> JSONResponse:
        own = _citizen_bsn(caller, bsn)
        return JSONResponse({"overrides": await register.overrides(own)}, headers={"Cache-Control": "no-store"})

    return router


def allowed_hook_origins(ctx: ServiceContext, register: ConsentRegister) -> set[str]:
    """Origins a rest-hook may point at: this network's services and nodes, plus configured ones."""
    origins = {ctx.base_url}
    origins.update(ctx.directory.services.values())
    origins.update(node["base"] for node in ctx.directory.nodes.values() if "base" in node)
    origins.update(register.settings.allowed_hook_origins)
    return origins
