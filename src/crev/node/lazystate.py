"""A read-only state that reads records from the last checkpoint only when they are asked for, and
checks each one against the signed state root.

``lazy_state`` builds it from what the checkpoint stored: the state tree's packed bucket hashes
(``Store.bucket_hashes``) give a ``LazyStateTree`` whose root must equal the ``state_root`` in the
checkpoint block's header (signed by the sequencer). From then on a record is read from SQLite on
first access: its whole bucket is fetched once and must hash to the authenticated bucket hash, so
every record the view reads (and every absence it reports) is checked against the signed header.

The state's maps become ``LazyRecords``: dicts that fetch a missing key from the checkpoint, remember
deletions, and fetch every record of their kind only when iterated (``values()``, ``len()``, …).
The handlers and readers use them as the plain dicts they are, so blocks after the checkpoint are
replayed through ``apply_block`` on this state like on any other (a changed bucket is loaded before
it changes, and the tree recomputes only the changed buckets' paths).

What the view checks: the sequencer's signature on the checkpoint header (``node.load_view``)
and the recomputed root against that header; each bucket it loads against its bucket hash; the
``g`` entry against the genesis file; each later block's signature and roots through
``apply_block``; and, for each record as it is loaded, the invariants that concern that record
alone (a lot's segments tile its units, an account's balances are not negative, a
retirement's ranges add up to its quantity). The chain-wide invariants (``check_invariants``) need
every lot: ``crev verify`` checks them from genesis; a node checks at start-up those that need no lot
(``check_fleet_invariants``).

The embedded node runs on such a state too (``node.node_state``): it holds the small kinds whole
and the open orders (``hold_small_kinds``; the store's ``ix_orders`` names the open ones) and,
after each checkpoint it has written, drops the big kinds' records, the closed orders and the
tree's clean buckets again (``evict``), so its memory holds the fleet and its open orders plus what
changed since the last checkpoint, not the history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from crev.core.encoding import codec_kernel, decode
from crev.core.factors import FactorRow
from crev.core.statetree import LazyStateTree, SpansRead, bucket_index, bucket_span, entry_leaf_hash
from crev.errors import InvalidBlock
from crev.ledger.block import Header
from crev.ledger.genesis import Genesis
from crev.ledger.invariants import check_lot_tiles, check_money
from crev.ledger.records import ASK, Account, Device, Retirement, Supply
from crev.ledger.snapshot import decode_entry, map_key, state_key
from crev.ledger.state import State
from crev.node.store import BIG_KINDS, Store

K = TypeVar("K")
V = TypeVar("V")
_NONE: Any = object()
REFUSE = "refusing to read it: run `crev verify`"


class LazyRecords(dict[K, V]):
    """A state map that fetches a key it does not hold (``fetch(key)`` → record or None), remembers
    the keys removed from it so it never fetches them again, and fetches everything of its kind
    (``fetch_all(skip)``, skipping the keys it already holds or removed) the first time it is
    iterated or measured. Reads and writes of keys it holds cost what a dict's do.

    Fetches happen under ``lock`` (the node's: a reader on another thread then never fetches while
    the sealer changes the state or evicts, nor overwrites a record the sealer has just changed).
    ``evict(keep)`` forgets every record and removal but ``keep``'s once the store holds them."""

    __slots__ = ("_complete", "_fetch", "_fetch_all", "_gone", "_lock", "checkpoint")

    def __init__(self, fetch: Callable[[K], V | None],
                 fetch_all: Callable[[Callable[[K], bool]], Iterable[tuple[K, V]]],
                 lock: AbstractContextManager[Any] | None = None, checkpoint: Checkpoint | None = None) -> None:
        super().__init__()
        self.checkpoint = checkpoint  # what it reads from, if a store (``checkpoint_of``)
        self._fetch = fetch
        self._fetch_all = fetch_all
        self._gone: set[K] = set()
        self._complete = False
        self._lock = lock if lock is not None else threading.RLock()

    def _miss(self, k: K) -> V | None:
        if self._complete:
            return None
        with self._lock:
            v = dict.get(self, k, _NONE)  # set meanwhile by the thread that held the lock
            if v is not _NONE:
                return v  # type: ignore[no-any-return]
            if self._complete or k in self._gone:
                return None
            v = self._fetch(k)
            if v is not None:
                dict.__setitem__(self, k, v)
            return v

    def complete(self) -> None:
        """Fetch every record of this kind (once, until the next ``evict``)."""
        if not self._complete:
            with self._lock:
                if not self._complete:
                    held = self._held
                    for k, v in self._fetch_all(held):
                        dict.__setitem__(self, k, v)
                    self._complete = True

    def resident(self) -> int:
        """How many records it holds now (``len`` fetches every record of its kind first)."""
        return dict.__len__(self)

    def evict(self, keep: Iterable[K]) -> int:
        """Forget every record and every removal except those of the keys ``keep``; returns how many
        records were dropped. The caller (holding the lock) promises that the store ``fetch`` reads
        now holds every other key as this map last had it (a checkpoint written after the key's
        last change), so a later access fetches the same record again."""
        with self._lock:
            held = dict.get
            kept = {k: v for k in keep if (v := held(self, k, _NONE)) is not _NONE}
            gone = {k for k in keep if k in self._gone}
            dropped = dict.__len__(self) - len(kept)
            dict.clear(self)
            dict.update(self, kept)
            self._gone = gone
            self._complete = False
            return dropped

    def _held(self, k: K) -> bool:
        return dict.__contains__(self, k) or k in self._gone

    def __missing__(self, k: K) -> V:
        v = self._miss(k)
        if v is None:
            raise KeyError(k)
        return v

    def get(self, k: K, default: Any = None) -> Any:
        v = dict.get(self, k, _NONE)
        if v is _NONE:
            v = self._miss(k)
            return default if v is None else v
        return v

    def __contains__(self, k: object) -> bool:
        return dict.__contains__(self, k) or self._miss(k) is not None  # type: ignore[arg-type]

    def __setitem__(self, k: K, v: V) -> None:
        self._gone.discard(k)
        dict.__setitem__(self, k, v)

    def __delitem__(self, k: K) -> None:
        if not dict.__contains__(self, k):
            self._miss(k)
        dict.__delitem__(self, k)
        self._gone.add(k)

    def pop(self, k: K, *default: Any) -> Any:
        if not dict.__contains__(self, k):
            self._miss(k)
        self._gone.add(k)
        return dict.pop(self, k, *default)

    def setdefault(self, k: K, default: Any = None) -> Any:
        v = self.get(k, _NONE)
        if v is _NONE:
            self[k] = v = default
        return v

    def update(self, *args: Any, **kw: Any) -> None:
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def popitem(self) -> tuple[K, V]:
        self.complete()
        k, v = dict.popitem(self)
        self._gone.add(k)
        return k, v

    def clear(self) -> None:
        self.complete()
        self._gone.update(dict.keys(self))
        dict.clear(self)

    def __iter__(self) -> Iterator[K]:
        self.complete()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.complete()
        return dict.__len__(self)

    def keys(self) -> Any:
        self.complete()
        return dict.keys(self)

    def values(self) -> Any:
        self.complete()
        return dict.values(self)

    def items(self) -> Any:
        self.complete()
        return dict.items(self)

    def copy(self) -> dict[K, V]:
        self.complete()
        return dict(dict.items(self))

    def __repr__(self) -> str:
        return f"LazyRecords({dict.__len__(self)} held{', complete' if self._complete else ''})"


class SerialIndex(dict[str, str]):
    """``State.meter_serials`` (meter serial → device id, an index the state keeps, not commits) on a
    lazy state: filled from every device the first time anything uses it, then a plain dict."""

    __slots__ = ("_devices", "_filled")

    def __init__(self, devices: dict[str, Device]) -> None:
        super().__init__()
        self._devices = devices
        self._filled = False

    def _fill(self) -> None:
        if not self._filled:
            self._filled = True
            for did, d in self._devices.items():
                dict.__setitem__(self, d.meter_serial, did)

    def get(self, k: str, default: Any = None) -> Any:
        self._fill()
        return dict.get(self, k, default)

    def __getitem__(self, k: str) -> str:
        self._fill()
        return dict.__getitem__(self, k)

    def __contains__(self, k: object) -> bool:
        self._fill()
        return dict.__contains__(self, k)

    def __setitem__(self, k: str, v: str) -> None:
        self._fill()
        dict.__setitem__(self, k, v)

    def __delitem__(self, k: str) -> None:
        self._fill()
        dict.__delitem__(self, k)

    def pop(self, k: str, *default: Any) -> Any:
        self._fill()
        return dict.pop(self, k, *default)

    def __iter__(self) -> Iterator[str]:
        self._fill()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._fill()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._fill()
        return dict.keys(self)

    def values(self) -> Any:
        self._fill()
        return dict.values(self)

    def items(self) -> Any:
        self._fill()
        return dict.items(self)


class Checkpoint:
    """The state entries of the checkpoint at ``height`` as stored in SQLite, read through the
    lazy tree, which checks every bucket it loads. Only asked about keys the view's maps have not
    held since the checkpoint: for those, the tree's leaf hash is still the checkpoint's."""

    def __init__(self, store: Store, tree: LazyStateTree, height: int) -> None:
        self.store = store
        self.tree = tree
        self.height = height
        self.depth = tree.depth
        self._last: tuple[int, dict[str, bytes]] = (-1, {})  # the bucket fetched last, as fetched
        self._near: dict[str, bytes] = {}  # values ``prefetch`` found, as fetched
        self.decoded = 0  # records read from the store and decoded (``_records``' loads)

    def moved_to(self, height: int) -> None:
        """The store now holds the checkpoint at ``height`` (the node evicted what it wrote): forget
        the bucket kept from an earlier one."""
        self.height = height
        self._last = (-1, {})
        self._near = {}

    def prefetch(self, keys: Collection[str], reads: Collection[str] = (), early: Sequence[SpansRead] = ()) -> None:
        """Load the buckets of ``keys`` the tree has not loaded, together (``LazyStateTree.load_keys``),
        and keep the stored values of ``reads`` found for ``value`` until the next prefetch: the
        node calls it with the keys a block's readings will change, and the records they will
        read that are not in memory, before applying them (``Node.seal``). ``early``: what
        ``read_early`` read for them on another thread, held first where it is still current."""
        near: dict[str, bytes] = {}
        for buckets, packed, found in early:
            self.tree.hold_read(buckets, packed)  # a bucket changed since is loaded below
            near.update(found)
        near.update(self.tree.load_keys(keys, [key for key in reads if key not in near]))
        self._near = near

    def read_early(self, keys: list[str], reads: list[str]) -> SpansRead | None:
        """``prefetch``'s reads without holding anything, on a connection of their own: for the
        reader thread, ahead of the sealer (``Node._read_early``); None: no kernel reader. Any
        thread may call it: it only reads the tree's loaded buckets to skip them."""
        return self.store.state_spans(keys, self.depth, self.tree.held_buckets(), reads, early=True)

    def _wrong(self, key: str) -> InvalidBlock:
        return InvalidBlock("state", f"the stored state entry {key!r} (bucket {bucket_index(key, self.depth)}) is "
                                     f"not the one block {self.height}'s state root commits to: the database was "
                                     f"changed after the checkpoint was written; {REFUSE}")

    def value(self, key: str) -> bytes | None:
        """The checkpoint's value of ``key``, checked (None: the checkpoint has no such key)."""
        b = bucket_index(key, self.depth)
        rows = self.tree.load(b)
        if rows is not None:  # just fetched and checked with its whole bucket: keep it for its neighbours
            self._last = (b, dict(rows))
            return self._last[1].get(key)
        leaf = self.tree.leaf(key)
        if leaf is None:
            return None
        stored = self._near.get(key)
        if stored is not None and entry_leaf_hash(key, stored) == leaf:
            return stored
        # not read ahead (or read before a later checkpoint was written): read it now
        stored = self._last[1].get(key) if self._last[0] == b else self.store.state_value(key)
        if stored is None or entry_leaf_hash(key, stored) != leaf:
            raise self._wrong(key)
        return stored

    def kind(self, prefix: str, skip: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
        """Every checkpoint entry whose key starts with ``prefix``, checked, except the keys
        ``skip`` names (a view's map holds a newer version or removed them). Reads the bucket of
        each: what it costs is the number of buckets holding such keys."""
        if prefix in BIG_KINDS:  # the big kinds: one pass over the table
            tree = self.tree
            for key, value in self.store.state_prefix(prefix):
                if skip(key):
                    continue
                if tree.leaf(key) != entry_leaf_hash(key, value):
                    raise self._wrong(key)
                yield key, value
            return
        for key in self.store.small_kind_keys(prefix):  # listed by their index, read with their buckets
            if skip(key):
                continue
            found = self.value(key)
            if found is None:  # listed in the file, absent from its authenticated bucket
                raise self._wrong(key)
            yield key, found


def _check_record(kind: str, key: str, rec: Any, height: int) -> None:
    """The invariants that concern one record alone (ledger/invariants.py has the same messages
    for the chain-wide check)."""
    def refuse(field: str, reason: str) -> InvalidBlock:
        return InvalidBlock(field, f"{reason} (state loaded at height {height}; {REFUSE})")

    if kind == "l":
        try:
            check_lot_tiles(rec)
        except InvalidBlock as err:
            raise refuse(err.field, err.reason) from None
    elif kind == "a":
        acct: Account = rec
        for attr in ("tradable_g", "escrowed_g", "retired_g", "jpy", "jpy_escrowed"):
            if getattr(acct, attr) < 0:
                raise refuse(f"account {acct.account_id}.{attr}", f"is negative ({getattr(acct, attr)})")
    elif kind == "t":
        ret: Retirement = rec
        if sum(b - a for _, a, b in ret.ranges) != ret.quantity_g:
            raise refuse(f"retirement {ret.retirement_id}", "quantity differs from the units it retired")


def _records(cp: Checkpoint, kind: str, lock: AbstractContextManager[Any] | None) -> LazyRecords[Any, Any]:
    prefix = f"{kind}/"

    def load(key: str, value: bytes) -> Any:  # value: checked against the tree by ``cp`` (Checkpoint.value, .kind)
        rec = decode_entry(key, value, committed=True)
        _check_record(kind, key, rec, cp.height)
        cp.decoded += 1
        return rec

    def fetch(k: Any) -> Any:
        try:
            key = state_key(kind, k)
        except (TypeError, IndexError):
            return None
        value = cp.value(key)
        return None if value is None else load(key, value)

    def fetch_all(held: Callable[[Any], bool]) -> Iterator[tuple[Any, Any]]:
        def skip(key: str) -> bool:
            return held(map_key(kind, key[len(prefix):]))

        for key, value in cp.kind(prefix, skip):
            yield map_key(kind, key[len(prefix):]), load(key, value)

    return LazyRecords(fetch, fetch_all, lock, cp)


# The state maps by their key's kind; the big kinds (store.BIG_KINDS) grow with the history, a node
# evicts them after each checkpoint. The small ones a node holds whole (``hold_small_kinds``).
MAPS = {"a": "accounts", "d": "devices", "l": "lots", "r": "readings", "t": "retirements", "m": "markets",
        "o": "orders", "p": "offer_policies", "b": "standing_bids", "v": "tallies", "c": "controls",
        "k": "delegates"}
BIG_MAPS = {k[0]: MAPS[k[0]] for k in BIG_KINDS}
# What a node drops after each checkpoint: the big kinds, and every order but the open ones (an
# auto-offer policy places an order per lot: closed orders grow with the history like lots do).
EVICTED_MAPS = {**BIG_MAPS, "o": "orders"}


def lazy_state(genesis: Genesis, store: Store, head: Header, packed: bytes,
               lock: AbstractContextManager[Any] | None = None) -> State | None:
    """The state at checkpoint block ``head`` read lazily from ``store``, or None if ``packed``
    (the bucket hashes stored with the checkpoint) does not recompute ``head.state_root``: they
    are then not to be trusted, and the caller loads the snapshot in full instead (which checks
    the entries themselves against the header). Records are fetched under ``lock`` (the node's)."""
    return lazy_state_at(genesis, store, head.height, head.hash, head.time, head.state_root, packed, lock)


def lazy_state_at(genesis: Genesis, store: Store, height: int, last_hash: bytes, last_time: int, root: bytes,
                  packed: bytes, lock: AbstractContextManager[Any] | None = None) -> State | None:
    """``lazy_state`` for a checkpoint given by its parts: height 0 (genesis, no block) has no
    header, and its trusted ``root`` is that of the state genesis.json gives."""
    params = genesis.params
    depth = params.state_tree_depth

    def wrong_bucket(b: int, keys: list[str]) -> Exception:
        shown = ", ".join(repr(k) for k in keys[:3]) + (", …" if len(keys) > 3 else "")
        return InvalidBlock("state", f"state bucket {b} as stored ({len(keys)} entries: {shown}) does not hash to "
                                     f"the bucket hash that block {cp.height}'s signed state root commits to: the "
                                     f"database was changed after the checkpoint was written; {REFUSE}")

    def fetch(b: int) -> list[tuple[str, bytes]]:
        return store.state_span(*bucket_span(b, depth))

    def fetch_many(keys: list[str], held: dict[int, bytes], reads: list[str]) -> SpansRead | None:
        return store.state_spans(keys, depth, held, reads)

    try:
        tree = LazyStateTree(depth, packed, fetch, wrong_bucket, fetch_many)
    except ValueError:
        return None
    if tree.root() != root:
        return None
    cp = Checkpoint(store, tree, height)
    st = State(genesis.chain_id, params, genesis.hash)
    st.operator_id = genesis.operator_id
    st.sequencer_key = genesis.sequencer_public_key
    st.discard_changes()
    st.tree = tree
    for kind, name in MAPS.items():
        setattr(st, name, _records(cp, kind, lock))
    st.meter_serials = SerialIndex(st.devices)
    g = cp.value("g")
    if g is None or g != st.value_of("g"):
        raise InvalidBlock("genesis", f"the chain's genesis entry (state key g) differs from "
                                      f"{'what genesis.json gives' if g is not None else 'nothing: it is missing'}: "
                                      f"this data directory's genesis.json is not its chain's")
    s = cp.value("s")
    if s is None:
        raise InvalidBlock("state", f"the checkpoint at block {height} has no supply entry (s); {REFUSE}")
    st.supply = Supply.from_value(decode(s, "s"))
    rows: list[FactorRow] = []
    for key, value in cp.kind("f/", lambda _k: False):
        row = FactorRow.from_list(decode(value, key), key)
        st.factor_rows[key[2:]] = row
        rows.append(row)
    st.factors.upsert(rows)
    st.height = height
    st.last_block_hash = last_hash
    st.last_time = last_time
    st.tradable_seed = tradable_seed(store, st)
    if store.has_order_index:
        st.order_seed = order_seed(store, st)
    return st


def order_seed(store: Store, st: State) -> Callable[[], list[str]]:
    """The seed of ``st``'s open-order index (``State.order_seed``): the orders open at the
    checkpoint (``ix_orders``, written in the same transaction as the checkpoint's state) and every
    order held in ``st.orders`` (those changed since: eviction keeps what the store does not have
    yet). A superset: the index reads each order and keeps the open ones. What the store's index
    could miss is caught at start-up: ``check_fleet_invariants`` compares each account's escrowed
    units and reserved JPY with its open orders."""
    def seed() -> list[str]:
        ids = dict.fromkeys(store.open_order_ids())
        ids.update(dict.fromkeys(dict.keys(st.orders)))
        return list(ids)

    return seed


def tradable_seed(store: Store, st: State) -> Callable[[str], list[str]]:
    """The seed of ``st``'s tradable-lot index (``State.tradable_seed``): every lot in which an
    account may hold tradable units, without reading every lot. A lot's tradable units reach an
    account in three ways only: issued to it (``ix_lots.owner``), transferred to it, or bought by
    it (``ix_moves.counterparty`` of a transfer or a trade; ``move_units`` gives units a new
    holder nowhere else). The store's index rows are written in the same transaction as the
    checkpoint's state, so they cover every block up to it; a lot changed since is held in
    ``st.lots`` (eviction keeps what the store does not have yet), so the held lots are added.
    A superset: the index reads each lot and keeps those the account holds tradable units in."""
    db = store.db

    def seed(account: str) -> list[str]:
        ids = {str(r[0]) for r in db.execute(
            "SELECT lot_id FROM ix_lots WHERE owner = ? UNION SELECT lot_id FROM ix_moves "
            "WHERE counterparty = ? AND kind IN ('transfer', 'trade')", (account, account))}
        ids.update(dict.keys(st.lots))
        return sorted(ids)

    return seed


def read_ahead(st: State, kind: str, keys: Iterable[Any]) -> None:
    """Have the store read ahead, all at once, the buckets of the records ``keys`` (map keys of
    ``kind``: lot ids for ``l``, (device, slot) for ``v`` …) a query is about to read one by one
    (``Store.read_ahead``), where the state is read lazily and they are not loaded yet. The usual
    reads and checks follow; this only saves their waiting for the disk."""
    cp = checkpoint_of(st)
    if cp is None:
        return
    tree, depth = cp.tree, cp.depth
    buckets = {b for key in keys if not tree.loaded(b := bucket_index(state_key(kind, key), depth))}
    cp.store.read_ahead([bucket_span(b, depth) for b in buckets])


def checkpoint_of(st: State) -> Checkpoint | None:
    """The checkpoint a lazily read state reads from (None: a state held whole in memory)."""
    lots = st.lots
    return lots.checkpoint if isinstance(lots, LazyRecords) else None


def hold_small_kinds(st: State) -> None:
    """Fetch every record of the small kinds (accounts, devices, markets, offer policies, standing
    bids, delegates) and the open orders: a node keeps them whole, O(fleet + open orders), so that
    its check stage, which reads devices, accounts and delegates without the node's lock, never
    fetches, and matching never waits for the disk."""
    for kind, name in MAPS.items():
        if kind not in EVICTED_MAPS:
            recs = getattr(st, name)
            if isinstance(recs, LazyRecords):
                recs.complete()
    st.meter_serials.get("")  # fill the serial index from the devices now held
    st.open_orders()  # the open orders, fetched through the index (``order_seed``)


def check_fleet_invariants(st: State) -> None:
    """The chain-wide invariants that need only what a node holds whole (O(fleet), not O(history)):
    supply's units add up (tradable + escrowed + retired + cancelled = issued = next_unit − 1) and
    the money invariants (``check_money``: JPY on accounts = the ledger's, each open bid holds what
    it needs and its account reserves what its bids hold, an offer's lots add up to what remains,
    no delegate is an account). What needs every lot, retirement or tally (each account's balance
    against its segments, a retirement against its units, a device's tallies against its lots)
    is ``crev verify``'s: it replays the chain and runs ``check_invariants``. Raises InvalidBlock."""
    sup = st.supply
    if sup.next_unit - 1 != sup.issued_g:
        raise InvalidBlock("supply.next_unit", "unit ids are not contiguous with what was issued")
    if sup.tradable_g + sup.escrowed_g + sup.retired_g + sup.cancelled_g != sup.issued_g:
        raise InvalidBlock("supply", "tradable + escrowed + retired + cancelled ≠ issued")
    # the open orders only (closed ones are on disk); each open offer's escrowed units as its own
    # record says: the lots' side needs every lot
    opened = [st.orders[oid] for oid in st.open_orders().open]
    asks = [o for o in opened if o.side == ASK]
    check_money(st, {o.order_id: o.remaining_g for o in asks}, opened)
    # escrowed units are held only by open offers (ledger/invariants.py checks it against the lots): an
    # open offer the store's order index missed would show here
    offered: dict[str, int] = {}
    for o in asks:
        offered[o.account] = offered.get(o.account, 0) + o.remaining_g
    for acct in st.accounts.values():
        if acct.escrowed_g != offered.get(acct.account_id, 0):
            raise InvalidBlock(f"account {acct.account_id}.escrowed_g",
                               f"is {acct.escrowed_g}, its open offers hold {offered.get(acct.account_id, 0)}")
    if sup.escrowed_g != sum(offered.values()):
        raise InvalidBlock("supply.escrowed_g", f"is {sup.escrowed_g}, open offers hold {sum(offered.values())}")


def resident_records(st: State) -> dict[str, int]:
    """How many records of each big kind, and orders, a lazily read state holds in memory now."""
    return {name: (m.resident() if isinstance(m := getattr(st, name), LazyRecords) else len(m))
            for name in EVICTED_MAPS.values()}


def _map_keys() -> Callable[[Iterable[str], str], tuple[dict[str, list[Any]], list[str]]] | None:
    """``crev_native.map_keys`` where the codec kernel is in use (``map_key`` of many state keys,
    grouped by kind), else None."""
    k = codec_kernel()
    return getattr(k, "map_keys", None) if k is not None else None


def evict(st: State, height: int, keep: Iterable[str], buckets: Iterable[int] | None = None) -> tuple[int, int]:
    """After the store has durably written the checkpoint at ``height``: drop from memory every
    big-kind record (lots, reading records, retirements, slot tallies, control records) and every
    order that is not open (the open-order index, if built, names the open ones), except those of
    the state keys ``keep`` (every key changed since the checkpoint's changes were taken:
    those the store does not hold yet), and every loaded state-tree bucket except ``buckets`` (the
    buckets rehashed since then; by default, those of ``keep``). Returns (records, buckets)
    dropped. They are fetched again on next use and checked against the tree's bucket hash, which
    is the checkpoint's for a bucket none of whose keys changed since.

    Call with the state's lock held and no block half-built."""
    tree = st.tree
    if not isinstance(tree, LazyStateTree):  # a state held whole: nothing can be fetched again
        return 0, 0
    keep_maps: dict[str, list[Any]] = {kind: [] for kind in EVICTED_MAPS}
    opened = st.open_orders_built()
    if opened is not None:  # the open orders stay (the index was built from them, or they were placed since)
        keep_maps["o"] += opened.open
    depth = tree.depth
    held: set[int] = set()
    split = _map_keys()
    if buckets is not None and split is not None:  # the kernel parses what the loop below would
        got, left = split(keep, "".join(keep_maps))
        for kind, keys in got.items():
            keep_maps[kind] += keys
        keep = left
    for key in keep:
        if buckets is None:
            held.add(bucket_index(key, depth))
        kind = key[0]
        if kind in keep_maps and key[1:2] == "/":  # keys the state itself changed: each one its map can hold
            keep_maps[kind].append(map_key(kind, key[2:]))
    dropped = 0
    for kind, name in EVICTED_MAPS.items():
        recs = getattr(st, name)
        if isinstance(recs, LazyRecords):
            dropped += recs.evict(keep_maps[kind])
    cp = checkpoint_of(st)
    if cp is not None:
        cp.moved_to(height)
    return dropped, tree.evict(held if buckets is None else buckets)
