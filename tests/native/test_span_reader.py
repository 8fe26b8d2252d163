"""The kernel's span reader (``crev_native.SpanReader``, node/spans.py) changes how a node reads its
state-tree buckets back from SQLite (a block's buckets in one call, the interpreter lock released),
never what it loads: every bucket of a stored ledger comes back in exactly the held form and hash
the reference builds from ``Store.state_span``'s rows; a tree loaded through it holds the same
buckets; rows the kernel cannot judge, and rows changed behind the node's back, are refused by the
reference with their keys named; it reads what is committed, never the writer's open
transaction; and it shares the process's SQLite library or declines. A running node then reads
every evicted bucket and slot tally of a block ahead, with no query a bucket left."""

from __future__ import annotations

import _sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from crev.core.statetree import (
    BucketMismatch,
    LazyStateTree,
    _pack,
    bucket_hash,
    bucket_index,
    bucket_span,
    entry_leaf_hash,
)
from crev.ledger.genesis import Genesis
from crev.node import spans as spans_module
from crev.node.lazystate import checkpoint_of
from crev.node.node import DB_FILE, GENESIS_FILE
from crev.node.spans import open_span_reader, use_span_kernel
from crev.node.store import Store
from tests.node import nodekit as k

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")
if spans_module.SPAN_KERNEL is None:
    pytest.skip("the installed crev_native predates SpanReader", allow_module_level=True)

DEVICES = 4


@pytest.fixture(autouse=True)
def kernel_back_on() -> Iterator[None]:
    yield
    use_span_kernel(True)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 devices × 30 one-minute readings (one slot), checkpointed at the head: 120 lots, 120
    reading records, 4 slot tallies."""
    d = k.init_dir(tmp_path_factory.mktemp("spans") / "ledger")
    node = k.open_node(d, checkpoint_s=0.2)
    try:
        k.register_fleet(node, DEVICES)
        for j in range(30):
            assert node.submit_wait(k.batch(DEVICES, j)).ok
        node.flush()
    finally:
        node.close()
    return d


def depth_of(d: Path) -> int:
    return Genesis.from_json((d / GENESIS_FILE).read_text("utf-8")).params.state_tree_depth


def reference_bucket(store: Store, b: int, depth: int) -> tuple[bytes, bytes]:
    """Bucket ``b`` as ``LazyStateTree.load``'s reference holds it, and its hash."""
    leaves = {key: entry_leaf_hash(key, value) for key, value in store.state_span(*bucket_span(b, depth))}
    keys = sorted(leaves)
    return _pack(keys, leaves), bucket_hash(leaves[key] for key in keys)


def tree_of(store: Store, depth: int, kernel: bool) -> LazyStateTree:
    """A lazy tree on the store's checkpoint, loading through the kernel's reader or the reference."""
    height_packed = store.bucket_hashes()
    assert height_packed is not None
    return LazyStateTree(depth, height_packed[1], lambda b: store.state_span(*bucket_span(b, depth)),
                         fetch_many=(lambda keys, held, reads: store.state_spans(keys, depth, held, reads))
                         if kernel else None)


def test_every_bucket_comes_back_as_the_reference_builds_it(history: Path) -> None:
    depth = depth_of(history)
    with closing(Store(history / DB_FILE)) as store:
        entries = dict(store.state_items())
        keys = sorted(entries)
        reads = [key for key in keys if key.startswith(("v/", "d/"))] + ["v/no-such-device/1"]
        got = store.state_spans(keys, depth, {}, reads)
        assert got is not None
        buckets, packed, found = got
        assert buckets == sorted({bucket_index(key, depth) for key in keys})
        assert len(buckets) > 100  # most of them hold one entry or two at this size: every one is compared
        for b, item in zip(buckets, packed, strict=True):
            assert item == reference_bucket(store, b, depth), f"bucket {b}"
        assert found == {key: entries[key] for key in reads if key in entries}
        assert len(found) == 2 * DEVICES  # the devices and their slot tallies


def test_loaded_buckets_are_not_read_again_and_their_values_are_read_one_by_one(history: Path) -> None:
    depth = depth_of(history)
    with closing(Store(history / DB_FILE)) as store:
        entries = dict(store.state_items())
        tally = next(key for key in entries if key.startswith("v/"))
        lot = next(key for key in entries if key.startswith("l/"))
        held = {bucket_index(tally, depth): b"held already"}
        got = store.state_spans([tally, lot], depth, held, [tally, lot])
        assert got is not None
        buckets, packed, found = got
        assert buckets == [bucket_index(lot, depth)] != [bucket_index(tally, depth)]
        assert packed == [reference_bucket(store, bucket_index(lot, depth), depth)]
        assert found == {tally: entries[tally], lot: entries[lot]}


def test_a_tree_loaded_through_the_kernel_holds_what_the_reference_loads(history: Path) -> None:
    depth = depth_of(history)
    with closing(Store(history / DB_FILE)) as store:
        keys = [key for key, _ in store.state_items()]
        kernel, reference = tree_of(store, depth, True), tree_of(store, depth, False)
        assert kernel.root() == reference.root()
        half = keys[::2]
        tallies = [key for key in half if key.startswith("v/")]
        assert tallies
        assert kernel.load_keys(half, tallies) == reference.load_keys(half, tallies)
        kernel.load_keys(keys)
        reference.load_keys(keys)
        assert kernel.loaded_buckets() == reference.loaded_buckets() == len({bucket_index(key, depth) for key in keys})
        assert kernel._held == reference._held
        assert kernel.fetches == reference.fetches
        kernel.set("l/new", b"\x01")
        reference.set("l/new", b"\x01")
        assert kernel.root() == reference.root()


def forged_copy(history: Path, tmp_path: Path) -> Path:
    d = tmp_path / "ledger"
    d.mkdir()
    for f in history.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    return d


def test_a_changed_row_is_refused_with_its_keys_named(history: Path, tmp_path: Path) -> None:
    d = forged_copy(history, tmp_path)
    depth = depth_of(d)
    with closing(k.sql(d)) as db:
        key = db.execute("SELECT key FROM state WHERE key LIKE 'l/%' LIMIT 1").fetchone()[0]
        db.execute("UPDATE state SET value = x'00' WHERE key = ?", (key,))
    with closing(Store(d / DB_FILE)) as store:
        for kernel in (True, False):
            tree = tree_of(store, depth, kernel)
            with pytest.raises(BucketMismatch) as err:
                tree.load_keys([key])
            assert err.value.bucket == bucket_index(key, depth)
            assert key in err.value.keys
            assert tree.loaded_buckets() == 0


def test_rows_the_kernel_cannot_judge_are_left_to_the_reference(history: Path, tmp_path: Path) -> None:
    """A key stored as a blob (no node writes one): the kernel leaves its bucket (None), and the
    reference refuses it, naming it."""
    d = forged_copy(history, tmp_path)
    depth = depth_of(d)
    with closing(k.sql(d)) as db:
        kh, key = db.execute("SELECT kh, key FROM state WHERE key LIKE 'r/%' LIMIT 1").fetchone()
        db.execute("INSERT INTO state VALUES (?, CAST(? AS BLOB), x'01')", (kh, key + "x"))
    with closing(Store(d / DB_FILE)) as store:
        got = store.state_spans([key], depth, {}, [])
        assert got is not None and got[0] == [bucket_index(key, depth)] and got[1] == [None]
        for kernel in (True, False):
            tree = tree_of(store, depth, kernel)
            with pytest.raises(BucketMismatch) as err:
                tree.load_keys([key])
            assert err.value.bucket == bucket_index(key, depth)
            assert f"b{key + 'x'!r}" in err.value.keys


def test_only_committed_rows_are_read(history: Path, tmp_path: Path) -> None:
    """The reader has a connection of its own: the writer's open transaction is not seen (a bucket
    the tree does not hold has no change since the last checkpoint written)."""
    d = forged_copy(history, tmp_path)
    depth = depth_of(d)
    with closing(Store(d / DB_FILE)) as store:
        key, value = next((key, value) for key, value in store.state_items() if key.startswith("l/"))
        store.db.execute("BEGIN")
        store.db.execute("UPDATE state SET value = x'00' WHERE key = ?", (key,))
        try:
            got = store.state_spans([key], depth, {}, [key])
            assert got is not None and got[2] == {key: value}
        finally:
            store.db.execute("ROLLBACK")


def test_it_shares_the_process_sqlite_or_declines(history: Path) -> None:
    path = str(history / DB_FILE)
    assert crev_native.SpanReader.open(path, _sqlite3.__file__) is not None
    # a module that does not resolve SQLite to the process's library: no second copy is opened
    assert crev_native.SpanReader.open(path, crev_native.__file__) is None
    with pytest.raises(OSError, match="unable to open"):
        crev_native.SpanReader.open(str(history / "missing" / "x.sqlite"), _sqlite3.__file__)
    use_span_kernel(False)
    assert open_span_reader(history / DB_FILE) is None
    with closing(Store(history / DB_FILE)) as store:
        assert store.state_spans(["s"], depth_of(history), {}, []) is None
    use_span_kernel(True)
    with closing(Store(history / DB_FILE, readonly=True)) as store:  # its one snapshot is what it must read
        assert store.state_spans(["s"], depth_of(history), {}, []) is None


@pytest.mark.parametrize("kernel", [True, False])
def test_a_running_node_reads_a_blocks_buckets_and_tallies_ahead(tmp_path: Path, kernel: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With every checkpoint written and evicted before the next block, each block finds none of
    its buckets or tallies in memory. With the kernel, the sealer reads them all ahead: no query
    a bucket (``state_span``) or a record (``state_value``) is left; without it, one a bucket.
    Either way every state root is the plain state's."""
    use_span_kernel(kernel)
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.0)
    calls = {"state_span": 0, "state_value": 0, "state_spans": 0}
    for name in calls:
        real = getattr(Store, name)

        def counted(self: Store, *a: object, _real: object = real, _name: str = name, **kw: object) -> object:
            calls[_name] += 1
            return _real(self, *a, **kw)  # type: ignore[operator]

        monkeypatch.setattr(Store, name, counted)
    try:
        k.register_fleet(node, DEVICES)
        node.flush()
        before = dict(calls)
        for j in range(6):
            assert node.submit_wait(k.batch(DEVICES, j)).ok
            node.flush()
        with node.lock:
            cp = checkpoint_of(node.state)
            assert cp is not None and cp.tree.fetches > 0
        spent = {name: calls[name] - before[name] for name in calls}
        if kernel:
            assert spent["state_span"] == spent["state_value"] == 0 < spent["state_spans"]
        else:
            assert spent["state_span"] > 6 * DEVICES
        node.stop()
        _, root = k.replay_root(d)
        assert node.state.tree.root() == root
    finally:
        node.close()
