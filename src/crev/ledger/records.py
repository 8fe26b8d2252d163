"""State records: participants, devices, lots (with their unit segments), retirements.

Records are mutable inside the state machine and turn into canonical lists (``to_value``) for the
state tree and storage. Field names follow docs/glossary.md; units are in the names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Participant roles
OPERATOR = "operator"
PROSUMER = "prosumer"
BUYER = "buyer"
AUDITOR = "auditor"
ROLES = (OPERATOR, PROSUMER, BUYER, AUDITOR)

# Holding statuses of a unit segment
TRADABLE = "tradable"
ESCROWED = "escrowed"
RETIRED = "retired"
CANCELLED = "cancelled"
STATUSES = (TRADABLE, ESCROWED, RETIRED, CANCELLED)


@dataclass(slots=True)
class Account:
    account_id: str
    name: str
    role: str
    public_key: bytes
    nonce: int = 0  # the next nonce a transaction signed by this account must carry
    tradable_g: int = 0
    escrowed_g: int = 0
    retired_g: int = 0
    registered_height: int = 0
    jpy: int = 0  # JPY available (deposited, received from sales, minus what was paid)
    jpy_escrowed: int = 0  # JPY reserved by open bids (price × quantity plus fee)
    # the blinding value (ledger/blinding.py): 16 secret bytes that keep the record's leaf hash,
    # listed in public state proofs of its bucket, from telling its JPY; b"" = none (an account
    # registered before blinds, whose 11-element bytes stay as they were)
    blind: bytes = b""

    def to_value(self) -> list[Any]:
        v = [self.account_id, self.name, self.role, self.public_key, self.nonce,
             self.tradable_g, self.escrowed_g, self.retired_g, self.registered_height,
             self.jpy, self.jpy_escrowed]
        return [*v, self.blind] if self.blind else v

    @staticmethod
    def from_value(v: list[Any]) -> Account:
        return Account(*v)


@dataclass(slots=True)
class DeviceKey:
    public_key: bytes
    valid_from: int  # unix s: readings whose interval ends at/after this may use the key
    valid_until: int  # unix s, 0 = open; readings whose interval ends after this may not
    revoked: bool = False

    def to_value(self) -> list[Any]:
        return [self.public_key, self.valid_from, self.valid_until, self.revoked]


@dataclass(slots=True)
class Device:
    device_id: str
    owner: str
    rated_capacity_w: int
    commissioned: int  # unix s
    latitude_e6: int  # micro-degrees
    longitude_e6: int
    grid_area: str
    meter_serial: str
    certified_until: int  # unix s: readings for intervals ending after this are refused
    fit: bool
    technology: str
    keys: list[DeviceKey]
    active: bool = True
    # the last accepted reading
    last_seq: int = 0
    last_interval_end: int = 0
    generation_register_wh: int = -1  # -1 = no reading yet
    import_register_wh: int = -1
    export_register_wh: int = -1
    readings: int = 0
    issued_g: int = 0
    # what the slot's earlier intervals measured but did not issue (below 1 g): see
    # core.units.co2_g_floor_carried. Only carried within one slot.
    carry_slot: int = -1
    carry_mg: int = 0
    # reconciliation with the utility smart meter (ledger/reconcile.py)
    debt_g: int = 0  # reconciliation debt still to repay from the device's next issuances [g-CO2e]
    debt_repaid_g: int = 0  # reconciliation debt repaid so far [g-CO2e]
    drift_slots: int = 0  # consecutive reconciled slots out of tolerance: + DGC above, − below the meter
    drift_alerts: int = 0  # CalibrationDrift events raised for this device
    last_control_seq: int = 0  # the last accepted control record's seq

    def key_for(self, interval_end: int) -> DeviceKey | None:
        """The device key valid for a reading of an interval ending at ``interval_end``."""
        for k in reversed(self.keys):
            if k.valid_from <= interval_end and (k.valid_until == 0 or interval_end <= k.valid_until):
                return k
        return None

    def to_value(self) -> list[Any]:
        return [self.device_id, self.owner, self.rated_capacity_w, self.commissioned,
                self.latitude_e6, self.longitude_e6, self.grid_area, self.meter_serial,
                self.certified_until, self.fit, self.technology, [k.to_value() for k in self.keys],
                self.active, self.last_seq, self.last_interval_end, self.generation_register_wh,
                self.import_register_wh, self.export_register_wh, self.readings, self.issued_g,
                self.carry_slot, self.carry_mg, self.debt_g, self.debt_repaid_g, self.drift_slots,
                self.drift_alerts, self.last_control_seq]

    @staticmethod
    def from_value(v: list[Any]) -> Device:
        d = Device(*v[:11], keys=[DeviceKey(*k) for k in v[11]])  # type: ignore[misc]
        (d.active, d.last_seq, d.last_interval_end, d.generation_register_wh, d.import_register_wh,
         d.export_register_wh, d.readings, d.issued_g, d.carry_slot, d.carry_mg, d.debt_g, d.debt_repaid_g,
         d.drift_slots, d.drift_alerts, d.last_control_seq) = v[12:]
        return d


@dataclass(slots=True)
class Segment:
    """A contiguous unit range [start, end) of one lot with one holder and one status."""

    start: int
    end: int
    holder: str
    status: str
    ref: str = ""  # retirement id, cancellation reference or order id

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_value(self) -> list[Any]:
        return [self.start, self.end, self.holder, self.status, self.ref]


@dataclass(slots=True)
class Lot:
    """One issuance: C-REV for one device interval (or a top-up). 1 unit = 1 g-CO2e."""

    lot_id: str
    first_unit: int
    quantity_g: int
    device_id: str
    issued_to: str
    slot_id: int
    interval_start: int
    interval_end: int
    self_consumed_wh: int
    factor_g_per_kwh: int
    factor_ref: str  # "tokyo/2024/adjusted": the factor row (state key f/<ref>) that was used
    technology: str
    latitude_e6: int
    longitude_e6: int
    grid_area: str
    fit: bool
    height: int
    block_time: int
    reading_hash: bytes  # b"" for a top-up
    origin: str  # "reading", "topup" (operator) or "reconcile" (smart-meter reconciliation)
    reference: str  # top-up: the corrected lot and the reason
    segments: list[Segment] = field(default_factory=list)

    @property
    def end_unit(self) -> int:
        return self.first_unit + self.quantity_g

    def amount(self, holder: str, status: str) -> int:
        return sum(s.end - s.start for s in self.segments if s.holder == holder and s.status == status)

    def to_value(self) -> list[Any]:
        return [self.lot_id, self.first_unit, self.quantity_g, self.device_id, self.issued_to,
                self.slot_id, self.interval_start, self.interval_end, self.self_consumed_wh,
                self.factor_g_per_kwh, self.factor_ref, self.technology,
                self.latitude_e6, self.longitude_e6, self.grid_area, self.fit, self.height,
                self.block_time, self.reading_hash, self.origin, self.reference,
                [s.to_value() for s in self.segments]]

    @staticmethod
    def from_value(v: list[Any]) -> Lot:
        lot = Lot(*v[:21])
        lot.segments = [Segment(*s) for s in v[21]]
        return lot


@dataclass(slots=True)
class Retirement:
    retirement_id: str
    account: str
    beneficiary: str
    purpose: str
    period_start: int
    period_end: int
    jurisdiction: str
    note: str
    ranges: list[tuple[str, int, int]]  # (lot_id, start unit, end unit)
    quantity_g: int
    height: int
    block_time: int
    tx_hash: bytes

    def to_value(self) -> list[Any]:
        return [self.retirement_id, self.account, self.beneficiary, self.purpose,
                self.period_start, self.period_end, self.jurisdiction, self.note,
                [list(r) for r in self.ranges], self.quantity_g, self.height, self.block_time,
                self.tx_hash]

    @staticmethod
    def from_value(v: list[Any]) -> Retirement:
        r = Retirement(*v)
        r.ranges = [(x[0], x[1], x[2]) for x in v[8]]
        return r


@dataclass(slots=True)
class ReadingRecord:
    """What the ledger keeps of an accepted reading, for idempotency and provenance."""

    interval_start: int
    reading_hash: bytes
    lot_id: str  # "" when nothing was issued (e.g. a night reading)
    height: int

    def to_value(self) -> list[Any]:
        return [self.interval_start, self.reading_hash, self.lot_id, self.height]

    @staticmethod
    def from_value(v: list[Any]) -> ReadingRecord:
        return ReadingRecord(*v)


# Slot tally statuses (see ledger/reconcile.py): what the smart meter said about a slot
PROVISIONAL = "provisional"  # issued, not (yet) reconciled
FINAL = "final"  # reconciled: the smart meter agreed within tolerance
CORRECTED = "corrected"  # reconciled with a correction (cancellation, debt or top-up)
LATE = "late"  # the smart meter's values came after the finality window: compared, not corrected
TALLY_STATUSES = (PROVISIONAL, FINAL, CORRECTED, LATE)


@dataclass(slots=True)
class SlotTally:
    """One device's 30-minute slot: what its readings measured and issued, and the utility smart
    meter's values for it. State key ``v/<device>/<slot_id>``. Energies [Wh], units [g-CO2e]."""

    slot_start: int  # unix s, on a 1800 s boundary
    covered_s: int = 0  # Σ interval_s of the accepted readings in the slot (1800 = complete)
    generation_wh: int = 0  # the DGC's sums over those readings
    import_wh: int = 0
    export_wh: int = 0
    issued_g: int = 0  # units issued for the slot: its readings' lots and top-ups
    withdrawn_g: int = 0  # units taken back for the slot: cancelled by corrections, or recorded as debt
    debt_g: int = 0  # of withdrawn_g, what reconciliation recorded as debt on the device
    factor_g_per_kwh: int = 0  # the factor of the slot's lots (0: no lot yet)
    lots: list[str] = field(default_factory=list)  # the slot's lot ids, readings' and top-ups'
    sm_import_wh: int = -1  # the smart meter's values for the slot (-1: none yet)
    sm_export_wh: int = -1
    sm_resolution_wh: int = 0
    sm_hash: bytes = b""  # the smart-meter item's hash
    status: str = PROVISIONAL
    target_g: int = -1  # reconciliation: what the smart meter's export allows (-1: not reconciled)
    reconciled_height: int = 0

    @property
    def has_meter(self) -> bool:
        return self.sm_export_wh >= 0

    def to_value(self) -> list[Any]:
        return [self.slot_start, self.covered_s, self.generation_wh, self.import_wh, self.export_wh,
                self.issued_g, self.withdrawn_g, self.debt_g, self.factor_g_per_kwh, list(self.lots),
                self.sm_import_wh, self.sm_export_wh, self.sm_resolution_wh, self.sm_hash, self.status,
                self.target_g, self.reconciled_height]

    @staticmethod
    def from_value(v: list[Any]) -> SlotTally:
        t = SlotTally(*v)
        t.lots = list(v[9])
        return t


@dataclass(slots=True)
class ControlRecord:
    """What a DGC applied to its inverter (the PCS active-power limit) in a slot, and why. State key
    ``c/<device>/<seq>``. Powers [W], prices in the units their names state."""

    slot_start: int
    applied_at: int  # unix s
    limit_w: int  # the active-power limit applied (rated capacity = no limit)
    export_cap_w: int  # the grid-point export cap in force (-1: none)
    reason: str  # ledger.vocab.CONTROL_REASONS
    export_limit_w: int  # the export limit the owner or contract asked for (-1: none)
    export_value_milli_jpy_per_kwh: int  # what exported energy was worth [mJPY/kWh]
    crev_price_jpy_per_t: int  # the C-REV price the DGC weighed [JPY/t-CO2e]
    curtail_below_milli_jpy_per_kwh: int  # the owner's threshold [mJPY/kWh]
    operator_limit_pct: int  # the grid operator's output-control limit [% of capacity] (-1: none)
    control_hash: bytes
    height: int
    # the item's salt (ledger/blinding.py), chosen by the DGC: without it the leaf hash would tell
    # the three money inputs; b"" = none (an item without one: the 12-element bytes stay)
    salt: bytes = b""

    def to_value(self) -> list[Any]:
        v = [self.slot_start, self.applied_at, self.limit_w, self.export_cap_w, self.reason,
             self.export_limit_w, self.export_value_milli_jpy_per_kwh, self.crev_price_jpy_per_t,
             self.curtail_below_milli_jpy_per_kwh, self.operator_limit_pct, self.control_hash, self.height]
        return [*v, self.salt] if self.salt else v

    @staticmethod
    def from_value(v: list[Any]) -> ControlRecord:
        return ControlRecord(*v)


@dataclass(slots=True)
class Supply:
    """Chain-wide totals [g-CO2e]; tradable + escrowed + retired + cancelled == issued."""

    next_unit: int = 1
    issued_g: int = 0
    tradable_g: int = 0
    escrowed_g: int = 0
    retired_g: int = 0
    cancelled_g: int = 0
    retirements: int = 0
    jpy: int = 0  # JPY on the ledger: deposits − withdrawals (conserved by every trade)
    orders: int = 0  # orders ever placed: the next order's sequence number is orders + 1
    trades: int = 0
    # the blinding value of ``jpy`` (ledger/blinding.py: next_supply_blind), re-chained by every
    # deposit or withdrawal that carries a salt; every other field follows from public events, so
    # without it the leaf hash would tell the JPY total. b"" = none yet (10-element bytes as before)
    jpy_blind: bytes = b""

    def to_value(self) -> list[Any]:
        v = [self.next_unit, self.issued_g, self.tradable_g, self.escrowed_g, self.retired_g,
             self.cancelled_g, self.retirements, self.jpy, self.orders, self.trades]
        return [*v, self.jpy_blind] if self.jpy_blind else v

    @staticmethod
    def from_value(v: list[Any]) -> Supply:
        return Supply(*v)


# --- delegated keys (issue 11) ---------------------------------------------------------------------

#: The kinds a delegate may be granted: the market actions a site's DGC needs to sell its owner's
#: C-REV. ``place_order`` only for asks: a delegate never spends the owner's JPY.
DELEGABLE_KINDS = ("set_offer_policy", "place_order", "cancel_order")


@dataclass(slots=True)
class Delegate:
    """A key an account authorised on the ledger to sign some of its transactions (``authorize_delegate``),
    for example the DGC of one of its sites, which then places the site's offers without the owner's key
    and never with its device key. State key ``k/<delegate_id>``; delegate ids share the account id
    namespace. A transaction whose signer is ``delegate_id`` acts as ``owner`` and uses this record's
    own ``nonce`` (the owner's is not consumed)."""

    delegate_id: str
    owner: str
    public_key: bytes
    kinds: list[str]  # DELEGABLE_KINDS it may sign
    valid_until: int  # unix s, 0 = open: it signs nothing in a block at or after this time
    revoked: bool = False
    nonce: int = 0  # the next nonce a transaction signed by this delegate must carry
    granted_height: int = 0  # block of the last grant

    def to_value(self) -> list[Any]:
        return [self.delegate_id, self.owner, self.public_key, list(self.kinds), self.valid_until,
                self.revoked, self.nonce, self.granted_height]

    @staticmethod
    def from_value(v: list[Any]) -> Delegate:
        d = Delegate(*v)
        d.kinds = list(v[3])
        return d


# --- the market (issue 3) -------------------------------------------------------------------------

CONTINUOUS = "continuous"
CALL = "call"
MODES = (CONTINUOUS, CALL)
BID = "bid"
ASK = "ask"
TIFS = ("gtc", "gtt", "ioc", "fok")
OPEN = "open"
FILLED = "filled"
CANCELLED_ORDER = "cancelled"
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Filter:
    """Which C-REV a bid accepts (or a market trades, or an offer sells): every non-empty part must
    match. ``fit``: -1 either, 0 non-FIT only, 1 FIT only. Vintage: the lot's interval start in
    [vintage_start, vintage_end) (0 = unbounded). ``final_only``: only units of lots whose slot is
    final at the block's time (ledger/reconcile.py); the book checks it, ``matches`` does not (it
    depends on state and time). Encoded as a 7th element ``true`` only when set, so every filter
    without it keeps its 6-element bytes."""

    grid_areas: tuple[str, ...] = ()
    technologies: tuple[str, ...] = ()
    fit: int = -1
    devices: tuple[str, ...] = ()
    vintage_start: int = 0
    vintage_end: int = 0
    final_only: bool = False

    def to_value(self) -> list[Any]:
        v = [list(self.grid_areas), list(self.technologies), self.fit, list(self.devices),
             self.vintage_start, self.vintage_end]
        return [*v, True] if self.final_only else v

    @staticmethod
    def from_value(v: list[Any]) -> Filter:
        return Filter(tuple(v[0]), tuple(v[1]), v[2], tuple(v[3]), v[4], v[5], len(v) > 6 and v[6] is True)

    @property
    def empty(self) -> bool:
        return self == ANY

    def matches(self, lot: Lot) -> bool:
        return ((not self.grid_areas or lot.grid_area in self.grid_areas)
                and (not self.technologies or lot.technology in self.technologies)
                and (self.fit < 0 or lot.fit == bool(self.fit))
                and (not self.devices or lot.device_id in self.devices)
                and lot.interval_start >= self.vintage_start
                and (not self.vintage_end or lot.interval_start < self.vintage_end))


ANY = Filter()


@dataclass(slots=True)
class Market:
    """A product the operator lists: which C-REV it trades, how it matches and what it costs.

    Prices are JPY per t-CO2e; quantities g-CO2e. ``call_interval_s``: a call market clears at
    every multiple of it (unix time; 1800 = at each 30-minute slot boundary)."""

    market_id: str
    name: str
    mode: str
    product: Filter
    price_min: int
    price_max: int
    min_qty_g: int
    fee_bp: int
    call_interval_s: int
    open: bool = True
    next_clear: int = 0  # call markets: the block time at/after which the next auction runs
    last_price: int = 0  # the last trade / clearing price

    def to_value(self) -> list[Any]:
        return [self.market_id, self.name, self.mode, self.product.to_value(), self.price_min,
                self.price_max, self.min_qty_g, self.fee_bp, self.call_interval_s, self.open,
                self.next_clear, self.last_price]

    @staticmethod
    def from_value(v: list[Any]) -> Market:
        return Market(v[0], v[1], v[2], Filter.from_value(v[3]), *v[4:])


@dataclass(frozen=True, slots=True)
class RetireSpec:
    """The retirement fields a bid fills into on auto-retire (see messages/retire.py)."""

    beneficiary: str
    purpose: str
    period_start: int
    period_end: int
    jurisdiction: str
    note: str

    def to_value(self) -> list[Any]:
        return [self.beneficiary, self.purpose, self.period_start, self.period_end,
                self.jurisdiction, self.note]


@dataclass(slots=True)
class Order:
    """A bid or an offer (ask). ``seq`` is its time priority. An ask escrows its C-REV per lot
    (``lots``: [lot_id, remaining g]); a bid escrows ``escrow_jpy``: enough for the remaining
    quantity at its limit price plus the fee."""

    order_id: str
    seq: int
    market_id: str
    account: str
    side: str
    price: int  # JPY per t-CO2e: the limit
    quantity_g: int
    remaining_g: int
    tif: str
    expires_at: int  # gtt: unix s; otherwise 0
    filter: Filter  # bid: what it accepts
    retire: RetireSpec | None  # bid: retire on fill
    lots: list[list[Any]]  # ask: [[lot_id, remaining_g], ...] in the order they are sold
    escrow_jpy: int
    status: str
    height: int
    origin: str = "order"  # "order", "auto_offer" or "standing_bid"

    def to_value(self) -> list[Any]:
        return [self.order_id, self.seq, self.market_id, self.account, self.side, self.price,
                self.quantity_g, self.remaining_g, self.tif, self.expires_at, self.filter.to_value(),
                [] if self.retire is None else self.retire.to_value(),
                [list(x) for x in self.lots], self.escrow_jpy, self.status, self.height, self.origin]

    @staticmethod
    def from_value(v: list[Any]) -> Order:
        return Order(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
                     Filter.from_value(v[10]), RetireSpec(*v[11]) if v[11] else None,
                     [list(x) for x in v[12]], v[13], v[14], v[15], v[16])


@dataclass(slots=True)
class OfferPolicy:
    """Auto-offer: offer ``share_bp`` of each new lot of the account's devices at ``price``."""

    account: str
    market_id: str
    share_bp: int
    price: int

    def to_value(self) -> list[Any]:
        return [self.account, self.market_id, self.share_bp, self.price]

    @staticmethod
    def from_value(v: list[Any]) -> OfferPolicy:
        return OfferPolicy(*v)


@dataclass(slots=True)
class StandingBid:
    """Standing demand: buy up to ``monthly_g`` per JST month at ≤ ``price``, as a bid order the
    ledger renews at each month's start (``order_id`` is the current one)."""

    account: str
    market_id: str
    price: int
    monthly_g: int
    filter: Filter
    retire: RetireSpec | None
    month: int  # YYYYMM of the current order
    order_id: str

    def to_value(self) -> list[Any]:
        return [self.account, self.market_id, self.price, self.monthly_g, self.filter.to_value(),
                [] if self.retire is None else self.retire.to_value(), self.month, self.order_id]

    @staticmethod
    def from_value(v: list[Any]) -> StandingBid:
        return StandingBid(v[0], v[1], v[2], v[3], Filter.from_value(v[4]),
                           RetireSpec(*v[5]) if v[5] else None, v[6], v[7])
