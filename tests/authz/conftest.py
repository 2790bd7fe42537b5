"""Fixtures for the authorization tests: one compiled PDP over the repository's policies."""

from __future__ import annotations

import pytest

from ldn.authz.pdp import PolicyDecisionPoint
from tests.authz.inputs import POLICY_DIR


@pytest.fixture(scope="session")
def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint(POLICY_DIR, strict=True)
