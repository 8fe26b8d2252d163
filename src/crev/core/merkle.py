"""Merkle trees over SHA-256 in the RFC 6962 (Certificate Transparency) shape.

leaf hash = SHA-256(0x00 ‖ data), node hash = SHA-256(0x01 ‖ left ‖ right). A tree of n leaves
splits at the largest power of two below n, so no leaf is duplicated (no CVE-2012-2459 ambiguity).
The root of zero leaves is SHA-256 of the empty string. CometBFT builds its transaction root the
same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    level = list(hashes)
    # Bottom-up pairing gives the same tree as the recursive RFC 6962 split: an odd node at the
    # end of a level is promoted unchanged to the next level.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def root(items: Sequence[bytes]) -> bytes:
    """Root over raw leaf data."""
    return root_of_leaf_hashes([leaf_hash(x) for x in items])


def proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf ``index`` among leaf hashes ``hashes``: siblings from the leaf up."""
    if not 0 <= index < len(hashes):
        raise IndexError("leaf index out of range")
    path: list[bytes] = []
    level = list(hashes)
    i = index
    while len(level) > 1:
        sib = i ^ 1
        if sib < len(level):
            path.append(level[sib])
        nxt = [node_hash(level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        i //= 2
    return path


def verify_proof(leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes) -> bool:
    """Check that leaf hash ``leaf`` sits at ``index`` of a ``size``-leaf tree with ``expected_root``."""
    if not 0 <= index < size:
        return False
    h = leaf
    i, n = index, size
    it = iter(path)
    try:
        while n > 1:
            if i % 2 == 1:
                h = node_hash(next(it), h)
            elif i + 1 < n:
                h = node_hash(h, next(it))
            # else: the last odd node is promoted unchanged
            i //= 2
            n = (n + 1) // 2
    except StopIteration:
        return False
    if next(it, None) is not None:
        return False
    return h == expected_root
