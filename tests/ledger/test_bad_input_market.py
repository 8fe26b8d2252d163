"""Bad market input: each gets a clear error naming the field and changes nothing (same state root)."""

from __future__ import annotations

from typing import Any

import pytest

from crev.core.encoding import encode
from crev.ledger.messages.cancel_order import CancelOrder
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.withdraw_jpy import WithdrawJpy
from crev.ledger.records import ANY, Filter
from tests.ledger.market_kit import L1, L2, make_market_kit, ok, order, spot, tick
from tests.ledger_kit import CHAIN, Kit, key


def refuse(kit: Kit, signer: str, msg: Any, code: str, field: str, phrase: str) -> None:
    root = kit.root()
    res = kit.one(kit.tx(signer, msg))
    assert not res.ok and res.error is not None
    assert (res.error.code, res.error.field) == (code, field), res.error.to_dict()
    assert phrase in res.error.reason, res.error.reason
    assert kit.root() == root


def refuse_body(kit: Kit, signer: str, kind: str, body: list[Any], field: str, phrase: str) -> None:
    """A hand-made body (types the dataclasses would not allow)."""
    root = kit.root()
    unsigned = ["crev/tx/1", CHAIN, kind, signer, kit.nonces[signer], body]
    raw = encode([*unsigned, key(signer).sign(encode(unsigned))])
    res = kit.one(raw)
    assert not res.ok and res.error is not None
    assert (res.error.code, res.error.field) == ("malformed", field), res.error.to_dict()
    assert phrase in res.error.reason, res.error.reason
    assert kit.root() == root


@pytest.fixture
def mk() -> Kit:
    return make_market_kit()


def body(side: str = "bid", price: Any = 30_000, qty: Any = 1_000, tif: str = "gtc", expires: Any = 0,
         lots: list[Any] | None = None, retire: list[Any] | None = None) -> list[Any]:
    return ["spot", side, price, qty, tif, expires, ANY.to_value(), lots or [], retire or []]


def test_insufficient_jpy(mk: Kit) -> None:
    # 1,000,000 g at 30,000 JPY/t = 30,000 JPY + 300 fee > 10,000
    refuse(mk, "buyer-co", order("bid", 30_000, 1_000_000), "rule_violation", "body.quantity_g",
           "insufficient JPY: 1000000 g at 30000 JPY/t needs 30300 JPY with the fee, buyer-co has 10000 JPY")


def test_insufficient_c_rev(mk: Kit) -> None:
    refuse(mk, "sun-co", order("ask", 30_000, 4_501, lots=((L1, 4_501),)), "rule_violation",
           "body.lots[0].quantity_g", "4501 g exceeds the 4500 g sun-co holds tradable")
    refuse(mk, "sun-co", order("ask", 30_000, 5_000), "rule_violation", "body.quantity_g",
           "insufficient C-REV: sun-co holds 4500 g tradable that match")
    refuse(mk, "sun-co", order("ask", 30_000, 100, lots=((L2, 100),)), "forbidden", "body.lots[0].lot_id",
           "sun-co holds no units of")


@pytest.mark.parametrize(("price", "phrase"), [(0, "must be ≥ 1"), (-5, "must be ≥ 1"),
                                                (2.5, "must be an integer, found a fraction"),
                                                (10**9 + 1, "must be ≤ 1000000000")])
def test_malformed_prices(mk: Kit, price: Any, phrase: str) -> None:
    refuse_body(mk, "buyer-co", "place_order", body(price=price), "body.price", phrase)


@pytest.mark.parametrize(("qty", "phrase"), [(0, "must be ≥ 1"), (-1, "must be ≥ 1"),
                                              (0.5, "must be an integer, found a fraction")])
def test_malformed_quantities(mk: Kit, qty: Any, phrase: str) -> None:
    refuse_body(mk, "buyer-co", "place_order", body(qty=qty), "body.quantity_g", phrase)


def test_prices_and_quantities_outside_the_markets_bounds(mk: Kit) -> None:
    refuse(mk, "buyer-co", order("bid", 999, 1_000), "rule_violation", "body.price",
           "999 JPY/t is outside market spot's bounds 1000 … 200000")
    refuse(mk, "buyer-co", order("bid", 200_001, 1_000), "rule_violation", "body.price", "outside")
    refuse(mk, "buyer-co", order("bid", 30_000, 99), "rule_violation", "body.quantity_g",
           "99 g is below the market's minimum of 100 g")


def test_cancel_unknown_foreign_filled_or_expired(mk: Kit) -> None:
    refuse(mk, "buyer-co", CancelOrder("o-00000042"), "not_found", "body.order_id", "no order 'o-00000042'")
    ok(mk, "buyer-co", order("bid", 30_000, 1_000))  # o-1
    refuse(mk, "buyer-2", CancelOrder("o-00000001"), "forbidden", "body.order_id",
           "o-00000001 is buyer-co's order: only its owner can cancel it")
    ok(mk, "sun-co", order("ask", 30_000, 1_000, lots=((L1, 1_000),)))  # fills o-1
    refuse(mk, "buyer-co", CancelOrder("o-00000001"), "conflict", "body.order_id", "closed as filled")
    ok(mk, "buyer-co", order("bid", 30_000, 1_000, tif="gtt", expires_at=mk.time + 100))  # o-3
    assert tick(mk, mk.time + 100).ok
    refuse(mk, "buyer-co", CancelOrder("o-00000003"), "conflict", "body.order_id", "closed as expired")


@pytest.mark.parametrize(("flt", "phrase"), [
    (Filter(grid_areas=("kansai",)), "no grid area is both in the filter and in market tk's product"),
    (Filter(fit=1), "the filter's FIT flag contradicts the market's product"),
    (Filter(devices=("dgc-9",)), "device 'dgc-9' is not registered"),
    (Filter(devices=("dgc-2",)), "none of the filter's devices is in its grid areas or FIT class"),
    (Filter(vintage_start=10, vintage_end=20), "the filter's vintage window does not overlap the market's"),
])
def test_a_bid_whose_filter_can_never_match_says_why(mk: Kit, flt: Filter, phrase: str) -> None:
    ok(mk, "operator", spot("tk", product=Filter(grid_areas=("tokyo",), fit=0, vintage_start=1_000_000)))
    refuse(mk, "buyer-co", order("bid", 30_000, 1_000, market="tk", flt=flt), "rule_violation", "body.filter",
           f"can never match: {phrase}")


def test_an_order_in_a_closed_or_unknown_market(mk: Kit) -> None:
    ok(mk, "buyer-co", order("bid", 30_000, 1_000))  # o-1, open when the market closes
    ok(mk, "operator", spot(open_=False))
    assert mk.state.orders["o-00000001"].status == "market_closed"
    assert mk.state.accounts["buyer-co"].jpy_escrowed == 0
    refuse(mk, "buyer-co", order("bid", 30_000, 1_000), "rule_violation", "body.market_id", "market spot is closed")
    refuse(mk, "buyer-co", order("bid", 30_000, 1_000, market="nope"), "not_found", "body.market_id",
           "no market 'nope'")


def test_malformed_or_unsigned_orders(mk: Kit) -> None:
    refuse_body(mk, "buyer-co", "place_order", body(side="buy"), "body.side", "must be one of bid, ask")
    refuse_body(mk, "buyer-co", "place_order", body(tif="day"), "body.tif", "must be one of gtc, gtt, ioc, fok")
    refuse_body(mk, "buyer-co", "place_order", body(tif="gtt"), "body.expires_at", "a gtt order needs its expiry")
    refuse_body(mk, "buyer-co", "place_order", body(expires=5), "body.expires_at", "must be 0 for a gtc order")
    refuse_body(mk, "buyer-co", "place_order", body(lots=[[L1, 100]]), "body.lots", "a bid names no lots")
    refuse_body(mk, "buyer-co", "place_order", body()[:8], "body", "must have 9 elements")
    # unsigned: an empty signature where one is required
    root = mk.root()
    raw = encode(["crev/tx/1", CHAIN, "place_order", "buyer-co", mk.nonces["buyer-co"], body(), b""])
    res = mk.one(raw)
    assert res.error is not None and (res.error.code, res.error.field) == ("malformed", "tx.signature")
    # signed by another key
    unsigned = ["crev/tx/1", CHAIN, "place_order", "buyer-co", mk.nonces["buyer-co"], body()]
    res = mk.one(encode([*unsigned, key("buyer-2").sign(encode(unsigned))]))
    assert res.error is not None and (res.error.code, res.error.field) == ("bad_signature", "tx.signature")
    assert mk.root() == root


def test_gtt_in_the_past_and_ioc_in_a_call_market(mk: Kit) -> None:
    refuse(mk, "buyer-co", order("bid", 30_000, 1_000, tif="gtt", expires_at=mk.time), "rule_violation",
           "body.expires_at", "is not after the block time")
    ok(mk, "operator", spot("call", mode="call", interval=1800))
    refuse(mk, "buyer-co", order("bid", 30_000, 1_000, market="call", tif="ioc"), "rule_violation", "body.tif",
           "market call is a call auction")
    refuse(mk, "buyer-co", order("bid", 30_000, 1_000, market="call", flt=Filter(grid_areas=("tokyo",))),
           "rule_violation", "body.filter", "bids there take no filter of their own")


def test_money_operations_are_the_operators_and_cannot_overdraw(mk: Kit) -> None:
    refuse(mk, "buyer-co", DepositJpy("buyer-co", 1_000, "x"), "forbidden", "tx.signer", "only the registry operator")
    refuse(mk, "operator", WithdrawJpy("buyer-co", 10_001, "PAYOUT-1"), "rule_violation", "body.amount_jpy",
           "10001 JPY exceeds the 10000 JPY buyer-co has available")
    ok(mk, "buyer-co", order("bid", 30_000, 100_000))  # reserves 3,000 + 30 JPY
    refuse(mk, "operator", WithdrawJpy("buyer-co", 7_000, "PAYOUT-2"), "rule_violation", "body.amount_jpy",
           "(3030 JPY more are reserved by open bids)")
    refuse(mk, "operator", DepositJpy("nobody", 5, "x"), "not_found", "body.account_id", "no participant 'nobody'")


def test_a_listed_markets_mode_cannot_change(mk: Kit) -> None:
    refuse(mk, "operator", ListMarket("spot", "x", "call", ANY, 1_000, 200_000, 100, 100, 1800, True),
           "conflict", "body.mode", "cannot change a listed market's mode")
