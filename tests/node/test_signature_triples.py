"""The node checks device signatures before sealing (``signature_triples`` → the verify workers →
the SigCache), for every kind of device-signed item: readings, smart-meter values and control
records. Otherwise a gateway's batch of meter values or control records would be verified one by
one by the thread that seals blocks, and a forged batch would not be caught by the 64-sample rule."""

from __future__ import annotations

from crev.core.encoding import encode
from crev.ledger.params import Params
from crev.ledger.tx import decode_tx
from crev.node.node import _mostly_forged, signature_triples
from tests.ledger import meter_kit as m
from tests.ledger_kit import CHAIN, T0, key, make_kit

DEVICE_KEY = key("dev/dgc-1").public_key


def test_meter_values_and_control_records_are_checked_ahead_like_readings() -> None:
    kit = make_kit()
    items = [m.meter(T0 + 1800 * i, 100, 10 * i) for i in range(3)]
    tx = decode_tx(m.submit_meter(*items), CHAIN, Params())
    assert signature_triples(kit.state, tx) == [(DEVICE_KEY, encode(it[:10]), it[10]) for it in items]
    controls = [m.control(i + 1, T0 + 1800 * i) for i in range(2)]
    tx = decode_tx(m.submit_controls(*controls), CHAIN, Params())
    assert signature_triples(kit.state, tx) == [(DEVICE_KEY, encode(c[:14]), c[14]) for c in controls]


def test_an_unknown_device_has_no_triple_and_is_refused_when_applied() -> None:
    kit = make_kit()
    tx = decode_tx(m.submit_meter(m.meter(T0, 100, 10, device="dgc-9", signer=key("dev/dgc-1"))), CHAIN, Params())
    assert signature_triples(kit.state, tx) == []


def test_a_big_forged_batch_of_meter_values_is_caught_by_the_sample() -> None:
    kit = make_kit()
    forged = [m.meter(T0 + 1800 * i, 100, 10, signer=key("forger")) for i in range(300)]
    tx = decode_tx(m.submit_meter(*forged), CHAIN, Params())
    assert _mostly_forged(signature_triples(kit.state, tx)) == (
        "64 of the first 64 device signatures do not verify: the batch of 300 signed items is refused without "
        "checking the rest")
