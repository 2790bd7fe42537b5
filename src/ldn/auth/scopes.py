"""Which scopes an organisation may obtain at which authorization server: the single place.

National services accept tokens from the national authorization server; a care-provider node's
FHIR API accepts tokens from that node's own authorization server. Administrative scopes go only
to the organisation that operates the service they administer.
"""

from __future__ import annotations

from ldn.core.topology import Organization, Topology

# Scopes any participant may obtain at the national authorization server.
NATIONAL_PARTICIPANT_SCOPES = frozenset(
    {
        "prs:read",
        "nvi:read",
        "nvi:write",
        "mcsd:read",
        "mcsd:write",
        "lrza:read",
        "consent:read",
        "consent:subscribe",
        "audit:write",
        "audit:read",
        "authz:explain",
    }
)

# Administrative scopes per national service; granted only to its operator.
ADMIN_SCOPES: dict[str, frozenset[str]] = {
    "prs": frozenset({"prs:admin"}),
    "nvi": frozenset({"nvi:admin"}),
    "mcsd": frozenset({"mcsd:admin"}),
    "lrza": frozenset({"lrza:admin"}),
    "consent": frozenset({"consent:admin"}),
    "audit": frozenset({"audit:export", "audit:admin"}),
    "authz": frozenset({"authz:admin"}),
}

# Scopes at a care-provider node's own authorization server.
NODE_SCOPES = frozenset({"fhir:read", "notification:write"})

CITIZEN_SCOPE = "citizen"


def national_scopes_for(org: Organization) -> frozenset[str]:
    scopes = set(NATIONAL_PARTICIPANT_SCOPES)
    for service in org.services:
        scopes |= ADMIN_SCOPES.get(service, frozenset())
    return frozenset(scopes)


def node_scopes_for(org: Organization, topology: Topology) -> frozenset[str]:
    # Every participant may talk to every node; national operators have no business there.
    if org.type == "national-service":
        return frozenset()
    return NODE_SCOPES
