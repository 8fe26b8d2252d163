"""Signed readings per second committed by a localnet of CometBFT validators, beside the embedded
node and the raw Ed25519 verify rate, all measured in one run on this machine.

    python bench/bench_consortium.py                 # the settings table of docs/benchmarks.md
    python bench/bench_consortium.py --quick         # tiny sizes (the smoke test)

Each consortium run (``crev.consortium.loadgen``) writes a throwaway localnet, registers the
devices, signs ``rounds`` batches of one reading per device and submits them through one member's
``broadcast_tx_sync`` (back to back, or at an offered rate); latency runs from a batch's
submission to the moment its block is seen executed on that member. The bound printed beside each
is ``cores × raw verify rate ÷ validators``: every validator verifies every signature once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from common import batch_tx, machine, make_ledger, signed_readings
from crev.consortium import loadgen

# CometBFT's defaults throttle a loopback net: 5 MB/s per peer connection, 1 kB packets flushed
# every 100 ms, gossip rounds every 100 ms. "tuned" lifts them (docs/benchmarks.md, Consortium).
TUNED: dict[str, dict[str, object]] = {
    "p2p": {"send_rate": 200_000_000, "recv_rate": 200_000_000, "flush_throttle_timeout": "10ms",
            "max_packet_msg_payload_size": 65536},
    "consensus": {"peer_gossip_sleep_duration": "10ms"},
}


def embedded_rate(devices: int, per_device: int, batch: int) -> float:
    """Readings/s through the embedded node (submit all, wait for every receipt)."""
    node, d, _clock = make_ledger(devices)
    try:
        readings = signed_readings(devices, per_device)
        txs = [batch_tx(readings[i:i + batch]) for i in range(0, len(readings), batch)]
        t = time.perf_counter()
        futs = [node.submit(raw) for raw in txs]
        accepted = 0
        for f in futs:
            r = f.result(600)
            assert r.ok, r.error
            accepted += sum(1 for x in r.detail if x[0] == "accepted")
        return accepted / (time.perf_counter() - t)
    finally:
        node.close()
        shutil.rmtree(d, ignore_errors=True)


def consortium(label: str, base_port: int, **kw: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crev-bench-net-") as tmp:
        out = loadgen.run(root=Path(tmp) / "net", base_port=base_port, **kw)
    out["label"] = label
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--base-port", type=int, default=28600)
    ap.add_argument("--only", default="", help="comma-separated labels of the runs to do (default: all)")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {machine()} | nproc {cores}", flush=True)
    raw = loadgen.raw_verify_rate(20_000 if not a.quick else 2_000)
    bound = cores * raw / a.validators
    print(f"raw Ed25519 verify, 1 core: {raw:,.0f} /s; bound {cores} cores × raw ÷ {a.validators} validators = "
          f"{bound:,.0f} readings/s", flush=True)
    emb = embedded_rate(200, 5, 100) if a.quick else embedded_rate(10_000, 4, 1000)
    print(f"embedded node: {emb:,.0f} readings/s ({emb / raw:.2f} × raw)", flush=True)

    v = a.validators
    if a.quick:
        runs: list[tuple[str, dict[str, Any]]] = [
            ("quick", dict(validators=v, devices=20, rounds=3, timeout_commit="100ms", events="summary", config=TUNED)),
        ]
    else:
        runs = [
            ("default", dict(validators=v, devices=500, rounds=60, timeout_commit="200ms", events="summary")),
            ("tuned", dict(validators=v, devices=500, rounds=60, timeout_commit="200ms", events="summary",
                           config=TUNED)),
            ("tuned-1000", dict(validators=v, devices=1000, rounds=30, timeout_commit="200ms", events="summary",
                                config=TUNED)),
            ("tuned-tc50", dict(validators=v, devices=500, rounds=60, timeout_commit="50ms", events="summary",
                                config=TUNED)),
            ("tuned-1MB", dict(validators=v, devices=500, rounds=60, timeout_commit="200ms", events="summary",
                               config=TUNED, block_max_bytes=1_000_000)),
            ("tuned-noindex", dict(validators=v, devices=500, rounds=60, timeout_commit="200ms", events="summary",
                                   config={**TUNED, "tx_index": {"indexer": "null"}})),
            ("tuned-all-events", dict(validators=v, devices=500, rounds=60, timeout_commit="200ms", events="all",
                                      config=TUNED)),
        ]
        for r in (1000, 1500, 2000, 3000):
            runs.append((f"tuned-{r}/s", dict(validators=v, devices=250, rounds=max(20, r * 12 // 250),
                                              timeout_commit="200ms", events="summary", config=TUNED, rate=r)))
    only = {x for x in a.only.split(",") if x}
    for i, (label, kw) in enumerate(runs):
        if only and label not in only:
            continue
        out = consortium(label, a.base_port + 100 * i, **kw)
        print(f"{label:18} {out['validators']} validators, batches of {kw['devices']}, events {out['events']}, "
              f"timeout_commit {kw['timeout_commit']}, offered {out['offered_per_s']}: "
              f"{out['readings_per_s']:,} readings/s committed ({out['readings_per_s'] / bound:.2f} of the bound), "
              f"{out['blocks_per_s']} blocks/s, p50 {out['p50_s']} s, p99 {out['p99_s']} s "
              f"[{out['readings']:,} readings in {out['seconds']} s; CPU s: apps {out['cpu_s_apps']}, "
              f"cometbft {out['cpu_s_cometbft']}]", flush=True)
    os._exit(0)  # the nets are stopped; do not wait for stray daemon threads


if __name__ == "__main__":
    main()
