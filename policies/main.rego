# Entry point of the ldn authorization policies: data.ldn.authz.decision.
#
# Each policy says itself when it applies (`applicable`, routed on context.service, a referral and
# the EHDS opt-out). allow is true only when exactly one policy applies, that policy allows, and all
# policies implement this release; otherwise deny (default deny, SPEC section 8). Only the
# applicable policy's reasons, categories, queries, flags and checks are reported, so a decision
# explains itself without noise from policies that did not apply.
#
# Services: "node-fhir" (a node's FHIR API: pull, notified_pull, vital_interest), "nvi"
# (localization), "mcsd" (addressing directory). Anything else: "no-applicable-policy".
package ldn.authz

import rego.v1

import data.ldn.authz.lib
import data.ldn.authz.localization
import data.ldn.authz.mcsd
import data.ldn.authz.notified_pull
import data.ldn.authz.pull
import data.ldn.authz.vital_interest

release := "1.1.0"

agreement := "LAS-TA-AUTHZ-000"

policy_releases := {
	"lib": lib.release,
	"localization": localization.release,
	"mcsd": mcsd.release,
	"notified_pull": notified_pull.release,
	"pull": pull.release,
	"vital_interest": vital_interest.release,
}

release_consistent if {
	every r in [policy_releases[k] | some k in object.keys(policy_releases)] {
		r == release
	}
}

applicable contains "localization" if localization.applicable

applicable contains "mcsd" if mcsd.applicable

applicable contains "notified_pull" if notified_pull.applicable

applicable contains "pull" if pull.applicable

applicable contains "vital_interest" if vital_interest.applicable

default selected := ""

selected := p if {
	count(applicable) == 1
	some p in applicable
}

structural_missing contains concat("", ["missing-input:", k]) if {
	some k in ["subject", "resource", "action", "context"]
	not is_object(input[k])
}

structural_missing contains "missing-input:context.service" if {
	is_object(input.context)
	not lib.non_empty(input.context.service)
}

preconditions if {
	release_consistent
	count(structural_missing) == 0
}

default allow := false

allow if {
	preconditions
	selected == "localization"
	localization.allow
}

allow if {
	preconditions
	selected == "mcsd"
	mcsd.allow
}

allow if {
	preconditions
	selected == "notified_pull"
	notified_pull.allow
}

allow if {
	preconditions
	selected == "pull"
	pull.allow
}

allow if {
	preconditions
	selected == "vital_interest"
	vital_interest.allow
}

# The selected policy's outputs, spelt out per policy: binding a whole package document to a
# variable (out := pull) makes rego-cpp compile every rule of every package into it, which under
# `with` in tests took minutes and gigabytes.
out := policy_output(localization.reasons, localization.allowed_categories, localization.allowed_queries, localization.flags, localization.matched, localization.agreement) if selected == "localization"

out := policy_output(mcsd.reasons, mcsd.allowed_categories, mcsd.allowed_queries, mcsd.flags, mcsd.matched, mcsd.agreement) if selected == "mcsd"

out := policy_output(notified_pull.reasons, notified_pull.allowed_categories, notified_pull.allowed_queries, notified_pull.flags, notified_pull.matched, notified_pull.agreement) if selected == "notified_pull"

out := policy_output(pull.reasons, pull.allowed_categories, pull.allowed_queries, pull.flags, pull.matched, pull.agreement) if selected == "pull"

out := policy_output(vital_interest.reasons, vital_interest.allowed_categories, vital_interest.allowed_queries, vital_interest.flags, vital_interest.matched, vital_interest.agreement) if selected == "vital_interest"

policy_output(reasons, categories, queries, flags, matched, agreement) := {
	"reasons": reasons,
	"allowed_categories": categories,
	"allowed_queries": queries,
	"flags": flags,
	"matched": matched,
	"agreement": agreement,
}

reasons contains r if some r in structural_missing

reasons contains "policy-release-mismatch" if not release_consistent

reasons contains "no-applicable-policy" if count(applicable) == 0

reasons contains "ambiguous-policy" if count(applicable) > 1

# A policy's allow reason only stands when the combined decision allows (release checks first).
reasons contains r if {
	some r in out.reasons
	not startswith(r, "allowed-by:")
}

reasons contains r if {
	allow
	some r in out.reasons
}

allowed_categories contains c if some c in out.allowed_categories

allowed_queries contains q if some q in out.allowed_queries

# Flags say what an allowed access relied on (the vital-interest override): only with an allow.
flags contains f if {
	allow
	some f in out.flags
}

rules_matched contains concat("", ["policy:", selected]) if selected != ""

rules_matched contains concat("", [selected, ":", m]) if some m in out.matched

decision := {
	"allow": allow,
	"reasons": reasons,
	"allowed_categories": allowed_categories,
	"allowed_queries": allowed_queries,
	"flags": flags,
	"policy": selected,
	"release": release,
	"agreements": agreements,
	"rules_matched": rules_matched,
}

agreements contains agreement

agreements contains out.agreement
