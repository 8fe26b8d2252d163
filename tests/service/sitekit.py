"""A ledger of two sites with smart-meter values and control records, hand-computed, for the API's
device views (tests/service/test_device_views.py) and the dashboard's site view
(tests/web/test_site_view.py).

Factors as in tests/service/apikit.py: tokyo adjusted 450 g/kWh. Tolerance [Wh] = max(resolution
1 + floor 10, ⌊smart meter × 200 / 10,000⌋). sun-co owns dgc-0 and dgc-1; buyer-co buys.

dgc-0's half-hour readings on 2026-06-01 (JST), then the smart meter's values for each slot:

===== ===== ===== ===== ====== ============ ====== ===== =========== ========================
slot  G Wh  I Wh  E Wh  issued SM I / E Wh  tol E  SM−DGC target      result (drift)
===== ===== ===== ===== ====== ============ ====== ===== =========== ========================
10:00   500   100     0   225  100 / 50     11     +50   —           late (sent the next day) −4
11:00 2,000     0   500   675  0 / 500      11     0     675         final, drift 0
12:00 3,000     0 1,000   900  0 / 1,200    24     +200  ⌊1,800×.45⌋ corrected −1: 90 withdrawn;
                                                         = 810       sun-co holds 50 (850 sold):
                                                                     50 cancelled, 40 debt
12:30 2,000     0   400   720  0 / 600      12     +200  630         corrected −2: 90 cancelled
13:00 1,000   200   100   405  200 / 300    11     +200  315         corrected −3: 90 cancelled,
                                                                     CalibrationDrift (export)
13:30 1,000     0     0   450  (none)                                provisional
===== ===== ===== ===== ====== ============ ====== ===== =========== ========================

The 10:00 values arrive at 2026-06-02 11:00 (past slot end + 86,400 s): late, compared and counted
(drift −4, the alert stays raised), never corrected. 13:30 stays provisional (final at
2026-06-02 14:00). dgc-0 ends with debt 40 g, drift 4 slots below the meter, 1 alert raised.

dgc-1: one reading at 12:00 (G 1,000, I 0, E 300 → 315 g); the smart meter says export 100: target
⌊900 × 0.45⌋ = 405, a top-up lot ``dgc-1:20260601T1200+1`` of 90 g (corrected).

dgc-0's control records (capacity 100 kW):

=== ===== ======== ======= ====== ============= ====== ====== ======= ========= ====
seq slot  applied  limit W cap W  reason        exp.lim value  price   curtail   op %
=== ===== ======== ======= ====== ============= ====== ====== ======= ========= ====
1   11:00 11:00:30 100,000 none   released      none   8,500  3,000   1,000     none
2   12:00 12:05:00  40,000 0      zero_export   0      0      3,000   1,000     none
3   13:00 13:10:00  30,000 none   grid_operator none   8,500  3,000   1,000     30
=== ===== ======== ======= ====== ============= ====== ====== ======= ========= ====
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crev.core.encoding import encode
from crev.ledger.messages.submit_controls import control_payload
from crev.ledger.messages.submit_meter_values import meter_values_payload
from crev.ledger.messages.transfer import Transfer
from crev.node.node import Node
from tests.node import nodekit as k
from tests.service import apikit as a

HOUR = 3600
S10, S11, S12, S1230, S13, S1330 = (k.T0 + 10 * HOUR, k.T0 + 11 * HOUR, k.T0 + 12 * HOUR,
                                    k.T0 + 12 * HOUR + 1800, k.T0 + 13 * HOUR, k.T0 + 13 * HOUR + 1800)
DGC0 = ((S10, 500, 100, 0), (S11, 2_000, 0, 500), (S12, 3_000, 0, 1_000), (S1230, 2_000, 0, 400),
        (S13, 1_000, 200, 100), (S1330, 1_000, 0, 0))
LOT = {s: f"dgc-0:20260601T{h}" for s, h in ((S10, "1000"), (S11, "1100"), (S12, "1200"), (S1230, "1230"),
                                               (S13, "1300"), (S1330, "1330"))}
LOT1 = "dgc-1:20260601T1200"
TOPUP = "dgc-1:20260601T1200+1"
DAY = "2026-06-01"
FIRST_TIME = k.T0 + 14 * HOUR + 60  # the clock while readings, values and controls arrive
LATE_TIME = k.T0 + 86400 + 11 * HOUR  # the next day, when the 10:00 values arrive
# (seq, slot, applied_at, limit_w, export_cap_w, reason, export_limit_w, value, price, curtail, op %)
CONTROLS = ((1, S11, S11 + 30, 100_000, -1, "released", -1, 8_500, 3_000, 1_000, -1),
            (2, S12, S12 + 300, 40_000, 0, "zero_export", 0, 0, 3_000, 1_000, -1),
            (3, S13, S13 + 600, 30_000, -1, "grid_operator", -1, 8_500, 3_000, 1_000, 30))


def meter(device: str, start: int, import_wh: int, export_wh: int) -> list[Any]:
    p = meter_values_payload(k.CHAIN, device, start, import_wh, export_wh, 7_000_000, 900_000, 1, "SM-0001")
    return [*p, k.key(f"dev/{device}").sign(encode(p))]


def control(device: str, row: tuple[int, ...] | tuple[Any, ...]) -> list[Any]:
    p = control_payload(k.CHAIN, device, *row)
    return [*p, k.key(f"dev/{device}").sign(encode(p))]


def unsigned(kind: str, items: list[list[Any]]) -> bytes:
    return encode(["crev/tx/1", k.CHAIN, kind, "", 0, items, b""])


@dataclass
class Sites:
    node: Node
    clock: list[float]
    ids: dict[str, Any] = field(default_factory=dict)


def build(d: Path) -> Sites:
    """The ledger of the module doc in ``d``, its node running (close it when done)."""
    Node.init(d, a.genesis(), k.key("sequencer").seed)
    clock = [float(FIRST_TIME)]
    node = k.open_node(d, clock=lambda: clock[0])
    w = Sites(node, clock)
    signers = k.register_fleet(node, 2)

    def ok(raw: bytes) -> Any:
        r = node.submit_wait(raw)
        assert r.ok and r.committed, (r.error, r.detail)
        return r

    r = ok(k.readings_tx(a.site_readings("dgc-0", DGC0)))
    assert [x[1:3] for x in r.detail] == [[LOT[s], q] for s, q in zip(
        (S10, S11, S12, S1230, S13, S1330), (225, 675, 900, 720, 405, 450), strict=True)], r.detail
    ok(k.readings_tx(a.site_readings("dgc-1", ((S12, 1_000, 0, 300),))))
    ok(signers.tx(k.OWNER, Transfer(k.BUYER, ((LOT[S12], 850),), "sale")))
    r = ok(unsigned("submit_meter_values", [meter("dgc-0", S11, 0, 500), meter("dgc-0", S12, 0, 1_200),
                                            meter("dgc-0", S1230, 0, 600), meter("dgc-0", S13, 200, 300),
                                            meter("dgc-1", S12, 0, 100)]))
    assert [x[:2] for x in r.detail] == [["accepted", "final"]] + [["accepted", "corrected"]] * 4, r.detail
    w.ids["meter_tx"] = r.tx_hash
    r = ok(unsigned("submit_controls", [control("dgc-0", row) for row in CONTROLS]))
    w.ids["controls_tx"] = r.tx_hash
    clock[0] = float(LATE_TIME)
    r = ok(unsigned("submit_meter_values", [meter("dgc-0", S10, 100, 50)]))
    assert r.detail == [["accepted", "late"]], r.detail
    w.ids["head_time"] = node.state.last_time
    return w
