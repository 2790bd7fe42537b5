# Notified pull / verwijzen (SPEC section 9): the receiver of a referral runs only the queries the
# sender listed in the notification Task (read-resource, search-resource inputs), while the
# referral is open (restriction.period.end not passed, not cancelled).
#
# context.referral is the referral the node recorded when the notification arrived:
#   owner_ura        URA of Task.owner, the only organisation that may pull;
#   allowed_queries  the listed queries, relative to the holder's FHIR base
#                    ("Patient/123", "Observation?patient=Patient/123&category=laboratory");
#   restriction_end  Task.restriction.period.end, RFC 3339;
#   status           Task.status.
# Matching: request path and listed path compared without leading and trailing "/", query
# parameters compared as a set of (name, value) pairs (order-free), form-decoded on both sides
# ("+" is a space), presentation-only parameters (_format, _pretty) ignored.
# A referral is its own authorization base (Nuts IG, authorization.md: the holder "may have recorded
# resource-level access for data user while sending notification"): no Mitz question here.
package ldn.authz.notified_pull

import rego.v1

import data.ldn.authz.lib

release := "1.1.0"

agreement := "LAS-TA-AUTHZ-002"

applicable if {
	lib.service == "node-fhir"
	lib.has_referral
}

required_fields := [
	["subject", "client_id"],
	["subject", "subject_organization_id"],
	["action", "request", "method"],
	["action", "request", "path"],
	["context", "now"],
	["context", "referral", "owner_ura"],
	["context", "referral", "allowed_queries"],
	["context", "referral", "restriction_end"],
	["context", "referral", "status"],
]

referral := object.get(input, ["context", "referral"], {})

inactive_statuses := {"cancelled", "entered-in-error", "failed", "rejected"}

ignored_params := {"_format", "_pretty"}

is_owner if {
	lib.non_empty(referral.owner_ura)
	input.subject.subject_organization_id == referral.owner_ura
}

now_ns := lib.time_ns(input.context.now)

end_ns := lib.time_ns(referral.restriction_end)

within_period if now_ns < end_ns

active if {
	lib.non_empty(referral.status)
	not referral.status in inactive_statuses
}

request_path := trim(input.action.request.path, "/")

request_params contains [k, v] if {
	params := object.get(input, ["action", "request", "query_params"], {})
	some k in object.keys(params)
	not k in ignored_params
	some v in params[k]
}

# One entry per listed query: {"path", "params"}; "+" becomes %20 first so rego-cpp's decoder
# agrees with form decoding (urllib.parse.parse_qs) at the enforcement point.
listed contains {"path": trim(parts[0], "/"), "params": params} if {
	some q in referral.allowed_queries
	is_string(q)
	parts := split(q, "?")
	query := concat("?", array.slice(parts, 1, count(parts)))
	decoded := urlquery.decode_object(replace(query, "+", "%20"))
	params := {[k, v] | some k in object.keys(decoded); not k in ignored_params; some v in decoded[k]}
}

query_listed if {
	some entry in listed
	entry.path == request_path
	entry.params == request_params
}

deny contains concat("", ["missing-input:", concat(".", p)]) if {
	some p in required_fields
	not lib.present(p)
}

deny contains "not-referral-owner" if {
	lib.present(["subject", "subject_organization_id"])
	lib.present(["context", "referral", "owner_ura"])
	not is_owner
}

deny contains "invalid-input:context.now" if {
	lib.present(["context", "now"])
	not now_ns
}

deny contains "invalid-input:context.referral.restriction_end" if {
	lib.present(["context", "referral", "restriction_end"])
	not end_ns
}

deny contains "restriction-ended" if now_ns >= end_ns

deny contains "referral-cancelled" if referral.status == "cancelled"

deny contains concat("", ["referral-not-active:", referral.status]) if {
	referral.status in inactive_statuses
	referral.status != "cancelled"
}

deny contains "method-not-allowed" if {
	lib.present(["action", "request", "method"])
	input.action.request.method != "GET"
}

deny contains "interaction-not-allowed" if {
	lib.present(["action", "fhir_rest", "interaction_type"])
	not lib.interaction in lib.read_interactions
}

deny contains "query-not-in-referral" if {
	lib.present(["action", "request", "path"])
	not query_listed
}

# A parameter value that is not a list of strings would drop out of the comparison above.
deny contains "invalid-input:action.request.query_params" if {
	params := object.get(input, ["action", "request", "query_params"], {})
	some k in object.keys(params)
	not string_array(params[k])
}

deny contains "invalid-input:action.request.query_params" if {
	not is_object(object.get(input, ["action", "request", "query_params"], {}))
}

string_array(v) if {
	is_array(v)
	every x in v {
		is_string(x)
	}
}

deny contains "patient-mismatch" if lib.patient_mismatch

default allow := false

allow if {
	count(deny) == 0
	lib.authenticated
	is_owner
	within_period
	active
	input.action.request.method == "GET"
	query_listed
	not lib.patient_mismatch
}

reasons contains r if some r in deny

reasons contains "allowed-by:notified_pull" if allow

allowed_categories := set()

allowed_queries := {q | some q in referral.allowed_queries; is_string(q)}

flags := set()

matched contains "client-authenticated" if lib.authenticated

matched contains "referral-owner" if is_owner

matched contains "within-restriction-period" if within_period

matched contains "referral-active" if active

matched contains "query-listed" if query_listed

matched contains "patient-consistent" if not lib.patient_mismatch
