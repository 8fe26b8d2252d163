"""submit_controls: a batch of control records, each signed by its device: what the DGC applied to
the inverter (the PCS active-power limit) and why.

body = [item, ...]; an item is the 15-element array

    [ "crev/control/1", chain_id, device_id, seq, slot_start, applied_at, limit_w, export_cap_w,
      reason, export_limit_w, export_value_milli_jpy_per_kwh, crev_price_jpy_per_t,
      curtail_below_milli_jpy_per_kwh, operator_limit_pct, signature ]

* ``seq``: the device's control sequence number, strictly increasing (1 .. 2^63-1);
* ``slot_start``: the slot the limit was applied in (unix s, on a 30-minute boundary);
  ``applied_at``: when [unix s], within [slot_start, slot_start + 1800);
* ``limit_w``: the active-power limit applied, 0 .. the device's rated capacity [W] (no limit =
  the rated capacity); ``export_cap_w``: the export cap at the grid point [W], -1 = none;
* ``reason``: one of ledger.vocab.CONTROL_REASONS (released, zero_export, export_cap,
  export_unpaid, grid_operator);
* ``export_limit_w`` [W] (-1 none), ``export_value_milli_jpy_per_kwh`` [mJPY/kWh],
  ``crev_price_jpy_per_t`` [JPY/t-CO2e], ``curtail_below_milli_jpy_per_kwh`` [mJPY/kWh]: the
  figures the decision weighed; ``operator_limit_pct``: the grid operator's output-control limit
  [% of capacity], -1 .. 100 (-1 none).

An item may carry a 16-byte ``salt`` (ledger/blinding.py) between ``operator_limit_pct`` and the
signature, making it a 16-element array: random bytes the DGC draws for each record it builds, kept
in the record so that its leaf hash, listed in public state proofs of its bucket, cannot be searched
for the three money inputs (a few small integers). crev's agent always sends one; a 15-element item
(no salt) is still accepted and recorded as before.

The device signs the canonical encoding of every element before the signature (the first
fourteen, or fifteen with the salt) with its key valid at the slot end; the item hash is SHA-256
of the whole item. Recorded at ``c/<device>/<seq>`` with a
``ControlRecorded`` event. Results and envelope rules are those of submit_meter_values:
``["accepted", seq]``, ``["duplicate", seq]`` or ``["refused", code, field, reason]`` with
``field`` as ``items[i].<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.core.encoding import encode
from crev.core.hashing import sha256
from crev.core.signing import SIGNATURE_LEN
from crev.core.units import SLOT_SECONDS
from crev.errors import (
    ConflictError,
    MalformedError,
    NotFoundError,
    PermissionError_,
    RuleError,
    SignatureError,
)
from crev.ledger.blinding import need_blind
from crev.ledger.events import ControlRecorded
from crev.ledger.messages.batch import BadItem, check_item_head, in_order, judge, need_int_field, parse_batch
from crev.ledger.params import Params
from crev.ledger.records import ControlRecord
from crev.ledger.shape import MAX_U63
from crev.ledger.tx import register
from crev.ledger.vocab import CONTROL_REASONS

CONTROL_VERSION = "crev/control/1"
FIELDS = ("version", "chain_id", "device_id", "seq", "slot_start", "applied_at", "limit_w", "export_cap_w",
          "reason", "export_limit_w", "export_value_milli_jpy_per_kwh", "crev_price_jpy_per_t",
          "curtail_below_milli_jpy_per_kwh", "operator_limit_pct", "signature")
MAX_W = 10**12  # [W]: far above any site, small enough for every integer path
MAX_PRICE = 10**12  # [JPY/t] or [mJPY/kWh]
# (field index, least, greatest) for the integer fields
_RANGES = ((3, 1, MAX_U63), (4, 0, 2**40), (5, 0, 2**40), (6, 0, MAX_W), (7, -1, MAX_W), (9, -1, MAX_W),
           (10, 0, MAX_PRICE), (11, 0, MAX_PRICE), (12, 0, MAX_PRICE), (13, -1, 100))


def control_payload(chain_id: str, device_id: str, seq: int, slot_start: int, applied_at: int, limit_w: int,
                    export_cap_w: int, reason: str, export_limit_w: int, export_value_milli_jpy_per_kwh: int,
                    crev_price_jpy_per_t: int, curtail_below_milli_jpy_per_kwh: int,
                    operator_limit_pct: int, salt: bytes = b"") -> list[Any]:
    """The signed elements of a control record, in order: fourteen, or fifteen with ``salt`` (16
    random bytes, drawn by the caller: this module draws nothing). Sign ``encode(payload)`` and
    append the signature to send it."""
    v = [CONTROL_VERSION, chain_id, device_id, seq, slot_start, applied_at, limit_w, export_cap_w, reason,
         export_limit_w, export_value_milli_jpy_per_kwh, crev_price_jpy_per_t,
         curtail_below_milli_jpy_per_kwh, operator_limit_pct]
    return [*v, salt] if salt else v


@dataclass(frozen=True, slots=True)
class Control:
    chain_id: str
    device_id: str
    seq: int
    slot_start: int
    applied_at: int
    limit_w: int
    export_cap_w: int
    reason: str
    export_limit_w: int
    export_value_milli_jpy_per_kwh: int
    crev_price_jpy_per_t: int
    curtail_below_milli_jpy_per_kwh: int
    operator_limit_pct: int
    signature: bytes
    signed_bytes: bytes
    hash: bytes
    salt: bytes = b""  # 16 bytes, or b"" for a 15-element item

    def to_list(self) -> list[Any]:
        return [*control_payload(self.chain_id, self.device_id, self.seq, self.slot_start, self.applied_at,
                                 self.limit_w, self.export_cap_w, self.reason, self.export_limit_w,
                                 self.export_value_milli_jpy_per_kwh, self.crev_price_jpy_per_t,
                                 self.curtail_below_milli_jpy_per_kwh, self.operator_limit_pct, self.salt),
                self.signature]


def parse_control(v: Any, where: str) -> Control:
    """Stateless shape check of one control record (15 elements, or 16 with a salt)."""
    if type(v) is list and len(v) not in (15, 16):
        raise MalformedError(where, "must be an array of 15 elements, or 16 with a salt before the signature "
                                    "(see docs/wire-format.md)")
    check_item_head(v, where, len(v) if type(v) is list else 15, CONTROL_VERSION)
    for i, low, high in _RANGES:
        x = v[i]
        need_int_field(x, f"{where}.{FIELDS[i]}")
        if not low <= x <= high:
            raise MalformedError(f"{where}.{FIELDS[i]}", f"must be {low} .. {high}, found {x}")
    if v[4] % SLOT_SECONDS:
        raise MalformedError(f"{where}.slot_start", f"{v[4]} is not on a 30-minute slot boundary")
    if not v[4] <= v[5] < v[4] + SLOT_SECONDS:
        raise MalformedError(f"{where}.applied_at", f"{v[5]} is not within the slot [{v[4]}, {v[4] + SLOT_SECONDS})")
    if type(v[8]) is not str or v[8] not in CONTROL_REASONS:
        raise MalformedError(f"{where}.reason", f"must be one of {', '.join(CONTROL_REASONS)}")
    salt = need_blind(v[14], f"{where}.salt") if len(v) == 16 else b""
    sig = v[-1]
    if type(sig) is not bytes or len(sig) != SIGNATURE_LEN:
        raise MalformedError(f"{where}.signature", f"must be {SIGNATURE_LEN} bytes")
    return Control(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], sig,
                   encode(v[:-1]), sha256(encode(v)), salt)


@dataclass(frozen=True, slots=True)
class SubmitControls:
    kind: ClassVar[str] = "submit_controls"
    controls: tuple[Control, ...]  # the well-formed items, in batch order
    malformed: tuple[BadItem, ...] = ()  # the others, each with its index in the batch

    def items(self) -> list[Control | BadItem]:
        return in_order(self.controls, self.malformed)

    def to_body(self) -> list[Any]:
        return [m.value if isinstance(m, BadItem) else m.to_list() for m in self.items()]

    def handle(self, ctx: Any) -> Any:
        return judge(ctx, self.items(), accept_control, "items", "item",
                     lambda n: f"all {n} items of this batch are already on the ledger, nothing new to record")


def accept_control(ctx: Any, c: Control) -> tuple[list[Any], bool]:
    """Check one control record against state; if it passes, record it."""
    st = ctx.state
    if c.chain_id != st.chain_id:
        raise MalformedError("chain_id", f"is {c.chain_id!r}, this ledger is {st.chain_id!r}")
    dev = st.devices.get(c.device_id)
    if dev is None:
        raise NotFoundError("device_id", f"no device {c.device_id!r}")
    prior = st.controls.get((c.device_id, c.seq))
    if prior is not None:
        if prior.control_hash == c.hash:
            return ["duplicate", c.seq], False
        raise ConflictError("seq", f"control seq {c.seq} was already used by a different record "
                                   f"(accepted at height {prior.height})")
    if not dev.active:
        raise PermissionError_("device_id", f"device {c.device_id!r} is revoked")
    key = dev.key_for(c.slot_start + SLOT_SECONDS)
    if key is None:
        raise SignatureError("signature", "no key of this device is valid for this slot")
    if key.revoked:
        raise SignatureError("signature", "signed by a revoked device key")
    if not ctx.sigs.verify(key.public_key, c.signed_bytes, c.signature):
        raise SignatureError("signature", f"not a valid signature by device {c.device_id}'s key")
    if c.seq <= dev.last_control_seq:
        raise ConflictError("seq", f"{c.seq} is not after the last accepted control seq {dev.last_control_seq} "
                                   "(replayed or out of order)")
    if c.limit_w > dev.rated_capacity_w:
        raise RuleError("limit_w", f"{c.limit_w} W exceeds the device's rated capacity {dev.rated_capacity_w} W "
                                   "(no limit is stated as the rated capacity)")
    if c.applied_at > ctx.time + st.params.max_future_s:
        raise RuleError("applied_at", f"is {c.applied_at - ctx.time} s after block time (allowed "
                                      f"{st.params.max_future_s} s): timestamp in the future")
    dev.last_control_seq = c.seq
    st.controls[(c.device_id, c.seq)] = ControlRecord(
        c.slot_start, c.applied_at, c.limit_w, c.export_cap_w, c.reason, c.export_limit_w,
        c.export_value_milli_jpy_per_kwh, c.crev_price_jpy_per_t, c.curtail_below_milli_jpy_per_kwh,
        c.operator_limit_pct, c.hash, ctx.height, c.salt)
    st.mark(f"d/{c.device_id}")
    st.mark(f"c/{c.device_id}/{c.seq}")
    ctx.emit(ControlRecorded(c.device_id, c.seq, c.slot_start, c.applied_at, c.limit_w, c.reason, c.hash))
    return ["accepted", c.seq], True


@register(SubmitControls.kind)
def from_body(body: Any, params: Params) -> SubmitControls:
    return SubmitControls(*parse_batch(body, params, parse_control, "items", "item"))
