"""The citizen API: list, grant, change and revoke choices, object to primary / secondary use, see
overrides; only ever about the logged-in citizen's own BSN; bad input refused clearly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ldn.consent.model import ChoiceSource

from .service_helpers import CITIZEN_BSN, GP, OTHER_CITIZEN_BSN, PHARMACY, ConsentApi, question


@pytest.fixture
def api(client: httpx.AsyncClient, network: Any) -> ConsentApi:
    return ConsentApi(client, network)


def choice(decision: str = "permit", **kw: Any) -> dict[str, Any]:
    return {"holder": f"ura:{GP}", "requester": "type:J8", "data_category": "GGC013", "decision": decision, **kw}


def outcome_code(response: httpx.Response) -> str | None:
    issue = response.json()["issue"][0]
    return (issue.get("details") or {}).get("coding", [{}])[0].get("code")


async def test_grant_list_change_revoke_with_full_history(api: ConsentApi) -> None:
    headers = await api.citizen()
    url = f"{api.base}/citizen/choices"
    granted = await api.client.post(
        url, headers=headers, json={"choices": [choice(), choice("deny", data_category="GGC012", requester="any")]}
    )
    assert granted.status_code == 201, granted.text
    first, second = granted.json()["choices"]
    assert first["version"] == 1 and first["source"] == "citizen" and first["recorded_by"] == "citizen"

    listed = (await api.client.get(url, headers=headers)).json()["choices"]
    assert {c["id"] for c in listed} == {first["id"], second["id"]}

    changed = await api.client.put(f"{url}/{first['id']}", headers=headers, json=choice("deny"))
    assert changed.status_code == 200 and changed.json()["version"] == 2 and changed.json()["decision"] == "deny"

    revoked = await api.client.delete(f"{url}/{second['id']}", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["status"] == "withdrawn"
    again = await api.client.delete(f"{url}/{second['id']}", headers=headers)
    assert again.status_code == 410

    current = (await api.client.get(url, headers=headers)).json()["choices"]
    assert [(c["id"], c["version"], c["decision"]) for c in current] == [(first["id"], 2, "deny")]

    history = (await api.client.get(url, params={"history": "true"}, headers=headers)).json()["choices"]
    versions = sorted((c["id"] == first["id"], c["version"], c["status"], c["current"]) for c in history)
    assert versions == [
        (False, 1, "active", False),
        (False, 2, "withdrawn", True),
        (True, 1, "active", False),
        (True, 2, "active", True),
    ]


async def test_same_scope_again_makes_a_new_version(api: ConsentApi) -> None:
    headers = await api.citizen()
    url = f"{api.base}/citizen/choices"
    first = (await api.client.post(url, headers=headers, json={"choices": [choice("permit")]})).json()["choices"][0]
    second = (await api.client.post(url, headers=headers, json={"choices": [choice("deny")]})).json()["choices"][0]
    assert second["id"] == first["id"] and second["version"] == 2
    assert (await api.decision(question()))["decision"] == "Deny"


async def test_if_match_guards_against_lost_updates(api: ConsentApi) -> None:
    headers = await api.citizen()
    url = f"{api.base}/citizen/choices"
    first = (await api.client.post(url, headers=headers, json={"choices": [choice()]})).json()["choices"][0]
    ok = await api.client.put(f"{url}/{first['id']}", headers={**headers, "If-Match": 'W/"1"'}, json=choice("deny"))
    assert ok.status_code == 200
    stale = await api.client.put(f"{url}/{first['id']}", headers={**headers, "If-Match": 'W/"1"'}, json=choice())
    assert stale.status_code == 412
    garbage = await api.client.put(f"{url}/{first['id']}", headers={**headers, "If-Match": "yes"}, json=choice())
    assert garbage.status_code == 400


async def test_citizen_may_withdraw_an_implied_consent(api: ConsentApi) -> None:
    [implied] = await api.record(
        CITIZEN_BSN, choice(requester="any", implied=True), source=ChoiceSource.PROVIDER_RECORDED, recorded_by=GP
    )
    assert (await api.decision(question()))["decision"] == "Permit"
    headers = await api.citizen()
    listed = (await api.client.get(f"{api.base}/citizen/choices", headers=headers)).json()["choices"]
    assert listed[0]["implied"] is True and listed[0]["source"] == "provider-recorded"
    # ... but cannot rewrite it as if it were their own.
    rewrite = await api.client.put(f"{api.base}/citizen/choices/{implied.choice.id}", headers=headers, json=choice())
    assert rewrite.status_code == 404
    withdrawn = await api.client.delete(f"{api.base}/citizen/choices/{implied.choice.id}", headers=headers)
    assert withdrawn.status_code == 200
    assert (await api.decision(question()))["decision"] == "NotApplicable"


async def test_no_citizen_sees_or_changes_another_citizens_data(api: ConsentApi) -> None:
    mine = await api.citizen(CITIZEN_BSN)
    theirs = await api.citizen(OTHER_CITIZEN_BSN)
    url = f"{api.base}/citizen/choices"
    created = (await api.client.post(url, headers=theirs, json={"choices": [choice()]})).json()["choices"][0]

    assert (await api.client.get(url, headers=mine)).json()["choices"] == []
    for method, path, body in [
        ("PUT", f"{url}/{created['id']}", choice("deny")),
        ("DELETE", f"{url}/{created['id']}", None),
    ]:
        response = await api.client.request(method, path, headers=mine, json=body)
        assert response.status_code == 404, (method, response.text)  # indistinguishable from unknown
    acting_for_other = await api.client.post(
        url, headers=mine, json={"bsn": OTHER_CITIZEN_BSN, "choices": [choice("deny")]}
    )
    assert acting_for_other.status_code == 403 and outcome_code(acting_for_other) == "not-own-bsn"
    for path in ("/citizen/choices", "/citizen/opt-out", "/citizen/overrides"):
        peek = await api.client.get(f"{api.base}{path}", params={"bsn": OTHER_CITIZEN_BSN}, headers=mine)
        assert peek.status_code == 403, path
    own = await api.client.get(url, params={"bsn": CITIZEN_BSN}, headers=mine)
    assert own.status_code == 200
    # Their choice is untouched.
    still = (await api.client.get(url, headers=theirs)).json()["choices"]
    assert [(c["id"], c["version"]) for c in still] == [(created["id"], 1)]


async def test_provider_tokens_cannot_use_the_citizen_api(api: ConsentApi) -> None:
    response = await api.client.get(f"{api.base}/citizen/choices", headers=await api.provider())
    assert response.status_code == 403
    none = await api.client.get(f"{api.base}/citizen/choices")
    assert none.status_code == 401


BAD_CHOICES = [
    ("invalid URA", {"choices": [choice(holder="ura:1234")]}, "URA"),
    ("invalid holder kind", {"choices": [choice(holder="agb:01000020")]}, "holder"),
    ("unknown category", {"choices": [choice(data_category="GGC999")]}, "data_category"),
    ("unknown facility type", {"choices": [choice(requester="type:QQ")]}, "facility type"),
    ("unknown decision", {"choices": [choice("maybe")]}, "decision"),
    (
        "validity ends before it starts",
        {
            "choices": [
                choice(
                    valid_from=datetime(2026, 1, 2, tzinfo=UTC).isoformat(),
                    valid_until=datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
                )
            ]
        },
        "valid_until must be after valid_from",
    ),
    ("validity without timezone", {"choices": [choice(valid_from="2026-01-01T00:00:00")]}, "valid_from"),
    ("citizen cannot record implied consent", {"choices": [choice(implied=True)]}, "implied"),
    ("empty list", {"choices": []}, "choices"),
    ("unknown field", {"choices": [choice(colour="red")]}, "colour"),
    ("invalid BSN in body", {"bsn": "123456789", "choices": [choice()]}, "not-own-bsn"),
]


async def test_bad_choices_are_refused_clearly(api: ConsentApi) -> None:
    headers = await api.citizen()
    url = f"{api.base}/citizen/choices"
    for name, body, expected in BAD_CHOICES:
        response = await api.client.post(url, headers=headers, json=body)
        assert response.status_code in (400, 403), (name, response.status_code)
        assert expected in response.text, (name, response.text)
    assert (await api.client.get(url, headers=headers)).json()["choices"] == []


async def test_conflicting_choices_in_one_request(api: ConsentApi) -> None:
    headers = await api.citizen()
    url = f"{api.base}/citizen/choices"
    conflicting = await api.client.post(url, headers=headers, json={"choices": [choice("permit"), choice("deny")]})
    assert conflicting.status_code == 400 and outcome_code(conflicting) == "conflicting-choices"
    assert "conflicting choices" in conflicting.text
    duplicate = await api.client.post(url, headers=headers, json={"choices": [choice(), choice()]})
    assert duplicate.status_code == 400 and "duplicate" in duplicate.text
    # Nothing of a refused request is kept (all or nothing).
    assert (await api.client.get(url, headers=headers)).json()["choices"] == []
    # The same scope for periods that do not overlap is fine.
    now = datetime.now(UTC)
    split = await api.client.post(
        url,
        headers=headers,
        json={
            "choices": [
                choice("permit", valid_from=now.isoformat(), valid_until=(now + timedelta(days=10)).isoformat()),
                choice("deny", valid_from=(now + timedelta(days=10)).isoformat()),
            ]
        },
    )
    assert split.status_code == 201


async def test_too_many_choices_in_one_request(api: ConsentApi) -> None:
    headers = await api.citizen()
    many = [choice(holder=f"ura:{i:08d}") for i in range(1, api.register.settings.max_choices_per_request + 2)]
    response = await api.client.post(f"{api.base}/citizen/choices", headers=headers, json={"choices": many})
    assert response.status_code == 400 and "at most" in response.text


async def test_bad_ids_and_unknown_choices(api: ConsentApi) -> None:
    headers = await api.citizen()
    bad = await api.client.delete(f"{api.base}/citizen/choices/not%20an%20id", headers=headers)
    assert bad.status_code == 400
    unknown = await api.client.delete(f"{api.base}/citizen/choices/abc", headers=headers)
    assert unknown.status_code == 404


async def test_opt_outs_are_versioned_and_idempotent(api: ConsentApi) -> None:
    headers = await api.citizen()
    url = f"{api.base}/citizen/opt-out"
    initial = (await api.client.get(url, headers=headers)).json()
    assert initial["primary"]["objected"] is False and initial["secondary"]["objected"] is False

    first = (await api.client.post(f"{url}/secondary", headers=headers)).json()
    assert first == {"kind": "secondary", "objected": True, "version": 1, "changed": True}
    repeat = (await api.client.post(f"{url}/secondary", headers=headers)).json()
    assert repeat["changed"] is False and repeat["version"] == 1
    withdrawn = (await api.client.delete(f"{url}/secondary", headers=headers)).json()
    assert withdrawn["version"] == 2 and withdrawn["objected"] is False

    view = (await api.client.get(url, params={"history": "true"}, headers=headers)).json()
    assert view["secondary"]["objected"] is False and view["primary"]["objected"] is False
    assert [(h["kind"], h["version"], h["objected"]) for h in view["history"]] == [
        ("secondary", 1, True),
        ("secondary", 2, False),
    ]
    unknown = await api.client.post(f"{url}/tertiary", headers=headers)
    assert unknown.status_code == 404


async def test_override_endpoint_is_logged_and_shown(api: ConsentApi) -> None:
    url = f"{api.base}/override"
    body = {
        "bsn": CITIZEN_BSN,
        "requester_ura": PHARMACY,
        "requester_facility_type": "J8",
        "data_category": "MedicationRequest",
        "reason": "Anafylaxie, medicatiegegevens nodig",
    }
    response = await api.client.post(url, json=body, headers=await api.provider())
    assert response.status_code == 201, response.text
    entry = response.json()
    assert entry["holder_ura"] == GP and entry["data_category"] == "GGC013" and entry["via"] == "override"
    shown = (await api.client.get(f"{api.base}/citizen/overrides", headers=await api.citizen())).json()["overrides"]
    assert [o["id"] for o in shown] == [entry["id"]]
    other = (await api.client.get(f"{api.base}/citizen/overrides", headers=await api.citizen(OTHER_CITIZEN_BSN))).json()
    assert other["overrides"] == []

    for bad, expected in [
        ({**body, "reason": ""}, "reason"),
        ({**body, "reason": " \n\t "}, "reason"),
        ({k: v for k, v in body.items() if k != "reason"}, "reason"),
        ({**body, "bsn": "999990018"}, "BSN"),
        ({**body, "requester_ura": "123"}, "requester_ura"),
        ({**body, "data_category": "Everything"}, "data_category"),
        ({**body, "reason": "x" * 1001}, "1000"),
    ]:
        refused = await api.client.post(url, json=bad, headers=await api.provider())
        assert refused.status_code == 400, bad
        assert expected in refused.text
    assert CITIZEN_BSN not in refused.text
