"""When the node seals and when its checkpoint thread writes, under load (issue 13, item 4).

Under overload the sealer must not idle with work ready, and a checkpoint being built or written
must not hold a block's commit or its receipts: the front door's back-pressure promises a latency that the
node's own pauses would break (docs/benchmarks.md, the front door under overload). Each test
pins an order of events, not a duration: the interval clock is a fake one the test moves, and a
stalled step is a step that blocks until the test lets it go.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import crev.node.node as node_module
import crev.node.store as store_module
from crev.node.node import Node

from . import nodekit as k

DEVICES = 3
WAIT_S = 10.0  # how long a test waits for something that must happen (far longer than it takes)


class FakeTimer:
    """The node's interval clock, moved only by the test [s]."""

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def wait_until(cond: Any, what: str) -> None:
    end = time.monotonic() + WAIT_S
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def stall_index_rows(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Stop the checkpoint thread where it builds a checkpoint's index rows (Python work, before
    its write transaction), until the test sets ``release``; ``entered`` is set once it is there."""
    real = store_module.event_index_rows
    entered, release = threading.Event(), threading.Event()

    def stalled(*args: Any) -> Any:
        if threading.current_thread().name == "crev-checkpoint" and not release.is_set():
            entered.set()
            release.wait(WAIT_S * 3)
        return real(*args)

    monkeypatch.setattr(store_module, "event_index_rows", stalled)
    return entered, release


def heights_written(node: Node, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The heights of the checkpoints ``node``'s writer writes from now on, in order."""
    written: list[int] = []
    real_write = node._write_checkpoint

    def write(store: Any, item: Any) -> None:
        real_write(store, item)
        written.append(item[0])

    monkeypatch.setattr(node, "_write_checkpoint", write)
    return written


@pytest.fixture()
def ledger(tmp_path: Path) -> Path:
    """A data directory with the owner and DGCs registered (by a node with the usual clock)."""
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    try:
        k.register_fleet(node, DEVICES)
    finally:
        node.close()
    return d


@pytest.fixture()
def running(ledger: Path) -> Iterator[Node]:
    """A node writing a checkpoint after every block (on its checkpoint thread)."""
    node = k.open_node(ledger, checkpoint_s=0.0)
    try:
        yield node
    finally:
        node.close()


def test_with_work_waiting_the_next_block_is_sealed_once_an_interval_has_passed_since_the_last_seal_began(
        ledger: Path) -> None:
    """Block interval 1 s on a fake clock. Block 1 is sealed at t = 1001 and its seal "takes" the
    whole interval (its listener moves the clock to 1002), while the next batch becomes ready. An
    interval has passed since block 1's seal began, so block 2 is sealed at once, with the clock
    still at 1002. (Measured from the end of block 1's seal, the sealer waited until 1003 with the
    batch ready: under overload it idled one interval per block.)"""
    timer = FakeTimer(1_000.0)
    node = k.open_node(ledger, block_interval_ms=1_000, checkpoint_s=3_600.0, timer=timer)
    heights: list[tuple[int, float]] = []
    second: list[Any] = []

    def listen(block: Any, _outcome: Any) -> None:
        heights.append((block.header.height, timer.t))
        if len(heights) == 1:  # block 1's seal is still going on: the next batch arrives meanwhile
            second.append(node.submit(k.batch(DEVICES, 1)))
            wait_until(lambda: node._ready.qsize() == 1, "the second batch to be ready to seal")
            timer.t += 1.0  # and the seal took one whole interval

    node.listeners.append(listen)
    try:
        start = node.state.height
        first = node.submit(k.batch(DEVICES, 0))
        wait_until(lambda: node._ready.qsize() == 1, "the first batch to be ready to seal")
        timer.t += 1.0  # one interval after the seal loop started: seal
        r1 = first.result(WAIT_S)
        assert r1.committed and r1.height == start + 1
        wait_until(lambda: bool(second), "the listener to submit the second batch")
        r2 = second[0].result(WAIT_S)  # before: never, the fake clock stays at 1002
        assert r2.committed and r2.height == start + 2
        assert heights == [(start + 1, 1_001.0), (start + 2, 1_002.0)]
    finally:
        node.close()


def test_a_checkpoint_being_built_holds_no_database_lock_a_block_commits_meanwhile(
        running: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint thread is stopped in the middle of building a checkpoint's index rows
    (Python work); a block sealed meanwhile commits and answers. (Before, those rows were built
    inside the checkpoint's write transaction, so the block's commit waited for the whole of it:
    here, for ever.)"""
    node = running
    entered, release = stall_index_rows(monkeypatch)
    try:
        r1 = node.submit_wait(k.batch(DEVICES, 0), WAIT_S)
        assert r1.committed
        assert entered.wait(WAIT_S), "the checkpoint thread never built index rows"
        r2 = node.submit(k.batch(DEVICES, 1)).result(WAIT_S)  # before: TimeoutError
        assert r2.committed and r2.height == r1.height + 1
    finally:
        release.set()
    node.flush()
    assert node.store.checkpoint_height() == r2.height
    with k.sql(node.data_dir) as db:
        assert db.execute("SELECT count(*) FROM ix_readings WHERE height IN (?, ?)",
                          (r1.height, r2.height)).fetchone()[0] == 2 * DEVICES


def test_no_block_waits_for_eviction_between_its_commit_and_its_receipts(
        running: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a written checkpoint lets go is dropped from memory after a block's receipts and
    listeners, never between its commit and them: its submitters do not wait for it. (Before,
    the block committed after a checkpoint was written evicted first and answered after.)"""
    node = running
    events: list[tuple[str, int]] = []
    real_evict = node_module.evict  # type: ignore[attr-defined]
    real_commit = node.store.commit_block

    def evict(*args: Any) -> Any:
        events.append(("evict", args[1]))
        return real_evict(*args)

    def commit_block(block: Any, outcome: Any) -> None:
        real_commit(block, outcome)
        events.append(("commit", block.header.height))

    monkeypatch.setattr(node_module, "evict", evict)
    monkeypatch.setattr(node.store, "commit_block", commit_block)
    node.listeners.append(lambda block, _outcome: events.append(("answered", block.header.height)))
    heights = []
    for j in range(4):
        r = node.submit_wait(k.batch(DEVICES, j), WAIT_S)
        heights.append(r.height)
        wait_until(lambda h=r.height: node._written >= h, "the checkpoint of the block to be written")
    wait_until(lambda: any(e == ("evict", heights[-1]) for e in events), "the last checkpoint's eviction")
    assert [e for e in events if e[0] == "evict"], "nothing was evicted: the test did not test"
    for h in heights:
        done = events.index(("answered", h))
        assert events[events.index(("commit", h)):done] == [("commit", h)], events
    assert [e[1] for e in events if e[0] == "evict"] == heights  # each written checkpoint evicted once


def test_a_block_commits_while_a_checkpoint_holds_its_write_transaction_open(
        running: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint thread is stopped inside its write transaction, the state file's write lock
    taken; a block sealed meanwhile commits and answers, since blocks go to the chain's own file.
    (When blocks and state shared one file, the block's commit waited for the whole transaction:
    here, for ever.)"""
    node = running
    real = store_module.write_rows
    entered, release = threading.Event(), threading.Event()

    def stalled(db: Any, head: str, kinds: str, rows: Any, tail: str = "") -> None:
        real(db, head, kinds, rows, tail)
        if (threading.current_thread().name == "crev-checkpoint" and "ix_readings" in head
                and not release.is_set()):
            entered.set()
            release.wait(WAIT_S * 3)

    monkeypatch.setattr(store_module, "write_rows", stalled)
    try:
        r1 = node.submit_wait(k.batch(DEVICES, 0), WAIT_S)
        assert r1.committed
        assert entered.wait(WAIT_S), "the checkpoint thread never wrote index rows"
        assert node.store.checkpoint_height() < r1.height  # its transaction is open, not committed
        r2 = node.submit(k.batch(DEVICES, 1)).result(WAIT_S)  # in one file: TimeoutError
        assert r2.committed and r2.height == r1.height + 1
    finally:
        release.set()
    node.flush()
    assert node.store.checkpoint_height() == r2.height


def test_blocks_sealed_while_a_checkpoint_is_written_gather_into_the_next_one(
        running: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint thread is stalled writing block 1's checkpoint; blocks 2–4 are sealed and
    answered meanwhile, and none of them queues a checkpoint of its own. Once the writer is free,
    one checkpoint holds all three, queued by the idle sealer without a fifth block. (Before, each
    block queued its own behind the stalled one, and at full ingest the writer, busy all the time,
    rewrote most of the state file's pages for each: docs/benchmarks.md.)"""
    node = running
    monkeypatch.setattr(node_module, "CHECKPOINT_DUTY", 1.0)  # the pace is the next test's
    entered, release = stall_index_rows(monkeypatch)
    written = heights_written(node, monkeypatch)
    try:
        r1 = node.submit_wait(k.batch(DEVICES, 0), WAIT_S)
        assert entered.wait(WAIT_S), "the checkpoint thread never built index rows"
        later = [node.submit_wait(k.batch(DEVICES, j), WAIT_S) for j in (1, 2, 3)]
        assert [r.height for r in later] == [r1.height + 1, r1.height + 2, r1.height + 3]
        assert node._checkpoints.qsize() == 0 and node._queued == r1.height  # gathered, not queued
    finally:
        release.set()
    wait_until(lambda: node._written == r1.height + 3, "the gathered checkpoint to be written")
    assert written == [r1.height, r1.height + 3]
    assert node.store.checkpoint_height() == r1.height + 3
    with k.sql(node.data_dir) as db:
        assert db.execute("SELECT count(*) FROM ix_readings WHERE height > ?",
                          (r1.height,)).fetchone()[0] == 3 * DEVICES


def test_the_sealer_waits_for_a_writer_a_whole_checkpoint_behind_then_queues_the_gathered_one_at_once(
        ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the node holds unwritten is bounded (``checkpoint_max_changes``, here 1). The writer is
    stalled on block 1's checkpoint; block 2 is sealed and its changes gather; block 3's batch is
    checked and ready, but the sealer waits for the writer instead of sealing it (before, it sealed
    on, and under hours of full load the node held ever more). Once the writer is free, block 3 is
    sealed and, the changes gathered being past the bound, its checkpoint (blocks 2–3) is queued at
    once, though the writer's pace alone would hold it back for an hour."""
    monkeypatch.setattr(node_module, "CHECKPOINT_DUTY", 0.001)  # pace: due only after checkpoint_max_s
    node = k.open_node(ledger, checkpoint_s=0.0, checkpoint_max_s=3_600.0, checkpoint_max_changes=1)
    entered, release = stall_index_rows(monkeypatch)
    written = heights_written(node, monkeypatch)
    try:
        r1 = node.submit_wait(k.batch(DEVICES, 0), WAIT_S)
        assert entered.wait(WAIT_S), "the checkpoint thread never built index rows"
        r2 = node.submit_wait(k.batch(DEVICES, 1), WAIT_S)
        assert r2.height == r1.height + 1 and len(node._pending_changes) > 1
        third = node.submit(k.batch(DEVICES, 2))
        wait_until(lambda: node._ready.qsize() == 1, "block 3's batch to be checked")
        waited = node.seal_times.writer_wait
        wait_until(lambda: node.seal_times.writer_wait > waited, "the sealer to wait with block 3's batch ready")
        assert not third.done() and node.state.height == r2.height
        assert written == [] and node._queued == r1.height
    finally:
        release.set()
    r3 = third.result(WAIT_S)
    assert r3.committed and r3.height == r2.height + 1
    wait_until(lambda: node._written == r3.height, "the gathered checkpoint to be written")
    assert written == [r1.height, r3.height]
    node.close()
    with k.sql(node.data_dir) as db:
        assert db.execute("SELECT count(*) FROM ix_readings WHERE height > ?",
                          (r1.height,)).fetchone()[0] == 2 * DEVICES


def test_the_writer_is_paced_to_a_quarter_of_the_time_and_never_past_the_longest_interval(
        ledger: Path) -> None:
    """With the writer idle, a checkpoint is due once ``checkpoint_s`` has passed and the writer
    has been idle three times as long as its last write took (busy at most CHECKPOINT_DUTY = 1/4
    of the time), or at the latest after ``checkpoint_max_s``, however long the last write took."""
    timer = FakeTimer(1_000.0)
    node = k.open_node(ledger, checkpoint_s=2.0, checkpoint_max_s=10.0, timer=timer)

    def due_at(*times: float) -> list[bool]:
        due = []
        for t in times:
            timer.t = t
            due.append(node._checkpoint_due())
        return due

    try:
        assert node_module.CHECKPOINT_DUTY == 0.25
        node._last_checkpoint = 1_000.0
        node._last_write_s = 0.1  # a quick write: checkpoint_s decides
        assert due_at(1_001.9, 1_002.0) == [False, True]
        node._last_write_s = 1.5  # 1.5 s busy, then idle 4.5 s: due 6 s after the last one began
        assert due_at(1_005.9, 1_006.0) == [False, True]
        node._last_write_s = 30.0  # a write slower than the longest interval: due at 10 s
        assert due_at(1_009.9, 1_010.0) == [False, True]
        node._queued = node._written + 1  # one queued and not written yet: never due
        assert node._checkpoint_due() is False
    finally:
        node._queued = node._written
        node.close()


def test_an_idle_node_drops_what_its_last_checkpoint_holds_without_another_block(running: Node) -> None:
    """One block, then nothing: its checkpoint is written after the block's seal, and the seal
    loop, finding nothing more to seal, drops from memory what that checkpoint holds (the block's
    lots): a node whose ingest stopped does not hold them until its next block."""
    node = running
    r = node.submit_wait(k.batch(DEVICES, 0), WAIT_S)
    assert r.committed
    wait_until(lambda: node._evicted == r.height, "the idle sealer to evict the block's checkpoint")
    assert node._written == r.height
    lots = node.state.lots
    assert not any(key.startswith("dgc-") for key in dict.keys(lots)), "the block's lots are still held"
    assert node.state.lots["dgc-0:20260601T0900"].quantity_g == k.PER_READING_G  # read back from the store


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_the_checkpoint_writer_runs_at_a_lower_priority_than_the_sealer(running: Node) -> None:
    """The writer's SQLite work takes the cores only when the sealer and the verify threads leave
    them some (node.WRITER_NICE); the sealer and the process keep theirs."""
    threads = {t.name: t for t in threading.enumerate()}
    writer, sealer = threads["crev-checkpoint"], threads["crev-seal"]
    assert writer.native_id is not None and sealer.native_id is not None
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    wait_until(lambda: os.getpriority(os.PRIO_PROCESS, writer.native_id) == base + node_module.WRITER_NICE
               or os.getpriority(os.PRIO_PROCESS, writer.native_id) == 19, "the writer to lower its priority")
    assert os.getpriority(os.PRIO_PROCESS, sealer.native_id) == base
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == base
