"""Memory, disk and restart of the embedded node as its history grows (issue 12's memory bars).

Builds a ledger with the real node: ``--devices`` DGCs (10,000 by default), each owned by one of
``--owners`` consumers (by default one site each), with the state tree ``--depth`` levels deep
(a genesis parameter; 20 for a million-DGC ledger). Every device then reports one signed 30-minute
reading per round (seq k + 1, registers advancing by exactly the interval's values), in gateway
batches of ``--batch`` through ``node.submit``; before a round is submitted the node's clock is
moved to that round's interval end, so block time, slots and finality advance as in the field.
The readings are signed first, on every core, into one file per round under ``--signed`` (kept
and reused by later runs of the same devices and batch size: about 120 bytes per reading); the run
reads one round at a time, so no signing competes with the node and no pre-signed reading is held
in this process (its memory is the node's).

At each size of ``--sizes`` (accepted readings) it waits for every receipt, writes the checkpoint
(``node.flush()``), collects garbage and records this process's VmRSS, the readings/s of the
stretch since the last size, and the data directory's size on disk. With ``--restart`` it then
times, each in a child process while the node is idle: a restart (``Node(dir).start()`` until
``info()`` answers, with the restarted process's RSS), the real CLI ``crev report DIR PARTICIPANT``
of one site's owner (until it exits), and a read-only ``LedgerView`` open with that one-site report.
``--tracemalloc`` traces this process's allocations and prints, between consecutive sizes, the
source lines whose allocations grew most (per reading added); it slows the ingest several-fold, so
use it at small sizes. ``--trim`` also prints the RSS after ``malloc_trim(0)`` (memory the C allocator
held free). SIGINT (Ctrl-C) measures at the end of the round under way and stops there.

``--market`` lists a market in which every owner offers all of each new lot to one buyer whose bid
takes everything: each reading then also places an order that a trade fills at once (closed orders
grow with the history; the node keeps only the open ones in memory).

Bars (issue 12): RSS after 10M readings ≤ 1.2 × RSS after 1M readings (10,000 devices); a read-only
open (``crev report`` of one site) at 10M readings in < 2 s.

    python bench/bench_state.py [--sizes 1000000,2000000,5000000,10000000] [--devices 10000]
        [--owners 10000] [--depth 20] [--batch 5000] [--window 2] [--restart] [--tracemalloc]
        [--keep DIR] [--signed DIR] [--market]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import tracemalloc
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, os.path.dirname(__file__))

from common import CHAIN, T0, key, machine, make_ledger, now
from crev.core.encoding import encode
from crev.core.signing import Signer
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.set_offer_policy import SetOfferPolicy
from crev.ledger.messages.submit_readings import SubmitReadings, reading_payload
from crev.ledger.params import Params
from crev.ledger.records import ANY, BID
from crev.ledger.tx import build_tx
from crev.node.lazystate import LazyRecords
from crev.node.node import Node

SLOT = 1800  # [s] one reading per device per 30-minute slot
START = T0 + 9 * 3600  # [unix s] the first round's interval start (on a slot boundary)
RSS_BAR = 1.2  # RSS(10M) / RSS(1M)
REPORT_BAR_S = 2.0  # a read-only `crev report` of one site at 10M readings

_keys: dict[int, Signer] = {}


def _device_key(i: int) -> Signer:
    k = _keys.get(i)
    if k is None:
        k = _keys[i] = key(f"d{i}")
    return k


@dataclass(frozen=True, slots=True)
class _Batch:
    """A gateway batch as ``build_tx`` encodes it: readings already in their 13-element form (what
    ``SubmitReadings(parse_reading(...))`` would give back, without parsing each one first)."""

    kind: ClassVar[str] = SubmitReadings.kind
    readings: list[list[Any]]

    def to_body(self) -> list[Any]:
        return self.readings


def round_txs(k: int, devices: int, batch: int) -> list[bytes]:
    """Round ``k`` (0-based): reading k + 1 of every device, the slot [START + k·1800, +1800), in
    gateway batches of ``batch``."""
    out: list[bytes] = []
    readings: list[Any] = []
    start = START + k * SLOT
    for i in range(devices):
        g, imp, exp = 800 + (i % 200), 300, 100 + (i % 50)
        p = reading_payload(CHAIN, f"d{i}", k + 1, start, SLOT, g, imp, exp, (k + 1) * g, (k + 1) * imp,
                            (k + 1) * exp)
        readings.append([*p, _device_key(i).sign(encode(p))])
        if len(readings) == batch or i == devices - 1:
            out.append(build_tx(CHAIN, _Batch(readings)))  # type: ignore[arg-type]
            readings = []
    return out


def round_file(signed: Path, k: int) -> Path:
    return signed / f"round-{k:06d}.bin"


def _sign_round(args: tuple[Path, int, int, int]) -> None:
    """Write round ``k``'s batches to its file (a signing process), each as 4-byte length + tx."""
    signed, k, devices, batch = args
    path = round_file(signed, k)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"".join(len(tx).to_bytes(4, "big") + tx for tx in round_txs(k, devices, batch)))
    os.replace(tmp, path)


def read_round(signed: Path, k: int) -> list[bytes]:
    raw = round_file(signed, k).read_bytes()
    out, i = [], 0
    while i < len(raw):
        n = int.from_bytes(raw[i:i + 4], "big")
        out.append(raw[i + 4:i + 4 + n])
        i += 4 + n
    return out


def sign_rounds(signed: Path, rounds: int, devices: int, batch: int) -> tuple[int, float]:
    """Sign every round in [0, rounds) not yet in ``signed``, on all cores; (rounds signed, seconds)."""
    signed.mkdir(parents=True, exist_ok=True)
    todo = [k for k in range(rounds) if not round_file(signed, k).exists()]
    t = now()
    if todo:
        with get_context("fork").Pool(os.cpu_count() or 1) as pool:
            for j, _ in enumerate(pool.imap_unordered(_sign_round, [(signed, k, devices, batch) for k in todo])):
                if j % 50 == 49:
                    print(f"  … signed {j + 1:,}/{len(todo):,} rounds in {now() - t:.0f} s", flush=True)
    return len(todo), now() - t


MARKET_PRICE = 1_000  # [JPY per t-CO2e] --market: the buyer's bid and every owner's offer policy


def open_market(node: Node, owners: list[tuple[str, str, Signer]], devices: int, readings: int) -> None:
    """``--market``: list a continuous market ``spot``, register a buyer ``b0`` whose one bid takes
    every lot offered (``readings`` × 400 g, more than a reading issues), and give every owner an
    offer policy for all of each new lot at that price: each reading then places an order that a
    trade fills and closes at once, so closed orders grow with the history as lots do."""
    op, buyer = key("operator"), key("b0")
    nonce = len(owners) + devices  # make_ledger registered each owner and device with the operator's key
    txs: list[bytes] = []
    for msg in (RegisterParticipant("b0", "Buyer 0", "buyer", buyer.public_key, os.urandom(16)),
                ListMarket("spot", "Spot", "continuous", ANY, 1, 10**9, 1, 0, 0, True),
                DepositJpy("b0", 10**12, "BANK-1")):
        txs.append(build_tx(CHAIN, msg, "operator", nonce, op))
        nonce += 1
    txs.append(build_tx(CHAIN, PlaceOrder("spot", BID, MARKET_PRICE, readings * 400, "gtc", 0, ANY, (), None),
                        "b0", 0, buyer))
    txs += [build_tx(CHAIN, SetOfferPolicy("spot", 10_000, MARKET_PRICE), acct, 0, signer)
            for acct, _, signer in owners]
    for f in [node.submit(raw) for raw in txs]:
        r = f.result(900)
        if not r.ok:
            raise RuntimeError(f"market set-up refused: {r.error}")


def owner_of(i: int, devices: int, owners: int) -> str:
    return f"c{i * owners // devices:05d}"


def status_kb(field: str) -> int:
    """``field`` (VmRSS, VmHWM) of this process from /proc/self/status [kB]."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def pymalloc_stats() -> dict[str, int]:
    """Python's small-object allocator as ``sys._debugmallocstats`` prints it (to the C stderr, so
    read back through a file): arenas in use now and at most, and the bytes in allocated blocks and
    free inside those arenas. Arenas are 1 MiB; one long-lived object keeps its whole arena."""
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode()
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        for want, name_out in (("# arenas allocated current", "arenas"), ("# arenas highwater mark", "arenas_peak"),
                              ("# bytes in allocated blocks", "allocated"), ("# bytes in available blocks", "free")):
            if name.strip() == want:
                out[name_out] = int(value.strip().replace(",", ""))
    return out


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def c_heap() -> dict[str, int]:
    """The C allocator's view (glibc ``mallinfo2``: bytes in use and free in its heaps, and in blocks it
    mapped apart) and SQLite's own (``sqlite3_memory_used``: page caches, statements, of every
    connection in this process, the kernel's included). Python's objects larger than 512 bytes
    and the Rust kernel's vectors come from the C heap; {} where either library is not found."""
    out: dict[str, int] = {}
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        m = libc.mallinfo2()
        out.update(in_use=m.uordblks + m.hblkhd, free=m.fordblks, mapped=m.hblkhd)
    except (OSError, AttributeError):
        pass
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        out["sqlite"] = lib.sqlite3_memory_used()
    except (OSError, AttributeError):
        pass
    return out


def disk_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file())


# --- the child processes: restart, read-only open, CLI --------------------------------------------

RESTART = """
import json, sys, time
t = time.perf_counter()
from crev.node.lazystate import LazyRecords
from crev.node.node import Node
t_import = time.perf_counter() - t
t = time.perf_counter()
node = Node(sys.argv[1], clock=lambda: float(sys.argv[2])).start()
node.info()
load = time.perf_counter() - t
rss = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS:"))
t = time.perf_counter()
node.close()
print(json.dumps({"import_s": t_import, "start_s": load, "rss_kb": rss, "close_s": time.perf_counter() - t}))
"""

VIEW = """
import json, sys, time
from crev.node.node import LedgerView
from crev.reports.report import participant_report
t = time.perf_counter()
v = LedgerView(sys.argv[1])
open_s = time.perf_counter() - t
t = time.perf_counter()
rep = participant_report(v.state, v.store, sys.argv[2], only_site=sys.argv[3])
report_s = time.perf_counter() - t
rss = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS:"))
print(json.dumps({"open_s": open_s, "report_s": report_s, "rss_kb": rss, "slots": len(rep.sites[0].slots),
                  "in_full": v.loaded_in_full}))
v.close()
"""


def child_json(code: str, *args: str) -> tuple[dict[str, Any], float]:
    """Run ``code`` in a fresh interpreter; its JSON line and the child's wall time [s]."""
    t = now()
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    wall = now() - t
    if r.returncode:
        raise RuntimeError(f"child failed ({r.returncode}): {r.stderr[-2000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1])), wall


def cli_report(d: Path, participant: str) -> float:
    """Wall time [s] of the real CLI ``crev report DIR PARTICIPANT`` until it exits."""
    t = now()
    r = subprocess.run([sys.executable, "-m", "crev.cli", "report", str(d), participant], capture_output=True,
                       text=True, env={**os.environ, "COLUMNS": "120"})
    wall = now() - t
    if r.returncode or participant not in r.stdout:
        raise RuntimeError(f"crev report failed ({r.returncode}): {r.stdout[-1000:]} {r.stderr[-2000:]}")
    return wall


# --- the run --------------------------------------------------------------------------------------

def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, added: int, n: int = 12) -> None:
    """The source lines whose live allocations grew most between two snapshots, per reading added."""
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"  tracemalloc: +{total / 1e6:,.1f} MB traced = {total / added:,.0f} B per reading added; top lines:")
    for s in sorted(stats, key=lambda s: -s.size_diff)[:n]:
        f = s.traceback[0]
        name = f.filename.split("/src/")[-1] if "/src/" in f.filename else f.filename.split("/")[-1]
        print(f"    {s.size_diff / added:8,.0f} B/reading {s.count_diff / added:7.2f} objects/reading  "
              f"{name}:{f.lineno}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,2000000,5000000,10000000",
                    help="accepted readings at which to measure (each rounded up to whole rounds)")
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--owners", type=int, default=None, help="consumers owning the devices (default: one each)")
    ap.add_argument("--depth", type=int, default=20, help="state_tree_depth genesis parameter (1..24)")
    ap.add_argument("--batch", type=int, default=5_000, help="readings per gateway batch")
    ap.add_argument("--signed", default=None,
                    help="directory of pre-signed rounds, reused across runs (default /tmp/crev-state-signed-DxB)")
    ap.add_argument("--window", type=int, default=2, help="rounds submitted and not yet committed")
    ap.add_argument("--restart", action="store_true", help="at each size, time a restart, crev report, a view")
    ap.add_argument("--tracemalloc", action="store_true", help="trace allocations; diff them between sizes")
    ap.add_argument("--trim", action="store_true",
                    help="at each size, also give memory free in the C allocator back (malloc_trim) and print RSS")
    ap.add_argument("--keep", default=None, help="build in this directory (must not exist) and keep it")
    ap.add_argument("--market", action="store_true",
                    help="every owner offers all of each new lot (offer policy) to one buyer's bid that takes all: "
                         "an order and a trade per reading")
    a = ap.parse_args()
    owners = a.owners or a.devices
    sizes = sorted(int(s) for s in a.sizes.split(","))
    rounds_at = [-(-s // a.devices) for s in sizes]  # ceil: whole rounds
    if a.keep:
        d = Path(a.keep)
        if d.exists():
            sys.exit(f"--keep {d}: exists; give a new directory")
    else:
        d = Path(tempfile.mkdtemp(prefix="crev-state-")) / "ledger"
    site = 5 % a.devices
    participant = owner_of(site, a.devices, owners)
    print(f"machine: {machine()}")
    print(f"ledger: {a.devices:,} devices, {owners:,} owners, state tree depth {a.depth}, batches of {a.batch:,}, "
          f"30-minute readings; sizes {', '.join(f'{r * a.devices:,}' for r in rounds_at)}; data dir {d}",
          flush=True)

    signed = Path(a.signed or f"/tmp/crev-state-signed-{a.devices}x{a.batch}")
    n_signed, sign_s = sign_rounds(signed, rounds_at[-1], a.devices, a.batch)
    print(f"signed {n_signed:,} rounds ({n_signed * a.devices:,} readings) in {sign_s:.0f} s on "
          f"{os.cpu_count()} cores into {signed} ({rounds_at[-1] - n_signed:,} rounds were there already)",
          flush=True)
    if a.tracemalloc:
        tracemalloc.start()
    t_all = t = now()
    owner_list = [(f"c{j:05d}", f"Consumer {j}", key(f"c{j}")) for j in range(owners)]
    node, d, clock = make_ledger(a.devices, data_dir=d, clock_start=START, owners=owner_list,
                                 owner_of=lambda i: owner_of(i, a.devices, owners),
                                 params=Params(state_tree_depth=a.depth))
    if a.market:
        open_market(node, owner_list, a.devices, rounds_at[-1] * a.devices)
    setup_s = now() - t
    node.flush()
    gc.collect()
    rss0 = status_kb("VmRSS")
    print(f"set-up: {owners:,} participants and {a.devices:,} devices registered"
          f"{', a market, a buyer bidding for every lot and an offer policy per owner' if a.market else ''} "
          f"in {setup_s:.1f} s; RSS {rss0 / 1024:,.0f} MB", flush=True)

    total_rounds = rounds_at[-1]
    inflight: deque[list[Future[Any]]] = deque()
    accepted = 0

    def settle_oldest() -> None:
        nonlocal accepted
        for f in inflight.popleft():
            r = f.result(3600)
            if not r.ok:
                raise RuntimeError(f"batch refused: {r.error}")
            for x in r.detail:
                if x[0] != "accepted":
                    raise RuntimeError(f"a reading was not accepted: {x}")
            accepted += len(r.detail)

    rows: list[dict[str, Any]] = []
    snap = tracemalloc.take_snapshot() if a.tracemalloc else None
    last_accepted, stretch_t = 0, now()
    waited_before = node.seal_times.writer_wait
    progress_t = now()
    stop_early = []  # SIGINT: measure at the end of the round under way and stop there
    signal.signal(signal.SIGINT, lambda *_: stop_early.append(True))
    for k in range(total_rounds):
        txs = read_round(signed, k)
        clock[0] = float(START + (k + 1) * SLOT)  # the round's interval end: the gateway sends it now
        inflight.append([node.submit(raw) for raw in txs])
        del txs
        while len(inflight) > a.window:
            settle_oldest()
        if now() - progress_t >= 30:
            progress_t = now()
            print(f"  … round {k + 1:,}/{total_rounds:,}: {accepted:,} accepted, "
                  f"{(accepted - last_accepted) / (now() - stretch_t):,.0f} readings/s this stretch, "
                  f"RSS {status_kb('VmRSS') / 1024:,.0f} MB, {disk_bytes(d) / 1e9:.2f} GB on disk, "
                  f"{(now() - t_all) / 60:.1f} min, load average {os.getloadavg()[0]:.1f}", flush=True)
        if k + 1 not in rounds_at and not stop_early:
            continue
        while inflight:
            settle_oldest()
        stretch_s = now() - stretch_t
        rate = (accepted - last_accepted) / stretch_s
        node.flush()
        flushed_rate = (accepted - last_accepted) / (now() - stretch_t)
        waited = node.seal_times.writer_wait - waited_before
        waited_before = node.seal_times.writer_wait
        gc.collect()
        row: dict[str, Any] = {"readings": accepted, "rate": rate, "rss_kb": status_kb("VmRSS"),
                               "hwm_kb": status_kb("VmHWM"), "disk": disk_bytes(d), "height": node.state.height,
                               "elapsed_s": now() - t_all}
        print(f"{accepted:,} readings at height {row['height']:,}: {rate:,.0f} readings/s over the last "
              f"{accepted - last_accepted:,} ({flushed_rate:,.0f} with its checkpoint written; the sealer waited "
              f"{waited:.0f} s for the writer); RSS {row['rss_kb'] / 1024:,.0f} MB (peak {row['hwm_kb'] / 1024:,.0f}); "
              f"on disk {row['disk'] / 1e9:.2f} GB = {row['disk'] / accepted:,.0f} B/reading; "
              f"{row['elapsed_s'] / 60:.1f} min so far; load average {os.getloadavg()[0]:.1f}", flush=True)
        if a.market:
            with node.lock:
                sup, orders = node.state.supply, node.state.orders
                held = orders.resident() if isinstance(orders, LazyRecords) else len(orders)
                n_open = len(node.state.open_orders().open)
            print(f"  market: {sup.orders:,} orders placed, {sup.trades:,} trades, {n_open:,} open; "
                  f"{held:,} orders held in memory", flush=True)
        row["blocks"] = sys.getallocatedblocks()
        pm = row["pymalloc"] = pymalloc_stats()
        line = (f"  memory: anonymous {status_kb('RssAnon') / 1024:,.0f} MB, file-backed "
                f"{status_kb('RssFile') / 1024:,.0f} MB; Python objects' blocks allocated {row['blocks']:,}; "
                f"pymalloc arenas {pm.get('arenas', 0):,} (peak {pm.get('arenas_peak', 0):,}), "
                f"{pm.get('allocated', 0) / 1e6:,.1f} MB in use, {pm.get('free', 0) / 1e6:,.1f} MB free inside them")
        ch = row["c_heap"] = c_heap()
        if "in_use" in ch:
            line += (f"; C heap {ch['in_use'] / 1e6:,.1f} MB in use ({ch['mapped'] / 1e6:,.1f} MB mapped apart), "
                     f"{ch['free'] / 1e6:,.1f} MB free")
        if "sqlite" in ch:
            line += f"; SQLite {ch['sqlite'] / 1e6:,.1f} MB"
        if a.trim:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            line += f"; RSS after malloc_trim(0) {status_kb('VmRSS') / 1024:,.0f} MB"
        print(line, flush=True)
        if snap is not None:
            gc.collect()
            later = tracemalloc.take_snapshot()
            top_growth(snap, later, accepted - last_accepted)
            snap = later
        if a.restart:
            r, wall = child_json(RESTART, str(d), str(clock[0]))
            row["restart_s"], row["restart_rss_kb"] = r["start_s"], r["rss_kb"]
            print(f"  restart (child): Node(dir).start() → info() in {r['start_s']:.2f} s (imports "
                  f"{r['import_s']:.2f} s, process {wall:.2f} s), its RSS {r['rss_kb'] / 1024:,.0f} MB", flush=True)
            row["cli_s"] = cli_report(d, participant)
            print(f"  crev report {d} {participant} (one site, {k + 1:,} slots): {row['cli_s']:.2f} s to exit",
                  flush=True)
            v, wall = child_json(VIEW, str(d), participant, f"d{site}")
            row["view_open_s"], row["view_report_s"], row["view_rss_kb"] = v["open_s"], v["report_s"], v["rss_kb"]
            print(f"  LedgerView open {v['open_s']:.2f} s (in full: {v['in_full']}) + one-site report "
                  f"{v['report_s'] * 1000:,.0f} ms ({v['slots']:,} slots), RSS {v['rss_kb'] / 1024:,.0f} MB",
                  flush=True)
        rows.append(row)
        last_accepted, stretch_t = accepted, now()
        if stop_early:
            print(f"stopped early (SIGINT) after round {k + 1:,}", flush=True)
            break
    build_s = now() - t_all
    node.close()

    print(f"\nbuild: {accepted:,} readings in {build_s / 60:.1f} min (set-up {setup_s:.0f} s, measurements "
          f"included; signing apart: {sign_s:.0f} s); depth {a.depth}; {a.devices:,} devices")
    print(f"RSS after set-up: {rss0 / 1024:,.0f} MB")
    head = (f"{'readings':>12} {'readings/s':>10} {'RSS MB':>8} {'B/reading':>9} {'disk GB':>8} {'disk B/rd':>9} "
            f"{'restart s':>9} {'rst RSS MB':>10} {'report s':>8} {'view s':>7}")
    print(head)
    for r in rows:
        per = (r["rss_kb"] - rss0) * 1024 / r["readings"]
        line = (f"{r['readings']:>12,} {r['rate']:>10,.0f} {r['rss_kb'] / 1024:>8,.0f} {per:>9,.0f} "
                f"{r['disk'] / 1e9:>8.2f} {r['disk'] / r['readings']:>9,.0f}")
        if "restart_s" in r:
            line += (f" {r['restart_s']:>9.2f} {r['restart_rss_kb'] / 1024:>10,.0f} {r['cli_s']:>8.2f} "
                     f"{r['view_open_s'] + r['view_report_s']:>7.2f}")
        print(line)
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        ratio = last["rss_kb"] / first["rss_kb"]
        grow = (last["rss_kb"] - first["rss_kb"]) * 1024 / (last["readings"] - first["readings"])
        print(f"RSS({last['readings']:,}) / RSS({first['readings']:,}) = {ratio:.2f} (bar ≤ {RSS_BAR}: "
              f"{'MET' if ratio <= RSS_BAR else 'NOT MET'}); growth {grow:,.0f} B per reading between them")
    if rows and "cli_s" in rows[-1]:
        c = rows[-1]["cli_s"]
        print(f"crev report of one site at {rows[-1]['readings']:,} readings: {c:.2f} s (bar < {REPORT_BAR_S} s: "
              f"{'MET' if c < REPORT_BAR_S else 'NOT MET'}; {c / REPORT_BAR_S:.2f} of the bar)")
    if a.keep:
        print(f"kept {d}")
    else:
        shutil.rmtree(d.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
