"""The event model refuses incomplete or malformed records at the call site, and never shows a BSN."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from ldn.audit.catalogue import CATALOGUE, Action, EventTypes, event_type
from ldn.audit.model import AuditEvent, AuditEventError, AuditObject, AuditSource, AuditUser, Outcome
from tests.audit.helpers import BSN_ANNA, GP, HOLDER, holder_read


def test_a_complete_event_gets_defaults_from_its_type() -> None:
    event = holder_read(1)
    assert event.action is Action.READ
    assert event.outcome is Outcome.SUCCESS
    assert len(event.event_id) == 32
    assert event.patient is not None and event.patient.identifier == BSN_ANNA
    assert event.initiator == GP


def test_missing_mandatory_fields_are_refused_at_the_call_site() -> None:
    with pytest.raises(TypeError):
        AuditEvent(type=EventTypes.NVI_SEARCH, outcome=Outcome.SUCCESS)  # type: ignore[call-arg]
    with pytest.raises(AuditEventError, match="at least one user"):
        AuditEvent(type=EventTypes.NVI_SEARCH, outcome=Outcome.SUCCESS, users=[])
    with pytest.raises(AuditEventError, match="must name the patient"):
        AuditEvent(type=EventTypes.FHIR_READ_HOLDER, outcome=Outcome.SUCCESS, users=[GP])
    with pytest.raises(AuditEventError, match="must not name a patient"):
        AuditEvent(
            type=EventTypes.PRS_EVALUATE, outcome=Outcome.SUCCESS, users=[GP], objects=[AuditObject.patient(BSN_ANNA)]
        )
    with pytest.raises(AuditEventError, match="initiator"):
        AuditEvent(
            type=EventTypes.NVI_SEARCH, outcome=Outcome.SUCCESS, users=[AuditUser("900000011", is_initiator=False)]
        )
    with pytest.raises(AuditEventError, match="catalogue"):
        AuditEvent(type="060100", outcome=Outcome.SUCCESS, users=[GP])  # type: ignore[arg-type]
    with pytest.raises(AuditEventError, match="outcome"):
        AuditEvent(type=EventTypes.NVI_SEARCH, outcome="maybe", users=[GP])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user_id": ""}, "user_id"),
        ({"user_id": "has space"}, "user_id"),
        ({"user_id": 'quo"te'}, "user_id"),
        ({"user_id": "abc", "id_system": "uzi"}, "UZI/Dezi"),
        ({"user_id": "900000011", "role": "huisarts"}, "role"),
        ({"user_id": "900000011", "organization_ura": "123"}, "URA"),
        ({"user_id": "999990007", "id_system": "citizen"}, "self"),
        ({"user_id": "x", "id_system": "robot"}, "id_system"),
        ({"user_id": "900000011", "name": "a\x00b"}, "NUL"),
    ],
)
def test_bad_users_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(AuditEventError, match=message):
        AuditUser(**kwargs)


def test_bad_objects_sources_and_events_are_refused() -> None:
    with pytest.raises(AuditEventError, match="11-check"):
        AuditObject.patient("123456789")
    with pytest.raises(AuditEventError, match="identifier"):
        AuditObject("resource", "", "data")
    with pytest.raises(AuditEventError, match="source_id"):
        AuditSource("Node 20", "node", "00000020")
    with pytest.raises(AuditEventError, match="source_type"):
        AuditSource("node-00000020", "satellite", "00000020")
    with pytest.raises(AuditEventError, match="at most one patient"):
        AuditEvent(
            type=EventTypes.FHIR_READ_HOLDER,
            outcome=Outcome.SUCCESS,
            users=[GP],
            objects=[AuditObject.patient(BSN_ANNA), AuditObject.patient("999990019")],
        )
    with pytest.raises(AuditEventError, match="trace_id"):
        holder_read(1, trace_id="not-a-trace")
    with pytest.raises(AuditEventError, match="timezone"):
        AuditEvent(type=EventTypes.NVI_SEARCH, outcome=Outcome.SUCCESS, users=[GP], occurred_at=datetime(2026, 1, 1))


def test_wire_form_round_trips_and_refuses_junk() -> None:
    event = holder_read(7)
    wire = event.to_wire()
    again = AuditEvent.from_wire(wire)
    assert again == event
    for broken, message in (
        ({**wire, "type": "999999"}, "catalogue"),
        ({**wire, "extra": 1}, "unknown event field"),
        ({k: v for k, v in wire.items() if k != "users"}, "users is required"),
        ({**wire, "users": "GP"}, "list"),
        ({**wire, "users": [{"user_id": "900000011", "evil": True}]}, "unknown user field"),
        ({**wire, "occurred_at": "yesterday"}, "ISO 8601"),
        ({**wire, "occurred_at": "2026-01-01T00:00:00"}, "timezone"),
        ({**wire, "objects": [{"id_type": "BSN", "identifier": "123456789"}]}, "11-check"),
        ({**wire, "source": {"source_id": "node-00000040"}}, "source_type is required"),
        ([], "JSON object"),
    ):
        with pytest.raises(AuditEventError, match=message):
            AuditEvent.from_wire(broken)


def test_an_event_leaving_the_process_needs_source_and_trace() -> None:
    event = AuditEvent(type=EventTypes.NVI_SEARCH, outcome=Outcome.SUCCESS, users=[GP])
    with pytest.raises(AuditEventError):
        event.to_wire()
    completed = event.completed(HOLDER, "ab" * 16)
    assert completed.source == HOLDER and completed.trace_id == "ab" * 16
    other = AuditSource("node-00000020", "node", "00000020")
    with pytest.raises(AuditEventError, match="not this logger"):
        completed.completed(other, "ab" * 16)


def test_repr_never_shows_a_bsn() -> None:
    event = holder_read(1)
    assert BSN_ANNA not in repr(event)
    assert BSN_ANNA not in repr(event.patient)
    assert "*******07" in repr(event.patient)


def test_catalogue_codes_are_unique_six_digit_and_findable() -> None:
    assert len(CATALOGUE) >= 25
    for code, item in CATALOGUE.items():
        assert len(code) == 6 and code.isdigit()
        assert event_type(code) is item
        assert event_type(item.key) is item
    with pytest.raises(KeyError):
        event_type("nope")
