"""The stdlib HTTP front over a real socket: POST /tx, GET /info, GET /account/<id>, and the one
JSON error shape ``{"error": {"code", "field", "reason"}}``."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crev.core.hashing import sha256
from crev.ledger.messages.transfer import Transfer
from crev.node.http import MAX_BODY, make_server
from crev.node.node import Node
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
    server = make_server(node, "127.0.0.1", 0)
    host, port = server.server_address[:2]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield Api(node, signers, str(host), int(port))
    finally:
        server.shutdown()
        server.server_close()
        t.join(timeout=10)
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
    status, receipt = api.call("POST", "/tx", raw)
    assert status == 200
    assert receipt["tx_hash"] == sha256(raw).hex()
    assert receipt["committed"] is True and receipt["ok"] is True and receipt["error"] is None
    assert receipt["height"] == api.node.state.height and receipt["index"] == 0
    assert [d[0] for d in receipt["detail"]] == ["accepted", "accepted"]
    assert sum(d[2] for d in receipt["detail"]) == api.node.state.supply.issued_g == 2 * k.PER_READING_G
    assert {e["type"] for e in receipt["events"]} == {"reading_accepted", "issued"}
    # the same bytes again: the same committed receipt, nothing new
    status, again = api.call("POST", "/tx", raw)
    assert status == 200 and (again["tx_hash"], again["height"], again["index"]) == \
        (receipt["tx_hash"], receipt["height"], receipt["index"])
    assert api.node.state.supply.issued_g == 2 * k.PER_READING_G


@pytest.mark.parametrize("body", [b"garbage", b"", b"\xa1\x01\x02", json.dumps({"kind": "transfer"}).encode()])
def test_post_garbage_is_400_with_the_error_shape(api: Api, body: bytes) -> None:
    height = api.node.state.height
    status, payload = api.call("POST", "/tx", body)
    assert status == 400
    assert_error_shape(payload, "malformed")
    assert payload["tx_hash"] == sha256(body).hex()
    assert api.node.state.height == height


def test_post_forged_signature_is_401(api: Api) -> None:
    api.call("POST", "/tx", k.batch(2, 0))
    forged = api.signers.tx(k.OWNER, Transfer(k.BUYER, (("dgc-0:20260601T0900", 1),), ""),
                            signing_key=k.key("mallory"))
    status, payload = api.call("POST", "/tx", forged)
    assert status == 401
    assert_error_shape(payload, "bad_signature", "tx.signature")


def test_get_info(api: Api) -> None:
    api.call("POST", "/tx", k.batch(2, 0))
    status, info = api.call("GET", "/info")
    assert status == 200
    st = api.node.state
    assert info == {"chain_id": k.CHAIN, "height": st.height, "app_hash": st.tree.root().hex(),
                    "last_block_hash": st.last_block_hash.hex(), "last_time": st.last_time}


def test_get_account(api: Api) -> None:
    api.call("POST", "/tx", k.batch(2, 0))
    status, acct = api.call("GET", f"/account/{k.OWNER}")
    assert status == 200
    assert acct == {"account_id": k.OWNER, "name": "Sun Co", "role": "prosumer", "nonce": 0,
                    "tradable_g": 2 * k.PER_READING_G, "escrowed_g": 0, "retired_g": 0}
    status, op = api.call("GET", f"/account/{k.OPERATOR}")
    assert status == 200 and op["nonce"] == api.signers.nonces[k.OPERATOR]


def test_unknown_account_and_path_are_404(api: Api) -> None:
    status, payload = api.call("GET", "/account/nobody-co")
    assert status == 404
    assert_error_shape(payload, "not_found", "account")
    assert "nobody-co" in payload["error"]["reason"]
    for method, path in (("GET", "/nothing"), ("GET", "/account/a/b"), ("POST", "/txs")):
        status, payload = api.call(method, path, b"x" if method == "POST" else None)
        assert status == 404
        assert_error_shape(payload, "not_found", "path")


def _raw_post(api: Api, headers: dict[str, str], body: bytes = b"") -> tuple[int, Any]:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=60)
    try:
        conn.putrequest("POST", "/tx")
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
    assert_error_shape(payload, "malformed", "body")
    assert str(MAX_BODY + 1) in payload["error"]["reason"]
    assert api.node.state.height == height


def test_missing_content_length_is_411(api: Api) -> None:
    status, payload = _raw_post(api, {})
    assert status == 411
    assert_error_shape(payload, "malformed", "Content-Length")


def test_a_stopped_node_answers_503_not_a_dropped_connection(api: Api) -> None:
    api.node.stop()
    status, payload = api.call("POST", "/tx", k.batch(2, 0))
    assert status == 503
    assert_error_shape(payload, "unavailable", "node")
    assert payload["error"]["reason"] == "node stopped"
