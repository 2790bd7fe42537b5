"""The pseudonymisation service (PRS): RFC 9497 OPRF evaluation per recipient and key version."""

from __future__ import annotations

from ldn.localization.prs.api import create_app, service_definitions

__all__ = ["create_app", "service_definitions"]
