"""Refused work is charged to its sender for every kind of device-signed item, not only readings
(docs/api.md, "Limits"): a forger posting smart-meter values its devices never signed runs its
bucket dry and gets 429, while a gateway re-sending items already on the ledger (all duplicates)
is never charged."""

from __future__ import annotations

import itertools
from typing import Any

from crev.core.encoding import encode
from crev.core.signing import Signer
from crev.ledger.messages.submit_meter_values import meter_values_payload
from crev.node.node import Node
from tests.node import nodekit as k
from tests.service.test_hardening import cbor_post, ledger, request, serve

__all__ = ["ledger"]  # the fixture, shared with test_hardening

SLOT = k.T0 + 12 * 3600  # 2026-06-01 12:00 JST, before the node's clock


def meter(device: int, slot: int, signer: Signer | None = None) -> list[Any]:
    p = meter_values_payload(k.CHAIN, k.device_id(device), slot, 100, 10, 5_000, 600, 1, "SM-1")
    return [*p, (signer or k.key(f"dev/{k.device_id(device)}")).sign(encode(p))]


def batch(items: list[list[Any]]) -> bytes:
    return encode(["crev/tx/1", k.CHAIN, "submit_meter_values", "", 0, items, b""])


def test_forged_meter_values_are_charged_and_duplicates_are_not(ledger: Node) -> None:
    srv = serve(ledger, refused_rate=1.0, refused_burst=20)
    try:
        honest = batch([meter(d, SLOT) for d in range(4)])
        st, _, body = request(srv.port, "POST", "/v1/tx", honest, cbor_post(honest), source="127.0.0.8")
        assert st == 200 and [d[0] for d in body["detail"]] == ["accepted"] * 4, body
        # the gateway re-sends the same items in every other order (24 batches of other bytes, more
        # than the bucket's 20 tokens): all duplicates, refused as such, never charged
        for order in list(itertools.permutations(range(4)))[1:]:
            again = batch([meter(d, SLOT) for d in order])
            st, _, body = request(srv.port, "POST", "/v1/tx", again, cbor_post(again), source="127.0.0.8")
            assert (st, body["error"]["code"], body["error"]["field"]) == (409, "conflict", "items"), body
        forged = batch([meter(d, SLOT + 1800, signer=Signer(b"\x66" * 32)) for d in range(4)])
        codes = []
        for _ in range(8):
            st, _, body = request(srv.port, "POST", "/v1/tx", forged, cbor_post(forged), source="127.0.0.9")
            codes.append((st, body["error"]["code"]))
        assert codes[0] == (401, "bad_signature")
        blocked = codes.index((429, "rate_limited"))  # 4 refused items a try: the 20-token bucket runs dry
        assert blocked <= 6 and all(c == (429, "rate_limited") for c in codes[blocked:]), codes
    finally:
        srv.stop()
