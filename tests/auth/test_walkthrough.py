"""Runs the walkthrough in docs/authentication.md against a real `ldn up`, so the docs stay true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import free_port, start, stop, wait_for_network

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "authentication.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_documented_walkthrough_works(tmp_path: Path, database_url: str) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    port = free_port()
    env = {
        **os.environ,
        "LDN_DATABASE_URL": database_url,
        "LDN_DATA_DIR": str(tmp_path / "var"),
        "LDN_AUTH_PKI_DIR": str(tmp_path / "var" / "pki"),
        "LDN_PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = start(["up"], tmp_path, env)
    try:
        wait_for_network(proc, tmp_path / "var")
        script = "set -euo pipefail\n" + "\n".join(blocks("sh")).replace("8080", str(port))
        shell = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert shell.returncode == 0, shell.stderr
        assert '"user_assurance":"dezi"' in shell.stdout
        assert '"organization_ura":"00000020"' in shell.stdout
        assert shell.stdout.count('"user_id":"900000011"') == 2
        (python_block,) = blocks("python")
        py = subprocess.run(
            [sys.executable, "-c", python_block.replace("8080", str(port))],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert py.returncode == 0, py.stderr
        assert py.stdout.strip() == "Huisartsenpraktijk De Linde DPoP"
    finally:
        stop(proc)
