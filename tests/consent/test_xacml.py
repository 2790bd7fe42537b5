"""The Mitz closed question over SOAP/XACML: parse, decide, render, read back; hostile input refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from ldn.consent.decision import ClosedQuestion, Decision, Result, decide
from ldn.consent.xacml import (
    ATTR_RESOURCE_ID,
    MAX_ACTIONS,
    MAX_MESSAGE_BYTES,
    NS_XACML,
    RESPONSE_ACTION,
    STATUS_MISSING,
    STATUS_OK,
    STATUS_SYNTAX,
    XacmlError,
    XacmlQuery,
    build_query,
    parse_query,
    parse_response,
    render_fault,
    render_response,
)

from .factories import AT, BSN, HOLDER_URA, REQUESTER_URA, UZI, choice, question

FIXTURE = (Path(__file__).parent / "data" / "closed_question.xml").read_bytes()
MESSAGE_ID = "urn:uuid:0b6f3c1e-2d7a-4c59-9a51-3f1c2e7d9a10"


def test_parse_fixture() -> None:
    query = parse_query(FIXTURE, at=AT)
    assert query.message_id == MESSAGE_ID
    assert [q.data_category for q in query.questions] == ["GGC002", "GGC013"]
    expected = ClosedQuestion(
        bsn=BSN,
        holder_ura=HOLDER_URA,
        holder_facility_type="Z3",
        data_category="GGC002",
        requester_ura=REQUESTER_URA,
        requester_facility_type="J8",
        professional_id=UZI,
        professional_role="17.000",
        purpose_of_use="TREAT",
        mandated=False,
        at=AT,
    )
    assert query.questions[0] == expected
    assert BSN not in repr(query)


def test_round_trip_fixture_mitz_style() -> None:
    # The pharmacy may see medication held by this GP practice; nothing is said about the rest.
    choices = [choice("permit", holder=f"ura:{HOLDER_URA}", requester="type:J8", category="GGC013")]
    query = parse_query(FIXTURE, at=AT)
    decisions = [decide(item.question, choices) for item in query.items]
    assert [d.result for d in decisions] == [Result.NOT_APPLICABLE, Result.PERMIT]

    answer = render_response(query, decisions)
    results = parse_response(answer)
    assert [(r.decision, r.event_code, r.status_code) for r in results] == [
        (Result.NOT_APPLICABLE, "GGC002", STATUS_OK),
        (Result.PERMIT, "GGC013", STATUS_OK),
    ]

    # Mitz form: the XACML Response sits directly in the SOAP Body, with Mitz's response action,
    # answering our request's MessageID; the patient and holder are echoed (IncludeInResult).
    root = etree.fromstring(answer)
    ns = {
        "s": "http://www.w3.org/2003/05/soap-envelope",
        "wsa": "http://www.w3.org/2005/08/addressing",
        "x": NS_XACML,
        "hl7": "urn:hl7-org:v3",
    }
    assert root.xpath("string(/s:Envelope/s:Header/wsa:Action)", namespaces=ns) == RESPONSE_ACTION
    assert root.xpath("string(/s:Envelope/s:Header/wsa:RelatesTo)", namespaces=ns) == MESSAGE_ID
    assert root.xpath("string(/s:Envelope/s:Body/x:Response/x:Result[2]/x:Decision)", namespaces=ns) == "Permit"
    echoed = root.xpath(
        f"/s:Envelope/s:Body/x:Response/x:Result[1]/x:Attributes/x:Attribute[@AttributeId='{ATTR_RESOURCE_ID}']"
        "/x:AttributeValue/hl7:InstanceIdentifier/@extension",
        namespaces=ns,
    )
    assert echoed == [BSN]
    # Subject attributes were sent with IncludeInResult="false": not echoed.
    assert UZI.encode() not in answer


def test_round_trip_saml_style() -> None:
    query = parse_query(FIXTURE, at=AT)
    decisions = [decide(item.question, [choice("deny", category="GGC002")]) for item in query.items]
    answer = render_response(query, decisions, style="saml", issuer="urn:oid:2.16.528.1.1007.3.3.90000099")
    root = etree.fromstring(answer)
    statement = root.find(
        ".//{urn:oasis:names:tc:xacml:3.0:profile:saml2.0:v2:schema:assertion:wd-14}XACMLAuthzDecisionStatement"
    )
    assert statement is not None
    assert statement.getparent().tag == "{urn:oasis:names:tc:SAML:2.0:assertion}Assertion"
    assert [r.decision for r in parse_response(answer)] == [Result.DENY, Result.DENY]
    with pytest.raises(ValueError, match="issuer"):
        render_response(query, decisions, style="saml")


def test_missing_attribute_is_indeterminate_with_status() -> None:
    envelope = build_query(question(bsn=None, professional_role=None))
    query = parse_query(envelope, at=AT)
    (item,) = query.items
    decision = decide(item.question, [choice("permit", holder="any")])
    assert decision.result is Result.INDETERMINATE
    assert decision.missing == ("bsn", "professional_role")
    (result,) = parse_response(render_response(query, [decision]))
    assert result.decision is Result.INDETERMINATE
    assert result.status_code == STATUS_MISSING
    assert result.missing_attributes == (ATTR_RESOURCE_ID, "urn:oasis:names:tc:xacml:2.0:subject:role")


def test_request_without_action_is_answered_indeterminate() -> None:
    envelope = build_query(question(), categories=[""])
    (item,) = parse_query(envelope, at=AT).items
    assert item.question.data_category is None
    assert decide(item.question, []).missing == ("data_category",)


def _fixture_with(old: str, new: str) -> bytes:
    text = FIXTURE.decode()
    assert old in text
    return text.replace(old, new, 1).encode()


@pytest.mark.parametrize(
    ("old", "new", "invalid"),
    [
        # a BSN under another root is not a BSN
        ('root="2.16.840.1.113883.2.4.6.3"', 'root="2.16.840.1.113883.2.4.6.99"', "bsn"),
        ('extension="999990019"', 'extension="999990018"', "bsn"),
        ('code="Z3"', 'code="A1"', "holder_facility_type"),
        ('code="GGC013"', 'code="GGC013" codeSystem="1.2.3"', None),  # malformed XML: duplicate attribute
        (
            'code="J8" codeSystem="2.16.840.1.113883.2.4.15.1060"',
            'code="J8" codeSystem="9.9.9"',
            "requester_facility_type",
        ),
        ('code="TREAT"', 'code=""', "purpose_of_use"),
        ('root="2.16.528.1.1007.3.3" extension="90000001"', 'extension="90000001"', "holder_ura"),  # no root
        ('code="Z3" codeSystem="2.16.840.1.113883.2.4.15.1060"', 'code="Z3"', "holder_facility_type"),
    ],
)
def test_unusable_values_become_invalid_inputs(old: str, new: str, invalid: str | None) -> None:
    data = _fixture_with(old, new)
    if invalid is None:
        with pytest.raises(XacmlError) as info:
            parse_query(data)
        assert info.value.code == "malformed"
        return
    query = parse_query(data, at=AT)
    decision = decide(query.items[0].question, [choice("permit", holder="any", category="GGC002")])
    assert decision.result is Result.INDETERMINATE
    assert decision.invalid == (invalid,)
    (first, _) = parse_response(render_response(query, [decision, decision]))
    assert first.status_code == STATUS_SYNTAX


def test_two_bsns_are_ambiguous() -> None:
    attr = '<hl7:InstanceIdentifier root="2.16.840.1.113883.2.4.6.3" extension="999990019"/>'
    data = _fixture_with(
        attr,
        attr
        + '</xacml:AttributeValue><xacml:AttributeValue DataType="urn:hl7-org:v3#II">'
        + attr.replace("999990019", "999990007"),
    )
    query = parse_query(data, at=AT)
    assert decide(query.items[0].question, []).invalid == ("bsn",)


def test_aliases_and_plain_text_values() -> None:
    data = _fixture_with(
        "urn:oasis:names:tc:xacml:2.0:resource:resource-id", "urn:oasis:names:tc:xacml:1.0:resource:resource-id"
    )
    assert parse_query(data, at=AT).questions[0].bsn == BSN
    plain = _fixture_with(
        '<xacml:AttributeValue DataType="urn:hl7-org:v3#II">\n              '
        '<hl7:InstanceIdentifier root="2.16.840.1.113883.2.4.6.3" extension="999990019"/>\n            '
        "</xacml:AttributeValue>",
        '<xacml:AttributeValue DataType="http://www.w3.org/2001/XMLSchema#string">'
        "2.16.840.1.113883.2.4.6.3^999990019</xacml:AttributeValue>",
    )
    assert parse_query(plain, at=AT).questions[0].bsn == BSN
    bare = plain.replace(b"2.16.840.1.113883.2.4.6.3^999990019", b"999990019")
    assert decide(parse_query(bare, at=AT).questions[0], []).invalid == ("bsn",)


def test_mandated_is_read() -> None:
    mandated = (
        '<xacml:Attribute AttributeId="urn:nl:otv:names:tc:1.0:subject:mandated" IncludeInResult="false">'
        '<xacml:AttributeValue DataType="urn:hl7-org:v3#II">'
        '<hl7:InstanceIdentifier root="2.16.528.1.1007.3.1" extension="900000029"/>'
        "</xacml:AttributeValue></xacml:Attribute>"
    )
    anchor = (
        '<xacml:Attributes Category="urn:oasis:names:tc:xacml:1.0:subject-category:access-subject" xml:id="subject">'
    )
    query = parse_query(_fixture_with(anchor, anchor + mandated), at=AT)
    assert all(q.mandated is True for q in query.questions)


def test_build_query_round_trips_every_field() -> None:
    q = question(data_category="GGC012")
    (parsed,) = parse_query(build_query(q, message_id="urn:uuid:1"), at=AT).questions
    assert parsed == q


# ---------------------------------------------------------------------------------------------
# refusals

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&lol2;</soap:Body></soap:Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&xxe;</soap:Body></soap:Envelope>"""

SOAP11 = b"""<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"""
NOT_SOAP = b"""<Request xmlns="urn:oasis:names:tc:xacml:3.0:core:schema:wd-17"/>"""
NO_BODY = b"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header/></s:Envelope>"""
EMPTY_BODY = b"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>"""
WRONG_QUERY = b"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
<q:XACMLAuthzDecisionQuery xmlns:q="urn:example:other"/></s:Body></s:Envelope>"""
NO_REQUEST = b"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
<q:XACMLAuthzDecisionQuery xmlns:q="urn:oasis:names:tc:xacml:3.0:profile:saml2.0:v2:schema:protocol:wd-14"/>
</s:Body></s:Envelope>"""
XACML2_REQUEST = b"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
<q:XACMLAuthzDecisionQuery xmlns:q="urn:oasis:names:tc:xacml:3.0:profile:saml2.0:v2:schema:protocol:wd-14">
<Request xmlns="urn:oasis:names:tc:xacml:2.0:context:schema:os"/></q:XACMLAuthzDecisionQuery></s:Body></s:Envelope>"""


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "malformed"),
        (b"<soap:Envelope", "malformed"),
        (b"not xml at all", "malformed"),
        (BILLION_LAUGHS, "dtd-forbidden"),
        (XXE, "dtd-forbidden"),
        (
            FIXTURE.decode()
            .replace("<soap:Envelope", '<!DOCTYPE x SYSTEM "http://evil.test/x.dtd"><soap:Envelope', 1)
            .encode(),
            "dtd-forbidden",
        ),
        ('<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16"), "encoding"),
        (SOAP11, "not-soap12"),
        (NOT_SOAP, "not-soap"),
        (NO_BODY, "not-soap"),
        (EMPTY_BODY, "no-query"),
        (WRONG_QUERY, "no-query"),
        (NO_REQUEST, "no-request"),
        (XACML2_REQUEST, "no-request"),
        (FIXTURE + b" " * MAX_MESSAGE_BYTES, "too-large"),
    ],
    ids=[
        "empty",
        "truncated",
        "text",
        "billion-laughs",
        "xxe",
        "external-dtd",
        "utf-16",
        "soap-1.1",
        "not-soap",
        "no-body",
        "empty-body",
        "wrong-query",
        "no-request",
        "xacml-2-request",
        "too-large",
    ],
)
def test_hostile_or_wrong_messages_are_refused(data: bytes, code: str) -> None:
    with pytest.raises(XacmlError) as info:
        parse_query(data)
    assert info.value.code == code
    assert BSN not in str(info.value)


def test_too_many_actions_are_refused() -> None:
    envelope = build_query(question(), categories=["GGC002"] * (MAX_ACTIONS + 1))
    with pytest.raises(XacmlError) as info:
        parse_query(envelope)
    assert info.value.code == "too-many-actions"
    assert len(parse_query(build_query(question(), categories=["GGC002"] * MAX_ACTIONS)).items) == MAX_ACTIONS


def test_fault_and_fault_reading() -> None:
    fault = render_fault(XacmlError("no-request", "missing"), relates_to=MESSAGE_ID)
    assert b"soap:Sender" in fault
    with pytest.raises(XacmlError) as info:
        parse_response(fault)
    assert info.value.code == "soap-fault"


def test_render_needs_one_decision_per_item() -> None:
    query = parse_query(FIXTURE, at=AT)
    with pytest.raises(ValueError, match="one decision per query item"):
        render_response(query, [Decision(Result.PERMIT, "x")])
    with pytest.raises(ValueError, match="style"):
        render_response(XacmlQuery(None, ()), [], style="json")  # type: ignore[arg-type]


def test_parse_response_refuses_garbage() -> None:
    with pytest.raises(XacmlError):
        parse_response(EMPTY_BODY)
    bad = render_response(parse_query(FIXTURE, at=AT), [Decision(Result.PERMIT, "x")] * 2).replace(
        b">Permit<", b">Maybe<"
    )
    with pytest.raises(XacmlError, match="Decision"):
        parse_response(bad)
