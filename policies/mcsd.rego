# Addressing directory, mCSD (SPEC section 5; IHE ITI-90 find, ITI-91 _history, ITI-130 feed).
#
# - query (read, search, history): any authenticated client (subject.client_id present); the
#   directory holds no patient data.
# - update (create, update, patch, transaction, batch): only for the organisation's own URA or an
#   organisation that mandated it (OrganizationAffiliation vendor mandate). context.target_organization_id
#   is the URA of the top-level Organization the written resource chains up to; the enforcement
#   point resolves it, and context.mandated_organizations lists the URAs that mandated the subject's
#   organisation.
# - delete: never (SPEC section 5: no hard deletes, status changes instead).
#
# Public direction followed: nuts-knooppunt component/pdp/policies/mcsd_query and mcsd_update
# (separate query and update policies); ldn adds the URA ownership/mandate check they leave out.
package ldn.authz.mcsd

import rego.v1

import data.ldn.authz.lib

release := "1.1.0"

agreement := "LAS-TA-AUTHZ-004"

applicable if lib.service == "mcsd"

query_interactions := {
	"read", "vread", "search-type", "search-system",
	"history-type", "history-instance", "history-system", "capabilities",
}

update_interactions := {"create", "update", "patch", "transaction", "batch"}

is_query if lib.interaction in query_interactions

is_update if lib.interaction in update_interactions

mandated := {o | some o in input.context.mandated_organizations; is_string(o)}

may_write if {
	lib.non_empty(input.context.target_organization_id)
	input.context.target_organization_id == input.subject.subject_organization_id
}

may_write if {
	lib.non_empty(input.context.target_organization_id)
	input.context.target_organization_id in mandated
}

base_fields := [
	["subject", "client_id"],
	["action", "request", "method"],
	["action", "fhir_rest", "interaction_type"],
]

update_fields := [
	["subject", "subject_organization_id"],
	["context", "target_organization_id"],
]

deny contains concat("", ["missing-input:", concat(".", p)]) if {
	some p in base_fields
	not lib.present(p)
}

deny contains concat("", ["missing-input:", concat(".", p)]) if {
	is_update
	some p in update_fields
	not lib.present(p)
}

deny contains "delete-not-allowed" if lib.interaction == "delete"

deny contains "interaction-not-allowed" if {
	lib.present(["action", "fhir_rest", "interaction_type"])
	not is_query
	not is_update
	lib.interaction != "delete"
}

deny contains "method-not-allowed" if {
	is_query
	lib.present(["action", "request", "method"])
	not lib.read_method
}

deny contains "not-mandated" if {
	is_update
	lib.present(["context", "target_organization_id"])
	not may_write
}

default allow := false

allow if {
	count(deny) == 0
	lib.authenticated
	is_query
	lib.read_method
}

allow if {
	count(deny) == 0
	lib.authenticated
	is_update
	may_write
}

reasons contains r if some r in deny

reasons contains "allowed-by:mcsd" if allow

allowed_categories := set()

allowed_queries := set()

flags := set()

matched contains "client-authenticated" if lib.authenticated

matched contains "query-interaction" if is_query

matched contains "own-or-mandated-organization" if {
	is_update
	may_write
}
