"""The NVI over HTTP: atomic registration, search, custodian rules, delete, bad input, no traces."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwe
from joserfc.jwk import ECKey

from ldn.localization import derivation, envelope, oprf
from ldn.localization.envelope import b64url_encode, encode_nvi_identifier
from ldn.localization.nvi.records import NVI_IDENTIFIER_SYSTEM, OAUTH_CLIENT_SYSTEM, registration_list
from tests.localization.conftest import (
    NVI_RECIPIENT,
    PROFESSIONAL,
    PRS_OPERATOR,
    Loc,
    make_bsn,
    nvi_private_jwk,
    post_entry,
    registration_bundle,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
A, B, C = "00000020", "00000040", "00000050"


@pytest.fixture
def loc(shared_loc: Loc) -> Loc:
    return shared_loc


async def _transaction(loc: Loc, entries: list[dict[str, Any]], *, org: str = A, scope: str = "nvi:write") -> Any:
    url = f"{loc.nvi_url}/"
    headers = await loc.headers("POST", url, org=org, scope=scope)
    return await loc.client.post(url, json=registration_bundle(entries), headers=headers)


async def _search(loc: Loc, query: dict[str, str], *, org: str = C, user: bool = True) -> Any:
    url = f"{loc.nvi_url}/List?{urlencode(query)}"
    headers = await loc.headers("GET", url, org=org, scope="nvi:read", user=PROFESSIONAL[org] if user else None)
    return await loc.client.get(url, headers=headers)


def _subject(identifier: str) -> dict[str, str]:
    return {"subject:identifier": f"{NVI_IDENTIFIER_SYSTEM}|{identifier}"}


async def _register(loc: Loc, bsn: str, categories: list[str], org: str = A) -> list[str]:
    identifier = await loc.node_client(org).identifier(bsn)
    response = await _transaction(
        loc, [post_entry(registration_list(org, c, identifier, org)) for c in categories], org=org
    )
    assert response.status_code == 200, response.text
    return [e["response"]["location"].removeprefix("List/") for e in response.json()["entry"]]


async def _count(loc: Loc, bsn: str) -> int:
    identifier = await loc.node_client(C).identifier(bsn)
    response = await _search(loc, _subject(identifier))
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def _details(response: Any) -> str:
    return str(response.json()["issue"][0]["details"]["coding"][0]["code"])


# ---------------------------------------------------------------------------- happy paths


async def test_register_then_search_across_custodians(loc: Loc) -> None:
    bsn = make_bsn(1)
    await _register(loc, bsn, ["Condition", "MedicationRequest"], org=A)
    await _register(loc, bsn, ["Imaging"], org=B)
    identifier = await loc.node_client(C).identifier(bsn)
    response = await _search(loc, _subject(identifier))
    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    bundle = response.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 3
    found = {
        (
            e["resource"]["extension"][0]["valueReference"]["identifier"]["value"],
            e["resource"]["code"]["coding"][0]["code"],
            e["resource"]["source"]["identifier"]["value"],
        )
        for e in bundle["entry"]
    }
    assert found == {(A, "Condition", A), (A, "MedicationRequest", A), (B, "Imaging", B)}
    for entry in bundle["entry"]:
        assert "subject" not in entry["resource"]
        assert entry["resource"]["emptyReason"]["coding"][0]["code"] == "withheld"
        assert entry["fullUrl"].startswith(f"{loc.nvi_url}/List/")
    # The pseudonym (and the identifier that carried it) is never echoed.
    assert identifier not in response.text
    assert "subject" not in json.dumps(bundle["link"])
    # code narrows the answer (system|code and bare code alike).
    narrowed = await _search(loc, {**_subject(identifier), "code": "Imaging"})
    assert narrowed.json()["total"] == 1
    both = await _search(
        loc,
        {
            **_subject(identifier),
            "code": "http://minvws.github.io/generiekefuncties-docs/CodeSystem/nl-gf-data-categories-cs|Condition",
        },
    )
    assert both.json()["total"] == 1
    # Another patient finds nothing.
    assert await _count(loc, make_bsn(2)) == 0


async def test_duplicate_registration_is_idempotent(loc: Loc) -> None:
    bsn = make_bsn(3)
    first = await _register(loc, bsn, ["Condition", "Procedure"])
    identifier = await loc.node_client(A).identifier(bsn)
    entries = [post_entry(registration_list(A, c, identifier, A)) for c in ("Condition", "Procedure", "Procedure")]
    response = await _transaction(loc, entries)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["200 OK", "200 OK", "200 OK"]
    assert [e["response"]["location"].removeprefix("List/") for e in response.json()["entry"]] == [
        first[0],
        first[1],
        first[1],
    ]
    assert await _count(loc, bsn) == 2
    # Within one fresh Bundle, the same record twice is one record.
    other = await loc.node_client(A).identifier(make_bsn(4))
    response = await _transaction(loc, [post_entry(registration_list(A, "Alert", other, A))] * 2)
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created", "200 OK"]
    assert await _count(loc, make_bsn(4)) == 1


async def test_single_create_and_read(loc: Loc) -> None:
    identifier = await loc.node_client(A).identifier(make_bsn(5))
    url = f"{loc.nvi_url}/List"
    headers = await loc.headers("POST", url, org=A, scope="nvi:write")
    created = await loc.client.post(url, json=registration_list(A, "Encounter", identifier, A), headers=headers)
    assert created.status_code == 201, created.text
    assert created.headers["location"].startswith(f"{loc.nvi_url}/List/")
    assert "subject" not in created.json()
    again = await loc.client.post(url, json=registration_list(A, "Encounter", identifier, A), headers=headers)
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    read_url = f"{loc.nvi_url}/List/{created.json()['id']}"
    read = await loc.client.get(read_url, headers=await loc.headers("GET", read_url, org=A, scope="nvi:read"))
    assert read.status_code == 200 and read.json()["code"]["coding"][0]["code"] == "Encounter"
    assert read.json()["date"].endswith("Z")


async def test_capability_statement(loc: Loc) -> None:
    response = await loc.client.get(f"{loc.nvi_url}/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    [resource] = statement["rest"][0]["resource"]
    assert resource["type"] == "List"
    assert {p["name"] for p in resource["searchParam"]} >= {"subject:identifier", "code"}


# ---------------------------------------------------------------------------- atomicity


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda r: r["code"]["coding"][0].update(code="Gossip"), 400),
        (lambda r: r["subject"]["identifier"].update(value="bm90LWFuLWlkZW50aWZpZXI"), 400),
        (lambda r: r["extension"][0]["valueReference"]["identifier"].update(value=B), 403),
        (lambda r: r.update(status="retired"), 400),
    ],
    ids=["unknown-category", "bad-identifier", "other-custodian", "bad-status"],
)
async def test_one_bad_entry_rejects_the_whole_bundle(loc: Loc, mutate: Any, status: int) -> None:
    bsns = [make_bsn(10 + i) for i in range(3)]
    identifiers = await loc.node_client(A).identifiers(bsns)
    entries = [post_entry(registration_list(A, "Condition", i, A)) for i in identifiers]
    bad = registration_list(A, "Procedure", identifiers[0], A)
    mutate(bad)
    entries.append(post_entry(bad))
    response = await _transaction(loc, entries)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"][0].startswith("Bundle.entry[3]")
    for bsn in bsns:
        assert await _count(loc, bsn) == 0


async def test_failure_in_the_database_step_writes_nothing(loc: Loc) -> None:
    """A DELETE of another custodian's record is found only inside the transaction: the POSTs
    before it in the Bundle are rolled back too."""
    [other_id] = await _register(loc, make_bsn(20), ["Alert"], org=B)
    identifier = await loc.node_client(A).identifier(make_bsn(21))
    entries = [
        post_entry(registration_list(A, "Condition", identifier, A)),
        {"request": {"method": "DELETE", "url": f"List/{other_id}"}},
    ]
    response = await _transaction(loc, entries)
    assert response.status_code == 403
    assert _details(response) == "not-custodian"
    assert await _count(loc, make_bsn(21)) == 0
    assert await _count(loc, make_bsn(20)) == 1


# ---------------------------------------------------------------------------- custodian rules and delete


async def test_only_the_custodian_reads_or_deletes(loc: Loc) -> None:
    [record] = await _register(loc, make_bsn(30), ["Condition"], org=A)
    url = f"{loc.nvi_url}/List/{record}"
    as_b = await loc.client.get(url, headers=await loc.headers("GET", url, org=B, scope="nvi:read"))
    assert as_b.status_code == 403 and _details(as_b) == "not-custodian"
    delete_b = await loc.client.delete(url, headers=await loc.headers("DELETE", url, org=B, scope="nvi:write"))
    assert delete_b.status_code == 403
    assert await _count(loc, make_bsn(30)) == 1
    delete_a = await loc.client.delete(url, headers=await loc.headers("DELETE", url, org=A, scope="nvi:write"))
    assert delete_a.status_code == 204
    gone = await loc.client.get(url, headers=await loc.headers("GET", url, org=A, scope="nvi:read"))
    assert gone.status_code == 404
    # Deleting again is idempotent.
    again = await loc.client.delete(url, headers=await loc.headers("DELETE", url, org=A, scope="nvi:write"))
    assert again.status_code == 204
    assert (
        await loc.client.get(
            f"{loc.nvi_url}/List/not-a-uuid",
            headers=await loc.headers("GET", f"{loc.nvi_url}/List/not-a-uuid", org=A, scope="nvi:read"),
        )
    ).status_code == 400


async def test_delete_by_query_touches_only_the_callers_records(loc: Loc) -> None:
    bsn = make_bsn(31)
    await _register(loc, bsn, ["Condition", "Procedure", "Imaging"], org=A)
    await _register(loc, bsn, ["Condition"], org=B)
    client_a = loc.node_client(A)
    assert await client_a.delete(bsn, {"Imaging"}) == 1
    assert await _count(loc, bsn) == 3
    assert await client_a.delete(bsn) == 2
    remaining = await loc.node_client(C).search(bsn)
    assert [(r.custodian_ura, r.category) for r in remaining] == [(B, "Condition")]


async def test_bundle_delete_then_post_replaces(loc: Loc) -> None:
    bsn = make_bsn(32)
    await _register(loc, bsn, ["Condition", "Procedure"], org=A)
    summary = await loc.node_client(A).replace(bsn, {"Procedure", "Alert"})
    assert summary.created == 2 and summary.deleted == 2
    found = {r.category for r in await loc.node_client(C).search(bsn)}
    assert found == {"Procedure", "Alert"}


async def test_own_records_are_listed_and_paged(loc: Loc) -> None:
    org = "00000060"
    for i in range(3):
        await _register(loc, make_bsn(40 + i), ["Episode"], org=org)
    url = f"{loc.nvi_url}/List?{urlencode({'source:identifier': f'{OAUTH_CLIENT_SYSTEM}|{org}', '_count': '2'})}"
    first = await loc.client.get(url, headers=await loc.headers("GET", url, org=org, scope="nvi:read"))
    assert first.status_code == 200, first.text
    assert len(first.json()["entry"]) == 2
    next_url = next(link["url"] for link in first.json()["link"] if link["relation"] == "next")
    second = await loc.client.get(next_url, headers=await loc.headers("GET", next_url, org=org, scope="nvi:read"))
    assert len(second.json()["entry"]) == 1
    ids = {e["resource"]["id"] for e in first.json()["entry"] + second.json()["entry"]}
    assert len(ids) == 3
    # Another organisation's listing does not show them.
    other = f"{loc.nvi_url}/List?_count=100"
    listing = await loc.client.get(other, headers=await loc.headers("GET", other, org="00000070", scope="nvi:read"))
    assert not ids & {e["resource"]["id"] for e in listing.json().get("entry", [])}


# ---------------------------------------------------------------------------- bad input


async def _post_one(loc: Loc, identifier: str, *, org: str = A, category: str = "Condition") -> Any:
    return await _transaction(loc, [post_entry(registration_list(org, category, identifier, org))], org=org)


async def test_malformed_base64_identifier(loc: Loc) -> None:
    response = await _post_one(loc, "this is not base64!")
    assert response.status_code == 400 and _details(response) == "malformed-identifier"
    search = await _search(loc, _subject("%%%"))
    assert search.status_code == 400 and _details(search) == "malformed-identifier"


async def test_malformed_jwe(loc: Loc) -> None:
    blind = oprf.random_scalar()
    value = b64url_encode(json.dumps({"evaluated_output": "a.b.c", "blind_factor": b64url_encode(blind)}).encode())
    response = await _post_one(loc, value)
    assert response.status_code == 400 and _details(response) == "malformed-identifier"
    good = await loc.node_client(A).identifier(make_bsn(50))
    decoded = envelope.decode_nvi_identifier(good)
    parts = decoded.evaluated_output.split(".")
    parts[3] = parts[3][:-2] + ("AA" if parts[3][-2:] != "AA" else "BA")  # tampered ciphertext
    tampered = encode_nvi_identifier(".".join(parts), decoded.blind_factor)
    response = await _post_one(loc, tampered)
    assert response.status_code == 400 and _details(response) in {"invalid-envelope", "malformed-identifier"}


async def test_jwe_made_for_another_recipient(loc: Loc) -> None:
    other = ECKey.generate_key("P-256", private=True)
    url = f"{loc.prs_url}/recipients/ura:00000050/other-scope"
    headers = await loc.headers("PUT", url, org=PRS_OPERATOR, scope="prs:admin")
    assert (await loc.client.put(url, json={"jwk": other.as_dict(private=False)}, headers=headers)).status_code == 201
    foreign = loc.node_client(A, recipient_organization="ura:00000050", recipient_scope="other-scope")
    response = await _post_one(loc, await foreign.identifier(make_bsn(51)))
    assert response.status_code == 400 and _details(response) == "wrong-recipient"


async def test_tampered_blind_factor(loc: Loc) -> None:
    bsn = make_bsn(52)
    await _register(loc, bsn, ["Condition"])
    decoded = envelope.decode_nvi_identifier(await loc.node_client(C).identifier(bsn))
    # A blind that is not a canonical scalar is refused ...
    too_big = (oprf.GROUP_ORDER + 1).to_bytes(32, "little")
    value = b64url_encode(
        json.dumps({"evaluated_output": decoded.evaluated_output, "blind_factor": b64url_encode(too_big)}).encode()
    )
    response = await _search(loc, _subject(value))
    assert response.status_code == 400 and _details(response) == "malformed-identifier"
    # ... and a different valid blind unblinds to an unrelated element: it matches nobody (OPRF
    # mode 0 has no way to detect it; the result is a pseudonym no one else has).
    other_blind = oprf.random_scalar()
    response = await _search(loc, _subject(encode_nvi_identifier(decoded.evaluated_output, other_blind)))
    assert response.status_code == 200 and response.json()["total"] == 0


async def test_identity_or_invalid_element_inside_the_envelope(loc: Loc) -> None:
    public = {k: v for k, v in nvi_private_jwk(loc.network).items() if k != "d"}
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": public["kid"], "oprf_key_version": "1"}
    for plaintext in (bytes(32), b"\xff" * 32):
        token = jwe.encrypt_compact(header, plaintext, ECKey.import_key(public), registry=envelope._JWE_REGISTRY)
        response = await _post_one(loc, encode_nvi_identifier(token, oprf.random_scalar()))
        assert response.status_code == 400 and _details(response) == "invalid-envelope"


async def test_pseudonym_not_produced_by_the_prs(loc: Loc) -> None:
    """Anyone can encrypt an element to the NVI's public key; only the PRS can tag it."""
    public = {k: v for k, v in nvi_private_jwk(loc.network).items() if k != "d"}
    element = oprf.hash_to_group(b"forged")
    untagged = envelope.EnvelopeSealer(public).seal(element, oprf_key_version="1")
    response = await _post_one(loc, encode_nvi_identifier(untagged, oprf.random_scalar()))
    assert response.status_code == 400 and _details(response) == "not-from-prs"
    impostor = envelope.OriginKey.from_seed(b"\x07" * 32)
    forged = envelope.EnvelopeSealer(public, origin=impostor).seal(element, oprf_key_version="1")
    response = await _post_one(loc, encode_nvi_identifier(forged, oprf.random_scalar()))
    assert response.status_code == 400 and _details(response) == "not-from-prs"
    assert response.json()["issue"][0]["code"] == "security"


async def test_expired_prs_answer(loc: Loc) -> None:
    public = {k: v for k, v in nvi_private_jwk(loc.network).items() if k != "d"}
    sealer = envelope.EnvelopeSealer(public, origin=loc.prs.keyring.origin)
    blinded = oprf.blind(derivation.derive_oprf_input(make_bsn(53), *NVI_RECIPIENT))
    element = oprf.blind_evaluate(loc.prs.keyring.oprf_private_key(*NVI_RECIPIENT, 1), blinded.blinded_element)
    old = sealer.seal(element, oprf_key_version="1", issued_at=int(time.time()) - 3600)
    response = await _post_one(loc, encode_nvi_identifier(old, blinded.blind))
    assert response.status_code == 400 and _details(response) == "identifier-expired"
    fresh = sealer.seal(element, oprf_key_version="1")
    assert (await _post_one(loc, encode_nvi_identifier(fresh, blinded.blind))).status_code == 200


async def test_wrong_scope_and_missing_token(loc: Loc) -> None:
    identifier = await loc.node_client(A).identifier(make_bsn(54))
    response = await _transaction(loc, [post_entry(registration_list(A, "Condition", identifier, A))], scope="nvi:read")
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    url = f"{loc.nvi_url}/List?{urlencode(_subject(identifier))}"
    write_only = await loc.headers("GET", url, org=C, scope="nvi:write")
    assert (await loc.client.get(url, headers=write_only)).status_code == 403
    assert (await loc.client.get(url)).status_code == 401
    assert (await loc.client.post(f"{loc.nvi_url}/", json=registration_bundle([]))).status_code == 401


async def test_custodian_and_source_must_be_the_caller(loc: Loc) -> None:
    identifier = await loc.node_client(A).identifier(make_bsn(55))
    response = await _transaction(loc, [post_entry(registration_list(B, "Condition", identifier, A))])
    assert response.status_code == 403 and _details(response) == "custodian-mismatch"
    response = await _transaction(loc, [post_entry(registration_list(A, "Condition", identifier, "someone-else"))])
    assert response.status_code == 403 and _details(response) == "source-mismatch"


async def test_unknown_data_category(loc: Loc) -> None:
    identifier = await loc.node_client(A).identifier(make_bsn(56))
    resource = registration_list(A, "Condition", identifier, A)
    resource["code"]["coding"][0]["code"] = "Horoscope"
    response = await _transaction(loc, [post_entry(resource)])
    assert response.status_code == 400 and _details(response) == "unknown-data-category"
    search = await _search(loc, {**_subject(identifier), "code": "Horoscope"})
    assert search.status_code == 400 and _details(search) == "unknown-data-category"
    search = await _search(loc, {**_subject(identifier), "code": "http://example.org|Condition"})
    assert search.status_code == 400


async def test_search_needs_a_professional(loc: Loc) -> None:
    identifier = await loc.node_client(C).identifier(make_bsn(57))
    response = await _search(loc, _subject(identifier), user=False)
    assert response.status_code == 403 and _details(response) == "no-user-role"


@pytest.mark.parametrize(
    ("bundle", "status"),
    [
        ({"resourceType": "Bundle", "type": "batch", "entry": []}, 400),
        ({"resourceType": "Bundle", "type": "transaction", "entry": []}, 400),
        ({"resourceType": "Patient"}, 400),
        ([1, 2], 400),
        (registration_bundle([{"request": {"method": "PUT", "url": "List/x"}, "resource": {}}]), 400),
        (registration_bundle([{"request": {"method": "POST", "url": "Patient"}, "resource": {}}]), 400),
        (registration_bundle([{"request": {"method": "DELETE", "url": "List/not-a-uuid"}}]), 400),
        (registration_bundle([{"request": {"method": "DELETE", "url": "List?name=x"}}]), 400),
        (registration_bundle(["not an entry"]), 400),
    ],
    ids=["batch", "empty", "not-bundle", "not-object", "put", "patient", "bad-id", "bad-query", "bad-entry"],
)
async def test_malformed_bundles(loc: Loc, bundle: Any, status: int) -> None:
    url = f"{loc.nvi_url}/"
    headers = await loc.headers("POST", url, org=A, scope="nvi:write")
    response = await loc.client.post(url, json=bundle, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_closed_world_list_validation(loc: Loc) -> None:
    identifier = await loc.node_client(A).identifier(make_bsn(58))
    for mutate in (
        lambda r: r.update(note=[{"text": "x"}]),
        lambda r: r.update(mode="snapshot"),
        lambda r: r["emptyReason"]["coding"][0].update(code="nilknown"),
        lambda r: r["extension"].append({"url": "http://example.org/x", "valueString": "y"}),
        lambda r: r["subject"].update(reference="Patient/1"),
        lambda r: r["source"]["identifier"].update(system="http://example.org/device"),
        lambda r: r.pop("source"),
    ):
        resource = registration_list(A, "Condition", identifier, A)
        mutate(resource)
        response = await _transaction(loc, [post_entry(resource)])
        assert response.status_code == 400, (response.text, resource)


async def test_oversized_and_unknown_search_parameters(loc: Loc) -> None:
    identifier = await loc.node_client(C).identifier(make_bsn(59))
    response = await _search(loc, {**_subject(identifier), "name": "x"})
    assert response.status_code == 400
    many = ",".join([f"{NVI_IDENTIFIER_SYSTEM}|{identifier}"] * 9)
    assert (await _search(loc, {"subject:identifier": many})).status_code == 400
    assert (await _search(loc, {"subject:identifier": f"http://example.org|{identifier}"})).status_code == 400
    # Search by POST takes form parameters only.
    url = f"{loc.nvi_url}/List/_search"
    headers = await loc.headers("POST", url, org=C, scope="nvi:read", user=PROFESSIONAL[C])
    response = await loc.client.post(url, json=_subject(identifier), headers=headers)
    assert response.status_code == 415
    response = await loc.client.post(
        url,
        content=urlencode(_subject(identifier)),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200 and response.json()["total"] == 0
    # A body over the size limit is refused before it is read.
    url = f"{loc.nvi_url}/"
    headers = await loc.headers("POST", url, org=A, scope="nvi:write")
    oversized = b"{" + b" " * (loc.network.settings.max_body_bytes + 1) + b"}"
    response = await loc.client.post(
        url, content=oversized, headers={**headers, "Content-Type": "application/fhir+json"}
    )
    assert response.status_code == 413
    huge = registration_bundle([{"request": {"method": "DELETE", "url": "List/x"}}] * 5001)
    url = f"{loc.nvi_url}/"
    response = await loc.client.post(url, json=huge, headers=await loc.headers("POST", url, org=A, scope="nvi:write"))
    assert response.status_code == 400 and response.json()["issue"][0]["code"] == "too-long"


async def test_no_bsn_or_pseudonym_in_any_log(loc: Loc, caplog: pytest.LogCaptureFixture) -> None:
    bsn = make_bsn(60)
    caplog.set_level(logging.DEBUG)
    await _register(loc, bsn, ["Condition", "Imaging"])
    # The node-side client searches by POST and deletes through a Bundle: no identifier in a URL.
    assert len(await loc.node_client(C).search(bsn)) == 2
    identifier = await loc.node_client(C).identifier(bsn)
    await _post_one(loc, identifier[:-4] + "AAAA")  # a bad one too: errors are logged
    assert await loc.node_client(A).delete(bsn) == 2
    # What would identify the patient: the BSN, the identifier, the element and its lookup hash.
    decoded = envelope.decode_nvi_identifier(identifier)
    element = envelope.open_evaluated_output(decoded.evaluated_output, nvi_private_jwk(loc.network))
    unblinded = oprf.unblind(decoded.blind_factor, element)
    keys = await loc.nvi.keys.current()
    needles = {bsn, identifier, decoded.evaluated_output, b64url_encode(decoded.blind_factor)}
    for value in [unblinded, element, *keys.lookup_hashes(unblinded)]:
        needles |= {value.hex(), b64url_encode(value), repr(value)}
    text = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "the flow should have logged something"
    assert not [n for n in needles if n in text]


async def test_prs_origin_keys_unavailable_is_a_503(loc: Loc) -> None:
    """Without the PRS's origin keys the NVI cannot tell genuine identifiers from forged ones:
    it refuses (503) rather than accepting unchecked envelopes."""
    import httpx

    from ldn.auth.resource_server import Caller
    from ldn.core.errors import Unavailable
    from ldn.localization.envelope import EnvelopeOpener
    from ldn.localization.nvi.service import NviService

    async def unreachable() -> list[dict[str, Any]]:
        raise httpx.ConnectError("no route")

    service = NviService(
        loc.network.database,
        loc.nvi.keys,
        EnvelopeOpener(nvi_private_jwk(loc.network)),
        loc.nvi.settings,
        unreachable,
    )
    caller = Caller(client_id=C, organization_ura=C, organization_name="x", scopes=frozenset(), user_role="01.015")
    identifier = await loc.node_client(C).identifier(make_bsn(61))
    with pytest.raises(Unavailable):
        await service.search(caller, [identifier], None)
