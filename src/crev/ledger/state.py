"""The ledger state: every record, the supply totals and the state commitment.

Handlers read and change records in the typed maps and call ``mark(key)`` for each record they
changed; ``seal()`` then re-encodes exactly those records into the state tree and returns the
changed (key, value) pairs for storage. Keys:

``a/<account>``  ``d/<device>``  ``l/<lot>``  ``r/<device>/<seq>``  ``t/<retirement>``
``f/<key>/<fiscal year>/<kind>``  ``s`` (supply)  ``g`` (genesis hash and params)
``m/<market>``  ``o/<order>``  ``p/<account>`` (offer policy)  ``b/<account>/<market>`` (standing bid)
``v/<device>/<slot_id>`` (slot tally: readings and smart meter per slot)  ``c/<device>/<seq>`` (control record)
``k/<delegate>`` (a delegated key: who it acts for, what it may sign, its own nonce)

Order books are not state: they are indexes over the open orders (``books``), rebuilt from the
``o/`` records on load, so they never need committing. So are the indexes of ledger/indexes.py
(``open_orders()``: open orders by market, owner and expiry; ``tradable_lots()``: each account's
lots holding tradable units), which let a block cost what it touches rather than the history:
each is built on first use from the records and kept up to date as handlers change them;
``rebuild_indexes()`` drops them all after the maps were filled or replaced (a load).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from crev.core.encoding import encode
from crev.core.factors import FactorRow, FactorTable
from crev.core.statetree import StateProof, StateTree, kernel_chunks
from crev.ledger.indexes import OpenOrders, Seed, TradableLots
from crev.ledger.params import Params
from crev.ledger.record_codec import encode_record, record_codec
from crev.ledger.records import (
    Account,
    ControlRecord,
    Delegate,
    Device,
    Lot,
    Market,
    OfferPolicy,
    Order,
    ReadingRecord,
    Retirement,
    SlotTally,
    StandingBid,
    Supply,
)


def _num_key(rest: str) -> tuple[str, int] | None:
    """``<id>/<n>`` → (id, n), or None unless n is a canonical decimal."""
    name, _, n = rest.rpartition("/")
    return (name, int(n)) if n.isdigit() and str(int(n)) == n else None


class State:
    def __init__(self, chain_id: str, params: Params, genesis_hash: bytes) -> None:
        self.chain_id = chain_id
        self.params = params
        self.genesis_hash = genesis_hash
        self.accounts: dict[str, Account] = {}
        self.devices: dict[str, Device] = {}
        self.lots: dict[str, Lot] = {}
        self.readings: dict[tuple[str, int], ReadingRecord] = {}
        self.retirements: dict[str, Retirement] = {}
        self.factors = FactorTable()
        self.factor_rows: dict[str, FactorRow] = {}
        self.meter_serials: dict[str, str] = {}  # index: meter serial → device id (not committed)
        self.markets: dict[str, Market] = {}
        self.orders: dict[str, Order] = {}  # every order; a closed one stays, with its final status
        self.offer_policies: dict[str, OfferPolicy] = {}
        self.standing_bids: dict[tuple[str, str], StandingBid] = {}
        self.tallies: dict[tuple[str, int], SlotTally] = {}  # (device, slot_id) → its tally
        self.controls: dict[tuple[str, int], ControlRecord] = {}  # (device, seq) → control record
        self.delegates: dict[str, Delegate] = {}  # delegate id → its record (ids shared with accounts)
        self.books: dict[str, Any] = {}  # market id → its order book (an index, not committed)
        self.supply = Supply()
        self.operator_id = ""
        self.sequencer_key = b""
        # chain head (committed by the block headers, not by the state tree)
        self.height = 0
        self.last_block_hash = b"\x00" * 32
        self.last_time = 0
        self.tree = StateTree(params.state_tree_depth)
        self._dirty: set[str] = set()
        # indexes (ledger/indexes.py), built on first use; not committed
        self._open: OpenOrders | None = None
        self._tradable: TradableLots | None = None
        self._lot_touches: set[str] | None = None  # lots changed since the tradable index read them
        self.standing_month = 0  # YYYYMM every standing bid is known to be renewed for (0: unknown)
        # Set by a node whose lots live on disk: account → ids of every lot in which it may hold
        # tradable units (a superset is fine), so that the tradable index is built per account
        # instead of by reading every lot. A lot it misses changes which lots an offer sells.
        self.tradable_seed: Seed | None = None
        # Set likewise: the ids of every order that may be open (a superset is fine), so that the
        # open-order index is built from those instead of by reading every order ever placed.
        self.order_seed: Callable[[], Iterable[str]] | None = None
        self.mark("g")

    # --- change tracking ---------------------------------------------------------------------

    def mark(self, key: str) -> None:
        """Record that the record at ``key`` changed (or will, within this transaction). Every
        change to a record is marked, so the indexes learn of changed lots and standing bids here."""
        self._dirty.add(key)
        c = key[0]
        if c == "l":
            touched = self._lot_touches
            if touched is not None:
                touched.add(key[2:])
        elif c == "b":
            self.standing_month = 0

    def value_of(self, key: str) -> bytes | None:
        """Canonical bytes of the record at ``key``, or None if absent."""
        kind, _, rest = key.partition("/")
        obj: Any
        if kind == "a":
            obj = self.accounts.get(rest)
        elif kind == "d":
            obj = self.devices.get(rest)
        elif kind == "l":
            obj = self.lots.get(rest)
        elif kind == "r":
            dev, _, seq = rest.rpartition("/")
            obj = self.readings.get((dev, int(seq))) if seq.isdigit() and str(int(seq)) == seq else None
        elif kind == "v":
            nk = _num_key(rest)
            obj = None if nk is None else self.tallies.get(nk)
        elif kind == "c":
            nk = _num_key(rest)
            obj = None if nk is None else self.controls.get(nk)
        elif kind == "t":
            obj = self.retirements.get(rest)
        elif kind == "k":
            obj = self.delegates.get(rest)
        elif kind == "f":
            row = self.factor_rows.get(rest)
            return None if row is None else encode(row.as_list())
        elif kind == "m":
            obj = self.markets.get(rest)
        elif kind == "o":
            obj = self.orders.get(rest)
        elif kind == "p":
            obj = self.offer_policies.get(rest)
        elif kind == "b":
            acct, _, market = rest.partition("/")
            obj = self.standing_bids.get((acct, market))
        elif kind == "s":
            obj = self.supply
        elif kind == "g":
            return encode([self.chain_id, self.genesis_hash, self.params.to_value(), self.operator_id,
                           self.sequencer_key])
        else:
            raise KeyError(key)
        return None if obj is None else encode_record(obj)

    def seal(self) -> tuple[bytes, list[tuple[str, bytes | None]]]:
        """Fold every marked record into the tree. Returns (state root, changed entries)."""
        if self._lot_touches:
            self._read_touched_lots()
        tree = self.tree
        keys = sorted(self._dirty)
        codec = record_codec()
        # the hot records' bytes by the kernel; None where ``value_of`` must tell
        values: list[bytes | None] = [None] * len(keys)
        if codec is not None:
            maps = self._record_maps()
            values = [v for part in kernel_chunks(keys) for v in codec.values_of(maps, part)]  # short calls
        changed = [(key, value if value is not None else self.value_of(key))
                   for key, value in zip(keys, values, strict=True)]
        tree.set_many(changed)
        self._dirty.clear()
        return tree.root(), changed

    def _record_maps(self) -> dict[str, Any]:
        """The maps ``RecordCodec.values_of`` reads, by key prefix (``s``: the supply record)."""
        return {"a": self.accounts, "d": self.devices, "l": self.lots, "r": self.readings, "v": self.tallies,
                "s": self.supply}

    def discard_changes(self) -> None:
        """Forget the marks (a loader calls this once it has filled the maps); the indexes are
        rebuilt from the maps as they now are."""
        self._dirty.clear()
        self.rebuild_indexes()

    # --- indexes (not committed) -----------------------------------------------------------

    def rebuild_indexes(self) -> None:
        """Drop every index, to be rebuilt from the maps on first use. Call it after filling or
        replacing the maps other than through handlers (loading a snapshot or a lazy view)."""
        self.books.clear()
        self._open = None
        self._tradable = None
        self._lot_touches = None
        self.standing_month = 0

    def open_orders(self) -> OpenOrders:
        """The open orders by market, owner and expiry, built the first time it is asked for in one
        pass over ``orders`` or, with ``order_seed``, from the orders the seed names."""
        ix = self._open
        if ix is None:
            if self.order_seed is None:
                ix = OpenOrders.build(self.orders.values())
            else:
                get = self.orders.get
                ix = OpenOrders.build(o for oid in self.order_seed() if (o := get(oid)) is not None)
            self._open = ix
        return ix

    def open_orders_built(self) -> OpenOrders | None:
        """The open-order index if it is built (``open_orders`` builds it)."""
        return self._open

    def tradable_lots(self) -> TradableLots:
        """Each account's lots holding tradable units, up to date with every change marked so far.
        Built the first time it is asked for, in one pass over every lot (on a state whose maps
        read records from disk, node/lazystate.py, that pass reads them all, once per load), or,
        with ``tradable_seed``, account by account from the lots the seed names."""
        ix = self._tradable
        if ix is None:
            if self.tradable_seed is None:
                ix = TradableLots.build(self.lots.values())
            else:
                ix = TradableLots(self.tradable_seed, lambda lot_id: self.lots.get(lot_id))
            self._tradable = ix
            self._lot_touches = set()
        elif self._lot_touches:
            self._read_touched_lots()
        return ix

    def _read_touched_lots(self) -> None:
        ix, touched = self._tradable, self._lot_touches
        assert ix is not None and touched is not None
        lots = self.lots
        for lot_id in touched:
            lot = lots.get(lot_id)
            if lot is not None:
                ix.refresh(lot)
        touched.clear()

    def prove(self, key: str) -> StateProof:
        return self.tree.prove(key, self.value_of(key))

    def all_keys(self) -> list[str]:
        keys = ["g", "s"]
        keys += [f"a/{k}" for k in self.accounts]
        keys += [f"d/{k}" for k in self.devices]
        keys += [f"l/{k}" for k in self.lots]
        keys += [f"r/{d}/{s}" for d, s in self.readings]
        keys += [f"t/{k}" for k in self.retirements]
        keys += [f"f/{k}" for k in self.factor_rows]
        keys += [f"m/{k}" for k in self.markets]
        keys += [f"o/{k}" for k in self.orders]
        keys += [f"p/{k}" for k in self.offer_policies]
        keys += [f"b/{a}/{m}" for a, m in self.standing_bids]
        keys += [f"v/{d}/{n}" for d, n in self.tallies]
        keys += [f"c/{d}/{n}" for d, n in self.controls]
        keys += [f"k/{k}" for k in self.delegates]
        return keys

    # --- helpers used by handlers ----------------------------------------------------------

    def factor_source(self, factor_ref: str) -> str:
        """The citation of the factor row ``key/fiscal_year/kind`` ("" if unknown)."""
        row = self.factor_rows.get(factor_ref)
        return "" if row is None else row.source

    def set_factor_rows(self, rows: list[FactorRow]) -> None:
        for r in rows:
            k = f"{r.key}/{r.fiscal_year}/{r.kind}"
            self.factor_rows[k] = r
            self.mark(f"f/{k}")
        self.factors.upsert(rows)
