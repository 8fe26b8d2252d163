"""Signed readings verified, issued and committed per second on the embedded node.

Prints, in one run on this machine: raw Ed25519 verifications per second on one core with
PyNaCl / libsodium (the bar's denominator, issue 12), end-to-end readings per second through the
node (gateway batches → check stage with parallel verification → BlockBuilder → SQLite commit) for
each verifier configuration (PyNaCl on worker processes as before the kernel; the compiled kernel
``crev_native`` on worker processes and on threads), each rate's ratio to the raw rate, and the
submission-to-committed-issuance latency at fixed offered loads (the default configuration).

    python bench/bench_readings.py [--devices 20000] [--per-device 5] [--batch 1000]
                                   [--configs pynacl/processes,kernel/processes,kernel/threads]
                                   [--latency-rates 1000,2500,4000,80%] [--latency-seconds 3]

A latency rate ``N%`` is N % of the end-to-end rate just measured (the last configuration's) with the
time to write the checkpoint of its blocks counted: the rate the node sustains, where the end-to-end
rate alone leaves that work behind it.

A configuration is verifier/workers[/codec[/tree[/rows]]]: ``kernel/threads/reference`` verifies with the
kernel and decodes and encodes with the reference codec (crev.core.encoding) instead of the
kernel's, so that one run compares the two on fresh ledgers (default codec: the kernel's, where
installed); ``kernel/threads/kernel/reference`` keeps the kernel's codec but hashes, packs and
updates the state tree with the reference (crev.core.statetree) instead of the kernel;
``kernel/threads/kernel/kernel/reference`` builds and binds the checkpoint's rows in Python
(crev.node.store) instead of the kernel's packs (crev.node.packed). Each run
also prints where the CPU went (each node thread's CPU time per reading, the cyclic collector's
share of it, and the sealer's by phase: ``Node.seal_times``), the node's RSS, and how many records
and tree buckets it holds beyond the fleet.

``--profile`` instead times, in this one interpreter and without a node, the stages of the reading
path on blocks of ``--devices × --per-device`` readings (docs/benchmarks.md: 5,000 × 4 = 20,000),
signatures verified beforehand, alternately with the reference codec, the kernel's one record at a
time (``State.value_of`` and ``StateTree.set`` for each changed record, as before the batched
calls) and the kernel's: µs per reading per stage, and the ratios, with every root compared
between the three.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import threading
import time
from dataclasses import replace
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from nacl.bindings import crypto_sign_open

from common import CHAIN, T0, CpuByThread, batch_tx, key, machine, make_ledger, now, rss_mb, signed_readings
from crev.core import statetree
from crev.core.encoding import encode, use_codec_kernel
from crev.core.factors import FactorRow
from crev.core.signing import Signer, use_kernel
from crev.core.statetree import LazyStateTree, use_tree_kernel
from crev.ledger import record_codec
from crev.ledger.apply import BlockBuilder, SigCache
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.params import Params
from crev.ledger.state import State
from crev.ledger.tx import build_tx, decode_tx
from crev.node.lazystate import resident_records
from crev.node.node import SealTimes
from crev.node.packed import use_rows_kernel

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


def throughput(node: object, txs: list[bytes]) -> tuple[float, float]:
    """Submit every batch at once, wait for every receipt; readings accepted per second, and the
    same with the time to write the checkpoint of those blocks added (the sustained rate)."""
    threads = CpuByThread()
    threads.start()
    sealer = replace(node.seal_times)  # type: ignore[attr-defined]
    t, cpu = now(), time.process_time()
    futs = [node.submit(raw) for raw in txs]  # type: ignore[attr-defined]
    accepted = 0
    for f in futs:
        r = f.result(600)
        assert r.ok, r.error
        accepted += sum(1 for x in r.detail if x[0] == "accepted")
    dt, cpu = now() - t, time.process_time() - cpu
    threads.stop()
    rate = accepted / dt
    # CPU time of this process (every thread; verification in worker processes not included): on a
    # shared machine it moves less than the wall-clock rate
    print(f"end-to-end: {accepted:,} readings verified+issued+committed in {dt:.2f} s = {rate:,.0f} readings/s "
          f"over {node.state.height} blocks; node process CPU {cpu / accepted * 1e6:.0f} µs/reading")  # type: ignore[attr-defined]
    with node.lock:  # type: ignore[attr-defined]
        st = node.state  # type: ignore[attr-defined]
        held = sum(resident_records(st).values())
        buckets = st.tree.loaded_buckets() if isinstance(st.tree, LazyStateTree) else 0
    print(f"  CPU by thread, µs a reading: {threads.line(accepted)}")
    after: SealTimes = node.seal_times  # type: ignore[attr-defined]
    phases = ", ".join(f"{p.replace('_', ' ')} {(getattr(after, p) - getattr(sealer, p)) / accepted * 1e6:,.1f}"
                       for p in SealTimes.PHASES)
    waited = after.writer_wait - sealer.writer_wait
    print(f"  the sealer's CPU by phase, µs a reading: {phases}; it waited {waited:.2f} s for the checkpoint writer")
    print(f"  RSS {rss_mb():,.0f} MB; held beyond the fleet: {held:,} records and {buckets:,} tree buckets")
    # the checkpoint work still owed (rows built and written in the background): counted here, the
    # rate is one the node could sustain, not a burst that leaves work behind
    node.flush()  # type: ignore[attr-defined]
    whole = now() - t
    print(f"  with the checkpoint of these blocks written: {whole:.2f} s = {accepted / whole:,.0f} readings/s")
    return rate, accepted / whole


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


def profile_state(devices: int) -> State:
    """A ledger of ``devices`` DGCs (as ``make_ledger``'s) in memory, without a node."""
    op = key("operator")
    g = Genesis(CHAIN, T0 - 86400, "operator", "Bench Operator", op.public_key, key("seq").public_key,
                params=Params(), emission_factors=(FactorRow("national", 2025, "national_average", 430, "bench"),))
    st = state_from_genesis(g)
    b = BlockBuilder(st, 1, T0 + 10 * 86400)
    b.add(build_tx(CHAIN, RegisterParticipant("owner", "Owner", "prosumer", key("owner").public_key, b"\x01" * 16),
                   "operator", 0, op))
    for i in range(devices):
        r = b.add(build_tx(CHAIN, RegisterDevice(f"d{i}", "owner", key(f"d{i}").public_key, 100_000, T0 - 86400,
                                                 35_000_000, 139_000_000, "tokyo", f"SN{i}", T0 + 10 * 365 * 86400,
                                                 False, "solar_pv"), "operator", i + 1, op))
        assert r.ok, r.error
    b.finish()
    return st


STAGES = ("decode", "apply", "re-encode records", "state tree", "results", "receipts")


def profile_block(st: State, raws: list[bytes], time_s: int) -> tuple[dict[str, float], bytes]:
    """Seconds per stage for one block of ``raws``; and the block hash."""
    spent = dict.fromkeys(STAGES, 0.0)
    t = now()
    txs = [decode_tx(raw, st.chain_id, st.params) for raw in raws]
    spent["decode"] = now() - t
    sigs = SigCache()
    for tx in txs:
        for r in tx.message.readings:  # type: ignore[attr-defined]
            sigs.add(st.devices[r.device_id].keys[-1].public_key, r.signed_bytes, r.signature)
    b = BlockBuilder(st, st.height + 1, time_s, sigs)
    t = now()
    for tx in txs:
        assert b.add(tx, keep_failed=False).ok
    spent["apply"] = now() - t
    value_of, seal, codec = State.value_of, State.seal, record_codec.KERNEL_CODEC

    def timed_value_of(self: State, k: str) -> bytes | None:
        t0 = now()
        out = value_of(self, k)
        spent["re-encode records"] += now() - t0
        return out

    class TimedCodec:
        """The kernel's record codec, its ``values_of`` timed as re-encoding."""

        def values_of(self, maps: dict[str, Any], keys: list[str]) -> list[bytes | None]:
            assert codec is not None
            t0 = now()
            out = codec.values_of(maps, keys)
            spent["re-encode records"] += now() - t0
            return out

        def encode(self, obj: Any) -> bytes | None:
            assert codec is not None
            return codec.encode(obj)

        def encode_value(self, value: Any) -> bytes | None:
            assert codec is not None
            return codec.encode_value(value)

    def timed_seal(self: State) -> tuple[bytes, list[tuple[str, bytes | None]]]:
        t0 = now()
        out = seal(self)
        spent["state tree"] += now() - t0
        return out

    State.value_of, State.seal = timed_value_of, timed_seal  # type: ignore[method-assign]
    if codec is not None:
        record_codec.KERNEL_CODEC = TimedCodec()
    try:
        t = now()
        out = b.finish()
        finished = now() - t
    finally:
        State.value_of, State.seal = value_of, seal  # type: ignore[method-assign]
        record_codec.KERNEL_CODEC = codec
    spent["results"] = finished - spent["state tree"]
    spent["state tree"] -= spent["re-encode records"]
    t = now()
    for res in out.results:
        [e.to_dict() for e in res.events]
    spent["receipts"] = now() - t
    return spent, out.header.hash


BATCHED = (record_codec.KERNEL_CODEC, statetree._SET_MANY, statetree._FOLD_MANY)


def use_batched(on: bool) -> None:
    """The kernel's calls for a whole block's changed records (``RecordCodec.values_of``,
    ``tree_set_many``, ``bucket_fold_many``), or (False) one call a record, as before them."""
    codec, set_many, fold_many = BATCHED if on else (None, None, None)
    record_codec.KERNEL_CODEC, statetree._SET_MANY, statetree._FOLD_MANY = codec, set_many, fold_many


def profile(devices: int, per_block: int, blocks: int) -> None:
    """The stage profile: the reference codec, the kernel's one record at a time and the kernel's,
    block by block alternately."""
    configs: tuple[str, ...] = ("reference",)
    if use_codec_kernel(True):
        configs = ("reference", "per record", "kernel") if BATCHED[0] is not None else ("reference", "kernel")
    states = {c: profile_state(devices) for c in configs}
    readings = signed_readings(devices, per_block * blocks)
    n = devices * per_block
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)  # as the node does
    per: dict[str, dict[str, list[float]]] = {c: {s: [] for s in STAGES} for c in configs}
    for k in range(blocks):
        chunk = readings[k * n:(k + 1) * n]
        raws = [batch_tx(chunk[i:i + 1000]) for i in range(0, n, 1000)]
        hashes = set()
        for c in configs if k % 2 == 0 else configs[::-1]:
            use_codec_kernel(c != "reference")
            use_batched(c == "kernel")
            spent, block_hash = profile_block(states[c], raws, T0 + 10 * 86400 + 60 * (k + 1))
            hashes.add(block_hash)
            for s in STAGES:
                per[c][s].append(spent[s] * 1e6 / n)
        assert len(hashes) == 1, "the reference and the kernel disagree"
    use_codec_kernel(True)
    use_batched(True)
    print(f"stage profile: {devices:,} devices, {blocks} blocks of {n:,} readings (batches of 1,000), "
          "signatures verified beforehand; µs per reading, median over the blocks")
    against = [c for c in ("reference", "per record") if c in configs and "kernel" in configs]
    print(f"{'stage':22}" + "".join(f"{c:>12}" for c in configs)
          + "".join(f"{'÷ ' + c:>14}" for c in against))
    total = dict.fromkeys(configs, 0.0)

    def row(name: str, med: dict[str, float]) -> None:
        ratios = "".join(f"{med['kernel'] / med[c] if med[c] else float('nan'):14.2f}" for c in against)
        print(f"{name:22}" + "".join(f"{med[c]:12.1f}" for c in configs) + ratios)

    for s in STAGES:
        med = {c: statistics.median(per[c][s]) for c in configs}
        for c in configs:
            total[c] += med[c]
        row(s, med)
    row("total", total)
    print(f"block hashes (and so every root) identical in all {len(configs)} configurations")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=20_000)
    ap.add_argument("--per-device", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--latency-rates", default="1000,2500,4000,80%",
                    help="offered readings/s for the latency runs; N%% is N %% of the last configuration's "
                         "rate with its checkpoint written")
    ap.add_argument("--latency-seconds", type=float, default=3.0, help="how long each latency run offers its load")
    ap.add_argument("--configs", default="pynacl/processes,kernel/processes,kernel/threads",
                    help="verifier/workers[/codec] for the throughput runs; the last one also runs the latency runs")
    ap.add_argument("--profile", action="store_true", help="the stage profile instead (see the module docstring)")
    ap.add_argument("--blocks", type=int, default=6, help="--profile: blocks per codec")
    a = ap.parse_args()
    print(f"machine: {machine()}")
    if a.profile:
        profile(a.devices, a.per_device, a.blocks)
        return
    raw = raw_verify_rate()
    print(f"raw Ed25519 verify, 1 core (PyNaCl crypto_sign_open): {raw:,.0f} /s")

    t = now()
    rates = [r for r in a.latency_rates.split(",") if r]
    # enough readings for every latency run at up to the goal's rate
    extra = -(-sum(TARGET if r.endswith("%") else int(r) for r in rates) * a.latency_seconds // a.devices)
    readings = signed_readings(a.devices, a.per_device + max(1, int(extra)))
    n_main = a.devices * a.per_device
    txs = [batch_tx(readings[i:i + a.batch]) for i in range(0, n_main, a.batch)]
    rest = readings[n_main:]
    print(f"signed {len(readings):,} readings in {now() - t:.1f} s; {len(txs)} batches of {a.batch}")

    configs = a.configs.split(",")
    node = d = None
    last_rate = 0.0
    for config in configs:
        verifier, workers, codec, tree, rows = (config + "/kernel/kernel/kernel").split("/")[:5]
        if not use_kernel(verifier == "kernel") and verifier == "kernel":
            print(f"[{config}] skipped: crev_native is not installed (pip install ./native)")
            continue
        if not use_codec_kernel(codec == "kernel") and codec == "kernel":
            print(f"[{config}] (the kernel's codec is not installed: the reference codec decodes and encodes)")
        if not use_tree_kernel(tree == "kernel") and tree == "kernel":
            print(f"[{config}] (the kernel's tree functions are not installed: the reference hashes the tree)")
        if not use_rows_kernel(rows == "kernel") and rows == "kernel":
            print(f"[{config}] (the kernel's row packing is not installed: the reference builds checkpoint rows)")
        if node is not None:
            node.close()
            shutil.rmtree(d, ignore_errors=True)  # type: ignore[arg-type]
        t = now()
        node, d, _clock = make_ledger(a.devices, verify_processes=workers == "processes")
        print(f"[{config}] set-up: {a.devices:,} devices registered through the node in {now() - t:.1f} s")
        rate, last_rate = throughput(node, txs)
        print(f"[{config}] ratio end-to-end / raw single-core verify: {rate / raw:.2f} (with the checkpoint written: "
              f"{last_rate / raw:.2f}); target 16,700/s "
              f"(1M DGCs each minute): {'MET' if rate >= TARGET else 'NOT MET'} ({rate / TARGET:.0%})")
    if node is None or d is None:
        return

    node.flush()  # write the checkpoint of the throughput run now, not during the latency runs

    # --- latency at fixed offered loads --------------------------------------------------------
    per_batch = 100
    offset = 0
    for rate_s in rates:
        offered = int(last_rate * float(rate_s[:-1]) / 100) if rate_s.endswith("%") else int(rate_s)
        n_batches = max(20, int(offered * a.latency_seconds) // per_batch)
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
              f"p99 {p99 * 1000:.0f} ms, max {lats[-1] * 1000:.0f} ms over {len(lats)} batches"
              + (f" ({rate_s} of {last_rate:,.0f}/s; goal p99 < 1 s: {'MET' if p99 < 1 else 'NOT MET'})"
                 if rate_s.endswith("%") else ""))
    node.close()
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
