"""The kernel's tree levels (``crev_native.merkle_parents``) change speed, never bytes: each level
it builds equals the Python reference's (``statetree.parents_reference``), and a lazily opened
tree built with it has the same levels and root as one built without it."""

from __future__ import annotations

import hashlib
import random

import pytest

from crev.core import statetree
from crev.core.statetree import LazyStateTree, StateTree, parents_reference

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")
if not hasattr(crev_native, "merkle_parents"):
    pytest.skip("the installed crev_native predates merkle_parents: pip install ./native", allow_module_level=True)


def test_one_pair_by_hand() -> None:
    left, right = bytes(range(32)), bytes(range(32, 64))
    assert crev_native.merkle_parents(left + right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert crev_native.merkle_parents(b"") == b""


@pytest.mark.parametrize("pairs", [1, 2, 3, 64, 1000])
def test_random_levels_equal_the_reference(pairs: int) -> None:
    rng = random.Random(pairs)
    level = rng.randbytes(64 * pairs)
    assert crev_native.merkle_parents(level) == bytes(parents_reference(level))


def test_empty_pairs_hash_to_the_empty_table_the_reference_takes_them_from() -> None:
    empty = hashlib.sha256(b"\x02").digest()
    parent = hashlib.sha256(b"\x01" + empty + empty).digest()
    level = empty * 2 + bytes(range(64)) + empty * 2
    assert crev_native.merkle_parents(level) == bytes(parents_reference(level, empty * 2, parent))
    assert crev_native.merkle_parents(level)[:32] == parent


@pytest.mark.parametrize("length", [1, 32, 63, 65])
def test_a_level_not_made_of_whole_pairs_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match=f"level: {length} bytes, not whole pairs"):
        crev_native.merkle_parents(bytes(length))


def test_a_lazy_tree_opened_with_and_without_the_kernel_has_the_same_levels() -> None:
    depth = 10
    plain = StateTree(depth)
    for i in range(3_000):
        plain.set(f"l/dgc-{i % 97}:{i}", i.to_bytes(4, "big"))
    packed = plain.packed()
    fetch = lambda _b: []  # noqa: E731 - never called: no bucket is read
    try:
        assert statetree.use_tree_kernel(True)
        fast = LazyStateTree(depth, packed, fetch)
        statetree.use_tree_kernel(False)
        slow = LazyStateTree(depth, packed, fetch)
    finally:
        statetree.use_tree_kernel(True)
    assert fast._levels == slow._levels
    assert fast.root() == slow.root() == plain.root()


def test_trees_set_through_the_kernel_and_the_reference_have_the_same_buckets_and_roots() -> None:
    """``StateTree.set`` and ``LazyStateTree.set`` take (bucket, leaf hash) from the kernel's
    ``state_leaf`` where it is in use: the same buckets, leaves and roots as the reference's."""
    rng = random.Random(7)
    items = [(f"{rng.choice('adlrtv')}/k{rng.randrange(10**6)}-é", rng.randbytes(rng.randrange(0, 300)))
             for _ in range(2_000)]
    trees = []
    for use in (True, False):
        try:
            statetree.use_tree_kernel(use)
            t = StateTree(8)
            for key, value in items:
                t.set(key, value)
            lazy = LazyStateTree(8, StateTree(8).packed(), lambda _b: [])
            for key, value in items:
                lazy.set(key, value)
            trees.append((t.root(), t._buckets, lazy.root()))
        finally:
            statetree.use_tree_kernel(True)
    (root_k, buckets_k, lazy_k), (root_r, buckets_r, lazy_r) = trees
    assert buckets_k == buckets_r and root_k == root_r == lazy_k == lazy_r
