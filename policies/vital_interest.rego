# EHDS primary-use opt-out with vital-interest override (SPEC section 7).
#
# Applies to a pull on the node's FHIR API when context.ehds_primary_optout is true. Denied unless
# context.vital_interest.reason is a non-empty string; then allowed exactly when the pull policy
# would allow without the opt-out (pull.base_allow), and flagged "vital-interest-override" so the
# access is logged and reported. Notified pull (a referral) is not covered by this policy.
package ldn.authz.vital_interest

import rego.v1

import data.ldn.authz.lib
import data.ldn.authz.pull

release := "1.1.0"

agreement := "LAS-TA-AUTHZ-005"

applicable if {
	lib.service == "node-fhir"
	not lib.has_referral
	lib.optout
}

reason_given if lib.non_empty(input.context.vital_interest.reason)

deny contains "vital-interest-not-applicable" if not lib.optout

deny contains "ehds-primary-optout" if {
	lib.optout
	not reason_given
}

deny contains "vital-interest-reason-missing" if {
	lib.optout
	not reason_given
}

deny contains r if some r in pull.base_deny

default allow := false

allow if {
	lib.optout
	reason_given
	pull.base_allow
}

reasons contains r if some r in deny

reasons contains "allowed-by:vital_interest" if allow

flags contains "vital-interest-override" if allow

allowed_categories := lib.allowed_categories

allowed_queries := set()

matched contains m if {
	some m in pull.matched
	m != "no-ehds-optout"
}

matched contains "vital-interest-reason-given" if reason_given
