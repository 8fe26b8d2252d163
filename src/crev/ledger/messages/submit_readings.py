"""submit_readings: a batch of DGC readings, each signed by its device. Accepted readings issue
C-REV at once, in the same block.

body = [reading, ...]; a reading is the 13-element array

    [ "crev/reading/1", chain_id, device_id, seq, interval_start, interval_s,
      generation_wh, import_wh, export_wh,
      generation_register_wh, import_register_wh, export_register_wh, signature ]

The device signs the canonical encoding of the first twelve elements. The reading hash is SHA-256
of all thirteen.

**Each reading is judged on its own** (a gateway forwards many devices' readings at once, and one
bad meter must not hold back the others). Its result in the transaction's ``detail``, by index:

* ``["accepted", lot_id, quantity_g]``: new; recorded, and its lot issued (``lot_id`` is "" and
  ``quantity_g`` 0 when it issues nothing: no self-consumption, or below 1 g so far in its slot);
* ``["duplicate", lot_id, quantity_g]``: the same reading (same hash) was accepted before, in an
  earlier block or earlier in this batch; it changes nothing and repeats the first result's lot;
* ``["refused", code, field, reason]``: refused, with ``field`` as ``readings[i].<field>``; it
  changes nothing. This covers a reading whose own shape is wrong (not a 13-element array, a
  negative or fractional value, export above generation, an interval that does not divide 30
  minutes or is not aligned to it, seq 0) as well as every check against state.

Only a malformed *envelope* refuses the whole transaction: a body that is not an array, is empty or
holds more than ``params.max_batch_readings`` readings. A batch in which no reading is newly
accepted is refused too (with the first refusal, or as all duplicates), so nothing that changes
nothing reaches the chain.

Issuance per reading is ⌊(self_consumed_wh × factor + carried mg) / 1000⌋ g, where the carried mg
are what the same slot's earlier readings measured below 1 g (core.units.co2_g_floor_carried):
1-minute readings of a slot issue in total exactly what one 30-minute reading would.

Each accepted reading adds to its slot's tally (``v/<device>/<slot_id>``); the reading that
completes a slot whose smart-meter values are already in reconciles it (ledger/reconcile.py). A
device with a reconciliation debt repays it from each new lot: issued in full, then the withheld
units cancelled at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import starmap
from typing import Any, ClassVar

from crev.core.encoding import codec_kernel, encode
from crev.core.hashing import sha256
from crev.core.metering import MAX_WH, capacity_limit_wh, register_delta
from crev.core.signing import SIGNATURE_LEN
from crev.core.slotted import constructor
from crev.core.units import ALLOWED_INTERVAL_SECONDS, SLOT_SECONDS, co2_g_floor_carried, slot_id
from crev.errors import (
    ConflictError,
    MalformedError,
    NotFoundError,
    PermissionError_,
    RuleError,
    SignatureError,
)
from crev.ledger.events import ReadingAccepted, ReadingGap
from crev.ledger.issuance import factor_ref, fiscal_year_cached, issue_lot, lot_id_for
from crev.ledger.messages.batch import BadItem, check_item_head, in_order, judge, need_int_field, parse_batch
from crev.ledger.params import Params
from crev.ledger.reconcile import count_lot, ready, reconcile, repay_debt, tally_for
from crev.ledger.records import ReadingRecord, SlotTally
from crev.ledger.trading import auto_offer
from crev.ledger.tx import FAST_DECODERS, register

READING_VERSION = "crev/reading/1"
FIELDS = ("version", "chain_id", "device_id", "seq", "interval_start", "interval_s", "generation_wh",
          "import_wh", "export_wh", "generation_register_wh", "import_register_wh",
          "export_register_wh", "signature")


@dataclass(frozen=True, slots=True)
class Reading:
    chain_id: str
    device_id: str
    seq: int
    interval_start: int
    interval_s: int
    generation_wh: int
    import_wh: int
    export_wh: int
    generation_register_wh: int
    import_register_wh: int
    export_register_wh: int
    signature: bytes
    signed_bytes: bytes
    hash: bytes

    @property
    def interval_end(self) -> int:
        return self.interval_start + self.interval_s

    def to_list(self) -> list[Any]:
        return [READING_VERSION, self.chain_id, self.device_id, self.seq, self.interval_start,
                self.interval_s, self.generation_wh, self.import_wh, self.export_wh,
                self.generation_register_wh, self.import_register_wh, self.export_register_wh,
                self.signature]


def reading_payload(chain_id: str, device_id: str, seq: int, interval_start: int, interval_s: int,
                    generation_wh: int, import_wh: int, export_wh: int, generation_register_wh: int,
                    import_register_wh: int, export_register_wh: int) -> list[Any]:
    """The twelve signed elements of a reading, in order."""
    return [READING_VERSION, chain_id, device_id, seq, interval_start, interval_s, generation_wh,
            import_wh, export_wh, generation_register_wh, import_register_wh, export_register_wh]


_new_reading = constructor(Reading)
_new_accepted = constructor(ReadingAccepted)
_new_record = constructor(ReadingRecord)


def parse_reading(v: Any, where: str) -> Reading:
    """Stateless shape check of one reading."""
    check_item_head(v, where, 13, READING_VERSION)
    for i in range(3, 12):
        x = v[i]
        need_int_field(x, f"{where}.{FIELDS[i]}")
        if x < 0:
            raise MalformedError(f"{where}.{FIELDS[i]}", f"must not be negative, found {x}")
        if x > MAX_WH and i >= 6:
            raise MalformedError(f"{where}.{FIELDS[i]}", f"{x} exceeds the maximum {MAX_WH} Wh")
    if v[3] < 1 or v[3] > 2**63 - 1:
        raise MalformedError(f"{where}.seq", "must be 1 .. 2^63-1")
    if v[4] > 2**40:
        raise MalformedError(f"{where}.interval_start", "is not a plausible unix time")
    if v[5] not in ALLOWED_INTERVAL_SECONDS:
        raise MalformedError(f"{where}.interval_s", "must be whole minutes dividing 1800 s (60..1800)")
    if v[4] % v[5]:
        what = "a 30-minute slot boundary" if v[5] == 1800 else f"a multiple of {v[5]} s"
        raise MalformedError(f"{where}.interval_start", f"{v[4]} is not on {what}")
    if v[8] > v[6]:
        raise MalformedError(f"{where}.export_wh", f"export {v[8]} Wh exceeds generation {v[6]} Wh")
    sig = v[12]
    if type(sig) is not bytes or len(sig) != SIGNATURE_LEN:
        raise MalformedError(f"{where}.signature", f"must be {SIGNATURE_LEN} bytes")
    signed = encode(v[:12])
    # The canonical 13-element array is the 12-element one with its head byte 0x8c → 0x8d and the
    # signature (byte string head 0x58 0x40) appended: build it instead of encoding again.
    full = b"\x8d" + signed[1:] + b"\x58\x40" + sig
    return Reading(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], sig, signed,
                   sha256(full))


@dataclass(frozen=True, slots=True)
class SubmitReadings:
    kind: ClassVar[str] = "submit_readings"
    readings: tuple[Reading, ...]  # the well-formed readings, in batch order
    malformed: tuple[BadItem, ...] = ()  # the others, each with its index in the batch

    def items(self) -> list[Reading | BadItem]:
        """Every reading of the batch in its order, well-formed or not."""
        return in_order(self.readings, self.malformed)

    def to_body(self) -> list[Any]:
        return [r.value if isinstance(r, BadItem) else r.to_list() for r in self.items()]

    def handle(self, ctx: Any) -> Any:
        def all_duplicates(n: int) -> str:
            head = ctx.state.readings[(self.readings[0].device_id, self.readings[0].seq)]
            return (f"all {n} readings of this batch are already on the ledger, nothing new to record "
                    f"(readings[0] was accepted at height {head.height}, lot {head.lot_id!r})")

        return judge(ctx, self.items(), accept_reading, "readings", "reading", all_duplicates)


def keys_touched(msg: SubmitReadings) -> tuple[list[str], list[tuple[str, int, str]]]:
    """What accepting ``msg``'s readings changes and reads, as far as their own fields tell: the
    state keys of each reading's device, slot tally, reading record and lot, and the tallies it
    reads, each as its map key (device, slot) and its state key. A hint for a node, which loads
    their buckets, and the tallies it does not hold, together before applying a block
    (``Node.seal``); applying reads whatever it needs either way."""
    keys: list[str] = []
    tallies: list[tuple[str, int, str]] = []
    for r in msg.readings:
        dev, slot = r.device_id, slot_id(r.interval_start)
        tally = f"v/{dev}/{slot}"
        keys += (f"d/{dev}", tally, f"r/{dev}/{r.seq}", f"l/{lot_id_for(dev, r.interval_start)}")
        tallies.append((dev, slot, tally))
    return keys, tallies


def accept_reading(ctx: Any, r: Reading) -> tuple[list[Any], bool]:
    """Check one reading against state; if it passes, record it and issue its lot.

    Returns (result, whether the reading is new). A reading already accepted (in an earlier block
    or earlier in the same batch) returns ``["duplicate", lot_id, quantity_g]`` with the lot it
    issued then, and changes nothing."""
    st = ctx.state
    params = st.params
    if r.chain_id != st.chain_id:
        raise MalformedError("chain_id", f"is {r.chain_id!r}, this ledger is {st.chain_id!r}")
    dev = st.devices.get(r.device_id)
    if dev is None:
        raise NotFoundError("device_id", f"no device {r.device_id!r}")
    # A device's accepted readings all have seq ≤ its last_seq (each is accepted only above it,
    # and last_seq only grows; ledger/invariants.py checks it), so a reading above last_seq has no
    # prior and the record map, on disk on a node (node/lazystate.py), is not asked.
    prior = None if r.seq > dev.last_seq else st.readings.get((r.device_id, r.seq))
    if prior is not None:
        if prior.reading_hash == r.hash:
            return ["duplicate", prior.lot_id, st.lots[prior.lot_id].quantity_g if prior.lot_id else 0], False
        raise ConflictError("seq", f"seq {r.seq} was already used by a different reading "
                                   f"(accepted at height {prior.height})")
    if not dev.active:
        raise PermissionError_("device_id", f"device {r.device_id!r} is revoked")
    end = r.interval_start + r.interval_s
    key = dev.key_for(end)
    if key is None:
        raise SignatureError("signature", "no key of this device is valid for this interval")
    if key.revoked:
        raise SignatureError("signature", "signed by a revoked device key")
    if not ctx.sigs.verify(key.public_key, r.signed_bytes, r.signature):
        raise SignatureError("signature", f"not a valid signature by device {r.device_id}'s key")
    if r.seq <= dev.last_seq:
        raise ConflictError("seq", f"{r.seq} is not after the last accepted seq {dev.last_seq} "
                                   "(replayed or out of order)")
    if r.interval_start < dev.last_interval_end:
        raise ConflictError("interval_start", f"interval overlaps the last accepted reading, which "
                                              f"ended at {dev.last_interval_end}")
    if r.interval_start < dev.commissioned:
        raise RuleError("interval_start", "is before the device was commissioned")
    if end > dev.certified_until:
        raise RuleError("interval_start", f"the interval ending at {end} is after the meter's certification "
                                          f"expired (at {dev.certified_until})")
    if end > ctx.time + params.max_future_s:
        raise RuleError("interval_start", f"interval ends {end - ctx.time} s after block time "
                                          f"(allowed {params.max_future_s} s): timestamp in the future")
    limit = capacity_limit_wh(dev.rated_capacity_w, r.interval_s, params.capacity_tolerance_bp)
    if r.generation_wh > limit:
        raise RuleError("generation_wh", f"{r.generation_wh} Wh exceeds what {dev.rated_capacity_w} W "
                                         f"can generate in {r.interval_s} s ({limit} Wh with tolerance)")
    gap: ReadingGap | None = None
    if dev.generation_register_wh >= 0:
        dg = _unreported("generation_register_wh", dev.generation_register_wh, r.generation_register_wh,
                         r.generation_wh)
        di = _unreported("import_register_wh", dev.import_register_wh, r.import_register_wh, r.import_wh)
        de = _unreported("export_register_wh", dev.export_register_wh, r.export_register_wh, r.export_wh)
        contiguous = r.seq == dev.last_seq + 1 and r.interval_start == dev.last_interval_end
        if contiguous and (dg or di or de):
            raise RuleError("generation_register_wh" if dg else "import_register_wh" if di else "export_register_wh",
                            "register delta differs from the interval value with no gap in between")
        if not contiguous:
            span = end - dev.last_interval_end
            if dg + r.generation_wh > capacity_limit_wh(dev.rated_capacity_w, span, params.capacity_tolerance_bp):
                raise RuleError("generation_register_wh", "advanced more than the PV capacity allows "
                                                          "since the last reading")
            # missing seqs (none if only the interval skipped: from > to then means "none")
            gap = ReadingGap(r.device_id, dev.last_seq + 1, r.seq - 1, dev.last_interval_end,
                             r.interval_start, dg, di, de)
    # every check passed: change state
    self_consumed = r.generation_wh - r.export_wh
    lot_id = ""
    tally: SlotTally | None = None
    if self_consumed > 0:
        factor = st.factors.lookup(dev.grid_area, fiscal_year_cached(r.interval_start),
                                   params.issuance_factor_kind)
        slot = r.interval_start // SLOT_SECONDS
        carried = dev.carry_mg if dev.carry_slot == slot else 0
        quantity, dev.carry_mg = co2_g_floor_carried(self_consumed, factor.g_per_kwh, carried)
        dev.carry_slot = slot
        if quantity > 0:
            lot_id = lot_id_for(r.device_id, r.interval_start)
            lot = issue_lot(st, ctx.events, lot_id=lot_id, device=dev, owner=dev.owner,
                      interval_start=r.interval_start, interval_end=end,
                      self_consumed_wh=self_consumed, quantity_g=quantity,
                      factor_g_per_kwh=factor.g_per_kwh,
                      factor_ref=factor_ref(factor.key, factor.fiscal_year, factor.kind),
                      height=ctx.height, block_time=ctx.time,
                      reading_hash=r.hash, origin="reading", reference="")
            tally = count_lot(st, lot)  # the reading's slot: the same tally as below
            repay_debt(ctx, dev, lot)
            if st.offer_policies:
                auto_offer(ctx, lot)
    if tally is None:
        tally = tally_for(st, r.device_id, r.interval_start)
    tally.covered_s += r.interval_s
    tally.generation_wh += r.generation_wh
    tally.import_wh += r.import_wh
    tally.export_wh += r.export_wh
    dev.last_seq = r.seq
    dev.last_interval_end = end
    dev.generation_register_wh = r.generation_register_wh
    dev.import_register_wh = r.import_register_wh
    dev.export_register_wh = r.export_register_wh
    dev.readings += 1
    st.readings[(r.device_id, r.seq)] = _new_record(r.interval_start, r.hash, lot_id, ctx.height)
    st.mark(f"d/{r.device_id}")
    st.mark(f"r/{r.device_id}/{r.seq}")
    if gap is not None:
        ctx.emit(gap)
    ctx.emit(_new_accepted(r.device_id, r.seq, r.interval_start, r.interval_s, r.generation_wh,
                             r.import_wh, r.export_wh, r.generation_wh + r.import_wh - r.export_wh,
                             self_consumed, r.hash, lot_id, dev.owner))
    if ready(tally):  # the slot is complete and the smart meter's values are in
        reconcile(ctx, dev, tally)
    return ["accepted", lot_id, st.lots[lot_id].quantity_g if lot_id else 0], True


def _unreported(name: str, previous_wh: int, current_wh: int, interval_wh: int) -> int:
    """What a register advanced beyond the interval's own value [Wh] (0 when they agree).
    RuleError at ``name`` if it went backwards or advanced less than the interval reports."""
    d = register_delta(previous_wh, current_wh)
    if d is None:
        raise RuleError(name, f"went backwards from {previous_wh} to {current_wh} Wh")
    if d < interval_wh:
        raise RuleError(name, f"advanced {d} Wh but the interval reports {interval_wh} Wh")
    return d - interval_wh


@register(SubmitReadings.kind)
def from_body(body: Any, params: Params) -> SubmitReadings:
    return SubmitReadings(*parse_batch(body, params, parse_reading, "readings", "reading"))


def from_raw_kernel(raw: bytes, chain_id: str, params: Params) -> SubmitReadings | None:
    """The whole transaction decoded, checked canonical and shaped by the kernel (one pass, with
    the reading hashes), or None where the kernel is absent or leaves the transaction to
    ``decode_tx``'s reference path: another kind, or anything the reference would refuse or
    judge item by item (one malformed reading is enough). The signed bytes and the hash come
    from the reading's own bytes, which canonical input re-encodes to (``parse_reading``)."""
    k = codec_kernel()
    if k is None:
        return None
    items = k.parse_readings_tx(raw, chain_id, params.max_tx_bytes, params.max_batch_readings)
    return None if items is None else SubmitReadings(tuple(starmap(_new_reading, items)))


FAST_DECODERS.append(from_raw_kernel)
