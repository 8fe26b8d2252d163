"""The embedded node's submit pipeline: receipts, idempotency, refusals, queries with state
proofs, and the chain of signed blocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crev.audit.replay import verify_chain
from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.core.signing import verify
from crev.core.statetree import StateProof
from crev.errors import InvalidBlock, MalformedError
from crev.ledger.block import Header
from crev.ledger.events import Event
from crev.ledger.genesis import Genesis
from crev.ledger.messages.transfer import Transfer
from crev.ledger.snapshot import load_state
from crev.ledger.tx import build_tx
from crev.node.node import DB_FILE, GENESIS_FILE, LedgerView, Node, Receipt, SealTimes
from crev.node.store import Store
from tests.node import nodekit as k

LOT0 = "dgc-0:20260601T0900"  # device dgc-0's reading at 09:00 JST on 2026-06-01
LOT1 = "dgc-1:20260601T0900"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[Node, k.Signers, Path]]:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    signers = k.register_fleet(node, 2)
    yield node, signers, d
    node.close()


def snapshot(node: Node) -> tuple[int, bytes, int, int]:
    st = node.state
    return st.height, st.tree.root(), st.supply.issued_g, len(st.lots)


def content(node: Node) -> tuple[bytes, int, int, dict[str, int]]:
    """The state without the chain head (a refusal at sealing may still seal an empty block)."""
    st = node.state
    return (st.tree.root(), st.supply.issued_g, len(st.lots),
            {a.account_id: a.nonce for a in st.accounts.values()})


def stored_height(d: Path) -> int:
    s = Store(d / DB_FILE)
    try:
        return s.height()
    finally:
        s.close()


def in_any_block(d: Path, raw: bytes) -> bool:
    s = Store(d / DB_FILE)
    try:
        return any(raw in b.txs for b in s.blocks())
    finally:
        s.close()


# --- receipts -------------------------------------------------------------------------------


def test_receipt_carries_height_index_and_detail(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, d = ledger
    raw = k.batch(2, 0)
    r = node.submit_wait(raw)
    assert r.committed and r.ok and r.error is None
    assert r.tx_hash == sha256(raw).hex()
    assert r.height == node.state.height and r.index == 0
    q = (k.GEN - k.EXP) * k.FACTOR // 1000
    assert q == 315
    assert r.detail == [["accepted", LOT0, q], ["accepted", LOT1, q]]
    types = [e["type"] for e in r.events]
    assert types.count("reading_accepted") == 2 and types.count("issued") == 2
    issued = [e for e in r.events if e["type"] == "issued"]
    assert {e["lot_id"] for e in issued} == {LOT0, LOT1}
    assert node.state.supply.issued_g == 2 * q
    s = Store(d / DB_FILE)
    try:
        row = s.tx(sha256(raw))
        assert row is not None and row[:2] == (r.height, r.index) and row[3]
        block = s.block(r.height)
        assert block is not None and block.txs[r.index] == raw
    finally:
        s.close()


def test_the_sealer_builds_no_event_json_until_a_receipt_s_events_are_asked_for(
        ledger: tuple[Node, k.Signers, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Receipts are settled with the events as objects: their JSON form is built by whoever asks
    (an HTTP handler), once, and a receipt asked for without them never builds it."""
    node, _, _ = ledger
    built: list[str] = []
    to_dict = Event.to_dict

    def counted(self: Event) -> dict[str, Any]:
        built.append(self.type)
        return to_dict(self)

    monkeypatch.setattr(Event, "to_dict", counted)
    raw = k.batch(2, 0)
    r = node.submit_wait(raw)
    assert r.ok and built == []
    short = r.to_dict(events=False)
    assert "events" not in short and short["detail"] == r.detail and built == []
    assert [e["type"] for e in r.events] == ["issued", "reading_accepted"] * 2 and len(built) == 4
    assert r.events is r.events and len(built) == 4  # once
    assert r.to_dict()["events"] == r.events
    stored = node.committed_receipt(sha256(raw))  # read back from the block's stored results
    assert stored is not None and stored == r and stored.to_dict() == r.to_dict()


def test_the_sealer_accounts_its_cpu_by_phase(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, _ = ledger
    before = replace(node.seal_times)
    h = node.state.height
    for j in range(3):
        assert node.submit_wait(k.batch(2, j)).ok
    t = node.seal_times
    assert (t.readings - before.readings, t.blocks - before.blocks) == (6, node.state.height - h)
    assert t.apply > before.apply and t.finish > before.finish and t.commit > before.commit
    per = t.per_reading_us()
    assert list(per) == ["read_ahead", "apply", "finish", "commit", "receipts", "evict"]
    assert per["apply"] == t.apply / t.readings * 1e6
    assert SealTimes().per_reading_us() == {}


def test_receipts_of_one_block_have_distinct_indexes(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, d = ledger
    raws = [k.readings_tx([k.reading(dev, kk)]) for kk in range(3) for dev in range(2)]
    futs = [node.submit(raw) for raw in raws]
    receipts = [f.result(30) for f in futs]
    assert all(r.committed and r.ok for r in receipts)
    assert len({(r.height, r.index) for r in receipts}) == len(raws)
    s = Store(d / DB_FILE)
    try:
        for raw, r in zip(raws, receipts, strict=True):
            block = s.block(r.height)
            assert block is not None and block.txs[r.index] == raw
    finally:
        s.close()
    # submission order is kept: a device's readings land in seq order
    assert [(r.height, r.index) for r in receipts] == sorted((r.height, r.index) for r in receipts)


# --- idempotency ----------------------------------------------------------------------------


def test_resubmitting_the_same_bytes_returns_the_committed_receipt(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, d = ledger
    raw = k.batch(2, 0)
    first = node.submit_wait(raw)
    before = snapshot(node)
    again = node.submit_wait(raw)
    assert again.committed and again.ok
    assert (again.tx_hash, again.height, again.index, again.detail) == \
        (first.tx_hash, first.height, first.index, first.detail)
    assert [e["type"] for e in again.events] == [e["type"] for e in first.events]
    assert snapshot(node) == before  # no new block, no new issuance
    assert stored_height(d) == before[0]


def test_same_bytes_twice_in_flight_commit_once(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, d = ledger
    raw = k.batch(2, 0)
    futs = [node.submit(raw) for _ in range(5)]
    receipts = [f.result(30) for f in futs]
    assert len({(r.tx_hash, r.height, r.index) for r in receipts}) == 1
    assert node.state.supply.issued_g == 2 * k.PER_READING_G
    s = Store(d / DB_FILE)
    try:
        assert sum(b.txs.count(raw) for b in s.blocks()) == 1
    finally:
        s.close()


def test_same_readings_in_new_bytes_issue_nothing_new(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, _ = ledger
    node.submit_wait(k.batch(2, 0))
    issued = node.state.supply.issued_g
    # the same two readings in the other order: different transaction bytes, same readings
    height = node.state.height
    r = node.submit_wait(k.readings_tx([k.reading(1, 0), k.reading(0, 0)]))
    assert not r.committed and not r.ok and r.error is not None
    assert (r.error["code"], r.error["field"]) == ("conflict", "readings")
    assert r.error["reason"].startswith("all 2 readings of this batch are already on the ledger")
    assert r.error["reason"].endswith(f"(readings[0] was accepted at height {height}, lot '{LOT1}')")
    assert node.state.supply.issued_g == issued
    node.flush()
    assert node.state.height == height  # nothing was sealed for it


def test_resubmitted_receipt_equals_the_original(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, _ = ledger
    raw = k.batch(2, 0)
    first = node.submit_wait(raw)
    assert node.submit_wait(raw) == first


def test_resubmission_racing_the_commit_is_not_sealed_twice(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, d = ledger
    raw = k.batch(2, 0)
    h = sha256(raw)
    first = node.submit(raw)
    while not first.done() and h not in node._inflight:
        time.sleep(0.0005)
    assert not first.done()  # the first copy is queued for sealing
    real = node.committed_receipt

    def read_then_lose_the_cpu(tx_hash: bytes) -> Receipt | None:
        # whatever the check stage reads, the sealer may commit the first copy right after
        out = real(tx_hash)
        first.result(30)
        return out

    node.committed_receipt = read_then_lose_the_cpu  # type: ignore[method-assign]
    second = node.submit(raw).result(30)
    node.committed_receipt = real  # type: ignore[method-assign]
    r1 = first.result()
    node.close()
    rep = verify_chain(d)
    assert rep.ok, rep  # a copy sealed twice would break the chain
    assert (second.height, second.index) == (r1.height, r1.index)


# --- refusals -------------------------------------------------------------------------------


def _unsigned(body: object, *, chain: str = k.CHAIN, kind: str = "submit_readings") -> bytes:
    return encode(["crev/tx/1", chain, kind, "", 0, body, b""])


def _bad_reading(index: int, **change: int) -> list[object]:
    names = ["version", "chain_id", "device_id", "seq", "interval_start", "interval_s", "generation_wh",
             "import_wh", "export_wh"]
    r = k.reading(index, 0)
    for name, v in change.items():
        r[names.index(name)] = v
    return r


MALFORMED = [
    (b"\xff\x00 not cbor", "tx"),
    (encode(["crev/tx/1", k.CHAIN, "submit_readings"]), "tx"),
    (_unsigned([k.reading(0, 0)], chain="other-chain"), "tx.chain_id"),
    (_unsigned([k.reading(0, 0)], kind="mint_money"), "tx.kind"),
    (_unsigned([]), "body"),
    (_unsigned([_bad_reading(0, export_wh=k.GEN + 1)]), "readings[0].export_wh"),
    (_unsigned([_bad_reading(0, import_wh=-5)]), "readings[0].import_wh"),
    (encode(["crev/tx/1", k.CHAIN, "transfer", k.OWNER, 0, [k.BUYER, [[LOT0, 1]], ""], b"short"]),
     "tx.signature"),
]


def test_a_malformed_reading_beside_a_good_one_is_refused_alone(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, _ = ledger
    issued = node.state.supply.issued_g
    r = node.submit_wait(_unsigned([k.reading(0, 0), _bad_reading(1, interval_s=1234)]))
    assert r.committed and r.ok and r.error is None
    assert r.detail is not None and r.detail[0] == ["accepted", LOT0, k.PER_READING_G]
    assert r.detail[1] == ["refused", "malformed", "readings[1].interval_s",
                           "must be whole minutes dividing 1800 s (60..1800)"]
    assert node.state.supply.issued_g == issued + k.PER_READING_G


@pytest.mark.parametrize(("raw", "field"), MALFORMED, ids=[m[1] + f"-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_tx_is_refused_naming_the_field(ledger: tuple[Node, k.Signers, Path], raw: bytes,
                                                  field: str) -> None:
    node, _, d = ledger
    before = snapshot(node)
    r = node.submit_wait(raw)
    assert not r.committed and not r.ok
    assert r.height == 0 and r.index == -1 and r.detail is None
    assert r.error is not None and r.error["code"] == "malformed"
    assert r.error["field"] == field and r.error["reason"]
    assert r.tx_hash == sha256(raw).hex()
    assert snapshot(node) == before
    assert stored_height(d) == before[0]
    assert not in_any_block(d, raw)
    # the node is still healthy
    assert node.submit_wait(k.batch(2, 0)).ok


def test_badly_signed_tx_is_refused_and_in_no_block(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, signers, d = ledger
    node.submit_wait(k.batch(2, 0))
    before = content(node)
    forged = signers.tx(k.OWNER, Transfer(k.BUYER, ((LOT0, 100),), "forged"), signing_key=k.key("mallory"))
    r = node.submit_wait(forged)
    assert not r.committed and not r.ok
    assert r.height == 0 and r.index == -1
    assert r.error is not None
    assert (r.error["code"], r.error["field"]) == ("bad_signature", "tx.signature")
    assert content(node) == before
    assert node.state.accounts[k.OWNER].nonce == 0
    assert not in_any_block(d, forged)
    s = Store(d / DB_FILE)
    try:
        assert s.tx(sha256(forged)) is None
    finally:
        s.close()
    # resubmitting it is refused again (nothing is left in flight)
    assert node.submit_wait(forged).error == r.error
    # the owner's real transfer with the same nonce goes through
    signers.nonces[k.OWNER] = 0
    ok = node.submit_wait(signers.tx(k.OWNER, Transfer(k.BUYER, ((LOT0, 100),), "real")))
    assert ok.committed and ok.ok
    assert node.state.accounts[k.BUYER].tradable_g == 100


def test_reading_with_bad_device_signature_is_refused_inside_a_committed_batch(
        ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, _ = ledger
    forged = k.reading(0, 0, signer=k.key("mallory"))
    r = node.submit_wait(k.readings_tx([forged, k.reading(1, 0)]))
    assert r.committed and r.ok
    assert r.detail[0][:3] == ["refused", "bad_signature", "readings[0].signature"]
    assert r.detail[1] == ["accepted", LOT1, k.PER_READING_G]
    assert LOT0 not in node.state.lots
    assert node.state.devices["dgc-0"].last_seq == 0
    assert node.state.supply.issued_g == k.PER_READING_G


def test_rule_violation_at_sealing_is_refused_and_not_left_in_flight(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, signers, d = ledger
    node.submit_wait(k.batch(2, 0))
    before = content(node)
    too_much = signers.tx(k.OWNER, Transfer(k.BUYER, ((LOT0, k.PER_READING_G + 1),), "too much"))
    r = node.submit_wait(too_much)
    assert not r.committed and r.error is not None and r.error["field"].startswith("body.items")
    assert content(node) == before and not in_any_block(d, too_much)
    assert not node._inflight
    assert node.submit_wait(too_much).error == r.error


def test_refusals_alone_seal_no_block(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, signers, d = ledger
    before = snapshot(node)
    forged = signers.tx(k.OWNER, Transfer(k.BUYER, ((LOT0, 1),), "forged"), signing_key=k.key("mallory"))
    assert not node.submit_wait(forged).ok
    assert snapshot(node) == before
    assert stored_height(d) == before[0]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the writer dies loudly
def test_a_checkpoint_writer_that_fails_stops_the_node_instead_of_hanging_flush(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint thread dies on a write error (here a full disk): ``flush`` then raises it
    instead of waiting for a checkpoint that will never be written, and the node is stopped."""
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    try:
        k.register_fleet(node, 2)

        def full(self: Store, _cp: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Store, "store_checkpoint", full)
        t = time.monotonic()
        with pytest.raises(RuntimeError, match=r"checkpoint writer failed: .*No space left on device"):
            node.flush()
        assert time.monotonic() - t < 10 and isinstance(node.fatal, OSError)
    finally:
        node.close()


def test_close_resolves_every_pending_submission(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    k.register_fleet(node, 2)
    node.close()
    node = k.open_node(d, block_interval_ms=5000)  # nothing is sealed before close()
    futs = [node.submit(k.readings_tx([k.reading(dev, kk)])) for kk in range(20) for dev in range(2)]
    node.close()
    assert all(f.done() for f in futs), f"{sum(not f.done() for f in futs)} of {len(futs)} never resolved"


def test_submit_after_close_fails_instead_of_hanging(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    node.close()
    with pytest.raises(RuntimeError):
        node.submit(k.batch(1, 0)).result(timeout=2)


# --- queries --------------------------------------------------------------------------------


def test_query_lot_returns_record_and_verifying_proof(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, d = ledger
    node.submit_wait(k.batch(2, 0))
    record, proof = node.query(f"lot/{LOT0}")
    assert isinstance(proof, StateProof)
    value = node.state.value_of(f"l/{LOT0}")
    assert value is not None and record == decode(value)
    assert LOT0 in record and k.PER_READING_G in record and "dgc-0" in record
    root = node.state.tree.root()
    assert proof.key == f"l/{LOT0}" and proof.value == encode(record)
    assert proof.verify(root)
    s = Store(d / DB_FILE)
    try:
        head = s.block(s.height())
        assert head is not None and head.header.state_root == root  # the root a header commits to
    finally:
        s.close()
    # a proof of a different value, or against another root, does not verify
    forged = StateProof(proof.key, proof.value[:-1] + bytes([proof.value[-1] ^ 1]), proof.depth, proof.bucket,
                        proof.bucket_entries, proof.siblings)
    assert not forged.verify(root)
    assert not proof.verify(sha256(b"another root"))
    # an absent lot: no record, and a proof of absence that verifies
    none, absent = node.query("lot/dgc-0:20990101T0000")
    assert none is None and absent.value is None and absent.verify(root)
    acct, aproof = node.query(f"account/{k.OWNER}")
    assert k.OWNER in acct and aproof.verify(root)
    with pytest.raises(ValueError):
        node.query("nothing/x")


# --- the chain ------------------------------------------------------------------------------


def test_blocks_chain_by_prev_hash_and_are_signed_by_the_sequencer(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, d = ledger
    for kk in range(3):
        node.submit_wait(k.batch(2, kk))
    g = Genesis.from_json((d / GENESIS_FILE).read_text("utf-8"))
    assert g.sequencer_public_key == k.key("sequencer").public_key
    node.close()
    s = Store(d / DB_FILE)
    try:
        blocks = list(s.blocks())
    finally:
        s.close()
    assert [b.header.height for b in blocks] == list(range(1, len(blocks) + 1))
    assert len(blocks) >= 2
    prev = g.hash
    for b in blocks:
        assert b.header.prev_hash == prev
        assert b.header.chain_id == k.CHAIN and b.header.tx_count == len(b.txs)
        assert verify(g.sequencer_public_key, b.header.encode(), b.signature)
        assert not verify(k.key("mallory").public_key, b.header.encode(), b.signature)
        prev = b.header.hash
    assert node.state.last_block_hash == prev
    assert blocks[-1].header.state_root == node.state.tree.root()
    assert node.info()["app_hash"] == node.state.tree.root().hex()
    assert verify_chain(d).ok


def test_concurrent_submitters(ledger: tuple[Node, k.Signers, Path]) -> None:
    node, _, d = ledger
    results: dict[int, list[Receipt]] = {}

    def device(dev: int) -> None:
        futs: list[Future[Receipt]] = [node.submit(k.readings_tx([k.reading(dev, kk)])) for kk in range(10)]
        results[dev] = [f.result(60) for f in futs]

    threads = [threading.Thread(target=device, args=(dev,)) for dev in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for dev in range(2):
        assert all(r.committed and r.detail[0][0] == "accepted" for r in results[dev])
        assert node.state.devices[k.device_id(dev)].last_seq == 10
    assert node.state.supply.issued_g == 20 * k.PER_READING_G
    node.close()
    rep = verify_chain(d)
    assert rep.ok and rep.readings == 20


# --- block size, the manual path, start-up checks ---------------------------------------------------


def test_max_block_txs_seals_without_waiting_for_the_interval(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, block_interval_ms=600_000, max_block_txs=5)  # the interval alone: 10 minutes
    try:
        t0 = time.monotonic()
        k.register_fleet(node, 8)  # 2 participants + 8 devices: 10 transactions, one signer's nonces
        assert time.monotonic() - t0 < 20
        blocks = list(node.store.blocks())
        assert [b.header.tx_count for b in blocks] == [5, 5]
        assert len(node.state.devices) == 8
    finally:
        node.close()


def test_the_manual_path_is_refused_while_the_sealer_runs(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    try:
        k.register_fleet(node, 1)
        height, root = node.state.height, node.state.tree.root()
        with pytest.raises(RuntimeError, match=r"finalize_block is the manual .ABCI. path and the node's own "
                                               "sealer is running"):
            node.finalize_block([k.batch(1, 0)], k.NOW)
        with pytest.raises(RuntimeError, match=r"commit is the manual .ABCI. path"):
            node.commit()
        assert (node.state.height, node.state.tree.root()) == (height, root)
        node.stop()
        node.finalize_block([k.batch(1, 0)], k.NOW)
        assert node.commit() == height + 1
    finally:
        node.close()


def test_check_tx_reads_no_state_and_verifies_no_signature(tmp_path: Path) -> None:
    """What the docstring says: stateless decoding and shape only."""
    node = k.open_node(k.init_dir(tmp_path / "ledger"), start=False)
    try:
        forged = k.Signers().tx("mallory", Transfer(k.BUYER, ((LOT0, 1),), ""), signing_key=k.key("not-mallory"))
        tx = node.check_tx(forged)  # an unknown signer, a signature by the wrong key: both for later
        assert (tx.kind, tx.signer, tx.nonce) == ("transfer", "mallory", 0)
        with pytest.raises(MalformedError) as err:
            node.check_tx(build_tx("other-chain", Transfer(k.BUYER, ((LOT0, 1),), ""), "x", 0, k.key("x")))
        assert err.value.field == "tx.chain_id"
    finally:
        node.close()


def test_a_node_refuses_to_start_on_a_state_that_breaks_an_invariant(tmp_path: Path) -> None:
    """A snapshot whose root even matches its (re-signed) header still has to add up."""
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    k.register_fleet(node, 1)
    assert node.submit_wait(k.batch(1, 0)).ok
    node.close()
    with closing(k.sql(d)) as db:
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
        assert cp == stored_height(d)
        v = decode(bytes(db.execute("SELECT value FROM state WHERE key = ?", (f"l/{LOT0}",)).fetchone()[0]))
        v[v.index(k.PER_READING_G)] += 1000  # the lot's quantity_g: its segments no longer cover it
        db.execute("UPDATE state SET value = ? WHERE key = ?", (encode(v), f"l/{LOT0}"))
        g = Genesis.from_json((d / GENESIS_FILE).read_text("utf-8"))
        old = Header.decode(bytes(db.execute("SELECT header FROM blocks WHERE height = ?", (cp,)).fetchone()[0]))
        items = [(str(a), bytes(b)) for a, b in db.execute("SELECT key, value FROM state")]
        root = load_state(g, items, cp, old.hash, old.time).tree.root()
        new = Header(old.chain_id, old.height, old.time, old.prev_hash, old.tx_root, old.results_root, root,
                     old.tx_count)
        db.execute("UPDATE blocks SET header = ?, hash = ?, signature = ? WHERE height = ?",
                   (new.encode(), new.hash, k.key("sequencer").sign(new.encode()), cp))
    msg = (rf"^lot {LOT0}: segments do not cover the issued quantity \(state loaded at height {cp}; "
           r"refusing to run on it: run `crev verify`\)$")
    with pytest.raises(InvalidBlock, match=msg):
        Node(d, verify_threads=1)
    with pytest.raises(InvalidBlock, match=msg):
        LedgerView(d)
