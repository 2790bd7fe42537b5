"""The national referral index (NVI): localization records keyed by PRS pseudonyms."""

from __future__ import annotations

from ldn.localization.nvi.api import create_app, service_definitions

__all__ = ["create_app", "service_definitions"]
