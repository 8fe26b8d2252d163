"""What is public (docs/api.md): over a real socket, a participant's JPY deposits and withdrawals
show their account and that they happened, never their amounts, bank references, the balance
after them or their bytes, to anyone but the account itself and the operator (a signed request,
as for ``/v1/accounts/{id}``). ``GET /v1/tx/{hash}``, ``/v1/trace/{hash}``, ``/v1/blocks/{height}``
and the live stream are checked; everything else (a transfer, a trade, a retirement) stays
public with its bytes and its proofs, so the dashboard still checks them.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from typing import Any

import pytest

from crev.core.hashing import sha256
from crev.core.merkle import leaf_hash, verify_proof
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.withdraw_jpy import WithdrawJpy
from crev.service.auth import sign_request
from crev.service.server import Background, serve_in_thread
from tests.node import nodekit as k
from tests.service import apikit as a
from tests.service.test_api_stream import Events

DEPOSIT, DEPOSIT_REF = 7_777_777, "BANK-SECRET-7"
WITHDRAWAL, WITHDRAWAL_REF = 123_457, "BANK-SECRET-8"
REDACTED = ["amount_jpy", "reference", "detail", "raw", "proof"]


class Served:
    def __init__(self, w: a.World, server: Background) -> None:
        self.w, self.server = w, server
        self.secrets: set[int] = set()

    def get(self, path: str, who: str | None = None, key: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
        h = dict(headers or {})
        if who is not None:
            h.update(sign_request(k.key(key or who), who, "GET", path, int(time.time())))
        return a.get_json(self.server.port, path, h)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    w = a.build(tmp_path_factory.mktemp("private") / "ledger")
    dep = w.tx(k.OPERATOR, DepositJpy(k.BUYER, DEPOSIT, DEPOSIT_REF))
    wd = w.tx(k.OPERATOR, WithdrawJpy(k.BUYER, WITHDRAWAL, WITHDRAWAL_REF))
    w.ids.update(deposit_tx=dep.tx_hash, withdraw_tx=wd.tx_hash)
    server = serve_in_thread(w.node, "127.0.0.1", 0, rate=0)
    s = Served(w, server)
    s.secrets = {DEPOSIT, WITHDRAWAL, dep.detail[1], wd.detail[1]}  # amounts and the balances after
    try:
        yield s
    finally:
        server.stop()
        w.node.close()


def leaks(answer: Any, secrets: set[int]) -> list[Any]:
    """Every secret amount or bank reference anywhere in a JSON answer."""
    found: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, bool):
            return
        elif (isinstance(v, int) and v in secrets) or (isinstance(v, str) and "BANK-SECRET" in v):
            found.append(v)

    walk(answer)
    return found


@pytest.mark.parametrize(("which", "event", "amount", "ref"), [
    ("deposit_tx", "jpy_deposited", DEPOSIT, DEPOSIT_REF),
    ("withdraw_tx", "jpy_withdrawn", WITHDRAWAL, WITHDRAWAL_REF),
])
def test_jpy_movements_are_redacted_in_public_tx_answers(served: Served, which: str, event: str, amount: int,
                                                         ref: str) -> None:
    txh = served.w.ids[which]
    status, t = served.get(f"/v1/tx/{txh}")
    assert status == 200
    assert leaks(t, served.secrets) == []
    assert (t["tx_hash"], t["kind"], t["signer"], t["ok"]) == (txh, which.replace("_tx", "_jpy"), k.OPERATOR, True)
    assert t["events"] == [{"type": event, "account": k.BUYER, "amount_jpy": None, "reference": None}]
    assert (t["detail"], t["raw"], t["proof"]) == (None, None, None)
    assert t["redacted"] == REDACTED and t["private_to"] == k.BUYER
    assert t["block"]["height"] == t["height"]  # where it is stays public

    # the account itself and the operator read it whole, bytes and inclusion proof included
    for who in (k.BUYER, k.OPERATOR):
        status, full = served.get(f"/v1/tx/{txh}", who)
        assert status == 200, full
        assert "redacted" not in full
        e = full["events"][0]
        assert (e["account"], e["amount_jpy"], e["reference"]) == (k.BUYER, amount, ref)
        assert full["detail"][0] == k.BUYER and full["detail"][1] in served.secrets
        raw = bytes.fromhex(full["raw"])
        assert sha256(raw).hex() == txh
        p = full["proof"]
        assert p["leaf"] == leaf_hash(raw).hex()
        assert verify_proof(leaf_hash(raw), p["index"], p["size"], [bytes.fromhex(x) for x in p["path"]],
                            bytes.fromhex(p["tx_root"]))

    # another participant's signed request sees what the public sees
    status, other = served.get(f"/v1/tx/{txh}", k.OWNER)
    assert status == 200 and other["redacted"] == REDACTED and leaks(other, served.secrets) == []


def test_a_bad_or_replayed_signature_on_a_public_read_is_refused(served: Served) -> None:
    path = f"/v1/tx/{served.w.ids['deposit_tx']}"
    status, payload = served.get(path, k.BUYER, key="mallory")
    assert status == 401 and payload["error"]["field"] == "X-Crev-Signature"
    headers = sign_request(k.key(k.BUYER), k.BUYER, "GET", path, int(time.time()))
    assert served.get(path, headers=headers)[0] == 200
    status, payload = served.get(path, headers=headers)
    assert status == 409 and payload["error"]["field"] == "X-Crev-Nonce"
    # half a signature is no signature
    status, payload = served.get(path, headers={"X-Crev-Account": k.BUYER})
    assert status == 401


def test_trace_of_a_jpy_movement_is_redacted_and_the_block_still_checks(served: Served) -> None:
    txh = served.w.ids["deposit_tx"]
    status, tr = served.get(f"/v1/trace/{txh}")
    assert status == 200 and tr["kind"] == "tx"
    assert leaks(tr, served.secrets) == []
    assert tr["transaction"]["redacted"] == REDACTED and tr["transaction"]["raw"] is None
    assert tr["raw_txs"] == {}
    assert str(tr["transaction"]["height"]) in tr["blocks"]  # the block header is still there to check
    status, full = served.get(f"/v1/trace/{txh}", k.BUYER)
    assert status == 200 and sha256(bytes.fromhex(full["transaction"]["raw"])).hex() == txh


def test_blocks_name_jpy_movements_without_amounts(served: Served) -> None:
    status, t = served.get(f"/v1/tx/{served.w.ids['deposit_tx']}")
    status, b = served.get(f"/v1/blocks/{t['height']}")
    assert status == 200 and leaks(b, served.secrets) == []
    row = next(x for x in b["txs"] if x["tx_hash"] == t["tx_hash"])
    assert set(row) == {"index", "tx_hash", "kind", "signer", "ok"} and row["kind"] == "deposit_jpy"


def test_everything_else_stays_public_with_its_bytes_and_proofs(served: Served) -> None:
    for which in ("transfer_tx", "trade_tx", "retire_tx", "readings_tx"):
        status, t = served.get(f"/v1/tx/{served.w.ids[which]}")
        assert status == 200 and "redacted" not in t
        raw = bytes.fromhex(t["raw"])
        assert sha256(raw).hex() == t["tx_hash"] and t["proof"]["leaf"] == leaf_hash(raw).hex()
    # a trade is public market data: price, quantity and value, on the tape as on any exchange's
    status, trades = served.get("/v1/markets/spot/trades")
    assert status == 200 and trades["items"][-1]["value_jpy"] == 600 and trades["items"][-1]["price"] == 2_000_000
    # a retirement's trace carries every transaction's bytes, so the browser checks each proof
    status, tr = served.get(f"/v1/trace/{a.RETIREMENT}")
    assert status == 200
    proofs = [s["proof"] for lot in tr["lots"] for s in lot["steps"] if s.get("proof")]
    assert proofs and all(p["tx_hash"] in tr["raw_txs"] for p in proofs)
    for p in proofs:
        raw = bytes.fromhex(tr["raw_txs"][p["tx_hash"]])
        assert verify_proof(leaf_hash(raw), p["index"], p["size"], [bytes.fromhex(x) for x in p["path"]],
                            bytes.fromhex(p["tx_root"]))


def test_the_stream_carries_no_jpy_movement(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port, timeout=60)
    try:
        conn.request("GET", "/v1/stream")
        events = Events(conn.getresponse())
        assert events.next()[0] == "hello"
        r = served.w.tx(k.OPERATOR, DepositJpy(k.BUYER, 5_555_555, "BANK-SECRET-9"))
        seen: list[tuple[str, Any]] = []
        while True:
            kind, data = events.next()
            seen.append((kind, data))
            if kind == "block" and data["height"] >= r.height:
                break
        assert leaks([d for _, d in seen], {5_555_555, r.detail[1]}) == []
    finally:
        conn.close()

