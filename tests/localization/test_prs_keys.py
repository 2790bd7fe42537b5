"""PRS key derivation from one master secret, and the master secret's file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from ldn.localization import derivation, oprf
from ldn.localization.prs.keys import MasterSecretError, PrsKeyring, load_master_secret, parse_master_secret
from ldn.localization.settings import PrsSettings

MASTER = bytes(range(32))


def test_keys_are_deterministic_and_separated() -> None:
    keyring = PrsKeyring(MASTER)
    again = PrsKeyring(MASTER)
    k1 = keyring.oprf_private_key("ura:90000901", "nationale-verwijsindex", 1)
    assert k1 == again.oprf_private_key("ura:90000901", "nationale-verwijsindex", 1)
    assert k1 == keyring.oprf_private_key("ura:90000901", "nationale-verwijsindex", 1)  # cached, same
    others = {
        keyring.oprf_private_key("ura:90000901", "nationale-verwijsindex", 2),
        keyring.oprf_private_key("ura:90000901", "other", 1),
        keyring.oprf_private_key("ura:00000040", "nationale-verwijsindex", 1),
        PrsKeyring(b"\x01" * 32).oprf_private_key("ura:90000901", "nationale-verwijsindex", 1),
    }
    assert k1 not in others and len(others) == 4
    assert keyring.origin.kid == again.origin.kid
    assert "MASTER" not in repr(keyring) and MASTER.hex() not in repr(keyring)


def test_pseudonyms_differ_per_key_version() -> None:
    keyring = PrsKeyring(MASTER)
    x = derivation.derive_oprf_input("999990019", "ura:90000901", "nationale-verwijsindex")
    blinded = oprf.blind(x)
    v1 = oprf.unblind(
        blinded.blind,
        oprf.blind_evaluate(keyring.oprf_private_key("ura:90000901", "s", 1), blinded.blinded_element),
    )
    v2 = oprf.unblind(
        blinded.blind,
        oprf.blind_evaluate(keyring.oprf_private_key("ura:90000901", "s", 2), blinded.blinded_element),
    )
    assert v1 != v2


def test_master_secret_from_the_environment_and_from_a_file(tmp_path: Path) -> None:
    assert load_master_secret(PrsSettings(master_secret=SecretStr(MASTER.hex())), tmp_path) == MASTER
    generated = load_master_secret(PrsSettings(), tmp_path)
    path = tmp_path / "prs" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_secret(PrsSettings(), tmp_path) == generated  # stable across restarts
    assert len(generated) == 32


@pytest.mark.parametrize("text", ["", "abcd", "00" * 31, "!!!!"])
def test_short_or_malformed_master_secrets_are_refused(text: str) -> None:
    with pytest.raises(MasterSecretError):
        parse_master_secret(text)
    with pytest.raises(MasterSecretError):
        PrsKeyring(b"\x00" * 16)
