"""Signature verification speed: the PyNaCl reference against the compiled kernel, then `crev verify`.

Part 1, in one process on this machine: Ed25519 verifications per second on one core with PyNaCl
(libsodium's ``crypto_sign_open``, the reference and the denominator of issue 12's ratios), with
the kernel ``crev_native`` one call per signature (``verify``), one call per list (``verify_many``,
what the node's workers use) and by batch equations (``verify_batch``, measured, not used: see
docs/architecture.md, "Parallel signature checking"), each with its ratio to PyNaCl; then the list
entry point on two threads at once (the GIL is released).

Part 2: builds a chain of at least 100,000 signed readings through the embedded node and times
the auditor's full replay (``crev.audit.replay.verify_chain``: every block signature, transaction
and reading signature, Merkle root, state root and the invariants) with PyNaCl and with the
kernel, printing readings per second next to the raw single-core PyNaCl rate.

Part 3: the auditor's resumable replay on the same ledger. A full replay that writes the auditor's
record (``--record``: what writing it costs, its size), then ``--more`` readings (one per device)
added by the node, whose checkpoint then moves past the audited head; then the full replay of the
grown chain against ``--resume`` from the record (the auditor's own snapshot: header chain check,
snapshot load and root check, the new blocks, the node's snapshot check), seconds and ratio; and a
resume with nothing new (the fixed cost, from the node's checkpoint).

    python bench/bench_verify.py [--devices 10000] [--per-device 10] [--more 10000] [--signatures 20000]
                                 [--no-replay] [--resume-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from nacl.bindings import crypto_sign_open

import crev.audit.replay as replay
from common import T0, batch_tx, machine, make_ledger, now, signed_readings
from crev.audit.replay import verify_chain
from crev.core.encoding import encode
from crev.core.hashing import sha256
from crev.core.signing import KERNEL, Signer, kernel_in_use, use_kernel
from crev.node.node import Node

Triple = tuple[bytes, bytes, bytes]


def reading_triples(n: int, keys: int = 1000) -> list[Triple]:
    """``n`` reading-shaped signed messages by ``keys`` distinct keys (the node's mix: many devices)."""
    signers = [Signer(sha256(b"bench/verify/%d" % i)) for i in range(keys)]
    out = []
    for i in range(n):
        k = signers[i % keys]
        m = encode(["crev/reading/1", "bench", f"d{i % keys}", i, 0, 60, 1, 2, 3, 4, 5, 6])
        out.append((k.public_key, m, k.sign(m)))
    return out


def rate(n: int, run: Callable[[], object], repeat: int = 3) -> float:
    """Best of ``repeat`` runs, in items per second."""
    best = float("inf")
    for _ in range(repeat):
        t = now()
        run()
        best = min(best, now() - t)
    return n / best


def pynacl_loop(triples: list[Triple]) -> None:
    for pk, m, s in triples:
        crypto_sign_open(s + m, pk)


def kernel_section(n: int) -> float:
    triples = reading_triples(n)
    raw = rate(n, lambda: pynacl_loop(triples))
    print(f"PyNaCl crypto_sign_open, 1 core:           {raw:>9,.0f} /s  (1.00)")
    kernel = KERNEL
    if kernel is None:
        print("crev_native is not installed (pip install ./native): kernel rates skipped")
        return raw
    assert all(kernel.verify_many(triples)) and all(kernel.verify_batch(triples))
    single = rate(n, lambda: [kernel.verify(*t) for t in triples])
    many = rate(n, lambda: kernel.verify_many(triples))
    batch = rate(n, lambda: kernel.verify_batch(triples))
    print(f"kernel verify, one call each, 1 core:      {single:>9,.0f} /s  ({single / raw:.2f})")
    print(f"kernel verify_many, one call a list:       {many:>9,.0f} /s  ({many / raw:.2f})")
    print(f"kernel verify_batch (64, torsion-checked): {batch:>9,.0f} /s  ({batch / raw:.2f})")
    halves = [triples[: n // 2], triples[n // 2:]]

    def two_threads() -> None:
        ts = [threading.Thread(target=kernel.verify_many, args=(h,)) for h in halves]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    both = rate(n, two_threads)
    print(f"kernel verify_many on 2 threads, total:    {both:>9,.0f} /s  ({both / raw:.2f}; "
          f"{both / many:.2f}x one thread)")
    return raw


def resume_section(d: str, readings: list[list[object]], first: int, devices: int, raw: float) -> None:
    """Full replay with the record, more readings, then full replay against resume (part 3)."""
    spent = [0.0]
    write = vars(replay)["write_record"]  # timed where the replay calls it

    def timed_write(*args: object) -> None:
        t = now()
        write(*args)
        spent[0] += now() - t

    vars(replay)["write_record"] = timed_write
    rec = os.path.join(tempfile.mkdtemp(prefix="crev-audit-"), "audit.sqlite")
    t = now()
    rep = verify_chain(d, record=rec)
    dt = now() - t
    assert rep.ok, rep.error
    print(f"full replay with --record: {rep.blocks:,} blocks, {rep.readings:,} readings in {dt:.1f} s, of which "
          f"writing the record {spent[0]:.1f} s ({os.path.getsize(rec) / 1e6:.0f} MB, the state snapshot at "
          f"block {rep.blocks:,})")
    node = Node(d, block_interval_ms=100, clock=lambda: float(T0 + 10 * 86400)).start()
    more = readings[first:]
    futs = [node.submit(batch_tx(more[i:i + 1000])) for i in range(0, len(more), 1000)]
    for f in futs:
        assert f.result(900).ok
    node.close()  # its checkpoint moves past the audited head
    t = now()
    full = verify_chain(d)
    t_full = now() - t
    assert full.ok, full.error
    t = now()
    res = verify_chain(d, resume=rec)
    t_res = now() - t
    assert res.ok and res.state_root == full.state_root, res.error
    print(f"{len(more):,} more readings ({full.blocks - rep.blocks:,} blocks): full replay of {full.blocks:,} blocks "
          f"{t_full:.1f} s; --resume ({res.resumed_with} at block {res.resumed_from:,}, {res.blocks_replayed:,} "
          f"blocks replayed) {t_res:.1f} s = {t_full / t_res:.1f}x faster; {res.readings / t_res:,.0f} new readings/s "
          f"(ratio to raw {res.readings / t_res / raw:.2f})")
    t = now()
    idle = verify_chain(d, resume=rec)
    t_idle = now() - t
    assert idle.ok and idle.blocks_replayed == 0, idle.error
    print(f"--resume with nothing new ({idle.resumed_with} at block {idle.resumed_from:,}): {t_idle:.1f} s")
    vars(replay)["write_record"] = write
    shutil.rmtree(os.path.dirname(rec), ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--per-device", type=int, default=10)
    ap.add_argument("--signatures", type=int, default=20_000)
    ap.add_argument("--more", type=int, default=10_000, help="readings added before the resumed replay")
    ap.add_argument("--no-replay", action="store_true", help="only the verification rates")
    ap.add_argument("--resume-only", action="store_true", help="only the raw PyNaCl rate and part 3")
    a = ap.parse_args()
    print(f"machine: {machine()}")
    if a.resume_only:
        triples = reading_triples(a.signatures)
        raw = rate(a.signatures, lambda: pynacl_loop(triples))
        print(f"PyNaCl crypto_sign_open, 1 core:           {raw:>9,.0f} /s  (1.00)")
    else:
        raw = kernel_section(a.signatures)
    if a.no_replay:
        return
    node, d, _ = make_ledger(a.devices)
    extra = -(-a.more // a.devices)  # whole intervals: one more reading per device each
    everything = signed_readings(a.devices, a.per_device + extra)
    first = a.devices * a.per_device
    readings = everything[:first]
    t = now()
    futs = [node.submit(batch_tx(readings[i:i + 1000])) for i in range(0, len(readings), 1000)]
    for f in futs:
        assert f.result(900).ok
    print(f"built a chain of {len(readings):,} readings in {node.state.height:,} blocks in {now() - t:.1f} s")
    node.close()
    was = kernel_in_use()
    for kernel in ((False, True) if not a.resume_only else ()):
        if use_kernel(kernel) != kernel:
            continue
        name = "kernel" if kernel else "PyNaCl"
        for threads in (1, 2):
            t = now()
            rep = verify_chain(d, threads=threads)
            dt = now() - t
            assert rep.ok, rep.error
            print(f"crev verify ({name}, {threads} verify thread{'s' if threads > 1 else ''}): {rep.readings:,} "
                  f"readings, {rep.blocks:,} blocks in {dt:.1f} s = {rep.readings / dt:,.0f} readings/s "
                  f"(ratio to raw 1-core PyNaCl verify {rep.readings / dt / raw:.2f})")
    use_kernel(was)
    if a.more:
        resume_section(str(d), everything[:first + a.more], first, a.devices, raw)
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
