"""The authorization input model (SPEC §8) and the decision the policy decision point returns.

The input follows the GF Authorization data model of the Nuts Generic Functions IG
(nuts-foundation/nl-generic-functions-ig, input/pagecontent/authorization.md: subject, resource,
action, context, after OpenID AuthZEN). Deliberate differences, each in SPEC §8's favour:

* subject attributes are flat (the IG nests them under ``subject.properties``);
* ``context.mitz_consent`` is the Mitz answer (Permit/Deny/NotApplicable/Indeterminate; only
  Permit means yes, SPEC §7). The IG's boolean is accepted and mapped: true -> Permit,
  false -> Deny.
* ``context.purpose_of_use`` uses the HL7 v3 code TREAT (as in the Mitz closed question); the
  IG example's ``"treatment"`` is mapped to TREAT.

Context fields ldn adds (all optional; a policy that needs one denies with
``missing-input:<field>`` when it is absent):

* ``service``: which API is asked: ``"node-fhir"`` (a node's FHIR API), ``"nvi"`` (national
  referral index), ``"mcsd"`` (addressing directory). Required: it routes to a policy.
* ``now``: evaluation time, RFC 3339; the PDP fills in the current time when absent.
* ``patient_bsn_from_token``: the BSN bound in the access token; ``patient_bsn`` is the BSN the
  request resolved to. Both present and different: ``patient-mismatch``.
* ``referral``: the notified-pull referral the node recorded (owner_ura, allowed_queries,
  restriction_end, status, authorization_base).
* ``ehds_primary_optout``: the patient objected to primary-use exchange (EHDS).
* ``vital_interest``: ``{reason}``, the professional's stated vital interest (override).
* ``mandated_organizations``: URAs that mandated the subject's organisation (mCSD updates).
* ``target_organization_id``: URA of the top-level Organization an mCSD write chains up to.
* ``custodians``: custodian URAs of the NVI records a request registers, reads or deletes.
* ``request_id``, ``traceparent``: for logging only; never part of a decision or cache key.

Validation never echoes values (a BSN must not reach a log): a failure becomes a deny with
``missing-input:<path>`` or ``invalid-input:<path>``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
)

from ldn.core.identifiers import URA, RoleCode, is_valid_bsn

__all__ = [
    "VOLATILE_CONTEXT_FIELDS",
    "Action",
    "AuthzInput",
    "Context",
    "Decision",
    "Explanation",
    "FhirRest",
    "HttpRequest",
    "Referral",
    "Resource",
    "Subject",
    "VitalInterest",
    "validation_reasons",
]

# Context fields that identify a request, not what is asked: left out of cache keys.
VOLATILE_CONTEXT_FIELDS: frozenset[str] = frozenset({"request_id", "traceparent"})

MitzAnswer = Literal["Permit", "Deny", "NotApplicable", "Indeterminate"]

_FHIR_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def _ura(value: str) -> str:
    if not URA.is_valid(value):
        raise ValueError("not a URA (8 digits)")
    return value


def _bsn(value: str) -> str:
    if not is_valid_bsn(value):
        raise ValueError("not a BSN")
    return value


def _role(value: str) -> str:
    if not RoleCode.is_valid(value):
        raise ValueError("not a role code (NN.NNN)")
    return value


def _fhir_type(value: str) -> str:
    if not _FHIR_TYPE.match(value):
        raise ValueError("not a FHIR resource type")
    return value


def _sorted_unique(values: list[str]) -> list[str]:
    # These lists are sets to every policy; one order makes equal inputs hash equal.
    return sorted(set(values))


def _mitz(value: Any) -> Any:
    if value is True:
        return "Permit"
    if value is False:
        return "Deny"
    return value


def _purpose(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "treatment":
        return "TREAT"
    return value


NonEmpty = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"\S")]
Ura = Annotated[str, AfterValidator(_ura)]
Bsn = Annotated[str, AfterValidator(_bsn)]
Role = Annotated[str, AfterValidator(_role)]
FhirType = Annotated[str, AfterValidator(_fhir_type)]
UraSet = Annotated[list[Ura], AfterValidator(_sorted_unique)]
StrSet = Annotated[list[NonEmpty], AfterValidator(_sorted_unique)]
Params = dict[NonEmpty, list[str]]


class _Strict(BaseModel):
    # Unknown fields are refused: a misspelt restricting field (say "ehds_opt_out") must not be
    # silently ignored into an allow.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Subject(_Strict):
    """Who asks: the client system, the professional and their organisation."""

    client_id: NonEmpty
    client_qualifications: StrSet = Field(default_factory=list)
    subject_id: NonEmpty | None = None
    subject_organization_id: Ura
    subject_organization: str | None = None
    subject_role: Annotated[list[Role], AfterValidator(_sorted_unique)] = Field(default_factory=list)
    subject_facility_type: NonEmpty | None = None


class Resource(_Strict):
    """What is asked for: FHIR resource type and, for an instance interaction, its id."""

    type: FhirType
    id: NonEmpty | None = None


class HttpRequest(_Strict):
    """The HTTP request as the enforcement point saw it; path relative to the FHIR base."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    path: NonEmpty
    protocol: str | None = None
    query_params: Params = Field(default_factory=dict)


class FhirRest(_Strict):
    """Parsed FHIR REST request (Nuts IG action.fhir_rest)."""

    interaction_type: NonEmpty
    operation: NonEmpty | None = None
    capability_checked: bool | None = None
    search_params: Params = Field(default_factory=dict)
    include: list[NonEmpty] = Field(default_factory=list)
    revinclude: list[NonEmpty] = Field(default_factory=list)


class Action(_Strict):
    """The operation: connection type (HL7 endpoint-connection-type), request, FHIR parse."""

    connection_type_code: NonEmpty
    name: NonEmpty | None = None
    request: HttpRequest
    fhir_rest: FhirRest | None = None


class Referral(_Strict):
    """A notified-pull referral as recorded from the notification Task (SPEC §9)."""

    owner_ura: Ura
    allowed_queries: list[NonEmpty]
    restriction_end: AwareDatetime
    status: NonEmpty
    authorization_base: NonEmpty | None = None

    @field_serializer("restriction_end")
    def _rfc3339(self, value: datetime) -> str:
        return _utc_rfc3339(value)


class VitalInterest(_Strict):
    """The professional's stated vital interest, for the EHDS opt-out override."""

    reason: str


class Context(_Strict):
    """Everything else the decision needs (SPEC §8 plus the fields in the module docstring)."""

    service: NonEmpty
    data_holder_organization_id: Ura
    data_holder_facility_type: NonEmpty | None = None
    patient_bsn: Bsn | None = None
    patient_bsn_from_token: Bsn | None = None
    patient_id: NonEmpty | None = None
    mitz_consent: Annotated[MitzAnswer | None, BeforeValidator(_mitz)] = None
    purpose_of_use: Annotated[NonEmpty | None, BeforeValidator(_purpose)] = None
    now: AwareDatetime | None = None
    referral: Referral | None = None
    ehds_primary_optout: bool | None = None
    vital_interest: VitalInterest | None = None
    mandated_organizations: UraSet = Field(default_factory=list)
    target_organization_id: Ura | None = None
    custodians: UraSet = Field(default_factory=list)
    request_id: str | None = None
    traceparent: str | None = None

    @field_serializer("now")
    def _rfc3339(self, value: datetime | None) -> str | None:
        return None if value is None else _utc_rfc3339(value)


class AuthzInput(_Strict):
    """The full policy input: ``data.ldn.authz.decision`` is evaluated against this."""

    subject: Subject
    resource: Resource
    action: Action
    context: Context

    def to_policy_input(self) -> dict[str, Any]:
        """The JSON document handed to the policies (None fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


def _utc_rfc3339(value: datetime) -> str:
    # Numeric offset, never "Z": rego-cpp's time.parse_rfc3339_ns rejects the Z designator.
    return value.astimezone(UTC).isoformat()


def validation_reasons(error: ValidationError) -> list[str]:
    """Deny reasons for a validation failure: field paths only, never the offending values."""
    reasons: set[str] = set()
    for item in error.errors(include_input=False, include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "input"
        kind = "missing-input" if item["type"] == "missing" else "invalid-input"
        reasons.add(f"{kind}:{path}")
    return sorted(reasons)


class Decision(BaseModel):
    """A policy decision. Only ``allow`` decides; everything else explains and feeds the logs."""

    model_config = ConfigDict(frozen=True)

    allow: bool
    reasons: list[str]
    allowed_categories: list[str] = Field(default_factory=list)
    allowed_queries: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    policy_release: str
    rules_matched: list[str] = Field(default_factory=list)
    policy: str | None = None
    agreements: list[str] = Field(default_factory=list)

    @classmethod
    def deny(cls, reasons: list[str], policy_release: str) -> Decision:
        return cls(allow=False, reasons=sorted(set(reasons)), policy_release=policy_release)

    def has_reason(self, code: str) -> bool:
        """True when a reason equals ``code`` or is ``code:<detail>``."""
        return any(r == code or r.startswith(code + ":") for r in self.reasons)


class Explanation(BaseModel):
    """A decision plus every policy rule that evaluated to true, as dotted paths."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    true_rules: list[str]
