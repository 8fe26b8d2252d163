"""Over a real socket (uvicorn from serve_in_thread): the Server-Sent Events stream delivers
``block``, ``issued``, ``trade`` and ``retired`` events as blocks commit, and a chunked body over
the limit is cut off with 413."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crev.core.hashing import sha256
from crev.core.units import fiscal_year_bounds
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.retire import Retire
from crev.ledger.records import ANY
from crev.service.limits import TX_BODY_LIMIT
from crev.service.server import Background, serve_in_thread
from tests.node import nodekit as k
from tests.service import apikit as a


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[a.World, Background]]:
    w = a.build(tmp_path / "ledger")
    server = serve_in_thread(w.node, "127.0.0.1", 0, rate=0)
    try:
        yield w, server
    finally:
        server.stop()
        w.node.close()


class Events:
    """Reads one SSE response event by event (``event:`` and ``data:`` lines, blank line ends)."""

    def __init__(self, resp: http.client.HTTPResponse) -> None:
        self.resp = resp

    def next(self) -> tuple[str, Any]:
        kind, data = "", ""
        while True:
            line = self.resp.readline()
            assert line, "the stream ended"
            text = line.decode("utf-8").rstrip("\r\n")
            if text == "":
                if kind:
                    return kind, json.loads(data)
                continue  # the end of a comment (keep-alive)
            if text.startswith(":"):
                continue
            name, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                data += value

    def until(self, wanted: set[str], limit: int = 200) -> dict[str, list[Any]]:
        seen: dict[str, list[Any]] = {}
        for _ in range(limit):
            kind, data = self.next()
            seen.setdefault(kind, []).append(data)
            if wanted <= set(seen):
                return seen
        raise AssertionError(f"no {wanted - set(seen)} in {limit} events: {seen}")


def post_tx(port: int, raw: bytes) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v1/tx", body=raw, headers={"Content-Type": "application/cbor"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_stream_delivers_block_issued_trade_and_retired_events(served: tuple[a.World, Background]) -> None:
    w, server = served
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/v1/stream")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").startswith("text/event-stream")
        assert resp.getheader("Cache-Control") == "no-cache"
        events = Events(resp)
        assert events.next() == ("hello", {"height": w.node.state.height, "time_jst": "2026-07-01T00:30:00+09:00"})

        raw = k.readings_tx([k.reading(1, 2)])
        status, receipt = post_tx(server.port, raw)
        assert status == 200 and receipt["ok"], receipt
        seen = events.until({"block", "issued"})
        block = seen["block"][-1]
        head = w.node.store.block(receipt["height"])
        assert head is not None
        assert block == {"height": receipt["height"], "hash": head.header.hash.hex(), "time": head.header.time,
                         "time_jst": "2026-07-01T00:30:00+09:00", "tx_count": 1}
        assert seen["issued"] == [{"lot_id": "dgc-1:20260601T0902", "device_id": "dgc-1", "owner": k.OWNER,
                                   "quantity_g": k.PER_READING_G, "height": receipt["height"]}]

        # buyer-co's bid takes sun-co's resting offer of 100 g at 2,500,000 JPY/t (apikit)
        status, receipt = post_tx(server.port, w.signers.tx(k.BUYER, PlaceOrder(
            "spot", "bid", 2_500_000, 100, "gtc", 0, ANY, (), None)))
        assert status == 200 and receipt["ok"], receipt
        seen = events.until({"trade"})
        assert [{x: t[x] for x in ("market_id", "price", "quantity_g", "buyer", "seller", "height")}
                for t in seen["trade"]] == [{"market_id": "spot", "price": 2_500_000, "quantity_g": 100,
                                             "buyer": k.BUYER, "seller": k.OWNER, "height": receipt["height"]}]
        assert seen["block"][-1]["height"] == receipt["height"]

        p0, p1 = fiscal_year_bounds(2026)
        status, receipt = post_tx(server.port, w.signers.tx(k.BUYER, Retire(
            ((a.LOT_A, 10), (a.LOT_B, 5)), "Buyer Co", "re100", p0, p1, "JP", "stream")))
        assert status == 200 and receipt["ok"], receipt
        seen = events.until({"retired"})
        # one event per retirement, however many lots it drew on
        assert seen["retired"] == [{"retirement_id": "ret-00000002", "account": k.BUYER,
                                    "beneficiary": "Buyer Co", "quantity_g": 15, "height": receipt["height"]}]
    finally:
        conn.close()


def test_two_streams_each_get_every_event(served: tuple[a.World, Background]) -> None:
    _, server = served
    conns = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=30) for _ in range(2)]
    try:
        streams = []
        for c in conns:
            c.request("GET", "/v1/stream")
            ev = Events(c.getresponse())
            assert ev.next()[0] == "hello"
            streams.append(ev)
        raw = k.readings_tx([k.reading(1, 2), k.reading(0, 0, g=0, i=0, e=0)])  # the 2nd is refused
        status, receipt = post_tx(server.port, raw)
        assert status == 200 and receipt["tx_hash"] == sha256(raw).hex()
        for ev in streams:
            seen = ev.until({"block", "issued"})
            assert [x["lot_id"] for x in seen["issued"]] == ["dgc-1:20260601T0902"]
    finally:
        for c in conns:
            c.close()


def test_chunked_body_over_the_limit_is_413(served: tuple[a.World, Background]) -> None:
    w, server = served
    height = w.node.state.height
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    try:
        sock.sendall(b"POST /v1/tx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/cbor\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"\x00" * (1 << 20)
        sent = 0
        try:
            while sent <= TX_BODY_LIMIT:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has answered
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert resp.status == 413
        payload = json.loads(resp.read())
    finally:
        sock.close()
    assert sent > TX_BODY_LIMIT
    assert payload == {"error": {"code": "too_large", "field": "body",
                                 "reason": f"more than {TX_BODY_LIMIT} bytes for /v1/tx"}}
    assert w.node.state.height == height


def test_one_address_may_hold_a_bounded_number_of_streams(served: tuple[a.World, Background]) -> None:
    from crev.service.live import STREAMS_PER_CLIENT

    _, server = served
    conns = []
    try:
        for _ in range(STREAMS_PER_CLIENT):
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            c.request("GET", "/v1/stream")
            resp = c.getresponse()
            assert resp.status == 200
            assert Events(resp).next()[0] == "hello"
            conns.append(c)
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        c.request("GET", "/v1/stream")
        resp = c.getresponse()
        assert resp.status == 429
        assert json.loads(resp.read())["error"]["field"] == "stream"
        c.close()
    finally:
        for c in conns:
            c.close()
