# Pull / raadplegen (SPEC section 9): a professional queries BgZ-style data at a data holder.
#
# Allow only when every one of these holds (default deny; `deny` explains which failed):
# authenticated client; Mitz answer "Permit" (SPEC section 7: only Permit means yes); purpose TREAT;
# a patient in context, agreeing with the patient bound in the token; a read/search interaction;
# a known resource type; and every data category the request touches (the type itself, Observation
# categories, _include/_revinclude targets) granted to one of the subject's role codes by
# data.ldn.tables.role_categories (SPEC section 8: a pharmacist reads medication, not treatment notes;
# non-BIG-registered staff only what their role code grants). An EHDS primary-use opt-out denies here;
# the vital-interest override lives in ldn.authz.vital_interest, which reuses base_allow.
#
# Public direction followed: nuts-knooppunt component/pdp/policies/bgz (patient-scoped queries,
# Mitz consent gate, resource.type + fhir_rest.interaction_type as the primary selectors).
package ldn.authz.pull

import rego.v1

import data.ldn.authz.lib

release := "1.1.0"

agreement := "LAS-TA-AUTHZ-001"

types := data.ldn.tables.resource_categories

# The node's FHIR API, no referral (that is notified_pull), no opt-out (that is vital_interest).
applicable if {
	lib.service == "node-fhir"
	not lib.has_referral
	not lib.optout
}

required_fields := [
	["subject", "client_id"],
	["subject", "subject_organization_id"],
	["subject", "subject_role"],
	["resource", "type"],
	["action", "request", "method"],
	["action", "request", "path"],
	["action", "fhir_rest", "interaction_type"],
	["context", "mitz_consent"],
	["context", "purpose_of_use"],
]

fhir_rest := object.get(input, ["action", "fhir_rest"], {})

search_params := object.get(fhir_rest, "search_params", {})

includes := {v | some v in object.get(fhir_rest, "include", [])}

revincludes := {v | some v in object.get(fhir_rest, "revinclude", [])}

# --- data categories ---------------------------------------------------------------------------

category_values := {trim_space(part) |
	some raw in object.get(search_params, "category", [])
	some part in split(raw, ",")
}

# FHIR ORs comma-separated and repeated category values, so all must be known to narrow the request.
observation_narrowed if {
	count(category_values) > 0
	every raw in object.get(search_params, "category", []) {
		is_string(raw)
	}
	every v in category_values {
		types.observation.category_codes[v]
	}
}

observation_categories := {types.observation.category_codes[v] | some v in category_values} if {
	observation_narrowed
} else := {c | some c in types.observation.all_categories}

clinical_type(t) if types.resource_types[t]

clinical_type(t) if t == "Observation"

include_known(v) if types.include_targets[v]

# Typed include "Source:param:Target" names its target; wildcards never match.
include_known(v) if {
	count(split(v, ":")) == 3
	not contains(v, "*")
}

# Arrays, not comprehensions: rego-cpp mis-binds function arguments inside comprehensions.
include_targets(v) := types.include_targets[v]

include_targets(v) := [split(v, ":")[2]] if {
	not types.include_targets[v]
	include_known(v)
}

unknown_includes := {v | some v in (includes | revincludes); not include_known_any(v)}

include_known_any(v) if {
	v in includes
	include_known(v)
}

# _revinclude "Source:param" pulls Source resources: known when Source is a pullable type.
include_known_any(v) if {
	v in revincludes
	not contains(v, "*")
	count(split(v, ":")) >= 2
}

included_types contains t if {
	some v in includes
	include_known(v)
	some t in include_targets(v)
}

included_types contains split(v, ":")[0] if {
	some v in revincludes
	include_known_any(v)
}

unknown_included_types := {t | some t in included_types; not clinical_type(t); not t in types.non_clinical_types}

required_categories contains types.resource_types[input.resource.type]

required_categories contains c if {
	input.resource.type == "Observation"
	some c in observation_categories
}

required_categories contains types.resource_types[t] if some t in included_types

# Included Observations are not narrowed by the primary search's category parameter.
required_categories contains c if {
	"Observation" in included_types
	some c in types.observation.all_categories
}

categories_granted if {
	count(required_categories) > 0
	every c in required_categories {
		c in lib.allowed_categories
	}
}

# --- reasons -----------------------------------------------------------------------------------

base_deny contains concat("", ["missing-input:", concat(".", p)]) if {
	some p in required_fields
	not lib.present(p)
}

base_deny contains "patient-missing" if not lib.has_patient

base_deny contains "patient-mismatch" if lib.patient_mismatch

base_deny contains "consent-not-permit" if {
	lib.present(["context", "mitz_consent"])
	not lib.consent_permit
}

base_deny contains "purpose-not-allowed" if {
	lib.present(["context", "purpose_of_use"])
	not lib.purpose_treat
}

base_deny contains "interaction-not-allowed" if {
	lib.present(["action", "fhir_rest", "interaction_type"])
	not lib.interaction in lib.read_interactions
}

base_deny contains "method-not-allowed" if {
	lib.present(["action", "request", "method"])
	not lib.read_method
}

base_deny contains concat("", ["unknown-resource-type:", input.resource.type]) if {
	lib.non_empty(input.resource.type)
	not clinical_type(input.resource.type)
}

base_deny contains concat("", ["unknown-resource-type:", t]) if some t in unknown_included_types

base_deny contains concat("", ["unknown-include:", v]) if some v in unknown_includes

# A malformed include list would be skipped here but still honoured by the FHIR server.
base_deny contains concat("", ["invalid-input:action.fhir_rest.", k]) if {
	some k in ["include", "revinclude"]
	v := object.get(fhir_rest, k, [])
	not string_array(v)
}

string_array(v) if {
	is_array(v)
	every x in v {
		is_string(x)
	}
}

# Reverse chaining (_has) filters on resources of other categories: it would leak them.
base_deny contains "chained-search-not-allowed" if {
	some k in object.keys(search_params)
	startswith(k, "_has")
}

base_deny contains "unknown-role" if {
	count(lib.subject_roles) > 0
	count(lib.known_roles) == 0
}

base_deny contains concat("", ["role-not-allowed-category:", c]) if {
	count(lib.known_roles) > 0
	some c in required_categories
	not c in lib.allowed_categories
}

deny contains r if some r in base_deny

deny contains "ehds-primary-optout" if lib.optout

# --- decision ----------------------------------------------------------------------------------

# Positive conditions repeated on purpose: a gap in `deny` can never turn into an allow.
default base_allow := false

base_allow if {
	count(base_deny) == 0
	lib.authenticated
	lib.consent_permit
	lib.purpose_treat
	lib.has_patient
	not lib.patient_mismatch
	lib.interaction in lib.read_interactions
	lib.read_method
	clinical_type(input.resource.type)
	count(unknown_includes) == 0
	count(unknown_included_types) == 0
	categories_granted
}

default allow := false

allow if {
	base_allow
	not lib.optout
}

reasons contains r if some r in deny

reasons contains "allowed-by:pull" if allow

allowed_categories := lib.allowed_categories

allowed_queries := set()

flags := set()

# The checks that held, for the decision record (NEN 7513 "the checks that were done").
matched contains "client-authenticated" if lib.authenticated

matched contains "consent-permit" if lib.consent_permit

matched contains "purpose-treat" if lib.purpose_treat

matched contains "patient-present" if lib.has_patient

matched contains "patient-consistent" if {
	lib.has_patient
	not lib.patient_mismatch
}

matched contains "interaction-read" if lib.interaction in lib.read_interactions

matched contains "role-known" if count(lib.known_roles) > 0

matched contains "categories-granted" if categories_granted

matched contains "no-ehds-optout" if not lib.optout
