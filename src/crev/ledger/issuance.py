"""Creating a lot: C-REV units for one device interval (or a correction top-up)."""

from __future__ import annotations

from functools import lru_cache

from crev.core.slotted import constructor
from crev.core.units import fiscal_year, jst, slot_id
from crev.ledger.events import Issued
from crev.ledger.records import TRADABLE, Device, Lot, Segment
from crev.ledger.state import State

_new_lot = constructor(Lot)
_new_issued = constructor(Issued)
_new_segment = constructor(Segment)


@lru_cache(maxsize=65536)
def lot_label(interval_start: int) -> str:
    """``20261128T1030``: the interval start in JST, as used in lot ids."""
    return jst(interval_start).strftime("%Y%m%dT%H%M")


@lru_cache(maxsize=65536)
def fiscal_year_cached(ts: int) -> int:
    return fiscal_year(ts)


@lru_cache(maxsize=1024)
def factor_ref(key: str, fiscal_year: int, kind: str) -> str:
    """``tokyo/2025/adjusted``: a lot's reference to its factor row (state key ``f/<ref>``); one
    string shared by every lot of that factor."""
    return f"{key}/{fiscal_year}/{kind}"


def lot_id_for(device_id: str, interval_start: int) -> str:
    return f"{device_id}:{lot_label(interval_start)}"


def issue_lot(state: State, events: list[object], *, lot_id: str, device: Device, owner: str,
              interval_start: int, interval_end: int, self_consumed_wh: int, quantity_g: int,
              factor_g_per_kwh: int, factor_ref: str, height: int,
              block_time: int, reading_hash: bytes, origin: str, reference: str) -> Lot:
    """Create ``quantity_g`` new units (1 unit = 1 g-CO2e) held tradable by ``owner``."""
    supply = state.supply
    first = supply.next_unit
    lot = _new_lot(lot_id, first, quantity_g, device.device_id, owner, slot_id(interval_start), interval_start,
                   interval_end, self_consumed_wh, factor_g_per_kwh, factor_ref, device.technology,
                   device.latitude_e6, device.longitude_e6, device.grid_area, device.fit, height, block_time,
                   reading_hash, origin, reference, [_new_segment(first, first + quantity_g, owner, TRADABLE, "")])
    state.lots[lot_id] = lot
    supply.next_unit = first + quantity_g
    supply.issued_g += quantity_g
    supply.tradable_g += quantity_g
    acct = state.accounts[owner]
    acct.tradable_g += quantity_g
    device.issued_g += quantity_g
    state.mark(f"l/{lot_id}")
    state.mark(f"a/{owner}")
    state.mark("s")
    events.append(_new_issued(lot_id, device.device_id, owner, first, quantity_g, self_consumed_wh,
                              factor_g_per_kwh, lot.slot_id, origin))
    return lot
