"""Merkle roots and proofs against an independent RFC 6962 reference; the bucketed state tree
against an independent from-the-docstring reference, incremental updates, deletes and proofs."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crev.core import merkle
from crev.core.statetree import DEFAULT_DEPTH, StateProof, StateTree, bucket_index, entry_leaf_hash, root_of

# --- an independent RFC 6962 §2.1 reference ----------------------------------------------------


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 §2.1 defines it, recursively."""
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + d[0])
    k = _split(n)
    return _sha(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:]))


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1: siblings from the leaf upwards."""
    n = len(d)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def leaves(n: int) -> list[bytes]:
    return [f"leaf-{i}".encode() for i in range(n)]


# --- merkle roots ------------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == merkle.EMPTY_ROOT == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_single_leaf_root_is_its_leaf_hash() -> None:
    assert merkle.root([b"x"]) == _sha(b"\x00x")


@pytest.mark.parametrize("n", range(41))
def test_root_equals_the_recursive_rfc6962_definition(n: int) -> None:
    d = leaves(n)
    assert merkle.root(d) == rfc_mth(d)
    assert merkle.root_of_leaf_hashes([merkle.leaf_hash(x) for x in d]) == rfc_mth(d)


def test_root_of_three_by_hand() -> None:
    a, b, c = (merkle.leaf_hash(x) for x in (b"a", b"b", b"c"))
    # RFC split of 3 is (2, 1): node(node(a, b), c)
    assert merkle.root([b"a", b"b", b"c"]) == merkle.node_hash(merkle.node_hash(a, b), c)


def test_last_leaf_is_not_duplicated() -> None:
    # CVE-2012-2459: [a, b, c] and [a, b, c, c] must not share a root
    assert merkle.root([b"a", b"b", b"c"]) != merkle.root([b"a", b"b", b"c", b"c"])


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    # a 64-byte leaf that looks like two child hashes does not collide with the parent
    la, lb = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.root([la + lb]) != merkle.root([b"a", b"b"])


def test_root_depends_on_leaf_order() -> None:
    assert merkle.root([b"a", b"b"]) != merkle.root([b"b", b"a"])


# --- merkle proofs -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 41))
def test_every_proof_equals_the_rfc_path_and_verifies(n: int) -> None:
    d = leaves(n)
    hashes = [merkle.leaf_hash(x) for x in d]
    root = merkle.root(d)
    for i in range(n):
        path = merkle.proof(hashes, i)
        assert path == rfc_path(i, d)
        assert merkle.verify_proof(hashes[i], i, n, path, root)


@pytest.mark.parametrize("n", range(1, 41))
def test_proof_fails_with_a_wrong_index_leaf_root_or_path(n: int) -> None:
    d = leaves(n)
    hashes = [merkle.leaf_hash(x) for x in d]
    root = merkle.root(d)
    wrong_leaf = merkle.leaf_hash(b"not a leaf")
    for i in range(n):
        path = merkle.proof(hashes, i)
        # every other index of the same tree
        for j in range(n):
            if j != i:
                assert not merkle.verify_proof(hashes[i], j, n, path, root), (n, i, j)
        assert not merkle.verify_proof(hashes[i], -1, n, path, root)
        assert not merkle.verify_proof(hashes[i], n, n, path, root)
        assert not merkle.verify_proof(wrong_leaf, i, n, path, root)
        assert not merkle.verify_proof(d[i], i, n, path, root)  # raw data instead of the leaf hash
        assert not merkle.verify_proof(hashes[i], i, n, path, _sha(root))
        if path:
            assert not merkle.verify_proof(hashes[i], i, n, path[:-1], root)  # truncated
            assert not merkle.verify_proof(hashes[i], i, n, path[1:], root)  # first sibling dropped
            flipped = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
            assert not merkle.verify_proof(hashes[i], i, n, flipped, root)
        assert not merkle.verify_proof(hashes[i], i, n, [*path, root], root)  # extended


def test_proof_of_an_index_outside_the_tree_is_refused() -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves(3)]
    with pytest.raises(IndexError):
        merkle.proof(hashes, 3)
    with pytest.raises(IndexError):
        merkle.proof(hashes, -1)
    with pytest.raises(IndexError):
        merkle.proof([], 0)


# --- an independent state-tree reference (from the statetree docstring) ------------------------


def ref_state_root(items: dict[str, bytes], depth: int) -> bytes:
    """leaf = H(0x00 ‖ u16 len ‖ key ‖ value); bucket = first `depth` bits of H(key);
    bucket hash = H(0x02 ‖ leaves sorted by key); complete binary tree of node = H(0x01 ‖ l ‖ r)."""
    buckets: dict[int, list[tuple[str, bytes]]] = {}
    for k, v in items.items():
        kb = k.encode()
        b = int.from_bytes(_sha(kb)[:4], "big") >> (32 - depth)
        buckets.setdefault(b, []).append((k, _sha(b"\x00" + struct.pack(">H", len(kb)) + kb + v)))
    empty = _sha(b"\x02")
    level = {b: _sha(b"\x02" + b"".join(h for _, h in sorted(es))) for b, es in buckets.items()}
    for _ in range(depth):
        parents: dict[int, bytes] = {}
        for p in {b >> 1 for b in level}:
            parents[p] = _sha(b"\x01" + level.get(2 * p, empty) + level.get(2 * p + 1, empty))
        level = parents
        empty = _sha(b"\x01" + empty + empty)
    return level.get(0, empty)


keys_st = st.text(alphabet="abcdefgh/0123456789", min_size=1, max_size=12)
values_st = st.binary(max_size=16)
mappings = st.dictionaries(keys_st, values_st, max_size=40)


def test_empty_state_root_is_the_hash_of_empty_subtrees() -> None:
    h = _sha(b"\x02")
    for _ in range(DEFAULT_DEPTH):
        h = _sha(b"\x01" + h + h)
    assert StateTree().root() == root_of([]) == h


def test_state_root_matches_the_reference_at_the_default_depth() -> None:
    items = {f"a/acct-{i}": f"value {i}".encode() for i in range(50)} | {"s": b"\x00", "g": b""}
    assert root_of(list(items.items())) == ref_state_root(items, DEFAULT_DEPTH)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(mappings, st.integers(1, 6))
def test_state_root_matches_the_reference_at_small_depths(items: dict[str, bytes], depth: int) -> None:
    assert root_of(list(items.items()), depth) == ref_state_root(items, depth)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data(), mappings, st.sampled_from([1, 3, DEFAULT_DEPTH]))
def test_state_root_is_independent_of_insertion_order(data: st.DataObject, items: dict[str, bytes],
                                                      depth: int) -> None:
    pairs = list(items.items())
    shuffled = data.draw(st.permutations(pairs))
    assert root_of(pairs, depth) == root_of(shuffled, depth)


ops_st = st.lists(st.tuples(st.sampled_from(["set", "delete", "root"]), keys_st, values_st), max_size=60)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(ops_st, st.sampled_from([2, 4, DEFAULT_DEPTH]))
def test_incremental_updates_equal_a_from_scratch_root(ops: list[tuple[str, str, bytes]], depth: int) -> None:
    tree = StateTree(depth)
    model: dict[str, bytes] = {}
    for op, k, v in ops:
        if op == "set":
            tree.set(k, v)
            model[k] = v
        elif op == "delete":
            tree.delete(k)
            model.pop(k, None)
        else:  # fold pending changes in between, as blocks do
            assert tree.root() == root_of(list(model.items()), depth)
    assert tree.root() == root_of(list(model.items()), depth) == ref_state_root(model, depth)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(mappings, keys_st, values_st, st.sampled_from([1, 4, DEFAULT_DEPTH]))
def test_delete_restores_the_previous_root(items: dict[str, bytes], k: str, v: bytes, depth: int) -> None:
    tree = StateTree(depth)
    for key, val in items.items():
        tree.set(key, val)
    before = tree.root()
    old = items.get(k)
    tree.set(k, v)
    tree.root()
    if old is None:
        tree.delete(k)
    else:
        tree.set(k, old)  # an overwrite is undone by writing the old value back
    assert tree.root() == before


def test_deleting_everything_returns_the_empty_root() -> None:
    tree = StateTree(4)
    for i in range(30):
        tree.set(f"k{i}", b"v")
    tree.root()
    for i in range(30):
        tree.delete(f"k{i}")
    assert tree.root() == StateTree(4).root()


def test_deleting_an_absent_key_changes_nothing() -> None:
    tree = StateTree(4)
    tree.set("a", b"1")
    r = tree.root()
    tree.delete("zzz")
    assert tree.root() == r


def test_a_value_change_changes_the_root() -> None:
    assert root_of([("a", b"1")]) != root_of([("a", b"2")])
    assert root_of([("a", b"1")]) != root_of([("a", b"1"), ("b", b"")])  # an empty value still counts


def test_key_value_boundary_is_unambiguous() -> None:
    # ("ab", "c") and ("a", "bc") would collide without the key length prefix
    assert root_of([("ab", b"c")]) != root_of([("a", b"bc")])


def test_depth_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        StateTree(0)
    with pytest.raises(ValueError):
        StateTree(25)


# --- state proofs ------------------------------------------------------------------------------


def _tree(items: dict[str, bytes], depth: int) -> StateTree:
    t = StateTree(depth)
    for k, v in items.items():
        t.set(k, v)
    return t


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x80]) + h[1:]


CROWDED = {f"k{i}": f"v{i}".encode() for i in range(24)}  # at depth 2 each bucket holds several keys


@pytest.mark.parametrize("depth", [1, 2, 8, DEFAULT_DEPTH])
def test_presence_proofs_verify_for_every_key(depth: int) -> None:
    t = _tree(CROWDED, depth)
    root = t.root()
    for k, v in CROWDED.items():
        p = t.prove(k, v)
        assert p.verify(root), k
        assert len(p.siblings) == depth


@pytest.mark.parametrize("depth", [1, 2, 8, DEFAULT_DEPTH])
def test_absence_proofs_verify_for_absent_keys(depth: int) -> None:
    t = _tree(CROWDED, depth)
    root = t.root()
    for k in ("absent", "k99", "x/1", "k"):
        assert t.prove(k, None).verify(root), k


def test_proofs_verify_in_an_empty_tree() -> None:
    t = StateTree(3)
    assert t.prove("a", None).verify(t.root())
    assert not t.prove("a", b"x").verify(t.root())


@pytest.mark.parametrize("depth", [2, DEFAULT_DEPTH])
def test_proof_fails_when_the_value_is_changed(depth: int) -> None:
    t = _tree(CROWDED, depth)
    root = t.root()
    p = t.prove("k3", b"v3")
    assert not replace(p, value=b"v4").verify(root)
    assert not replace(p, value=b"").verify(root)
    assert not replace(p, value=None).verify(root)  # a present key cannot be shown absent


def test_proof_of_a_wrong_value_from_the_tree_does_not_verify() -> None:
    t = _tree(CROWDED, 2)
    assert not t.prove("k3", b"forged").verify(t.root())
    assert not t.prove("k3", None).verify(t.root())
    assert not t.prove("absent", b"v").verify(t.root())


def _crowded_proof(key: str, value: bytes | None) -> tuple[StateProof, bytes]:
    t = _tree(CROWDED, 2)
    p = t.prove(key, value)
    assert len(p.bucket_entries) >= 2, "the test needs a bucket with neighbours"
    return p, t.root()


@pytest.mark.parametrize(("key", "value"), [("k3", b"v3"), ("absent", None)])
def test_proof_fails_when_a_bucket_entry_is_removed(key: str, value: bytes | None) -> None:
    p, root = _crowded_proof(key, value)
    for i in range(len(p.bucket_entries)):
        entries = p.bucket_entries[:i] + p.bucket_entries[i + 1:]
        assert not replace(p, bucket_entries=entries).verify(root), i


def test_proof_cannot_hide_a_present_key_by_dropping_its_entry() -> None:
    p, root = _crowded_proof("k3", b"v3")
    entries = tuple(e for e in p.bucket_entries if e[0] != "k3")
    assert not replace(p, value=None, bucket_entries=entries).verify(root)


@pytest.mark.parametrize(("key", "value"), [("k3", b"v3"), ("absent", None)])
def test_proof_fails_when_bucket_entries_are_tampered(key: str, value: bytes | None) -> None:
    p, root = _crowded_proof(key, value)
    entries = p.bucket_entries
    assert not replace(p, bucket_entries=(*entries, ("zzzz", b"\x00" * 32))).verify(root)  # extra entry
    assert not replace(p, bucket_entries=tuple(reversed(entries))).verify(root)  # unsorted
    assert not replace(p, bucket_entries=(entries[0], *entries)).verify(root)  # duplicated key
    other = (entries[0][0], _flip(entries[0][1]))
    assert not replace(p, bucket_entries=(other, *entries[1:])).verify(root)  # neighbour's leaf hash


@pytest.mark.parametrize(("key", "value"), [("k3", b"v3"), ("absent", None)])
def test_proof_fails_when_a_sibling_is_flipped(key: str, value: bytes | None) -> None:
    t = _tree(CROWDED, DEFAULT_DEPTH)
    root = t.root()
    p = t.prove(key, value)
    assert p.verify(root)
    for i in range(len(p.siblings)):
        sibs = (*p.siblings[:i], _flip(p.siblings[i]), *p.siblings[i + 1:])
        assert not replace(p, siblings=sibs).verify(root), i
    assert not replace(p, siblings=p.siblings[:-1]).verify(root)  # truncated
    assert not replace(p, siblings=(*p.siblings, root)).verify(root)  # extended


def test_proof_fails_with_the_wrong_bucket_key_or_root() -> None:
    t = _tree(CROWDED, DEFAULT_DEPTH)
    root = t.root()
    p = t.prove("k3", b"v3")
    assert not replace(p, bucket=p.bucket ^ 1).verify(root)
    assert not replace(p, key="k4").verify(root)
    assert not p.verify(_flip(root))
    assert p.bucket == bucket_index("k3", DEFAULT_DEPTH)


def test_proof_goes_stale_when_the_tree_changes() -> None:
    t = _tree(CROWDED, DEFAULT_DEPTH)
    p = t.prove("k3", b"v3")
    t.set("k3", b"new")
    assert not p.verify(t.root())
    assert t.prove("k3", b"new").verify(t.root())


# --- dense levels and eviction -------------------------------------------------------------------


def test_the_levels_cost_what_the_depth_says_whatever_the_state_holds() -> None:
    """2**(depth + 1) − 1 nodes of 32 bytes: 2**5 − 1 = 31 nodes, 992 bytes, at depth 4."""
    tree = StateTree(4)
    for i in range(500):
        tree.set(f"k{i}", b"v")
    tree.root()
    assert [len(level) for level in tree._levels] == [512, 256, 128, 64, 32]
    assert sum(len(level) for level in tree._levels) == 992


@settings(max_examples=40, deadline=None, derandomize=True)
@given(mappings, ops_st, st.sampled_from([1, 3, 6]))
def test_a_lazy_tree_evicted_between_changes_keeps_the_plain_roots(items: dict[str, bytes],
                                                                 ops: list[tuple[str, str, bytes]],
                                                                 depth: int) -> None:
    """Evict every bucket not changed since the store was last updated (as the node does after a
    checkpoint); the roots and proofs stay those of a plain tree, and what is fetched again is
    checked against the bucket hash the tree holds."""
    from crev.core.statetree import LazyStateTree, pack_bucket_hashes

    store = dict(items)
    plain = StateTree(depth)
    for k, v in items.items():
        plain.set(k, v)
    lazy = LazyStateTree(depth, pack_bucket_hashes(depth, plain.bucket_hashes()),
                         lambda b: [(k, v) for k, v in store.items() if bucket_index(k, depth) == b])
    model = dict(items)
    for n, (op, k, v) in enumerate(ops):
        for tree in (plain, lazy):
            if op == "delete":
                tree.delete(k)
            else:
                tree.set(k, v)
        if op == "delete":
            model.pop(k, None)
        else:
            model[k] = v
        if n % 5 == 4:  # a checkpoint: the store catches up, then everything clean is dropped
            store.clear()
            store.update(model)
            lazy.take_touched()
            lazy.evict(())
            assert lazy.loaded_buckets() == 0
        assert lazy.leaf(k) == plain._bucket(bucket_index(k, depth)).get(k)  # before the fold, from the changes
        assert lazy.root() == plain.root()
        assert lazy.leaf(k) == plain._bucket(bucket_index(k, depth)).get(k)  # after it, from the held form
    probe = ops[0][1] if ops else "x"
    assert lazy.prove(probe, None).siblings == plain.prove(probe, None).siblings
    assert lazy.prove(probe, None).bucket_entries == plain.prove(probe, None).bucket_entries
    for k in model:
        assert lazy.leaf(k) == entry_leaf_hash(k, model[k])


def test_a_lazy_tree_finds_whole_keys_only_and_refuses_a_key_with_nul() -> None:
    """A held bucket is its keys joined by NUL: a key that is a prefix, suffix or middle of
    another is not found in it, and a key with a NUL in it would break the form, so it is refused."""
    from crev.core.statetree import LazyStateTree

    depth = 1
    lazy = LazyStateTree(depth, StateTree(depth).packed(), lambda b: [])
    names = ["ab", "abc", "xabcx", "bc", "b"]
    for k in names:
        lazy.set(k, k.encode())
    lazy.root()
    for k in names:
        assert lazy.leaf(k) == entry_leaf_hash(k, k.encode())
    assert lazy.leaf("a") is None and lazy.leaf("c") is None and lazy.leaf("abcx") is None
    lazy.delete("abc")
    assert lazy.leaf("abc") is None and lazy.leaf("ab") == entry_leaf_hash("ab", b"ab")
    assert lazy.leaf("bc\x00xabcx") is None  # spans two neighbouring held keys: not one of them
    # each held bucket is one bytes object too long for CPython's small-object allocator
    assert all(type(h) is bytes and len(h) >= 512 for h in lazy._held.values())


def test_a_lazy_tree_holds_keys_with_nul_as_a_plain_tree_does() -> None:
    """A factor row's key is free text, so a state key may hold a NUL: a bucket holding one keeps
    its keys length-prefixed, and lookups, roots and proofs are the plain tree's."""
    from crev.core.statetree import LazyStateTree

    depth = 1
    plain = StateTree(depth)
    lazy = LazyStateTree(depth, StateTree(depth).packed(), lambda b: [])
    names = ["f/kan\x00sai/2025/adjusted", "f/kan", "f/kan\x00", "\x00", "sai", "bc", "bc\x00x", "x"]
    for tree in (plain, lazy):
        for k in names:
            tree.set(k, k.encode())
    assert lazy.root() == plain.root()
    for k in names:
        assert lazy.leaf(k) == entry_leaf_hash(k, k.encode())
    for absent in ("f/kan\x00sai", "kan", "bc\x00", "\x00\x00", ""):
        assert lazy.leaf(absent) is None
    for tree in (plain, lazy):
        tree.delete("f/kan\x00")
    assert lazy.root() == plain.root() and lazy.leaf("f/kan\x00") is None
    for k in names:
        assert lazy.prove(k, None).bucket_entries == plain.prove(k, None).bucket_entries


def test_an_evicted_bucket_is_checked_against_the_current_hash_when_fetched_again() -> None:
    from crev.core.statetree import BucketMismatch, LazyStateTree

    depth = 2
    store: dict[str, bytes] = {}
    fetch = lambda b: [(k, v) for k, v in store.items() if bucket_index(k, depth) == b]  # noqa: E731
    lazy = LazyStateTree(depth, StateTree(depth).packed(), fetch)
    lazy.set("a", b"1")
    lazy.root()
    store["a"] = b"1"  # a checkpoint
    assert lazy.take_touched() == {bucket_index("a", depth)}
    assert lazy.evict(()) == 1
    assert lazy.leaf("a") is not None  # fetched again: hashes to the bucket hash the tree holds now
    lazy.evict(())
    store["a"] = b"2"  # changed behind the tree's back
    with pytest.raises(BucketMismatch, match=f"bucket {bucket_index('a', depth)}'s 1 entries do not hash"):
        lazy.leaf("a")
