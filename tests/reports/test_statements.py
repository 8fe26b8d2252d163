"""Statements, hand-computed, from a node's committed blocks; and the market's clock in the node.

Ten 1-minute readings of dgc-0 issue 10 lots of 315 g (nodekit). sun-co offers 3,150 g at
1,000,000 JPY/t; buyer-co's bid takes them lot by lot: each fill is 315 g × 1,000,000 / 10⁶ =
315 JPY with a fee of ⌊315 × 100 / 10,000⌋ = 3 JPY per side.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.retire import Retire
from crev.ledger.records import ANY
from crev.node.node import LedgerView
from crev.reports.statements import (
    monthly_statement,
    retirement_pdf,
    retirement_statement,
    statement_csv,
    statement_pdf,
)
from tests.node import nodekit as k


def market_node(d: Path) -> tuple[LedgerView, str]:
    node = k.open_node(k.init_dir(d))
    try:
        s = k.register_fleet(node, 1)
        assert node.submit_wait(k.readings_tx([k.reading(0, j) for j in range(10)])).ok
        for signer, msg in [
            (k.OPERATOR, ListMarket("spot", "Spot", "continuous", ANY, 1, 10**9, 100, 100, 0, True)),
            (k.OPERATOR, DepositJpy(k.BUYER, 10_000, "BANK-1")),
            (k.OWNER, PlaceOrder("spot", "ask", 1_000_000, 3_150, "gtc", 0, ANY, (), None)),
            (k.BUYER, PlaceOrder("spot", "bid", 1_000_000, 3_150, "gtc", 0, ANY, (), None)),
        ]:
            r = node.submit_wait(s.tx(signer, msg))
            assert r.ok, r.error
        lot = "dgc-0:20260601T0900"
        ret = node.submit_wait(s.tx(k.BUYER, Retire(((lot, 300),), "Buyer Co", "re100", k.T0 - 61 * 86400,
                                                    k.T0 + 304 * 86400, "JP", "FY2026 <b>RE100</b>")))
        assert ret.ok, ret.error
        rid = ret.detail[0]
    finally:
        node.close()
    return LedgerView(d), rid


def test_monthly_statements_add_up_for_buyer_seller_and_operator(tmp_path: Path) -> None:
    view, _ = market_node(tmp_path)
    try:
        month = 202607  # the node's clock (nodekit.NOW) is 2026-07-01 JST
        buyer = monthly_statement(view.state, view.store, k.BUYER, month)
        seller = monthly_statement(view.state, view.store, k.OWNER, month)
        op = monthly_statement(view.state, view.store, k.OPERATOR, month)
        later = monthly_statement(view.state, view.store, k.BUYER, 202608)
        acct = view.state.accounts[k.BUYER]
    finally:
        view.close()
    assert [x.kind for x in buyer.lines] == ["deposit"] + ["bought"] * 10 + ["retired"]
    assert all((x.quantity_g, x.value_jpy, x.fee_jpy, x.net_jpy) == (315, 315, 3, -318)
               for x in buyer.lines if x.kind == "bought")
    assert (buyer.opening_jpy, buyer.closing_jpy) == (0, 10_000 - 3_180)
    assert (buyer.bought_g, buyer.sold_g, buyer.retired_g, buyer.fees_paid_jpy) == (3_150, 0, 300, 30)
    assert buyer.closing_jpy == acct.jpy + acct.jpy_escrowed  # the statement agrees with the ledger
    assert (seller.sold_g, seller.closing_jpy, seller.trading_net_jpy) == (3_150, 3_120, 3_120)
    assert [x.net_jpy for x in op.lines] == [6] * 10 and op.closing_jpy == 60
    assert (later.opening_jpy, later.lines) == (6_820, [])
    rows = list(csv.reader(io.StringIO(statement_csv(buyer))))
    assert rows[0][:4] == ["# statement", "buyer-co", "Buyer Co", "2026-07"]
    assert rows[1][:3] == ["time_jst", "kind", "ref"]
    assert rows[3][1:3] == ["bought", "tr-00000001"] and rows[3][9] == "-318"


def test_pdfs_are_written(tmp_path: Path) -> None:
    view, rid = market_node(tmp_path / "l")
    try:
        stmt = monthly_statement(view.state, view.store, k.BUYER, 202607)
        cert = retirement_statement(view.state, rid)
    finally:
        view.close()
    assert cert["ranges"] == [{"lot_id": "dgc-0:20260601T0900", "start_unit": 1, "end_unit": 301, "quantity_g": 300,
                               "device_id": "dgc-0", "grid_area": "tokyo", "fit": False,
                               "slot_start_jst": "2026-06-01 09:00", "factor_g_per_kwh": 450,
                               # retired 30 days after the slot, no smart-meter values: final by the window
                               "finality_at_retirement": "final", "finality_now": "final"}]
    assert (cert["final_g_at_retirement"], cert["provisional_g_at_retirement"]) == (300, 0)
    assert cert["verify"] == [f"crev trace {rid}", "crev verify"]
    assert (cert["period_start_jst"], cert["period_last_day_jst"]) == ("2026-04-01", "2027-03-31")
    for fn, arg, name in ((statement_pdf, stmt, "s.pdf"), (retirement_pdf, cert, "r.pdf")):
        path = tmp_path / name
        fn(arg, path)  # type: ignore[operator]
        data = path.read_bytes()
        assert data.startswith(b"%PDF-") and b"HeiseiKakuGo-W5" in data and len(data) > 2_000


def test_the_node_runs_the_call_auction_when_its_time_comes(tmp_path: Path) -> None:
    clock = [float(k.NOW)]
    node = k.open_node(k.init_dir(tmp_path), clock=lambda: clock[0])
    try:
        s = k.register_fleet(node, 1)
        assert node.submit_wait(k.readings_tx([k.reading(0, 0)])).ok
        for signer, msg in [
            (k.OPERATOR, ListMarket("call", "Call", "call", ANY, 1, 10**9, 100, 0, 1800, True)),
            (k.OPERATOR, DepositJpy(k.BUYER, 1_000, "BANK-1")),
            (k.OWNER, PlaceOrder("call", "ask", 100_000, 300, "gtc", 0, ANY, (), None)),
            (k.BUYER, PlaceOrder("call", "bid", 200_000, 300, "gtc", 0, ANY, (), None)),
        ]:
            assert node.submit_wait(s.tx(signer, msg)).ok
        assert node.state.supply.trades == 0
        due = node.state.markets["call"].next_clear
        clock[0] = float(due)  # time passes: the sealer adds a market_tick by itself
        for _ in range(500):
            if node.state.supply.trades:
                break
            import time

            time.sleep(0.01)
        assert node.state.supply.trades == 1
        # one price: the middle of 100,000 and 200,000; 300 g × 150,000 / 10⁶ = 45 JPY
        assert node.state.markets["call"].last_price == 150_000
        assert node.state.accounts[k.OWNER].jpy == 45
        assert node.state.markets["call"].next_clear == due + 1800
    finally:
        node.close()
