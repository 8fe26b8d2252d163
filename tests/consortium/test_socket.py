"""The ABCI socket server over a real socket: the methods CometBFT calls, in order, and bad input
(malformed protobuf, an oversized frame, an empty request, a wrong chain id, blocks out of order)
answered with a clear exception and no change to the state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crev.consortium.app import CODES, CrevApp
from crev.consortium.proto import uvarint
from crev.consortium.server import AbciServer
from crev.core.encoding import decode
from crev.core.statetree import StateProof
from crev.ledger.block import Header
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.tx import build_tx
from tests.consortium.abcikit import Client, pb
from tests.consortium.test_equality import kit_genesis
from tests.ledger_kit import CHAIN, key


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[CrevApp, tuple[str, int]]]:
    pb()
    app = CrevApp(tmp_path)
    srv = AbciServer(app, "tcp://127.0.0.1:0").start()
    host, port = srv.server.server_address[:2]
    try:
        yield app, (str(host), int(port))
    finally:
        srv.shutdown()
        app.close()


def init(c: Client) -> bytes:
    g = kit_genesis()
    r = c.call(init_chain={"chain_id": CHAIN, "app_state_bytes": g.to_json().encode(), "initial_height": 1,
                           "time": ts(c, g.genesis_time)})
    assert r.WhichOneof("value") == "init_chain", r
    return bytes(r.init_chain.app_hash)


def ts(c: Client, seconds: int) -> object:
    t = c.pb.Request().finalize_block.time
    t.seconds = seconds
    return t


def test_echo_info_init_finalize_commit_query(served: tuple[CrevApp, tuple[str, int]]) -> None:
    app, addr = served
    c = Client(addr)
    assert c.call(echo={"message": "hello"}).echo.message == "hello"
    info = c.call(info={"version": "0.38.26"}).info
    assert (info.last_block_height, info.last_block_app_hash) == (0, b"")
    early = c.call(check_tx={"tx": b"x"}).check_tx  # before InitChain: an error code, not an exception
    assert early.code == CODES["error"] and "InitChain has not run" in early.log
    g = kit_genesis()
    assert init(c) == g.hash
    reg = build_tx(CHAIN, RegisterParticipant("sun-co", "Sun Co", "prosumer", key("sun-co").public_key), "operator",
                   0, key("operator"))
    chk = c.call(check_tx={"tx": reg}).check_tx
    assert chk.code == 0
    garbage = c.call(check_tx={"tx": b"\x01\x02"}).check_tx
    assert garbage.code == CODES["malformed"] and garbage.codespace == "crev" and garbage.log
    t = g.genesis_time + 100
    prep = c.call(prepare_proposal={"txs": [reg, b"junk", reg], "max_tx_bytes": 1 << 20, "height": 1,
                                    "time": ts(c, t)}).prepare_proposal
    assert list(prep.txs) == [reg]  # junk and the repeat left out
    assert c.call(process_proposal={"txs": [reg], "height": 1, "time": ts(c, t)}).process_proposal.status == \
        c.pb.PROPOSAL_ACCEPT
    assert c.call(process_proposal={"txs": [reg, b"junk"], "height": 1, "time": ts(c, t)}).process_proposal.status \
        == c.pb.PROPOSAL_REJECT
    fin = c.call(finalize_block={"txs": [reg], "height": 1, "time": ts(c, t)}).finalize_block
    assert len(fin.tx_results) == 1 and fin.tx_results[0].code == 0
    assert app._pending is not None and app._pending.outcome is not None
    header = app._pending.outcome.header
    assert bytes(fin.app_hash) == header.hash and header.time == t
    assert [e.type for e in fin.tx_results[0].events] == ["crev_tx", "participant_registered"]
    attrs = {a.key: a.value for a in fin.tx_results[0].events[1].attributes}
    assert attrs["account_id"] == "sun-co" and attrs["role"] == "prosumer"
    assert decode(bytes(fin.tx_results[0].data))[2] is True  # the result's canonical bytes
    c.call(commit={})
    assert app.header(1) == header
    info = c.call(info={}).info
    assert (info.last_block_height, bytes(info.last_block_app_hash)) == (1, header.hash)
    # an empty CometBFT block: no crev block, the app hash stays
    fin = c.call(finalize_block={"txs": [], "height": 2, "time": ts(c, t + 1)}).finalize_block
    assert bytes(fin.app_hash) == header.hash and len(fin.tx_results) == 0
    c.call(commit={})
    assert c.call(info={}).info.last_block_height == 2
    # the same transaction again: refused by CheckTx, already committed
    again = c.call(check_tx={"tx": reg, "type": c.pb.CHECK_TX_RECHECK}).check_tx
    assert again.code == CODES["conflict"] and "already committed in crev block 1" in again.log
    # a record with its state proof, linked to the header whose hash is the app hash
    q = c.call(query={"path": "/state/a/sun-co"}).query
    assert q.code == 0 and q.height == 2
    ops = {op.type: op for op in q.proof_ops.ops}
    h = Header.decode(bytes(ops["crev/header"].data))
    assert h.hash == header.hash
    v = decode(bytes(ops["crev/state"].data))
    proof = StateProof(v[0], v[2] if v[1] else None, v[3], v[4], tuple((k, x) for k, x in v[5]), tuple(v[6]))
    assert proof.value == bytes(q.value) and proof.verify(h.state_root)
    absent = c.call(query={"path": "/state/a/nobody"}).query
    assert absent.code == CODES["not_found"] and absent.value == b""
    v = decode(bytes(absent.proof_ops.ops[0].data))
    assert StateProof(v[0], None, v[3], v[4], tuple((k, x) for k, x in v[5]), tuple(v[6])).verify(h.state_root)
    tq = c.call(query={"path": f"/tx/{header.tx_root.hex()}"}).query  # not a tx hash
    assert tq.code == CODES["not_found"]
    assert json.loads(c.call(query={"path": "/info"}).query.value)["crev_height"] == 1
    # no vote extensions, no state sync yet: each answered as such
    assert c.call(extend_vote={"height": 3}).extend_vote.vote_extension == b""
    assert c.call(verify_vote_extension={"vote_extension": b""}).verify_vote_extension.status == c.pb.VOTE_ACCEPT
    assert c.call(verify_vote_extension={"vote_extension": b"x"}).verify_vote_extension.status == c.pb.VOTE_REJECT
    assert len(c.call(list_snapshots={}).list_snapshots.snapshots) == 0
    assert c.call(offer_snapshot={}).offer_snapshot.result == c.pb.SNAPSHOT_REJECT
    assert c.call(apply_snapshot_chunk={}).apply_snapshot_chunk.result == c.pb.CHUNK_ABORT
    c.close()


def test_malformed_protobuf_gets_an_exception_and_changes_nothing(served: tuple[CrevApp, tuple[str, int]]) -> None:
    app, addr = served
    c = Client(addr)
    init(c)
    before = (app.info(), app.app_hash)
    bad = Client(addr)
    bad.send_raw(uvarint(5) + b"\xff\xff\xff\xff\xff")
    r = bad.read()
    assert r.WhichOneof("value") == "exception" and "malformed ABCI message" in r.exception.error
    assert bad.read() is None  # the server closed that connection
    big = Client(addr)
    big.send_raw(uvarint(1 << 40))
    r = big.read()
    assert "exceeds the limit" in r.exception.error
    empty = Client(addr)
    empty.send_raw(uvarint(0))
    assert "empty request" in empty.read().exception.error
    # out-of-order blocks and a second genesis are refused, not applied
    r = c.call(finalize_block={"txs": [], "height": 5, "time": ts(c, 10**9 * 2)})
    assert "last committed height is 0" in r.exception.error
    g2 = kit_genesis().to_json().replace('"Test Operator"', '"Another"').encode()
    r = c.call(init_chain={"chain_id": CHAIN, "app_state_bytes": g2, "time": ts(c, 2 * 10**9)})
    assert "holds another crev genesis" in r.exception.error
    r = c.call(init_chain={"chain_id": "wrong", "app_state_bytes": kit_genesis().to_json().encode(),
                           "time": ts(c, 2 * 10**9)})
    assert "differs from the crev genesis chain id" in r.exception.error
    wrong_chain = build_tx("other", RegisterParticipant("x", "X", "buyer", key("x").public_key), "operator", 0,
                           key("operator"))
    chk = c.call(check_tx={"tx": wrong_chain}).check_tx
    assert chk.code == CODES["malformed"] and chk.info == "tx.chain_id"
    oversized = b"\x00" * (kit_genesis().params.max_tx_bytes + 1)
    chk = c.call(check_tx={"tx": oversized}).check_tx
    assert chk.code == CODES["malformed"] and "exceeds the limit" in chk.log
    q = c.call(query={"path": "/state/zzz/1"}).query
    assert q.code == CODES["malformed"] and "not a state key" in q.log
    assert c.call(query={"path": "/tx/not-hex"}).query.code == CODES["malformed"]
    assert c.call(query={"path": "/nothing"}).query.code == CODES["not_found"]
    assert c.call(echo={"message": "still here"}).echo.message == "still here"
    assert (app.info(), app.app_hash) == before
    for x in (c, bad, big, empty):
        x.close()


def test_events_all_or_summary_for_a_readings_batch(tmp_path: Path) -> None:
    """Every crev event as an ABCI event, or (--events summary) a batch's per-reading events as one
    crev_readings count event; the result bytes (data) and the app hash are the same either way."""
    from crev.consortium.server import Handlers
    from tests.node import nodekit as k

    p = pb()
    g = k.genesis()
    s = k.Signers()
    setup = [s.tx(k.OPERATOR, RegisterParticipant(k.OWNER, "Sun Co", "prosumer", k.key(k.OWNER).public_key))]
    setup += [s.tx(k.OPERATOR, RegisterDevice(
        k.device_id(i), k.OWNER, k.key(f"dev/{k.device_id(i)}").public_key, k.CAPACITY_W, k.T0 - 30 * 86400,
        35_681_236, 139_767_125, "tokyo", f"SN-{i}", k.T0 + 5 * 365 * 86400, False, "solar_pv")) for i in range(2)]
    batch = k.readings_tx([k.reading(0, 0), k.reading(1, 0), k.reading(0, 0)])
    seen = {}
    for mode in ("all", "summary"):
        app = CrevApp(tmp_path / mode)
        h = Handlers(app, p, mode)
        app.init_chain(k.CHAIN, g.genesis_time, g.to_json().encode(), [])
        app.finalize_block(setup, 1, k.NOW)
        app.commit()
        req = p.Request()
        req.finalize_block.height = 2
        req.finalize_block.time.seconds = k.NOW + 1
        req.finalize_block.txs.append(batch)
        fin = h.handle(req).finalize_block
        res = fin.tx_results[0]
        seen[mode] = (bytes(fin.app_hash), bytes(res.data), [(e.type, {a.key: a.value for a in e.attributes})
                                                              for e in res.events])
        app.commit()
        app.close()
    assert seen["all"][:2] == seen["summary"][:2]
    assert [t for t, _ in seen["all"][2]] == ["crev_tx", "issued", "reading_accepted", "issued", "reading_accepted"]
    assert seen["summary"][2][1] == ("crev_readings", {"accepted": "2", "duplicate": "1", "refused": "0", "lots": "2",
                                                       "issued_g": str(2 * k.PER_READING_G)})
    assert len(seen["summary"][2]) == 2


def test_a_unix_socket_address(tmp_path: Path) -> None:
    import socket

    from crev.consortium.proto import frame, read_uvarint

    p = pb()
    app = CrevApp(tmp_path / "data")
    path = tmp_path / "abci.sock"
    srv = AbciServer(app, f"unix://{path}").start()
    try:
        assert srv.address == f"unix://{path}"
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            req, flush = p.Request(), p.Request()
            req.echo.message = "over a unix socket"
            flush.flush.SetInParent()
            s.sendall(frame(req) + frame(flush))
            f = s.makefile("rb")
            n = read_uvarint(lambda: f.read(1))
            assert n is not None
            assert p.Response.FromString(f.read(n)).echo.message == "over a unix socket"
            f.close()
    finally:
        srv.shutdown()
        app.close()
