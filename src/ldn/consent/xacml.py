"""The Mitz closed question on the wire: SOAP 1.2 + XACML 3.0 in, XACML decision out.

Wire format, as public Mitz clients build it (nuts-foundation/nuts-knooppunt
component/mitz/xacml/xacml.go; bastion365/nl-generic-functions mitz-connector/src/index.js; both
follow the VZVZ "Implementatiehandleiding Open en gesloten autorisatievraag" 3.8.x §3.2.4):

    soap:Envelope (SOAP 1.2)  /soap:Header  wsa:Action XACMLAuthorizationDecisionQueryRequest,
                                            wsa:MessageID, wsa:To, wsa:ReplyTo
                              /soap:Body/xacml-samlp:XACMLAuthzDecisionQuery
                                  (urn:oasis:names:tc:xacml:3.0:profile:saml2.0:v2:schema:protocol:wd-14)
                                  /xacml:Request (urn:oasis:names:tc:xacml:3.0:core:schema:wd-17)
    resource     urn:oasis:names:tc:xacml:2.0:resource:resource-id           II  BSN (root 2.16.840.1.113883.2.4.6.3)
                 urn:ihe:iti:appc:2016:document-entry:healthcare-facility-type-code  CV (2.16.840.1.113883.2.4.15.1060)
                 urn:ihe:iti:appc:2016:author-institution:id                  II  holder URA (root 2.16.528.1.1007.3.3)
    action (one Attributes element per data category; each gets its own Result)
                 urn:ihe:iti:appc:2016:document-entry:event-code              CV  (2.16.840.1.113883.2.4.3.111.5.10.1)
    access-subject
                 urn:oasis:names:tc:xacml:2.0:subject:role                    CV  (2.16.840.1.113883.2.4.15.111)
                 urn:ihe:iti:xua:2017:subject:provider-identifier             II  UZI (root 2.16.528.1.1007.3.1)
                 urn:nl:otv:names:tc:1.0:subject:mandated                     II  (optional)
                 urn:nl:otv:names:tc:1.0:subject:provider-institution         II  requester URA
                 urn:nl:otv:names:tc:1.0:subject:consulting-healthcare-facility-type-code  CV
    environment  urn:oasis:names:tc:xspa:1.0:subject:purposeofuse             CV  (2.16.840.1.113883.1.11.20448)

AttributeValues carry HL7 V3 elements (DataType urn:hl7-org:v3#II / #CV): `InstanceIdentifier
root= extension=` and `CodedValue code= codeSystem=`. The generic XACML ids the brief mentioned
(1.0 resource-id, xspa organization-id, APPC consulting facility type) are read as aliases.

Mitz answers (same sources: mitz-connector reads /soap:Envelope/soap:Body/xacml:Response/
xacml:Result/xacml:Decision after checking the wsa:Action below) with a bare XACML `Response` in
the SOAP Body, one `Result` per action, echoing the attributes marked IncludeInResult. That is
`render_response(style="mitz")`, the default. `style="saml"` wraps the same Response in the
SAML 2.0 profile of XACML (samlp:Response / saml:Assertion / XACMLAuthzDecisionStatement).
`parse_response` reads both.

Hardening: input is capped at MAX_MESSAGE_BYTES, must be UTF-8, and any DOCTYPE or ENTITY
declaration is refused before parsing; the lxml parser runs without entity resolution, DTD
loading or network access. Every refusal is an `XacmlError(code, message)`; messages never carry
request values (a BSN).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from lxml import etree

from ldn.consent.categories import DATA_CATEGORY_SYSTEM_OID, FACILITY_TYPE_SYSTEM_OID
from ldn.consent.decision import ClosedQuestion, Decision, Result

__all__ = [
    "MAX_ACTIONS",
    "MAX_MESSAGE_BYTES",
    "REQUEST_ACTION",
    "RESPONSE_ACTION",
    "EchoAttribute",
    "QueryItem",
    "ResponseResult",
    "XacmlError",
    "XacmlQuery",
    "build_query",
    "parse_query",
    "parse_response",
    "render_fault",
    "render_response",
]

MAX_MESSAGE_BYTES = 256 * 1024  # a closed question is ~5 KB; anything near this is not one
MAX_ACTIONS = 16  # data categories asked in one request

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_XACML = "urn:oasis:names:tc:xacml:3.0:core:schema:wd-17"
NS_XACML_SAMLP = "urn:oasis:names:tc:xacml:3.0:profile:saml2.0:v2:schema:protocol:wd-14"
NS_XACML_SAML = "urn:oasis:names:tc:xacml:3.0:profile:saml2.0:v2:schema:assertion:wd-14"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_HL7 = "urn:hl7-org:v3"
_QUERY_NAMESPACES = frozenset(
    {
        NS_XACML_SAMLP,  # what Mitz clients send
        "urn:oasis:names:tc:xacml:3.0:profile:saml2.0:v2:schema:protocol",  # the un-suffixed form
    }
)

REQUEST_ACTION = "XACMLAuthorizationDecisionQueryRequest"
# The action mitz-connector insists on in Mitz's answer.
RESPONSE_ACTION = (
    "http://schemas.otv.nl/toestemmingsregister/XACMLAuthzDecisionQuery/"
    "IGeslotenAutorisatievraagService/XACMLAuthzDecisionQueryResponse"
)
WSA_ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"

CAT_RESOURCE = "urn:oasis:names:tc:xacml:3.0:attribute-category:resource"
CAT_ACTION = "urn:oasis:names:tc:xacml:3.0:attribute-category:action"
CAT_SUBJECT = "urn:oasis:names:tc:xacml:1.0:subject-category:access-subject"
CAT_ENVIRONMENT = "urn:oasis:names:tc:xacml:3.0:attribute-category:environment"

DT_II = "urn:hl7-org:v3#II"
DT_CV = "urn:hl7-org:v3#CV"
DT_STRING = "http://www.w3.org/2001/XMLSchema#string"

OID_BSN = "2.16.840.1.113883.2.4.6.3"
OID_URA = "2.16.528.1.1007.3.3"
OID_UZI = "2.16.528.1.1007.3.1"
OID_ROLE = "2.16.840.1.113883.2.4.15.111"
OID_PURPOSE = "2.16.840.1.113883.1.11.20448"

ATTR_RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_HOLDER_TYPE = "urn:ihe:iti:appc:2016:document-entry:healthcare-facility-type-code"
ATTR_HOLDER_ID = "urn:ihe:iti:appc:2016:author-institution:id"
ATTR_EVENT_CODE = "urn:ihe:iti:appc:2016:document-entry:event-code"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_PROVIDER_ID = "urn:ihe:iti:xua:2017:subject:provider-identifier"
ATTR_MANDATED = "urn:nl:otv:names:tc:1.0:subject:mandated"
ATTR_REQUESTER_ID = "urn:nl:otv:names:tc:1.0:subject:provider-institution"
ATTR_REQUESTER_TYPE = "urn:nl:otv:names:tc:1.0:subject:consulting-healthcare-facility-type-code"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"

STATUS_OK = "urn:oasis:names:tc:xacml:1.0:status:ok"
STATUS_MISSING = "urn:oasis:names:tc:xacml:1.0:status:missing-attribute"
STATUS_SYNTAX = "urn:oasis:names:tc:xacml:1.0:status:syntax-error"
STATUS_PROCESSING = "urn:oasis:names:tc:xacml:1.0:status:processing-error"


@dataclass(frozen=True, slots=True)
class _Field:
    """Where one ClosedQuestion input lives in the request."""

    name: str
    category: str
    ids: tuple[str, ...]  # first is the Mitz id, the rest are accepted aliases
    data_type: str
    system: str  # expected II root or CV codeSystem


_FIELDS: tuple[_Field, ...] = (
    _Field(
        "bsn", CAT_RESOURCE, (ATTR_RESOURCE_ID, "urn:oasis:names:tc:xacml:1.0:resource:resource-id"), DT_II, OID_BSN
    ),
    _Field("holder_facility_type", CAT_RESOURCE, (ATTR_HOLDER_TYPE,), DT_CV, FACILITY_TYPE_SYSTEM_OID),
    _Field("holder_ura", CAT_RESOURCE, (ATTR_HOLDER_ID,), DT_II, OID_URA),
    _Field("data_category", CAT_ACTION, (ATTR_EVENT_CODE,), DT_CV, DATA_CATEGORY_SYSTEM_OID),
    _Field("professional_role", CAT_SUBJECT, (ATTR_ROLE,), DT_CV, OID_ROLE),
    _Field("professional_id", CAT_SUBJECT, (ATTR_PROVIDER_ID,), DT_II, OID_UZI),
    _Field(
        "requester_ura",
        CAT_SUBJECT,
        (
            ATTR_REQUESTER_ID,
            "urn:oasis:names:tc:xspa:1.0:subject:organization-id",
            "urn:ihe:iti:xua:2017:subject:provider-institution",
        ),
        DT_II,
        OID_URA,
    ),
    _Field(
        "requester_facility_type",
        CAT_SUBJECT,
        (ATTR_REQUESTER_TYPE, "urn:ihe:iti:appc:2016:subject:consulting-healthcare-facility-type-code"),
        DT_CV,
        FACILITY_TYPE_SYSTEM_OID,
    ),
    # Mitz puts the purpose in the environment category; some XUA-derived requests put it in the
    # subject category, which is also where its xspa attribute id says it belongs.
    _Field("purpose_of_use", CAT_ENVIRONMENT, (ATTR_PURPOSE,), DT_CV, OID_PURPOSE),
)
_FIELD_BY_NAME: Mapping[str, _Field] = {f.name: f for f in _FIELDS}

# A value present but unusable (wrong root/system, ambiguous, empty). It fails every validator in
# the decision core, so `decide` reports the input as invalid instead of treating it as absent.
_INVALID = "\x00invalid"


class XacmlError(Exception):
    """A message that is not a closed question we can read. `code` is stable, for callers/tests."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class EchoAttribute:
    """An attribute the requester marked IncludeInResult, to be returned in its Result."""

    category: str
    attribute_id: str
    data_type: str
    element: str | None  # local name of the HL7 V3 child element, None for a text value
    # Values (a BSN among them) stay out of repr(): queries end up in logs and tracebacks.
    xml_attributes: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    text: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class QueryItem:
    """One question (one action / data category) of a request, with what its Result echoes."""

    question: ClosedQuestion
    echo: tuple[EchoAttribute, ...] = ()


@dataclass(frozen=True, slots=True)
class XacmlQuery:
    message_id: str | None
    items: tuple[QueryItem, ...]

    @property
    def questions(self) -> tuple[ClosedQuestion, ...]:
        return tuple(item.question for item in self.items)


@dataclass(frozen=True, slots=True)
class ResponseResult:
    decision: Result
    status_code: str | None = None
    event_code: str | None = None
    missing_attributes: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# safe parsing


def _parser() -> Any:
    # Per call: lxml parsers are not thread-safe to share.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def _parse_xml(data: bytes | str) -> Any:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_MESSAGE_BYTES:
        raise XacmlError("too-large", f"message exceeds {MAX_MESSAGE_BYTES} bytes")
    if not raw.strip():
        raise XacmlError("malformed", "empty message")
    # UTF-8 only (SOAP 1.2 over HTTP as Mitz uses it). Refusing UTF-16/32 up front also makes the
    # byte scan below reliable: no declaration can hide behind another encoding.
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        raise XacmlError("encoding", "message must be UTF-8")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise XacmlError("dtd-forbidden", "DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        raise XacmlError("malformed", f"not well-formed XML (line {exc.lineno})") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # belt and braces
        raise XacmlError("dtd-forbidden", "DOCTYPE declarations are not allowed")
    return root


def _qname(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def _children(el: Any, ns: str, local: str) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str) and c.tag == _qname(ns, local)]


def _element_children(el: Any) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str)]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _soap_body(root: Any) -> Any:
    if root.tag == _qname(NS_SOAP11, "Envelope"):
        raise XacmlError("not-soap12", "SOAP 1.1 envelopes are not accepted; use SOAP 1.2")
    if root.tag != _qname(NS_SOAP, "Envelope"):
        raise XacmlError("not-soap", "root element is not a SOAP 1.2 Envelope")
    bodies = _children(root, NS_SOAP, "Body")
    if len(bodies) != 1:
        raise XacmlError("not-soap", "SOAP Envelope must have exactly one Body")
    return bodies[0]


# ---------------------------------------------------------------------------------------------
# the request


@dataclass(slots=True)
class _Value:
    data_type: str
    element: str | None
    attrs: dict[str, str]
    text: str | None
    include: bool


def _values(attributes_el: Any) -> dict[str, list[_Value]]:
    found: dict[str, list[_Value]] = {}
    for attr in _children(attributes_el, NS_XACML, "Attribute"):
        attr_id = attr.get("AttributeId")
        if not attr_id:
            continue
        include = attr.get("IncludeInResult") == "true"
        for av in _children(attr, NS_XACML, "AttributeValue"):
            kids = _element_children(av)
            if kids:
                child = kids[0]
                value = _Value(
                    av.get("DataType", ""),
                    _local(child.tag),
                    {k: v for k, v in child.attrib.items() if isinstance(k, str) and "}" not in k},
                    None,
                    include,
                )
            else:
                value = _Value(av.get("DataType", DT_STRING), None, {}, (av.text or "").strip(), include)
            found.setdefault(attr_id, []).append(value)
    return found


def _extract(spec: _Field, values: Mapping[str, list[_Value]]) -> str | None:
    """The value of `spec`, None when absent, _INVALID when present but unusable."""
    hits = [v for attr_id in spec.ids for v in values.get(attr_id, ())]
    if not hits:
        return None
    if len(hits) > 1:
        return _INVALID  # two BSNs (or two holders...) is not a question we can answer
    v = hits[0]
    if v.element is not None:
        if spec.data_type == DT_II:
            system, code = v.attrs.get("root"), v.attrs.get("extension")
        else:
            system, code = v.attrs.get("codeSystem"), v.attrs.get("code")
    else:
        # Plain-text form seen in the wild: "system^value".
        system, _, code = (v.text or "").rpartition("^")
    # The root / codeSystem is what makes "999990019" a BSN rather than any nine digits: required.
    if not code or system != spec.system:
        return _INVALID
    return code


def _echo(category: str, values: Mapping[str, list[_Value]]) -> list[EchoAttribute]:
    out = []
    for attr_id, vals in values.items():
        for v in vals:
            if v.include:
                out.append(
                    EchoAttribute(category, attr_id, v.data_type, v.element, tuple(sorted(v.attrs.items())), v.text)
                )
    return out


def parse_query(data: bytes | str, *, at: datetime | None = None) -> XacmlQuery:
    """Read a closed question. Returns one QueryItem per action (data category) in the request.

    Absent or unusable attributes do not raise: they become absent/invalid inputs, which `decide`
    answers with Indeterminate. Only a message that is not a readable closed question raises
    `XacmlError`. `at` is the moment the question is about (default: now, UTC).
    """
    root = _parse_xml(data)
    body = _soap_body(root)
    message_id = None
    headers = _children(root, NS_SOAP, "Header")
    if headers:
        ids = _children(headers[0], NS_WSA, "MessageID")
        if ids and ids[0].text:
            message_id = ids[0].text.strip()

    payload = _element_children(body)
    if not payload:
        raise XacmlError("no-query", "SOAP Body is empty")
    query = payload[0]
    if _local(query.tag) != "XACMLAuthzDecisionQuery" or query.tag.split("}")[0][1:] not in _QUERY_NAMESPACES:
        raise XacmlError("no-query", "SOAP Body does not hold an XACMLAuthzDecisionQuery")
    requests = _children(query, NS_XACML, "Request")
    if len(requests) != 1:
        raise XacmlError("no-request", "XACMLAuthzDecisionQuery must hold exactly one XACML 3.0 Request")

    shared: dict[str, dict[str, list[_Value]]] = {CAT_RESOURCE: {}, CAT_SUBJECT: {}, CAT_ENVIRONMENT: {}}
    actions: list[dict[str, list[_Value]]] = []
    for attributes in _children(requests[0], NS_XACML, "Attributes"):
        category = attributes.get("Category")
        values = _values(attributes)
        if category == CAT_ACTION:
            actions.append(values)
        elif category in shared:
            for attr_id, vals in values.items():
                shared[category].setdefault(attr_id, []).extend(vals)
    if not actions:
        actions.append({})  # still answer: Indeterminate, missing data_category
    if len(actions) > MAX_ACTIONS:
        # Mitz knows three data categories; thousands of actions would only be a way to make
        # us compute thousands of decisions for one message.
        raise XacmlError("too-many-actions", f"at most {MAX_ACTIONS} actions per request")

    when = at if at is not None else datetime.now(UTC)
    common: dict[str, str | None] = {}
    for spec in _FIELDS:
        if spec.category == CAT_ACTION:
            continue
        merged = shared[spec.category]
        if spec.name == "purpose_of_use" and not any(i in merged for i in spec.ids):
            merged = shared[CAT_SUBJECT]
        common[spec.name] = _extract(spec, merged)
    # Informational: a mandate is claimed as soon as the attribute is there at all.
    mandated = ATTR_MANDATED in shared[CAT_SUBJECT]
    # XACML 3.0 core: every attribute marked IncludeInResult="true" comes back in its Result.
    shared_echo = [e for category, values in shared.items() for e in _echo(category, values)]

    items = []
    for values in actions:
        question = ClosedQuestion(
            bsn=common["bsn"],
            holder_ura=common["holder_ura"],
            holder_facility_type=common["holder_facility_type"],
            data_category=_extract(_FIELD_BY_NAME["data_category"], values),
            requester_ura=common["requester_ura"],
            requester_facility_type=common["requester_facility_type"],
            professional_id=common["professional_id"],
            professional_role=common["professional_role"],
            purpose_of_use=common["purpose_of_use"],
            mandated=mandated,
            at=when,
        )
        items.append(QueryItem(question, tuple(shared_echo + _echo(CAT_ACTION, values))))
    return XacmlQuery(message_id, tuple(items))


def build_query(
    question: ClosedQuestion,
    *,
    categories: Iterable[str] | None = None,
    message_id: str | None = None,
    to: str | None = None,
) -> bytes:
    """A closed-question envelope in the Mitz form (for tests, fixtures and an ldn client).

    `categories` asks several data categories in one request (one action each); by default the
    question's own data_category. Absent inputs are left out of the request.
    """
    cats = list(categories) if categories is not None else [question.data_category or ""]
    nsmap = {"soap": NS_SOAP, "wsa": NS_WSA}
    env = etree.Element(_qname(NS_SOAP, "Envelope"), nsmap=nsmap)
    header = etree.SubElement(env, _qname(NS_SOAP, "Header"))
    action = etree.SubElement(header, _qname(NS_WSA, "Action"))
    action.set(_qname(NS_SOAP, "mustUnderstand"), "1")
    action.text = REQUEST_ACTION
    etree.SubElement(header, _qname(NS_WSA, "MessageID")).text = message_id or f"urn:uuid:{uuid.uuid4()}"
    if to:
        etree.SubElement(header, _qname(NS_WSA, "To")).text = to
    reply = etree.SubElement(header, _qname(NS_WSA, "ReplyTo"))
    etree.SubElement(reply, _qname(NS_WSA, "Address")).text = WSA_ANONYMOUS
    body = etree.SubElement(env, _qname(NS_SOAP, "Body"))
    query = etree.SubElement(
        body,
        _qname(NS_XACML_SAMLP, "XACMLAuthzDecisionQuery"),
        nsmap={"xacml-samlp": NS_XACML_SAMLP, "xacml": NS_XACML, "hl7": NS_HL7},
    )
    request = etree.SubElement(query, _qname(NS_XACML, "Request"))
    request.set("ReturnPolicyIdList", "false")
    request.set("CombinedDecision", "false")

    def attributes(category: str, xml_id: str) -> Any:
        el = etree.SubElement(request, _qname(NS_XACML, "Attributes"))
        el.set("Category", category)
        el.set("{http://www.w3.org/XML/1998/namespace}id", xml_id)
        return el

    def put(parent: Any, spec: _Field, value: str | None, *, include: bool) -> None:
        if value is None:
            return
        attr = etree.SubElement(parent, _qname(NS_XACML, "Attribute"))
        attr.set("AttributeId", spec.ids[0])
        attr.set("IncludeInResult", "true" if include else "false")
        av = etree.SubElement(attr, _qname(NS_XACML, "AttributeValue"))
        av.set("DataType", spec.data_type)
        if spec.data_type == DT_II:
            child = etree.SubElement(av, _qname(NS_HL7, "InstanceIdentifier"))
            child.set("root", spec.system)
            child.set("extension", value)
        else:
            child = etree.SubElement(av, _qname(NS_HL7, "CodedValue"))
            child.set("code", value)
            child.set("codeSystem", spec.system)

    q = question
    res = attributes(CAT_RESOURCE, "resource")
    put(res, _FIELD_BY_NAME["bsn"], q.bsn, include=True)
    put(res, _FIELD_BY_NAME["holder_facility_type"], q.holder_facility_type, include=True)
    put(res, _FIELD_BY_NAME["holder_ura"], q.holder_ura, include=True)
    for index, cat in enumerate(cats):
        put(attributes(CAT_ACTION, f"action{index}"), _FIELD_BY_NAME["data_category"], cat or None, include=True)
    sub = attributes(CAT_SUBJECT, "subject")
    put(sub, _FIELD_BY_NAME["professional_role"], q.professional_role, include=False)
    put(sub, _FIELD_BY_NAME["professional_id"], q.professional_id, include=False)
    put(sub, _FIELD_BY_NAME["requester_ura"], q.requester_ura, include=False)
    put(sub, _FIELD_BY_NAME["requester_facility_type"], q.requester_facility_type, include=False)
    envi = attributes(CAT_ENVIRONMENT, "environment")
    put(envi, _FIELD_BY_NAME["purpose_of_use"], q.purpose_of_use, include=False)
    out: bytes = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    return out


# ---------------------------------------------------------------------------------------------
# the answer


def _status(decision: Decision) -> tuple[str, str | None, tuple[_Field, ...]]:
    if decision.result is not Result.INDETERMINATE:
        return STATUS_OK, None, ()
    if decision.missing:
        missing = tuple(_FIELD_BY_NAME[n] for n in decision.missing if n in _FIELD_BY_NAME)
        return STATUS_MISSING, decision.rule, missing
    if decision.invalid:
        return STATUS_SYNTAX, decision.rule, ()
    return STATUS_PROCESSING, decision.rule, ()


def _result(parent: Any, item: QueryItem, decision: Decision) -> None:
    result = etree.SubElement(parent, _qname(NS_XACML, "Result"))
    etree.SubElement(result, _qname(NS_XACML, "Decision")).text = decision.result.value
    code, message, missing = _status(decision)
    status = etree.SubElement(result, _qname(NS_XACML, "Status"))
    etree.SubElement(status, _qname(NS_XACML, "StatusCode")).set("Value", code)
    if message:
        # Input names only (see decision._indeterminate): never values.
        etree.SubElement(status, _qname(NS_XACML, "StatusMessage")).text = message
    if missing:
        detail = etree.SubElement(status, _qname(NS_XACML, "StatusDetail"))
        for spec in missing:
            mad = etree.SubElement(detail, _qname(NS_XACML, "MissingAttributeDetail"))
            mad.set("Category", spec.category)
            mad.set("AttributeId", spec.ids[0])
            mad.set("DataType", spec.data_type)
    by_category: dict[str, list[EchoAttribute]] = {}
    for echo in item.echo:
        by_category.setdefault(echo.category, []).append(echo)
    for category, echoes in by_category.items():
        attributes = etree.SubElement(result, _qname(NS_XACML, "Attributes"))
        attributes.set("Category", category)
        for echo in echoes:
            attr = etree.SubElement(attributes, _qname(NS_XACML, "Attribute"))
            attr.set("AttributeId", echo.attribute_id)
            attr.set("IncludeInResult", "true")
            av = etree.SubElement(attr, _qname(NS_XACML, "AttributeValue"))
            av.set("DataType", echo.data_type)
            if echo.element is not None:
                child = etree.SubElement(av, _qname(NS_HL7, echo.element))
                for key, value in echo.xml_attributes:
                    child.set(key, value)
            else:
                av.text = echo.text


def render_response(
    query: XacmlQuery,
    decisions: Sequence[Decision],
    *,
    style: Literal["mitz", "saml"] = "mitz",
    issuer: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """The SOAP 1.2 answer to `query`: one XACML Result per query item, in order.

    style="mitz" puts the XACML Response straight in the SOAP Body, as Mitz does; style="saml"
    wraps it in a SAML 2.0 Response/Assertion/XACMLAuthzDecisionStatement (issuer required).
    """
    if len(decisions) != len(query.items):
        raise ValueError("one decision per query item is required")
    nsmap = {"soap": NS_SOAP, "wsa": NS_WSA}
    env = etree.Element(_qname(NS_SOAP, "Envelope"), nsmap=nsmap)
    header = etree.SubElement(env, _qname(NS_SOAP, "Header"))
    etree.SubElement(header, _qname(NS_WSA, "Action")).text = RESPONSE_ACTION
    etree.SubElement(header, _qname(NS_WSA, "MessageID")).text = f"urn:uuid:{uuid.uuid4()}"
    if query.message_id:
        etree.SubElement(header, _qname(NS_WSA, "RelatesTo")).text = query.message_id
    body = etree.SubElement(env, _qname(NS_SOAP, "Body"))

    xacml_nsmap = {"xacml": NS_XACML, "hl7": NS_HL7}
    if style == "mitz":
        response = etree.SubElement(body, _qname(NS_XACML, "Response"), nsmap=xacml_nsmap)
    elif style == "saml":
        if not issuer:
            raise ValueError("style='saml' needs an issuer")
        instant = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        samlp = etree.SubElement(body, _qname(NS_SAMLP, "Response"), nsmap={"samlp": NS_SAMLP, "saml": NS_SAML})
        samlp.set("ID", f"_{uuid.uuid4()}")
        samlp.set("Version", "2.0")
        samlp.set("IssueInstant", instant)
        etree.SubElement(samlp, _qname(NS_SAML, "Issuer")).text = issuer
        saml_status = etree.SubElement(samlp, _qname(NS_SAMLP, "Status"))
        etree.SubElement(saml_status, _qname(NS_SAMLP, "StatusCode")).set(
            "Value", "urn:oasis:names:tc:SAML:2.0:status:Success"
        )
        assertion = etree.SubElement(samlp, _qname(NS_SAML, "Assertion"))
        assertion.set("ID", f"_{uuid.uuid4()}")
        assertion.set("Version", "2.0")
        assertion.set("IssueInstant", instant)
        etree.SubElement(assertion, _qname(NS_SAML, "Issuer")).text = issuer
        statement = etree.SubElement(
            assertion,
            _qname(NS_XACML_SAML, "XACMLAuthzDecisionStatement"),
            nsmap={"xacml-saml": NS_XACML_SAML},
        )
        response = etree.SubElement(statement, _qname(NS_XACML, "Response"), nsmap=xacml_nsmap)
    else:
        raise ValueError(f"unknown style {style!r}")
    for item, decision in zip(query.items, decisions, strict=True):
        _result(response, item, decision)
    out: bytes = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    return out


def render_fault(error: XacmlError, *, relates_to: str | None = None) -> bytes:
    """A SOAP 1.2 Sender fault for a request that could not be read (HTTP 400 goes with it)."""
    env = etree.Element(_qname(NS_SOAP, "Envelope"), nsmap={"soap": NS_SOAP, "wsa": NS_WSA})
    header = etree.SubElement(env, _qname(NS_SOAP, "Header"))
    etree.SubElement(header, _qname(NS_WSA, "Action")).text = "http://www.w3.org/2005/08/addressing/soap/fault"
    if relates_to:
        etree.SubElement(header, _qname(NS_WSA, "RelatesTo")).text = relates_to
    body = etree.SubElement(env, _qname(NS_SOAP, "Body"))
    fault = etree.SubElement(body, _qname(NS_SOAP, "Fault"))
    code = etree.SubElement(fault, _qname(NS_SOAP, "Code"))
    etree.SubElement(code, _qname(NS_SOAP, "Value")).text = "soap:Sender"
    reason = etree.SubElement(fault, _qname(NS_SOAP, "Reason"))
    text = etree.SubElement(reason, _qname(NS_SOAP, "Text"))
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = str(error)
    out: bytes = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    return out


def parse_response(data: bytes | str) -> tuple[ResponseResult, ...]:
    """Read the decisions of an answer in either style (bare Mitz Response or SAML-wrapped)."""
    root = _parse_xml(data)
    body = _soap_body(root)
    payload = _element_children(body)
    if not payload:
        raise XacmlError("no-response", "SOAP Body is empty")
    top = payload[0]
    if top.tag == _qname(NS_SOAP, "Fault"):
        raise XacmlError("soap-fault", "the answer is a SOAP Fault")
    if top.tag == _qname(NS_XACML, "Response"):
        response = top
    elif top.tag == _qname(NS_SAMLP, "Response"):
        found = [
            r
            for a in _children(top, NS_SAML, "Assertion")
            for s in _children(a, NS_XACML_SAML, "XACMLAuthzDecisionStatement")
            for r in _children(s, NS_XACML, "Response")
        ]
        if len(found) != 1:
            raise XacmlError("no-response", "SAML Response must carry one XACML Response")
        response = found[0]
    else:
        raise XacmlError("no-response", "SOAP Body does not hold an XACML Response")

    results = []
    for result in _children(response, NS_XACML, "Result"):
        decisions = _children(result, NS_XACML, "Decision")
        if len(decisions) != 1:
            raise XacmlError("no-response", "Result must carry one Decision")
        try:
            decision = Result((decisions[0].text or "").strip())
        except ValueError:
            raise XacmlError("no-response", "unknown Decision value") from None
        status_code = None
        missing: list[str] = []
        for status in _children(result, NS_XACML, "Status"):
            for sc in _children(status, NS_XACML, "StatusCode"):
                status_code = sc.get("Value")
            for detail in _children(status, NS_XACML, "StatusDetail"):
                missing.extend(m.get("AttributeId", "") for m in _children(detail, NS_XACML, "MissingAttributeDetail"))
        event_code = None
        for attributes in _children(result, NS_XACML, "Attributes"):
            if attributes.get("Category") == CAT_ACTION:
                code = _extract(_FIELD_BY_NAME["data_category"], _values(attributes))
                event_code = code if code != _INVALID else None
        results.append(ResponseResult(decision, status_code, event_code, tuple(missing)))
    if not results:
        raise XacmlError("no-response", "XACML Response has no Result")
    return tuple(results)
