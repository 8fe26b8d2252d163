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

    python bench/bench_verify.py [--devices 10000] [--per-device 10] [--signatures 20000] [--no-replay]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from nacl.bindings import crypto_sign_open

from common import batch_tx, machine, make_ledger, now, signed_readings
from crev.audit.replay import verify_chain
from crev.core.encoding import encode
from crev.core.hashing import sha256
from crev.core.signing import KERNEL, Signer, kernel_in_use, use_kernel

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--per-device", type=int, default=10)
    ap.add_argument("--signatures", type=int, default=20_000)
    ap.add_argument("--no-replay", action="store_true", help="only the verification rates")
    a = ap.parse_args()
    print(f"machine: {machine()}")
    raw = kernel_section(a.signatures)
    if a.no_replay:
        return
    node, d, _ = make_ledger(a.devices)
    readings = signed_readings(a.devices, a.per_device)
    t = now()
    futs = [node.submit(batch_tx(readings[i:i + 1000])) for i in range(0, len(readings), 1000)]
    for f in futs:
        assert f.result(900).ok
    print(f"built a chain of {len(readings):,} readings in {node.state.height:,} blocks in {now() - t:.1f} s")
    node.close()
    was = kernel_in_use()
    for kernel in (False, True):
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
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
