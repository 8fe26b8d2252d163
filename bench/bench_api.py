"""The HTTP API over a real socket (uvicorn on 127.0.0.1) against the same work done in process.

A fleet of ``--sites`` DGCs (default 10,000) owned by ``--owners`` consumers, on two identical
ledgers: one driven in process (the baseline), one behind the API. The HTTP clients run in a
separate process (so they do not compete with the server for its interpreter lock), each of
``--clients`` threads on its own keep-alive connection.

(a) Submitting: gateway batches of ``--batch`` signed 30-minute readings through
    ``POST /v1/tx?wait=true`` (each request answers once its block is committed), against the same
    batches through ``node.submit_wait`` on the twin ledger, by the same number of threads.
(b) Consumer figures: ``GET /v1/figures/{participant}?site=…`` for random sites, against
    ``queries.figures`` under the same consistent read (``Live.read``) in process, and where the
    time of one query goes.
(c) The same for one site of a consumer that owns every site (a third ledger).

Prints readings/s and requests/s, p50/p99 latency per request, and the ratio HTTP / in process.

    python bench/bench_api.py [--sites 10000] [--owners 1000] [--per-site 4] [--batch 500]
                              [--clients 4] [--queries 1000] [--quick] [--profile] [--no-big-owner]
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import json
import multiprocessing
import os
import pstats
import queue
import random
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from fastapi.encoders import jsonable_encoder

from common import batch_tx, key, machine, make_ledger, now, signed_readings
from crev.node.node import Node
from crev.reports.report import claims_by_slot, participant_report
from crev.service import queries
from crev.service.live import Live
from crev.service.server import serve_in_thread

SLOT = 1800


def owner_of(site: int, sites: int, owners: int) -> str:
    return f"c{site * owners // sites:05d}"


def make_fleet(sites: int, owners: int, block_ms: int) -> tuple[Node, Path]:
    """A fresh node with ``owners`` consumers owning ``sites`` DGCs between them (d0, d1, … as in
    common.signed_readings), registered through the node itself."""
    node, d, _ = make_ledger(sites, block_ms=block_ms,
                             owners=[(f"c{j:05d}", f"Consumer {j}", key(f"c{j}")) for j in range(owners)],
                             owner_of=lambda i: owner_of(i, sites, owners))
    return node, d


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p))]


def summary(name: str, n_req: int, wall: float, lats: list[float], unit: str = "requests",
            done: int | None = None) -> float:
    rate = (done if done is not None else n_req) / wall
    print(f"  {name}: {n_req:,} requests in {wall:.2f} s = {rate:,.0f} {unit}/s; "
          f"latency p50 {statistics.median(lats) * 1000:.1f} ms, p99 {pct(lats, 0.99) * 1000:.1f} ms, "
          f"max {max(lats) * 1000:.1f} ms")
    return rate


def threaded(work: list[Any], clients: int, call: Callable[[Any], int]) -> tuple[float, list[float], int]:
    """Run ``call`` over ``work`` in order from ``clients`` threads; returns wall time, per-item
    latencies and the sum of what the calls returned."""
    q: queue.Queue[Any] = queue.Queue()
    for w in work:
        q.put(w)
    lats: list[float] = []
    total = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while True:
                try:
                    w = q.get_nowait()
                except queue.Empty:
                    return
                t0 = now()
                n = call(w)
                dt = now() - t0
                with lock:
                    lats.append(dt)
                    total[0] += n
        except BaseException as exc:  # surfaced below, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t = now()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = now() - t
    if errors:
        raise errors[0]
    return wall, lats, total[0]


# --- the HTTP client process -------------------------------------------------------------------


def _http_load(port: int, kind: str, work: list[Any], clients: int) -> tuple[float, list[float], int]:
    """In the client process: POST batches (``kind`` "tx") or GET figure paths (``kind`` "get")."""
    local = threading.local()

    def conn() -> http.client.HTTPConnection:
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        return c

    turned_away = [0]  # 503 "overloaded" answers (back-pressure), each retried after its Retry-After

    def post(raw: bytes) -> int:
        while True:
            c = conn()
            c.request("POST", "/v1/tx?wait=true", body=raw, headers={"Content-Type": "application/cbor"})
            r = c.getresponse()
            body = r.read()
            if r.status == 503 and b'"overloaded"' in body:  # as a gateway does: wait as told, send again
                turned_away[0] += 1
                time.sleep(float(r.getheader("Retry-After") or 1))
                continue
            if r.status != 200:
                raise RuntimeError(f"POST /v1/tx: {r.status} {body[:300]!r}")
            return sum(1 for d in json.loads(body)["detail"] if d[0] == "accepted")

    def get(path: str) -> int:
        c = conn()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
        return len(body)

    out = threaded(work, clients, post if kind == "tx" else get)
    if turned_away[0]:
        print(f"  (the node's back-pressure answered 503 {turned_away[0]:,} times; each was sent again after its "
              f"Retry-After, and the latencies include those waits)", flush=True)
    return out


def http_load(port: int, kind: str, work: list[Any], clients: int) -> tuple[float, list[float], int]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_http_load, (port, kind, work, clients))


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--owners", type=int, default=0, help="consumers owning the sites (default: sites / 10)")
    ap.add_argument("--per-site", type=int, default=4, help="30-minute readings per site")
    ap.add_argument("--batch", type=int, default=500, help="signed readings per POST /v1/tx")
    ap.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    ap.add_argument("--queries", type=int, default=1000, help="figure requests per run")
    ap.add_argument("--block-ms", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="a small run (500 sites) that finishes in seconds")
    ap.add_argument("--profile", action="store_true", help="cProfile the in-process figures query")
    ap.add_argument("--no-big-owner", dest="big_owner", action="store_false",
                    help="skip (c), one consumer owning every site")
    a = ap.parse_args()
    if a.quick:
        a.sites, a.per_site, a.batch, a.queries = min(a.sites, 500), 1, 100, 40
    owners = a.owners or max(1, a.sites // 10)
    if a.sites // a.batch <= a.clients or a.sites % a.batch:
        ap.error("--batch must divide --sites at least --clients times (a device's next reading is never "
                 "submitted while its previous one is still in flight)")
    print(f"machine: {machine()}")
    print(f"fleet: {a.sites:,} sites owned by {owners:,} consumers; {a.clients} client threads "
          f"(HTTP clients in a separate process); block interval {a.block_ms} ms; no rate limit")

    t = now()
    base, base_dir = make_fleet(a.sites, owners, a.block_ms)
    api, api_dir = make_fleet(a.sites, owners, a.block_ms)
    print(f"set-up: two ledgers of {a.sites:,} sites registered in {now() - t:.1f} s")
    t = now()
    readings = signed_readings(a.sites, a.per_site, SLOT)
    txs = [batch_tx(readings[i:i + a.batch]) for i in range(0, len(readings), a.batch)]
    print(f"signed {len(readings):,} readings ({a.per_site} per site, 30-minute intervals) into {len(txs)} "
          f"batches of {a.batch} in {now() - t:.1f} s")
    server = serve_in_thread(api, "127.0.0.1", 0, rate=0)
    try:
        # --- (a) submitting ---------------------------------------------------------------------
        # warm up both ledgers with the first batch (the verification workers start on first use)
        # and write both set-ups' checkpoints now, not during the measurements
        warm, txs = txs[0], txs[1:]
        for node in (base, api):
            assert node.submit_wait(warm, timeout=600).ok
            node.flush()
        measured = len(readings) - a.batch
        print(f"(a) submitting {measured:,} signed readings in {len(txs)} batches of {a.batch} "
              f"(after one batch to warm up):")

        receipts: list[Any] = []

        def in_process(raw: bytes) -> int:
            r = base.submit_wait(raw, timeout=600)
            assert r.ok, r.error
            receipts.append(r)
            return sum(1 for d in r.detail if d[0] == "accepted")

        wall, lats, accepted = threaded(txs, a.clients, in_process)
        assert accepted == measured, accepted
        r_base = summary("in process, node.submit_wait", len(txs), wall, lats, "readings", accepted)
        base.close()
        shutil.rmtree(base_dir, ignore_errors=True)

        wall, lats, accepted = http_load(server.port, "tx", txs, a.clients)
        assert accepted == measured, accepted
        r_http = summary("HTTP, POST /v1/tx?wait=true   ", len(txs), wall, lats, "readings", accepted)
        print(f"  ratio HTTP / in process: {r_http / r_base:.2f}")
        receipt = receipts[-1].to_dict()
        body = json.dumps(receipt, ensure_ascii=False, separators=(",", ":")).encode()
        check = timed(lambda: api.check_tx(txs[-1]), 10)
        encode = timed(lambda: json.dumps(receipt, ensure_ascii=False, separators=(",", ":")).encode(), 10)
        print(f"  per request of {a.batch} readings, only over HTTP: the route's stateless check (node.check_tx, "
              f"in the thread pool; the node takes the decoded transaction) {check * 1000:.1f} ms; the receipt as JSON "
              f"({len(body):,} bytes, {len(receipt['events']):,} events) {encode * 1000:.1f} ms")
        assert api.state.supply.issued_g > 0

        # --- (b) consumer figures ---------------------------------------------------------------
        api.flush()
        rng = random.Random(7)
        sites = [rng.randrange(a.sites) for _ in range(a.queries)]
        pairs = [(owner_of(s, a.sites, owners), f"d{s}") for s in sites]
        lots = len(api.state.lots)
        print(f"(b) consumer figures of one site (its owner has {a.sites // owners} sites; the ledger holds "
              f"{lots:,} lots), {a.queries} requests:")
        live = Live(api)

        def figures(pair: tuple[str, str]) -> int:
            out = figures_once(live, pair)
            assert len(out["slots"]) == a.per_site
            return 1

        for clients in sorted({1, a.clients}):
            wall, lats, _ = threaded(pairs, clients, figures)
            q_base = summary(f"in process, queries.figures, {clients} thread{'s' if clients > 1 else ' '}",
                             len(pairs), wall, lats)
            paths = [f"/v1/figures/{o}?site={s}" for o, s in pairs]
            wall, lats, nbytes = http_load(server.port, "get", paths, clients)
            q_http = summary(f"HTTP, GET /v1/figures, {clients} client{'s' if clients > 1 else ' '}     ",
                             len(paths), wall, lats)
            print(f"  ratio HTTP / in process ({clients}): {q_http / q_base:.2f}; {nbytes // len(paths):,} bytes "
                  f"per answer")
        wall, lats, _ = http_load(server.port, "get", ["/v1/info"] * len(pairs), 1)
        summary("HTTP floor, GET /v1/info, 1 client         ", len(pairs), wall, lats)

        # --- where the time of one figures query goes --------------------------------------------
        pair = pairs[0]
        one = timed(lambda: figures_once(live, pair))
        read = timed(lambda: enter(live))
        with live.read() as r:
            report = timed(lambda: participant_report(r.state, r.store, pair[0]))
        out = figures_once(live, pair)
        encode = timed(lambda: json.dumps(jsonable_encoder(out)).encode())
        with live.read() as r:
            indexed = timed(lambda: claims_by_slot(r.state, pair[0], r.store))
            scan = timed(lambda: claims_by_slot(r.state, pair[0]))
            devices = timed(lambda: {d.device_id for d in r.state.devices.values() if d.owner == pair[0]})
        print(f"  one figures query in process: {one * 1000:.2f} ms = the consistent read (node lock, checkpoint "
              f"catch-up, a read-only SQLite snapshot) {read * 1000:.2f} ms + report.participant_report "
              f"{report * 1000:.2f} ms + the rest of queries.figures; FastAPI's encoding of the answer "
              f"(jsonable_encoder + json.dumps) {encode * 1000:.2f} ms")
        print(f"  inside it: claims_by_slot over the lots the owner ever held {indexed * 1000:.2f} ms "
              f"(the scan of all {lots:,} lots it replaced: {scan * 1000:.2f} ms); the owner's devices found "
              f"by scanning all {len(api.state.devices):,} devices (report.participant_report) "
              f"{devices * 1000:.2f} ms")
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            for pair in pairs[:50]:
                figures_once(live, pair)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
    finally:
        server.stop()
        api.close()
        shutil.rmtree(api_dir, ignore_errors=True)
    if a.big_owner:
        big_owner(a.sites, readings[:a.sites], a.batch)


def big_owner(sites: int, readings: list[list[object]], batch: int, n: int = 5) -> None:
    """(c) One consumer owning every site, one reading each: the figures of one of its sites."""
    node, d = make_fleet(sites, 1, 100)
    server = serve_in_thread(node, "127.0.0.1", 0, rate=0)
    try:
        for f in [node.submit(batch_tx(readings[i:i + batch])) for i in range(0, len(readings), batch)]:
            assert f.result(600).ok
        node.flush()
        live = Live(node)
        pair = ("c00000", f"d{sites // 2}")
        print(f"(c) one consumer owning all {sites:,} sites (one reading each), the figures of one of them, "
              f"{n} requests:")
        wall, lats, _ = threaded([pair] * n, 1, lambda p: len(figures_once(live, p)["sites"]))
        summary("in process, queries.figures, 1 thread ", n, wall, lats)
        wall, lats, nbytes = http_load(server.port, "get", [f"/v1/figures/{pair[0]}?site={pair[1]}"] * n, 1)
        summary("HTTP, GET /v1/figures, 1 client       ", n, wall, lats)
        print(f"  {nbytes // n:,} bytes per answer (with ?site=, only that site is computed and answered)")
    finally:
        server.stop()
        node.close()
        shutil.rmtree(d, ignore_errors=True)


def figures_once(live: Live, pair: tuple[str, str]) -> dict[str, Any]:
    with live.read() as r:
        return queries.figures(r.state, r.store, pair[0], pair[1], None, None)


def enter(live: Live) -> None:
    with live.read():
        pass


def timed(fn: Callable[[], object], n: int = 30) -> float:
    fn()
    t = now()
    for _ in range(n):
        fn()
    return (now() - t) / n


if __name__ == "__main__":
    main()
