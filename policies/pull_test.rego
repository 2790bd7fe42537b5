# Tests for ldn.authz.pull: every allow path and every deny reason, positive and negative.
# Inputs are built by json.patch over `base` and handed over one top-level key at a time.
package ldn.authz.pull_test

import rego.v1

import data.ldn.authz.pull

base := {
	"subject": {
		"client_id": "client-1",
		"subject_id": "900000009",
		"subject_organization_id": "00000001",
		"subject_role": ["01.015"],
	},
	"resource": {"type": "Condition"},
	"action": {
		"connection_type_code": "hl7-fhir-rest",
		"request": {"method": "GET", "path": "/Condition", "query_params": {"patient": ["Patient/p1"]}},
		"fhir_rest": {
			"interaction_type": "search-type",
			"search_params": {"patient": ["Patient/p1"]},
			"include": [],
			"revinclude": [],
		},
	},
	"context": {
		"service": "node-fhir",
		"data_holder_organization_id": "00000002",
		"patient_bsn": "999990019",
		"patient_id": "p1",
		"mitz_consent": "Permit",
		"purpose_of_use": "TREAT",
		"now": "2026-03-01T12:00:00+00:00",
	},
}

# --- helpers -----------------------------------------------------------------------------------

allow_for(inp) if {
	s := object.get(inp, "subject", null)
	r := object.get(inp, "resource", null)
	a := object.get(inp, "action", null)
	c := object.get(inp, "context", null)
	pull.allow with input.subject as s with input.resource as r with input.action as a with input.context as c
}

deny_for(inp) := d if {
	s := object.get(inp, "subject", null)
	r := object.get(inp, "resource", null)
	a := object.get(inp, "action", null)
	c := object.get(inp, "context", null)
	d := pull.deny with input.subject as s with input.resource as r with input.action as a with input.context as c
}

base_allow_for(inp) if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	pull.base_allow with input.subject as s with input.resource as r with input.action as a with input.context as c
}

applicable_for(inp) if {
	s := inp.subject
	r := inp.resource
	a := inp.action
	c := inp.context
	pull.applicable with input.subject as s with input.resource as r with input.action as a with input.context as c
}

patch(ops) := json.patch(base, ops)

as_role(role) := patch([{"op": "replace", "path": "/subject/subject_role", "value": [role]}])

# role reads resource type `t` with search params `params` (include lists stay empty)
reading(role, t, params) := json.patch(base, [
	{"op": "replace", "path": "/subject/subject_role", "value": [role]},
	{"op": "replace", "path": "/resource/type", "value": t},
	{"op": "replace", "path": "/action/request/path", "value": concat("", ["/", t])},
	{"op": "replace", "path": "/action/fhir_rest/search_params", "value": params},
])

lab := {"patient": ["Patient/p1"], "category": ["laboratory"]}

vitals := {"patient": ["Patient/p1"], "category": ["vital-signs"]}

# --- metadata and applicability ------------------------------------------------------------------

test_metadata if {
	pull.release == "1.1.0"
	pull.agreement == "LAS-TA-AUTHZ-001"
}

test_applicable_on_node_fhir if applicable_for(base)

test_not_applicable_on_nvi if not applicable_for(patch([{"op": "replace", "path": "/context/service", "value": "nvi"}]))

test_not_applicable_with_referral if {
	not applicable_for(patch([{"op": "add", "path": "/context/referral", "value": {"owner_ura": "00000001"}}]))
}

test_not_applicable_with_optout if {
	not applicable_for(patch([{"op": "add", "path": "/context/ehds_primary_optout", "value": true}]))
}

# --- role -> category ----------------------------------------------------------------------------

test_gp_reads_condition if {
	allow_for(base)
	count(deny_for(base)) == 0
}

test_specialist_reads_condition if allow_for(as_role("01.010"))

test_psychiatrist_reads_encounter if allow_for(reading("01.035", "Encounter", {}))

test_pharmacist_reads_condition_denied if {
	inp := as_role("17.000")
	not allow_for(inp)
	deny_for(inp) == {"role-not-allowed-category:Condition"}
}

test_pharmacist_reads_medication_request if allow_for(reading("17.000", "MedicationRequest", {}))

test_pharmacist_reads_medication_statement if allow_for(reading("17.000", "MedicationStatement", {}))

test_pharmacist_reads_allergies if allow_for(reading("17.000", "AllergyIntolerance", {}))

test_pharmacist_reads_lab if allow_for(reading("17.000", "Observation", lab))

test_pharmacist_reads_lab_by_system_code if {
	allow_for(reading("17.000", "Observation", {"category": ["http://terminology.hl7.org/CodeSystem/observation-category|laboratory"]}))
}

test_pharmacist_vital_signs_denied if {
	inp := reading("17.000", "Observation", vitals)
	not allow_for(inp)
	"role-not-allowed-category:ObservationVitalSigns" in deny_for(inp)
}

test_pharmacist_unnarrowed_observation_denied if {
	inp := reading("17.000", "Observation", {"patient": ["Patient/p1"]})
	not allow_for(inp)
	"role-not-allowed-category:ObservationVitalSigns" in deny_for(inp)
}

test_pharmacist_lab_or_vitals_denied if {
	not allow_for(reading("17.000", "Observation", {"category": ["laboratory,vital-signs"]}))
}

test_pharmacist_unknown_observation_category_denied if {
	not allow_for(reading("17.000", "Observation", {"category": ["laboratory,social-history"]}))
}

test_gp_reads_any_observation if allow_for(reading("01.015", "Observation", {"patient": ["Patient/p1"]}))

test_pharmacy_assistant_medication if allow_for(reading("83.000", "MedicationRequest", {}))

test_pharmacy_assistant_lab_denied if {
	inp := reading("83.000", "Observation", lab)
	not allow_for(inp)
	"role-not-allowed-category:ObservationLaboratory" in deny_for(inp)
}

test_non_big_carer_vital_signs if allow_for(reading("86.000", "Observation", vitals))

test_non_big_carer_condition_denied if {
	inp := as_role("86.000")
	not allow_for(inp)
	"role-not-allowed-category:Condition" in deny_for(inp)
}

test_employee_patient_only if {
	allow_for(reading("00.000", "Patient", {}))
	not allow_for(as_role("00.000"))
}

test_known_role_without_grant_denied if {
	inp := as_role("01.008")
	not allow_for(inp)
	"role-not-allowed-category:Condition" in deny_for(inp)
	not "unknown-role" in deny_for(inp)
}

test_unknown_role_denied if {
	inp := as_role("99.999")
	not allow_for(inp)
	deny_for(inp) == {"unknown-role"}
}

test_unknown_role_next_to_known_role if {
	allow_for(patch([{"op": "replace", "path": "/subject/subject_role", "value": ["99.999", "01.015"]}]))
}

test_roles_union if {
	inp := patch([{"op": "replace", "path": "/subject/subject_role", "value": ["17.000", "86.000"]}])
	allow_for(json.patch(inp, [
		{"op": "replace", "path": "/resource/type", "value": "Observation"},
		{"op": "replace", "path": "/action/fhir_rest/search_params", "value": vitals},
	]))
}

test_allowed_categories_output if {
	s := as_role("17.000").subject
	cats := pull.allowed_categories with input.subject as s
	cats == {"AllergyIntolerance", "MedicationRequest", "MedicationUse", "ObservationLaboratory", "Patient"}
}

# --- consent, purpose, patient -----------------------------------------------------------------

test_consent_deny_denied if {
	inp := patch([{"op": "replace", "path": "/context/mitz_consent", "value": "Deny"}])
	not allow_for(inp)
	deny_for(inp) == {"consent-not-permit"}
}

test_consent_indeterminate_denied if {
	not allow_for(patch([{"op": "replace", "path": "/context/mitz_consent", "value": "Indeterminate"}]))
}

test_consent_not_applicable_denied if {
	not allow_for(patch([{"op": "replace", "path": "/context/mitz_consent", "value": "NotApplicable"}]))
}

test_consent_missing_denied if {
	inp := patch([{"op": "remove", "path": "/context/mitz_consent"}])
	not allow_for(inp)
	"missing-input:context.mitz_consent" in deny_for(inp)
}

test_purpose_other_denied if {
	inp := patch([{"op": "replace", "path": "/context/purpose_of_use", "value": "HRESCH"}])
	not allow_for(inp)
	deny_for(inp) == {"purpose-not-allowed"}
}

test_patient_missing_denied if {
	inp := patch([{"op": "remove", "path": "/context/patient_bsn"}, {"op": "remove", "path": "/context/patient_id"}])
	not allow_for(inp)
	deny_for(inp) == {"patient-missing"}
}

test_patient_by_id_only if allow_for(patch([{"op": "remove", "path": "/context/patient_bsn"}]))

test_patient_mismatch_denied if {
	inp := patch([{"op": "add", "path": "/context/patient_bsn_from_token", "value": "999990020"}])
	not allow_for(inp)
	deny_for(inp) == {"patient-mismatch"}
}

test_patient_token_agrees if allow_for(patch([{"op": "add", "path": "/context/patient_bsn_from_token", "value": "999990019"}]))

# --- interaction and method ----------------------------------------------------------------------

test_read_allowed if {
	allow_for(patch([
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "read"},
		{"op": "replace", "path": "/action/request/path", "value": "/Condition/c1"},
	]))
}

test_create_denied if {
	inp := patch([
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "create"},
		{"op": "replace", "path": "/action/request/method", "value": "POST"},
	])
	not allow_for(inp)
	deny_for(inp) == {"interaction-not-allowed", "method-not-allowed"}
}

test_delete_denied if {
	inp := patch([
		{"op": "replace", "path": "/action/fhir_rest/interaction_type", "value": "delete"},
		{"op": "replace", "path": "/action/request/method", "value": "DELETE"},
	])
	not allow_for(inp)
	"interaction-not-allowed" in deny_for(inp)
}

test_post_search_allowed if {
	allow_for(patch([
		{"op": "replace", "path": "/action/request/method", "value": "POST"},
		{"op": "replace", "path": "/action/request/path", "value": "/Condition/_search"},
	]))
}

test_put_with_read_interaction_denied if {
	inp := patch([{"op": "replace", "path": "/action/request/method", "value": "PUT"}])
	not allow_for(inp)
	deny_for(inp) == {"method-not-allowed"}
}

# --- resource types and includes -----------------------------------------------------------------

test_unknown_resource_type_denied if {
	inp := reading("01.015", "Basic", {})
	not allow_for(inp)
	deny_for(inp) == {"unknown-resource-type:Basic"}
}

test_non_clinical_primary_type_denied if {
	inp := reading("01.015", "Practitioner", {})
	not allow_for(inp)
	"unknown-resource-type:Practitioner" in deny_for(inp)
}

test_include_medication if {
	inp := json.patch(reading("17.000", "MedicationRequest", {}), [
		{"op": "replace", "path": "/action/fhir_rest/include", "value": ["MedicationRequest:medication"]},
	])
	allow_for(inp)
}

test_include_typed_target if {
	allow_for(patch([{"op": "replace", "path": "/action/fhir_rest/include", "value": ["Condition:asserter:Practitioner"]}]))
}

test_include_unknown_denied if {
	inp := patch([{"op": "replace", "path": "/action/fhir_rest/include", "value": ["Condition:encounter"]}])
	not allow_for(inp)
	deny_for(inp) == {"unknown-include:Condition:encounter"}
}

test_include_wildcard_denied if {
	inp := patch([{"op": "replace", "path": "/action/fhir_rest/include", "value": ["*"]}])
	not allow_for(inp)
	"unknown-include:*" in deny_for(inp)
}

test_include_typed_unknown_type_denied if {
	inp := patch([{"op": "replace", "path": "/action/fhir_rest/include", "value": ["Condition:evidence-detail:Basic"]}])
	not allow_for(inp)
	"unknown-resource-type:Basic" in deny_for(inp)
}

test_included_observation_needs_all_observation_categories if {
	inp := json.patch(reading("17.000", "Observation", lab), [
		{"op": "replace", "path": "/action/fhir_rest/include", "value": ["Observation:related-target"]},
	])
	not allow_for(inp)
	"role-not-allowed-category:ObservationVitalSigns" in deny_for(inp)
}

test_revinclude_provenance if {
	allow_for(patch([{"op": "replace", "path": "/action/fhir_rest/revinclude", "value": ["Provenance:target"]}]))
}

test_revinclude_other_category_denied if {
	inp := json.patch(reading("17.000", "MedicationRequest", {}), [
		{"op": "replace", "path": "/action/fhir_rest/revinclude", "value": ["Condition:evidence-detail"]},
	])
	not allow_for(inp)
	"role-not-allowed-category:Condition" in deny_for(inp)
}

test_revinclude_wildcard_denied if {
	inp := patch([{"op": "replace", "path": "/action/fhir_rest/revinclude", "value": ["*"]}])
	not allow_for(inp)
	"unknown-include:*" in deny_for(inp)
}

test_include_not_a_list_denied if {
	inp := patch([{"op": "replace", "path": "/action/fhir_rest/include", "value": "Condition:subject"}])
	not allow_for(inp)
	deny_for(inp) == {"invalid-input:action.fhir_rest.include"}
}

test_reverse_chaining_denied if {
	inp := json.patch(reading("17.000", "MedicationRequest", {}), [
		{"op": "replace", "path": "/action/fhir_rest/search_params", "value": {"_has:Condition:patient:code": ["F32"]}},
	])
	not allow_for(inp)
	deny_for(inp) == {"chained-search-not-allowed"}
}

# --- missing input -------------------------------------------------------------------------------

test_missing_roles if {
	inp := patch([{"op": "replace", "path": "/subject/subject_role", "value": []}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:subject.subject_role"}
}

test_missing_client_id if {
	inp := patch([{"op": "remove", "path": "/subject/client_id"}])
	not allow_for(inp)
	deny_for(inp) == {"missing-input:subject.client_id"}
}

test_missing_subject if {
	inp := object.remove(base, ["subject"])
	not allow_for(inp)
	"missing-input:subject.subject_organization_id" in deny_for(inp)
}

test_missing_interaction if {
	inp := patch([{"op": "remove", "path": "/action/fhir_rest"}])
	not allow_for(inp)
	"missing-input:action.fhir_rest.interaction_type" in deny_for(inp)
}

# --- EHDS opt-out ----------------------------------------------------------------------------------

test_optout_denies_pull if {
	inp := patch([{"op": "add", "path": "/context/ehds_primary_optout", "value": true}])
	not allow_for(inp)
	deny_for(inp) == {"ehds-primary-optout"}
	base_allow_for(inp)
}

test_optout_false_allows if allow_for(patch([{"op": "add", "path": "/context/ehds_primary_optout", "value": false}]))

# pull.matched and pull.reasons on allow are checked through the PDP (test_decision_table.py):
# an inline four-way `with` per test costs rego-cpp about half a second of compilation each.
