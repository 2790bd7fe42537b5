# Tests for ldn.authz (main): routing to exactly one policy, default deny.
package ldn.authz_test

import rego.v1

import data.ldn.authz

pull_input := {
	"subject": {
		"client_id": "client-1",
		"subject_id": "900000009",
		"subject_organization_id": "00000001",
		"subject_role": ["17.000"],
	},
	"resource": {"type": "MedicationRequest"},
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "GET", "path": "/MedicationRequest"},
		"fhir_rest": {"interaction_type": "search-type"},
	},
	"context": {
		"service": "node-fhir",
		"data_holder_organization_id": "00000002",
		"patient_bsn": "999990019",
		"mitz_consent": "Permit",
		"purpose_of_use": "TREAT",
		"now": "2026-03-01T12:00:00+00:00",
	},
}

# Only allow, selected and structural_missing are evaluated under `with` here: rego-cpp
# compiles each `with` over the whole dependency graph, and for the combined decision object
# that took minutes and gigabytes. The decision object itself is checked through the PDP
# (tests/authz/test_decision_table.py), which evaluates without `with`.
allow_for(inp) if {
	s := object.get(inp, "subject", null)
	r := object.get(inp, "resource", null)
	a := object.get(inp, "action", null)
	c := object.get(inp, "context", null)
	authz.allow with input.subject as s with input.resource as r with input.action as a with input.context as c
}

selected_for(inp) := x if {
	s := object.get(inp, "subject", null)
	r := object.get(inp, "resource", null)
	a := object.get(inp, "action", null)
	c := object.get(inp, "context", null)
	x := authz.selected with input.subject as s with input.resource as r with input.action as a with input.context as c
}

missing_for(inp) := x if {
	s := object.get(inp, "subject", null)
	r := object.get(inp, "resource", null)
	a := object.get(inp, "action", null)
	c := object.get(inp, "context", null)
	x := authz.structural_missing with input.subject as s with input.resource as r with input.action as a with input.context as c
}

test_metadata if {
	authz.release == "1.1.0"
	authz.agreement == "LAS-TA-AUTHZ-000"
}

test_all_policies_same_release if {
	authz.release_consistent
	count(authz.policy_releases) == 6
}

test_pull_routed_and_allowed if {
	allow_for(pull_input)
	selected_for(pull_input) == "pull"
}

test_pull_denied if {
	inp := json.patch(pull_input, [{"op": "replace", "path": "/resource/type", "value": "Condition"}])
	not allow_for(inp)
	selected_for(inp) == "pull"
}

test_unknown_service_no_policy if {
	inp := json.patch(pull_input, [{"op": "replace", "path": "/context/service", "value": "prs"}])
	not allow_for(inp)
	selected_for(inp) == ""
}

test_missing_service if {
	inp := json.patch(pull_input, [{"op": "remove", "path": "/context/service"}])
	not allow_for(inp)
	missing_for(inp) == {"missing-input:context.service"}
}

test_missing_subject if {
	inp := object.remove(pull_input, ["subject"])
	not allow_for(inp)
	missing_for(inp) == {"missing-input:subject"}
}

test_missing_everything if {
	not allow_for({})
	missing_for({}) == {"missing-input:subject", "missing-input:resource", "missing-input:action", "missing-input:context"}
}

test_vital_interest_routed if {
	inp := json.patch(pull_input, [
		{"op": "add", "path": "/context/ehds_primary_optout", "value": true},
		{"op": "add", "path": "/context/vital_interest", "value": {"reason": "anaphylaxis"}},
	])
	allow_for(inp)
	selected_for(inp) == "vital_interest"
}

test_optout_without_reason_denied if {
	inp := json.patch(pull_input, [{"op": "add", "path": "/context/ehds_primary_optout", "value": true}])
	not allow_for(inp)
	selected_for(inp) == "vital_interest"
}

test_notified_pull_routed if {
	inp := json.patch(pull_input, [
		{"op": "add", "path": "/context/referral", "value": {
			"owner_ura": "00000001",
			"status": "requested",
			"restriction_end": "2026-03-02T00:00:00+00:00",
			"allowed_queries": ["MedicationRequest"],
		}},
		{"op": "replace", "path": "/subject/subject_role", "value": ["86.000"]},
	])
	allow_for(inp)
	selected_for(inp) == "notified_pull"
}

test_nvi_routed if {
	inp := json.patch(pull_input, [
		{"op": "replace", "path": "/context/service", "value": "nvi"},
		{"op": "replace", "path": "/resource/type", "value": "List"},
	])
	allow_for(inp)
	selected_for(inp) == "localization"
}

test_mcsd_routed if {
	inp := json.patch(pull_input, [
		{"op": "replace", "path": "/context/service", "value": "mcsd"},
		{"op": "replace", "path": "/resource/type", "value": "Organization"},
	])
	allow_for(inp)
	selected_for(inp) == "mcsd"
}

test_policy_allow_without_routing_is_not_enough if {
	# mcsd would allow this read, but the request is for the node's FHIR API: pull decides
	inp := json.patch(pull_input, [{"op": "replace", "path": "/context/mitz_consent", "value": "Deny"}])
	not allow_for(inp)
	selected_for(inp) == "pull"
}
