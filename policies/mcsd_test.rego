# Tests for ldn.authz.mcsd: queries by any authenticated client, writes for own or mandated URA.
package ldn.authz.mcsd_test

import rego.v1

import data.ldn.authz.mcsd

query := {
	"subject": {"client_id": "client-1", "subject_organization_id": "00000001"},
	"resource": {"type": "Organization"},
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "GET", "path": "/Organization", "query_params": {"identifier": ["x|y"]}},
		"fhir_rest": {"interaction_type": "search-type"},
	},
	"context": {"service": "mcsd", "data_holder_organization_id": "90000001"},
}

update := {
	"subject": {"client_id": "vendor-1", "subject_organization_id": "00000007"},
	"resource": {"type": "Endpoint", "id": "e1"},
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "PUT", "path": "/Endpoint/e1"},
		"fhir_rest": {"interaction_type": "update"},
	},
	"context": {
		"service": "mcsd",
		"data_holder_organization_id": "90000001",
		"target_organization_id": "00000007",
		"mandated_organizations": ["00000008"],
	},
}

allow_for(inp) if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	mcsd.allow with input.subject as s with input.resource as r with input.action as a with input.context as c
}

deny_for(inp) := d if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	d := mcsd.deny with input.subject as s with input.resource as r with input.action as a with input.context as c
}

writing_for(target) := json.patch(update, [{"op": "replace", "path": "/context/target_organization_id", "value": target}])

test_metadata if {
	mcsd.release == "1.1.0"
	mcsd.agreement == "LAS-TA-AUTHZ-004"
}

test_applicable_only_on_mcsd if {
	c := query.context
	mcsd.applicable with input.context as c
	c2 := json.patch(c, [{"op": "replace", "path": "/service", "value": "nvi"}])
	not mcsd.applicable with input.context as c2
}

test_query_allowed if {
	allow_for(query)
	count(deny_for(query)) == 0
}

test_history_allowed if {
	allow_for(json.patch(query, [
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "history-type"},
		{"op": "replace", "path": "/action/request/path", "value": "/Organization/_history"},
	]))
}

test_query_unauthenticated_denied if {
	inp := json.patch(query, [{"op": "remove", "path": "/subject/client_id"}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:subject.client_id"}
}

test_query_blank_client_denied if {
	inp := json.patch(query, [{"op": "replace", "path": "/subject/client_id", "value": " "}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:subject.client_id"}
}

test_query_with_put_denied if {
	inp := json.patch(query, [{"op": "replace", "path": "/action/request/method", "value": "PUT"}])
	not allow_for(inp)
	deny_for(inp) == {"method-not-allowed"}
}

test_update_own_allowed if {
	allow_for(update)
	count(deny_for(update)) == 0
}

test_update_mandated_allowed if allow_for(writing_for("00000008"))

test_update_not_mandated_denied if {
	inp := writing_for("00000009")
	not allow_for(inp)
	deny_for(inp) == {"not-mandated"}
}

test_update_without_target_denied if {
	inp := json.patch(update, [{"op": "remove", "path": "/context/target_organization_id"}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:context.target_organization_id"}
}

test_create_not_mandated_denied if {
	inp := json.patch(writing_for("00000009"), [
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "create"},
		{"op": "replace", "path": "/action/request", "value": {"method": "POST", "path": "/Endpoint"}},
	])
	not allow_for(inp)
	deny_for(inp) == {"not-mandated"}
}

test_transaction_mandated_allowed if {
	allow_for(json.patch(writing_for("00000008"), [{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "transaction"}]))
}

test_delete_denied_even_own if {
	inp := json.patch(update, [{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "delete"}])
	not allow_for(inp)
	deny_for(inp) == {"delete-not-allowed"}
}

test_operation_denied if {
	inp := json.patch(query, [{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "operation"}])
	not allow_for(inp)
	deny_for(inp) == {"interaction-not-allowed"}
}
