"""The embedded node: one process that sequences, applies, stores and serves the ledger.

Shape of the pipeline (each arrow a queue)::

    submit() ─▶ [check stage: decode, parallel Ed25519 pre-verification] ─▶ [sealer: BlockBuilder,
    sign header, SQLite commit] ─▶ receipts

The check stage verifies reading and transaction signatures on worker processes
(``ParallelVerifier``) and records the good ones in the block's ``SigCache``; the sealer then
applies transactions through the same ``BlockBuilder`` the auditor uses. A block is sealed every
``block_interval_ms``, or as soon as ``max_block_readings`` readings or ``max_block_txs``
transactions are waiting. When the market's clock has something due (order expiry, a call
auction, a standing bid's new month) the sealer puts a ``market_tick`` at the head of the block.
A receipt is returned only after the block holding the transaction is durably committed.

The node's state lives on disk (docs/architecture.md, State on disk): at start-up it reads its last
checkpoint lazily (``node_state``: the small kinds whole, O(fleet)), replays the blocks after it and
checks the invariants that need no lot (the chain-wide check over every lot is ``crev verify``'s);
after each checkpoint the writer thread has written, the sealer drops the lots, reading records,
retirements, tallies and control records and the state-tree buckets that checkpoint holds
(``_evict_written``), so memory holds the fleet plus what changed since the last checkpoint.

``LedgerView`` opens a data directory read-only (for reports, trace, export, statements): it never
writes the database, so it is safe beside a running node. It reads the checkpoint lazily
(``node/lazystate.py``): the state tree's bucket hashes, stored with every checkpoint, are checked
against the checkpoint block's signed state root, and each record is read and checked only when
asked for, so opening costs what the query needs, not what the chain holds.

The node's surface follows ABCI 2.0 so that the same state machine can later sit behind CometBFT:
``info``, ``check_tx``, ``finalize_block`` (returns the app hash), ``commit`` and ``query``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import multiprocessing
import os
import queue
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, InvalidStateError, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from crev.core.encoding import decode
from crev.core.hashing import sha256
from crev.core.signing import Signer, kernel_in_use, use_kernel, verify, verify_many
from crev.core.statetree import BucketHashRows, SpansRead
from crev.core.units import SLOT_SECONDS
from crev.errors import CrevError, InvalidBlock, MalformedError, SignatureError
from crev.ledger.apply import BlockBuilder, BlockOutcome, SigCache, TxResult, apply_block, signing_key
from crev.ledger.block import Block, Header
from crev.ledger.events import Event, event_from_value
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.market_tick import MarketTick
from crev.ledger.messages.submit_controls import SubmitControls
from crev.ledger.messages.submit_meter_values import SubmitMeterValues
from crev.ledger.messages.submit_readings import SubmitReadings, keys_touched
from crev.ledger.snapshot import load_state
from crev.ledger.state import State
from crev.ledger.trading import tick_due
from crev.ledger.tx import Tx, build_tx, decode_tx
from crev.node.lazystate import (
    Checkpoint,
    check_fleet_invariants,
    checkpoint_of,
    evict,
    hold_small_kinds,
    lazy_state,
    lazy_state_at,
)
from crev.node.store import CHUNK_BUCKETS, Store, WriteLocks, prepare_checkpoint

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies (Linux)

GENESIS_FILE = "genesis.json"
DB_FILE = "ledger.sqlite"
SEQUENCER_KEY_FILE = "sequencer.key"

Triple = tuple[bytes, bytes, bytes]
# A batch the check stage passed has its buckets read early (``Node._read_early``) only while fewer
# readings than this wait for the sealer: further ahead, the blocks before it load many of the same
# buckets (a reading's four keys share buckets with others'), and they would be read twice.
READ_EARLY_BELOW = 5_000
# The checkpoint writer's pace (``Node._checkpoint_due``): a new checkpoint waits while one is being
# written (its changes gather into the next), and then until the writer has been idle long enough
# that it is busy at most CHECKPOINT_DUTY of the time, but never longer than ``checkpoint_max_s``.
CHECKPOINT_DUTY = 0.25
# The most changed state entries gathered for the next checkpoint while one is being written: past
# it the sealer waits for the writer (``Node._seal_loop``), so what the node holds unwritten (the
# records changed, their encoded values, the blocks to index) is bounded by this, not by how far
# the writer has fallen behind. A checkpoint's SQLite cost grows with the state file (its rows land
# in random pages by key hash), so without the bound, a node under full load for hours held ever
# more: 10,000 devices, depth 20, at ~6,000 readings/s offered, checkpoints of 140,000 → 500,000
# changes taking 7 → 29 s each between 0.3M and 1.5M readings, and RSS after a flush 955 MB at 1M,
# 1,970 MB at 3M (docs/benchmarks.md, 2026-12-05). About 3 changes a reading: ~50,000 readings.
# Once the state file outgrows a checkpoint, a smaller bound costs the writer little more (a row
# is about one page written either way) and the node's peak memory much less.
CHECKPOINT_MAX_CHANGES = 150_000
# The checkpoint writer's thread runs this much nicer than the node (Linux; ``lower_priority``): its SQLite
# work competes with the sealer and the verify threads for the 2 cores only when they leave some.
# Measured at 7,500 readings/s offered, 5 alternated pairs (docs/benchmarks.md, 2026-12-05): p99 better
# in 4, median 1.77 s → 0.87 s.
WRITER_NICE = 10
SWITCH_INTERVAL_S = 0.001  # the interpreter's switch interval while the node runs (``Node.start``)


@dataclass(frozen=True)
class Early:
    """What was read early for a batch the check stage passed (``Node._read_early``): the state
    keys its readings will change, the tallies they will read, and what the kernel read."""

    keys: list[str]
    reads: list[str]
    got: SpansRead


@dataclass
class SealTimes:
    """The sealer thread's CPU time [s] by phase since the node started (``Node.seal_times``):
    where a reading's cost goes on the thread that bounds the node's rate. ``read_ahead``: holding
    and loading the buckets and tallies a block touches; ``apply``: the transactions through the
    builder; ``finish``: the changed records encoded, the state tree and the results hashed, the
    header built; ``commit``: the header signed and the block written to the chain file;
    ``receipts``: the submitters' futures settled and the listeners told; ``evict``: what a
    written checkpoint lets go, dropped. ``writer_wait`` is wall time, not CPU: how long the sealer
    waited for the checkpoint writer to catch up (``Node._writer_behind``)."""

    read_ahead: float = 0.0
    apply: float = 0.0
    finish: float = 0.0
    commit: float = 0.0
    receipts: float = 0.0
    evict: float = 0.0
    writer_wait: float = 0.0
    blocks: int = 0  # blocks sealed
    readings: int = 0  # readings taken from the queue for them (those of refused transactions too)

    PHASES: ClassVar[tuple[str, ...]] = ("read_ahead", "apply", "finish", "commit", "receipts", "evict")

    def per_reading_us(self) -> dict[str, float]:
        """Each phase in µs per reading sealed (empty before the first reading)."""
        if not self.readings:
            return {}
        return {p: getattr(self, p) / self.readings * 1e6 for p in self.PHASES}


# a checked transaction waiting for the sealer: its future, its signature triples, what is being
# read early for it (on the reader thread)
Ready = tuple[Tx, "Future[Receipt]", list[Triple], "Future[Early | None] | None"]
# height, changed entries, blocks to index, who waits for it, the state tree's bucket hashes at height
# (the rows of CHUNK_BUCKETS holding the changed entries' buckets)
CheckpointItem = tuple[int, dict[str, "bytes | None"], list[tuple[int, list[TxResult]]], "threading.Event | None",
                       BucketHashRows]


class Receipt:
    """What a submitter gets back once its transaction is committed (or refused).

    Given ``of_events`` (the ledger's event objects) instead of ``events``, the events' JSON form is
    built when first asked for, by whoever asks (an HTTP handler), not by the sealer that settles
    the receipt: a gateway's batch of 1,000 readings has 2,000 events, and gateways ask for their
    receipts without them (``POST /v1/tx?events=false``)."""

    __slots__ = ("_dicts", "_events", "committed", "detail", "error", "height", "index", "ok", "tx_hash")
    FIELDS = ("tx_hash", "committed", "height", "index", "ok", "error", "detail", "events")

    def __init__(self, tx_hash: str, committed: bool, height: int, index: int, ok: bool,
                 error: dict[str, str] | None, detail: Any, events: list[dict[str, Any]] | None = None,
                 of_events: Sequence[Event] = ()) -> None:
        self.tx_hash = tx_hash
        self.committed = committed
        self.height = height
        self.index = index
        self.ok = ok
        self.error = error
        self.detail = detail
        self._events = of_events
        self._dicts: list[dict[str, Any]] | None = events if events is not None else None if of_events else []

    @property
    def events(self) -> list[dict[str, Any]]:
        if self._dicts is None:  # built once (two threads asking at once build equal lists)
            self._dicts = [e.to_dict() for e in self._events]
        return self._dicts

    def to_dict(self, events: bool = True) -> dict[str, Any]:
        """The receipt as JSON-ready data; without ``events``, their JSON form is never built."""
        return {f: getattr(self, f) for f in self.FIELDS if events or f != "events"}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Receipt) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Receipt({', '.join(f'{f}={getattr(self, f)!r}' for f in self.FIELDS)})"


def readings_in(tx: Tx) -> int:
    """How much a transaction weighs in a block: its device-signed items (readings, smart-meter
    values, control records), or 1 for any other kind."""
    msg = tx.message
    if isinstance(msg, SubmitReadings):
        return max(1, len(msg.readings))
    if isinstance(msg, SubmitMeterValues):
        return max(1, len(msg.values))
    if isinstance(msg, SubmitControls):
        return max(1, len(msg.controls))
    return 1


def settle(fut: Future[Receipt], receipt: Receipt | None = None, exc: BaseException | None = None) -> None:
    """Resolve a submitter's future unless it is already resolved or was cancelled (a caller that
    gave up waiting): a submitter leaving must never stop the node."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(receipt)  # type: ignore[arg-type]
    except InvalidStateError:
        pass


def _forward(target: Future[Receipt]) -> Callable[[Future[Receipt]], None]:
    def done(f: Future[Receipt]) -> None:
        if f.cancelled():
            settle(target, exc=RuntimeError("the first submission of these bytes was abandoned: resubmit"))
            return
        exc = f.exception()
        if exc is not None:
            settle(target, exc=exc)
        else:
            settle(target, f.result())

    return done


def refused(tx_hash: bytes, err: CrevError) -> Receipt:
    return Receipt(tx_hash.hex(), False, 0, -1, False, err.to_dict(), None, [])


def signature_triples(state: State, tx: Tx) -> list[Triple]:
    """The (public key, message, signature) triples a transaction will need, as far as the
    current state tells. A stale key only means the triple is verified again when applied."""
    out: list[Triple] = []
    if tx.signer:
        signing = signing_key(state, tx.signer)  # an account's key, or a delegate's
        if signing is not None:
            out.append((signing[0], tx.signed_bytes, tx.signature))
    msg = tx.message
    # device-signed items: (device, the end of the time they speak for, signed bytes, signature)
    items: list[tuple[str, int, bytes, bytes]] = []
    if isinstance(msg, SubmitReadings):
        items = [(r.device_id, r.interval_start + r.interval_s, r.signed_bytes, r.signature) for r in msg.readings]
    elif isinstance(msg, SubmitMeterValues):
        items = [(m.device_id, m.slot_start + SLOT_SECONDS, m.signed_bytes, m.signature) for m in msg.values]
    elif isinstance(msg, SubmitControls):
        items = [(c.device_id, c.slot_start + SLOT_SECONDS, c.signed_bytes, c.signature) for c in msg.controls]
    devices = state.devices
    for device_id, end, signed, sig in items:
        dev = devices.get(device_id)
        if dev is not None:
            key = dev.key_for(end)
            if key is not None:
                out.append((key.public_key, signed, sig))
    return out


# The environment's switch for the signature kernel (crev_native), read here at the edge: CREV_NATIVE=0
# verifies with PyNaCl, the reference, even where the kernel is installed (tests and benchmarks).
if os.environ.get("CREV_NATIVE", "1") == "0":
    use_kernel(False)


FORGED_SAMPLE = 64  # signatures of a big batch checked first


def _mostly_forged(triples: list[Triple]) -> str:
    """Why a batch is refused before its signatures are all checked ("" if it is not): the node's
    admission rule (not a ledger rule) for batches of over 4 × ``FORGED_SAMPLE`` signatures whose
    first ``FORGED_SAMPLE`` are more than half forged. A gateway with a few bad meters is never
    refused by it; a forger's 20,000-reading batch costs 64 verifications instead of 20,000."""
    if len(triples) <= 4 * FORGED_SAMPLE:
        return ""
    bad = verify_many(triples[:FORGED_SAMPLE]).count(False)
    if 2 * bad <= FORGED_SAMPLE:
        return ""
    return (f"{bad} of the first {FORGED_SAMPLE} device signatures do not verify: the batch of "
            f"{len(triples)} signed items is refused without checking the rest")


def _worker_setup(parent: int) -> None:
    """A verify worker dies with its node. Ctrl-C reaches the whole process group: the parent stops
    the node and then its workers, so a worker ignores SIGINT rather than die mid-task with a
    traceback of its own. A node killed outright (kill -9) cannot stop them, so the kernel does
    (Linux ``PR_SET_PDEATHSIG``: SIGKILL when the parent dies); a parent already gone before that
    was set is noticed by the worker's changed parent id."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the parent's SIGTERM handler (crev serve/demo turn it into a clean stop) was inherited with the
    # fork; a worker told to stop just stops, without a traceback
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


class ParallelVerifier:
    """Verifies signature triples on ``threads`` workers (none if ``threads`` is 1) and fills a
    SigCache.

    ``processes`` None (the default) chooses by the verifier in use: threads when the compiled
    kernel (``crev_native``) verifies, since it releases the GIL once per list of signatures and
    a thread costs no copying of triples and results between processes; worker processes with
    PyNaCl, whose per-signature GIL release let verifying threads contend with the sealer at every
    call, which measurably slowed the whole node (docs/benchmarks.md). True or False forces one.
    """

    def __init__(self, threads: int = 2, processes: bool | None = None) -> None:
        self.threads = threads
        self.pool: Executor | None = None
        if processes is None:
            processes = not kernel_in_use()
        self.processes = processes
        if threads > 1:
            if processes:
                # fork, and start the workers now, before the node starts its own threads
                self.pool = ProcessPoolExecutor(threads, mp_context=multiprocessing.get_context("fork"),
                                                initializer=_worker_setup, initargs=(os.getpid(),))
                for f in [self.pool.submit(verify_many, []) for _ in range(threads)]:
                    f.result()
            else:
                self.pool = ThreadPoolExecutor(threads, thread_name_prefix="crev-verify")

    def submit(self, triples: list[Triple]) -> list[Future[list[bool]]]:
        """Start verifying ``triples`` on the workers; ``collect`` waits for the answers."""
        if self.pool is None or len(triples) < 64:
            f: Future[list[bool]] = Future()
            f.set_result(verify_many(triples))
            return [f]
        step = -(-len(triples) // self.threads)
        return [self.pool.submit(verify_many, triples[i:i + step]) for i in range(0, len(triples), step)]

    @staticmethod
    def collect(cache: SigCache, triples: list[Triple], futures: list[Future[list[bool]]]) -> int:
        results = [ok for f in futures for ok in f.result()]
        good = 0
        for t, ok in zip(triples, results, strict=True):
            if ok:
                cache.add(*t)
                good += 1
            else:
                cache.add_bad(*t)
        return good

    def fill(self, cache: SigCache, triples: list[Triple]) -> int:
        if not triples:
            return 0
        if self.pool is None or len(triples) < 64:
            results = verify_many(triples)
        else:
            n = self.threads
            step = -(-len(triples) // n)
            chunks = [triples[i:i + step] for i in range(0, len(triples), step)]
            results = [ok for part in self.pool.map(verify_many, chunks) for ok in part]
        good = 0
        for t, ok in zip(triples, results, strict=True):
            if ok:
                cache.add(*t)
                good += 1
            else:
                cache.add_bad(*t)
        return good

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def lower_priority(by: int) -> None:
    """Raise the calling thread's nice value by ``by`` (at most to 19), lowering its scheduling
    priority (Linux, where a thread has its own: ``setpriority`` of its thread id). Elsewhere, or
    where refused, nothing changes."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))


def trim_heap() -> None:
    """Hand the C heap's free memory back to the system (glibc ``malloc_trim``; nothing elsewhere).
    Loading frees big temporaries (whole tree levels, packed bucket hashes) and each eviction the
    records and buckets of a checkpoint, after which glibc keeps the freed heap mapped; called after
    start-up and after each eviction so the node's RSS is what it holds (measured: 10,000 devices,
    depth 20, 400,000 readings: 239 MB instead of 302, at the same readings/s)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            _libc().malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, opened once (a ``CDLL`` per call would keep a little memory each time)."""
    return ctypes.CDLL(None)


def _packed(st: State) -> bytes:
    return st.tree.packed()


def _bucket_rows(st: State) -> tuple[BucketHashRows, set[int]]:
    """The rows of the state tree's packed bucket hashes (``CHUNK_BUCKETS`` buckets a row) holding a
    bucket rehashed since the last call, as of now: what a checkpoint of the changes since then
    rewrites (the first call gives every row); and those buckets."""
    tree = st.tree
    touched = tree.take_touched()
    rows = {b // CHUNK_BUCKETS for b in touched}
    return (BucketHashRows(tree.depth, CHUNK_BUCKETS, {c: tree.packed(c * CHUNK_BUCKETS, CHUNK_BUCKETS) for c in rows}),
            touched)


def _decoded(st: State, block: Block) -> list[Tx | bytes]:
    """A block's transactions decoded once, for both the signature check and apply_block (the
    bytes where decoding fails: apply_block reports them)."""
    out: list[Tx | bytes] = []
    for raw in block.txs:
        try:
            out.append(decode_tx(raw, st.chain_id, st.params))
        except Exception:  # hostile bytes must not stop a replay before apply_block names them
            out.append(raw)
    return out


def _replay(store: Store, st: State, start: int, verifier: ParallelVerifier
            ) -> tuple[dict[str, bytes | None], list[tuple[int, list[TxResult]]]]:
    """Every stored block from ``start`` through apply_block on ``st``: the changed entries and
    each block's results."""
    changes: dict[str, bytes | None] = {}
    outcomes: list[tuple[int, list[TxResult]]] = []
    member = store.get_meta("engine") is not None  # a consortium member: CometBFT's commit is a block's authority
    for block in store.blocks(start):
        decoded = _decoded(st, block)
        cache = SigCache()
        verifier.fill(cache, [t for tx in decoded if isinstance(tx, Tx) for t in signature_triples(st, tx)])
        out = apply_block(st, block, cache, check_signature=not member, decoded=decoded)
        changes.update(out.changed)
        outcomes.append((block.header.height, out.results))
    return changes, outcomes


def _checkpoint_header(store: Store, cp: int) -> Header:
    head = store.header(cp)
    if head is None:
        raise InvalidBlock("checkpoint_height", f"the checkpoint in {store.path.name} is at height {cp} but "
                                                f"{store.chain_path.name} holds no block {cp} (its last is "
                                                f"{store.height()}): run `crev verify`")
    return head


def _signed_checkpoint_header(store: Store, genesis: Genesis, cp: int) -> Header:
    """The checkpoint block's header, its sequencer signature checked: the root a lazily read
    checkpoint's bucket hashes must recompute is the one the sequencer signed (blocks of the
    consortium mode carry no sequencer signature: CometBFT's commit is their authority)."""
    head = _checkpoint_header(store, cp)
    signature = store.signature(cp)
    if signature and not verify(genesis.sequencer_public_key, head.encode(), signature):
        raise InvalidBlock("block.signature", f"the checkpoint block {cp} is not signed by the genesis sequencer "
                                              f"key: run `crev verify`")
    return head


def checkpoint_state(store: Store, genesis: Genesis) -> State:
    """The state at ``store``'s last checkpoint, loaded in full (genesis when there is none), its
    state root checked against the checkpoint block's header. Raises InvalidBlock naming what
    differs. The embedded node, a consortium member's app and its API's view all start here."""
    cp = store.checkpoint_height()
    if cp == 0:
        return state_from_genesis(genesis)
    head = _checkpoint_header(store, cp)
    st = load_state(genesis, store.state_items(), cp, head.hash, head.time)
    root = st.tree.root()
    if root != head.state_root:
        raise InvalidBlock("state", f"checkpoint state root {root.hex()} differs from block {cp}'s "
                                    f"{head.state_root.hex()}: run `crev verify`")
    return st


def _check_loaded(check: Callable[[State], None], st: State) -> None:
    """Run ``check`` on a state just loaded; its InvalidBlock says at which height and that the node
    refuses to run on it."""
    try:
        check(st)
    except InvalidBlock as err:
        raise InvalidBlock(err.field, f"{err.reason} (state loaded at height {st.height}; refusing to "
                                      f"run on it: run `crev verify`)") from err


def load_ledger(store: Store, genesis: Genesis, verifier: ParallelVerifier, persist: bool,
                lock: AbstractContextManager[Any] | None = None) -> State:
    """The state at the head: the last checkpoint, then every later block replayed through
    apply_block.

    ``persist`` (a node): the checkpoint is read lazily (``node_state``) when it has bucket hashes
    that recompute its signed state root, so start-up costs O(fleet + blocks since the checkpoint),
    not O(history); the replayed blocks are written as a new checkpoint. A checkpoint stored without
    them (an earlier version) is loaded in full once, every invariant checked, the bucket hashes
    written, and then read lazily like the others.

    Not ``persist`` (a read-only view asked to load in full): the checkpoint is loaded in full,
    every invariant checked, and the replayed blocks indexed in memory only."""
    if persist:
        st = node_state(store, genesis, verifier, lock)
        if st is not None:
            return st
    cp = store.checkpoint_height()
    st = checkpoint_state(store, genesis)
    if cp == 0 and persist and store.get_meta("checkpoint_height") is None:
        # the snapshot holds every entry, including those genesis itself created
        store.write_checkpoint(0, {k: st.value_of(k) for k in st.all_keys()}, [], _packed(st))
    changes, outcomes = _replay(store, st, cp + 1, verifier)
    _check_loaded(check_invariants, st)
    if not persist:
        if outcomes:
            store.index_in_memory(outcomes)
        return st
    if outcomes:
        store.write_checkpoint(st.height, changes, outcomes, _packed(st))
    elif store.bucket_hashes() != (cp, packed := _packed(st)):
        # a snapshot stored before bucket hashes were (or with others): add them, now that it is checked
        store.write_bucket_hashes(cp, packed)
    return node_state(store, genesis, verifier, lock) or st


def node_state(store: Store, genesis: Genesis, verifier: ParallelVerifier,
               lock: AbstractContextManager[Any] | None = None) -> State | None:
    """A node's state read lazily from its checkpoint (``lazy_state``; the checkpoint header's
    signature checked), the small kinds fetched whole (``hold_small_kinds``: O(fleet)), the blocks
    after the checkpoint replayed and written as a new checkpoint, then the fleet's invariants
    checked (``check_fleet_invariants``; each record is checked alone as it is read). The
    chain-wide check over every lot is ``crev verify``'s. Returns None when the checkpoint cannot
    be read lazily (none yet, or no bucket hashes of its height that recompute its state root)."""
    cp = store.checkpoint_height()
    stored = store.bucket_hashes()
    if stored is None or stored[0] != cp or store.get_meta("checkpoint_height") is None:
        return None
    if cp == 0:  # genesis: no block, the root is that of the state genesis.json gives
        first = state_from_genesis(genesis)
        st = lazy_state_at(genesis, store, 0, first.last_block_hash, first.last_time, first.tree.root(),
                           stored[1], lock)
    else:
        st = lazy_state(genesis, store, _signed_checkpoint_header(store, genesis, cp), stored[1], lock)
    if st is None:
        return None
    hold_small_kinds(st)
    changes, outcomes = _replay(store, st, cp + 1, verifier)
    _check_loaded(check_fleet_invariants, st)
    if outcomes:
        store.write_checkpoint(st.height, changes, outcomes, _bucket_rows(st)[0])
        evict(st, st.height, (), ())  # everything the replay changed is stored now
    return st


def load_view(store: Store, genesis: Genesis, verifier: ParallelVerifier) -> tuple[State, str | None]:
    """A read-only view's state: the checkpoint read lazily (``lazy_state``), the blocks after it
    replayed through apply_block on it and indexed on the store's connection only. Returns the
    state and None, or, when the checkpoint cannot be read lazily (written by an earlier version
    without bucket hashes, or bucket hashes that do not recompute the checkpoint header's state
    root), the state ``load_ledger`` loads in full and why."""
    cp = store.checkpoint_height()
    stored = store.bucket_hashes()
    if cp == 0:
        why = "no checkpoint yet"
    elif stored is None:
        why = "the checkpoint was stored without the state tree's bucket hashes (an earlier version)"
    elif stored[0] != cp:
        why = f"the stored bucket hashes are of height {stored[0]}, the checkpoint of {cp}"
    else:
        st = lazy_state(genesis, store, _signed_checkpoint_header(store, genesis, cp), stored[1])
        if st is not None:
            _, outcomes = _replay(store, st, cp + 1, verifier)
            if outcomes:
                store.index_in_memory(outcomes)
            return st, None
        why = f"the stored bucket hashes do not recompute block {cp}'s state root"
    return load_ledger(store, genesis, verifier, persist=False), why


class LedgerView:
    """A data directory opened read-only: the state (the checkpoint, read lazily, plus the later
    blocks replayed in memory) and a store whose index also covers those blocks. Never writes the
    database.

    ``full``: load the whole checkpoint and check every invariant, as a node does at start-up (what
    every view did before bucket hashes were stored; O(chain)). ``loaded_in_full`` says why the view
    was loaded in full (None: it reads lazily)."""

    def __init__(self, data_dir: Path | str, *, full: bool = False) -> None:
        self.data_dir = Path(data_dir)
        gpath = self.data_dir / GENESIS_FILE
        if not gpath.exists():
            raise FileNotFoundError(f"{gpath} not found: {self.data_dir} holds no ledger (run `crev init`)")
        self.genesis = Genesis.from_json(gpath.read_text("utf-8"))
        self.store = Store(self.data_dir / DB_FILE, readonly=True)
        verifier = ParallelVerifier(1, processes=False)
        self.loaded_in_full: str | None
        try:
            if full:
                self.state = load_ledger(self.store, self.genesis, verifier, persist=False)
                self.loaded_in_full = "asked for"
            else:
                self.state, self.loaded_in_full = load_view(self.store, self.genesis, verifier)
        except BaseException:
            self.store.close()
            raise
        finally:
            verifier.close()

    def close(self) -> None:
        self.store.close()


class Node:
    """An embedded single-sequencer node over a data directory."""

    def __init__(self, data_dir: Path | str, *, block_interval_ms: int = 200,
                 max_block_readings: int = 50_000, max_block_txs: int = 10_000, verify_threads: int = 2,
                 verify_processes: bool | None = None,
                 checkpoint_s: float = 2.0, checkpoint_max_s: float = 10.0,
                 checkpoint_max_changes: int = CHECKPOINT_MAX_CHANGES,
                 clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.data_dir = Path(data_dir)
        gpath = self.data_dir / GENESIS_FILE
        if not gpath.exists():
            raise FileNotFoundError(f"{gpath} not found: run `crev init` first")
        self.genesis = Genesis.from_json(gpath.read_text("utf-8"))
        # the sealer's connection (and callers' when stopped) commits blocks to the chain's file and the
        # checkpoint thread's writes the state file, each under its file's lock (Store.locks)
        self._locks = WriteLocks()
        self.store = Store(self.data_dir / DB_FILE, locks=self._locks)
        self._reads = Store(self.data_dir / DB_FILE)  # the check stage's own connection
        # reads ahead of the sealer what a checked batch will need (``_read_early``), while started
        self._early_reader: ThreadPoolExecutor | None = None
        key_path = self.data_dir / SEQUENCER_KEY_FILE
        self.sequencer = Signer(bytes.fromhex(key_path.read_text().strip())) if key_path.exists() else None
        self.block_interval = block_interval_ms / 1000
        self.max_block_readings = max_block_readings
        self.max_block_txs = max_block_txs
        self.clock = clock
        self.timer = timer
        self.verifier = ParallelVerifier(verify_threads, verify_processes)
        self.lock = threading.RLock()
        self.state = self._load()
        trim_heap()
        self.last_outcome: BlockOutcome | None = None
        self._finalized: BlockOutcome | None = None
        self.listeners: list[Callable[[Block, BlockOutcome], None]] = []
        self._incoming: queue.Queue[tuple[bytes | Tx, Future[Receipt]] | None] = queue.Queue()
        self._ready: queue.Queue[Ready | None] = queue.Queue()
        self._ready_readings = 0
        self._inflight: dict[bytes, Future[Receipt]] = {}
        self._inflight_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._cache = SigCache()
        self.fatal: BaseException | None = None
        self.checkpoint_interval = checkpoint_s
        self.checkpoint_max_interval = max(checkpoint_s, checkpoint_max_s)
        self.checkpoint_max_changes = checkpoint_max_changes
        self._queued = self.state.height  # the height of the last checkpoint queued
        self._last_write_s = 0.0  # how long the writer took over the last one (wall clock)
        self._pending_changes: dict[str, bytes | None] = {}
        self._pending_outcomes: list[tuple[int, list[TxResult]]] = []
        self._last_checkpoint = timer()
        self._checkpoints: queue.Queue[CheckpointItem | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        # eviction: the checkpoints queued and not yet written (height, changed keys); the height the
        # writer wrote last (set by the writer thread) and the one evicted last (by the sealer)
        # (and the state-tree buckets they rehashed)
        self._unwritten: list[tuple[int, dict[str, bytes | None], set[int]]] = []
        self._written = self._evicted = self.state.height
        self.seal_times = SealTimes()

    # --- set-up ----------------------------------------------------------------------------

    @staticmethod
    def init(data_dir: Path | str, genesis: Genesis, sequencer_seed: bytes) -> None:
        d = Path(data_dir)
        d.mkdir(parents=True, exist_ok=True)
        if (d / GENESIS_FILE).exists():
            raise FileExistsError(f"{d / GENESIS_FILE} exists: this directory already holds a ledger")
        (d / GENESIS_FILE).write_text(genesis.to_json(), "utf-8")
        fd = os.open(d / SEQUENCER_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(sequencer_seed.hex() + "\n")

    def _load(self) -> State:
        return load_ledger(self.store, self.genesis, self.verifier, persist=True, lock=self.lock)

    # --- ABCI-shaped surface ---------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        with self.lock:  # root() recomputes the tree: never alongside a sealing block
            st = self.state
            return {"chain_id": st.chain_id, "height": st.height, "app_hash": st.tree.root().hex(),
                    "last_block_hash": st.last_block_hash.hex(), "last_time": st.last_time}

    def check_tx(self, raw: bytes) -> Tx:
        """ABCI CheckTx, stateless only (``decode_tx``): the size limit, canonical CBOR, version,
        chain id, a known kind, the signer/nonce/signature fields' shape, and the message's own
        shape checks (``from_body``). It verifies no signature and reads no state: the check stage
        pre-verifies signatures afterwards, and signer, nonce, signatures and every rule are checked
        when the transaction is applied in a block. Raises MalformedError."""
        return decode_tx(raw, self.state.chain_id, self.state.params)

    def finalize_block(self, txs: list[bytes], block_time: int) -> BlockOutcome:
        """Apply a block decided elsewhere (CometBFT semantics: failed transactions stay in the
        block with their error). Returns the outcome whose header carries the app hash; nothing is
        stored until ``commit``."""
        with self.lock:
            self._manual_only("finalize_block")
            if self._finalized is not None:
                raise RuntimeError("finalize_block called twice without commit")
            b = BlockBuilder(self.state, self.state.height + 1, max(block_time, self.state.last_time), self._cache)
            for raw in txs:
                b.add(raw, keep_failed=True)
            self._finalized = b.finish()
            return self._finalized

    def commit(self) -> int:
        """Persist the block applied by ``finalize_block``; returns its height. (Here the header is
        signed with the sequencer key; a CometBFT adapter stores the engine's commit instead.)"""
        with self.lock:
            self._manual_only("commit")
            outcome, self._finalized = self._finalized, None
            if outcome is None:
                raise RuntimeError("commit without finalize_block")
            self._commit_outcome(outcome)
            self._evict_written()
            return outcome.header.height

    def _manual_only(self, what: str) -> None:
        """finalize_block / commit are the manual (ABCI) path: with the node's own sealer running,
        two writers would build on the same height."""
        if any(t.is_alive() for t in self._threads):
            raise RuntimeError(f"{what} is the manual (ABCI) path and the node's own sealer is running: "
                               f"call node.stop() first")

    def _commit_outcome(self, outcome: BlockOutcome) -> Block:
        """Sign, store durably, and schedule the checkpoint (caller holds the lock; then
        ``_evict_written`` once the block's receipts are out)."""
        if self.sequencer is None:
            raise PermissionError("this data directory has no sequencer key: it cannot seal blocks")
        block = Block(outcome.header, self.sequencer.sign(outcome.header.encode()), tuple(outcome.txs))
        self.store.commit_block(block, outcome)
        self.last_outcome = outcome
        self._pending_changes.update(outcome.changed)
        self._pending_outcomes.append((outcome.header.height, outcome.results))
        if self._checkpoint_due():
            self._queue_checkpoint()
        return block

    def _checkpoint_due(self) -> bool:
        """Whether to hand the changes gathered since the last checkpoint to the writer now: once
        ``checkpoint_interval`` has passed, no checkpoint is being written, and the writer has been
        idle long enough to be busy at most ``CHECKPOINT_DUTY`` of the time (or
        ``checkpoint_max_interval`` has passed). A checkpoint's SQLite work grows with the pages
        it dirties, not only with the rows it writes: state rows land in random pages by key hash,
        so while the file is small, each checkpoint rewrites most of it however few readings it
        holds; and one queued behind another only waited to do so. Measured (docs/benchmarks.md,
        2026-12-05): over 800,000 readings at ~10,500 /s, 53 → 42 µs of the writer's CPU a
        reading, and the writer no longer falls behind (on a small file; on a large one it does,
        and the bound below holds the sealer back). Once ``checkpoint_max_changes`` have gathered,
        due as soon as no checkpoint is being written, whatever the pace."""
        since = self.timer() - self._last_checkpoint
        if self._writer is None or not self._writer.is_alive():
            return since >= self.checkpoint_interval  # written at once by the sealer (not started, or stopped)
        if self._queued > self._written:
            return False  # the writer is busy: let the changes gather
        if len(self._pending_changes) >= self.checkpoint_max_changes:
            return True  # the sealer has waited for the writer (``_writer_behind``) or would
        if since < self.checkpoint_interval:
            return False
        return since >= min(self._last_write_s / CHECKPOINT_DUTY, self.checkpoint_max_interval)

    def query(self, path: str) -> Any:
        """``lot/<id>``, ``device/<id>``, ``account/<id>``, ``retirement/<id>``: record and proof."""
        kind, _, ident = path.partition("/")
        prefix = {"lot": "l", "device": "d", "account": "a", "retirement": "t"}.get(kind)
        if prefix is None:
            raise ValueError(f"unknown query path {path!r}")
        with self.lock:
            key = f"{prefix}/{ident}"
            value = self.state.value_of(key)
            return (None if value is None else decode(value)), self.state.prove(key)

    # --- submitting --------------------------------------------------------------------------

    def submit(self, raw: bytes | Tx) -> Future[Receipt]:
        """Queue a transaction (its bytes, or what ``check_tx`` made of them, which skips decoding
        it a second time); the future resolves when it is committed or refused."""
        fut: Future[Receipt] = Future()
        if self.fatal is not None or self._stop.is_set():
            fut.set_exception(RuntimeError(f"node stopped{': ' + str(self.fatal) if self.fatal else ''}"))
            return fut
        self._incoming.put((raw, fut))
        return fut

    def submit_wait(self, raw: bytes, timeout: float = 30.0) -> Receipt:
        return self.submit(raw).result(timeout)

    def committed_receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt of an already committed transaction (read on the check stage's connection:
        one SQLite connection is never shared by two threads)."""
        row = self._reads.tx(tx_hash)
        if row is None:
            return None
        height, idx, _kind, ok, _raw, result = row
        v = decode(result)
        err = None if not v[3] else {"code": v[3][0], "field": v[3][1], "reason": v[3][2]}
        return Receipt(tx_hash.hex(), True, height, idx, ok, err, v[5], [event_from_value(e).to_dict() for e in v[4]])

    # --- the two stages ----------------------------------------------------------------------

    def start(self) -> Node:
        if self.sequencer is None:
            raise PermissionError("this data directory has no sequencer key: it cannot seal blocks")
        # The state is millions of long-lived objects that refcounting frees fine. Keep the cyclic
        # collector from re-scanning them: move what is loaded out of its view and collect the
        # young generation less often (measured: +6 % readings/s; then 50,000 → 200,000 objects
        # between young collections, 45–50 → 8–9 collections and 5 → 3 µs of CPU a reading over
        # 200,000 readings, docs/benchmarks.md).
        gc.freeze()
        gc.set_threshold(200_000, 20, 100)
        self._early_reader = ThreadPoolExecutor(1, thread_name_prefix="crev-read")
        # A thread that wants the interpreter lock waits up to the switch interval for a busy holder to
        # drop it. The sealer holds it for long stretches (a block's buckets are read with it released
        # once, not at every row), and the check stage, which takes it back after each verification
        # batch, waited up to 5 ms each time: 1 ms keeps it fed (docs/benchmarks.md, "A block's
        # buckets read by the kernel"). Restored by ``stop``.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        for target, name in ((self._check_loop, "crev-check"), (self._seal_loop, "crev-seal")):
            t = threading.Thread(target=self._guard(target), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._writer = threading.Thread(target=self._guard(self._checkpoint_loop), name="crev-checkpoint",
                                        daemon=True)
        self._writer.start()
        return self

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # a node that cannot commit must stop, loudly
                self.fatal = exc
                self._stop.set()
                raise
        return run

    def stop(self) -> None:
        """Stop sealing, write a final checkpoint and stop the writer."""
        self._stop.set()
        self._incoming.put(None)
        self._ready.put(None)
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        self._fail_pending(RuntimeError("node stopped before the transaction was committed"))
        if self.fatal is None:
            self.flush()
        if self._writer is not None:
            self._checkpoints.put(None)
            self._writer.join(timeout=60)
            self._writer = None
        self.verifier.close()
        if self._early_reader is not None:
            self._early_reader.shutdown(wait=True, cancel_futures=True)
            self._early_reader = None
            sys.setswitchinterval(self._switch_interval)

    def close(self) -> None:
        self.stop()
        self._reads.close()
        self.store.close()

    def _check_loop(self) -> None:
        while not self._stop.is_set():
            item = self._incoming.get()
            if item is None:
                return
            # small batches keep the pipeline full: the sealer applies one batch while the next is verified
            batch = [item]
            while len(batch) < 4:
                try:
                    nxt = self._incoming.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._stop.set()
                    break
                batch.append(nxt)
            self._check_batch(batch)

    def _check_batch(self, batch: list[tuple[bytes | Tx, Future[Receipt]]]) -> None:
        accepted: list[Ready] = []
        triples: list[Triple] = []
        for raw, fut in batch:
            if isinstance(raw, Tx):  # already decoded by check_tx (the API does it off this thread)
                tx = raw
            else:
                try:
                    tx = self.check_tx(raw)
                except CrevError as err:
                    settle(fut, refused(sha256(raw), err))
                    continue
                except Exception as exc:  # hostile bytes must never stop the node (e.g. a 5,000-digit int)
                    settle(fut, refused(sha256(raw), MalformedError(
                        "tx", f"cannot be decoded ({type(exc).__name__})")))
                    continue
            # One lock orders this against the sealer, which pops a hash only after its block is
            # committed: so a resubmission is either attached to the one in flight or finds it in
            # the store, never sealed a second time.
            with self._inflight_lock:
                same = self._inflight.get(tx.hash)
                if same is not None:
                    same.add_done_callback(_forward(fut))
                    continue
                done = self.committed_receipt(tx.hash)
                if done is not None:
                    settle(fut, done)
                    continue
                self._inflight[tx.hash] = fut
            ts = signature_triples(self.state, tx)
            forged = _mostly_forged(ts)
            if forged:
                with self._inflight_lock:
                    self._inflight.pop(tx.hash, None)
                settle(fut, refused(tx.hash, SignatureError("readings", forged)))
                continue
            triples.extend(ts)
            accepted.append((tx, fut, ts, None))
        self.verifier.fill(self._cache, triples)
        # the batch's buckets and tallies, read while the sealer works (``seal`` holds them), unless
        # so many readings wait that blocks before them will load much of it first
        reader = self._early_reader
        if accepted and reader is not None and self._ready_readings < READ_EARLY_BELOW and self.store.reads_spans():
            early: Future[Early | None] | None = reader.submit(self._read_early,
                                                                [item[0].message for item in accepted])
            accepted = [(tx, fut, ts, early) for tx, fut, ts, _ in accepted]
        for item in accepted:
            n = readings_in(item[0])
            with self._inflight_lock:
                self._ready_readings += n
            self._ready.put(item)

    def _seal_loop(self) -> None:
        """Seal once ``block_interval`` has passed since the previous seal *started* (at once when a
        full block is waiting). Measured from its end, a seal that took longer than the interval
        was followed by a whole interval of waiting with work ready: under overload the sealer
        idled up to half the time (docs/benchmarks.md, the front door under overload). Between
        turns (after a seal, or after finding nothing to seal), what the checkpoint thread has
        written is dropped from memory, and while idle, a checkpoint held back by the writer's pace
        (``_checkpoint_due``) is queued once it is due (``_idle_upkeep``). While the writer is a
        whole checkpoint behind (``_writer_behind``), nothing is sealed: the transactions wait in
        the queues, and what the node holds unwritten stays bounded."""
        started = self.timer()
        while not self._stop.is_set():
            if self._writer_behind():
                t = time.monotonic()
                time.sleep(0.002)
                self.seal_times.writer_wait += time.monotonic() - t
                continue
            wait = started + self.block_interval - self.timer()
            if (wait > 0 and self._ready_readings < self.max_block_readings
                    and self._ready.qsize() < self.max_block_txs):
                self._idle_upkeep()
                time.sleep(min(wait, 0.005))
                continue
            started = self.timer()
            self.seal()
            if self._written > self._evicted:
                t = time.thread_time()
                with self.lock:
                    self._evict_written()
                self.seal_times.evict += time.thread_time() - t

    def _writer_behind(self) -> bool:
        """Whether the sealer must wait for the checkpoint writer: it is writing one checkpoint and
        the changes gathered for the next have reached ``checkpoint_max_changes``."""
        return (self._queued > self._written and len(self._pending_changes) >= self.checkpoint_max_changes
                and self._writer is not None and self._writer.is_alive())

    def _idle_upkeep(self) -> None:
        """While no block is due: queue a checkpoint held back by the writer's pace once it is due.
        (What a written checkpoint holds is dropped after every turn of the seal loop, a block
        sealed or not.)"""
        if self._pending_outcomes and self._checkpoint_due():
            with self.lock:
                if self._pending_outcomes:  # not taken meanwhile by ``flush``
                    self._queue_checkpoint()

    def _touched(self, msgs: list[Any]) -> tuple[list[str], list[str]]:
        """The state keys the readings of ``msgs`` will change (``keys_touched``, and their devices'
        owners' accounts and the supply), and the slot tallies they will read that are not in
        memory. Devices are held whole, so looking up their owners reads nothing."""
        keys: list[str] = []
        reads: list[str] = []
        owners: set[str] = set()
        st = self.state
        tallies, devices = st.tallies, st.devices
        for msg in msgs:
            if isinstance(msg, SubmitReadings):
                k, t = keys_touched(msg)
                keys += k
                reads += [key for dev, slot, key in t if not dict.__contains__(tallies, (dev, slot))]
                owners.update(d.owner for r in msg.readings if (d := devices.get(r.device_id)) is not None)
        if keys:  # the lots' owners' accounts and the supply change too
            keys += ["s", *(f"a/{owner}" for owner in owners)]
        return keys, reads

    def _read_early(self, msgs: list[Any]) -> Early | None:
        """On the reader thread, for a batch the check stage passed: read the buckets and tallies
        the readings of ``msgs`` will need that are not in memory now, without holding them
        (``Checkpoint.read_early``; the kernel reads them with the interpreter lock released,
        beside the sealer). What comes back is held by ``seal``, checked then against the tree as
        it is then."""
        cp = checkpoint_of(self.state)
        if cp is None:
            return None
        keys, reads = self._touched(msgs)
        if not keys:
            return None
        try:
            got = cp.read_early(keys, reads)
        except sqlite3.Error:  # only a head start: the sealer reads them itself, and stops on the error it meets
            return None
        return None if got is None else Early(keys, reads, got)

    def _read_ahead(self, cp: Checkpoint, items: list[Ready]) -> None:
        """Hold what the reader thread read early for ``items`` (each bucket checked against its hash
        now), and load together what is still missing: the tree buckets the readings will change
        and the slot tallies they will read (``Checkpoint.prefetch``: one call of the kernel,
        node/spans.py, instead of a query a bucket and a record)."""
        pending = {id(f): f for item in items if (f := item[3]) is not None}  # one a check batch
        early: dict[int, Early | None] = {}
        for key, f in pending.items():
            # one not started yet is dropped (the sealer reads for itself); one under way is waited for
            early[key] = None if f.cancel() else f.result()
        keys, reads = self._touched([item[0].message for item in items if item[3] is None or not early[id(item[3])]])
        done = [e for e in early.values() if e is not None]
        for e in done:
            keys += e.keys
            reads += e.reads
        cp.prefetch(keys, reads, [e.got for e in done])

    def seal(self) -> Block | None:
        """Build, sign and commit one block from what is ready. Returns None if nothing was. What
        a written checkpoint lets go is dropped after the receipts are out (``_evict_written``, by
        the seal loop), not before: its submitters do not wait for it."""
        items: list[Ready] = []
        n = 0
        while n < self.max_block_readings and len(items) < self.max_block_txs:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._stop.set()
                break
            items.append(item)
            n += readings_in(item[0])
        with self._inflight_lock:
            self._ready_readings -= n
        assert self.sequencer is not None
        with self.lock:
            st = self.state
            now = max(int(self.clock()), st.last_time)
            # the market's clock: expiry, standing bids, call auctions, at the head of the block
            due = tick_due(st, now)
            if not items and not due:
                return None
            times = self.seal_times
            t0 = time.thread_time()
            cp = checkpoint_of(st)
            if cp is not None and self.store.reads_spans():  # else each bucket is read when first needed
                self._read_ahead(cp, items)
            t1 = time.thread_time()
            builder = BlockBuilder(st, st.height + 1, now, self._cache)
            if due:
                builder.add(build_tx(st.chain_id, MarketTick(now)), keep_failed=False)
            kept: list[tuple[Tx, Future[Receipt], int]] = []
            for tx, fut, _, _ in items:
                res = builder.add(tx, keep_failed=False)
                if res.ok:
                    kept.append((tx, fut, len(builder.txs) - 1))
                else:
                    assert res.error is not None
                    with self._inflight_lock:
                        self._inflight.pop(tx.hash, None)
                    settle(fut, refused(tx.hash, res.error))
            if not builder.txs:  # everything was refused: no block, nothing changed
                for _, _, ts, _ in items:
                    for t in ts:
                        self._cache.discard(t)
                return None
            t2 = time.thread_time()
            outcome = builder.finish()
            t3 = time.thread_time()
            block = self._commit_outcome(outcome)
            t4 = time.thread_time()
        for _, _, ts, _ in items:
            for t in ts:
                self._cache.discard(t)
        h = outcome.header
        for tx, fut, idx in kept:
            res = outcome.results[idx]
            with self._inflight_lock:
                self._inflight.pop(tx.hash, None)
            settle(fut, Receipt(tx.hash.hex(), True, h.height, idx, True, None, res.detail, of_events=res.events))
        for listener in self.listeners:
            listener(block, outcome)
        times.read_ahead += t1 - t0
        times.apply += t2 - t1
        times.finish += t3 - t2
        times.commit += t4 - t3
        times.receipts += time.thread_time() - t4
        times.blocks += 1
        times.readings += n
        return block

    def _fail_pending(self, exc: BaseException) -> None:
        """Resolve every queued submission with ``exc``: nobody waits for a stopped node."""
        for q in (self._incoming, self._ready):
            while True:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is not None and not item[1].done():
                    settle(item[1], exc=exc)
        with self._inflight_lock:
            for fut in self._inflight.values():
                if not fut.done():
                    settle(fut, exc=exc)
            self._inflight.clear()

    # --- checkpoints ---------------------------------------------------------------------------

    def _queue_checkpoint(self, done: threading.Event | None = None) -> None:
        """Hand the changes since the last checkpoint to the writer (caller holds the lock).
        Checkpoints are written in order by one thread, so a later one never lands first."""
        changes = self._pending_changes
        # the bucket hashes at this height, copied now (the tree moves on while the writer writes)
        rows, buckets = _bucket_rows(self.state)
        item = (self.state.height, changes, self._pending_outcomes, done, rows)
        self._unwritten.append((self.state.height, changes, buckets))
        self._pending_changes = {}
        self._pending_outcomes = []
        self._queued = self.state.height
        self._last_checkpoint = self.timer()
        if self._writer is None or not self._writer.is_alive():
            self._write_checkpoint(self.store, item)
        else:
            self._checkpoints.put(item)

    def _write_checkpoint(self, store: Store, item: CheckpointItem) -> None:
        """Write one checkpoint: its rows built first (Python, no database lock held), then one
        transaction on the state file that only hands them to SQLite (block commits, to the
        chain's file, go on meanwhile), then the state file's write-ahead log emptied."""
        height, changes, outcomes, done, buckets = item
        started = time.monotonic()
        if outcomes or changes:
            prepared = prepare_checkpoint(height, changes, outcomes, buckets)
            store.store_checkpoint(prepared)
            store.checkpoint_wal()
        self._last_write_s = time.monotonic() - started
        self._written = height  # durable (or nothing to write): the sealer may evict what it holds of it
        if done is not None:
            done.set()

    def _evict_written(self) -> None:
        """Drop from memory what the last written checkpoint holds (caller holds the lock, no block
        half-built): every big-kind record and loaded state-tree bucket except those of the keys
        changed since that checkpoint's changes were taken (the checkpoints queued after it and the
        changes not queued yet), which the store does not hold yet. See ``lazystate.evict``."""
        written = self._written
        if written <= self._evicted or self._finalized is not None:
            return
        self._unwritten = [item for item in self._unwritten if item[0] > written]
        keep = set(self._pending_changes)
        buckets = self.state.tree.touched()  # rehashed since the last checkpoint was taken
        for _, ch, bs in self._unwritten:
            keep.update(ch)
            buckets |= bs
        evict(self.state, written, keep, buckets)
        self._evicted = written
        trim_heap()  # what was dropped is free heap the C allocator would otherwise keep mapped

    def _checkpoint_loop(self) -> None:
        lower_priority(WRITER_NICE)
        writer = Store(self.store.path, locks=self._locks)
        try:
            while True:
                item = self._checkpoints.get()
                if item is None:
                    return
                self._write_checkpoint(writer, item)
                # written: hold none of it (its changes, its blocks' results) while waiting for the next
                del item
        finally:
            writer.close()

    def flush(self) -> None:
        """Checkpoint everything committed so far, wait until it is written, and drop from memory
        what it holds."""
        done = threading.Event()
        with self.lock:
            self._queue_checkpoint(done)
        while not done.wait(0.05):
            if self.fatal is not None:  # the writer died: its checkpoint will never be written
                raise RuntimeError(f"the checkpoint writer failed: {self.fatal!r}") from self.fatal
        with self.lock:
            self._evict_written()

    def check(self) -> None:
        """Check the conserved quantities of the current state (raises InvalidBlock): every
        invariant, so it reads every record back from the store (held until the next eviction);
        for tests and small ledgers, ``crev verify`` for a large one."""
        with self.lock:
            check_invariants(self.state)
