"""A ledger with a market, for market tests. Builds on tests/ledger_kit.py.

Hand-computable numbers: dgc-1 (sun-co, tokyo, 450 g/kWh) and dgc-2 (other-co, kansai, falls back
to the national 400 g/kWh) each report 10,000 Wh self-consumed at 12:00 JST, issuing
L1 = dgc-1:20260601T1200 (4,500 g, units 1-4,500) and L2 = dgc-2:20260601T1200 (4,000 g).
Market ``spot``: continuous, any C-REV, 1,000 … 200,000 JPY/t, minimum 100 g, fee 100 bp per side.
buyer-co and buyer-2 have 10,000 JPY each.
"""

from __future__ import annotations

from typing import Any

from crev.ledger.apply import TxResult
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.cancel_order import CancelOrder
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.records import ANY, Filter, RetireSpec
from tests.ledger_kit import CAPACITY_W, NOON, T0, Kit, key, make_kit

L1 = "dgc-1:20260601T1200"
L2 = "dgc-2:20260601T1200"


def spot(market_id: str = "spot", mode: str = "continuous", product: Filter = ANY, fee_bp: int = 100,
         min_qty_g: int = 100, interval: int = 0, open_: bool = True) -> ListMarket:
    return ListMarket(market_id, f"{market_id} market", mode, product, 1_000, 200_000, min_qty_g, fee_bp,
                      interval, open_)


def order(side: str, price: int, qty: int, *, market: str = "spot", tif: str = "gtc", expires_at: int = 0,
          flt: Filter = ANY, lots: tuple[tuple[str, int], ...] = (),
          retire: RetireSpec | None = None) -> PlaceOrder:
    return PlaceOrder(market, side, price, qty, tif, expires_at, flt, lots, retire)


def ok(kit: Kit, signer: str, msg: Any) -> Any:
    res = kit.one(kit.tx(signer, msg))
    assert res.ok, res.error
    check_invariants(kit.state)
    return res.detail


def run(kit: Kit, signer: str, msg: Any) -> TxResult:
    res = kit.one(kit.tx(signer, msg))
    check_invariants(kit.state)
    return res


def cancel(kit: Kit, signer: str, order_id: str) -> TxResult:
    return run(kit, signer, CancelOrder(order_id))


def jpy(kit: Kit, account: str) -> tuple[int, int]:
    a = kit.state.accounts[account]
    return a.jpy, a.jpy_escrowed


def make_market_kit(**market: Any) -> Kit:
    kit = make_kit()
    res = kit.block(
        kit.tx("operator", RegisterParticipant("buyer-2", "Buyer Two", "buyer", key("buyer-2").public_key)),
        kit.tx("operator", RegisterDevice("dgc-2", "other-co", key("dev/dgc-2").public_key, CAPACITY_W,
                                          T0 - 86400 * 30, 34_693_738, 135_502_165, "kansai", "SN-0002",
                                          T0 + 86400 * 365 * 5, False, "solar_pv"), 5),
    )
    assert all(r.ok for r in res), [r.error for r in res]
    kit.time = NOON + 1800
    res = kit.block(kit.submit(kit.reading(NOON, 10_000, 0, 0), kit.reading(NOON, 10_000, 0, 0, device="dgc-2")))
    assert res[0].detail == [["accepted", L1, 4_500], ["accepted", L2, 4_000]], res[0].detail
    ok(kit, "operator", spot(**market))
    ok(kit, "operator", DepositJpy("buyer-co", 10_000, "BANK-1"))
    ok(kit, "operator", DepositJpy("buyer-2", 10_000, "BANK-2"))
    return kit


def tick(kit: Kit, at: int) -> TxResult:
    """A market_tick in a block at time ``at``."""
    from crev.ledger.messages.market_tick import MarketTick
    from crev.ledger.tx import build_tx
    from tests.ledger_kit import CHAIN

    kit.time = at - 10
    res = kit.one(build_tx(CHAIN, MarketTick(at)))
    check_invariants(kit.state)
    return res
