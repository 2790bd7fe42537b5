# Tests for ldn.authz.notified_pull: owner, listed queries, restriction period, status.
package ldn.authz.notified_pull_test

import rego.v1

import data.ldn.authz.notified_pull

referral := {
	"owner_ura": "00000003",
	"status": "requested",
	"restriction_end": "2026-03-08T00:00:00+01:00",
	"authorization_base": "ab-123",
	"allowed_queries": [
		"Patient/p1",
		"Observation?patient=Patient%2Fp1&category=laboratory",
		"Condition?patient=Patient/p1&date=ge2026-01-01T00:00:00+01:00",
		"/MedicationRequest?patient=Patient/p1&status=active&status=completed",
	],
}

base := {
	"subject": {"client_id": "client-3", "subject_organization_id": "00000003", "subject_role": ["01.015"]},
	"resource": {"type": "Observation"},
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {
			"method": "GET",
			"path": "/Observation",
			"query_params": {"category": ["laboratory"], "patient": ["Patient/p1"]},
		},
		"fhir_rest": {"interaction_type": "search-type"},
	},
	"context": {
		"service": "node-fhir",
		"data_holder_organization_id": "00000002",
		"now": "2026-03-01T12:00:00Z",
		"referral": referral,
	},
}

allow_for(inp) if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	notified_pull.allow with input.subject as s with input.resource as r with input.action as a with input.context as c
}

deny_for(inp) := d if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	d := notified_pull.deny with input.subject as s with input.resource as r with input.action as a with input.context as c
}

patch(ops) := json.patch(base, ops)

# a GET on `path` with `params`
request(path, params) := patch([
	{"op": "replace", "path": "/action/request/path", "value": path},
	{"op": "replace", "path": "/action/request/query_params", "value": params},
])

test_metadata if {
	notified_pull.release == "1.1.0"
	notified_pull.agreement == "LAS-TA-AUTHZ-002"
}

test_applicable_only_with_referral if {
	c := base.context
	notified_pull.applicable with input.context as c
	c2 := object.remove(c, ["referral"])
	not notified_pull.applicable with input.context as c2
}

test_listed_search_allowed if {
	allow_for(base)
	count(deny_for(base)) == 0
}

test_listed_read_allowed if {
	inp := json.patch(request("/Patient/p1", {}), [
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "read"},
		{"op": "replace", "path": "/resource/type", "value": "Patient"},
	])
	allow_for(inp)
}

test_param_order_free if {
	allow_for(request("Observation/", {"patient": ["Patient/p1"], "category": ["laboratory"]}))
}

test_repeated_param_values if {
	allow_for(request("/MedicationRequest", {"status": ["completed", "active"], "patient": ["Patient/p1"]}))
}

test_plus_is_a_space if {
	allow_for(request("/Condition", {"patient": ["Patient/p1"], "date": ["ge2026-01-01T00:00:00 01:00"]}))
}

test_presentation_params_ignored if {
	allow_for(request("/Observation", {"patient": ["Patient/p1"], "category": ["laboratory"], "_format": ["json"]}))
}

test_param_value_not_a_list_denied if {
	inp := request("/Observation", {"patient": ["Patient/p1"], "category": ["laboratory"], "_count": "1000"})
	not allow_for(inp)
	deny_for(inp) == {"invalid-input:action.request.query_params"}
}

test_unlisted_path_denied if {
	inp := request("/Condition", {"patient": ["Patient/p1"]})
	not allow_for(inp)
	deny_for(inp) == {"query-not-in-referral"}
}

test_extra_param_denied if {
	inp := request("/Observation", {"patient": ["Patient/p1"], "category": ["laboratory"], "_count": ["1000"]})
	not allow_for(inp)
	deny_for(inp) == {"query-not-in-referral"}
}

test_missing_param_denied if {
	not allow_for(request("/Observation", {"patient": ["Patient/p1"]}))
}

test_other_value_denied if {
	not allow_for(request("/Observation", {"patient": ["Patient/p2"], "category": ["laboratory"]}))
}

test_other_patient_read_denied if {
	not allow_for(request("/Patient/p2", {}))
}

test_non_owner_denied if {
	inp := patch([{"op": "replace", "path": "/subject/subject_organization_id", "value": "00000004"}])
	not allow_for(inp)
	deny_for(inp) == {"not-referral-owner"}
}

test_after_restriction_end_denied if {
	inp := patch([{"op": "replace", "path": "/context/now", "value": "2026-03-08T00:00:01+01:00"}])
	not allow_for(inp)
	deny_for(inp) == {"restriction-ended"}
}

test_at_restriction_end_denied if {
	not allow_for(patch([{"op": "replace", "path": "/context/now", "value": "2026-03-07T23:00:00Z"}]))
}

test_just_before_restriction_end_allowed if {
	allow_for(patch([{"op": "replace", "path": "/context/now", "value": "2026-03-07T22:59:59Z"}]))
}

test_cancelled_denied if {
	inp := patch([{"op": "replace", "path": "/context/referral/status", "value": "cancelled"}])
	not allow_for(inp)
	deny_for(inp) == {"referral-cancelled"}
}

test_entered_in_error_denied if {
	inp := patch([{"op": "replace", "path": "/context/referral/status", "value": "entered-in-error"}])
	not allow_for(inp)
	deny_for(inp) == {"referral-not-active:entered-in-error"}
}

test_in_progress_allowed if allow_for(patch([{"op": "replace", "path": "/context/referral/status", "value": "in-progress"}]))

test_post_denied if {
	inp := patch([{"op": "replace", "path": "/action/request/method", "value": "POST"}])
	not allow_for(inp)
	"method-not-allowed" in deny_for(inp)
}

test_write_interaction_denied if {
	inp := patch([{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "update"}])
	not allow_for(inp)
	deny_for(inp) == {"interaction-not-allowed"}
}

test_missing_now_denied if {
	inp := patch([{"op": "remove", "path": "/context/now"}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:context.now"}
}

test_invalid_now_denied if {
	inp := patch([{"op": "replace", "path": "/context/now", "value": "soon"}])
	not allow_for(inp)
	deny_for(inp) == {"invalid-input:context.now"}
}

test_invalid_restriction_end_denied if {
	inp := patch([{"op": "replace", "path": "/context/referral/restriction_end", "value": "next week"}])
	not allow_for(inp)
	deny_for(inp) == {"invalid-input:context.referral.restriction_end"}
}

test_missing_owner_denied if {
	inp := patch([{"op": "remove", "path": "/context/referral/owner_ura"}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:context.referral.owner_ura"}
}

test_empty_allowed_queries_denied if {
	inp := patch([{"op": "replace", "path": "/context/referral/allowed_queries", "value": []}])
	not allow_for(inp)
	"missing-input:context.referral.allowed_queries" in deny_for(inp)
}

test_patient_mismatch_denied if {
	inp := patch([
		{"op": "add", "path": "/context/patient_bsn", "value": "999990019"},
		{"op": "add", "path": "/context/patient_bsn_from_token", "value": "999990020"},
	])
	not allow_for(inp)
	deny_for(inp) == {"patient-mismatch"}
}

test_allowed_queries_output if {
	c := base.context
	qs := notified_pull.allowed_queries with input.context as c
	count(qs) == 4
	"Patient/p1" in qs
}

test_no_consent_needed if {
	# a referral is its own authorization base; a Mitz answer is not asked for
	allow_for(patch([{"op": "add", "path": "/context/mitz_consent", "value": "Indeterminate"}]))
}
