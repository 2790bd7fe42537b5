"""Running real `ldn` processes in tests: start, wait until the network is up, stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ldn.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode(errors="replace")


def wait_for_network(proc: subprocess.Popen[bytes], data_dir: Path, timeout: float = 15) -> dict[str, Any]:
    """Wait until `ldn up` wrote network.json (it does so once the socket listens)."""
    path = data_dir / "network.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(stop(proc))
        if time.monotonic() > deadline:
            raise AssertionError(f"network.json not written within {timeout} s")
        time.sleep(0.1)
    return dict(json.loads(path.read_text()))


def run_cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ldn.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
