"""The components that contribute services to the network, in mount order.

Each entry names a module exposing `service_definitions(topology) -> list[ServiceDefinition]`.
A new capability registers here and nowhere else.
"""

from __future__ import annotations

COMPONENTS: tuple[str, ...] = (
    "ldn.network.registry",
    "ldn.auth.service",
    "ldn.localization.prs",
    "ldn.localization.nvi",
    "ldn.consent.service",
    "ldn.authz.service",
    "ldn.audit.service",
    "ldn.addressing.service",
    "ldn.node.service",
    "ldn.afspraken.service",
)
