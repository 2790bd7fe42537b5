"""ConsentChoice <-> FHIR R4 `Consent` (validated with fhir.resources R4B models).

The shape follows what Mitz itself sends in its Consent-Mitz-Notify 3.8.0 notifications (public
example: nuts-foundation/nuts-knooppunt component/mitz/example/example_notification_bundle.xml):
- `scope` consentscope#patient-privacy;
- `category` the Mitz data category, system http://fhir.nl/otv/CodeSystem/gegevenscategorie
  (ldn adds a second category, LOINC 59284-0 "Patient Consent", the R4 base example binding);
- the data holder as `provision.actor` with role v3-ParticipationType#CST (custodian);
- the consulting-provider group in the extension http://fhir.nl/StructureDefinition/OTV-ProviderCategory
  (system .../raadplegende-zorgaanbiedercategorie, codes RPZACnnn), one extension per group;
- `provision.purpose` ActReason#TREAT, `dateTime` when the choice was recorded.
Where Mitz has no element for something ldn records, ldn adds its own:
- a specific requesting organisation: `provision.actor` role v3-ParticipationType#IRCP
  (information recipient) with a URA identifier;
- a holder or requester named by facility type or group: an actor pointing to a contained
  Organization that carries only that type (and a name, for invariant org-1);
- implied consent and the recording source: extensions under `EXTENSION_BASE`;
- `policyRule` v3-ActCode#OPTIN / #OPTOUT (R4 invariant ppc-1 wants a policy or policyRule);
- `provision.period` for the validity, `id` + `meta.versionId` for choice id and version.
Patients are named by BSN identifier (system http://fhir.nl/fhir/NamingSystem/bsn), not by a
resource reference, so a Consent can be read without the Patient resource at hand.

On import, Mitz notifications express "geen toestemming" as `status=inactive` without a
`provision.type` (same example); `choices_from_fhir` reads that as a deny for that profile only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fhir.resources.R4B.consent import Consent
from pydantic import ValidationError

from ldn.consent.categories import (
    DATA_CATEGORY_DISPLAY,
    DATA_CATEGORY_SYSTEM_OID,
    DATA_CATEGORY_SYSTEM_URI,
    FACILITY_TYPE_SYSTEM_OID,
    FACILITY_TYPE_SYSTEM_URI,
    FACILITY_TYPES,
    PROVIDER_GROUP_SYSTEM_URI,
    PROVIDER_GROUPS,
    DataCategory,
)
from ldn.consent.model import ChoiceDecision, ChoiceSource, ConsentChoice, Party, PartyKind
from ldn.core.errors import LDN_CANONICAL
from ldn.core.identifiers import OID_BSN, OID_URA, SYSTEM_BSN, SYSTEM_URA

__all__ = [
    "EXTENSION_BASE",
    "EXT_IMPLIED",
    "EXT_PROVIDER_CATEGORY",
    "EXT_SOURCE",
    "ConsentFhirError",
    "choices_from_fhir",
    "from_fhir",
    "to_fhir",
    "to_fhir_json",
]

EXTENSION_BASE = f"{LDN_CANONICAL}/StructureDefinition"
EXT_IMPLIED = f"{EXTENSION_BASE}/consent-implied"
EXT_SOURCE = f"{EXTENSION_BASE}/consent-source"
EXT_PROVIDER_CATEGORY = "http://fhir.nl/StructureDefinition/OTV-ProviderCategory"

MITZ_NOTIFY_PROFILE = "http://vzvz.nl/fhir/StructureDefinition/Consent-Mitz-Notify"

_BSN_SYSTEMS = frozenset({SYSTEM_BSN, f"urn:oid:{OID_BSN}"})
_URA_SYSTEMS = frozenset({SYSTEM_URA, f"urn:oid:{OID_URA}"})
_CATEGORY_SYSTEMS = frozenset({DATA_CATEGORY_SYSTEM_URI, f"urn:oid:{DATA_CATEGORY_SYSTEM_OID}"})
_FACILITY_SYSTEMS = frozenset({FACILITY_TYPE_SYSTEM_URI, f"urn:oid:{FACILITY_TYPE_SYSTEM_OID}"})

SYSTEM_CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
SYSTEM_LOINC = "http://loinc.org"
SYSTEM_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SYSTEM_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# Mitz writes the purpose with the pre-R4 URI; ldn writes the same and reads both.
SYSTEM_ACT_REASON_MITZ = "http://hl7.org/fhir/v3/ActReason"
_ACT_REASON_SYSTEMS = frozenset({SYSTEM_ACT_REASON_MITZ, "http://terminology.hl7.org/CodeSystem/v3-ActReason"})

ROLE_HOLDER = "CST"  # custodian: the data holder
ROLE_REQUESTER = "IRCP"  # information recipient: the requesting organisation

_HOLDER_REF = "holder"
_REQUESTER_REF = "requester"


class ConsentFhirError(ValueError):
    """A Consent that does not express one ldn consent choice. Messages never contain a BSN."""


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _instant(value: datetime) -> str:
    return value.isoformat()


def _party_org(party: Party, ref_id: str, role_word: str) -> dict[str, Any]:
    """A contained Organization standing for every organisation of one type or group."""
    assert party.code is not None  # a facility-type or group party always has a code
    if party.kind is PartyKind.FACILITY_TYPE:
        coding = _coding(FACILITY_TYPE_SYSTEM_URI, party.code, FACILITY_TYPES[party.code])
        name = f"{role_word}: {FACILITY_TYPES[party.code]}"
    else:
        coding = _coding(PROVIDER_GROUP_SYSTEM_URI, party.code, PROVIDER_GROUPS[party.code])
        name = f"{role_word}: {PROVIDER_GROUPS[party.code]}"
    return {"resourceType": "Organization", "id": ref_id, "type": [{"coding": [coding]}], "name": name}


def _actor(role: str, reference: dict[str, Any]) -> dict[str, Any]:
    return {"role": {"coding": [_coding(SYSTEM_PARTICIPATION, role)]}, "reference": reference}


def to_fhir_json(choice: ConsentChoice) -> dict[str, Any]:
    """The Consent for `choice` as a JSON-ready dict (already validated against R4B)."""
    return to_fhir(choice).model_dump(mode="json", by_alias=True, exclude_none=True)


def to_fhir(choice: ConsentChoice) -> Consent:
    """The FHIR R4 Consent for `choice`."""
    extensions: list[dict[str, Any]] = [
        {"url": EXT_IMPLIED, "valueBoolean": choice.implied},
        {"url": EXT_SOURCE, "valueCode": choice.source.value},
    ]
    contained: list[dict[str, Any]] = []
    actors: list[dict[str, Any]] = []

    holder = choice.holder
    if holder.kind is PartyKind.ORGANIZATION:
        actors.append(_actor(ROLE_HOLDER, {"identifier": {"system": SYSTEM_URA, "value": holder.code}}))
    elif holder.kind is not PartyKind.ANY:
        contained.append(_party_org(holder, _HOLDER_REF, "Zorgaanbieders van categorie"))
        actors.append(_actor(ROLE_HOLDER, {"reference": f"#{_HOLDER_REF}"}))

    requester = choice.requester
    if requester.kind is PartyKind.ORGANIZATION:
        actors.append(_actor(ROLE_REQUESTER, {"identifier": {"system": SYSTEM_URA, "value": requester.code}}))
    elif requester.kind is PartyKind.PROVIDER_GROUP:
        assert requester.code is not None
        coding = _coding(PROVIDER_GROUP_SYSTEM_URI, requester.code, PROVIDER_GROUPS[requester.code])
        extensions.append({"url": EXT_PROVIDER_CATEGORY, "valueCodeableConcept": {"coding": [coding]}})
    elif requester.kind is PartyKind.FACILITY_TYPE:
        contained.append(_party_org(requester, _REQUESTER_REF, "Raadplegende zorgaanbieders van categorie"))
        actors.append(_actor(ROLE_REQUESTER, {"reference": f"#{_REQUESTER_REF}"}))

    period: dict[str, str] = {"start": _instant(choice.valid_from)}
    if choice.valid_until is not None:
        period["end"] = _instant(choice.valid_until)
    provision: dict[str, Any] = {
        "type": choice.decision.value,
        "period": period,
        "purpose": [_coding(SYSTEM_ACT_REASON_MITZ, "TREAT")],
    }
    if actors:
        provision["actor"] = actors

    category = choice.data_category
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": choice.id,
        "meta": {"versionId": str(choice.version)},
        "extension": extensions,
        "status": "active",
        "scope": {"coding": [_coding(SYSTEM_CONSENT_SCOPE, "patient-privacy")]},
        "category": [
            {"coding": [_coding(DATA_CATEGORY_SYSTEM_URI, category.value, DATA_CATEGORY_DISPLAY[category])]},
            {"coding": [_coding(SYSTEM_LOINC, "59284-0", "Patient Consent")]},
        ],
        "patient": {"identifier": {"system": SYSTEM_BSN, "value": choice.bsn}},
        "dateTime": _instant(choice.recorded_at),
        "policyRule": {
            "coding": [_coding(SYSTEM_ACT_CODE, "OPTIN" if choice.decision is ChoiceDecision.PERMIT else "OPTOUT")]
        },
        "provision": provision,
    }
    if contained:
        resource["contained"] = contained
    return Consent.model_validate(resource)


# ---------------------------------------------------------------------------------------------
# FHIR -> choices


def _as_dict(consent: Consent | Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    try:
        if isinstance(consent, Consent):
            model = consent
        elif isinstance(consent, str | bytes):
            model = Consent.model_validate(json.loads(consent))
        else:
            model = Consent.model_validate(dict(consent))
    except ValidationError:
        # Pydantic messages echo input values (a BSN) and chained causes end up in tracebacks.
        raise ConsentFhirError("not a valid FHIR R4 Consent") from None
    except (ValueError, TypeError) as exc:
        raise ConsentFhirError("not a valid FHIR R4 Consent (bad JSON)") from exc
    out: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


def _aware(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ConsentFhirError(f"{what} is missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConsentFhirError(f"{what} is not a dateTime") from exc
    if parsed.utcoffset() is None:
        raise ConsentFhirError(f"{what} must carry a time and a timezone")
    return parsed


def _codes(concept: Mapping[str, Any] | None, systems: frozenset[str]) -> list[str]:
    if not concept:
        return []
    return [c["code"] for c in concept.get("coding", []) if c.get("system") in systems and "code" in c]


def _resolve(
    reference: Mapping[str, Any],
    contained: Mapping[str, Mapping[str, Any]],
    resources: Mapping[str, Mapping[str, Any]] | None,
) -> Mapping[str, Any] | None:
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    if ref.startswith("#"):
        return contained.get(ref[1:])
    return resources.get(ref) if resources is not None else None


def _identifier_value(identifier: Any, systems: frozenset[str]) -> str | None:
    if isinstance(identifier, Mapping) and identifier.get("system") in systems:
        value = identifier.get("value")
        return value if isinstance(value, str) else None
    return None


def _party_from_org(org: Mapping[str, Any]) -> Party:
    for ident in org.get("identifier", []):
        ura = _identifier_value(ident, _URA_SYSTEMS)
        if ura is not None:
            return Party.organization(ura)
    for concept in org.get("type", []):
        types = _codes(concept, _FACILITY_SYSTEMS)
        if types:
            return Party.facility_type(types[0])
        groups = _codes(concept, frozenset({PROVIDER_GROUP_SYSTEM_URI}))
        if groups:
            return Party.group(groups[0])
    raise ConsentFhirError("actor organisation has neither a URA nor a known type")


def _party_from_actor(
    actor: Mapping[str, Any],
    contained: Mapping[str, Mapping[str, Any]],
    resources: Mapping[str, Mapping[str, Any]] | None,
) -> Party:
    reference = actor.get("reference") or {}
    ura = _identifier_value(reference.get("identifier"), _URA_SYSTEMS)
    if ura is not None:
        return Party.organization(ura)
    target = _resolve(reference, contained, resources)
    if target is None:
        raise ConsentFhirError("actor reference cannot be resolved")
    if target.get("resourceType") != "Organization":
        raise ConsentFhirError("actor must be an Organization")
    return _party_from_org(target)


def choices_from_fhir(
    consent: Consent | Mapping[str, Any] | str | bytes,
    *,
    resources: Mapping[str, Mapping[str, Any]] | None = None,
    source: ChoiceSource | None = None,
    default_version: int | None = None,
) -> list[ConsentChoice]:
    """All choices one Consent expresses: one per requester group when it names several (as Mitz
    notifications do); the ids then get the group code appended (`<id>.<RPZACnnn>`).

    `resources` resolves non-contained references (e.g. a notification Bundle's entries by
    fullUrl). `source` and `default_version` fill in what Mitz does not send; without them a
    Consent lacking the ldn source extension or meta.versionId is refused rather than guessed.
    """
    data = _as_dict(consent)
    try:
        return _choices(data, resources, source, default_version)
    except ValidationError as exc:
        # Only pydantic's messages, never its input echo (hide_input_in_errors is set as well).
        problems = "; ".join(str(e.get("msg")) for e in exc.errors())
        raise ConsentFhirError(f"not a valid consent choice: {problems}") from None


def _choices(
    data: Mapping[str, Any],
    resources: Mapping[str, Mapping[str, Any]] | None,
    source: ChoiceSource | None,
    default_version: int | None,
) -> list[ConsentChoice]:
    consent_id = data.get("id")
    if not isinstance(consent_id, str):
        raise ConsentFhirError("Consent.id is missing")
    version_text = (data.get("meta") or {}).get("versionId")
    if version_text is None:
        if default_version is None:
            raise ConsentFhirError("Consent.meta.versionId is missing")
        version = default_version
    else:
        try:
            version = int(version_text)
        except ValueError as exc:
            raise ConsentFhirError("Consent.meta.versionId must be an integer") from exc

    scope = _codes(data.get("scope"), frozenset({SYSTEM_CONSENT_SCOPE}))
    if scope != ["patient-privacy"]:
        raise ConsentFhirError("Consent.scope must be patient-privacy")

    categories = [code for concept in data.get("category", []) for code in _codes(concept, _CATEGORY_SYSTEMS)]
    if len(categories) != 1:
        raise ConsentFhirError("Consent must carry exactly one Mitz data category")
    try:
        data_category = DataCategory(categories[0])
    except ValueError as exc:
        raise ConsentFhirError("unknown Mitz data category") from exc

    contained = {
        c["id"]: c for c in data.get("contained", []) if isinstance(c, Mapping) and isinstance(c.get("id"), str)
    }
    bsn = _patient_bsn(data.get("patient") or {}, contained, resources)

    extensions = data.get("extension", [])
    implied = False
    recorded_source = source
    groups: list[str] = []
    for ext in extensions:
        url = ext.get("url")
        if url == EXT_IMPLIED:
            implied = ext.get("valueBoolean") is True
        elif url == EXT_SOURCE:
            try:
                recorded_source = ChoiceSource(ext.get("valueCode"))
            except ValueError as exc:
                raise ConsentFhirError("unknown consent source") from exc
        elif url == EXT_PROVIDER_CATEGORY:
            found = _codes(ext.get("valueCodeableConcept"), frozenset({PROVIDER_GROUP_SYSTEM_URI}))
            if len(found) != 1:
                raise ConsentFhirError("OTV-ProviderCategory must carry one provider group code")
            groups.append(found[0])
    if recorded_source is None:
        raise ConsentFhirError("consent source is not stated")

    provision = data.get("provision") or {}
    decision = _decision(data, provision)
    recorded_at = _aware(data.get("dateTime"), "Consent.dateTime")
    period = provision.get("period") or {}
    valid_from = _aware(period["start"], "provision.period.start") if "start" in period else recorded_at
    valid_until = _aware(period["end"], "provision.period.end") if "end" in period else None

    purposes = [p.get("code") for p in provision.get("purpose", []) if p.get("system") in _ACT_REASON_SYSTEMS]
    if any(p != "TREAT" for p in purposes):
        raise ConsentFhirError("only purpose TREAT is supported")
    if provision.get("provision"):
        raise ConsentFhirError("nested provisions are not supported")

    holder = Party.any()
    requesters: list[Party] = []
    for actor in provision.get("actor", []):
        roles = _codes(actor.get("role"), frozenset({SYSTEM_PARTICIPATION}))
        if roles == [ROLE_HOLDER]:
            if holder.kind is not PartyKind.ANY:
                raise ConsentFhirError("more than one data holder")
            holder = _party_from_actor(actor, contained, resources)
        elif roles == [ROLE_REQUESTER]:
            requesters.append(_party_from_actor(actor, contained, resources))
        else:
            raise ConsentFhirError("unsupported provision.actor role")
    requesters.extend(Party.group(g) for g in groups)
    if len(requesters) > 1 and any(r.kind is not PartyKind.PROVIDER_GROUP for r in requesters):
        raise ConsentFhirError("a named requester cannot be combined with other requesters")

    def build(choice_id: str, requester: Party) -> ConsentChoice:
        return ConsentChoice(
            id=choice_id,
            version=version,
            bsn=bsn,
            holder=holder,
            data_category=data_category,
            requester=requester,
            decision=decision,
            valid_from=valid_from,
            valid_until=valid_until,
            implied=implied,
            recorded_at=recorded_at,
            source=recorded_source,
        )

    if not requesters:
        return [build(consent_id, Party.any())]
    if len(requesters) == 1:
        return [build(consent_id, requesters[0])]
    return [build(f"{consent_id}.{r.code}", r) for r in requesters]


def _patient_bsn(
    patient: Mapping[str, Any],
    contained: Mapping[str, Mapping[str, Any]],
    resources: Mapping[str, Mapping[str, Any]] | None,
) -> str:
    bsn = _identifier_value(patient.get("identifier"), _BSN_SYSTEMS)
    if bsn is not None:
        return bsn
    target = _resolve(patient, contained, resources)
    if target is not None and target.get("resourceType") == "Patient":
        for ident in target.get("identifier", []):
            bsn = _identifier_value(ident, _BSN_SYSTEMS)
            if bsn is not None:
                return bsn
    raise ConsentFhirError("Consent.patient carries no BSN")


def _decision(data: Mapping[str, Any], provision: Mapping[str, Any]) -> ChoiceDecision:
    status = data.get("status")
    kind = provision.get("type")
    if status == "active" and kind in ("permit", "deny"):
        return ChoiceDecision(kind)
    profiles = (data.get("meta") or {}).get("profile", [])
    is_mitz = any(isinstance(p, str) and p.split("|", 1)[0] == MITZ_NOTIFY_PROFILE for p in profiles)
    if is_mitz and status == "inactive" and kind is None:
        # Mitz 3.8: "De patiënt verleent geen toestemming" is sent as an inactive Consent.
        return ChoiceDecision.DENY
    raise ConsentFhirError("Consent must be active with provision.type permit or deny")


def from_fhir(
    consent: Consent | Mapping[str, Any] | str | bytes,
    *,
    resources: Mapping[str, Mapping[str, Any]] | None = None,
    source: ChoiceSource | None = None,
    default_version: int | None = None,
) -> ConsentChoice:
    """The one choice a Consent expresses; refuses a Consent that expresses several."""
    choices = choices_from_fhir(consent, resources=resources, source=source, default_version=default_version)
    if len(choices) != 1:
        raise ConsentFhirError("Consent expresses more than one choice; use choices_from_fhir")
    return choices[0]
