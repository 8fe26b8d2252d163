"""A node ledger whose slots the utility smart meter reconciles, for the read side's tests (trace,
export, statements, report, verify, the CLI). Built through the node (nodekit: tokyo, 450 g/kWh),
with the node's clock at 11:00 JST on T0, so a slot without smart-meter values is still
provisional (final after slot end + 1 day).

Every 30-minute reading self-consumes G − E = 8,000 Wh → 3,600 g, unless said otherwise.

dgc-0 (sun-co):

* A = 09:00: G 10,000, E 2,000 → lot A (units 1–3,600). sun-co sends buyer-co 1,000 g (units
  1–1,000); buyer-co retires 500 g (units 1–500, ret-00000001) while A is provisional. The smart
  meter says export 3,000 Wh (DGC 2,000; tolerance 2 % of 3,000 = 60 Wh) → **corrected**: target
  ⌊7,000 × 0.45⌋ = 3,150 g, the 450 g excess cancelled from sun-co's tradable units 1,001–1,450.
* B = 09:30: G 10,000, I 500, E 2,000 → lot B (units 3,601–7,200). Smart meter export 2,030 Wh,
  import 500 Wh: 30 Wh apart, 40 allowed → **final**. buyer-co then buys 100 g of B (transfer)
  and retires it (ret-00000002): final at retirement.
* C = 10:00: G 4,000 → lot C, 1,800 g; no smart-meter values → **provisional**.
* one control record (seq 1, slot C, zero export, limit 0 W).

dgc-1 (sun-co), three slots 09:00, 09:30, 10:00 each read G 10,000 E 2,000 (3,600 g) and the
smart meter says export 3,000 each time (→ target 3,150, 450 too many, drift: DGC below the meter):

* slot 1's lot is sent whole to buyer-co first → nothing to cancel: **debt 450 g**;
* slot 2's lot is issued in full, then 450 g cancelled at once (debt repaid); its reconciliation
  cancels another 450 g of sun-co's tradable units;
* slot 3's lot is sent whole to buyer-co → debt 450 g again, and the third slot out of tolerance
  in the same direction raises a **calibration drift** alert.

So dgc-1 ends with debt_g 450, debt_repaid_g 450, drift_slots −3, drift_alerts 1; 5 smart-meter
items, 5 reconciled slots (1 final, 4 corrected), 1 control record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crev.core.encoding import encode
from crev.core.units import SLOT_SECONDS, fiscal_year_bounds
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.submit_controls import control_payload
from crev.ledger.messages.submit_meter_values import meter_values_payload
from crev.ledger.messages.submit_readings import reading_payload
from crev.ledger.messages.transfer import Transfer
from tests.node import nodekit as k

NOW = k.T0 + 11 * 3600  # 11:00 JST on T0: the node's clock
A = k.T0 + 9 * 3600
B = A + SLOT_SECONDS
C = B + SLOT_SECONDS
LOT_A, LOT_B, LOT_C = "dgc-0:20260601T0900", "dgc-0:20260601T0930", "dgc-0:20260601T1000"
D1, D2, D3 = "dgc-1:20260601T0900", "dgc-1:20260601T0930", "dgc-1:20260601T1000"
FY2026 = fiscal_year_bounds(2026)


class Readings:
    """Signed 30-minute readings with registers that advance by what each reports."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = {}
        self.regs: dict[str, tuple[int, int, int]] = {}

    def __call__(self, dev: str, start: int, g: int, i: int, e: int) -> bytes:
        seq = self.seq[dev] = self.seq.get(dev, 0) + 1
        r = self.regs.get(dev, (1_000_000, 2_000_000, 300_000))
        regs = self.regs[dev] = (r[0] + g, r[1] + i, r[2] + e)
        p = reading_payload(k.CHAIN, dev, seq, start, SLOT_SECONDS, g, i, e, *regs)
        return k.readings_tx([[*p, k.key(f"dev/{dev}").sign(encode(p))]])


def meter_item(dev: str, start: int, import_wh: int, export_wh: int) -> list[Any]:
    p = meter_values_payload(k.CHAIN, dev, start, import_wh, export_wh, 5_000_000, 600_000, 1, "SM-0001")
    return [*p, k.key(f"dev/{dev}").sign(encode(p))]


def meter_tx(*items: list[Any]) -> bytes:
    return encode(["crev/tx/1", k.CHAIN, "submit_meter_values", "", 0, list(items), b""])


def control_item(dev: str, seq: int, start: int) -> list[Any]:
    p = control_payload(k.CHAIN, dev, seq, start, start + 60, 0, -1, "zero_export", 0, 0, 5_000, 1_000, -1)
    return [*p, k.key(f"dev/{dev}").sign(encode(p))]


def build_meter_ledger(d: Path) -> Path:
    k.init_dir(d)
    node = k.open_node(d, clock=lambda: float(NOW))
    rd = Readings()

    def ok(raw: bytes) -> None:
        r = node.submit_wait(raw)
        assert r.ok, r.error

    try:
        s = k.register_fleet(node, 2)
        ok(rd("dgc-0", A, 10_000, 0, 2_000))
        ok(s.tx(k.OWNER, Transfer(k.BUYER, ((LOT_A, 1_000),), "sale")))
        ok(s.tx(k.BUYER, Retire(((LOT_A, 500),), "Buyer Co", "re100", *FY2026, "JP", "")))
        ok(meter_tx(meter_item("dgc-0", A, 0, 3_000)))  # corrected: 450 g cancelled
        ok(rd("dgc-0", B, 10_000, 500, 2_000))
        ok(meter_tx(meter_item("dgc-0", B, 500, 2_030)))  # final
        ok(s.tx(k.OWNER, Transfer(k.BUYER, ((LOT_B, 100),), "sale")))
        ok(s.tx(k.BUYER, Retire(((LOT_B, 100),), "Buyer Co", "re100", *FY2026, "JP", "")))
        ok(rd("dgc-0", C, 4_000, 0, 0))  # provisional
        ok(encode(["crev/tx/1", k.CHAIN, "submit_controls", "", 0, [control_item("dgc-0", 1, C)], b""]))
        ok(rd("dgc-1", A, 10_000, 0, 2_000))
        ok(s.tx(k.OWNER, Transfer(k.BUYER, ((D1, 3_600),), "sale")))
        ok(meter_tx(meter_item("dgc-1", A, 0, 3_000)))  # debt 450
        ok(rd("dgc-1", B, 10_000, 0, 2_000))  # repays the 450
        ok(meter_tx(meter_item("dgc-1", B, 0, 3_000)))  # cancels 450
        ok(rd("dgc-1", C, 10_000, 0, 2_000))
        ok(s.tx(k.OWNER, Transfer(k.BUYER, ((D3, 3_600),), "sale")))
        ok(meter_tx(meter_item("dgc-1", C, 0, 3_000)))  # debt 450, drift alert
    finally:
        node.close()
    return d
