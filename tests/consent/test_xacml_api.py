"""The closed question in the Mitz form over HTTP: SOAP 1.2 + XACML 3.0 in, XACML Response out,
and every refusal as a SOAP 1.2 Fault (never JSON, never a stack trace)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from lxml import etree

from ldn.consent.decision import ClosedQuestion, Result
from ldn.consent.xacml import (
    MAX_MESSAGE_BYTES,
    NS_SOAP,
    NS_WSA,
    RESPONSE_ACTION,
    STATUS_MISSING,
    STATUS_OK,
    build_query,
    parse_response,
)

from .service_helpers import CITIZEN_BSN, GP, HOSPITAL, PHARMACIST, PHARMACY, ConsentApi

SOAP = "application/soap+xml"
MESSAGE_ID = "urn:uuid:5d0c6a52-9f1e-4c1b-8d1e-2a7c9b3e4f10"


@pytest.fixture
def api(client: httpx.AsyncClient, network: Any) -> ConsentApi:
    return ConsentApi(client, network)


def closed_question(**overrides: Any) -> ClosedQuestion:
    values: dict[str, Any] = {
        "bsn": CITIZEN_BSN,
        "holder_ura": GP,
        "holder_facility_type": "Z3",
        "data_category": "GGC013",
        "requester_ura": PHARMACY,
        "requester_facility_type": "J8",
        "professional_id": PHARMACIST,
        "professional_role": "17.000",
        "purpose_of_use": "TREAT",
        "at": datetime.now(UTC),
    }
    values.update(overrides)
    return ClosedQuestion(**values)


async def post(
    api: ConsentApi, body: bytes, *, content_type: str = f"{SOAP}; charset=utf-8", **kw: Any
) -> httpx.Response:
    headers = kw.pop("headers", None)
    if headers is None:
        headers = await api.provider()
    return await api.client.post(f"{api.base}/xacml", content=body, headers={**headers, "Content-Type": content_type})


def fault_of(response: httpx.Response) -> str:
    """The fault reason text; asserts the answer is a SOAP 1.2 Sender fault."""
    assert response.headers["content-type"].startswith(SOAP)
    root = etree.fromstring(response.content)
    ns = {"soap": NS_SOAP}
    assert root.find("soap:Body/soap:Fault/soap:Code/soap:Value", ns).text == "soap:Sender"
    text = root.find("soap:Body/soap:Fault/soap:Reason/soap:Text", ns).text
    assert isinstance(text, str)
    return text


async def test_xacml_round_trip(api: ConsentApi) -> None:
    """Several data categories in one request, one Result each, in order, with the Mitz envelope."""
    await api.record(
        CITIZEN_BSN,
        {"holder": f"ura:{GP}", "requester": "type:J8", "data_category": "GGC013", "decision": "permit"},
        {"holder": "any", "requester": "any", "data_category": "GGC012", "decision": "deny"},
    )
    message = build_query(closed_question(), categories=["GGC013", "GGC012", "GGC002"], message_id=MESSAGE_ID)
    response = await post(api, message)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(SOAP)

    results = parse_response(response.content)
    assert [r.decision for r in results] == [Result.PERMIT, Result.DENY, Result.NOT_APPLICABLE]
    assert [r.event_code for r in results] == ["GGC013", "GGC012", "GGC002"]
    assert all(r.status_code == STATUS_OK for r in results)

    root = etree.fromstring(response.content)
    ns = {"soap": NS_SOAP, "wsa": NS_WSA}
    assert root.find("soap:Header/wsa:Action", ns).text == RESPONSE_ACTION
    assert root.find("soap:Header/wsa:RelatesTo", ns).text == MESSAGE_ID


async def test_xacml_and_json_agree(api: ConsentApi) -> None:
    await api.record(
        CITIZEN_BSN,
        {"holder": "type:Z3", "requester": "group:RPZAC005", "data_category": "GGC002", "decision": "permit"},
    )
    for category in ("GGC002", "GGC012", "GGC013"):
        [result] = parse_response((await post(api, build_query(closed_question(data_category=category)))).content)
        json_answer = await api.decision(
            {
                "bsn": CITIZEN_BSN,
                "holder_ura": GP,
                "holder_facility_type": "Z3",
                "data_category": category,
                "requester_ura": PHARMACY,
                "requester_facility_type": "J8",
                "professional_id": PHARMACIST,
                "professional_role": "17.000",
                "purpose_of_use": "TREAT",
            }
        )
        assert result.decision.value == json_answer["decision"] == "Permit"


async def test_missing_attribute_is_indeterminate_not_a_fault(api: ConsentApi) -> None:
    response = await post(api, build_query(closed_question(professional_id=None)))
    assert response.status_code == 200
    [result] = parse_response(response.content)
    assert result.decision is Result.INDETERMINATE
    assert result.status_code == STATUS_MISSING
    assert result.missing_attributes == ("urn:ihe:iti:xua:2017:subject:provider-identifier",)


async def test_primary_use_objection_is_honoured(api: ConsentApi) -> None:
    await api.record(
        CITIZEN_BSN, {"holder": "any", "requester": "any", "data_category": "GGC002", "decision": "permit"}
    )
    await api.client.post(f"{api.base}/citizen/opt-out/primary", headers=await api.citizen())
    [result] = parse_response((await post(api, build_query(closed_question()))).content)
    assert result.decision is Result.DENY


MALFORMED = [
    ("not xml", b"this is not xml", 400, "malformed"),
    ("empty", b"", 400, "malformed"),
    ("truncated", build_query(closed_question())[:-40], 400, "malformed"),
    (
        "soap 1.1",
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
        400,
        "not-soap12",
    ),
    ("not soap", b"<Envelope/>", 400, "not-soap"),
    (
        "no query",
        b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><x/></soap:Body></soap:Envelope>',
        400,
        "no-query",
    ),
    (
        "entity expansion",
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><soap:Envelope '
        b'xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&lol;</soap:Body></soap:Envelope>',
        400,
        "dtd-forbidden",
    ),
    ("utf-16", build_query(closed_question()).decode().encode("utf-16"), 400, "encoding"),
    ("oversized", b"<a>" + b"x" * MAX_MESSAGE_BYTES + b"</a>", 413, "too-large"),
]


async def test_malformed_messages_are_soap_faults(api: ConsentApi) -> None:
    for name, body, status, code in MALFORMED:
        response = await post(api, body)
        assert response.status_code == status, name
        assert fault_of(response).startswith(code), name
        assert CITIZEN_BSN not in response.text


async def test_wrong_content_type_is_a_415_fault(api: ConsentApi) -> None:
    message = build_query(closed_question())
    for content_type in ("application/json", "text/xml", "application/xml"):
        response = await post(api, message, content_type=content_type)
        assert response.status_code == 415
        assert "application/soap+xml" in fault_of(response)


async def test_authentication_failures_are_soap_faults(api: ConsentApi) -> None:
    message = build_query(closed_question())
    unauthenticated = await post(api, message, headers={})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert fault_of(unauthenticated).startswith("invalid_token")
    wrong_scope = await post(api, message, headers=await api.provider(scope="consent:subscribe"))
    assert wrong_scope.status_code == 403
    assert fault_of(wrong_scope).startswith("insufficient_scope")


async def test_another_holders_question_is_refused(api: ConsentApi) -> None:
    message = build_query(closed_question(holder_ura=HOSPITAL, holder_facility_type="V4"))
    response = await post(api, message)
    assert response.status_code == 403
    assert fault_of(response).startswith("not-the-holder")


async def test_unknown_attribute_values_are_indeterminate(api: ConsentApi) -> None:
    message = build_query(closed_question()).replace(b'code="GGC013"', b'code="GGC999"')
    [result] = parse_response((await post(api, message)).content)
    assert result.decision is Result.INDETERMINATE
