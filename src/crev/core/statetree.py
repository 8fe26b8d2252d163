"""The state commitment: a fixed-depth bucketed Merkle tree over key → value.

Every state entry (key: text, value: canonical bytes) has a *leaf hash*
``SHA-256(0x00 ‖ u16(len key) ‖ key ‖ value)``. Keys fall into one of ``2**depth`` buckets by the
first ``depth`` bits of SHA-256(key). A bucket's hash is ``SHA-256(0x02 ‖ leaf hashes sorted by
key)`` (an empty bucket hashes to SHA-256(0x02)). The state root is the root of a complete binary
tree over the bucket hashes with ``node = SHA-256(0x01 ‖ left ‖ right)``.

Updating k keys costs k leaf hashes, one hash per dirty bucket and at most ``depth`` node hashes
per dirty bucket, whatever the size of the state. A proof of one key is its bucket's sorted
(key, leaf hash) list plus ``depth`` sibling hashes; it proves presence *and* absence.

The ``2**depth`` bucket hashes (level 0) can be packed into one string (``pack_bucket_hashes``,
32 bytes each, empty buckets included) and a ``LazyStateTree`` built on them: it recomputes the
levels above (``2**depth − 1`` hashes) and fetches a bucket's entries only when it is first needed,
checking them against the packed bucket hash. Whoever trusts the root therefore trusts every bucket
it loads, once the recomputed root equals a root it trusts (a signed block header's).
"""

from __future__ import annotations

import builtins
import hashlib
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

DEFAULT_DEPTH = 16
HASH_SIZE = 32
_EMPTY_BUCKET = hashlib.sha256(b"\x02").digest()


def entry_leaf_hash(key: str, value: bytes) -> bytes:
    k = key.encode()
    return hashlib.sha256(b"\x00" + struct.pack(">H", len(k)) + k + value).digest()


def key_hash32(key: str) -> int:
    """The first 32 bits of SHA-256(key), big-endian: a key's bucket at any depth is this shifted
    right by ``32 − depth`` (storage keeps it beside each entry to find a bucket's entries)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")


def bucket_index(key: str, depth: int) -> int:
    return key_hash32(key) >> (32 - depth)


def bucket_span(bucket: int, depth: int) -> tuple[int, int]:
    """The ``key_hash32`` values [low, high) of the keys in ``bucket``."""
    shift = 32 - depth
    return bucket << shift, (bucket + 1) << shift


def bucket_hash(sorted_leaves: Iterable[bytes]) -> bytes:
    return hashlib.sha256(b"\x02" + b"".join(sorted_leaves)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class TreeKernel(Protocol):
    """What ``crev_native`` offers for the tree (native/crev_native.pyi)."""

    def merkle_parents(self, level: bytes, /) -> bytes: ...

    def state_leaf(self, key: str, value: bytes, /) -> tuple[int, bytes]: ...

    def merkle_update(self, levels: list[bytearray], dirty: list[int], /) -> None: ...

    def bucket_pack(self, rows: list[tuple[str, bytes]], /) -> tuple[bytes, bytes] | None: ...

    def bucket_fold(self, held: bytes, changes: dict[str, bytes | None], /) -> tuple[bytes, bytes]: ...


class SetManyKernel(Protocol):
    """``crev_native.tree_set_many`` (native/crev_native.pyi), which a kernel built before it lacks."""

    def __call__(self, held: dict[int, bytes] | None, pending: dict[int, dict[str, bytes | None]], dirty: set[int],
                 entries: list[tuple[str, bytes | None]], depth: int, /) -> list[tuple[str, bytes | None]]: ...


class FoldManyKernel(Protocol):
    """``crev_native.bucket_fold_many`` (native/crev_native.pyi), which a kernel built before it lacks."""

    def __call__(self, held: dict[int, bytes], pending: dict[int, dict[str, bytes | None]], dirty: list[int],
                 level0: bytearray, /) -> None: ...


def _installed_tree_kernel() -> TreeKernel | None:
    try:
        import crev_native  # the compiled kernel, where `pip install ./native` built it
    except ImportError:
        return None
    # a kernel built before the tree functions existed lacks some: the tree then uses none of them
    ok = all(hasattr(crev_native, f) for f in ("merkle_parents", "state_leaf", "merkle_update", "bucket_pack",
                                                "bucket_fold"))
    return cast(TreeKernel, crev_native) if ok else None


#: Entries, buckets or records per call of the kernel's batched work (``set_many``, the lazy tree's
#: ``_recompute``, ``State.seal``'s records): each call holds the interpreter lock throughout, and
#: a node's other threads (the check stage, the verifiers handing back results) wait for it, so a
#: block's thousands go in calls of a fraction of a millisecond each.
KERNEL_CHUNK = 256
T = TypeVar("T")


def kernel_chunks(items: list[T]) -> Iterator[list[T]]:
    """``items`` in consecutive slices of ``KERNEL_CHUNK``, one a call of the kernel."""
    for i in range(0, len(items), KERNEL_CHUNK):
        yield items[i:i + KERNEL_CHUNK]

TREE_KERNEL = _installed_tree_kernel()
_tree_kernel = TREE_KERNEL
_SET_MANY: SetManyKernel | None = getattr(TREE_KERNEL, "tree_set_many", None)
_FOLD_MANY: FoldManyKernel | None = getattr(TREE_KERNEL, "bucket_fold_many", None)


def use_tree_kernel(enabled: bool) -> bool:
    """Hash leaves, rebuild and update levels and pack held buckets with the kernel (True, where
    installed) or with the reference (False) from now on. Returns whether the kernel is in use."""
    global _tree_kernel, _leaf
    _tree_kernel = TREE_KERNEL if enabled else None
    _leaf = _leaf_reference if _tree_kernel is None else _tree_kernel.state_leaf
    return _tree_kernel is not None


def _leaf_reference(key: str, value: bytes) -> tuple[int, bytes]:
    return key_hash32(key), entry_leaf_hash(key, value)


# (key_hash32(key), entry_leaf_hash(key, value)): what a changed entry needs, in one kernel call
_leaf: Callable[[str, bytes], tuple[int, bytes]] = _leaf_reference if TREE_KERNEL is None else TREE_KERNEL.state_leaf


def parents_reference(level: bytes | bytearray, empty_pair: bytes = b"", empty_parent: bytes = b"") -> bytearray:
    """The level above ``level``: ``SHA-256(0x01 ‖ left ‖ right)`` of each pair of 32-byte hashes, in
    order. A pair equal to ``empty_pair`` (two empty subtrees) takes ``empty_parent`` unhashed."""
    sha = hashlib.sha256
    step = 2 * HASH_SIZE
    return bytearray().join([empty_parent if two == empty_pair else sha(b"\x01" + two).digest()
                             for two in (level[o:o + step] for o in range(0, len(level), step))])


def parents(level: bytes | bytearray, empty_pair: bytes = b"", empty_parent: bytes = b"") -> bytearray:
    """``parents_reference``, by the kernel where it is installed and in use (the same bytes: the
    kernel hashes every pair, and an empty pair's parent is by definition its hash)."""
    k = _tree_kernel
    if k is None:
        return parents_reference(level, empty_pair, empty_parent)
    return bytearray(k.merkle_parents(bytes(level)))


def update_levels_reference(levels: list[bytearray], dirty: Iterable[int]) -> None:
    """Rehash, level by level, every ancestor of the buckets ``dirty`` in ``levels`` (level 0
    already holds their new hashes; ``len(levels) − 1`` is the depth)."""
    sha = hashlib.sha256
    for d in range(len(levels) - 1):
        below, above = levels[d], levels[d + 1]
        up = {i >> 1 for i in dirty}
        for p in up:
            o = p * 2 * HASH_SIZE
            above[p * HASH_SIZE:(p + 1) * HASH_SIZE] = sha(b"\x01" + below[o:o + 2 * HASH_SIZE]).digest()
        dirty = up


def update_levels(levels: list[bytearray], dirty: Collection[int]) -> None:
    """``update_levels_reference``, by the kernel where it is installed and in use."""
    k = _tree_kernel
    if k is None:
        update_levels_reference(levels, dirty)
    else:
        k.merkle_update(levels, list(dirty))


@dataclass(frozen=True)
class StateProof:
    """Proof that ``key`` has ``value`` (or is absent, value None) under ``root``."""

    key: str
    value: bytes | None
    depth: int
    bucket: int
    bucket_entries: tuple[tuple[str, bytes], ...]  # (key, leaf hash), sorted by key
    siblings: tuple[bytes, ...]  # from the bucket level up to just below the root

    def verify(self, root: bytes) -> bool:
        if bucket_index(self.key, self.depth) != self.bucket:
            return False
        keys = [k for k, _ in self.bucket_entries]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            return False
        leaves = dict(self.bucket_entries)
        if self.value is None:
            if self.key in leaves:
                return False
        elif leaves.get(self.key) != entry_leaf_hash(self.key, self.value):
            return False
        h = bucket_hash(h for _, h in self.bucket_entries)
        i = self.bucket
        if len(self.siblings) != self.depth:
            return False
        for sib in self.siblings:
            h = _node(sib, h) if i & 1 else _node(h, sib)
            i >>= 1
        return h == root


class StateTree:
    """Incrementally maintained commitment to a key → bytes mapping.

    The tree's levels are dense: level ``d`` is one ``bytearray`` of ``2**(depth − d)`` hashes, 32
    bytes each (empty subtrees hold their empty hash), so the levels cost ``2**(depth + 1) × 32``
    bytes (4 MiB at depth 16, 256 MiB at depth 22) whatever the state holds. A bucket's entries
    (key → leaf hash) are kept in ``_buckets``; a ``LazyStateTree`` may drop unchanged ones again."""

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        if not 1 <= depth <= 24:
            raise ValueError("depth must be 1..24")
        self.depth = depth
        self._buckets: dict[int, dict[str, bytes]] = {}
        self._dirty: set[int] = set()
        self._touched: set[int] | None = None  # buckets rehashed since ``take_touched`` (None: not kept)
        self._empty: list[bytes] = [_EMPTY_BUCKET]
        for _ in range(depth):
            self._empty.append(_node(self._empty[-1], self._empty[-1]))
        # levels[0] = bucket hashes, levels[depth] = the root; 32 bytes a node, dense; allocated when
        # first used (a State made only to receive a LazyStateTree never pays for them)
        self._levels: list[bytearray] = []

    def _level(self, d: int) -> bytearray:
        if not self._levels:
            self._levels = [bytearray(self._empty[i]) * (1 << (self.depth - i)) for i in range(self.depth + 1)]
        return self._levels[d]

    def set(self, key: str, value: bytes) -> None:
        kh, leaf = _leaf(key, value)
        b = kh >> (32 - self.depth)
        self._buckets.setdefault(b, {})[key] = leaf
        self._dirty.add(b)

    def set_many(self, entries: list[tuple[str, bytes | None]]) -> None:
        """``set`` each (key, value) of ``entries``, or ``delete`` the key where the value is None.
        The keys are distinct. The kernel sets what it can (``tree_set_many``, ``KERNEL_CHUNK``
        entries a call)."""
        k = _SET_MANY if _tree_kernel is not None else None
        left = entries
        if k is not None:  # in calls short enough not to hold the interpreter lock for long
            held, pending = self._held_buckets(), self._pending()
            left = [e for part in kernel_chunks(entries) for e in k(held, pending, self._dirty, part, self.depth)]
        for key, value in left:
            if value is None:
                self.delete(key)
            else:
                self.set(key, value)

    def _held_buckets(self) -> dict[int, bytes] | None:
        """The loaded buckets, where not every bucket is (``set_many`` leaves the others to ``set``)."""
        return None

    def _pending(self) -> dict[int, dict[str, bytes | None]]:
        """Where ``set`` puts a leaf: bucket → key → leaf hash."""
        return self._buckets  # type: ignore[return-value]

    def delete(self, key: str) -> None:
        b = bucket_index(key, self.depth)
        bucket = self._buckets.get(b)
        if bucket is not None and bucket.pop(key, None) is not None:
            self._dirty.add(b)

    def root(self) -> bytes:
        if self._dirty:
            self._recompute()
        return bytes(self._level(self.depth))

    def _bucket_hash(self, b: int) -> bytes:
        bucket = self._buckets.get(b)
        if not bucket:
            return _EMPTY_BUCKET
        return bucket_hash(bucket[k] for k in sorted(bucket))

    def _bucket(self, b: int) -> dict[str, bytes]:
        """Bucket ``b``'s (key → leaf hash) entries, for reading only."""
        return self._buckets.get(b, {})

    def bucket_hash_at(self, b: int) -> bytes:
        """Bucket ``b``'s hash (level 0) as of the last ``root()``."""
        return bytes(self._level(0)[b * HASH_SIZE:(b + 1) * HASH_SIZE])

    def take_touched(self) -> builtins.set[int]:
        """The buckets whose hash was recomputed since the last call (every bucket a changed key
        falls in), and start counting again. Kept only once asked for: the first call returns every
        bucket, since nothing was counted before."""
        self.root()
        touched, self._touched = self._touched, set()
        return set(range(1 << self.depth)) if touched is None else touched

    def touched(self) -> builtins.set[int]:
        """The buckets rehashed since the last ``take_touched`` (after recomputing), without
        starting again."""
        self.root()
        return set() if self._touched is None else set(self._touched)

    def bucket_hashes(self) -> dict[int, bytes]:
        """A copy of the non-empty buckets' hashes (level 0) as of now: what ``pack_bucket_hashes``
        turns into the string a ``LazyStateTree`` starts from. Reads all ``2**depth`` of them:
        ``packed`` gives parts without building the dict."""
        self.root()
        lv0, empty = self._level(0), _EMPTY_BUCKET
        out: dict[int, bytes] = {}
        for i in range(1 << self.depth):
            h = bytes(lv0[i * HASH_SIZE:(i + 1) * HASH_SIZE])
            if h != empty:
                out[i] = h
        return out

    def packed(self, first: int = 0, count: int | None = None) -> bytes:
        """The bucket hashes as ``pack_bucket_hashes`` packs them (every bucket, or only buckets
        [first, first + count)), read straight from level 0."""
        self.root()
        end = 1 << self.depth if count is None else min(first + count, 1 << self.depth)
        return bytes(self._level(0)[first * HASH_SIZE:end * HASH_SIZE])

    def _recompute(self) -> None:
        dirty = self._dirty
        self._dirty = set()
        if self._touched is not None:
            self._touched |= dirty
        lv0 = self._level(0)
        for b in dirty:
            lv0[b * HASH_SIZE:(b + 1) * HASH_SIZE] = self._bucket_hash(b)
        update_levels(self._levels, dirty)

    def prove(self, key: str, value: bytes | None) -> StateProof:
        self.root()
        b = bucket_index(key, self.depth)
        bucket = self._bucket(b)
        siblings: list[bytes] = []
        i = b
        for d in range(self.depth):
            j = (i ^ 1) * HASH_SIZE
            siblings.append(bytes(self._levels[d][j:j + HASH_SIZE]))
            i >>= 1
        return StateProof(
            key=key,
            value=value,
            depth=self.depth,
            bucket=b,
            bucket_entries=tuple((k, bucket[k]) for k in sorted(bucket)),
            siblings=tuple(siblings),
        )


def pack_bucket_hashes(depth: int, level0: dict[int, bytes], first: int = 0, count: int | None = None) -> bytes:
    """Every bucket's hash in bucket order, 32 bytes each (empty buckets as SHA-256(0x02)):
    ``2**depth × 32`` bytes (2 MiB at depth 16); or only buckets [first, first + count)."""
    empty = _EMPTY_BUCKET
    get = level0.get
    end = 1 << depth if count is None else min(first + count, 1 << depth)
    return b"".join([get(i, empty) for i in range(first, end)])


@dataclass(frozen=True)
class BucketHashes:
    """A tree's bucket hashes (``StateTree.bucket_hashes``) not packed yet: storage packs only the
    parts it writes."""

    depth: int
    level0: dict[int, bytes]

    def packed(self, first: int = 0, count: int | None = None) -> bytes:
        return pack_bucket_hashes(self.depth, self.level0, first, count)


@dataclass(frozen=True)
class BucketHashRows:
    """Some rows of a tree's packed bucket hashes, copied at one moment: row ``c`` holds buckets
    [c × size, (c + 1) × size). What a checkpoint needs when only those rows changed since the one
    before: O(changed rows), not O(2**depth)."""

    depth: int
    size: int
    rows: dict[int, bytes]

    def packed(self, first: int = 0, count: int | None = None) -> bytes:
        """Row ``first // size`` (``count`` must be ``size``); KeyError if it was not copied."""
        if count != self.size or first % self.size:
            raise KeyError(f"only whole rows of {self.size} buckets are held")
        return self.rows[first // self.size]


class BucketMismatch(ValueError):
    """A bucket's entries, as fetched, do not hash to the bucket hash the tree was built on."""

    def __init__(self, bucket: int, keys: list[str]) -> None:
        self.bucket = bucket
        self.keys = keys
        super().__init__(f"bucket {bucket}'s {len(keys)} entries do not hash to its committed bucket hash")


_SEP = "\x00"  # between the keys of a held bucket, unless one of them holds it (a factor row's free-text key may)
_NUL = b"\x00"
_PREFIXED = 1 << 31  # in a held bucket's second word: its keys are length-prefixed, not NUL-separated
# A held bucket is at least this long, so that CPython serves it from malloc, not from its
# small-object allocator (requests up to 512 bytes, a bytes object's header included): see below.
_HELD_MIN = 512


# What a reader of many buckets gives (node/spans.py): the buckets read; each one's (held form,
# hash), or None for the reference to load it; the stored values of the keys asked for, as found
SpansRead = tuple[list[int], list[tuple[bytes, bytes] | None], dict[str, bytes]]
# ``fetch_many(keys, held, reads)`` → the buckets of ``keys`` not in ``held`` and the values of
# ``reads``, or None: no such reader
FetchMany = Callable[[list[str], dict[int, bytes], list[str]], SpansRead | None]


class LazyStateTree(StateTree):
    """A state tree built from packed bucket hashes (``pack_bucket_hashes``) whose buckets' entries
    are fetched only when first needed, by ``fetch(bucket) → (key, value) pairs``, and checked:
    their bucket hash must equal the one the tree holds for the bucket (else ``mismatch(bucket,
    keys)`` is raised, ``BucketMismatch`` by default). Compare ``root()`` with a trusted root before
    trusting anything fetched; after that, a bucket that loads is authentic. Changes work as in
    ``StateTree`` (a changed bucket is loaded first).

    A loaded bucket is held as one ``bytes`` object whatever its size (``_pack``: its leaf hashes
    and its sorted keys, padded so that it never comes from CPython's small-object allocator).
    Changes wait in a small map until the bucket is rehashed (``root()``), which folds them in.
    Holding each entry as its own key and hash objects instead cost two small objects per entry in
    every bucket a block touched, held until the next checkpoint: as buckets filled with history,
    that peak grew with it, and Python's allocator kept the arenas it had needed (RSS grew 439 B a
    reading at depth 12, docs/benchmarks.md).

    ``evict(keep)`` drops the loaded entries of every bucket but ``keep``: the caller promises that
    the store ``fetch`` reads from now holds exactly those buckets' entries as the tree last hashed
    them (a checkpoint written after their last change), so they are fetched and checked against
    that same bucket hash when next needed."""

    def __init__(self, depth: int, packed: bytes, fetch: Callable[[int], Iterable[tuple[str, bytes]]],
                 mismatch: Callable[[int, list[str]], Exception] = BucketMismatch,
                 fetch_many: FetchMany | None = None) -> None:
        super().__init__(depth)
        self._fetch_many = fetch_many
        if len(packed) != HASH_SIZE << depth:
            raise ValueError(f"packed bucket hashes: {len(packed)} bytes, depth {depth} needs {HASH_SIZE << depth}")
        self._fetch = fetch
        self._mismatch = mismatch
        self.fetches = 0  # buckets fetched (and checked) so far
        self._held: dict[int, bytes] = {}  # bucket → its entries, packed (``_pack``)
        self._changes: dict[int, dict[str, bytes | None]] = {}  # bucket → key → new leaf (None: deleted)
        self._touched = set()  # built from stored bucket hashes: none differs from them yet
        level = bytearray(packed)
        self._levels = [level]
        for d in range(depth):  # 2**depth − 1 hashes (the reference takes an all-empty pair's parent from the table)
            level = parents(level, self._empty[d] * 2, self._empty[d + 1])
            self._levels.append(level)

    def committed_bucket_hash(self, b: int) -> bytes:
        """Bucket ``b``'s hash as the tree holds it: for a bucket not loaded, the packed one the tree
        was built on, or the one it had when it was last evicted."""
        return self.bucket_hash_at(b)

    def loaded(self, b: int) -> bool:
        return b in self._held

    def held_buckets(self) -> dict[int, bytes]:
        """The loaded buckets (bucket → held form), for reading only: a reader on another thread
        skips them (``Checkpoint.read_early``), and ``hold_read`` takes what it read."""
        return self._held

    def loaded_buckets(self) -> int:
        return len(self._held)

    def load(self, b: int) -> list[tuple[str, bytes]] | None:
        """Fetch and check bucket ``b`` unless it is loaded already. Returns the fetched (key,
        value) pairs, or None if the bucket was loaded before."""
        if b in self._held:
            return None
        rows = list(self._fetch(b))
        self.fetches += 1
        kernel = _tree_kernel
        if kernel is not None:
            try:
                got = kernel.bucket_pack(rows)
            except (TypeError, ValueError):  # a row no state entry can be: refused below, as by the reference
                got = None
            if got is not None and got[1] == self.committed_bucket_hash(b):
                self._held[b] = got[0]
                return rows
            # else refused below, by the reference, which names the keys
        try:
            leaves = {k: entry_leaf_hash(k, v) for k, v in rows}
        except (struct.error, TypeError, ValueError, AttributeError):  # a key over 65,535 bytes, or not text
            raise self._mismatch(b, sorted(str(k) for k, _ in rows)) from None
        keys = sorted(leaves)
        if len(leaves) != len(rows) or bucket_hash(leaves[k] for k in keys) != self.committed_bucket_hash(b):
            raise self._mismatch(b, keys)
        self._held[b] = _pack(keys, leaves)
        return rows

    def load_keys(self, keys: Collection[str], reads: Collection[str] = ()) -> dict[str, bytes]:
        """Load the buckets of ``keys`` that are not loaded yet, all in one call of ``fetch_many``
        where it answers (node/spans.py: the kernel reads them with the interpreter lock
        released), each held form checked against the bucket's hash as ``load`` checks fetched
        rows; a bucket it leaves to the reference, or whose hash differs, goes through ``load``,
        which refuses it naming its keys. Returns stored values of ``reads`` as read (from the
        buckets fetched; ``fetch_many`` also reads those in loaded buckets), for the caller to
        check against their leaves."""
        if not keys:
            return {}
        held = self._held
        got = None if self._fetch_many is None else self._fetch_many(list(keys), held, list(reads))
        if got is None:  # the reference: one fetch a bucket
            depth = self.depth
            ask = set(reads)
            found: dict[str, bytes] = {}
            for b in sorted({bucket_index(k, depth) for k in keys} - held.keys()):
                found.update((k, v) for k, v in self.load(b) or () if k in ask)
            return found
        buckets, packed, found = got
        for b in self.hold_read(buckets, packed):
            self.load(b)
        return found

    def hold_read(self, buckets: list[int], packed: list[tuple[bytes, bytes] | None]) -> list[int]:
        """Hold each of ``buckets`` not loaded yet whose read form (``fetch_many``'s) hashes to the
        bucket's hash now. Returns the others (not answered, or changed since they were read),
        which only ``load`` may load: it reads them again and refuses rows that still differ."""
        held = self._held
        left: list[int] = []
        for b, item in zip(buckets, packed, strict=True):
            if b in held:
                continue
            if item is not None and item[1] == self.committed_bucket_hash(b):
                held[b] = item[0]
                self.fetches += 1
            else:
                left.append(b)
        return left

    def leaf(self, key: str) -> bytes | None:
        """The leaf hash of ``key`` as the tree holds it now (None: absent), loading its bucket."""
        b = bucket_index(key, self.depth)
        self.load(b)
        changes = self._changes.get(b)
        if changes is not None and key in changes:
            return changes[key]
        held = self._held[b]
        word = int.from_bytes(held[4:8], "big")
        if word & _PREFIXED:  # a key with NUL in this bucket: read it whole (never seen in practice)
            return _unpack(held).get(key)
        if _SEP in key:  # the bucket's keys hold no NUL, so not this key; and it would match across keys
            return None
        start = 8 + int.from_bytes(held[:4], "big") * HASH_SIZE  # the keys, after the leaf hashes
        at = held.find(_NUL + key.encode() + _NUL, start, start + word)
        if at < 0:
            return None
        i = 8 + held.count(_NUL, start, at) * HASH_SIZE
        return held[i:i + HASH_SIZE]

    def _bucket(self, b: int) -> dict[str, bytes]:
        self.load(b)
        self._fold(b)
        return _unpack(self._held[b])

    def _recompute(self) -> None:
        """As ``StateTree._recompute``; the kernel folds and hashes the dirty buckets
        (``bucket_fold_many``: ``_bucket_hash`` of each, ``KERNEL_CHUNK`` buckets a call)."""
        k = _FOLD_MANY if _tree_kernel is not None else None
        if k is None:
            super()._recompute()
            return
        dirty = self._dirty
        self._dirty = set()
        if self._touched is not None:
            self._touched |= dirty
        level0 = self._level(0)
        for part in kernel_chunks(list(dirty)):  # short calls: see ``set_many``
            k(self._held, self._changes, part, level0)
        update_levels(self._levels, dirty)

    def _bucket_hash(self, b: int) -> bytes:
        folded = self._fold(b)
        if folded is not None:
            return folded
        held = self._held[b]
        return bucket_hash((held[8:8 + int.from_bytes(held[:4], "big") * HASH_SIZE],))

    def _fold(self, b: int) -> bytes | None:
        """Fold bucket ``b``'s waiting changes into its held form. Returns the bucket's new hash
        where the kernel folded it (it hashes what it packs), else None."""
        changes = self._changes.pop(b, None)
        if not changes:
            return None
        kernel = _tree_kernel
        if kernel is not None:
            self._held[b], folded = kernel.bucket_fold(self._held[b], changes)
            return folded
        entries = _unpack(self._held[b])
        for k, leaf in changes.items():
            if leaf is None:
                entries.pop(k, None)
            else:
                entries[k] = leaf
        self._held[b] = _pack(sorted(entries), entries)
        return None

    def set(self, key: str, value: bytes) -> None:
        kh, leaf = _leaf(key, value)
        b = kh >> (32 - self.depth)
        self.load(b)
        self._changes.setdefault(b, {})[key] = leaf
        self._dirty.add(b)

    def _held_buckets(self) -> dict[int, bytes] | None:
        return self._held

    def _pending(self) -> dict[int, dict[str, bytes | None]]:
        return self._changes

    def delete(self, key: str) -> None:
        if self.leaf(key) is not None:
            b = bucket_index(key, self.depth)
            self._changes.setdefault(b, {})[key] = None
            self._dirty.add(b)

    def evict(self, keep: Iterable[int]) -> int:
        """Drop the loaded entries of every bucket not in ``keep`` (after recomputing the levels, so
        each dropped bucket's hash is the one its entries hash to). Returns how many were dropped."""
        self.root()
        held = self._held
        kept = {b: held[b] for b in keep if b in held}
        dropped = len(held) - len(kept)
        self._held = kept
        return dropped


def _pack(keys: Sequence[str], leaves: dict[str, bytes]) -> bytes:
    """A held bucket from its sorted keys and their leaf hashes, as one ``bytes``: the count and the
    keys' length (u32 each), the leaf hashes in key order, then the keys in UTF-8, each between
    NULs (so ``find`` locates a whole key), then NULs up to ``_HELD_MIN``. If a key holds a NUL
    itself (a factor row's key is free text), the keys are each prefixed by their length (u16)
    instead and the second word carries ``_PREFIXED``. One object per bucket, and never a small
    one: a node holds the buckets a checkpoint's worth of blocks touched, and small objects of
    sizes that grow with the entries per bucket left CPython's allocator holding more 1 MiB arenas
    at each size (it returns an arena only when all of it is free), where memory from malloc is
    given back after each eviction."""
    encoded = [k.encode() for k in keys]
    joined = _NUL + _NUL.join(encoded) + _NUL if keys else _NUL
    word = len(joined)
    if joined.count(_NUL) != len(keys) + 1:
        joined = b"".join([len(e).to_bytes(2, "big") + e for e in encoded])
        word = len(joined) | _PREFIXED
    head = len(keys).to_bytes(4, "big") + word.to_bytes(4, "big")
    held = head + b"".join([leaves[k] for k in keys]) + joined
    return held + bytes(_HELD_MIN - len(held)) if len(held) < _HELD_MIN else held


def _unpack(held: bytes) -> dict[str, bytes]:
    """A held bucket's entries, key → leaf hash, in key order."""
    n = int.from_bytes(held[:4], "big")
    if not n:
        return {}
    start = 8 + n * HASH_SIZE
    word = int.from_bytes(held[4:8], "big")
    if word & _PREFIXED:
        keys: list[bytes] = []
        at = start
        for _ in range(n):
            size = int.from_bytes(held[at:at + 2], "big")
            keys.append(held[at + 2:at + 2 + size])
            at += 2 + size
    else:
        keys = held[start + 1:start + word - 1].split(_NUL)
    return {k.decode(): held[8 + i * HASH_SIZE:8 + (i + 1) * HASH_SIZE] for i, k in enumerate(keys)}


def root_of(items: Sequence[tuple[str, bytes]], depth: int = DEFAULT_DEPTH) -> bytes:
    """State root of a whole mapping, computed from scratch (for tests and the auditor)."""
    t = StateTree(depth)
    for k, v in items:
        t.set(k, v)
    return t.root()
