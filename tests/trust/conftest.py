"""Fixtures for the trust tests (keys are generated once per session or module)."""

from __future__ import annotations

from pathlib import Path

import pytest
from trust_helpers import PARTICIPANTS, CertKit, make_certkit

from ldn.trust.pki import TestPki


@pytest.fixture(scope="session")
def certkit() -> CertKit:
    return make_certkit("Independent")


@pytest.fixture(scope="session")
def other_certkit() -> CertKit:
    return make_certkit("Rogue")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def memory_pki() -> TestPki:
    """An in-memory PKI with both participants issued and a first CRL."""
    pki = TestPki.create()
    for participant in PARTICIPANTS:
        pki.issue(participant)
    pki.make_crl()
    return pki
