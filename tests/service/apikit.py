"""A small ledger with hand-computable numbers for the API tests (docs/api.md).

Factors (FY2025 rows, used for readings in FY2026): tokyo adjusted 450 g/kWh (issuance and the
market-based method), tokyo basic 420 g/kWh (location-based), national average 400.

sun-co owns dgc-0 and dgc-1; buyer-co is a buyer (tests/node/nodekit.py registers them).

dgc-0 reports three 30-minute readings on 2026-06-01 (JST):

====== ===== ===== ===== ====== ============= ==================================
slot   G Wh  I Wh  E Wh  demand self-consumed issued
====== ===== ===== ===== ====== ============= ==================================
12:00  3,000     0 1,000  2,000         2,000 lot A = ⌊2,000 × 450 / 1000⌋ = 900 g
12:30  1,000 1,500     0  2,500         1,000 lot B = 450 g
22:00      0   800     0    800             0 (night: nothing issued)
====== ===== ===== ===== ====== ============= ==================================

dgc-1 reports two 1-minute readings at 09:00 and 09:01 (G 800, I 300, E 100): two lots of 315 g.

Then, in this order:

1. sun-co transfers 100 g of lot A to buyer-co (units 1–100).
2. Market ``spot`` (continuous, fee 100 bp). buyer-co deposits 100,000 JPY. sun-co offers 300 g of
   lot A at 2,000,000 JPY/t; buyer-co bids for 300 g at the same price: one trade of 300 g (units
   101–400) worth 300 × 2,000,000 / 10⁶ = 600 JPY, fee ⌊600 × 100 / 10,000⌋ = 6 JPY per side.
3. Resting orders in ``spot``: buyer-co bids 1,500,000 JPY/t for 200 g (escrow 300 + 3 fee = 303
   JPY); sun-co offers 100 g of lot B at 2,500,000 JPY/t (escrowed units 901–1,000).
4. buyer-co retires 50 g of lot A (units 1–50): ``ret-00000001``.
5. Market ``call`` (call auction every 1,800 s, fee 100 bp): sun-co offers 100 g of lot B at
   100,000; buyer-co bids 100 g at 200,000; at the clearing time one auction clears at the middle,
   150,000 JPY/t: 100 g (units 1,001–1,100) worth 15 JPY, fee ⌊15 × 100 / 10,000⌋ = 0.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crev.core.encoding import encode
from crev.core.factors import FactorRow
from crev.core.units import fiscal_year_bounds
from crev.ledger.genesis import Genesis
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.submit_readings import reading_payload
from crev.ledger.messages.transfer import Transfer
from crev.ledger.records import ANY
from crev.node.node import Node
from tests.node import nodekit as k

FACTORS = (FactorRow("tokyo", 2025, "adjusted", 450, "test fixture"),
           FactorRow("tokyo", 2025, "basic", 420, "test fixture"),
           FactorRow("national", 2025, "national_average", 400, "test fixture"))
HALF_HOUR = 1800
SLOT_A = k.T0 + 12 * 3600          # 2026-06-01 12:00 JST: surplus
SLOT_B = SLOT_A + HALF_HOUR        # 12:30: deficit
SLOT_NIGHT = k.T0 + 22 * 3600      # 22:00: night
LOT_A = "dgc-0:20260601T1200"
LOT_B = "dgc-0:20260601T1230"
LOT_C = "dgc-1:20260601T0900"
LOT_D = "dgc-1:20260601T0901"
DGC0 = ((SLOT_A, 3_000, 0, 1_000), (SLOT_B, 1_000, 1_500, 0), (SLOT_NIGHT, 0, 800, 0))
RETIREMENT = "ret-00000001"



def get_json(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """GET ``path`` from a server on loopback ``port`` over a real socket: (status, JSON body),
    error statuses included."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def site_readings(device: str, rows: tuple[tuple[int, int, int, int], ...], interval_s: int = HALF_HOUR,
                  first_seq: int = 1, registers: tuple[int, int, int] = (5_000_000, 1_000_000, 200_000)
                  ) -> list[list[Any]]:
    """Signed readings (start, G, I, E) with registers that advance by exactly what each reports."""
    g_reg, i_reg, e_reg = registers
    out = []
    for n, (start, g, i, e) in enumerate(rows):
        g_reg, i_reg, e_reg = g_reg + g, i_reg + i, e_reg + e
        p = reading_payload(k.CHAIN, device, first_seq + n, start, interval_s, g, i, e, g_reg, i_reg, e_reg)
        out.append([*p, k.key(f"dev/{device}").sign(encode(p))])
    return out


@dataclass
class World:
    """The node (running), its mutable clock, the signers' nonces and what was created."""

    node: Node
    signers: k.Signers
    clock: list[float]
    ids: dict[str, Any] = field(default_factory=dict)

    def tx(self, signer: str, msg: Any) -> Any:
        r = self.node.submit_wait(self.signers.tx(signer, msg))
        assert r.ok and r.committed, r.error
        return r


def genesis() -> Genesis:
    return Genesis(k.CHAIN, k.T0 - 86400, k.OPERATOR, "Test Operator", k.key(k.OPERATOR).public_key,
                   k.key("sequencer").public_key, emission_factors=FACTORS)


def build(d: Path) -> World:
    """The ledger of the module doc in ``d``, with its node running (close it when done)."""
    Node.init(d, genesis(), k.key("sequencer").seed)
    clock = [float(k.NOW)]
    node = k.open_node(d, clock=lambda: clock[0])
    w = World(node, k.register_fleet(node, 2), clock)
    r = node.submit_wait(k.readings_tx(site_readings("dgc-0", DGC0)))
    assert r.ok, r.error
    w.ids["readings_tx"] = r.tx_hash
    assert [x[:3] for x in r.detail] == [["accepted", LOT_A, 900], ["accepted", LOT_B, 450], ["accepted", "", 0]]
    r = node.submit_wait(k.readings_tx([k.reading(1, 0), k.reading(1, 1)]))
    assert r.ok and [x[1] for x in r.detail] == [LOT_C, LOT_D], r.detail
    w.ids["transfer_tx"] = w.tx(k.OWNER, Transfer(k.BUYER, ((LOT_A, 100),), "sale")).tx_hash
    w.tx(k.OPERATOR, ListMarket("spot", "Spot", "continuous", ANY, 1, 10**9, 100, 100, 0, True))
    w.tx(k.OPERATOR, DepositJpy(k.BUYER, 100_000, "BANK-0001", bytes([0x5A]) * 16))  # salted: s is blinded
    w.tx(k.OWNER, PlaceOrder("spot", "ask", 2_000_000, 300, "gtc", 0, ANY, ((LOT_A, 300),), None))
    w.ids["trade_tx"] = w.tx(k.BUYER, PlaceOrder("spot", "bid", 2_000_000, 300, "gtc", 0, ANY, (), None)).tx_hash
    w.tx(k.BUYER, PlaceOrder("spot", "bid", 1_500_000, 200, "gtc", 0, ANY, (), None))
    w.tx(k.OWNER, PlaceOrder("spot", "ask", 2_500_000, 100, "gtc", 0, ANY, ((LOT_B, 100),), None))
    p0, p1 = fiscal_year_bounds(2026)
    r = w.tx(k.BUYER, Retire(((LOT_A, 50),), "Buyer Co", "re100", p0, p1, "JP", "FY2026"))
    assert r.detail[0] == RETIREMENT, r.detail
    w.ids["retire_tx"] = r.tx_hash
    w.tx(k.OPERATOR, ListMarket("call", "Call", "call", ANY, 1, 10**9, 100, 100, HALF_HOUR, True))
    w.tx(k.OWNER, PlaceOrder("call", "ask", 100_000, 100, "gtc", 0, ANY, ((LOT_B, 100),), None))
    w.tx(k.BUYER, PlaceOrder("call", "bid", 200_000, 100, "gtc", 0, ANY, (), None))
    due = node.state.markets["call"].next_clear
    w.ids["auction_height_after"] = node.state.height
    clock[0] = float(due)  # the sealer adds a market_tick by itself
    deadline = time.monotonic() + 30
    while node.state.markets["call"].last_price != 150_000:
        assert time.monotonic() < deadline, "the call auction did not clear"
        time.sleep(0.01)
    w.ids["auction_time"] = due
    return w
