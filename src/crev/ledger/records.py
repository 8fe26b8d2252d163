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

    def to_value(self) -> list[Any]:
        return [self.account_id, self.name, self.role, self.public_key, self.nonce,
                self.tradable_g, self.escrowed_g, self.retired_g, self.registered_height]

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
                self.carry_slot, self.carry_mg]

    @staticmethod
    def from_value(v: list[Any]) -> Device:
        d = Device(*v[:11], keys=[DeviceKey(*k) for k in v[11]])  # type: ignore[misc]
        (d.active, d.last_seq, d.last_interval_end, d.generation_register_wh, d.import_register_wh,
         d.export_register_wh, d.readings, d.issued_g, d.carry_slot, d.carry_mg) = v[12:]
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
    origin: str  # "reading" or "topup"
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

    def to_value(self) -> list[Any]:
        return [self.next_unit, self.issued_g, self.tradable_g, self.escrowed_g, self.retired_g,
                self.cancelled_g, self.retirements]

    @staticmethod
    def from_value(v: list[Any]) -> Supply:
        return Supply(*v)
