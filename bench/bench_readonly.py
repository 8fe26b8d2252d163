"""Opening a data directory read-only (``LedgerView``, what every ``crev report`` / ``trace`` /
``export`` / ``statement`` / ``market`` pays) at a million readings: the lazy open against the full
load, in one process, and what the node's ingest costs to write the checkpoints a lazy open needs.

1. Build (or, with ``--reuse``, reuse) a data directory under /tmp with the real node: ``--devices``
   DGCs owned by ``--owners`` consumers (10 sites each by default), ``--readings`` signed 1-minute
   readings in gateway batches, a few transfers and a retirement, then a tail of blocks the last
   checkpoint does not cover (a node killed before it checkpointed: ``--tail-rounds`` more readings
   per device, a transfer, a retirement). The build runs in a child process, which records the
   largest size the SQLite write-ahead log reached (sampled every 10 ms) and the time the node spent
   writing checkpoints (``Store.write_checkpoint``, on the checkpoint thread) per reading.
2. In this process: open the view lazily and answer a one-site report, a one-participant report (10
   sites) and a trace of one lot and of one retirement; then the same after the full load
   (``LedgerView(full=True)``: every entry decoded, the whole tree hashed, every invariant checked)
   plus the cost of the TEMP copy of the index the full open used to make whenever blocks followed
   the checkpoint. Answers are compared (they must be identical), times are printed with their
   ratios, and the peak RSS after each open.

``--baseline-src DIR`` also times the code in DIR (e.g. ``git archive`` of an earlier commit) opening
the same directory in a child process. ``--build-only`` with ``--baseline-src`` builds with that code
instead (to measure the write-ahead log and checkpoint cost before the change). ``--export`` also
times ``export lots`` on each view: O(chain) by nature (every lot is read).

    python bench/bench_readonly.py [--dir /tmp/crev-readonly] [--reuse] [--readings 1000000]
        [--devices 10000] [--owners 1000] [--batch 5000] [--tail-rounds 1] [--export]
        [--baseline-src DIR] [--build-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from common import CHAIN, T0, key, machine, make_ledger, now
from crev.core.encoding import encode
from crev.core.units import fiscal_year_bounds
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.submit_readings import SubmitReadings, parse_reading, reading_payload
from crev.ledger.messages.transfer import Transfer
from crev.ledger.tx import build_tx
from crev.node.store import chain_file

BUILD_FILE = "bench-build.json"
HERE = Path(__file__).resolve().parent


def owner_of(i: int, devices: int, owners: int) -> str:
    return f"c{i * owners // devices:05d}"


def lot_id(device: int, k: int) -> str:
    """The lot device ``device``'s k-th (0-based) reading issues: 1-minute intervals from 09:00 JST."""
    minute = 9 * 60 + k
    return f"d{device}:20260601T{minute // 60:02d}{minute % 60:02d}"


def _round_txs(args: tuple[int, int, int]) -> list[bytes]:
    """Gateway batches of round ``k``: reading k (0-based) of every device, ``batch`` per tx."""
    k, devices, batch = args
    out: list[bytes] = []
    readings: list[Any] = []
    for i in range(devices):
        g, imp, exp = 800 + (i % 200), 300, 100 + (i % 50)
        p = reading_payload(CHAIN, f"d{i}", k + 1, T0 + 9 * 3600 + k * 60, 60, g, imp, exp, (k + 1) * g,
                            (k + 1) * imp, (k + 1) * exp)
        readings.append([*p, key(f"d{i}").sign(encode(p))])
        if len(readings) == batch or i == devices - 1:
            msg = SubmitReadings(tuple(parse_reading(r, "r") for r in readings))
            out.append(build_tx(CHAIN, msg))
            readings = []
    return out


def sign_rounds(first: int, rounds: int, devices: int, batch: int) -> list[bytes]:
    """Every batch of rounds [first, first + rounds), signed on all cores (fork)."""
    with get_context("fork").Pool(os.cpu_count() or 1) as pool:
        parts = pool.map(_round_txs, [(k, devices, batch) for k in range(first, first + rounds)])
    return [tx for part in parts for tx in part]


class WalWatch:
    """Samples the size of the write-ahead log every 10 ms; ``largest`` is the maximum seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.largest = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.largest = max(self.largest, self.path.stat().st_size)
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.largest


def build(d: Path, readings: int, devices: int, owners: int, batch: int, tail_rounds: int) -> dict[str, Any]:
    """The data directory (see the module doc); returns what the build measured. Ends the process
    without a final checkpoint (like kill -9), so the tail stays after the checkpoint."""
    from crev.node.node import Node
    from crev.node.store import Store

    rounds = readings // devices
    t = now()
    txs = sign_rounds(0, rounds, devices, batch)
    tail_txs = sign_rounds(rounds, tail_rounds, devices, batch)
    sign_s = now() - t
    print(f"signed {(rounds + tail_rounds) * devices:,} readings in {sign_s:.0f} s", flush=True)

    spent = {"write_s": 0.0, "write_cpu_s": 0.0, "writes": 0, "wal_s": 0.0, "queue_s": 0.0}
    write = Store.write_checkpoint

    def timed_write(self: Store, *a: Any, **kw: Any) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            write(self, *a, **kw)
        finally:
            spent["write_s"] += time.perf_counter() - t0
            spent["write_cpu_s"] += time.thread_time() - c0
            spent["writes"] += 1

    Store.write_checkpoint = timed_write  # type: ignore[method-assign]
    wal = getattr(Store, "checkpoint_wal", None)
    if wal is not None:  # this version checkpoints the write-ahead log itself (inside write_checkpoint)
        def timed_wal(self: Store) -> None:
            t0 = time.perf_counter()
            try:
                wal(self)
            finally:
                spent["wal_s"] += time.perf_counter() - t0

        Store.checkpoint_wal = timed_wal  # type: ignore[method-assign]
    queue = Node._queue_checkpoint

    def timed_queue(self: Node, *a: Any, **kw: Any) -> None:  # under the node's lock, on the sealer
        t0 = time.perf_counter()
        try:
            queue(self, *a, **kw)
        finally:
            spent["queue_s"] += time.perf_counter() - t0

    Node._queue_checkpoint = timed_queue  # type: ignore[method-assign]

    owner_list = [(f"c{j:05d}", f"Consumer {j}", key(f"c{j}")) for j in range(owners)]
    node, _, _clock = make_ledger(devices, block_ms=100, data_dir=d, owners=owner_list,
                                  owner_of=lambda i: owner_of(i, devices, owners))
    watch = WalWatch(d / "ledger.sqlite-wal")
    nonces: dict[str, int] = {}

    def signed(account: str, msg: object) -> bytes:
        n = nonces.get(account, 0)
        nonces[account] = n + 1
        return build_tx(CHAIN, msg, account, n, key(f"c{int(account[1:])}"))  # type: ignore[arg-type]

    p0, p1 = fiscal_year_bounds(2026)
    a, b = owner_of(0, devices, owners), owner_of(devices - 1, devices, owners)
    retirements: list[str] = []

    def market_moves(k: int, tag: str) -> None:
        """a sends b 100 g of each of its device d0's lots 0..k; b retires 40 g of lot 0 and of lot k."""
        r = node.submit_wait(signed(a, Transfer(b, tuple((lot_id(0, j), 100) for j in range(k + 1)), tag)), 600)
        assert r.ok, r.error
        r = node.submit_wait(signed(b, Retire(((lot_id(0, 0), 40), (lot_id(0, k), 40)), "Bench Co", "re100", p0,
                                              p1, "JP", tag)), 600)
        assert r.ok, r.error
        retirements.append(r.detail[0])

    t = now()
    futs = [node.submit(raw) for raw in txs]
    accepted = 0
    for i, f in enumerate(futs):
        r = f.result(3600)
        assert r.ok, r.error
        accepted += sum(1 for x in r.detail if x[0] == "accepted")
        if i == len(futs) // 2:
            market_moves(rounds // 4, "half-way")
    ingest_s = now() - t
    node.flush()
    wal_max = watch.stop()
    cp = node.state.height
    # the same ledger with no block after its checkpoint (the node is idle: nothing writes now)
    at_cp = d.parent / (d.name + "-at-checkpoint")
    shutil.rmtree(at_cp, ignore_errors=True)
    at_cp.mkdir()
    for f in d.iterdir():
        if (f.name.startswith("ledger.") and ".sqlite" in f.name and not f.name.endswith("-shm")) \
                or f.suffix in (".json", ".key"):
            shutil.copy2(f, at_cp / f.name)
    print(f"ingest: {accepted:,} readings in {ingest_s:.0f} s = {accepted / ingest_s:,.0f} readings/s over {cp} "
          f"blocks; {spent['writes']} checkpoints", flush=True)
    # the tail: more blocks, never checkpointed
    node.checkpoint_interval = 1e9
    for raw in tail_txs:
        r = node.submit_wait(raw, 600)
        assert r.ok, r.error
    market_moves(rounds - 1, "in the tail")
    node.verifier.close()  # its worker processes would outlive this one's os._exit
    return {
        "code": str(Path(sys.modules["crev"].__file__ or "").parent), "machine": machine(),
        "readings": accepted, "tail_readings": tail_rounds * devices, "devices": devices, "owners": owners,
        "batch": batch, "sign_s": sign_s, "ingest_s": ingest_s, "readings_per_s": accepted / ingest_s,
        "wal_max_bytes": wal_max, "checkpoint_write_s": spent["write_s"],
        "checkpoint_write_cpu_s": spent["write_cpu_s"], "checkpoint_wal_s": spent["wal_s"],
        "checkpoint_queue_s": spent["queue_s"], "checkpoints": spent["writes"], "checkpoint_height": cp,
        "height": node.state.height,
        "db_bytes": sum(f.stat().st_size for f in (d / "ledger.sqlite", chain_file(d / "ledger.sqlite"))),
        "lot": lot_id(5, rounds // 2), "site": "d5", "participant": owner_of(5, devices, owners),
        "retirements": retirements, "at_checkpoint": str(at_cp),
    }


def build_child(args: argparse.Namespace, src: str | None) -> dict[str, Any]:
    """Run the build in a child process (its memory is the node's, and it dies like kill -9)."""
    d = Path(args.dir)
    if d.exists():
        shutil.rmtree(d)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, __file__, "--child-build", "--dir", str(d), "--readings", str(args.readings),
           "--devices", str(args.devices), "--owners", str(args.owners), "--batch", str(args.batch),
           "--tail-rounds", str(args.tail_rounds)]
    subprocess.run(cmd, check=True, env=env)
    return dict(json.loads((d / BUILD_FILE).read_text()))


# --- reading ----------------------------------------------------------------------------------------

def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def answers(view: Any, info: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    """The queries a CLI read answers, timed into ``timings``."""
    from crev.audit.trace import trace
    from crev.reports.report import participant_report, report_dict

    st, store = view.state, view.store
    out: dict[str, Any] = {"root": st.tree.root().hex(), "height": st.height}
    t = now()
    rep = participant_report(st, store, info["participant"], only_site=info["site"])
    out["site_report"] = report_dict(rep, st.last_time)
    timings["one-site report"] = now() - t
    t = now()
    rep = participant_report(st, store, info["participant"])
    out["participant_report"] = report_dict(rep, st.last_time)
    timings[f"report of {info['participant']} (all its sites)"] = now() - t
    t = now()
    out["lot_trace"] = trace(store, st, info["lot"])
    timings["trace of one lot"] = now() - t
    t = now()
    out["retirement_trace"] = trace(store, st, info["retirements"][-1])
    timings["trace of a retirement (in the tail)"] = now() - t
    return out


def old_index_copy(view: Any) -> float:
    """What the full open used to add when blocks followed the checkpoint: a TEMP copy of the whole
    index with its indexes (``Store.index_in_memory`` before the change), timed on a connection of
    its own."""
    import sqlite3

    db = sqlite3.connect(f"file:{view.store.path}?mode=ro", uri=True, isolation_level=None)
    try:
        t = now()
        db.execute("BEGIN")
        for tab in ("ix_readings", "ix_lots", "ix_moves"):
            db.execute(f"CREATE TEMP TABLE {tab} AS SELECT * FROM main.{tab}")
        for ddl in ("CREATE UNIQUE INDEX temp.ixr ON ix_readings(device_id, seq)",
                    "CREATE UNIQUE INDEX temp.ixl ON ix_lots(lot_id)",
                    "CREATE INDEX temp.ixl_unit ON ix_lots(first_unit)",
                    "CREATE INDEX temp.ixm_lot ON ix_moves(lot_id)",
                    "CREATE INDEX temp.ixm_to ON ix_moves(counterparty)",
                    "CREATE INDEX temp.ixl_owner ON ix_lots(owner)",
                    "CREATE INDEX temp.ixr_owner ON ix_readings(owner, device_id)",
                    "CREATE UNIQUE INDEX temp.ixm_once ON ix_moves(tx_hash, lot_id, kind, start_unit)"):
            db.execute(ddl)
        return now() - t
    finally:
        db.close()


BASELINE = """
import json, sys, time, resource
from crev.node.node import LedgerView
from crev.audit.trace import trace
from crev.reports.report import participant_report, report_dict
info = json.loads(sys.argv[2])
t = time.perf_counter()
v = LedgerView(sys.argv[1])
out = {"open": time.perf_counter() - t}
t = time.perf_counter()
participant_report(v.state, v.store, info["participant"], only_site=info["site"])
out["report"] = time.perf_counter() - t
t = time.perf_counter()
trace(v.store, v.state, info["lot"])
out["trace"] = time.perf_counter() - t
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["root"] = v.state.tree.root().hex()
print(json.dumps(out))
"""


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def measure(d: Path, info: dict[str, Any], export: bool, baseline_src: str | None) -> None:
    from crev.audit.trace import trace
    from crev.core.statetree import LazyStateTree
    from crev.node.node import LedgerView
    from crev.reports.export import lot_rows
    from crev.reports.report import participant_report

    print(f"ledger: {info['readings']:,} readings over {info['devices']:,} devices ({info['owners']:,} owners), "
          f"checkpoint at block {info['checkpoint_height']}, then {info['height'] - info['checkpoint_height']} "
          f"blocks ({info['tail_readings']:,} readings, a transfer, a retirement) after it; database "
          f"{info['db_bytes'] / 1e9:.2f} GB")
    base_rss = rss_mb()
    print(f"peak RSS before opening: {base_rss:,.0f} MB")

    # no block after the checkpoint (a node that stopped cleanly, or one idle since its last checkpoint)
    quiet: dict[str, float] = {}
    t = now()
    view = LedgerView(info["at_checkpoint"])
    quiet["open"] = now() - t
    assert view.loaded_in_full is None, view.loaded_in_full
    t = now()
    participant_report(view.state, view.store, info["participant"], only_site=info["site"])
    quiet["one-site report"] = now() - t
    t = now()
    participant_report(view.state, view.store, info["participant"])
    quiet["report of all its sites"] = now() - t
    t = now()
    trace(view.store, view.state, info["lot"])
    quiet["trace of one lot"] = now() - t
    view.close()
    quiet_rss = rss_mb()
    print(f"\nno block after the checkpoint ({info['at_checkpoint']}), lazy open: "
          + ", ".join(f"{k} {v * 1000:,.0f} ms" for k, v in quiet.items())
          + f"; open + one-site report {quiet['open'] + quiet['one-site report']:.2f} s; peak RSS {quiet_rss:,.0f} MB")

    lazy_t: dict[str, float] = {}
    t = now()
    view = LedgerView(d)
    lazy_t["open"] = now() - t
    assert view.loaded_in_full is None, view.loaded_in_full
    lazy = answers(view, info, lazy_t)
    lazy_rss = rss_mb()
    tree = view.state.tree
    assert isinstance(tree, LazyStateTree)
    loaded = sum(1 for b in range(1 << tree.depth) if tree.loaded(b))
    if export:
        t = now()
        rows = lot_rows(view.state)
        lazy_t["export lots (every lot: O(chain))"] = now() - t
        print(f"  export: {len(rows):,} lots")
    view.close()

    full_t: dict[str, float] = {}
    t = now()
    view = LedgerView(d, full=True)
    full_t["open"] = now() - t
    full = answers(view, info, full_t)
    full_rss = rss_mb()
    copy_s = old_index_copy(view)
    if export:
        t = now()
        lot_rows(view.state)
        full_t["export lots (every lot: O(chain))"] = now() - t
    view.close()

    print(f"\nwith the tail of blocks after the checkpoint ({d}):")
    print(f"{'':44} {'lazy (new)':>12} {'full load':>12} {'full / lazy':>12}")
    for name in lazy_t:
        print(f"{name:44} {lazy_t[name] * 1000:10,.0f} ms {full_t[name] * 1000:10,.0f} ms "
              f"{full_t[name] / lazy_t[name]:11,.1f}×")
    open_report_lazy = lazy_t["open"] + lazy_t["one-site report"]
    open_report_full = full_t["open"] + full_t["one-site report"] + copy_s
    print(f"{'(old open also copied the index: TEMP copy)':44} {'':>12} {copy_s * 1000:10,.0f} ms")
    print(f"open + one-site report, lazy (new): {open_report_lazy:.2f} s; as before the change (full load, "
          f"invariants, TEMP copy of the index): {open_report_full:.2f} s = {open_report_full / open_report_lazy:.0f}× "
          f"the lazy open")
    print(f"peak RSS after the lazy open and its queries: {lazy_rss:,.0f} MB (+{lazy_rss - base_rss:,.0f} MB; "
          f"{loaded:,} of {1 << 16:,} buckets loaded); after the full open: {full_rss:,.0f} MB")
    for part in ("root", "height", "site_report", "participant_report", "lot_trace", "retirement_trace"):
        assert same(lazy[part], full[part]), f"lazy and full views differ in {part}"
    print("answers of the lazy and the full view: identical (state root, reports, traces with their proofs)")
    assert lazy["lot_trace"]["lots"][0]["steps"][-1]["state_proof"]["verified"]

    if baseline_src:
        quiet_s = quiet["open"] + quiet["one-site report"]
        for where, lazy_s in ((d, open_report_lazy), (Path(info["at_checkpoint"]), quiet_s)):
            r = subprocess.run([sys.executable, "-c", BASELINE, str(where), json.dumps(info)], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": baseline_src}, check=True)
            old = json.loads(r.stdout)
            print(f"the code in {baseline_src} on {where} (child process): open {old['open']:.2f} s, one-site report "
                  f"{old['report'] * 1000:.0f} ms, trace {old['trace'] * 1000:.0f} ms, peak RSS {old['rss_mb']:,.0f} "
                  f"MB; open + report {old['open'] + old['report']:.2f} s = "
                  f"{(old['open'] + old['report']) / lazy_s:.0f}× the lazy open")


def report_build(info: dict[str, Any]) -> None:
    n = info["readings"]
    print(f"build ({info['code']}): {n:,} readings ingested at {info['readings_per_s']:,.0f} readings/s; "
          f"{info['checkpoints']} checkpoints")
    print(f"  checkpoint writes (checkpoint thread): {info['checkpoint_write_s'] / n * 1e6:.1f} µs per reading "
          f"(CPU {info['checkpoint_write_cpu_s'] / n * 1e6:.1f} µs), of which WAL checkpointing "
          f"{info['checkpoint_wal_s'] / n * 1e6:.1f} µs; handing a checkpoint over under the node's lock "
          f"{info['checkpoint_queue_s'] / n * 1e6:.2f} µs per reading")
    print(f"  largest write-ahead log during the ingest: {info['wal_max_bytes'] / 1e6:,.0f} MB "
          f"(database {info['db_bytes'] / 1e6:,.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/crev-readonly")
    ap.add_argument("--reuse", action="store_true", help="reuse --dir if a build finished there")
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--owners", type=int, default=1_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--tail-rounds", type=int, default=1)
    ap.add_argument("--export", action="store_true")
    ap.add_argument("--baseline-src", default=None)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--child-build", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    d = Path(a.dir)
    if a.child_build:
        info = build(d, a.readings, a.devices, a.owners, a.batch, a.tail_rounds)
        (d / BUILD_FILE).write_text(json.dumps(info, indent=1))
        sys.stdout.flush()
        os._exit(0)  # like kill -9: the tail stays after the checkpoint
    print(f"machine: {machine()}")
    if a.build_only:
        report_build(build_child(a, a.baseline_src))
        return
    if a.reuse and (d / BUILD_FILE).exists():
        info = json.loads((d / BUILD_FILE).read_text())
        print(f"reusing {d}")
    else:
        info = build_child(a, None)
    report_build(info)
    measure(d, info, a.export, a.baseline_src)


if __name__ == "__main__":
    main()
