"""A node under load, to be killed with SIGKILL by tests/node/test_durability.py.

    python durability_worker.py DATA_DIR DEVICES CHECKPOINT_S PROCESSES

Initialises DATA_DIR (or opens the ledger already there), starts the node and submits reading
batches from one thread while a second thread transfers part of each new lot to the buyer and
retires part of that (signed transactions with nonces). For every receipt that comes back
committed it prints ``ACK <tx_hash_hex> <height>`` and flushes, then it runs until killed (or
until it has submitted ``MAX_BATCHES`` batches, then prints ``DONE`` and waits to be killed).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from crev.core.units import fiscal_year_bounds
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from crev.node.node import GENESIS_FILE, Receipt
from tests.node import nodekit as k

MAX_BATCHES = 5000
INTERVALS_PER_BATCH = 2
WINDOW = 4  # reading batches in flight at once

_out = threading.Lock()


def say(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def ack(r: Receipt) -> None:
    if r.committed:
        say(f"ACK {r.tx_hash} {r.height}")


def guarded(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # the parent sees this line and fails the test
            try:
                say(f"ERROR {type(exc).__name__}: {exc}")
            finally:
                os._exit(3)
    return run


def main() -> None:
    d = Path(sys.argv[1])
    devices = int(sys.argv[2])
    checkpoint_s = float(sys.argv[3])
    processes = sys.argv[4] == "1"
    fresh = not (d / GENESIS_FILE).exists()
    if fresh:
        k.init_dir(d)
    node = k.open_node(d, block_interval_ms=20, checkpoint_s=checkpoint_s, verify_threads=2,
                       verify_processes=processes)
    signers = k.Signers()
    if fresh:
        k.register_fleet(node, devices, signers)
    else:
        signers.nonces = {a.account_id: a.nonce for a in node.state.accounts.values()}
    first_k = node.state.devices[k.device_id(0)].last_seq  # resume after what is on the chain
    say(f"READY {node.state.height} {first_k}")
    lots: queue.Queue[str] = queue.Queue()

    def readings() -> None:
        inflight: list[Future[Receipt]] = []
        kk = first_k
        for _ in range(MAX_BATCHES):
            rs = [k.reading(dev, kk + j) for j in range(INTERVALS_PER_BATCH) for dev in range(devices)]
            kk += INTERVALS_PER_BATCH
            inflight.append(node.submit(k.readings_tx(rs)))
            while len(inflight) >= WINDOW or (inflight and inflight[0].done()):
                r = inflight.pop(0).result(120)
                assert r.ok, r.error
                ack(r)
                lot = next((det[1] for det in r.detail if det[0] == "accepted" and det[1]), None)
                if lot is not None and lots.qsize() < 8:
                    lots.put(lot)
        say("DONE")

    def trades() -> None:
        p0, p1 = fiscal_year_bounds(2026)
        while True:
            lot = lots.get()
            r = node.submit_wait(signers.tx(k.OWNER, Transfer(k.BUYER, ((lot, 20),), "load")), 120)
            assert r.ok, r.error
            ack(r)
            r = node.submit_wait(signers.tx(k.BUYER, Retire(((lot, 5),), "Buyer Co", "re100", p0, p1, "JP",
                                                            "load")), 120)
            assert r.ok, r.error
            ack(r)

    threading.Thread(target=guarded(trades), daemon=True).start()
    threading.Thread(target=guarded(readings), daemon=True).start()
    while True:  # until SIGKILL
        time.sleep(1)


if __name__ == "__main__":
    main()
