"""`crev verify` speed: replay a chain of at least 100,000 signed readings from genesis.

Builds the chain through the embedded node, then times the auditor's full replay
(``crev.audit.replay.verify_chain``: every block signature, transaction and reading signature,
Merkle root, state root and the invariants), and prints readings per second next to the raw
single-core Ed25519 verification rate measured in the same run.

    python bench/bench_verify.py [--devices 10000] [--per-device 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))

from bench_readings import raw_verify_rate
from common import batch_tx, machine, make_ledger, now, signed_readings
from crev.audit.replay import verify_chain


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--per-device", type=int, default=10)
    a = ap.parse_args()
    print(f"machine: {machine()}")
    raw = raw_verify_rate()
    print(f"raw Ed25519 verify, 1 core: {raw:,.0f} /s")
    node, d, _ = make_ledger(a.devices)
    readings = signed_readings(a.devices, a.per_device)
    t = now()
    futs = [node.submit(batch_tx(readings[i:i + 1000])) for i in range(0, len(readings), 1000)]
    for f in futs:
        assert f.result(900).ok
    print(f"built a chain of {len(readings):,} readings in {node.state.height:,} blocks in {now() - t:.1f} s")
    node.close()
    for threads in (1, 2):
        t = now()
        rep = verify_chain(d, threads=threads)
        dt = now() - t
        assert rep.ok, rep.error
        print(f"crev verify ({threads} verify thread{'s' if threads > 1 else ''}): {rep.readings:,} readings, "
              f"{rep.blocks:,} blocks in {dt:.1f} s = {rep.readings / dt:,.0f} readings/s "
              f"(ratio to raw 1-core verify {rep.readings / dt / raw:.2f})")
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
