"""Release diffs: what changed between shipped releases, concretely."""

from __future__ import annotations

import json

from ldn.afspraken import AgreementRepository, Status, diff_releases


def test_diff_1_0_0_to_1_1_0_lists_concrete_changes(shipped: AgreementRepository) -> None:
    d = diff_releases(shipped, "1.0.0", "1.1.0")
    assert (d.old, d.new) == ("1.0.0", "1.1.0")
    assert [a.id for a in d.added] == ["LAS-TA-AUTH-003", "LAS-TA-OPTOUT-001"]
    assert d.removed == []
    assert [c.id for c in d.changed] == [
        "LAS-JUR-OPTOUT-001",
        "LAS-TA-ADDR-001",
        "LAS-TA-ADDR-004",
        "LAS-TA-AUTH-002",
        "LAS-TA-AUTHZ-001",
        "LAS-TA-LOG-001",
    ]
    assert "LAS-TA-AUTH-001" in d.unchanged

    # Status changes: the LRZa directory becomes normative, the temporary one is phased out.
    assert d.change("LAS-TA-ADDR-001").status_change == (Status.CANDIDATE, Status.NORMATIVE)
    assert d.change("LAS-TA-ADDR-004").status_change == (Status.NORMATIVE, Status.PHASED_OUT)
    assert d.change("LAS-JUR-OPTOUT-001").status_change == (Status.CANDIDATE, Status.TRIAL)
    assert "temporary" in d.change("LAS-JUR-OPTOUT-001").fields

    # Parameter change with both values.
    (policy,) = d.change("LAS-TA-AUTHZ-001").parameters
    assert (policy.name, policy.old_value, policy.new_value) == ("policy_release", "2026.1", "2026.2")
    (added,) = d.change("LAS-TA-ADDR-001").parameters
    assert (added.name, added.kind, added.new_value) == ("history_p95", "added", 2000)

    # Text changes, as a unified diff.
    auth = d.change("LAS-TA-AUTH-002")
    assert (auth.old_version, auth.new_version) == ("1.0.0", "1.1.0")
    assert auth.parameters == [] and auth.status_change is None
    assert any(line.startswith("+") and "DPoP-sleutel" in line for line in auth.text_diff)
    log = d.change("LAS-TA-LOG-001")
    assert any(line.startswith("+") and "traceparent" in line for line in log.text_diff)
    assert not d.change("LAS-TA-AUTHZ-001").text_changed


def test_diff_1_1_0_to_2_0_0_shortens_tokens(shipped: AgreementRepository) -> None:
    d = diff_releases(shipped, "1.1.0", "2.0.0")
    (lifetime,) = d.change("LAS-TA-AUTH-002").parameters
    assert (lifetime.old_value, lifetime.new_value) == (900, 600)
    assert str(lifetime) == "parameter access_token_lifetime: 900 s -> 600 s"
    assert [a.id for a in d.removed] == ["LAS-TA-ADDR-004"]
    assert {a.id for a in d.added} == {"LAS-JUR-OPTOUT-002", "LAS-JUR-SECUSE-001"}

    as_json = json.loads(json.dumps(d.to_dict()))
    auth = next(c for c in as_json["changed"] if c["id"] == "LAS-TA-AUTH-002")
    assert auth["parameters"] == [
        {
            "name": "access_token_lifetime",
            "change": "changed",
            "old": {"value": 900, "unit": "s", "description": "Maximale levensduur van een access token."},
            "new": {"value": 600, "unit": "s", "description": "Maximale levensduur van een access token."},
        }
    ]
    text = d.format(with_text=False)
    assert "- LAS-TA-ADDR-004@1.1.0 [phased-out]" in text
    assert "~ LAS-TA-AUTH-002 1.1.0 -> 2.0.0" in text


def test_diff_of_a_release_with_itself_is_empty(shipped: AgreementRepository) -> None:
    d = diff_releases(shipped, "1.1.0", "1.1.0")
    assert d.is_empty
    assert "no changes" in d.format()
    assert len(d.unchanged) == len(shipped.release("1.1.0"))
