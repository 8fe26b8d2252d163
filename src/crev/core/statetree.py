"""The state commitment: a fixed-depth bucketed Merkle tree over key → value.

Every state entry (key: text, value: canonical bytes) has a *leaf hash*
``SHA-256(0x00 ‖ u16(len key) ‖ key ‖ value)``. Keys fall into one of ``2**depth`` buckets by the
first ``depth`` bits of SHA-256(key). A bucket's hash is ``SHA-256(0x02 ‖ leaf hashes sorted by
key)`` (an empty bucket hashes to SHA-256(0x02)). The state root is the root of a complete binary
tree over the bucket hashes with ``node = SHA-256(0x01 ‖ left ‖ right)``.

Updating k keys costs k leaf hashes, one hash per dirty bucket and at most ``depth`` node hashes
per dirty bucket, whatever the size of the state. A proof of one key is its bucket's sorted
(key, leaf hash) list plus ``depth`` sibling hashes; it proves presence *and* absence.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_DEPTH = 16
_EMPTY_BUCKET = hashlib.sha256(b"\x02").digest()


def entry_leaf_hash(key: str, value: bytes) -> bytes:
    k = key.encode()
    return hashlib.sha256(b"\x00" + struct.pack(">H", len(k)) + k + value).digest()


def bucket_index(key: str, depth: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") >> (32 - depth)


def bucket_hash(sorted_leaves: Iterable[bytes]) -> bytes:
    return hashlib.sha256(b"\x02" + b"".join(sorted_leaves)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


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
    """Incrementally maintained commitment to a key → bytes mapping."""

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        if not 1 <= depth <= 24:
            raise ValueError("depth must be 1..24")
        self.depth = depth
        self._buckets: dict[int, dict[str, bytes]] = {}
        self._dirty: set[int] = set()
        # levels[0] = bucket hashes (sparse), levels[depth] = {0: root}; missing = empty subtree
        self._levels: list[dict[int, bytes]] = [{} for _ in range(depth + 1)]
        self._empty: list[bytes] = [_EMPTY_BUCKET]
        for _ in range(depth):
            self._empty.append(_node(self._empty[-1], self._empty[-1]))

    def set(self, key: str, value: bytes) -> None:
        b = bucket_index(key, self.depth)
        self._buckets.setdefault(b, {})[key] = entry_leaf_hash(key, value)
        self._dirty.add(b)

    def delete(self, key: str) -> None:
        b = bucket_index(key, self.depth)
        bucket = self._buckets.get(b)
        if bucket is not None and bucket.pop(key, None) is not None:
            self._dirty.add(b)

    def root(self) -> bytes:
        if self._dirty:
            self._recompute()
        return self._levels[self.depth].get(0, self._empty[self.depth])

    def _bucket_hash(self, b: int) -> bytes:
        bucket = self._buckets.get(b)
        if not bucket:
            return _EMPTY_BUCKET
        return bucket_hash(bucket[k] for k in sorted(bucket))

    def _recompute(self) -> None:
        dirty = self._dirty
        self._dirty = set()
        lv0 = self._levels[0]
        for b in dirty:
            h = self._bucket_hash(b)
            if h == _EMPTY_BUCKET:
                lv0.pop(b, None)
            else:
                lv0[b] = h
        for d in range(self.depth):
            below, above, empty = self._levels[d], self._levels[d + 1], self._empty[d]
            parents = {i >> 1 for i in dirty}
            for p in parents:
                left = below.get(2 * p, empty)
                right = below.get(2 * p + 1, empty)
                if left == empty and right == empty:
                    above.pop(p, None)
                else:
                    above[p] = _node(left, right)
            dirty = parents

    def prove(self, key: str, value: bytes | None) -> StateProof:
        self.root()
        b = bucket_index(key, self.depth)
        bucket = self._buckets.get(b, {})
        siblings: list[bytes] = []
        i = b
        for d in range(self.depth):
            siblings.append(self._levels[d].get(i ^ 1, self._empty[d]))
            i >>= 1
        return StateProof(
            key=key,
            value=value,
            depth=self.depth,
            bucket=b,
            bucket_entries=tuple((k, bucket[k]) for k in sorted(bucket)),
            siblings=tuple(siblings),
        )


def root_of(items: Sequence[tuple[str, bytes]], depth: int = DEFAULT_DEPTH) -> bytes:
    """State root of a whole mapping, computed from scratch (for tests and the auditor)."""
    t = StateTree(depth)
    for k, v in items:
        t.set(k, v)
    return t.root()
