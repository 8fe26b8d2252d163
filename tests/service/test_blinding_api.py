"""Over a real socket: the leaf hashes public state proofs list no longer tell an account's JPY, the
supply's JPY total or a control record's prices, and the blinding values themselves never leave the
API except to their account (or device owner) and the operator (docs/api.md, "What is public").

The attack checked is the one that motivated blinds: a state proof of *any* key lists the (key,
leaf hash) pairs of its whole bucket; an absent lot id whose bucket holds ``a/<account>`` is easy
to find; every field of the account record but its JPY is public (``/v1/participants``), so trying
amounts finds the balance — for an account without a blind. With one, the same search over the
same range finds nothing, though the guessed fields are the record's own (checked against the
account's own signed proof).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.core.merkle import leaf_hash
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.submit_controls import control_payload
from crev.node.node import Node
from crev.service.auth import sign_request
from crev.service.server import Background, serve_in_thread
from tests.node import nodekit as k
from tests.service.apikit import get_json

PLAIN, VEILED = "plain-co", "veiled-co"
BLIND = bytes.fromhex("5eb1a7d0c0ffee0123456789abcdef42")
SALTS = (bytes([0x31]) * 16, bytes([0x32]) * 16)  # the two deposits'
CONTROL_SALT = bytes.fromhex("c0a75a1700112233445566778899aabb")
BALANCE = 12_345  # JPY: both accounts hold the same
SEARCH = range(0, 30_001)  # the amounts tried [JPY]
SLOT = k.T0 + 12 * 3600  # 2026-06-01 12:00 JST


class Api:
    def __init__(self, server: Background, ids: dict[str, str]) -> None:
        self.server, self.ids = server, ids

    def get(self, path: str, who: str | None = None) -> tuple[int, Any]:
        headers = sign_request(k.key(who), who, "GET", path, int(time.time())) if who else {}
        return get_json(self.server.port, path, headers)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    d = tmp_path_factory.mktemp("blinding") / "ledger"
    Node.init(d, k.genesis(), k.key("sequencer").seed)
    node = k.open_node(d)
    signers = k.register_fleet(node, 1)  # sun-co (owner of dgc-0) and buyer-co, without blinds

    def ok(raw: bytes) -> Any:
        r = node.submit_wait(raw)
        assert r.ok and r.committed, r.error
        return r

    ids = {
        "plain_reg": ok(signers.tx(k.OPERATOR, RegisterParticipant(PLAIN, "Plain Co", "buyer",
                                                                   k.key(PLAIN).public_key))).tx_hash,
        "veiled_reg": ok(signers.tx(k.OPERATOR, RegisterParticipant(VEILED, "Veiled Co", "buyer",
                                                                    k.key(VEILED).public_key, BLIND))).tx_hash}
    ok(signers.tx(k.OPERATOR, DepositJpy(PLAIN, BALANCE, "BANK-P", SALTS[0])))
    ok(signers.tx(k.OPERATOR, DepositJpy(VEILED, BALANCE, "BANK-V", SALTS[1])))
    p = control_payload(k.CHAIN, "dgc-0", 1, SLOT, SLOT + 30, 0, 0, "export_unpaid", -1, 7_000, 4_000, 9_000, -1,
                        CONTROL_SALT)
    item = [*p, k.key("dev/dgc-0").sign(encode(p))]
    ids["controls"] = ok(encode(["crev/tx/1", k.CHAIN, "submit_controls", "", 0, [item], b""])).tx_hash
    server = serve_in_thread(node, "127.0.0.1", 0, rate=0)
    try:
        yield Api(server, ids)
    finally:
        server.stop()
        node.close()


# --- the attack, from the wire format alone ------------------------------------------------------


def bucket(key: str, depth: int) -> int:
    """docs/wire-format.md §7: the first ``depth`` bits of SHA-256(key)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") >> (32 - depth)


def leaf(key: str, value: bytes) -> bytes:
    kb = key.encode()
    return hashlib.sha256(b"\x00" + len(kb).to_bytes(2, "big") + kb + value).digest()


def neighbour_leaf(api: Api, key: str) -> str:
    """The leaf hash of ``key`` as a public proof of another, absent key of its bucket lists it."""
    depth = api.get("/v1/proofs/state/g")[1]["depth"]
    probe = next(f"l/probe-{n}" for n in range(10**7) if bucket(f"l/probe-{n}", depth) == bucket(key, depth))
    status, proof = api.get(f"/v1/proofs/state/{probe}")
    assert status == 200 and proof["value"] is None and proof["verified"], proof
    return str(dict(proof["bucket_entries"])[key])


def account_guess(api: Api, account: str, jpy: int) -> list[Any]:
    """The account record as anyone can rebuild it from public answers, but for ``jpy``: it holds
    no C-REV and has no open bid (0 g, 0 JPY reserved)."""
    p = api.get(f"/v1/participants/{account}")[1]
    return [account, p["name"], p["role"], bytes.fromhex(p["public_key"]), p["nonce"], 0, 0, 0,
            p["registered_height"], jpy, 0]


def search(target: str, key: str, guess: Any) -> list[int]:
    return [jpy for jpy in SEARCH if leaf(key, encode(guess(jpy))).hex() == target]


def test_a_balance_is_found_by_trying_amounts_without_a_blind_and_not_with_one(api: Api) -> None:
    t0 = time.perf_counter()
    plain = account_guess(api, PLAIN, 0)
    assert search(neighbour_leaf(api, f"a/{PLAIN}"), f"a/{PLAIN}", lambda j: [*plain[:9], j, 0]) == [BALANCE]
    fields = account_guess(api, VEILED, 0)
    hits = search(neighbour_leaf(api, f"a/{VEILED}"), f"a/{VEILED}", lambda j: [*fields[:9], j, 0])
    print(f"searched {2 * len(SEARCH)} amounts in {time.perf_counter() - t0:.2f} s")
    assert hits == []
    # not for want of the right fields: the account's own proof shows them, with the blind after
    status, own = api.get(f"/v1/proofs/state/a/{VEILED}", VEILED)
    assert status == 200, own
    assert decode(bytes.fromhex(own["value"])) == [*fields[:9], BALANCE, 0, BLIND]
    assert api.get(f"/v1/proofs/state/a/{VEILED}")[0] == 401  # and nobody else reads it


def test_the_supply_total_is_not_found_by_trying_amounts(api: Api) -> None:
    status, op = api.get("/v1/proofs/state/s", k.OPERATOR)
    assert status == 200
    s = decode(bytes.fromhex(op["value"]))
    total = 2 * BALANCE
    assert s[7] == total and s[10] == sha256(sha256(SALTS[0])[:16] + SALTS[1])[:16]
    public = s[:7], s[8:10]  # units, retirements, orders, trades: all follow from public events
    hits = search(neighbour_leaf(api, "s"), "s", lambda j: [*public[0], j, *public[1]])
    assert hits == [] and total in SEARCH


# --- the blinding values stay with their account --------------------------------------------------


def test_a_registration_with_a_blind_withholds_its_bytes_from_the_public(api: Api) -> None:
    txh = api.ids["veiled_reg"]
    status, t = api.get(f"/v1/tx/{txh}")
    assert status == 200
    assert BLIND.hex() not in json.dumps(t)
    assert (t["kind"], t["ok"], t["raw"], t["proof"]) == ("register_participant", True, None, None)
    assert t["redacted"] == ["blind", "raw", "proof"] and t["private_to"] == VEILED
    assert t["detail"] == [VEILED]  # that it happened, and to whom, stays public
    assert t["events"] == [{"type": "participant_registered", "account_id": VEILED, "name": "Veiled Co",
                            "role": "buyer", "public_key": k.key(VEILED).public_key.hex()}]
    status, tr = api.get(f"/v1/trace/{txh}")
    assert status == 200 and BLIND.hex() not in json.dumps(tr) and tr["transaction"]["raw"] is None
    assert api.get(f"/v1/tx/{txh}", k.BUYER)[1]["raw"] is None  # another participant: the public answer
    for who in (VEILED, k.OPERATOR):
        status, full = api.get(f"/v1/tx/{txh}", who)
        assert status == 200 and "redacted" not in full
        raw = bytes.fromhex(full["raw"])
        assert sha256(raw).hex() == txh and decode(raw)[5][4] == BLIND
        assert full["proof"]["leaf"] == leaf_hash(raw).hex()


def test_a_registration_without_a_blind_stays_public_whole(api: Api) -> None:
    status, t = api.get(f"/v1/tx/{api.ids['plain_reg']}")
    assert status == 200 and "redacted" not in t and t["raw"] is not None and t["proof"] is not None
    assert len(decode(bytes.fromhex(t["raw"]))[5]) == 4


def test_a_control_salt_is_stored_and_never_read_by_the_public(api: Api) -> None:
    status, rows = api.get("/v1/devices/dgc-0/controls")
    assert status == 200 and rows["items"][0]["seq"] == 1 and rows["private_to"] == k.OWNER
    public = [rows, api.get("/v1/devices/dgc-0")[1], api.get(f"/v1/tx/{api.ids['controls']}")[1]]
    assert all(CONTROL_SALT.hex() not in json.dumps(x) for x in public)
    assert public[2]["raw"] is None and api.get("/v1/proofs/state/c/dgc-0/1")[0] == 401
    status, own = api.get("/v1/proofs/state/c/dgc-0/1", k.OWNER)
    assert status == 200
    rec = decode(bytes.fromhex(own["value"]))
    assert len(rec) == 13 and rec[12] == CONTROL_SALT and rec[6:9] == [7_000, 4_000, 9_000]
    # its leaf, listed in public proofs of its bucket, no longer gives the prices away: every field
    # but the first price right (the others are the owner's too), and no price in 0 … 10 000 fits
    listed = neighbour_leaf(api, "c/dgc-0/1")
    assert leaf("c/dgc-0/1", bytes.fromhex(own["value"])).hex() == listed
    hits = [m for m in range(0, 10_001) if leaf("c/dgc-0/1", encode([*rec[:6], m, *rec[7:12]])).hex() == listed]
    assert hits == []


def test_blinded_records_survive_a_restart_and_crev_verify(tmp_path: Any) -> None:
    """A restarted node reads blinded records back from its checkpoint (and lazily), and a replay
    from genesis reaches the same root."""
    from crev.audit.replay import verify_chain

    d = tmp_path / "ledger"
    Node.init(d, k.genesis(), k.key("sequencer").seed)
    node = k.open_node(d)
    s = k.register_fleet(node, 1)
    for raw in (s.tx(k.OPERATOR, RegisterParticipant(VEILED, "Veiled Co", "buyer", k.key(VEILED).public_key, BLIND)),
                s.tx(k.OPERATOR, DepositJpy(VEILED, BALANCE, "BANK-V", SALTS[0]))):
        assert node.submit_wait(raw).ok
    keys = (f"a/{VEILED}", "s")
    before = {key: node.state.value_of(key) for key in keys}
    root = node.state.tree.root()
    node.close()
    again = k.open_node(d)
    try:
        assert {key: again.state.value_of(key) for key in keys} == before
        assert again.state.accounts[VEILED].blind == BLIND
        assert again.state.supply.jpy_blind == sha256(SALTS[0])[:16]
        assert again.state.tree.root() == root
    finally:
        again.close()
    rep = verify_chain(d)
    assert rep.ok and rep.state_root == root.hex(), rep.error
