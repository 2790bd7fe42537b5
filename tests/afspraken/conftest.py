"""Fixtures for the agreement-system tests: the shipped repository and a crafted baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from ldn.afspraken import AgreementRepository
from tests.afspraken.las_helpers import SHIPPED, LasBuilder


@pytest.fixture
def las(tmp_path: Path) -> LasBuilder:
    """A builder with a valid baseline: one principle, one TA, release 1.0.0 current."""
    builder = LasBuilder(tmp_path)
    builder.agreement("LAS-P-TEST-001")
    builder.agreement("LAS-TA-TEST-001", parameters={"timeout": {"value": 30, "unit": "s"}})
    builder.release("1.0.0", {"LAS-P-TEST-001": "1.0.0", "LAS-TA-TEST-001": "1.0.0"})
    return builder


@pytest.fixture(scope="session")
def shipped() -> AgreementRepository:
    return AgreementRepository.load(SHIPPED, strict=True)
