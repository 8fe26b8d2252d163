"""The API over a real socket (uvicorn on a free port): POST /v1/tx, GET /v1/info, participants,
signed private reads, and the one
JSON error shape ``{"error": {"code", "field", "reason"}}``."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crev.core.hashing import sha256
from crev.ledger.messages.transfer import Transfer
from crev.node.node import Node
from crev.service.auth import sign_request
from crev.service.limits import TX_BODY_LIMIT as MAX_BODY
from crev.service.server import serve_in_thread
from tests.node import nodekit as k


@dataclass
class Api:
    node: Node
    signers: k.Signers
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Content-Type": "application/cbor"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                assert resp.headers["Content-Type"].startswith("application/json")
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            assert err.headers["Content-Type"].startswith("application/json")
            return err.code, json.loads(err.read())


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    signers = k.register_fleet(node, 2)
    server = serve_in_thread(node, "127.0.0.1", 0, rate=0)
    try:
        yield Api(node, signers, "127.0.0.1", server.port)
    finally:
        server.stop()
        node.close()


def assert_error_shape(payload: Any, code: str, field: str | None = None) -> None:
    assert isinstance(payload, dict) and isinstance(payload.get("error"), dict), payload
    err = payload["error"]
    assert set(err) == {"code", "field", "reason"}
    assert all(isinstance(v, str) for v in err.values()) and err["reason"]
    assert err["code"] == code
    if field is not None:
        assert err["field"] == field


def test_post_signed_readings_batch(api: Api) -> None:
    raw = k.batch(2, 0)
    status, receipt = api.call("POST", "/v1/tx", raw)
    assert status == 200
    assert receipt["tx_hash"] == sha256(raw).hex()
    assert receipt["committed"] is True and receipt["ok"] is True and receipt["error"] is None
    assert receipt["height"] == api.node.state.height and receipt["index"] == 0
    assert [d[0] for d in receipt["detail"]] == ["accepted", "accepted"]
    assert sum(d[2] for d in receipt["detail"]) == api.node.state.supply.issued_g == 2 * k.PER_READING_G
    assert {e["type"] for e in receipt["events"]} == {"reading_accepted", "issued"}
    # the same bytes again: the same committed receipt, nothing new
    status, again = api.call("POST", "/v1/tx", raw)
    assert status == 200 and (again["tx_hash"], again["height"], again["index"]) == \
        (receipt["tx_hash"], receipt["height"], receipt["index"])
    assert api.node.state.supply.issued_g == 2 * k.PER_READING_G


@pytest.mark.parametrize("body", [b"garbage", b"", b"\xa1\x01\x02", json.dumps({"kind": "transfer"}).encode()])
def test_post_garbage_is_400_with_the_error_shape(api: Api, body: bytes) -> None:
    height = api.node.state.height
    status, payload = api.call("POST", "/v1/tx", body)
    assert status == 400
    assert_error_shape(payload, "malformed")
    assert payload["tx_hash"] == sha256(body).hex()
    assert api.node.state.height == height


def test_post_forged_signature_is_401(api: Api) -> None:
    api.call("POST", "/v1/tx", k.batch(2, 0))
    forged = api.signers.tx(k.OWNER, Transfer(k.BUYER, (("dgc-0:20260601T0900", 1),), ""),
                            signing_key=k.key("mallory"))
    status, payload = api.call("POST", "/v1/tx", forged)
    assert status == 401
    assert_error_shape(payload, "bad_signature", "tx.signature")


def test_get_info(api: Api) -> None:
    api.call("POST", "/v1/tx", k.batch(2, 0))
    status, info = api.call("GET", "/v1/info")
    assert status == 200
    st = api.node.state
    assert info["chain_id"] == k.CHAIN and info["height"] == st.height == 2
    assert info["app_hash"] == st.tree.root().hex() and info["last_block_hash"] == st.last_block_hash.hex()
    assert info["operator_id"] == k.OPERATOR and info["sequencer_public_key"] == st.sequencer_key.hex()
    assert info["state_tree_depth"] == st.params.state_tree_depth


def test_participant_is_public_and_balances_are_private(api: Api) -> None:
    api.call("POST", "/v1/tx", k.batch(2, 0))
    status, p = api.call("GET", f"/v1/participants/{k.OWNER}")
    assert status == 200
    assert (p["account_id"], p["name"], p["role"], p["nonce"]) == (k.OWNER, "Sun Co", "prosumer", 0)
    assert p["devices"] == ["dgc-0", "dgc-1"] and "tradable_g" not in p
    status, payload = api.call("GET", f"/v1/accounts/{k.OWNER}")
    assert status == 401
    assert_error_shape(payload, "bad_signature", "X-Crev-Account")


def _signed_get(api: Api, path: str, who: str, signer_name: str | None = None,
                nonce: str | None = None) -> tuple[int, Any]:
    headers = sign_request(k.key(signer_name or who), who, "GET", path, int(time.time()), nonce=nonce)
    req = urllib.request.Request(api.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_signed_request_reads_own_balances_once(api: Api) -> None:
    api.call("POST", "/v1/tx", k.batch(2, 0))
    path = f"/v1/accounts/{k.OWNER}"
    status, acct = _signed_get(api, path, k.OWNER, nonce="ab" * 8)
    assert status == 200
    assert acct == {"account_id": k.OWNER, "name": "Sun Co", "role": "prosumer", "nonce": 0,
                    "tradable_g": 2 * k.PER_READING_G, "escrowed_g": 0, "retired_g": 0, "jpy": 0,
                    "jpy_escrowed": 0}
    # the very same signed request again is a replay
    status, payload = _signed_get(api, path, k.OWNER, nonce="ab" * 8)
    assert status == 409
    assert_error_shape(payload, "conflict", "X-Crev-Nonce")


def test_signed_request_for_another_account_or_with_a_wrong_key_is_refused(api: Api) -> None:
    status, payload = _signed_get(api, f"/v1/accounts/{k.OWNER}", k.BUYER)
    assert status == 403
    assert_error_shape(payload, "forbidden", "X-Crev-Account")
    status, payload = _signed_get(api, f"/v1/accounts/{k.OWNER}", k.OWNER, signer_name="mallory")
    assert status == 401
    assert_error_shape(payload, "bad_signature", "X-Crev-Signature")
    # the operator may read any account
    status, acct = _signed_get(api, f"/v1/accounts/{k.OWNER}", k.OPERATOR)
    assert status == 200 and acct["account_id"] == k.OWNER


def test_unknown_participant_and_path_are_404(api: Api) -> None:
    status, payload = api.call("GET", "/v1/participants/nobody-co")
    assert status == 404
    assert_error_shape(payload, "not_found", "account_id")
    assert "nobody-co" in payload["error"]["reason"]
    for method, path in (("GET", "/nothing"), ("GET", "/v1/participants/a/b"), ("POST", "/txs")):
        status, payload = api.call(method, path, b"x" if method == "POST" else None)
        assert status == 404
        assert_error_shape(payload, "not_found", "path")


def _raw_post(api: Api, headers: dict[str, str], body: bytes = b"") -> tuple[int, Any]:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=60)
    try:
        conn.putrequest("POST", "/v1/tx")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_oversized_body_is_413_without_reading_it(api: Api) -> None:
    height = api.node.state.height
    # only the header claims a huge body: the server must answer without waiting for it
    status, payload = _raw_post(api, {"Content-Length": str(MAX_BODY + 1)})
    assert status == 413
    assert_error_shape(payload, "too_large", "body")
    assert str(MAX_BODY + 1) in payload["error"]["reason"]
    assert api.node.state.height == height


def test_missing_body_is_400(api: Api) -> None:
    status, payload = _raw_post(api, {"Content-Type": "application/cbor"})
    assert status == 400
    assert_error_shape(payload, "malformed", "body")


def test_a_stopped_node_answers_503_not_a_dropped_connection(api: Api) -> None:
    api.node.stop()
    status, payload = api.call("POST", "/v1/tx", k.batch(2, 0))
    assert status == 503
    assert_error_shape(payload, "unavailable", "node")
    assert payload["error"]["reason"] == "node stopped"


def test_receipt_without_events_on_request(api: Api) -> None:
    status, receipt = api.call("POST", "/v1/tx?events=false", k.batch(2, 0))
    assert status == 200 and receipt["committed"] is True and "events" not in receipt
    assert [d[0] for d in receipt["detail"]] == ["accepted", "accepted"]
    assert api.node.state.supply.issued_g == 2 * k.PER_READING_G


def test_submit_without_waiting_then_look_it_up(api: Api) -> None:
    raw = k.batch(2, 0)
    status, ack = api.call("POST", "/v1/tx?wait=false", raw)
    assert status == 202 and ack == {"tx_hash": sha256(raw).hex(), "committed": False}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, tx = api.call("GET", f"/v1/tx/{sha256(raw).hex()}")
        if status == 200:
            break
        time.sleep(0.05)
    assert status == 200 and tx["ok"] is True and tx["kind"] == "submit_readings"
    assert tx["height"] == api.node.state.height and bytes.fromhex(tx["raw"]) == raw


def test_a_submitter_that_gives_up_does_not_stop_the_node(api: Api) -> None:
    # what asyncio.wait_for does to a future it stops waiting for: cancel it while queued
    with api.node.lock:  # no block can be sealed meanwhile, so the transaction stays queued
        fut = api.node.submit(k.batch(2, 0))
        assert fut.cancel()
    status, receipt = api.call("POST", "/v1/tx", k.batch(2, 1))
    assert status == 200 and receipt["ok"] is True, receipt
    assert api.node.fatal is None
    assert api.node.state.supply.issued_g == 4 * k.PER_READING_G  # the abandoned batch was still applied


def test_state_proofs_of_an_account_s_own_records_need_its_signature(api: Api) -> None:
    api.call("POST", "/v1/tx", k.batch(2, 0))
    status, payload = api.call("GET", f"/v1/proofs/state/a/{k.OWNER}")
    assert status == 401
    assert_error_shape(payload, "bad_signature", "X-Crev-Account")
    status, payload = _signed_get(api, f"/v1/proofs/state/a/{k.OWNER}", k.BUYER)
    assert status == 403
    status, proof = _signed_get(api, f"/v1/proofs/state/a/{k.OWNER}", k.OWNER)
    assert status == 200 and proof["key"] == f"a/{k.OWNER}"
    assert bytes.fromhex(proof["value"]) == api.node.state.value_of(f"a/{k.OWNER}")
    status, proof = api.call("GET", "/v1/proofs/state/l/dgc-0:20260601T0900")  # a lot: public
    assert status == 200 and proof["value"] is not None


def test_trace_takes_an_upper_case_hash_and_a_huge_unit_id_is_not_found(api: Api) -> None:
    raw = k.batch(2, 0)
    api.call("POST", "/v1/tx", raw)
    status, t = api.call("GET", f"/v1/trace/{sha256(raw).hex().upper()}")
    assert status == 200 and t["kind"] == "tx" and t["transaction"]["tx_hash"] == sha256(raw).hex()
    for unit in ("9223372036854775808", "99999999999999999999999999"):
        status, payload = api.call("GET", f"/v1/trace/{unit}")
        assert status == 404
        assert_error_shape(payload, "not_found", "unit")


def test_certificate_links_to_the_node_not_to_the_host_header(tmp_path: Path) -> None:
    import socket as sk

    from tests.service import apikit as a

    w = a.build(tmp_path / "ledger")
    with sk.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_in_thread(w.node, "127.0.0.1", port, rate=0)
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/retirements/{a.RETIREMENT}/certificate.pdf",
                                     headers={"Host": "evil.example"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            pdf = resp.read()
    finally:
        server.stop()
        w.node.close()
    assert pdf.startswith(b"%PDF")
    assert f"http://127.0.0.1:{port}/#/trace/{a.RETIREMENT}".encode() in pdf
    assert b"evil.example" not in pdf


def test_head_answers_the_headers_of_get_without_a_body(api: Api) -> None:
    for path in ("/v1/info", "/v1/stream", "/"):
        conn = http.client.HTTPConnection(api.host, api.port, timeout=30)
        try:
            conn.request("HEAD", path)
            resp = conn.getresponse()
            assert resp.status == 200, path
            assert resp.read() == b""
        finally:
            conn.close()
    assert api.node.listeners  # the live service is still attached
