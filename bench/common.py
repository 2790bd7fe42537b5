"""Shared helpers for benchmark scripts: machine description, percentiles, a throwaway network."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{platform.node()} | {cpu} | {os.cpu_count()} cores | Python {python} | {platform.platform()}"


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):.2f} ms, p95 {percentile(ms, 95):.2f} ms, p99 {percentile(ms, 99):.2f} ms, "
        f"mean {statistics.fmean(ms):.2f} ms"
    )


def embedded_network(database_url: str | None = None) -> Any:
    """Build the embedded network in a temporary directory (SQLite unless a URL is given)."""
    from ldn.core.config import CoreSettings
    from ldn.core.storage import open_database
    from ldn.core.topology import load_topology
    from ldn.network.runtime import build_network

    workdir = Path(tempfile.mkdtemp(prefix="ldn-bench-"))
    os.environ.setdefault("LDN_AUTH_PKI_DIR", str(workdir / "pki"))
    settings = CoreSettings(data_dir=workdir, database_url=database_url, log_level="WARNING")
    database = open_database(settings.resolved_database_url(), upgrade=True)
    return build_network(settings, load_topology(), database, base_url="http://bench.local")
