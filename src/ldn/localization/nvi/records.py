"""The localization record (FHIR R4 `List`, profile nl-gf-localization-list), in and out.

A registered List must be exactly the record SPEC §6 and the Generic Functions IG describe: a
custodian extension with the custodian's URA, ``status=current``, ``mode=working``, ``code`` from
the data-category code system, ``subject.identifier`` in the nvi-identifier system,
``source.identifier`` in the oauth-client-id system and ``emptyReason=withheld``. Validation is
closed-world (any element the profile does not use is refused), which also keeps it fast: the
NVI checks thousands of Lists per second, so it does not build a generic FHIR model for each.

What the NVI answers is the same record without ``subject``: the pseudonym is never echoed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ldn.core.errors import BadRequest
from ldn.core.identifiers import SYSTEM_URA, URA, IdentifierError
from ldn.localization.categories import DATA_CATEGORIES, DATA_CATEGORY_SYSTEM, category_coding
from ldn.localization.nvi.store import Record

IG_BASE = "http://minvws.github.io/generiekefuncties-docs"
CUSTODIAN_EXTENSION = f"{IG_BASE}/StructureDefinition/nl-gf-localization-custodian"
LIST_PROFILE = f"{IG_BASE}/StructureDefinition/nl-gf-localization-list"
NVI_IDENTIFIER_SYSTEM = f"{IG_BASE}/NamingSystem/nvi-identifier"
OAUTH_CLIENT_SYSTEM = f"{IG_BASE}/NamingSystem/oauth-client-id"
EMPTY_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/list-empty-reason"

_LIST_KEYS = frozenset(
    {"resourceType", "id", "meta", "extension", "status", "mode", "code", "subject", "source", "emptyReason", "date"}
)
MAX_CLIENT_ID_LENGTH = 255


@dataclass(frozen=True)
class ListRegistration:
    """What a valid registration List says."""

    custodian_ura: str
    category: str
    identifier: str = ""  # the NVI identifier value: handled as a secret, never logged
    source_client_id: str = ""

    def __repr__(self) -> str:
        return f"ListRegistration(custodian={self.custodian_ura}, category={self.category})"


def _bad(message: str, where: str, *, code: str = "invalid", details: str | None = None) -> BadRequest:
    return BadRequest(message, code=code, expression=[where], details_code=details)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object", where, code="structure")
    return value


def _only(value: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(value) - allowed)
    if extra:
        raise _bad(f"{where}.{extra[0][:40]} is not allowed in a localization record", where, code="structure")


def _identifier(value: Any, where: str, system: str) -> str:
    identifier = _object(value, where)
    _only(identifier, {"system", "value", "use", "type"}, where)
    if identifier.get("system") != system:
        raise _bad(f"{where}.system must be {system}", f"{where}.system", code="value")
    text = identifier.get("value")
    if not isinstance(text, str) or not text:
        raise _bad(f"{where}.value must be a non-empty string", f"{where}.value", code="required")
    return text


def _single_coding(value: Any, where: str, system: str) -> str:
    concept = _object(value, where)
    _only(concept, {"coding", "text"}, where)
    codings = concept.get("coding")
    if not isinstance(codings, list) or len(codings) != 1:
        raise _bad(f"{where}.coding must hold exactly one coding", f"{where}.coding", code="structure")
    coding = _object(codings[0], f"{where}.coding[0]")
    _only(coding, {"system", "code", "display", "version"}, f"{where}.coding[0]")
    if coding.get("system") != system:
        raise _bad(f"{where}.coding[0].system must be {system}", f"{where}.coding[0].system", code="code-invalid")
    code = coding.get("code")
    if not isinstance(code, str) or not code:
        raise _bad(f"{where}.coding[0].code is missing", f"{where}.coding[0].code", code="required")
    return code


def parse_registration_list(resource: Any, where: str = "List") -> ListRegistration:
    """Validate a List for registration; `BadRequest` naming the element on any deviation."""
    resource = _object(resource, where)
    if resource.get("resourceType") != "List":
        raise _bad(f"{where}.resourceType must be List", f"{where}.resourceType")
    _only(resource, set(_LIST_KEYS), where)
    if "meta" in resource:
        meta = _object(resource["meta"], f"{where}.meta")
        _only(meta, {"profile"}, f"{where}.meta")
        profiles = meta.get("profile", [])
        if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
            raise _bad(f"{where}.meta.profile must be a list of canonicals", f"{where}.meta.profile", code="structure")
    if resource.get("status") != "current":
        raise _bad(f"{where}.status must be 'current'", f"{where}.status", code="value")
    if resource.get("mode") != "working":
        raise _bad(f"{where}.mode must be 'working'", f"{where}.mode", code="value")

    extensions = resource.get("extension")
    if not isinstance(extensions, list) or not extensions:
        raise _bad(f"{where}.extension must carry the custodian extension", f"{where}.extension", code="required")
    custodian: str | None = None
    for i, raw in enumerate(extensions):
        ext_where = f"{where}.extension[{i}]"
        extension = _object(raw, ext_where)
        if extension.get("url") != CUSTODIAN_EXTENSION:
            raise _bad(f"{ext_where} is not a known extension", f"{ext_where}.url", code="not-supported")
        if custodian is not None:
            raise _bad("only one custodian extension is allowed", ext_where, code="structure")
        _only(extension, {"url", "valueReference"}, ext_where)
        reference = _object(extension.get("valueReference"), f"{ext_where}.valueReference")
        _only(reference, {"identifier", "type", "display"}, f"{ext_where}.valueReference")
        ura_text = _identifier(reference.get("identifier"), f"{ext_where}.valueReference.identifier", SYSTEM_URA)
        try:
            custodian = URA.parse(ura_text).value
        except IdentifierError as exc:
            raise _bad(str(exc), f"{ext_where}.valueReference.identifier.value", code="value") from None
    assert custodian is not None

    code = _single_coding(resource.get("code"), f"{where}.code", DATA_CATEGORY_SYSTEM)
    if code not in DATA_CATEGORIES:
        raise _bad(
            f"unknown data category {code[:64]!r}",
            f"{where}.code",
            code="code-invalid",
            details="unknown-data-category",
        )

    subject = _object(resource.get("subject"), f"{where}.subject")
    _only(subject, {"identifier", "type"}, f"{where}.subject")
    if subject.get("type") not in (None, "Patient"):
        raise _bad(f"{where}.subject.type must be Patient", f"{where}.subject.type", code="value")
    identifier = _identifier(subject.get("identifier"), f"{where}.subject.identifier", NVI_IDENTIFIER_SYSTEM)

    source = _object(resource.get("source"), f"{where}.source")
    _only(source, {"identifier", "type", "display"}, f"{where}.source")
    client_id = _identifier(source.get("identifier"), f"{where}.source.identifier", OAUTH_CLIENT_SYSTEM)
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise _bad(f"{where}.source.identifier.value is too long", f"{where}.source.identifier.value", code="too-long")

    reason = _single_coding(resource.get("emptyReason"), f"{where}.emptyReason", EMPTY_REASON_SYSTEM)
    if reason != "withheld":
        raise _bad(f"{where}.emptyReason must be 'withheld'", f"{where}.emptyReason", code="value")
    return ListRegistration(custodian_ura=custodian, category=code, identifier=identifier, source_client_id=client_id)


def _instant(moment: datetime) -> str:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def render_list(record: Record) -> dict[str, Any]:
    """The stored record as a List, without ``subject`` (the pseudonym is never echoed)."""
    return {
        "resourceType": "List",
        "id": str(record.id),
        "meta": {"profile": [LIST_PROFILE]},
        "extension": [
            {
                "url": CUSTODIAN_EXTENSION,
                "valueReference": {"identifier": {"system": SYSTEM_URA, "value": record.custodian_ura}},
            }
        ],
        "status": "current",
        "mode": "working",
        "code": category_coding(record.category),
        "source": {"identifier": {"system": OAUTH_CLIENT_SYSTEM, "value": record.source_client_id}},
        "date": _instant(record.created_at),
        "emptyReason": {"coding": [{"system": EMPTY_REASON_SYSTEM, "code": "withheld"}]},
    }


def registration_list(custodian_ura: str, category: str, identifier: str, client_id: str) -> dict[str, Any]:
    """A registration List as a client sends it (used by the node-side client and tests)."""
    return {
        "resourceType": "List",
        "meta": {"profile": [LIST_PROFILE]},
        "extension": [
            {
                "url": CUSTODIAN_EXTENSION,
                "valueReference": {"identifier": {"system": SYSTEM_URA, "value": custodian_ura}},
            }
        ],
        "status": "current",
        "mode": "working",
        "code": category_coding(category),
        "subject": {"identifier": {"system": NVI_IDENTIFIER_SYSTEM, "value": identifier}},
        "source": {"identifier": {"system": OAUTH_CLIENT_SYSTEM, "value": client_id}},
        "emptyReason": {"coding": [{"system": EMPTY_REASON_SYSTEM, "code": "withheld"}]},
    }
