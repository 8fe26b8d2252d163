"""market_tick: call auctions, expiry and standing bids; and offer policies (auto-offer)."""

from __future__ import annotations

from crev.core.units import parse_time
from crev.ledger.messages.set_offer_policy import SetOfferPolicy
from crev.ledger.messages.set_standing_bid import SetStandingBid
from crev.ledger.records import ANY, RetireSpec
from tests.ledger.market_kit import L1, L2, cancel, jpy, make_market_kit, ok, order, spot, tick
from tests.ledger_kit import NOON, Kit

FY2026 = (parse_time("2026-04-01T00:00"), parse_time("2027-04-01T00:00"))


def call_kit() -> Kit:
    kit = make_market_kit()
    ok(kit, "operator", spot("call", mode="call", interval=1800))
    return kit


def test_a_call_auction_clears_at_one_price_with_the_long_side_rationed() -> None:
    kit = call_kit()
    ok(kit, "sun-co", order("ask", 20_000, 2_000, market="call", lots=((L1, 2_000),)))  # o-1
    ok(kit, "other-co", order("ask", 30_000, 2_000, market="call", lots=((L2, 2_000),)))  # o-2
    ok(kit, "buyer-co", order("bid", 35_000, 3_000, market="call"))  # o-3 reserves 105 + 1 JPY
    ok(kit, "buyer-2", order("bid", 25_000, 2_000, market="call"))  # o-4 reserves 50 JPY
    assert kit.state.supply.trades == 0  # blind: nothing trades before the auction
    due = kit.state.markets["call"].next_clear
    res = tick(kit, due)
    assert res.ok, res.error
    # volume at 20k: min(5,000, 2,000); 25k: 2,000; 30k: min(3,000, 4,000) = 3,000; 35k: 3,000.
    # 30k and 35k tie on volume and imbalance (1,000): the middle, 32,500 JPY/t.
    cleared = [e for e in res.events if type(e).__name__ == "AuctionCleared"]
    assert [(c.price, c.volume_g, c.bids, c.asks) for c in cleared] == [(32_500, 3_000, 2, 2)]
    trades = [(t.bid_order, t.ask_order, t.quantity_g, t.price, t.value_jpy, t.ranges)
              for t in res.events if type(t).__name__ == "Traded"]
    # o-1 (20k) fills completely; o-2 (30k, the marginal level) is rationed to 1,000 g
    assert trades == [("o-00000003", "o-00000001", 2_000, 32_500, 65, ((L1, 1, 2_001),)),
                      ("o-00000003", "o-00000002", 1_000, 32_500, 32, ((L2, 4_501, 5_501),))]
    assert jpy(kit, "buyer-co") == (10_000 - 97, 0)  # 65 + 32, fees ⌊0.65⌋ = ⌊0.32⌋ = 0
    assert jpy(kit, "sun-co") == (65, 0) and jpy(kit, "other-co") == (32, 0)
    assert kit.state.orders["o-00000002"].remaining_g == 1_000
    assert jpy(kit, "buyer-2") == (10_000 - 50, 50)  # still waiting for the next auction
    assert kit.state.markets["call"].next_clear == due + 1800
    assert res.detail == [0, 0, [["call", 32_500, 3_000]]]


def test_pro_rata_rationing_at_the_marginal_price() -> None:
    kit = call_kit()
    ok(kit, "sun-co", order("ask", 20_000, 1_000, market="call", lots=((L1, 1_000),)))  # o-1
    ok(kit, "buyer-co", order("bid", 20_000, 1_500, market="call"))  # o-2
    ok(kit, "buyer-2", order("bid", 20_000, 500, market="call"))  # o-3
    res = tick(kit, kit.state.markets["call"].next_clear)
    # demand 2,000 at 20k against 1,000: each bid gets 1,000 × its share: 750 and 250
    assert [(t.bid_order, t.quantity_g) for t in res.events if type(t).__name__ == "Traded"] == [
        ("o-00000002", 750), ("o-00000003", 250)]


def test_an_order_against_ones_own_opposite_order_in_a_call_market_is_refused() -> None:
    kit = call_kit()
    from crev.ledger.messages.deposit_jpy import DepositJpy

    ok(kit, "operator", DepositJpy("sun-co", 1_000, "BANK-9"))
    ok(kit, "sun-co", order("ask", 20_000, 1_000, market="call", lots=((L1, 1_000),)))
    res = kit.one(kit.tx("sun-co", order("bid", 20_000, 1_000, market="call")))
    assert res.error is not None and (res.error.code, res.error.field) == ("rule_violation", "body.side")


def test_a_tick_with_nothing_due_is_refused() -> None:
    kit = make_market_kit()
    res = tick(kit, kit.time + 20)
    assert res.error is not None and res.error.to_dict() == {
        "code": "conflict", "field": "body.block_time", "reason": "nothing is due at this time"}


def test_good_till_time_orders_expire_at_the_tick_and_release_their_reservation() -> None:
    kit = make_market_kit()
    until = kit.time + 600
    ok(kit, "buyer-co", order("bid", 50_000, 2_000, tif="gtt", expires_at=until))
    assert jpy(kit, "buyer-co") == (9_899, 101)
    res = tick(kit, until)
    assert res.ok and res.detail == [1, 0, []]
    closed = [e.to_dict() for e in res.events]
    assert closed == [{"type": "order_closed", "order_id": "o-00000001", "account": "buyer-co",
                       "reason": "expired", "remaining_g": 2_000, "released_jpy": 101, "released_g": 0}]
    assert jpy(kit, "buyer-co") == (10_000, 0)
    late = cancel(kit, "buyer-co", "o-00000001")
    assert late.error is not None and late.error.reason.endswith("closed as expired")


def test_auto_offer_sells_the_policy_share_of_each_new_lot_into_a_standing_bid_that_retires() -> None:
    kit = make_market_kit()
    retire = RetireSpec("Buyer Co", "statutory_report", FY2026[0], FY2026[1], "JP", "FY2026 report")
    assert ok(kit, "buyer-co", SetStandingBid("spot", 40_000, 3_000, ANY, retire)) == ["buyer-co", "o-00000001"]
    assert jpy(kit, "buyer-co") == (10_000 - 121, 121)  # 3,000 g × 40,000 = 120 + fee 1
    ok(kit, "sun-co", SetOfferPolicy("spot", 8_000, 30_000))  # 80 % of each new lot at ≥ 30,000
    kit.time = NOON + 3600
    res = kit.one(kit.submit(kit.reading(NOON + 1800, 10_000, 0, 0)))  # 4,500 g: 3,600 offered
    assert res.ok and res.detail == [["accepted", "dgc-1:20260601T1230", 4_500]]
    names = [type(e).__name__ for e in res.events]
    assert names == ["Issued", "OrderPlaced", "Retired", "Traded", "OrderClosed", "ReadingAccepted"]
    trade = next(e for e in res.events if type(e).__name__ == "Traded")
    # the resting standing bid's price: 3,000 g × 40,000 = 120 JPY, fee 1 each side
    assert (trade.quantity_g, trade.price, trade.value_jpy, trade.retirement_id) == (3_000, 40_000, 120, "ret-00000001")
    ret = kit.state.retirements["ret-00000001"]
    assert (ret.account, ret.beneficiary, ret.quantity_g, ret.ranges) == (
        "buyer-co", "Buyer Co", 3_000, [("dgc-1:20260601T1230", 8_501, 11_501)])
    assert kit.state.accounts["buyer-co"].retired_g == 3_000
    assert jpy(kit, "buyer-co") == (10_000 - 121, 0) and jpy(kit, "sun-co") == (119, 0)
    offer = kit.state.orders["o-00000002"]
    assert (offer.origin, offer.remaining_g) == ("auto_offer", 600)
    # a new JST month: the standing bid is renewed for its full monthly quantity
    res = tick(kit, parse_time("2026-07-01T00:00"))
    assert res.ok and res.detail == [0, 1, []]
    sb = kit.state.standing_bids[("buyer-co", "spot")]
    assert (sb.month, sb.order_id) == (202607, "o-00000003")
    # the new bid at 40,000 meets the auto-offer's 600 g at 30,000 (its resting price)
    traded = [e for e in res.events if type(e).__name__ == "Traded"]
    assert [(t.quantity_g, t.price) for t in traded] == [(600, 30_000)]
