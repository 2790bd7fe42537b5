# Localization at the national referral index, NVI (SPEC section 6).
#
# - search (GET /List?subject:identifier=...): a treating professional only, i.e. a role code
#   whose group in data.ldn.tables.role_categories has "treating": true, for purpose TREAT. The NVI
#   holds no BSN, so it cannot ask Mitz itself; when the enforcement point did get a Mitz answer it
#   must be "Permit" (the public NVI has no consent check at all, SPEC section 13).
# - register (transaction/batch Bundle, or create of a List), delete, read: only the custodian
#   itself. context.custodians lists the custodian URA of every record the request names (the
#   enforcement point reads them from the Bundle entries or the stored List); all must equal
#   subject.subject_organization_id.
# - anything else (update, patch, history): denied; registrations are POST and DELETE only.
package ldn.authz.localization

import rego.v1

import data.ldn.authz.lib

release := "1.1.0"

agreement := "LAS-TA-AUTHZ-003"

applicable if lib.service == "nvi"

custodian_interactions := {"create", "transaction", "batch", "delete", "read"}

is_search if lib.interaction == "search-type"

is_custodian_op if lib.interaction in custodian_interactions

base_fields := [
	["subject", "client_id"],
	["subject", "subject_organization_id"],
	["resource", "type"],
	["action", "fhir_rest", "interaction_type"],
]

search_fields := [
	["action", "request", "method"],
	["subject", "subject_id"],
	["subject", "subject_role"],
	["context", "purpose_of_use"],
]

# Bundle for transaction/batch at the base, List for everything else.
resource_ok if {
	lib.interaction in {"transaction", "batch"}
	input.resource.type == "Bundle"
}

resource_ok if {
	not lib.interaction in {"transaction", "batch"}
	input.resource.type == "List"
}

custodians := {c | some c in input.context.custodians}

is_custodian if {
	count(custodians) > 0
	lib.non_empty(input.subject.subject_organization_id)
	every c in custodians {
		c == input.subject.subject_organization_id
	}
}

consent_not_refused if not lib.present(["context", "mitz_consent"])

consent_not_refused if lib.consent_permit

deny contains concat("", ["missing-input:", concat(".", p)]) if {
	some p in base_fields
	not lib.present(p)
}

deny contains concat("", ["missing-input:", concat(".", p)]) if {
	is_search
	some p in search_fields
	not lib.present(p)
}

deny contains "missing-input:context.custodians" if {
	is_custodian_op
	count(custodians) == 0
}

deny contains "interaction-not-allowed" if {
	lib.present(["action", "fhir_rest", "interaction_type"])
	not is_search
	not is_custodian_op
}

deny contains concat("", ["resource-type-not-allowed:", input.resource.type]) if {
	lib.non_empty(input.resource.type)
	not resource_ok
}

deny contains "method-not-allowed" if {
	is_search
	lib.present(["action", "request", "method"])
	not lib.read_method
}

deny contains "unknown-role" if {
	is_search
	count(lib.subject_roles) > 0
	count(lib.known_roles) == 0
}

deny contains "role-not-allowed-localization" if {
	is_search
	count(lib.known_roles) > 0
	not lib.treating
}

deny contains "purpose-not-allowed" if {
	is_search
	lib.present(["context", "purpose_of_use"])
	not lib.purpose_treat
}

deny contains "consent-not-permit" if {
	is_search
	not consent_not_refused
}

deny contains "not-custodian" if {
	is_custodian_op
	count(custodians) > 0
	not is_custodian
}

default allow := false

allow if {
	count(deny) == 0
	lib.authenticated
	is_search
	input.resource.type == "List"
	lib.read_method
	lib.non_empty(input.subject.subject_id)
	lib.treating
	lib.purpose_treat
	consent_not_refused
}

allow if {
	count(deny) == 0
	lib.authenticated
	is_custodian_op
	resource_ok
	is_custodian
}

reasons contains r if some r in deny

reasons contains "allowed-by:localization" if allow

allowed_categories := set()

allowed_queries := set()

flags := set()

matched contains "client-authenticated" if lib.authenticated

matched contains "treating-professional" if {
	is_search
	lib.treating
}

matched contains "purpose-treat" if {
	is_search
	lib.purpose_treat
}

matched contains "custodian" if {
	is_custodian_op
	is_custodian
}
