from tests.ledger_kit import NOON, Kit


def test_a_noon_reading_issues_hand_computed_grams(kit: Kit) -> None:
    # G = 20,000 Wh, I = 0, E = 5,000 Wh → self-consumed 15,000 Wh × 450 g/kWh = 6,750 g
    kit.time = NOON + 1800
    res = kit.one(kit.submit(kit.reading(NOON, 20_000, 0, 5_000)))
    assert res.ok
    assert res.detail == [["accepted", "dgc-1:20260601T1200", 6_750]]
    assert kit.state.accounts["sun-co"].tradable_g == 6_750
