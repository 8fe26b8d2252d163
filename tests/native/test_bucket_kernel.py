"""The kernel's held buckets and level updates (``crev_native.bucket_pack``, ``bucket_fold``,
``bucket_fold_many``, ``tree_set_many``, ``merkle_update``) change speed, never bytes: each equals the Python reference
(``statetree._pack``/``_unpack``, ``LazyStateTree.load``/``_fold``, ``update_levels_reference``)
on hand-made and random buckets, keys holding NUL or non-ASCII characters among them, and a lazy
tree driven through both ends with the same held bytes and roots."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest

from crev.core import statetree
from crev.core.statetree import (
    HASH_SIZE,
    LazyStateTree,
    StateTree,
    bucket_hash,
    entry_leaf_hash,
    update_levels_reference,
)

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")
if statetree.TREE_KERNEL is None:
    pytest.skip("the installed crev_native predates the tree functions: pip install ./native", allow_module_level=True)


def reference_pack(rows: list[tuple[str, bytes]]) -> tuple[bytes, bytes]:
    leaves = {k: entry_leaf_hash(k, v) for k, v in rows}
    keys = sorted(leaves)
    return statetree._pack(keys, leaves), bucket_hash(leaves[k] for k in keys)


def reference_fold(held: bytes, changes: dict[str, bytes | None]) -> tuple[bytes, bytes]:
    entries = statetree._unpack(held)
    for k, leaf in changes.items():
        if leaf is None:
            entries.pop(k, None)
        else:
            entries[k] = leaf
    keys = sorted(entries)
    return statetree._pack(keys, entries), bucket_hash(entries[k] for k in keys)


def random_key(rng: random.Random) -> str:
    return rng.choice(["l/", "r/", "d/", "f/", "t/"]) + "".join(
        rng.choice("ab-:09éあ\x00" if rng.random() < 0.05 else "ab-:09é") for _ in range(rng.randrange(1, 40)))


def test_one_entry_by_hand() -> None:
    leaf = hashlib.sha256(b"\x00\x00\x03d/x" + b"v").digest()
    held, h = crev_native.bucket_pack([("d/x", b"v")])
    head = (1).to_bytes(4, "big") + (5).to_bytes(4, "big")  # one key; b"\0d/x\0" is 5 bytes
    assert held == (head + leaf + b"\x00d/x\x00").ljust(512, b"\x00")
    assert h == hashlib.sha256(b"\x02" + leaf).digest()


def test_an_empty_bucket_is_a_count_of_zero_and_one_nul() -> None:
    held, h = crev_native.bucket_pack([])
    assert held == ((0).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\x00").ljust(512, b"\x00")
    assert h == hashlib.sha256(b"\x02").digest()
    assert crev_native.bucket_fold(held, {"a/1": None}) == (held, h)  # deleting what is absent changes nothing


def test_a_key_holding_nul_makes_the_keys_length_prefixed() -> None:
    rows = [("f/b", b"2"), ("f/a\x00z", b"1")]
    held, _ = crev_native.bucket_pack(rows)
    keys = (5).to_bytes(2, "big") + b"f/a\x00z" + (3).to_bytes(2, "big") + b"f/b"  # sorted: "f/a\0z" < "f/b"
    assert held[4:8] == (len(keys) | 1 << 31).to_bytes(4, "big")
    assert held[8 + 2 * HASH_SIZE:8 + 2 * HASH_SIZE + len(keys)] == keys
    assert (held, _) == reference_pack(rows)
    # the NUL key deleted: back to NUL-separated keys, as the reference packs them
    assert crev_native.bucket_fold(held, {"f/a\x00z": None}) == reference_pack([("f/b", b"2")])


def test_a_key_fetched_twice_is_no_bucket() -> None:
    assert crev_native.bucket_pack([("a/1", b"x"), ("a/2", b"y"), ("a/1", b"x")]) is None


@pytest.mark.parametrize("seed", range(8))
def test_random_buckets_pack_and_fold_as_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        keys = {random_key(rng) for _ in range(rng.choice([0, 1, 2, 5, 30, 200]))}
        rows = [(k, rng.randbytes(rng.randrange(0, 120))) for k in keys]
        got = crev_native.bucket_pack(rows)
        assert got is not None and got == reference_pack(rows)
        held = got[0]
        changes: dict[str, bytes | None] = {}
        for _ in range(rng.randrange(1, 20)):
            k = rng.choice(sorted(keys)) if keys and rng.random() < 0.6 else random_key(rng)
            changes[k] = None if rng.random() < 0.3 else rng.randbytes(32)
        assert crev_native.bucket_fold(held, changes) == reference_fold(held, changes)


@pytest.mark.parametrize("held", [b"", b"\x00" * 7, (5).to_bytes(4, "big") + bytes(508),
                                  (1).to_bytes(4, "big") + (900).to_bytes(4, "big") + bytes(504)])
def test_a_malformed_held_bucket_is_refused(held: bytes) -> None:
    with pytest.raises(ValueError, match="held bucket: truncated or malformed"):
        crev_native.bucket_fold(held, {"a/1": bytes(32)})


def test_a_leaf_that_is_not_32_bytes_is_refused() -> None:
    held, _ = crev_native.bucket_pack([])
    with pytest.raises(ValueError, match="a leaf hash is 32 bytes"):
        crev_native.bucket_fold(held, {"a/1": bytes(31)})


@pytest.mark.parametrize("depth", [1, 2, 5, 10])
def test_level_updates_equal_the_reference(depth: int) -> None:
    rng = random.Random(depth)
    levels = [bytearray(rng.randbytes(HASH_SIZE << (depth - d))) for d in range(depth + 1)]
    for _ in range(20):
        dirty = [rng.randrange(1 << depth) for _ in range(rng.randrange(1, 1 + (1 << depth)))]
        for b in dirty:
            levels[0][b * HASH_SIZE:(b + 1) * HASH_SIZE] = rng.randbytes(HASH_SIZE)
        expect = [bytearray(lv) for lv in levels]
        update_levels_reference(expect, set(dirty))
        crev_native.merkle_update(levels, dirty)
        assert levels == expect


def test_a_level_update_by_hand() -> None:
    a, b = bytes(range(32)), bytes(range(32, 64))
    levels = [bytearray(a + b), bytearray(32)]
    crev_native.merkle_update(levels, [1])
    assert bytes(levels[1]) == hashlib.sha256(b"\x01" + a + b).digest()


def test_level_updates_refuse_a_bucket_past_the_depth_or_a_level_of_the_wrong_size() -> None:
    levels = [bytearray(64), bytearray(32)]
    with pytest.raises(ValueError, match="bucket 2: depth 1 has 2 buckets"):
        crev_native.merkle_update(levels, [2])
    with pytest.raises(ValueError, match="level 1: 64 bytes, depth 1 needs 32"):
        crev_native.merkle_update([bytearray(64), bytearray(64)], [0])
    assert levels == [bytearray(64), bytearray(32)]  # refused before anything was written


def stored_tree(rng: random.Random, n: int, depth: int
                ) -> tuple[dict[str, bytes], StateTree, Callable[[int], list[tuple[str, bytes]]]]:
    """``n`` random entries, the plain tree of them and a ``fetch`` of each bucket's rows (what a
    store holding them answers a ``LazyStateTree``)."""
    base = {random_key(rng): rng.randbytes(20) for _ in range(n)}
    plain = StateTree(depth)
    for k, v in base.items():
        plain.set(k, v)

    def fetch(b: int) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in base.items() if statetree.bucket_index(k, depth) == b]

    return base, plain, fetch


def set_one_by_one(tree: StateTree, entries: list[tuple[str, bytes | None]]) -> None:
    for k, v in entries:
        if v is None:
            tree.delete(k)
        else:
            tree.set(k, v)


def test_a_lazy_tree_through_the_kernel_holds_what_the_reference_holds() -> None:
    """Loads, changes, deletions and evictions through both: the same held bytes and roots."""
    depth = 6
    rng = random.Random(3)
    base, plain, fetch = stored_tree(rng, 800, depth)
    packed = plain.packed()
    steps = [[(random_key(rng) if rng.random() < 0.5 else rng.choice(sorted(base)),
               None if rng.random() < 0.2 else rng.randbytes(10)) for _ in range(60)] for _ in range(5)]
    runs = []
    for use in (True, False):
        try:
            assert statetree.use_tree_kernel(use) == use
            t = LazyStateTree(depth, packed, fetch)
            roots = [t.root()]
            for step in steps:
                set_one_by_one(t, step)
                roots.append(t.root())
            runs.append((roots, dict(t._held), t.fetches))
        finally:
            statetree.use_tree_kernel(True)
    assert runs[0] == runs[1]
    assert runs[0][0][0] == plain.root()


@pytest.mark.parametrize("chunk", [256, 7])
@pytest.mark.parametrize("lazy", [True, False])
def test_set_many_holds_what_set_and_delete_hold(lazy: bool, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``set_many`` (the kernel's ``tree_set_many`` for the buckets a lazy tree holds, ``set`` and
    ``delete`` for the rest) against ``set``/``delete`` one by one: the same roots, held bytes and
    fetches, step after step of new keys, changed keys and deletions; in one kernel call a step, or
    in calls of 7 (``KERNEL_CHUNK``)."""
    monkeypatch.setattr(statetree, "KERNEL_CHUNK", chunk)
    depth = 5
    rng = random.Random(11)
    base, plain, fetch = stored_tree(rng, 300, depth)
    packed = plain.packed()

    def tree() -> StateTree:
        if lazy:
            return LazyStateTree(depth, packed, fetch)
        t = StateTree(depth)
        for k, v in base.items():
            t.set(k, v)
        return t

    steps: list[list[tuple[str, bytes | None]]] = []
    for _ in range(6):
        changes = {(random_key(rng) if rng.random() < 0.5 else rng.choice(sorted(base))):
                   (None if rng.random() < 0.2 else rng.randbytes(10)) for _ in range(40)}
        steps.append(sorted(changes.items()))
    one, many = tree(), tree()
    for step in steps:
        set_one_by_one(one, step)
        many.set_many(list(step))
        assert many.root() == one.root()
    if isinstance(one, LazyStateTree) and isinstance(many, LazyStateTree):
        assert many._held == one._held
        assert many.fetches == one.fetches


def test_set_many_by_the_kernel_leaves_deletions_and_unloaded_buckets() -> None:
    held = {0: b"held"}
    pending: dict[int, dict[str, bytes | None]] = {}
    dirty: set[int] = set()
    key = next(k for k in (f"l/{i}" for i in range(100)) if statetree.bucket_index(k, 1) == 0)
    other = next(k for k in (f"l/{i}" for i in range(100)) if statetree.bucket_index(k, 1) == 1)
    left = crev_native.tree_set_many(held, pending, dirty, [(key, b"v"), (other, b"w"), ("d/x", None)], 1)
    assert left == [(other, b"w"), ("d/x", None)]
    assert pending == {0: {key: entry_leaf_hash(key, b"v")}}
    assert dirty == {0}


def test_fold_many_folds_each_dirty_bucket_and_writes_its_hash() -> None:
    """``bucket_fold_many``: a bucket with changes waiting is folded as ``bucket_fold`` folds it (the
    changes removed), one without keeps its held form and gets its leaves' hash; each hash lands at
    its bucket's place in level 0, the others untouched."""
    leaf_a, leaf_b = entry_leaf_hash("l/a", b"1"), entry_leaf_hash("l/b", b"2")
    one = reference_pack([("l/a", b"1")])[0]
    two, two_hash = reference_pack([("l/a", b"1"), ("l/b", b"2")])
    held = {0: one, 2: two}
    pending: dict[int, dict[str, bytes | None]] = {0: {"l/b": leaf_b}}
    level0 = bytearray(b"\xee" * (4 * HASH_SIZE))
    crev_native.bucket_fold_many(held, pending, [0, 2], level0)
    assert held == {0: two, 2: two} and pending == {}
    assert level0 == two_hash + b"\xee" * HASH_SIZE + bucket_hash([leaf_a, leaf_b]) + b"\xee" * HASH_SIZE
    with pytest.raises(ValueError, match="bucket 1 is not loaded"):
        crev_native.bucket_fold_many(held, {}, [1], level0)
    with pytest.raises(ValueError, match="bucket 4 is past level 0"):
        crev_native.bucket_fold_many(held, {}, [4], level0)


@pytest.mark.parametrize("use", [True, False])
@pytest.mark.parametrize("case", ["value changed", "row missing", "row added", "row twice", "key too long"])
def test_a_tampered_bucket_is_refused_alike_with_and_without_the_kernel(use: bool, case: str) -> None:
    """Whatever the store hands back for a bucket, if it is not what the tree committed to, the
    same named refusal, and nothing loaded."""
    depth = 2
    plain = StateTree(depth)
    good = [(k, v) for k, v in ((f"d/{i}", bytes([i])) for i in range(40))
            if statetree.bucket_index(k, depth) == 1]
    for k, v in good:
        plain.set(k, v)
    rows = {"value changed": [(good[0][0], b"x"), *good[1:]],
            "row missing": good[1:],
            "row added": [*good, ("d/new", b"1")],
            "row twice": [*good, good[0]],
            "key too long": [*good, ("d/" + "k" * 70_000, b"1")]}[case]
    try:
        assert statetree.use_tree_kernel(use) == use
        t = LazyStateTree(depth, plain.packed(), lambda _b: rows)
        with pytest.raises(statetree.BucketMismatch, match=r"bucket 1's \d+ entries do not hash to its committed"):
            t.load(1)
        assert not t.loaded(1) and t.fetches == 1
        assert LazyStateTree(depth, plain.packed(), lambda _b: good).load(1) == good  # the true rows load
    finally:
        statetree.use_tree_kernel(True)


def test_folding_in_a_key_no_state_entry_can_have_is_refused() -> None:
    held, _ = crev_native.bucket_pack([("a", b"1")])
    with pytest.raises(ValueError, match="a state key is at most 65,535 bytes"):
        crev_native.bucket_fold(held, {"\x00" + "k" * 70_000: bytes(32)})
