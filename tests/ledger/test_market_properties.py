"""Random market activity through the real state machine: after every block C-REV and JPY are
conserved (the invariants, money included), no two open orders of different accounts in the
continuous market cross, and a state reloaded from its snapshot (books rebuilt from the order
records) produces exactly the same trades and roots from then on."""

from __future__ import annotations

from typing import Any, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crev.ledger.genesis import Genesis
from crev.ledger.messages.cancel_order import CancelOrder
from crev.ledger.messages.set_offer_policy import SetOfferPolicy
from crev.ledger.records import ANY, OPEN, Filter
from crev.ledger.snapshot import load_state
from tests.ledger.market_kit import make_market_kit, order, spot, tick
from tests.ledger_kit import CHAIN, FACTORS, NOON, T0, Kit, key

TRADERS = ("sun-co", "other-co", "buyer-co", "buyer-2")
FILTERS = (ANY, ANY, Filter(grid_areas=("kansai",)), Filter(fit=0), Filter(devices=("dgc-1",)))


class Act(NamedTuple):
    kind: str  # order, cancel, tick, reading
    who: int
    side: str
    price: int
    qty: int
    tif: str
    flt: int
    market: str


acts = st.builds(Act, st.sampled_from(["order", "order", "order", "cancel", "tick", "reading"]),
                 st.integers(0, 3), st.sampled_from(["bid", "ask"]), st.integers(10, 14).map(lambda x: x * 2_500),
                 st.integers(100, 2_000), st.sampled_from(["gtc", "gtc", "ioc", "fok", "gtt"]), st.integers(0, 4),
                 st.sampled_from(["spot", "spot", "call"]))


def start() -> Kit:
    kit = make_market_kit()
    kit.one(kit.tx("operator", spot("call", mode="call", interval=1800)))
    kit.one(kit.tx("sun-co", SetOfferPolicy("spot", 5_000, 30_000)))
    return kit


def play(kit: Kit, a: Act, step: int) -> list[Any]:
    """Apply one action in its own block; return the Traded events."""
    who = TRADERS[a.who]
    if a.kind == "cancel":
        mine = sorted(o.order_id for o in kit.state.orders.values() if o.account == who and o.status == OPEN)
        if not mine:
            return []
        res = kit.one(kit.tx(who, CancelOrder(mine[step % len(mine)])))
    elif a.kind == "tick":
        res = tick(kit, max(kit.time + 1800, min([o.expires_at for o in kit.state.orders.values()
                                                  if o.expires_at and o.status == OPEN] or [kit.time + 1800])))
    elif a.kind == "reading":
        dev = "dgc-1" if a.who % 2 == 0 else "dgc-2"
        start_ = NOON + 1800 * (kit.state.devices[dev].readings + 1)
        kit.time = max(kit.time, start_ + 1800)
        res = kit.one(kit.submit(kit.reading(start_, 5_000 + a.qty, 0, 0, device=dev)))
    else:
        flt = FILTERS[a.flt] if a.side == "bid" and a.market == "spot" else ANY
        tif = a.tif if a.market == "spot" else "gtc"
        expires = kit.time + 900 if tif == "gtt" else 0
        res = kit.one(kit.tx(who, order(a.side, a.price, a.qty, market=a.market, tif=tif, expires_at=expires,
                                        flt=flt)))
    return [e for e in res.events if type(e).__name__ == "Traded"]


def check(kit: Kit) -> None:
    from crev.ledger.invariants import check_invariants

    check_invariants(kit.state)
    open_spot = [o for o in kit.state.orders.values() if o.market_id == "spot" and o.status == OPEN]
    for b in open_spot:
        if b.side == "bid" and b.filter == ANY:
            for a in open_spot:
                if a.side == "ask" and a.price <= b.price:
                    assert a.account == b.account, (b.order_id, a.order_id)


def reloaded(kit: Kit) -> Kit:
    g = Genesis(CHAIN, T0 - 86400, "operator", "Test Operator", key("operator").public_key,
                key("sequencer").public_key, emission_factors=FACTORS)
    st_ = kit.state
    items = [(k, v) for k in st_.all_keys() if (v := st_.value_of(k)) is not None and k != "g"]
    copy = load_state(g, sorted(items), st_.height, st_.last_block_hash, st_.last_time)
    assert copy.tree.root() == st_.tree.root()
    twin = Kit(copy, kit.time)
    twin.nonces.update(kit.nonces)
    twin.seq.update(kit.seq)
    twin.regs.update({d: list(r) for d, r in kit.regs.items()})
    return twin


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(acts, min_size=1, max_size=25), st.lists(acts, min_size=1, max_size=15))
def test_random_market_activity_conserves_everything_and_replays_identically(first: list[Act],
                                                                            then: list[Act]) -> None:
    kit = start()
    for i, a in enumerate(first):
        play(kit, a, i)
        check(kit)
    twin = reloaded(kit)
    for i, a in enumerate(then):
        t1 = play(kit, a, i)
        t2 = play(twin, a, i)
        assert [e.to_value() for e in t1] == [e.to_value() for e in t2]
        assert kit.root() == twin.root()
        check(kit)
