"""Authorization benchmark: policy decisions per second on one core, uncached and cached, per policy.

    python bench/authz_pdp.py                 # default counts
    python bench/authz_pdp.py --seconds 3     # longer runs per figure

What it measures, pinned to one CPU core (``os.sched_setaffinity``), single-threaded:
- uncached: ``PolicyDecisionPoint.decide(raw)``: input validation (pydantic), then the compiled
  Rego bundle evaluated by rego-cpp (regopy) for ``data.ldn.authz.decision``;
- cached: ``DecisionCache.decide(raw)`` for an input decided before: validation, the canonical
  JSON cache key (SHA-256) and the LRU lookup: the path every repeated request takes;
- explain: ``PolicyDecisionPoint.explain(raw)`` (whole ``data.ldn.authz`` tree), per call.

Inputs are the decision-table inputs of tests/authz (allow and deny cases of every policy), as
JSON documents like an enforcement point sends them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.common import machine, percentile  # noqa: E402


def cases() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    from tests.authz.inputs import CARER, GP, PHARMACIST, REQUESTER_URA, mcsd, notified, nvi_register, nvi_search, pull

    lab = {"patient": ["Patient/p1"], "category": ["laboratory"]}
    return {
        "pull": [
            ("allow: GP reads Condition", pull(GP, "Condition")),
            (
                "allow: pharmacist lab values",
                pull(PHARMACIST, "Observation", action={"fhir_rest": {"search_params": lab}}),
            ),
            ("deny: pharmacist reads Condition", pull(PHARMACIST, "Condition")),
            ("deny: consent Deny", pull(GP, "Condition", context={"mitz_consent": "Deny"})),
        ],
        "notified_pull": [
            ("allow: listed query", notified()),
            ("deny: query not listed", notified("/Condition", {"patient": ["Patient/p1"]})),
        ],
        "vital_interest": [
            (
                "allow: override with reason",
                pull(GP, "Condition", context={"ehds_primary_optout": True, "vital_interest": {"reason": "spoed"}}),
            ),
            ("deny: opt-out without reason", pull(GP, "Condition", context={"ehds_primary_optout": True})),
        ],
        "localization": [
            ("allow: NVI search by a GP", nvi_search(GP)),
            ("deny: NVI search by a carer", nvi_search(CARER)),
            ("allow: NVI registration", nvi_register()),
        ],
        "mcsd": [
            ("allow: mCSD query", mcsd()),
            ("allow: update own organisation", mcsd("update", target=REQUESTER_URA)),
            ("deny: delete", mcsd("delete", target=REQUESTER_URA)),
        ],
    }


def rate(fn: Callable[[], Any], seconds: float, minimum: int = 20) -> tuple[float, list[float]]:
    """Calls per second of `fn` over about `seconds`, and the per-call latencies."""
    latencies: list[float] = []
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and len(latencies) >= minimum:
            return len(latencies) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per measured figure")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to")
    args = parser.parse_args()

    from ldn.authz.pdp import DecisionCache, PolicyDecisionPoint
    from ldn.authz.settings import AuthzSettings

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    policy_dir = AuthzSettings().resolved_policy_dir()
    t0 = time.perf_counter()
    pdp = PolicyDecisionPoint(policy_dir, strict=True)
    compile_s = time.perf_counter() - t0
    print(f"machine: {machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; pinned to core {args.core}")
    print(f"policies: {policy_dir} release {pdp.policy_release}; compiled in {compile_s * 1000:.0f} ms")
    print()
    header = (
        f"{'policy':<15} {'case':<34} {'uncached/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'cached/s':>10} {'p99 µs':>7}"
    )
    print(header)
    print("-" * len(header))
    results: dict[str, Any] = {}
    totals: dict[str, list[float]] = {"uncached": [], "cached": []}
    for policy, items in cases().items():
        for name, raw in items:
            raw = json.loads(json.dumps(raw))  # a plain JSON document, as it arrives
            decision = pdp.decide(raw)
            assert decision.policy == policy, (name, decision)
            assert decision.allow is name.startswith("allow"), (name, decision.reasons)
            uncached, lat_u = rate(lambda raw=raw: pdp.decide(raw), args.seconds)
            cache = DecisionCache(pdp)
            cache.decide(raw)
            cached, lat_c = rate(lambda raw=raw, cache=cache: cache.decide(raw), args.seconds, minimum=1000)
            assert cache.misses == 1
            totals["uncached"].append(uncached)
            totals["cached"].append(cached)
            results[f"{policy}: {name}"] = {"uncached_per_s": round(uncached), "cached_per_s": round(cached)}
            print(
                f"{policy:<15} {name:<34} {uncached:>11,.0f} {percentile(lat_u, 50) * 1000:>7.2f} "
                f"{percentile(lat_u, 99) * 1000:>7.2f} {cached:>10,.0f} {percentile(lat_c, 99) * 1e6:>7.0f}"
            )
    print("-" * len(header))
    low_u, low_c = min(totals["uncached"]), min(totals["cached"])
    mean_u = sum(totals["uncached"]) / len(totals["uncached"])
    mean_c = sum(totals["cached"]) / len(totals["cached"])
    print(f"uncached: mean {mean_u:,.0f}/s, lowest {low_u:,.0f}/s; cached: mean {mean_c:,.0f}/s, lowest {low_c:,.0f}/s")
    print(f"target cached >= 5,000/s on one core: {'met' if low_c >= 5000 else 'NOT met'} (lowest case)")
    explain_rate, lat_e = rate(lambda: pdp.explain(cases()["pull"][0][1]), args.seconds)
    print(f"explain (pull allow): {explain_rate:,.0f}/s, p50 {percentile(lat_e, 50) * 1000:.1f} ms")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps({"summary": {"uncached_mean": round(mean_u), "cached_mean": round(mean_c), **results}}))


if __name__ == "__main__":
    main()
