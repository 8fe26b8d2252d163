"""Typed events: every state change emits one. Indexers, reports and the API read these, never
the state machine's private structures. ``to_value`` gives the canonical list that is hashed into
the block's results root; ``to_dict`` the JSON form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, ClassVar

from crev.core.encoding import codec_kernel


class _Layout:
    """How to read one event class's fields fast: its field names (in order) and one getter of all
    their values. Made once per class, on first use."""

    __slots__ = ("get", "names")

    def __init__(self, cls: type) -> None:
        self.names = tuple(f.name for f in fields(cls))
        one = attrgetter(*self.names) if self.names else None
        self.get: Callable[[Any], tuple[Any, ...]] = (
            (lambda _e: ()) if one is None else one if len(self.names) > 1 else (lambda e: (one(e),)))


_LAYOUTS: dict[type, _Layout] = {}


def _layout(cls: type) -> _Layout:
    lay = _LAYOUTS.get(cls)
    if lay is None:
        lay = _LAYOUTS[cls] = _Layout(cls)
    return lay


@dataclass(frozen=True, slots=True)
class Event:
    type: ClassVar[str] = "event"

    def to_value(self) -> list[Any]:
        lay = _LAYOUTS.get(type(self)) or _layout(type(self))
        return [self.type, *lay.get(self)]

    def to_dict(self) -> dict[str, Any]:
        lay = _LAYOUTS.get(type(self)) or _layout(type(self))
        k = codec_kernel()
        if k is not None:  # the same dict, built in one call (crev_native.event_dict)
            return k.event_dict(self, self.type, lay.names)
        out: dict[str, Any] = {"type": self.type}
        for n, v in zip(lay.names, lay.get(self)):  # noqa: B905 - the getter reads exactly these names
            out[n] = v.hex() if isinstance(v, bytes) else list(v) if isinstance(v, tuple) else v
        return out


@dataclass(frozen=True, slots=True)
class ParticipantRegistered(Event):
    type: ClassVar[str] = "participant_registered"
    account_id: str
    name: str
    role: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class KeyRotated(Event):
    type: ClassVar[str] = "key_rotated"
    account_id: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class ParticipantKeyReset(Event):
    """The operator replaced (lost or stolen key) or revoked (public_key b"") a participant's key."""

    type: ClassVar[str] = "participant_key_reset"
    account_id: str
    public_key: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceRegistered(Event):
    type: ClassVar[str] = "device_registered"
    device_id: str
    owner: str
    rated_capacity_w: int
    grid_area: str
    fit: bool
    public_key: bytes


@dataclass(frozen=True, slots=True)
class DeviceUpdated(Event):
    type: ClassVar[str] = "device_updated"
    device_id: str
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeviceKeyRevoked(Event):
    type: ClassVar[str] = "device_key_revoked"
    device_id: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class DeviceRevoked(Event):
    type: ClassVar[str] = "device_revoked"
    device_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReadingAccepted(Event):
    type: ClassVar[str] = "reading_accepted"
    device_id: str
    seq: int
    interval_start: int
    interval_s: int
    generation_wh: int
    import_wh: int
    export_wh: int
    demand_wh: int
    self_consumed_wh: int
    reading_hash: bytes
    lot_id: str
    owner: str  # the device's owner when the reading was accepted: whose site the figures are


@dataclass(frozen=True, slots=True)
class ReadingGap(Event):
    """Readings between two accepted ones are missing. Energy the registers advanced beyond the
    reported interval is recorded here and never issued."""

    type: ClassVar[str] = "reading_gap"
    device_id: str
    missing_from_seq: int
    missing_to_seq: int
    gap_start: int
    gap_end: int
    unreported_generation_wh: int
    unreported_import_wh: int
    unreported_export_wh: int


@dataclass(frozen=True, slots=True)
class Issued(Event):
    type: ClassVar[str] = "issued"
    lot_id: str
    device_id: str
    owner: str
    first_unit: int
    quantity_g: int
    self_consumed_wh: int
    factor_g_per_kwh: int
    slot_id: int
    origin: str


@dataclass(frozen=True, slots=True)
class Transferred(Event):
    type: ClassVar[str] = "transferred"
    lot_id: str
    sender: str
    recipient: str
    start_unit: int
    end_unit: int


@dataclass(frozen=True, slots=True)
class Retired(Event):
    type: ClassVar[str] = "retired"
    retirement_id: str
    account: str
    beneficiary: str
    purpose: str
    lot_id: str
    start_unit: int
    end_unit: int


@dataclass(frozen=True, slots=True)
class Cancelled(Event):
    type: ClassVar[str] = "cancelled"
    lot_id: str
    holder: str
    start_unit: int
    end_unit: int
    reason: str
    reference: str


@dataclass(frozen=True, slots=True)
class EmissionFactorsSet(Event):
    type: ClassVar[str] = "emission_factors_set"
    rows: int
    table_hash: bytes


# --- the smart meter: reconciliation and control records (ledger/reconcile.py) -------------------


@dataclass(frozen=True, slots=True)
class MeterValuesRecorded(Event):
    """The utility smart meter's fixed values for one slot, as read by the device [Wh]."""

    type: ClassVar[str] = "meter_values_recorded"
    device_id: str
    slot_id: int
    import_wh: int
    export_wh: int
    import_register_wh: int
    export_register_wh: int
    resolution_wh: int
    meter_id: str
    item_hash: bytes


@dataclass(frozen=True, slots=True)
class SlotReconciled(Event):
    """A slot's readings compared with the smart meter. ``status``: final (within tolerance),
    corrected (``target_g`` differed from what stood: ``topup_g`` issued, or ``cancelled_g``
    cancelled and ``debt_g`` recorded) or late (compared after the finality window, no correction).
    Energies [Wh], units [g-CO2e]."""

    type: ClassVar[str] = "slot_reconciled"
    device_id: str
    slot_id: int
    status: str
    generation_wh: int
    dgc_import_wh: int
    dgc_export_wh: int
    sm_import_wh: int
    sm_export_wh: int
    tolerance_wh: int  # on export; import is compared with its own
    issued_g: int  # what stood for the slot before reconciling (issued − withdrawn)
    target_g: int
    topup_g: int
    cancelled_g: int
    debt_g: int


@dataclass(frozen=True, slots=True)
class DebtRecorded(Event):
    """Reconciliation could not cancel ``debt_g`` units (sold, retired): a debt on the device,
    repaid from its next issuances."""

    type: ClassVar[str] = "debt_recorded"
    device_id: str
    slot_id: int
    debt_g: int
    total_debt_g: int


@dataclass(frozen=True, slots=True)
class DebtRepaid(Event):
    """``repaid_g`` units of a new lot were cancelled at once to repay the device's debt."""

    type: ClassVar[str] = "debt_repaid"
    device_id: str
    lot_id: str
    repaid_g: int
    remaining_debt_g: int


@dataclass(frozen=True, slots=True)
class CalibrationDrift(Event):
    """``consecutive`` reconciled slots of a device out of tolerance in the same direction:
    its meter (or CT) may have drifted. ``quantity`` is "export" or "import"."""

    type: ClassVar[str] = "calibration_drift"
    device_id: str
    slot_id: int
    quantity: str
    dgc_wh: int
    smart_meter_wh: int
    consecutive: int


@dataclass(frozen=True, slots=True)
class ControlRecorded(Event):
    """What a DGC applied to its inverter, and why (see messages/submit_controls.py)."""

    type: ClassVar[str] = "control_recorded"
    device_id: str
    seq: int
    slot_start: int
    applied_at: int
    limit_w: int
    reason: str
    control_hash: bytes  # the record (c/<device>/<seq>) holds the rest


# --- money and the market --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JpyDeposited(Event):
    """The operator recorded money received in the bank for ``account``."""

    type: ClassVar[str] = "jpy_deposited"
    account: str
    amount_jpy: int
    reference: str


@dataclass(frozen=True, slots=True)
class JpyWithdrawn(Event):
    type: ClassVar[str] = "jpy_withdrawn"
    account: str
    amount_jpy: int
    reference: str


@dataclass(frozen=True, slots=True)
class MarketListed(Event):
    type: ClassVar[str] = "market_listed"
    market_id: str
    mode: str
    open: bool
    price_min: int
    price_max: int
    min_qty_g: int
    fee_bp: int


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    type: ClassVar[str] = "order_placed"
    order_id: str
    market_id: str
    account: str
    side: str
    price: int  # JPY per t-CO2e
    quantity_g: int
    tif: str
    expires_at: int
    escrow_jpy: int  # bid: JPY reserved
    escrow_g: int  # ask: C-REV reserved
    origin: str


@dataclass(frozen=True, slots=True)
class OrderClosed(Event):
    """An order left the book: ``reason`` filled, cancelled, expired, ioc (remainder dropped),
    replaced (a standing bid renewed) or market_closed. What it still reserved was released."""

    type: ClassVar[str] = "order_closed"
    order_id: str
    account: str
    reason: str
    remaining_g: int
    released_jpy: int
    released_g: int


@dataclass(frozen=True, slots=True)
class Traded(Event):
    """A fill, settled delivery-versus-payment: the units moved to the buyer (retired at once if
    the bid auto-retires) and the money to the seller, in the same transaction."""

    type: ClassVar[str] = "traded"
    trade_id: str
    market_id: str
    bid_order: str
    ask_order: str
    buyer: str
    seller: str
    quantity_g: int
    price: int  # JPY per t-CO2e
    value_jpy: int  # ⌊quantity_g × price / 1,000,000⌋
    fee_buyer_jpy: int
    fee_seller_jpy: int
    ranges: tuple[tuple[str, int, int], ...]  # (lot_id, start unit, end unit) delivered
    aggressor: str  # "bid", "ask" or "auction"
    retirement_id: str  # "" unless the bid auto-retired


@dataclass(frozen=True, slots=True)
class AuctionCleared(Event):
    type: ClassVar[str] = "auction_cleared"
    market_id: str
    price: int  # 0 when nothing crossed
    volume_g: int
    bids: int
    asks: int


@dataclass(frozen=True, slots=True)
class OfferPolicySet(Event):
    type: ClassVar[str] = "offer_policy_set"
    account: str
    market_id: str  # "" = policy removed
    share_bp: int
    price: int


@dataclass(frozen=True, slots=True)
class StandingBidSet(Event):
    type: ClassVar[str] = "standing_bid_set"
    account: str
    market_id: str
    price: int
    monthly_g: int  # 0 = removed


# --- delegated keys ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DelegateGranted(Event):
    """``owner`` authorised (or re-authorised) ``delegate_id``'s key to sign ``kinds`` for it until
    ``valid_until`` (unix s, 0 = open)."""

    type: ClassVar[str] = "delegate_granted"
    delegate_id: str
    owner: str
    public_key: bytes
    kinds: tuple[str, ...]
    valid_until: int


@dataclass(frozen=True, slots=True)
class DelegateRevoked(Event):
    type: ClassVar[str] = "delegate_revoked"
    delegate_id: str
    owner: str


def event_from_value(v: list[Any]) -> Event:
    """The event whose ``to_value()`` is ``v`` (as stored in a block's results)."""
    classes = {c.type: c for c in Event.__subclasses__()}
    cls = classes.get(v[0])
    if cls is None:
        raise ValueError(f"unknown event type {v[0]!r}")
    args = [tuple(x) if isinstance(x, list) else x for x in v[1:]]
    return cls(*args)
