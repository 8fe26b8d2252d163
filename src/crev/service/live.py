"""The service's view of a running ledger: consistent reads, the market's history, and the live
stream.

**Which ledger.** ``Ledger`` is what the service needs of one: the embedded ``Node`` satisfies it,
and so does a consortium member (``crev.consortium.member.MemberLedger``: reads from the member's
data directory, which its crev app writes, submissions through its CometBFT). A ledger whose
index another process writes also offers ``index_tail`` (``TailIndexed``): a reader's read-only
store is then brought to exactly the ledger's state (the blocks after the file's checkpoint indexed
on that connection).

**Consistent reads.** The node keeps its state in memory and writes the SQLite snapshot and
index (which trace, reports and lists read) every few seconds in the background. A read that
needs both must see them at the same height, so ``Live.read()`` has the checkpoint writer catch
up, then holds the node's lock (no block is sealed meanwhile), lets the writer catch up on what
was sealed in between (usually nothing), and opens a read-only SQLite snapshot. Reads that need
only the state or only the blocks take less (``state()``, ``store()``).

**History.** Trades and call-auction results are loaded once from the stored results at start
and then appended from each committed block (the node's block listener), so market pages never
rescan the chain.

**Stream.** Every committed block is turned into a few small JSON events (block, issued, trade,
retired, and a device's reconciled slots, drift alerts, debt changes and control records) and
handed to each subscriber's queue on its own event loop; a subscriber that does not keep up loses
its queue (and is told so) rather than slowing the sealer.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from crev.core.units import SLOT_SECONDS, jst
from crev.ledger.apply import BlockOutcome, TxResult
from crev.ledger.block import Block
from crev.ledger.events import (
    AuctionCleared,
    CalibrationDrift,
    ControlRecorded,
    DebtRecorded,
    DebtRepaid,
    Issued,
    Retired,
    SlotReconciled,
    Traded,
)
from crev.ledger.state import State
from crev.ledger.tx import Tx
from crev.node.node import DB_FILE, Receipt
from crev.node.store import Store
from crev.reports.statements import committed_events

STREAM_QUEUE = 2_000  # events a subscriber may fall behind before it is dropped
HISTORY = 100_000  # trades and auctions kept in memory (the chain keeps them all)
STREAMS_PER_CLIENT = 16  # open /v1/stream connections one address may hold
SHUTDOWN: dict[str, Any] = {"event": "shutdown"}  # the last item a stream gets when the server stops


class Ledger(Protocol):
    """A running ledger as the service uses it (the embedded ``Node``, a consortium member)."""

    @property
    def data_dir(self) -> Path:
        """The ledger's data directory (its SQLite store is read here read-only)."""

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held, no block is applied to ``state``."""

    @property
    def state(self) -> State:
        """The live state (read it under ``lock``)."""

    @property
    def listeners(self) -> list[Callable[[Block, BlockOutcome], None]]:
        """Called with each committed block and its outcome, in order."""

    def flush(self) -> None:
        """Bring what a reader's store shows up to ``state`` (the embedded node: write the
        checkpoint; a member: apply what its app committed)."""

    def check_tx(self, raw: bytes) -> Tx:
        """The stateless check (raises CrevError)."""

    def submit(self, raw: bytes | Tx) -> Future[Receipt]:
        """Resolves with the receipt once committed (or refused)."""


@runtime_checkable
class TailIndexed(Protocol):
    """A ledger whose store's index another process writes (a consortium member)."""

    def index_tail(self, store: Store) -> None:
        """With ``lock`` held: make ``store`` (read-only) show exactly ``state``."""


@dataclass
class Reading:
    """What a consistent read hands out: the live state and a read-only snapshot of the store at
    the same height."""

    state: State
    store: Store


class StreamLimit(Exception):
    """One address has as many open streams as it may."""


def _deliver(group: list[Subscriber], items: list[dict[str, Any]]) -> None:
    for sub in group:
        for item in items:
            sub.offer(item)


class Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop, client: str = "") -> None:
        self.loop = loop
        self.client = client
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(STREAM_QUEUE)
        self.dropped = False

    def offer(self, item: dict[str, Any] | None) -> None:
        """Called on the event loop's thread."""
        if self.dropped:
            return
        if self.queue.full():
            self.dropped = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)  # tells the stream to end
            return
        self.queue.put_nowait(item)

    def end(self) -> None:
        """The server is shutting down: the stream says so and ends (on the event loop's thread)."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(SHUTDOWN)


class Live:
    def __init__(self, node: Ledger) -> None:
        self.node = node
        self._tail = node if isinstance(node, TailIndexed) else None
        self.db_path = node.data_dir / DB_FILE
        self.trades: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.auctions: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._subs: set[Subscriber] = set()
        self._subs_lock = threading.Lock()
        with self.read() as r:
            # only trades and auctions are kept: skip the results that hold neither undecoded
            for time_, height, tx_hash, events in committed_events(r.store, only=("traded", "auction_cleared")):
                self._remember(time_, height, tx_hash, events)
        node.listeners.append(self._on_block)

    # --- reads ------------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Reading]:
        """State and store at the same height (see the module doc)."""
        self.node.flush()  # the bulk of the catching up, without holding up the sealer
        with self.node.lock:
            self.node.flush()  # only what was sealed in between
            store = Store(self.db_path, readonly=True)
            try:
                if self._tail is not None:
                    self._tail.index_tail(store)
                yield Reading(self.node.state, store)
            finally:
                store.close()

    @contextmanager
    def state(self) -> Iterator[State]:
        """The live state alone, with no block sealed meanwhile."""
        with self.node.lock:
            yield self.node.state

    @contextmanager
    def store(self) -> Iterator[Store]:
        """A read-only snapshot of the stored blocks and transactions (no lock held: blocks are
        durable before anyone learns of them)."""
        store = Store(self.db_path, readonly=True)
        try:
            yield store
        finally:
            store.close()

    # --- history and stream ------------------------------------------------------------------

    def _remember(self, time_: int, height: int, tx_hash: str, events: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for e in events:
            if isinstance(e, Traded):
                row = {"trade_id": e.trade_id, "market_id": e.market_id, "height": height, "time": time_,
                       "time_jst": jst(time_).isoformat(), "price": e.price, "quantity_g": e.quantity_g,
                       "value_jpy": e.value_jpy, "buyer": e.buyer, "seller": e.seller,
                       "bid_order": e.bid_order, "offer_order": e.ask_order, "aggressor": e.aggressor,
                       "fee_buyer_jpy": e.fee_buyer_jpy, "fee_seller_jpy": e.fee_seller_jpy,
                       "retirement_id": e.retirement_id,
                       "lots": [[lot, a, b - 1] for lot, a, b in e.ranges],  # last unit inclusive
                       "tx_hash": tx_hash}
                self.trades.append(row)
                out.append({"event": "trade", **{k: row[k] for k in (
                    "trade_id", "market_id", "price", "quantity_g", "buyer", "seller", "height", "time_jst")}})
            elif isinstance(e, AuctionCleared):
                self.auctions.append({"market_id": e.market_id, "height": height, "time": time_,
                                      "time_jst": jst(time_).isoformat(), "price": e.price,
                                      "volume_g": e.volume_g, "bids": e.bids, "asks": e.asks,
                                      "tx_hash": tx_hash})
        return out

    def _on_block(self, block: Block, outcome: BlockOutcome) -> None:
        """The node's listener (on the sealer thread, after the block is durable)."""
        h = block.header
        items: list[dict[str, Any]] = [{"event": "block", "height": h.height, "hash": h.hash.hex(),
                                        "time": h.time, "time_jst": jst(h.time).isoformat(),
                                        "tx_count": h.tx_count}]
        retired: dict[str, dict[str, Any]] = {}
        for res in outcome.results:
            if not res.ok:
                continue
            items += self._remember(h.time, h.height, res.tx_hash.hex(), res.events)
            items += _stream_items(res, h.height, retired)
        items += retired.values()
        with self._subs_lock:
            subs = list(self._subs)
        # one hand-over per event loop per block, however many subscribers and events
        by_loop: dict[asyncio.AbstractEventLoop, list[Subscriber]] = {}
        for sub in subs:
            by_loop.setdefault(sub.loop, []).append(sub)
        for loop, group in by_loop.items():
            loop.call_soon_threadsafe(_deliver, group, items)

    def subscribe(self, client: str) -> Subscriber:
        """A new stream for ``client`` (its address); raises StreamLimit beyond
        ``STREAMS_PER_CLIENT`` open streams from one address."""
        sub = Subscriber(asyncio.get_running_loop(), client)
        with self._subs_lock:
            if sum(1 for x in self._subs if x.client == client) >= STREAMS_PER_CLIENT:
                raise StreamLimit(client)
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._subs_lock:
            self._subs.discard(sub)

    def end_streams(self) -> None:
        """Tell every open stream the server is going away (it then ends), from any thread."""
        with self._subs_lock:
            subs = list(self._subs)
        for sub in subs:
            sub.loop.call_soon_threadsafe(sub.end)


def _stream_items(res: TxResult, height: int, retired: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in res.events:
        if isinstance(e, Issued):
            out.append({"event": "issued", "lot_id": e.lot_id, "device_id": e.device_id, "owner": e.owner,
                        "quantity_g": e.quantity_g, "height": height})
        elif isinstance(e, Retired):
            r = retired.setdefault(e.retirement_id, {"event": "retired", "retirement_id": e.retirement_id,
                                                     "account": e.account, "beneficiary": e.beneficiary,
                                                     "quantity_g": 0, "height": height})
            r["quantity_g"] += e.end_unit - e.start_unit
        elif isinstance(e, SlotReconciled):
            out.append({"event": "reconciled", "device_id": e.device_id, "slot_start": e.slot_id * SLOT_SECONDS,
                        "status": e.status, "dgc_export_wh": e.dgc_export_wh, "smart_meter_export_wh": e.sm_export_wh,
                        "tolerance_wh": e.tolerance_wh, "issued_g": e.issued_g, "target_g": e.target_g,
                        "topup_g": e.topup_g, "cancelled_g": e.cancelled_g, "debt_g": e.debt_g, "height": height})
        elif isinstance(e, CalibrationDrift):
            out.append({"event": "drift", "device_id": e.device_id, "slot_start": e.slot_id * SLOT_SECONDS,
                        "quantity": e.quantity, "dgc_wh": e.dgc_wh, "smart_meter_wh": e.smart_meter_wh,
                        "consecutive": e.consecutive, "height": height})
        elif isinstance(e, (DebtRecorded, DebtRepaid)):
            if isinstance(e, DebtRecorded):
                change, qty, debt = "recorded", e.debt_g, e.total_debt_g
            else:
                change, qty, debt = "repaid", e.repaid_g, e.remaining_debt_g
            out.append({"event": "debt", "device_id": e.device_id, "change": change, "quantity_g": qty,
                        "debt_g": debt, "height": height})
        elif isinstance(e, ControlRecorded):  # the record's money inputs are never streamed
            out.append({"event": "control", "device_id": e.device_id, "seq": e.seq, "slot_start": e.slot_start,
                        "applied_at": e.applied_at, "limit_w": e.limit_w, "reason": e.reason, "height": height})
    return out
