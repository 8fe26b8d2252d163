"""kill -9: a receipt means the block is on disk.

A real subprocess (tests/node/durability_worker.py) runs a node under load and prints
``ACK <tx hash> <height>`` for every committed receipt. The test SIGKILLs it mid-load, opens the
data directory in-process and checks that every acknowledged transaction is stored at the height
its receipt named, that the reopened state matches the last block header, the invariants and
the auditor's full replay.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

from crev.audit.replay import verify_chain
from crev.ledger.invariants import check_invariants
from tests.node import nodekit as k

WORKER = Path(__file__).with_name("durability_worker.py")
ROOT = Path(__file__).resolve().parents[2]
ACK_RE = re.compile(r"^ACK ([0-9a-f]{64}) (\d+)$")
DEVICES = 32  # 2 intervals × 32 devices = 64 readings per batch: the verifier pool is used


@dataclass
class Run:
    acks: list[tuple[str, int]]
    ready_height: int
    returncode: int
    lines: list[str]


def run_and_kill(d: Path, *, acks: int = 30, checkpoint_s: float = 0.05, processes: bool = True,
                 timeout: float = 180) -> Run:
    """Start the worker on ``d``, wait for ``acks`` ACK lines, SIGKILL it and collect every ACK
    it printed before it died (including those still in the pipe)."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(d), str(DEVICES), str(checkpoint_s), "1" if processes else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    n_acks = 0
    deadline = time.monotonic() + timeout
    try:
        while n_acks < acks:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"worker gave only {n_acks} ACKs in {timeout} s: {seen[-5:]}") from None
            if line is None:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"worker exited early ({proc.wait()}): {seen[-5:]}\n{err[-3000:]}")
            seen.append(line)
            assert not line.startswith("ERROR"), line
            if ACK_RE.match(line):
                n_acks += 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-load: the node is sealing and checkpointing
        rc = proc.wait(timeout=60)
        with suppress(ProcessLookupError):  # the verifier's worker processes must not outlive the test
            os.killpg(proc.pid, signal.SIGKILL)
    while (line := lines.get(timeout=60)) is not None:
        seen.append(line)
    reader.join(timeout=10)
    if proc.stderr:
        proc.stderr.close()
    ready = next(line for line in seen if line.startswith("READY "))
    out = [(m[1], int(m[2])) for m in map(ACK_RE.match, seen) if m]
    return Run(out, int(ready.split()[1]), rc, seen)


def assert_recovered(d: Path, acked: list[tuple[str, int]]) -> tuple[bytes, int]:
    """Open ``d`` in-process (replaying what the checkpoint lacks) and check it thoroughly."""
    node = k.open_node(d, start=False)
    try:
        height = node.state.height
        assert height >= 1
        for h, at in acked:
            row = node.store.tx(bytes.fromhex(h))
            assert row is not None, f"acknowledged tx {h} (height {at}) is not in the store"
            assert row[0] == at <= height, (h, row[0], at, height)
            assert row[3], f"acknowledged tx {h} is stored as failed"
        head = node.store.block(height)
        assert head is not None and node.store.height() == height
        root = node.state.tree.root()
        assert root == head.header.state_root
        assert node.state.last_block_hash == head.header.hash
        check_invariants(node.state)
    finally:
        node.close()
    rep = verify_chain(d)
    assert rep.ok, rep
    assert rep.blocks == height and rep.state_root == root.hex()
    return root, height


def index_matches_chain(d: Path) -> None:
    """The off-chain index (rebuilt from checkpoints and replay) holds each accepted reading once."""
    accepted = [(r[2], r[3]) for r, det, _ in k.accepted_readings(d) if det[0] == "accepted"]
    with closing(k.sql(d)) as db:
        ix = db.execute("SELECT device_id, seq FROM ix_readings ORDER BY device_id, seq").fetchall()
        lots = db.execute("SELECT COUNT(*) FROM ix_lots").fetchone()[0]
        moves = db.execute("SELECT COUNT(*) FROM ix_moves").fetchone()[0]
        trades = db.execute("SELECT COUNT(*) FROM txs WHERE kind IN ('transfer', 'retire')").fetchone()[0]
    assert sorted(accepted) == [(a, b) for a, b in ix]
    assert lots == len(accepted)  # every reading of the load issues a lot
    assert moves == trades  # each transfer / retirement of the load moves one range


def test_kill9_acked_transactions_survive(tmp_path: Path) -> None:
    d = tmp_path / "ledger"
    run = run_and_kill(d, checkpoint_s=0.05, processes=True)
    assert run.returncode == -signal.SIGKILL
    assert len(run.acks) >= 30
    assert len({h for h, _ in run.acks}) == len(run.acks)  # no receipt twice
    root, height = assert_recovered(d, run.acks)

    # a clean restart (open, close, open) gives exactly the same state
    for _ in range(2):
        node = k.open_node(d, start=False)
        assert (node.state.tree.root(), node.state.height) == (root, height)
        node.close()
    index_matches_chain(d)


def test_kill9_with_checkpoint_behind_tip_replays_blocks(tmp_path: Path) -> None:
    d = tmp_path / "ledger"
    # no background checkpoint ever runs: only blocks are committed before the kill
    run = run_and_kill(d, checkpoint_s=1e9, processes=False)
    assert run.returncode == -signal.SIGKILL
    with closing(k.sql(d)) as db:
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
        tip = db.execute("SELECT MAX(height) FROM blocks").fetchone()[0]
        ix_before = db.execute("SELECT COUNT(*) FROM ix_readings").fetchone()[0]
    assert cp < tip and cp == 0 and ix_before == 0
    assert max(h for _, h in run.acks) <= tip

    # the reference: genesis + every stored block, replayed from scratch outside the node
    ref_state, ref_root = k.replay_root(d)
    root, height = assert_recovered(d, run.acks)
    assert (root, height) == (ref_root, ref_state.height)

    # the replayed state's content agrees with the readings in the stored blocks
    accepted = [det for _, det, _ in k.accepted_readings(d) if det[0] == "accepted"]
    node = k.open_node(d, start=False)  # now from the checkpoint written after the replay
    try:
        assert node.store.checkpoint_height() == tip
        assert (node.state.tree.root(), node.state.height) == (ref_root, tip)
        sup = node.state.supply
        assert sup.issued_g == sum(det[2] for det in accepted) == len(accepted) * k.PER_READING_G
        assert len(node.state.readings) == len(accepted)
        for dev in range(DEVICES):
            assert node.state.devices[k.device_id(dev)].last_seq == len(accepted) // DEVICES
    finally:
        node.close()
    index_matches_chain(d)


def test_kill9_twice_then_resume(tmp_path: Path) -> None:
    """Crash, restart the node on the same directory, keep loading it, crash again."""
    d = tmp_path / "ledger"
    first = run_and_kill(d, acks=20, checkpoint_s=0.2, processes=False)
    root1, height1 = assert_recovered(d, first.acks)
    second = run_and_kill(d, acks=20, checkpoint_s=0.2, processes=False)
    assert second.ready_height == height1  # it opened the chain the first run left
    assert len(second.acks) >= 20 and min(h for _, h in second.acks) > height1
    root2, height2 = assert_recovered(d, first.acks + second.acks)
    assert height2 > height1 and root2 != root1
    index_matches_chain(d)
