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
every lot: the node checks them when it loads, and ``crev verify`` from genesis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from crev.core.encoding import decode
from crev.core.factors import FactorRow
from crev.core.statetree import LazyStateTree, bucket_index, bucket_span, entry_leaf_hash
from crev.errors import InvalidBlock
from crev.ledger.block import Header
from crev.ledger.genesis import Genesis
from crev.ledger.invariants import check_lot_tiles
from crev.ledger.records import Account, Device, Retirement, Supply
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
    iterated or measured. Reads and writes of keys it holds cost what a dict's do."""

    __slots__ = ("_complete", "_fetch", "_fetch_all", "_gone")

    def __init__(self, fetch: Callable[[K], V | None],
                 fetch_all: Callable[[Callable[[K], bool]], Iterable[tuple[K, V]]]) -> None:
        super().__init__()
        self._fetch = fetch
        self._fetch_all = fetch_all
        self._gone: set[K] = set()
        self._complete = False

    def _miss(self, k: K) -> V | None:
        if self._complete or k in self._gone:
            return None
        v = self._fetch(k)
        if v is not None:
            dict.__setitem__(self, k, v)
        return v

    def complete(self) -> None:
        """Fetch every record of this kind (once)."""
        if not self._complete:
            held = self._held
            for k, v in self._fetch_all(held):
                dict.__setitem__(self, k, v)
            self._complete = True

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


def _records(cp: Checkpoint, kind: str) -> LazyRecords[Any, Any]:
    prefix = f"{kind}/"
    height = cp.height

    def load(key: str, value: bytes) -> Any:
        rec = decode_entry(key, value)
        _check_record(kind, key, rec, height)
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

    return LazyRecords(fetch, fetch_all)


def lazy_state(genesis: Genesis, store: Store, head: Header, packed: bytes) -> State | None:
    """The state at checkpoint block ``head`` read lazily from ``store``, or None if ``packed``
    (the bucket hashes stored with the checkpoint) does not recompute ``head.state_root``: they
    are then not to be trusted, and the caller loads the snapshot in full instead (which checks
    the entries themselves against the header)."""
    params = genesis.params
    depth = params.state_tree_depth
    height = head.height

    def wrong_bucket(b: int, keys: list[str]) -> Exception:
        shown = ", ".join(repr(k) for k in keys[:3]) + (", …" if len(keys) > 3 else "")
        return InvalidBlock("state", f"state bucket {b} as stored ({len(keys)} entries: {shown}) does not hash to "
                                     f"the bucket hash that block {height}'s signed state root commits to: the "
                                     f"database was changed after the checkpoint was written; {REFUSE}")

    def fetch(b: int) -> list[tuple[str, bytes]]:
        return store.state_span(*bucket_span(b, depth))

    try:
        tree = LazyStateTree(depth, packed, fetch, wrong_bucket)
    except ValueError:
        return None
    if tree.root() != head.state_root:
        return None
    cp = Checkpoint(store, tree, height)
    st = State(genesis.chain_id, params, genesis.hash)
    st.operator_id = genesis.operator_id
    st.sequencer_key = genesis.sequencer_public_key
    st.discard_changes()
    st.tree = tree
    st.accounts = _records(cp, "a")
    st.devices = _records(cp, "d")
    st.lots = _records(cp, "l")
    st.readings = _records(cp, "r")
    st.retirements = _records(cp, "t")
    st.markets = _records(cp, "m")
    st.orders = _records(cp, "o")
    st.offer_policies = _records(cp, "p")
    st.standing_bids = _records(cp, "b")
    st.tallies = _records(cp, "v")
    st.controls = _records(cp, "c")
    st.delegates = _records(cp, "k")
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
    st.last_block_hash = head.hash
    st.last_time = head.time
    return st
