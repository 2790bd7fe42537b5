"""The real commands: `ldn up` is healthy within 15 s and writes var/network.json; `ldn serve` runs one service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, start, stop

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {**os.environ, "LDN_DATABASE_URL": database_url, "LDN_DATA_DIR": str(tmp_path / "var")}


def test_ldn_up_is_healthy_within_15_seconds(tmp_path: Path, env: dict[str, str]) -> None:
    port = free_port()
    started = time.monotonic()
    proc = start(["up", "--port", str(port)], tmp_path, env)
    network_json = tmp_path / "var" / "network.json"
    try:
        while time.monotonic() - started < 15 and not network_json.exists():
            assert proc.poll() is None, stop(proc)
            time.sleep(0.1)
        assert network_json.exists(), "network.json not written within 15 s"
        data = json.loads(network_json.read_text())
        urls = list(data["services"].values()) + [n["base"] for n in data["nodes"].values()]
        for url in urls:
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200, url
        assert time.monotonic() - started < 15
        assert data["national"]["registry"]["ura"] == "90000908"
    finally:
        output = stop(proc)
    assert "network up" in output
    assert f"http://127.0.0.1:{port}/registry" in output


def test_ldn_serve_runs_one_service_alone(tmp_path: Path, env: dict[str, str]) -> None:
    port = free_port()
    proc = start(["serve", "registry", "--port", str(port)], tmp_path, env)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, stop(proc)
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.json()["service"] == "registry"
        # only this service is served here
        assert httpx.get(f"http://127.0.0.1:{port}/nodes/00000020/health").status_code == 404
        network = httpx.get(f"http://127.0.0.1:{port}/network").json()
        assert network["services"]["registry"] == f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_serve_unknown_service_fails_clearly(tmp_path: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ldn.cli", "serve", "nope"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 2
    assert b"unknown service 'nope'" in proc.stdout + proc.stderr


def test_broken_topology_fails_with_locations(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nnational: []\norganizations: []\ncitizens:\n  - {bsn: '123'}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ldn.cli", "topology", "check", str(bad)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{bad}:5".encode() in proc.stdout + proc.stderr


def test_db_upgrade_command(tmp_path: Path) -> None:
    env = {**os.environ, "LDN_DATA_DIR": str(tmp_path / "var")}
    env.pop("LDN_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ldn.cli", "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "var" / "ldn.db").exists()
    assert b"core_0001" in proc.stdout
