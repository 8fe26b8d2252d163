"""submit_meter_values: a batch of the utility smart meter's 30-minute values, each signed by the
device (DGC) that read them. They reconcile the slot's provisional C-REV (ledger/reconcile.py).

body = [item, ...]; an item is the 11-element array

    [ "crev/meter/1", chain_id, device_id, slot_start, import_wh, export_wh,
      import_register_wh, export_register_wh, resolution_wh, meter_id, signature ]

* ``slot_start``: unix s on a 30-minute boundary;
* ``import_wh`` / ``export_wh``: the smart meter's energy over the slot [Wh] (the difference of
  consecutive fixed values: ECHONET Lite EA normal direction = import, EB reverse = export);
* ``import_register_wh`` / ``export_register_wh``: the fixed cumulative values at the slot end [Wh],
  recorded for audit;
* ``resolution_wh``: the register's resolution (E1 unit × D3 coefficient) [Wh], 1 .. 100000;
* ``meter_id``: the smart meter's identification (text, ≤ 64 characters).

The device signs the canonical encoding of the first ten elements with its key valid at the slot
end (like a reading). The item hash is SHA-256 of all eleven.

Each item is judged on its own; its result in the transaction's ``detail``, by index:
``["accepted", status]`` (the slot tally's status afterwards: provisional until the slot's
readings are complete, else final, corrected or late), ``["duplicate", status]`` (the same item
was recorded before) or ``["refused", code, field, reason]`` with ``field`` as
``items[i].<field>``. A smart meter's fixed value never changes: a different item for a
(device, slot) that has values already is refused (ConflictError) and the first stands. The
envelope rules are those of submit_readings: a batch with no item newly accepted is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.core.encoding import encode
from crev.core.hashing import sha256
from crev.core.metering import MAX_WH
from crev.core.signing import SIGNATURE_LEN
from crev.core.units import SLOT_SECONDS, slot_id
from crev.errors import (
    ConflictError,
    MalformedError,
    NotFoundError,
    PermissionError_,
    RuleError,
    SignatureError,
)
from crev.ledger.events import MeterValuesRecorded
from crev.ledger.messages.batch import BadItem, check_item_head, in_order, judge, need_int_field, parse_batch
from crev.ledger.params import Params
from crev.ledger.reconcile import ready, reconcile, tally_for
from crev.ledger.tx import register

METER_VERSION = "crev/meter/1"
FIELDS = ("version", "chain_id", "device_id", "slot_start", "import_wh", "export_wh", "import_register_wh",
          "export_register_wh", "resolution_wh", "meter_id", "signature")
MAX_RESOLUTION_WH = 100_000
MAX_METER_ID = 64


def meter_values_payload(chain_id: str, device_id: str, slot_start: int, import_wh: int, export_wh: int,
                         import_register_wh: int, export_register_wh: int, resolution_wh: int,
                         meter_id: str) -> list[Any]:
    """The ten signed elements of a smart-meter item, in order (sign ``encode(payload)`` and append
    the signature to send it)."""
    return [METER_VERSION, chain_id, device_id, slot_start, import_wh, export_wh, import_register_wh,
            export_register_wh, resolution_wh, meter_id]


@dataclass(frozen=True, slots=True)
class MeterValues:
    chain_id: str
    device_id: str
    slot_start: int
    import_wh: int
    export_wh: int
    import_register_wh: int
    export_register_wh: int
    resolution_wh: int
    meter_id: str
    signature: bytes
    signed_bytes: bytes
    hash: bytes

    def to_list(self) -> list[Any]:
        return [*meter_values_payload(self.chain_id, self.device_id, self.slot_start, self.import_wh,
                                      self.export_wh, self.import_register_wh, self.export_register_wh,
                                      self.resolution_wh, self.meter_id), self.signature]


def parse_meter_values(v: Any, where: str) -> MeterValues:
    """Stateless shape check of one item."""
    check_item_head(v, where, 11, METER_VERSION)
    for i in range(3, 9):
        x = v[i]
        need_int_field(x, f"{where}.{FIELDS[i]}")
        if x < 0:
            raise MalformedError(f"{where}.{FIELDS[i]}", f"must not be negative, found {x}")
        if x > MAX_WH:
            raise MalformedError(f"{where}.{FIELDS[i]}", f"{x} exceeds the maximum {MAX_WH}")
    if v[3] > 2**40:
        raise MalformedError(f"{where}.slot_start", "is not a plausible unix time")
    if v[3] % SLOT_SECONDS:
        raise MalformedError(f"{where}.slot_start", f"{v[3]} is not on a 30-minute slot boundary")
    if not 1 <= v[8] <= MAX_RESOLUTION_WH:
        raise MalformedError(f"{where}.resolution_wh", f"must be 1 .. {MAX_RESOLUTION_WH} Wh, found {v[8]}")
    if type(v[9]) is not str or not v[9] or len(v[9]) > MAX_METER_ID or not v[9].isprintable():
        raise MalformedError(f"{where}.meter_id", f"must be printable text of 1-{MAX_METER_ID} characters")
    sig = v[10]
    if type(sig) is not bytes or len(sig) != SIGNATURE_LEN:
        raise MalformedError(f"{where}.signature", f"must be {SIGNATURE_LEN} bytes")
    signed = encode(v[:10])
    return MeterValues(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], sig, signed, sha256(encode(v)))


@dataclass(frozen=True, slots=True)
class SubmitMeterValues:
    kind: ClassVar[str] = "submit_meter_values"
    values: tuple[MeterValues, ...]  # the well-formed items, in batch order
    malformed: tuple[BadItem, ...] = ()  # the others, each with its index in the batch

    def items(self) -> list[MeterValues | BadItem]:
        return in_order(self.values, self.malformed)

    def to_body(self) -> list[Any]:
        return [m.value if isinstance(m, BadItem) else m.to_list() for m in self.items()]

    def handle(self, ctx: Any) -> Any:
        return judge(ctx, self.items(), accept_meter_values, "items", "item",
                     lambda n: f"all {n} items of this batch are already on the ledger, nothing new to record")


def accept_meter_values(ctx: Any, m: MeterValues) -> tuple[list[Any], bool]:
    """Check one item against state; if it passes, record it in its slot tally and reconcile the
    slot if its readings are complete. Returns (result, whether the item is new)."""
    st = ctx.state
    if m.chain_id != st.chain_id:
        raise MalformedError("chain_id", f"is {m.chain_id!r}, this ledger is {st.chain_id!r}")
    dev = st.devices.get(m.device_id)
    if dev is None:
        raise NotFoundError("device_id", f"no device {m.device_id!r}")
    sid = slot_id(m.slot_start)
    prior = st.tallies.get((m.device_id, sid))
    if prior is not None and prior.has_meter:
        if prior.sm_hash == m.hash:
            return ["duplicate", prior.status], False
        raise ConflictError("slot_start", f"slot {m.slot_start} of {m.device_id} already has smart-meter values "
                                          f"(export {prior.sm_export_wh} Wh); a fixed value never changes")
    if not dev.active:
        raise PermissionError_("device_id", f"device {m.device_id!r} is revoked")
    end = m.slot_start + SLOT_SECONDS
    key = dev.key_for(end)
    if key is None:
        raise SignatureError("signature", "no key of this device is valid for this slot")
    if key.revoked:
        raise SignatureError("signature", "signed by a revoked device key")
    if not ctx.sigs.verify(key.public_key, m.signed_bytes, m.signature):
        raise SignatureError("signature", f"not a valid signature by device {m.device_id}'s key")
    if end <= dev.commissioned:
        raise RuleError("slot_start", "the slot ends before the device was commissioned")
    if end > ctx.time + st.params.max_future_s:
        raise RuleError("slot_start", f"slot ends {end - ctx.time} s after block time (allowed "
                                      f"{st.params.max_future_s} s): timestamp in the future")
    # every check passed: change state
    tally = tally_for(st, m.device_id, m.slot_start)
    tally.sm_import_wh = m.import_wh
    tally.sm_export_wh = m.export_wh
    tally.sm_resolution_wh = m.resolution_wh
    tally.sm_hash = m.hash
    ctx.emit(MeterValuesRecorded(m.device_id, sid, m.import_wh, m.export_wh, m.import_register_wh,
                                 m.export_register_wh, m.resolution_wh, m.meter_id, m.hash))
    if ready(tally):
        reconcile(ctx, dev, tally)
    return ["accepted", tally.status], True


@register(SubmitMeterValues.kind)
def from_body(body: Any, params: Params) -> SubmitMeterValues:
    return SubmitMeterValues(*parse_batch(body, params, parse_meter_values, "items", "item"))
