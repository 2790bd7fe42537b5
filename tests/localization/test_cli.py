"""`ldn prs ...` and `ldn nvi ...` against the database and key files of a running network."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from ldn.cli import app
from ldn.localization.nvi import store
from tests.localization.conftest import NVI_RECIPIENT, Loc, make_bsn


@pytest.fixture
def cli_env(fast_loc: Loc, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    settings = fast_loc.network.settings
    monkeypatch.setenv("LDN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LDN_DATABASE_URL", settings.resolved_database_url())
    return CliRunner()


async def test_prs_rotate_retire_and_list(fast_loc: Loc, cli_env: CliRunner) -> None:
    listed = cli_env.invoke(app, ["prs", "recipients"])
    assert listed.exit_code == 0, listed.output
    assert "ura:90000901" in listed.output
    rotated = cli_env.invoke(app, ["prs", "rotate", "ura:90000901"])
    assert rotated.exit_code == 0, rotated.output
    assert "now 2" in rotated.output
    # The running PRS evaluates under the new version (its recipient cache is off in this test).
    assert await fast_loc.node_client("00000020").active_key_versions() == ["1", "2"]
    refused = cli_env.invoke(app, ["prs", "retire", "ura:90000901", "--version", "2"])
    assert refused.exit_code == 1 and "current" in refused.output
    retired = cli_env.invoke(app, ["prs", "retire", "ura:90000901", "--version", "1"])
    assert retired.exit_code == 0, retired.output
    assert await fast_loc.node_client("00000020").active_key_versions() == ["2"]
    unknown = cli_env.invoke(app, ["prs", "rotate", "ura:00000040"])
    assert unknown.exit_code == 2


async def test_prs_register_from_a_jwk_file(fast_loc: Loc, cli_env: CliRunner, tmp_path: object) -> None:
    from pathlib import Path

    from joserfc.jwk import ECKey

    path = Path(str(tmp_path)) / "recipient.json"
    path.write_text(json.dumps(ECKey.generate_key("P-256").as_dict(private=False)))
    result = cli_env.invoke(app, ["prs", "register", "ura:00000040", "--scope", "research", "--jwk", str(path)])
    assert result.exit_code == 0, result.output
    assert "registered" in result.output
    path.write_text(json.dumps(ECKey.generate_key("P-256").as_dict(private=True)))
    result = cli_env.invoke(app, ["prs", "register", "ura:00000040", "--scope", "research", "--jwk", str(path)])
    assert result.exit_code == 1


async def test_nvi_rekey_keys_and_purge(fast_loc: Loc, cli_env: CliRunner) -> None:
    client = fast_loc.node_client("00000030")
    bsns = [make_bsn(5000 + i) for i in range(4)]
    await client.register_many([(b, ["Condition"]) for b in bsns])
    keys = cli_env.invoke(app, ["nvi", "keys"])
    assert keys.exit_code == 0 and "active" in keys.output
    result = cli_env.invoke(app, ["nvi", "rekey", "--grace-seconds", "0.2", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "v2 active" in result.output and "4 rows converted" in result.output
    await asyncio.sleep(0.1)
    assert len(await fast_loc.node_client("00000050").search(bsns[0])) == 1
    purge = cli_env.invoke(app, ["nvi", "purge-oprf-version", "1", "--yes"])
    assert purge.exit_code == 0 and "deleted 4" in purge.output
    with fast_loc.network.database.transaction(readonly=True) as session:
        assert store.count_records(session) == 0
    assert NVI_RECIPIENT[0] == "ura:90000901"
