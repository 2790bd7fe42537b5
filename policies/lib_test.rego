# Tests for ldn.authz.lib. Input is replaced per top-level key (input.subject, input.context, ...),
# never with `with input as {...}`, which can crash rego-cpp (see lib.rego).
package ldn.authz.lib_test

import rego.v1

import data.ldn.authz.lib

test_release_and_agreement if {
	lib.release == "1.1.0"
	lib.agreement == "LAS-TA-AUTHZ-000"
}

test_non_empty if {
	lib.non_empty("x")
	lib.non_empty(" x ")
	not lib.non_empty("")
	not lib.non_empty("   ")
	not lib.non_empty(1)
	not lib.non_empty(null)
}

test_present_string if {
	c := {"a": "x", "b": "", "d": [], "e": ["1"], "f": false, "g": {}}
	lib.present(["context", "a"]) with input.context as c
	not lib.present(["context", "b"]) with input.context as c
	not lib.present(["context", "missing"]) with input.context as c
	not lib.present(["context", "d"]) with input.context as c
	lib.present(["context", "e"]) with input.context as c
	lib.present(["context", "f"]) with input.context as c
	lib.present(["context", "g"]) with input.context as c
}

test_time_z_equals_zero_offset if {
	lib.time_ns("2026-03-01T12:00:00Z") == lib.time_ns("2026-03-01T12:00:00+00:00")
	lib.time_ns("2026-03-01T12:00:00z") == lib.time_ns("2026-03-01T13:00:00+01:00")
}

test_time_fraction_and_offset if {
	lib.time_ns("2026-03-01T12:00:00.5+00:00") - lib.time_ns("2026-03-01T12:00:00+00:00") == 500000000
}

test_time_invalid_undefined if {
	not lib.time_ns("yesterday")
	not lib.time_ns(42)
}

test_patient_present_by_bsn_or_id if {
	lib.has_patient with input.context as {"patient_bsn": "999990019"}
	lib.has_patient with input.context as {"patient_id": "p1"}
	not lib.has_patient with input.context as {"patient_id": ""}
}

test_patient_mismatch if {
	lib.patient_mismatch with input.context as {"patient_bsn": "999990019", "patient_bsn_from_token": "999990020"}
	not lib.patient_mismatch with input.context as {"patient_bsn": "999990019", "patient_bsn_from_token": "999990019"}
	not lib.patient_mismatch with input.context as {"patient_bsn": "999990019"}
}

test_allowed_categories_union_of_roles if {
	s := {"subject_role": ["17.000", "86.000"]}
	cats := lib.allowed_categories with input.subject as s
	"MedicationRequest" in cats
	"ObservationVitalSigns" in cats
	not "Condition" in cats
}

test_unknown_roles_ignored if {
	s := {"subject_role": ["99.999", "17.000"]}
	lib.known_roles == {"17.000"} with input.subject as s
}

test_treating if {
	lib.treating with input.subject as {"subject_role": ["01.015"]}
	lib.treating with input.subject as {"subject_role": ["17.000"]}
	not lib.treating with input.subject as {"subject_role": ["86.000"]}
	not lib.treating with input.subject as {"subject_role": ["01.008"]}
}

test_read_method_get_or_post_search if {
	lib.read_method with input.action as {"request": {"method": "GET", "path": "/Condition"}}
	a := {"request": {"method": "POST", "path": "/Condition/_search"}, "fhir_rest": {"interaction_type": "search-type"}}
	lib.read_method with input.action as a
	b := {"request": {"method": "POST", "path": "/Condition"}, "fhir_rest": {"interaction_type": "create"}}
	not lib.read_method with input.action as b
}

test_consent_and_purpose if {
	lib.consent_permit with input.context as {"mitz_consent": "Permit"}
	not lib.consent_permit with input.context as {"mitz_consent": true}
	not lib.consent_permit with input.context as {"mitz_consent": "Indeterminate"}
	lib.purpose_treat with input.context as {"purpose_of_use": "TREAT"}
	not lib.purpose_treat with input.context as {"purpose_of_use": "treatment"}
}
