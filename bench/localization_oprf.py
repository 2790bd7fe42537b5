"""OPRF evaluate per core against the physical limit: one libsodium ristretto255 scalar multiplication.

    python bench/localization_oprf.py                 # 3 s per measurement, 5 interleaved rounds
    python bench/localization_oprf.py --seconds 1     # a quick run

All measured in this one process, on one core, round-robin in chunks of 20 calls so background
load hits every variant alike; each figure is the best round (the least disturbed), and the
median round is printed too; the ratio to the limit is computed within each round:
- limit:    `crypto_scalarmult_ristretto255(sk, P)` straight from rbcl (libsodium), nothing else;
- evaluate: `ldn.localization.oprf.blind_evaluate` (RFC 9497 BlindEvaluate with input validation:
            canonical encoding, not the identity, a valid point);
- prs:      what the PRS does per evaluation: base64url decode + validation + BlindEvaluate + the
            sealed answer (ECDH-ES+A256KW/A256GCM JWE with origin tag);
- nvi:      what the NVI does per identifier: decode + open the envelope + unblind + lookup hash.
Target (issue 5): evaluate >= 80% of the limit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402


def interleaved_rates(variants: dict[str, Callable[[], object]], seconds: float, chunk: int = 20) -> dict[str, float]:
    """Calls per second of each variant, measured round-robin in small chunks over ``seconds``
    per variant, so that background load falls on every variant alike."""
    spent = dict.fromkeys(variants, 0.0)
    calls = dict.fromkeys(variants, 0)
    clock = time.perf_counter
    while min(spent.values()) < seconds:
        for name, fn in variants.items():
            started = clock()
            for _ in range(chunk):
                fn()
            spent[name] += clock() - started
            calls[name] += chunk
    return {name: calls[name] / spent[name] for name in variants}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent per variant in one round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()

    import hmac
    from hashlib import sha256

    import rbcl
    from joserfc.jwk import ECKey

    from ldn.localization import derivation, envelope, oprf
    from ldn.localization.prs.keys import PrsKeyring
    from ldn.localization.prs.service import PrsService, parse_blinded_input

    keyring = PrsKeyring(os.urandom(32))
    private_key = keyring.oprf_private_key("ura:90000901", "nationale-verwijsindex", 1)
    blinded = oprf.blind(derivation.derive_oprf_input("999990019", "ura:90000901", "nationale-verwijsindex"))
    element = blinded.blinded_element
    encoded = envelope.b64url_encode(element)
    nvi_key = ECKey.generate_key("P-256", private=True)
    sealer = envelope.EnvelopeSealer(nvi_key.as_dict(private=False), origin=keyring.origin)
    opener = envelope.EnvelopeOpener(nvi_key.as_dict(private=True), [keyring.origin.public_jwk()])
    evaluated = oprf.blind_evaluate(private_key, element)
    identifier = envelope.encode_nvi_identifier(sealer.seal(evaluated, oprf_key_version="1"), blinded.blind)
    storage_key = os.urandom(32)

    def limit() -> object:
        return rbcl.crypto_scalarmult_ristretto255(private_key, element)

    def evaluate() -> object:
        return oprf.blind_evaluate(private_key, element)

    def prs() -> object:
        raw = parse_blinded_input(encoded, "blinded_input")
        return sealer.seal(PrsService._evaluate(private_key, raw), oprf_key_version="1", element_validated=True)

    def nvi() -> object:
        decoded = envelope.decode_nvi_identifier(identifier)
        opened = opener.open(decoded.evaluated_output)
        unblinded = oprf.unblind(decoded.blind_factor, opened.evaluated_element)
        return hmac.new(storage_key, unblinded, sha256).digest()

    variants = {"limit": limit, "evaluate": evaluate, "prs": prs, "nvi": nvi}
    results: dict[str, list[float]] = {name: [] for name in variants}
    print(f"machine: {machine()}")
    print(f"load average before: {os.getloadavg()}")
    for round_number in range(1, args.rounds + 1):
        for name, value in interleaved_rates(variants, args.seconds).items():
            results[name].append(value)
        print(f"round {round_number}: " + ", ".join(f"{n} {results[n][-1]:,.0f}/s" for n in variants), flush=True)
    print(f"load average after: {os.getloadavg()}")
    best = {name: max(values) for name, values in results.items()}
    median = {name: statistics.median(values) for name, values in results.items()}
    print()
    print("| measurement (one core) | best | median | per call (best) | vs limit (best / same-round median) |")
    print("|---|---|---|---|---|")
    for name in variants:
        ratios = [e / lim for e, lim in zip(results[name], results["limit"], strict=True)]
        print(
            f"| {name} | {best[name]:,.0f}/s | {median[name]:,.0f}/s | {1e6 / best[name]:.1f} µs | "
            f"{best[name] / best['limit']:.0%} / {statistics.median(ratios):.0%} |"
        )
    verdict = "meets" if best["evaluate"] / best["limit"] >= 0.8 else "MISSES"
    print(f"\nevaluate / limit = {best['evaluate'] / best['limit']:.1%} ({verdict} the 80% target)")


if __name__ == "__main__":
    main()
