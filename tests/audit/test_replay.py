"""The auditor's replay (``verify_chain``) against a small chain, then against SQLite files
tampered with behind the node's back: each time it must fail, naming the first bad block and why."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from crev.audit.replay import verify_chain
from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.errors import InvalidBlock
from crev.ledger.block import Header
from crev.ledger.messages.transfer import Transfer
from crev.node.node import Node
from tests.node import nodekit as k

LOT0 = "dgc-0:20260601T0900"


@dataclass(frozen=True)
class Chain:
    d: Path
    tip: int
    reading_heights: list[int]  # the block of each reading batch, in order
    reading_txs: list[bytes]  # their hashes
    transfer_height: int


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    d = k.init_dir(tmp_path_factory.mktemp("audit") / "ledger")
    node = k.open_node(d)
    try:
        signers = k.register_fleet(node, 2)
        heights, hashes = [], []
        for kk in range(4):
            r = node.submit_wait(k.batch(2, kk))
            assert r.ok
            heights.append(r.height)
            hashes.append(bytes.fromhex(r.tx_hash))
        t = node.submit_wait(signers.tx(k.OWNER, Transfer(k.BUYER, ((LOT0, 50),), "sale")))
        assert t.ok
        tip = node.state.height
    finally:
        node.close()  # the checkpoint (state snapshot) is now at the tip
    assert len(set(heights)) == 4  # one batch per block (submit_wait)
    return Chain(d, tip, heights, hashes, t.height)


@pytest.fixture
def copy(chain: Chain, tmp_path: Path) -> Callable[[], Path]:
    def make() -> Path:
        c = tmp_path / "copy"
        shutil.copytree(chain.d, c)
        return c

    return make


def test_verify_chain_passes_on_a_small_chain(chain: Chain) -> None:
    rep = verify_chain(chain.d)
    assert rep.ok, rep
    assert rep.blocks == chain.tip and rep.first_bad_height is None and rep.error == ""
    assert rep.readings == 8
    node = k.open_node(chain.d, start=False)
    try:
        assert rep.state_root == node.state.tree.root().hex()
        assert node.store.checkpoint_height() == chain.tip
    finally:
        node.close()


def _edit(d: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with closing(k.sql(d)) as db:
        for q, args in statements:
            cur = db.execute(q, args)
            assert cur.rowcount != 0, q


def test_a_changed_byte_in_a_stored_reading(chain: Chain, copy: Callable[[], Path]) -> None:
    d = copy()
    h, txh = chain.reading_heights[1], chain.reading_txs[1]
    with closing(k.sql(d)) as db:
        raw = bytes(db.execute("SELECT raw FROM txs WHERE hash = ?", (txh,)).fetchone()[0])
    v = decode(raw)
    assert v[5][0][6] == k.GEN  # readings[0].generation_wh
    v[5][0][6] = k.GEN + 1
    bad = encode(v)
    assert len(bad) == len(raw) and sum(a != b for a, b in zip(raw, bad, strict=True)) == 1
    _edit(d, ("UPDATE txs SET raw = ? WHERE hash = ?", (bad, txh)))
    rep = verify_chain(d)
    assert not rep.ok
    assert rep.first_bad_height == h
    assert rep.blocks == h - 1
    assert rep.error.startswith("header.tx_root"), rep.error


def _header(d: Path, height: int) -> Header:
    with closing(k.sql(d)) as db:
        return Header.decode(bytes(db.execute("SELECT header FROM blocks WHERE height = ?", (height,)).fetchone()[0]))


def _with_state_root(hdr: Header) -> Header:
    return Header(hdr.chain_id, hdr.height, hdr.time, hdr.prev_hash, hdr.tx_root, hdr.results_root,
                  sha256(b"a different state"), hdr.tx_count)


def test_a_changed_state_root_in_a_block_header(chain: Chain, copy: Callable[[], Path]) -> None:
    d = copy()
    h = chain.reading_heights[2]
    new = _with_state_root(_header(d, h))
    _edit(d, ("UPDATE blocks SET header = ?, hash = ? WHERE height = ?", (new.encode(), new.hash, h)))
    rep = verify_chain(d)
    assert not rep.ok and rep.first_bad_height == h
    assert rep.error.startswith("block.signature"), rep.error  # the header no longer matches its signature


def test_a_changed_state_root_resigned_by_the_sequencer(chain: Chain, copy: Callable[[], Path]) -> None:
    """Even the sequencer cannot rewrite a state root: the replay recomputes it."""
    d = copy()
    h = chain.reading_heights[2]
    new = _with_state_root(_header(d, h))
    sig = k.key("sequencer").sign(new.encode())
    _edit(d, ("UPDATE blocks SET header = ?, hash = ?, signature = ? WHERE height = ?",
              (new.encode(), new.hash, sig, h)))
    rep = verify_chain(d)
    assert not rep.ok and rep.first_bad_height == h
    assert rep.error.startswith("header.state_root"), rep.error


def test_a_deleted_block(chain: Chain, copy: Callable[[], Path]) -> None:
    d = copy()
    h = chain.reading_heights[1]
    _edit(d, ("DELETE FROM blocks WHERE height = ?", (h,)), ("DELETE FROM txs WHERE height = ?", (h,)))
    rep = verify_chain(d)
    assert not rep.ok
    assert rep.error == f"header.height: block {h} is missing: found {h + 1}"


def test_a_deleted_block_is_reported_at_its_own_height(chain: Chain, copy: Callable[[], Path]) -> None:
    d = copy()
    h = chain.reading_heights[1]
    _edit(d, ("DELETE FROM blocks WHERE height = ?", (h,)), ("DELETE FROM txs WHERE height = ?", (h,)))
    rep = verify_chain(d)
    assert not rep.ok and (rep.first_bad_height, rep.blocks) == (h, h - 1)


def test_an_undecodable_header_is_reported_at_its_own_height(chain: Chain, copy: Callable[[], Path]) -> None:
    d = copy()
    h = chain.reading_heights[2]
    _edit(d, ("UPDATE blocks SET header = ? WHERE height = ?", (b"\x00", h)))
    rep = verify_chain(d)
    assert not rep.ok and rep.error.startswith("header")
    assert (rep.first_bad_height, rep.blocks) == (h, h - 1)


def test_a_changed_state_snapshot_of_a_lot(chain: Chain, copy: Callable[[], Path]) -> None:
    d = copy()
    with closing(k.sql(d)) as db:
        value = bytes(db.execute("SELECT value FROM state WHERE key = ?", (f"l/{LOT0}",)).fetchone()[0])
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
    assert cp == chain.tip
    v = decode(value)
    i = v.index(k.PER_READING_G)  # the lot's quantity_g
    v[i] += 1000
    _edit(d, ("UPDATE state SET value = ? WHERE key = ?", (encode(v), f"l/{LOT0}")))
    rep = verify_chain(d)
    assert not rep.ok
    assert rep.first_bad_height == cp
    assert rep.error.startswith("state snapshot"), rep.error
    assert f"checkpoint at block {cp}" in rep.error
    # every block itself replayed fine: the reported state root is the chain's
    assert rep.state_root == verify_chain(chain.d).state_root
    # and a node (which starts lazily) refuses to read that lot
    node = Node(d, verify_threads=1)
    try:
        with pytest.raises(InvalidBlock, match=rf"^state: state bucket \d+ as stored .* does not hash to the "
                                               rf"bucket hash that block {cp}'s signed state root commits to"):
            node.state.lots[LOT0]
    finally:
        node.close()


def test_readings_accepted_refused_and_duplicate_are_counted_apart(tmp_path: Path) -> None:
    """A block decided elsewhere keeps refused transactions (CometBFT); none of their readings, nor
    a refused reading inside an accepted batch, nor a resubmitted one, is counted as accepted."""
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    k.register_fleet(node, 2)
    node.stop()  # from here on, blocks come only through finalize_block / commit
    wrong = k.key("not-the-device")
    mixed = k.readings_tx([k.reading(0, 0), k.reading(9, 0), k.reading(1, 0, signer=wrong)])  # 1 new, 2 refused
    again = k.readings_tx([k.reading(0, 0), k.reading(0, 1)])  # a duplicate and 1 new
    refused = k.readings_tx([k.reading(1, 0, signer=wrong), k.reading(1, 1, signer=wrong)])  # refused whole
    out = node.finalize_block([mixed, again, refused], k.NOW)
    assert [r.ok for r in out.results] == [True, True, False]
    assert [row[0] for row in out.results[0].detail] == ["accepted", "refused", "refused"]
    node.commit()
    node.close()
    rep = verify_chain(d)
    assert rep.ok, rep
    assert (rep.readings, rep.readings_accepted, rep.readings_refused, rep.readings_duplicate) == (2, 2, 4, 1)


def test_count_readings_of_one_result() -> None:
    from crev.audit.replay import count_readings
    from crev.errors import SignatureError
    from crev.ledger.apply import TxResult
    from crev.ledger.events import ReadingAccepted

    ev = ReadingAccepted("dgc-0", 1, 0, 60, 800, 300, 100, 1000, 700, b"h", "lot", k.OWNER)
    ok = TxResult(b"t", "submit_readings", True, None, (ev,),
                  [["accepted", "lot", 315], ["refused", "signature", "readings[1].signature", "bad"],
                   ["duplicate", "old", 315]])
    assert count_readings(b"", ok) == (1, 1, 1)
    failed = TxResult(b"t", "submit_readings", False, SignatureError("x", "y"), (), None)
    assert count_readings(b"undecodable", failed) == (0, 0, 0)
    transfer = TxResult(b"t", "transfer", True, None, (), ["x"])
    assert count_readings(b"", transfer) == (0, 0, 0)
