"""The API's front door under overload and under attack, over real sockets (uvicorn on 127.0.0.1).

(a) Overload: gateways offer ``--rate`` signed readings/s in ``--batch``-reading batches, open loop
    (a new batch every batch/rate seconds whatever happened to the last), for ``--seconds``. Run
    on fresh ledgers in the same process: with back-pressure off (the queue grows), with the
    default ``Admission`` (503 + Retry-After for a batch the node is predicted not to answer
    within the budget) and clients that give up on a 503, and the same with clients that retry
    after ``Retry-After``. Prints readings/s committed, p50/p99 latency of what was admitted, how
    many were turned away, the server's RSS growth and the service rate the admission measured.
(b) Attack: 2 honest gateways post 500-reading batches in a closed loop, alone and then while a
    third client (another source address) posts 20,000-reading batches whose signatures are all
    wrong. Run with the refused-work charge off and on; prints the honest readings/s as a ratio
    of the honest-alone rate measured in the same run.

The clients run in a separate process so they do not compete with the server for its interpreter
lock; both share this machine's cores, as a gateway on the same host would.

    python bench/bench_frontdoor.py [--rate 10000] [--batch 500] [--seconds 8] [--quick] [--no-off] [--no-attack]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from common import batch_tx, machine, make_ledger, now, rss_mb, signed_readings
from crev.service.guard import ConnectionGuard
from crev.service.limits import Admission
from crev.service.server import Background


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


# --- client process ----------------------------------------------------------------------------


def _post(conn: http.client.HTTPConnection, raw: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/v1/tx?wait=true", body=raw, headers={"Content-Type": "application/cbor"})
    r = conn.getresponse()
    return r.status, r.read()


def _open_loop(port: int, batches: list[bytes], interval: float, retry: bool = False,
               groups: int = 1) -> dict[str, Any]:
    """Fire one batch every ``interval`` s on its own thread and connection; collect outcomes.
    ``retry``: a batch turned away with 503 is posted again (same bytes, new connection) after its
    ``Retry-After``, as docs/api.md asks gateways to; the latency counted is its admitted try's.
    Retrying gateways each own the batches ``i % groups == g`` (their devices) and post them in
    order, each at its time or once the one before is answered, whichever is later."""
    out: list[tuple[int, float, int]] = []  # (status, latency s, readings accepted)
    sent: list[tuple[float, float]] = []  # (admitted try sent at, s after the start; its latency s)
    tries = [0]
    lock = threading.Lock()

    def one(raw: bytes) -> None:
        while True:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            t0 = now()
            after = "1"
            try:
                c.request("POST", "/v1/tx?wait=true", body=raw, headers={"Content-Type": "application/cbor"})
                r = c.getresponse()
                status, body, after = r.status, r.read(), r.getheader("Retry-After") or "1"
            except OSError:
                status, body = 599, b""
            dt = now() - t0
            c.close()
            with lock:
                tries[0] += 1
            if status == 503 and retry:
                time.sleep(float(after))
                continue
            break
        n = sum(1 for d in json.loads(body)["detail"] if d[0] == "accepted") if status == 200 else 0
        with lock:
            out.append((status, dt, n))
            if status == 200:
                sent.append((t0 - start, dt))

    def gateway(mine: list[tuple[int, bytes]]) -> None:  # retrying gateways post their own batches in order
        for i, raw in mine:
            delay = start + i * interval - now()
            if delay > 0:
                time.sleep(delay)
            one(raw)

    threads = []
    start = now()
    if retry:
        for g in range(groups):
            t = threading.Thread(target=gateway, args=([(i, b) for i, b in enumerate(batches) if i % groups == g],))
            t.start()
            threads.append(t)
    for i, raw in enumerate([] if retry else batches):
        delay = start + i * interval - now()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(raw,))
        t.start()
        threads.append(t)
    offered_s = max(now() - start, interval * len(batches))
    for t in threads:
        t.join()
    wall = now() - start
    ok = [dt for st, dt, _ in out if st == 200]
    return {"wall": wall, "offered_s": offered_s, "accepted": sum(n for _, _, n in out),
            "admitted": len(ok), "p50": statistics.median(ok) if ok else float("nan"), "p99": pct(ok, 99),
            "max": max(ok, default=float("nan")), "refused_503": tries[0] - len(out) if retry else
            sum(1 for st, _, _ in out if st == 503),
            "other": sorted({st for st, _, _ in out} - {200, 503}), "sent": sorted(sent)}


def _attack(port: int, honest: list[list[bytes]], forged: list[bytes], seconds: float,
            attack: bool) -> dict[str, Any]:
    """Two honest closed-loop gateways (and, if ``attack``, one forger from 127.0.0.2) for
    ``seconds``; returns the honest rate and how many batches each gateway used."""
    stop = now() + seconds
    accepted = [0, 0]
    used = [0, 0]
    refused = [0]
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def gateway(g: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        i = 0
        while i < len(honest[g]) and now() < stop:
            status, body = _post(c, honest[g][i])
            if status == 200:
                accepted[g] += sum(1 for d in json.loads(body)["detail"] if d[0] == "accepted")
                i += 1
            elif status == 503:
                time.sleep(0.05)  # the node is behind: retry the same batch
            else:
                raise RuntimeError(f"honest gateway: {status} {body[:200]!r}")
        used[g] = i
        c.close()

    def forger() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600, source_address=("127.0.0.2", 0))
        i = 0
        while now() < stop:
            status, _ = _post(c, forged[i % len(forged)])
            i += 1
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 401:
                    refused[0] += 1
            if status in (429, 503):
                time.sleep(0.2)  # a patient attacker retries; a reckless one only gets more 429s
        c.close()

    threads = [threading.Thread(target=gateway, args=(g,)) for g in (0, 1)]
    if attack:
        threads.append(threading.Thread(target=forger))
    t0 = now()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = now() - t0
    return {"honest_rate": sum(accepted) / wall, "used": used, "forged_batches_checked": refused[0],
            "forger_statuses": statuses}


def in_client(fn: Any, *args: Any) -> Any:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


# --- main --------------------------------------------------------------------------------------


def overload(args: argparse.Namespace, admission: Admission, label: str, retry: bool = False) -> None:
    n_batches = int(args.rate * args.seconds / args.batch)
    groups = 32  # batch i carries group i % 32's devices, so one device's batches are 32 intervals apart
    devices = args.batch * groups  # (1.6 s at the default rate) and requests cannot reach the node out of order
    node, d, _ = make_ledger(devices, block_ms=100)
    readings = signed_readings(devices, -(-n_batches // groups))
    batches = []
    for i in range(n_batches):
        k, g = divmod(i, groups)
        lo = k * devices + g * args.batch
        batches.append(batch_tx(readings[lo:lo + args.batch]))
    # the open-loop clients stand for many gateways but share one address: lift the per-address cap
    srv = Background(node, "127.0.0.1", 0, rate=0, admission=admission,
                     guard=ConnectionGuard(max_per_address=10_000)).start()
    try:
        rss0 = rss_mb()
        r = in_client(_open_loop, srv.port, batches, args.batch / args.rate, retry, groups)
        rss1 = rss_mb()
        print(f"  {label:<26} offered {args.rate:,.0f} readings/s for {r['offered_s']:.1f} s: committed "
              f"{r['accepted'] / r['wall']:,.0f}/s; admitted {r['admitted']}/{n_batches} batches "
              f"({'503s retried' if retry else '503'}: {r['refused_503']}"
              f"{', other ' + str(r['other']) if r['other'] else ''}); admitted "
              f"p50 {r['p50']:.2f} s p99 {r['p99']:.2f} s max {r['max']:.2f} s; RSS {rss0:,.0f} → {rss1:,.0f} MB"
              f"{f'; node rate {admission.rate() / 1e3:,.0f} kB/s' if admission.rate() else ''}")
        if args.timeline:  # which admitted batches were slow, by when they were sent
            slow = [f"{t:.1f}:{dt:.2f}" for t, dt in r["sent"] if dt > 0.8]
            print(f"    admitted batches answered after 0.8 s (sent at s: latency s): {' '.join(slow) or 'none'}")
    finally:
        srv.stop()
        node.close()
        shutil.rmtree(d, ignore_errors=True)


def attack(args: argparse.Namespace) -> None:
    devices, half = 1_000, 500
    per = int(args.seconds * 16) + 8  # intervals: enough 500-reading batches per gateway for 4 runs
    node, d, _ = make_ledger(devices, block_ms=100)
    readings = signed_readings(devices, per)  # interval by interval, devices interleaved
    honest = [[batch_tx(readings[k * devices + g * half:k * devices + (g + 1) * half]) for k in range(per)]
              for g in (0, 1)]
    cursor = [0, 0]  # each gateway's next batch (its devices' readings must arrive in order)
    forged = []
    for j in range(2):  # valid shapes, wrong signatures: every one costs a verification
        bad = [[*r[:12], os.urandom(64)] for r in signed_readings(20, 1_000)]
        bad[0][3] = 10_000 + j  # distinct bytes per batch
        forged.append(batch_tx(bad))
    try:
        for charge in (False, True):
            runs = {}
            for phase, with_attack in (("alone", False), ("attacked", True)):
                srv = Background(node, "127.0.0.1", 0, rate=0, refused_rate=500.0 if charge else 0).start()
                try:
                    todo = [honest[g][cursor[g]:] for g in (0, 1)]
                    runs[phase] = r = in_client(_attack, srv.port, todo, forged, args.seconds / 2, with_attack)
                    cursor = [cursor[g] + r["used"][g] for g in (0, 1)]
                finally:
                    srv.stop()
            a, b = runs["alone"], runs["attacked"]
            print(f"  refused-work charge {'on ' if charge else 'off'}: honest {a['honest_rate']:,.0f} readings/s "
                  f"alone, {b['honest_rate']:,.0f}/s under attack = {b['honest_rate'] / a['honest_rate']:.2f}× "
                  f"(forged 20,000-reading batches verified: {b['forged_batches_checked']}; the forger's "
                  f"answers {b['forger_statuses']})")
    finally:
        node.close()
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--budget", type=float, nargs="+", default=[Admission().budget_s],
                    help="back-pressure budgets to run [s] (the server's default is Admission's)")
    ap.add_argument("--age-only", action="store_true",
                    help="also run the earlier rule (refuse while the oldest waiting is 0.5 s old) for comparison")
    ap.add_argument("--no-attack", action="store_true", help="only the overload runs")
    ap.add_argument("--no-off", action="store_true", help="skip the run with back-pressure off")
    ap.add_argument("--timeline", action="store_true", help="list the admitted batches answered after 0.8 s")
    ap.add_argument("--quick", action="store_true", help="small and short (for the test suite)")
    args = ap.parse_args()
    if args.quick:
        args.rate, args.batch, args.seconds = 2_000, 100, 1.5
    print(f"machine: {machine()}")
    print("(a) overload, open loop:")
    off = 1e9
    if not args.no_off:
        overload(args, Admission(budget_s=off, max_wait_s=off, max_bytes=2**62), "back-pressure off")
    if args.age_only:
        overload(args, Admission(budget_s=off, max_wait_s=0.5), "queue age 0.5 s only")
    for budget in args.budget:
        overload(args, Admission(budget_s=budget), f"budget {budget:g} s")
        overload(args, Admission(budget_s=budget), f"budget {budget:g} s, clients retry", retry=True)
    if not args.no_attack:
        print("(b) one client's forged batches against two honest gateways:")
        attack(args)


if __name__ == "__main__":
    main()
