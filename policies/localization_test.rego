# Tests for ldn.authz.localization (NVI): search by treating professionals, custodian-only writes.
package ldn.authz.localization_test

import rego.v1

import data.ldn.authz.localization

search := {
	"subject": {
		"client_id": "client-1",
		"subject_id": "900000009",
		"subject_organization_id": "00000001",
		"subject_role": ["01.015"],
	},
	"resource": {"type": "List"},
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "GET", "path": "/List", "query_params": {"subject:identifier": ["x|y"]}},
		"fhir_rest": {"interaction_type": "search-type", "search_params": {"subject:identifier": ["x|y"]}},
	},
	"context": {"service": "nvi", "data_holder_organization_id": "90000901", "purpose_of_use": "TREAT"},
}

register := {
	"subject": {"client_id": "client-2", "subject_organization_id": "00000002"},
	"resource": {"type": "Bundle"},
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "POST", "path": "/"},
		"fhir_rest": {"interaction_type": "transaction"},
	},
	"context": {"service": "nvi", "data_holder_organization_id": "90000901", "custodians": ["00000002"]},
}

allow_for(inp) if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	localization.allow with input.subject as s with input.resource as r with input.action as a with input.context as c
}

deny_for(inp) := d if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	d := localization.deny with input.subject as s with input.resource as r with input.action as a with input.context as c
}

searching_as(role) := json.patch(search, [{"op": "replace", "path": "/subject/subject_role", "value": [role]}])

delete_by(org, custodians) := json.patch(register, [
	{"op": "replace", "path": "/subject/subject_organization_id", "value": org},
	{"op": "replace", "path": "/resource/type", "value": "List"},
	{"op": "replace", "path": "/action/request", "value": {"method": "DELETE", "path": "/List/l1"}},
	{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "delete"},
	{"op": "replace", "path": "/context/custodians", "value": custodians},
])

test_metadata if {
	localization.release == "1.1.0"
	localization.agreement == "LAS-TA-AUTHZ-003"
}

test_applicable_only_on_nvi if {
	c := search.context
	localization.applicable with input.context as c
	c2 := json.patch(c, [{"op": "replace", "path": "/service", "value": "node-fhir"}])
	not localization.applicable with input.context as c2
}

# --- search ----------------------------------------------------------------------------------------

test_gp_search_allowed if {
	allow_for(search)
	count(deny_for(search)) == 0
}

test_pharmacist_search_allowed if allow_for(searching_as("17.000"))

test_nurse_search_allowed if allow_for(searching_as("30.000"))

test_carer_search_denied if {
	inp := searching_as("86.000")
	not allow_for(inp)
	deny_for(inp) == {"role-not-allowed-localization"}
}

test_insurance_physician_search_denied if {
	inp := searching_as("01.048")
	not allow_for(inp)
	deny_for(inp) == {"role-not-allowed-localization"}
}

test_unknown_role_search_denied if {
	inp := searching_as("99.999")
	not allow_for(inp)
	deny_for(inp) == {"unknown-role"}
}

test_search_without_professional_denied if {
	inp := json.patch(search, [{"op": "remove", "path": "/subject/subject_id"}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:subject.subject_id"}
}

test_search_other_purpose_denied if {
	inp := json.patch(search, [{"op": "replace", "path": "/context/purpose_of_use", "value": "HRESCH"}])
	not allow_for(inp)
	deny_for(inp) == {"purpose-not-allowed"}
}

test_search_consent_refused_denied if {
	inp := json.patch(search, [{"op": "add", "path": "/context/mitz_consent", "value": "Deny"}])
	not allow_for(inp)
	deny_for(inp) == {"consent-not-permit"}
}

test_search_consent_permit_allowed if {
	allow_for(json.patch(search, [{"op": "add", "path": "/context/mitz_consent", "value": "Permit"}]))
}

test_search_other_resource_denied if {
	inp := json.patch(search, [{"op": "replace", "path": "/resource/type", "value": "Patient"}])
	not allow_for(inp)
	deny_for(inp) == {"resource-type-not-allowed:Patient"}
}

test_search_post_elsewhere_denied if {
	inp := json.patch(search, [{"op": "replace", "path": "/action/request/method", "value": "PUT"}])
	not allow_for(inp)
	deny_for(inp) == {"method-not-allowed"}
}

# --- custodian operations ------------------------------------------------------------------------

test_register_by_custodian_allowed if {
	allow_for(register)
	count(deny_for(register)) == 0
}

test_register_for_other_custodian_denied if {
	inp := json.patch(register, [{"op": "replace", "path": "/context/custodians", "value": ["00000009"]}])
	not allow_for(inp)
	deny_for(inp) == {"not-custodian"}
}

test_register_mixed_custodians_denied if {
	inp := json.patch(register, [{"op": "replace", "path": "/context/custodians", "value": ["00000002", "00000009"]}])
	not allow_for(inp)
	deny_for(inp) == {"not-custodian"}
}

test_register_without_custodians_denied if {
	inp := json.patch(register, [{"op": "replace", "path": "/context/custodians", "value": []}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:context.custodians"}
}

test_register_needs_no_role if allow_for(json.patch(register, [{"op": "add", "path": "/subject/subject_role", "value": ["86.000"]}]))

test_create_list_by_custodian_allowed if {
	allow_for(json.patch(register, [
		{"op": "replace", "path": "/resource/type", "value": "List"},
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "create"},
	]))
}

test_transaction_on_list_type_denied if {
	inp := json.patch(register, [{"op": "replace", "path": "/resource/type", "value": "List"}])
	not allow_for(inp)
	deny_for(inp) == {"resource-type-not-allowed:List"}
}

test_delete_by_custodian_allowed if allow_for(delete_by("00000002", ["00000002"]))

test_delete_by_other_denied if {
	inp := delete_by("00000005", ["00000002"])
	not allow_for(inp)
	deny_for(inp) == {"not-custodian"}
}

test_read_own_record_allowed if {
	allow_for(json.patch(delete_by("00000002", ["00000002"]), [
		{"op": "replace", "path": "/action/request", "value": {"method": "GET", "path": "/List/l1"}},
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "read"},
	]))
}

test_update_denied if {
	inp := json.patch(delete_by("00000002", ["00000002"]), [
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "update"},
	])
	not allow_for(inp)
	deny_for(inp) == {"interaction-not-allowed"}
}

test_unauthenticated_denied if {
	inp := json.patch(register, [{"op": "remove", "path": "/subject/client_id"}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:subject.client_id"}
}
