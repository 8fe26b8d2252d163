"""crev report's rules, hand-computed: history follows the owner at the time, location-based
emissions use the grid area's basic factor, market-based the adjusted one."""

from __future__ import annotations

from pathlib import Path

from crev.core.factors import FactorRow
from crev.ledger.genesis import Genesis
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.update_device import UpdateDevice
from crev.node.node import LedgerView, Node
from crev.node.report import participant_report
from tests.node import nodekit as k

FACTORS = (FactorRow("tokyo", 2025, "adjusted", 450, "test"), FactorRow("tokyo", 2025, "basic", 420, "test"),
           FactorRow("national", 2025, "national_average", 400, "test"))


def test_history_follows_the_owner_at_the_time_and_each_method_uses_its_factor(tmp_path: Path) -> None:
    g = Genesis(k.CHAIN, k.T0 - 86400, k.OPERATOR, "Op", k.key(k.OPERATOR).public_key,
                k.key("sequencer").public_key, emission_factors=FACTORS)
    Node.init(tmp_path, g, k.key("sequencer").seed)
    node = k.open_node(tmp_path)
    s = k.register_fleet(node, 1)
    assert node.submit_wait(s.tx(k.OPERATOR, RegisterParticipant("new-co", "New Co", "prosumer",
                                                                 k.key("new-co").public_key))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 0), k.reading(0, 1)])).ok  # sun-co's
    assert node.submit_wait(s.tx(k.OPERATOR, UpdateDevice("dgc-0", (("owner", "new-co"),)))).ok
    assert node.submit_wait(k.readings_tx([k.reading(0, 2)])).ok  # new-co's
    node.close()
    view = LedgerView(tmp_path)
    try:
        old = participant_report(view.state, view.store, k.OWNER)
        new = participant_report(view.state, view.store, "new-co")
    finally:
        view.close()
    # each reading: G 800, I 300, E 100 → demand 1,000 Wh, self-consumed 700 Wh; the three
    # 1-minute readings fall in one 30-minute slot
    t_old, t_new = old.total(), new.total()
    assert (t_old.demand_wh, t_old.import_wh) == (2_000, 600)
    assert (t_new.demand_wh, t_new.import_wh) == (1_000, 300)
    # location-based: ⌈600 Wh × 420 (tokyo basic) / 1000⌉ = 252 g (not 450 × 0.6 = 270)
    assert t_old.location_based_g == 252
    assert t_new.location_based_g == 126
    # market-based: ⌈2,000 × 450 / 1000⌉ = 900 g minus the C-REV still held: 2 × 315 = 630 → 270
    assert (t_old.claimed_g, t_old.market_based_g) == (630, 270)
    assert (t_new.claimed_g, t_new.market_based_g) == (315, 135)
