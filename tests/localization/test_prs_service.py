"""The PRS over HTTP: evaluation (single, batch, by version), administration, bad input, no traces."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, inspect, select

from ldn.auth.client import TokenRequestError
from ldn.localization import derivation, envelope, oprf
from ldn.localization.envelope import b64url_encode
from tests.auth_helpers import token_for
from tests.localization.conftest import NVI_RECIPIENT, PRS_OPERATOR, Loc, nvi_private_jwk

BSN = "999990019"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def loc(shared_loc: Loc) -> Loc:
    return shared_loc


def _blind(bsn: str = BSN) -> oprf.BlindedInput:
    return oprf.blind(derivation.derive_oprf_input(bsn, *NVI_RECIPIENT))


def _body(blinded: str, **extra: Any) -> dict[str, Any]:
    return {
        "blinded_input": blinded,
        "recipient_organization": NVI_RECIPIENT[0],
        "recipient_scope": NVI_RECIPIENT[1],
        **extra,
    }


async def _post(loc: Loc, path: str, body: Any, *, org: str = "00000020", scope: str = "prs:read") -> Any:
    url = f"{loc.prs_url}{path}"
    headers = await loc.headers("POST", url, org=org, scope=scope)
    return await loc.client.post(url, json=body, headers=headers)


async def test_evaluate_answers_an_envelope_only_the_nvi_can_open(loc: Loc) -> None:
    blinded = _blind()
    response = await _post(loc, "/evaluate", _body(b64url_encode(blinded.blinded_element)))
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"evaluated_output"}
    token = response.json()["evaluated_output"]
    header = envelope.envelope_header(token)
    assert header.alg == "ECDH-ES+A256KW" and header.oprf_key_version == "1"
    # joserfc opens it with the NVI's private key, and it is the RFC 9497 BlindEvaluate result.
    element = envelope.open_evaluated_output(token, nvi_private_jwk(loc.network))
    key = loc.prs.keyring.oprf_private_key(*NVI_RECIPIENT, 1)
    assert element == oprf.blind_evaluate(key, blinded.blinded_element)
    # ... and unblinding gives skS * HashToGroup(input), independent of the blind.
    input_ = derivation.derive_oprf_input(BSN, *NVI_RECIPIENT)
    assert oprf.finalize(input_, blinded.blind, element) == oprf.evaluate(key, input_)
    # The origin tag verifies with the PRS's published key.
    jwks = (await loc.client.get(f"{loc.prs_url}/.well-known/jwks.json")).json()
    opener = envelope.EnvelopeOpener(nvi_private_jwk(loc.network), jwks["keys"])
    assert opener.open(token).origin_verified


async def test_batch_evaluate_keeps_order(loc: Loc) -> None:
    blinded = [_blind(bsn) for bsn in ("999990007", "999990019", "999990020")]
    body = {
        "blinded_inputs": [b64url_encode(b.blinded_element) for b in blinded],
        "recipient_organization": NVI_RECIPIENT[0],
        "recipient_scope": NVI_RECIPIENT[1],
    }
    response = await _post(loc, "/evaluate/batch", body)
    assert response.status_code == 200, response.text
    outputs = response.json()["evaluated_outputs"]
    key = loc.prs.keyring.oprf_private_key(*NVI_RECIPIENT, 1)
    private = nvi_private_jwk(loc.network)
    assert [envelope.open_evaluated_output(o, private) for o in outputs] == [
        oprf.blind_evaluate(key, b.blinded_element) for b in blinded
    ]


async def test_the_same_input_twice_gives_unlinkable_envelopes_with_the_same_element(loc: Loc) -> None:
    blinded = b64url_encode(_blind().blinded_element)
    first = (await _post(loc, "/evaluate", _body(blinded))).json()["evaluated_output"]
    second = (await _post(loc, "/evaluate", _body(blinded))).json()["evaluated_output"]
    assert first != second  # fresh ephemeral key and CEK per answer
    private = nvi_private_jwk(loc.network)
    assert envelope.open_evaluated_output(first, private) == envelope.open_evaluated_output(second, private)


IDENTITY = b64url_encode(bytes(32))
NON_CANONICAL = b64url_encode(b"\xff" * 32)
HIGH_BIT = b64url_encode(oprf.hash_to_group(b"x")[:31] + bytes([oprf.hash_to_group(b"x")[31] | 0x80]))


@pytest.mark.parametrize(
    ("value", "details"),
    [
        ("not base64 at all!", "malformed-base64url"),
        ("AAAA=", "malformed-base64url"),
        (b64url_encode(bytes(31)), "invalid-element"),
        (IDENTITY, "invalid-element"),
        (NON_CANONICAL, "invalid-element"),
        (HIGH_BIT, "invalid-element"),
    ],
    ids=["not-base64", "padded", "short", "identity", "not-a-point", "high-bit"],
)
async def test_bad_blinded_input_is_refused_clearly(loc: Loc, value: str, details: str) -> None:
    response = await _post(loc, "/evaluate", _body(value))
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["details"]["coding"][0]["code"] == details
    assert issue["expression"] == ["blinded_input"]


async def test_batch_with_one_bad_input_is_refused_whole(loc: Loc) -> None:
    body = {
        "blinded_inputs": [b64url_encode(_blind().blinded_element), IDENTITY],
        "recipient_organization": NVI_RECIPIENT[0],
        "recipient_scope": NVI_RECIPIENT[1],
    }
    response = await _post(loc, "/evaluate/batch", body)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["blinded_inputs[1]"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([], 400),
        ({"recipient_organization": "ura:90000901", "recipient_scope": "nationale-verwijsindex"}, 400),
        ({**_body("x"), "extra": 1}, 400),
        (_body(IDENTITY, recipient_organization="90000901"), 400),
        (_body(IDENTITY, recipient_organization="ura:9000090"), 400),
        (_body(IDENTITY, recipient_scope="a|b"), 400),
        (_body(IDENTITY, oprf_key_version="one"), 400),
    ],
    ids=["not-object", "missing", "unknown-member", "no-ura-prefix", "short-ura", "pipe-scope", "bad-version"],
)
async def test_malformed_requests(loc: Loc, body: Any, status: int) -> None:
    response = await _post(loc, "/evaluate", body)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_unknown_recipient_and_unknown_version(loc: Loc) -> None:
    blinded = b64url_encode(_blind().blinded_element)
    response = await _post(loc, "/evaluate", _body(blinded, recipient_organization="ura:00000040"))
    assert response.status_code == 422
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "unknown-recipient"
    response = await _post(loc, "/evaluate", _body(blinded, oprf_key_version="7"))
    assert response.status_code == 422
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "key-version-unknown"


async def test_authentication_and_scope_are_required(loc: Loc) -> None:
    url = f"{loc.prs_url}/evaluate"
    body = _body(b64url_encode(_blind().blinded_element))
    assert (await loc.client.post(url, json=body)).status_code == 401
    wrong = await loc.headers("POST", url, org="00000020", scope="nvi:read")
    response = await loc.client.post(url, json=body, headers=wrong)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    garbage = await loc.client.post(url, json=body, headers={"Authorization": "Bearer not-a-token"})
    assert garbage.status_code == 401


async def test_content_type_and_size_limits(loc: Loc) -> None:
    url = f"{loc.prs_url}/evaluate"
    headers = await loc.headers("POST", url, org="00000020", scope="prs:read")
    text = json.dumps(_body(b64url_encode(_blind().blinded_element)))
    response = await loc.client.post(url, content=text, headers={**headers, "Content-Type": "text/plain"})
    assert response.status_code == 415
    response = await loc.client.post(url, content="{not json", headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    huge = b"{" + b" " * (loc.network.settings.max_body_bytes + 1) + b"}"
    response = await loc.client.post(url, content=huge, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    too_many = {
        "blinded_inputs": [IDENTITY] * (loc.prs.settings.max_batch + 1),
        "recipient_organization": NVI_RECIPIENT[0],
        "recipient_scope": NVI_RECIPIENT[1],
    }
    response = await _post(loc, "/evaluate/batch", too_many)
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "too-long"


async def test_the_nvi_is_registered_through_the_bootstrap_directory(loc: Loc) -> None:
    url = f"{loc.prs_url}/recipients/{NVI_RECIPIENT[0]}/{NVI_RECIPIENT[1]}"
    response = await loc.client.get(url, headers=await loc.headers("GET", url, org="00000020", scope="prs:read"))
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["current_key_version"] == "1" and info["active_key_versions"] == ["1"]
    assert info["kid"] == nvi_private_jwk(loc.network)["kid"]


async def test_only_the_operator_administers_recipients(loc: Loc) -> None:
    # prs:admin is never issued to anyone but the PRS operator ...
    with pytest.raises(TokenRequestError):
        await token_for(loc.client, loc.network, org="00000020", scope="prs:admin")
    # ... and prs:read does not open the administrative endpoints.
    url = f"{loc.prs_url}/recipients"
    response = await loc.client.get(url, headers=await loc.headers("GET", url, org="00000020", scope="prs:read"))
    assert response.status_code == 403
    response = await loc.client.get(url, headers=await loc.headers("GET", url, org=PRS_OPERATOR, scope="prs:admin"))
    assert response.status_code == 200
    assert [r["recipient_organization"] for r in response.json()["recipients"]] == [NVI_RECIPIENT[0]]


async def test_operator_registers_rotates_and_retires(loc: Loc) -> None:
    from joserfc.jwk import ECKey

    recipient_key = ECKey.generate_key("P-256", private=True)
    base = f"{loc.prs_url}/recipients/ura:00000040/test-scope"

    async def admin(method: str, url: str, body: Any = None) -> Any:
        headers = await loc.headers(method, url, org=PRS_OPERATOR, scope="prs:admin")
        return await loc.client.request(method, url, json=body, headers=headers)

    created = await admin("PUT", base, {"jwk": recipient_key.as_dict(private=False)})
    assert created.status_code == 201, created.text
    again = await admin("PUT", base, {"jwk": recipient_key.as_dict(private=False)})
    assert again.status_code == 200
    assert (await admin("PUT", base, {"jwk": recipient_key.as_dict(private=True)})).status_code == 400
    other = ECKey.generate_key("P-384", private=False)
    assert (await admin("PUT", base, {"jwk": other.as_dict(private=False)})).status_code == 400

    blinded = _blind()
    body = {
        "blinded_input": b64url_encode(blinded.blinded_element),
        "recipient_organization": "ura:00000040",
        "recipient_scope": "test-scope",
    }
    first = envelope.open_envelope((await _post(loc, "/evaluate", body)).json()["evaluated_output"], recipient_key)
    assert first.oprf_key_version == "1"

    rotated = await admin("POST", f"{base}/rotate")
    assert rotated.json() == {"current_key_version": "2"}
    second = envelope.open_envelope((await _post(loc, "/evaluate", body)).json()["evaluated_output"], recipient_key)
    assert second.oprf_key_version == "2"
    assert second.evaluated_element != first.evaluated_element
    # During the transition the old version still evaluates, on request, to the old element.
    old = await _post(loc, "/evaluate", {**body, "oprf_key_version": "1"})
    assert envelope.open_envelope(old.json()["evaluated_output"], recipient_key).evaluated_element == (
        first.evaluated_element
    )
    assert (await admin("POST", f"{base}/retire", {"oprf_key_version": "2"})).status_code == 422
    assert (await admin("POST", f"{base}/retire", {"oprf_key_version": "1"})).status_code == 200
    refused = await _post(loc, "/evaluate", {**body, "oprf_key_version": "1"})
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "key-version-retired"


async def test_the_prs_database_holds_no_inputs_outputs_or_links(loc: Loc) -> None:
    """After traffic, no table in the whole database holds anything of what went through the PRS."""
    blinded = [_blind(bsn) for bsn in ("999990007", "999990019", "999990020", "999990032")]
    secrets: list[bytes] = []
    for b in blinded[:2]:
        out = (await _post(loc, "/evaluate", _body(b64url_encode(b.blinded_element)))).json()["evaluated_output"]
        secrets += [b.blinded_element, out.encode()]
    body = {
        "blinded_inputs": [b64url_encode(b.blinded_element) for b in blinded[2:]],
        "recipient_organization": NVI_RECIPIENT[0],
        "recipient_scope": NVI_RECIPIENT[1],
    }
    for out in (await _post(loc, "/evaluate/batch", body)).json()["evaluated_outputs"]:
        secrets.append(out.encode())
    private = nvi_private_jwk(loc.network)
    elements = [envelope.open_evaluated_output(s.decode(), private) for s in secrets if s.count(b".") == 4]
    needles: set[bytes] = set()
    for value in secrets[::2] + elements:  # raw blinded inputs and evaluated elements
        needles |= {value, value.hex().encode(), b64url_encode(value).encode()}
    needles |= {s for s in secrets if s.count(b".") == 4}

    engine = loc.network.database.engine
    with engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        prs_tables = {t for t in tables if t.startswith("prs_")}
        assert prs_tables == {"prs_recipient", "prs_key_version"}
        dump, prs_dump = bytearray(), bytearray()
        for name in tables:
            table = Table(name, MetaData(), autoload_with=connection)
            for row in connection.execute(select(table)):
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else str(value).encode()
                    dump += raw + b"\x00"
                    if name in prs_tables:
                        prs_dump += raw + b"\x00"
    assert b"ura:90000901" in prs_dump, "the dump should at least contain the NVI recipient"
    # Nothing that went through the PRS is anywhere in the database ...
    assert not [n for n in needles if n in dump]
    # ... and the PRS's own tables hold no BSN-like value at all (other services may, by design).
    assert not re.search(rb"(?<![0-9])9999[0-9]{5}(?![0-9])", bytes(prs_dump))
