"""place_order and cancel_order in a continuous market: hand-worked books (see market_kit.py for
the numbers: fee 100 bp per side, value = ⌊g × JPY/t / 1,000,000⌋, fee = ⌊value × 100 / 10,000⌋)."""

from __future__ import annotations

from crev.ledger.records import Filter
from tests.ledger.market_kit import L1, L2, cancel, jpy, make_market_kit, ok, order, run
from tests.ledger_kit import Kit


def segments(kit: Kit, lot: str) -> list[list[object]]:
    return [s.to_value() for s in kit.state.lots[lot].segments]


def test_a_bid_sweeps_the_cheapest_offers_first_and_settles_each_fill_dvp() -> None:
    kit = make_market_kit()
    assert ok(kit, "sun-co", order("ask", 40_000, 4_000, lots=((L1, 4_000),))) == ["o-00000001", "open", 0, 0]
    assert ok(kit, "other-co", order("ask", 30_000, 4_000, lots=((L2, 4_000),))) == ["o-00000002", "open", 0, 0]
    # the bid reserves value(5,000 g, 50,000) = 250 plus its fee 2 = 252 JPY
    res = run(kit, "buyer-co", order("bid", 50_000, 5_000))
    assert res.ok and res.detail == ["o-00000003", "filled", 5_000, 2]
    trades = [e for e in res.events if type(e).__name__ == "Traded"]
    # 4,000 g at o-2's 30,000 JPY/t = 120 JPY (fees 1 + 1), then 1,000 g at o-1's 40,000 = 40 JPY (fees 0)
    assert [(t.ask_order, t.quantity_g, t.price, t.value_jpy, t.fee_buyer_jpy, t.fee_seller_jpy)
            for t in trades] == [("o-00000002", 4_000, 30_000, 120, 1, 1), ("o-00000001", 1_000, 40_000, 40, 0, 0)]
    assert [t.ranges for t in trades] == [((L2, 4_501, 8_501),), ((L1, 1, 1_001),)]
    assert jpy(kit, "buyer-co") == (10_000 - 121 - 40, 0)  # the unused 91 JPY reservation released
    assert jpy(kit, "other-co") == (119, 0)
    assert jpy(kit, "sun-co") == (40, 0)
    assert jpy(kit, "operator") == (2, 0)
    assert kit.state.supply.jpy == 20_000
    acct = kit.state.accounts["buyer-co"]
    assert (acct.tradable_g, acct.escrowed_g) == (5_000, 0)
    sun = kit.state.accounts["sun-co"]
    assert (sun.tradable_g, sun.escrowed_g) == (500, 3_000)
    assert segments(kit, L1) == [[1, 1_001, "buyer-co", "tradable", ""],
                                 [1_001, 4_001, "sun-co", "escrowed", "o-00000001"],
                                 [4_001, 4_501, "sun-co", "tradable", ""]]
    assert kit.state.orders["o-00000001"].remaining_g == 3_000
    assert kit.state.orders["o-00000002"].status == "filled"
    assert kit.state.markets["spot"].last_price == 40_000


def test_equal_prices_fill_in_sequence_order() -> None:
    kit = make_market_kit()
    ok(kit, "other-co", order("ask", 30_000, 1_000, lots=((L2, 1_000),)))  # o-1, earlier
    ok(kit, "sun-co", order("ask", 30_000, 1_000, lots=((L1, 1_000),)))  # o-2
    res = run(kit, "buyer-co", order("bid", 30_000, 1_500))
    assert [(t.ask_order, t.quantity_g) for t in res.events if type(t).__name__ == "Traded"] == [
        ("o-00000001", 1_000), ("o-00000002", 500)]


def test_an_offer_never_trades_with_its_owners_bid() -> None:
    kit = make_market_kit()
    from crev.ledger.messages.deposit_jpy import DepositJpy

    ok(kit, "operator", DepositJpy("sun-co", 1_000, "BANK-3"))
    ok(kit, "sun-co", order("bid", 50_000, 1_000))  # o-1 rests
    res = run(kit, "sun-co", order("ask", 40_000, 1_000, lots=((L1, 1_000),)))  # o-2: would cross its own bid
    assert res.ok and res.detail == ["o-00000002", "open", 0, 0]
    res = run(kit, "buyer-co", order("bid", 45_000, 1_000))  # someone else's bid takes it
    assert res.detail == ["o-00000003", "filled", 1_000, 1]


def test_a_filtered_bid_skips_cheaper_offers_it_does_not_accept() -> None:
    kit = make_market_kit()
    ok(kit, "sun-co", order("ask", 20_000, 1_000, lots=((L1, 1_000),)))  # tokyo, cheaper
    ok(kit, "other-co", order("ask", 30_000, 1_000, lots=((L2, 1_000),)))  # kansai
    res = run(kit, "buyer-co", order("bid", 50_000, 1_000, flt=Filter(grid_areas=("kansai",))))
    assert [(t.ask_order, t.price) for t in res.events if type(t).__name__ == "Traded"] == [("o-00000002", 30_000)]
    assert kit.state.orders["o-00000001"].remaining_g == 1_000


def test_an_offer_by_attributes_sells_the_oldest_matching_holdings() -> None:
    kit = make_market_kit()
    res = run(kit, "sun-co", order("ask", 30_000, 1_200, flt=Filter(grid_areas=("tokyo",))))
    assert res.ok
    assert kit.state.orders["o-00000001"].lots == [[L1, 1_200]]
    assert segments(kit, L1)[0] == [1, 1_201, "sun-co", "escrowed", "o-00000001"]


def test_ioc_drops_what_does_not_fill_at_once_and_releases_it() -> None:
    kit = make_market_kit()
    ok(kit, "sun-co", order("ask", 30_000, 1_000, lots=((L1, 1_000),)))
    res = run(kit, "buyer-co", order("bid", 30_000, 3_000, tif="ioc"))
    assert res.detail == ["o-00000002", "ioc", 1_000, 1]
    assert jpy(kit, "buyer-co") == (10_000 - 30, 0)  # 1,000 g × 30,000 = 30 JPY; fee ⌊0.3⌋ = 0


def test_fok_that_cannot_fill_completely_is_refused_and_changes_nothing() -> None:
    kit = make_market_kit()
    ok(kit, "sun-co", order("ask", 30_000, 1_000, lots=((L1, 1_000),)))
    root = kit.root()
    res = run(kit, "buyer-co", order("bid", 30_000, 1_001, tif="fok"))
    assert not res.ok and res.error is not None
    assert (res.error.code, res.error.field) == ("rule_violation", "body.quantity_g")
    assert "fill or kill: only 1000 g can fill at once" in res.error.reason
    assert kit.root() == root
    assert run(kit, "buyer-co", order("bid", 30_000, 1_000, tif="fok")).detail == ["o-00000002", "filled", 1_000, 1]


def test_cancel_releases_the_reservation_and_only_the_owner_may_cancel() -> None:
    kit = make_market_kit()
    ok(kit, "buyer-co", order("bid", 50_000, 2_000))  # reserves 100 + 1 = 101 JPY
    assert jpy(kit, "buyer-co") == (9_899, 101)
    res = cancel(kit, "buyer-2", "o-00000001")
    assert res.error is not None and (res.error.code, res.error.field) == ("forbidden", "body.order_id")
    assert cancel(kit, "buyer-co", "o-00000001").detail == ["o-00000001", 2_000]
    assert jpy(kit, "buyer-co") == (10_000, 0)
    again = cancel(kit, "buyer-co", "o-00000001")
    assert again.error is not None and again.error.to_dict() == {
        "code": "conflict", "field": "body.order_id",
        "reason": "o-00000001 is no longer open: it was closed as cancelled"}
    unknown = cancel(kit, "buyer-co", "o-99999999")
    assert unknown.error is not None and unknown.error.code == "not_found"
    ok(kit, "sun-co", order("ask", 30_000, 1_000, lots=((L1, 1_000),)))
    ok(kit, "buyer-co", order("bid", 30_000, 1_000))
    filled = cancel(kit, "sun-co", "o-00000002")
    assert filled.error is not None and filled.error.reason.endswith("closed as filled")
