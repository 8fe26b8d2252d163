"""Signed readings verified, issued and committed per second on the embedded node.

Prints, in one run on this machine: raw Ed25519 verifications per second on one core with
PyNaCl / libsodium (the bar's denominator, issue 12), end-to-end readings per second through the
node (gateway batches → check stage with parallel verification → BlockBuilder → SQLite commit) for
each verifier configuration (PyNaCl on worker processes as before the kernel; the compiled kernel
``crev_native`` on worker processes and on threads), each rate's ratio to the raw rate, and the
submission-to-committed-issuance latency at fixed offered loads (the default configuration).

    python bench/bench_readings.py [--devices 20000] [--per-device 5] [--batch 1000]
                                   [--configs pynacl/processes,kernel/processes,kernel/threads]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))

from nacl.bindings import crypto_sign_open

from common import batch_tx, machine, make_ledger, now, signed_readings
from crev.core.encoding import encode
from crev.core.signing import Signer, use_kernel

TARGET = 1_000_000 / 60  # 1,000,000 DGCs reporting every minute


def raw_verify_rate(n: int = 20_000) -> float:
    k = Signer(b"\x07" * 32)
    msgs = [encode(["crev/reading/1", "bench", f"d{i}", i, 0, 60, 1, 2, 3, 4, 5, 6]) for i in range(n)]
    sigs = [k.sign(m) for m in msgs]
    pk = k.public_key
    t = now()
    for m, s in zip(msgs, sigs, strict=True):
        crypto_sign_open(s + m, pk)
    return n / (now() - t)


def throughput(node: object, txs: list[bytes]) -> float:
    """Submit every batch at once, wait for every receipt; readings accepted per second."""
    t = now()
    futs = [node.submit(raw) for raw in txs]  # type: ignore[attr-defined]
    accepted = 0
    for f in futs:
        r = f.result(600)
        assert r.ok, r.error
        accepted += sum(1 for x in r.detail if x[0] == "accepted")
    dt = now() - t
    rate = accepted / dt
    print(f"end-to-end: {accepted:,} readings verified+issued+committed in {dt:.2f} s = {rate:,.0f} readings/s "
          f"over {node.state.height} blocks")  # type: ignore[attr-defined]
    return rate


def latency_run(node: object, txs: list[bytes], gap: float) -> list[float]:
    """Submit ``txs`` at one per ``gap`` seconds; return sorted submit→receipt latencies [s]."""
    lats: list[float] = []
    lock = threading.Lock()

    def record(t0: float):  # type: ignore[no-untyped-def]
        def done(_f: object) -> None:
            with lock:
                lats.append(time.perf_counter() - t0)
        return done

    t = now()
    for i, raw in enumerate(txs):
        target_t = t + i * gap
        while now() < target_t:
            time.sleep(0.0005)
        node.submit(raw).add_done_callback(record(time.perf_counter()))  # type: ignore[attr-defined]
    while len(lats) < len(txs):
        time.sleep(0.01)
    return sorted(lats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=20_000)
    ap.add_argument("--per-device", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--latency-rates", default="1000,2500,4000", help="offered readings/s for the latency runs")
    ap.add_argument("--configs", default="pynacl/processes,kernel/processes,kernel/threads",
                    help="verifier/workers for the throughput runs; the last one also runs the latency runs")
    a = ap.parse_args()
    print(f"machine: {machine()}")
    raw = raw_verify_rate()
    print(f"raw Ed25519 verify, 1 core (PyNaCl crypto_sign_open): {raw:,.0f} /s")

    t = now()
    readings = signed_readings(a.devices, a.per_device + 3)
    n_main = a.devices * a.per_device
    txs = [batch_tx(readings[i:i + a.batch]) for i in range(0, n_main, a.batch)]
    rest = readings[n_main:]
    print(f"signed {len(readings):,} readings in {now() - t:.1f} s; {len(txs)} batches of {a.batch}")

    configs = a.configs.split(",")
    node = d = None
    for config in configs:
        verifier, workers = config.split("/")
        if not use_kernel(verifier == "kernel") and verifier == "kernel":
            print(f"[{config}] skipped: crev_native is not installed (pip install ./native)")
            continue
        if node is not None:
            node.close()
            shutil.rmtree(d, ignore_errors=True)  # type: ignore[arg-type]
        t = now()
        node, d, _clock = make_ledger(a.devices, verify_processes=workers == "processes")
        print(f"[{config}] set-up: {a.devices:,} devices registered through the node in {now() - t:.1f} s")
        rate = throughput(node, txs)
        print(f"[{config}] ratio end-to-end / raw single-core verify: {rate / raw:.2f}; target 16,700/s "
              f"(1M DGCs each minute): {'MET' if rate >= TARGET else 'NOT MET'} ({rate / TARGET:.0%})")
    if node is None or d is None:
        return

    node.flush()  # write the checkpoint of the throughput run now, not during the latency runs

    # --- latency at fixed offered loads --------------------------------------------------------
    per_batch = 100
    offset = 0
    for rate_s in a.latency_rates.split(","):
        offered = int(rate_s)
        n_batches = max(20, offered * 3 // per_batch)  # about 3 s of load
        chunk = rest[offset:offset + n_batches * per_batch]
        offset += len(chunk)
        if len(chunk) < n_batches * per_batch:
            print(f"(not enough pre-signed readings for {offered}/s; raise --per-device)")
            break
        lat_txs = [batch_tx(chunk[i:i + per_batch]) for i in range(0, len(chunk), per_batch)]
        lats = latency_run(node, lat_txs, per_batch / offered)
        p50 = statistics.median(lats)
        p99 = lats[min(len(lats) - 1, int(len(lats) * 0.99))]
        print(f"latency submit→committed issuance at {offered:,} readings/s offered (batches of {per_batch}, "
              f"block interval {node.block_interval * 1000:.0f} ms): p50 {p50 * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {lats[-1] * 1000:.0f} ms over {len(lats)} batches")
    node.close()
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
