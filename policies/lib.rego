# Shared helpers for the ldn authorization policies (no decisions of its own).
#
# Input model: SPEC section 8, which follows the GF Authorization data model of the Nuts
# Generic Functions IG (nuts-foundation/nl-generic-functions-ig, input/pagecontent/authorization.md:
# subject / resource / action / context, OpenID AuthZEN information model). Deviations, on purpose:
# - subject attributes are flat (the IG nests them under subject.properties);
# - context.mitz_consent carries the Mitz answer string ("Permit", "Deny", "NotApplicable",
#   "Indeterminate"; only "Permit" means yes, SPEC section 7) where the IG uses a boolean.
# Context fields ldn adds are documented in src/ldn/authz/model.py.
#
# rego-cpp (regopy 1.5.2) quirks these policies avoid, found while writing them:
# - time.parse_rfc3339_ns returns undefined for the "Z" designator: use time_ns() below;
# - a set comprehension with `some k, v in obj` does not parse: iterate object.keys() instead;
# - inside a function, a comprehension indexing by an argument (tab[arg]) ignores the argument
#   and iterates every key: functions here never contain comprehensions;
# - sprintf("x:%s", [s]) can wrap a computed string in quotes: reasons are built with concat();
# - `with input as {...}` in tests can crash the interpreter: tests replace input.subject,
#   input.resource, input.action and input.context one by one (see *_test.rego).
package ldn.authz.lib

import rego.v1

release := "1.1.0"

agreement := "LAS-TA-AUTHZ-000"

roles_table := data.ldn.tables.role_categories

# A string with something other than white space in it.
non_empty(x) if {
	is_string(x)
	trim_space(x) != ""
}

# present(path): input holds a usable value at path (array of keys).
present(path) if non_empty(object.get(input, path, null))

present(path) if {
	v := object.get(input, path, null)
	is_array(v)
	count(v) > 0
}

present(path) if is_boolean(object.get(input, path, null))

present(path) if is_object(object.get(input, path, null))

# RFC 3339 to nanoseconds. rego-cpp rejects the "Z" designator, so it is rewritten to +00:00
# (same instant); undefined for anything unparsable, which callers turn into a deny.
time_ns(t) := time.parse_rfc3339_ns(concat("", [substring(t, 0, count(t) - 1), "+00:00"])) if {
	is_string(t)
	endswith(upper(t), "Z")
}

time_ns(t) := time.parse_rfc3339_ns(t) if {
	is_string(t)
	not endswith(upper(t), "Z")
}

service := input.context.service

authenticated if non_empty(input.subject.client_id)

has_referral if is_object(input.context.referral)

optout if input.context.ehds_primary_optout == true

consent_permit if input.context.mitz_consent == "Permit"

purpose_treat if input.context.purpose_of_use == "TREAT"

has_patient if non_empty(input.context.patient_bsn)

has_patient if non_empty(input.context.patient_id)

# The BSN the request resolves to must be the one bound in the access token (when both known).
patient_mismatch if {
	non_empty(input.context.patient_bsn)
	non_empty(input.context.patient_bsn_from_token)
	input.context.patient_bsn != input.context.patient_bsn_from_token
}

read_interactions := {"read", "vread", "search-type"}

interaction := input.action.fhir_rest.interaction_type

# GET, or a POST [type]/_search (FHIR search via POST).
read_method if input.action.request.method == "GET"

read_method if {
	input.action.request.method == "POST"
	interaction == "search-type"
	endswith(input.action.request.path, "/_search")
}

subject_roles := {r | some r in input.subject.subject_role; is_string(r)}

known_roles := {r | some r in subject_roles; roles_table.roles[r]}

role_groups := {roles_table.roles[r].group | some r in known_roles}

# Union over all the subject's known roles.
allowed_categories := {c | some g in role_groups; some c in roles_table.groups[g].categories}

treating if {
	some g in role_groups
	roles_table.groups[g].treating == true
}
