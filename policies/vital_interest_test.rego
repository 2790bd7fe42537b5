# Tests for ldn.authz.vital_interest: the EHDS opt-out and its vital-interest override.
package ldn.authz.vital_interest_test

import rego.v1

import data.ldn.authz.vital_interest

base := {
	"subject": {
		"client_id": "client-1",
		"subject_id": "900000009",
		"subject_organization_id": "00000001",
		"subject_role": ["01.015"],
	},
	"resource": {"type": "AllergyIntolerance"},
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "GET", "path": "/AllergyIntolerance"},
		"fhir_rest": {"interaction_type": "search-type"},
	},
	"context": {
		"service": "node-fhir",
		"data_holder_organization_id": "00000002",
		"patient_bsn": "999990019",
		"mitz_consent": "Permit",
		"purpose_of_use": "TREAT",
		"ehds_primary_optout": true,
	},
}

with_reason := json.patch(base, [{"op": "add", "path": "/context/vital_interest", "value": {"reason": "unconscious patient at the emergency department"}}])

allow_for(inp) if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	vital_interest.allow with input.subject as s with input.resource as r with input.action as a with input.context as c
}

deny_for(inp) := d if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	d := vital_interest.deny with input.subject as s with input.resource as r with input.action as a with input.context as c
}

flags_for(inp) := f if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	f := vital_interest.flags with input.subject as s with input.resource as r with input.action as a with input.context as c
}

test_metadata if {
	vital_interest.release == "1.1.0"
	vital_interest.agreement == "LAS-TA-AUTHZ-005"
}

test_applicable_only_with_optout if {
	c := base.context
	vital_interest.applicable with input.context as c
	c2 := json.patch(c, [{"op": "replace", "path": "/ehds_primary_optout", "value": false}])
	not vital_interest.applicable with input.context as c2
}

test_not_applicable_with_referral if {
	c := json.patch(base.context, [{"op": "add", "path": "/referral", "value": {"owner_ura": "00000001"}}])
	not vital_interest.applicable with input.context as c
}

test_optout_without_reason_denied if {
	not allow_for(base)
	deny_for(base) == {"ehds-primary-optout", "vital-interest-reason-missing"}
	count(flags_for(base)) == 0
}

test_blank_reason_denied if {
	inp := json.patch(base, [{"op": "add", "path": "/context/vital_interest", "value": {"reason": "   "}}])
	not allow_for(inp)
	"vital-interest-reason-missing" in deny_for(inp)
}

test_non_string_reason_denied if {
	not allow_for(json.patch(base, [{"op": "add", "path": "/context/vital_interest", "value": {"reason": true}}]))
}

test_reason_allows_with_flag if {
	allow_for(with_reason)
	count(deny_for(with_reason)) == 0
	flags_for(with_reason) == {"vital-interest-override"}
}

test_reason_does_not_widen_role if {
	inp := json.patch(with_reason, [
		{"op": "replace", "path": "/subject/subject_role", "value": ["17.000"]},
		{"op": "replace", "path": "/resource/type", "value": "Condition"},
	])
	not allow_for(inp)
	deny_for(inp) == {"role-not-allowed-category:Condition"}
	count(flags_for(inp)) == 0
}

test_reason_does_not_replace_consent if {
	inp := json.patch(with_reason, [{"op": "replace", "path": "/context/mitz_consent", "value": "Deny"}])
	not allow_for(inp)
	deny_for(inp) == {"consent-not-permit"}
}

test_without_optout_never_allows if {
	inp := json.patch(with_reason, [{"op": "replace", "path": "/context/ehds_primary_optout", "value": false}])
	not allow_for(inp)
	"vital-interest-not-applicable" in deny_for(inp)
}
