"""Provenance of C-REV: signed reading(s) → issuance → every transfer or trade → retirement, each
step with its block height, transaction hash and proofs that anyone can check by hand.

What can be traced (``resolve``):

* a lot id: the whole lot, every movement of any of its units;
* a unit id (digits): its lot, only the movements that touched that unit;
* a retirement id: every lot the retirement drew on, each restricted to the unit ranges this
  retirement retired, so each lot shows the path of exactly those units (reading → issuance →
  the transfers and trades they went through → this retirement).

Two kinds of proof are printed in full (docs/wire-format.md):

* **transaction inclusion** (``tx_proof``): the RFC 6962 audit path of the transaction's leaf
  hash ``SHA-256(0x00 ‖ tx bytes)`` at ``index`` of the ``size`` transactions of block ``height``,
  up to the ``tx_root`` in that block's header (``crev.core.merkle.verify_proof``);
* **state** (``state_proof``): the record's key and canonical bytes (``value``), its bucket's
  sorted (key, leaf hash) entries and the ``depth`` sibling hashes from the bucket up, which
  recompute the ``state_root`` in the header of block ``block_height`` — the tip the trace was
  made at (``crev.core.statetree``: ``entry_leaf_hash``, ``bucket_hash``, then
  ``SHA-256(0x01 ‖ left ‖ right)`` up the tree, left or right by the bucket index's bits).

Every proof is checked before it is returned; ``verified`` says whether it held.

**Provisional or final.** Each lot carries its ``finality`` at the view's head time (the last
block's time): ``provisional`` (issued from the DGC's own meter, not yet compared with the utility
smart meter), ``final`` (the smart meter agreed within tolerance, or the finality window passed
without its values), ``corrected`` (the smart meter differed: units were cancelled, recorded as a
debt on the device, or topped up) or ``late`` (compared after the window; not corrected), with
``finality_basis`` saying which (ledger/reconcile.py). A reconciled slot adds a ``reconciled``
step: the DGC's figures against the smart meter's (export and import [Wh], the tolerance), what
stood, the target and what was cancelled, recorded as debt or topped up, the transaction and block
that reconciled it (with its inclusion proof), the smart-meter item's hash and the transaction that
carried it (``meter_item``, with its proof), and the state proof of the slot tally
(``v/<device>/<slot_id>``).

On a consortium member's ledger a block carries no sequencer signature: given a ``Consortium``
(audit/consortium.py), ``trace`` adds ``consortium``: the genesis validator set and, for every
block a step or state proof names, the CometBFT header (at the CometBFT height after the one the
crev block was made from) whose ``app_hash`` is SHA-256 of that crev header, with its fields, the
14 leaves of its hash, and its commit (each signature with the exact bytes signed), all verified
here first (``consortium_proofs``) and carried so that a browser can verify them again.

A reporting period is stored as [start, end) in unix seconds, end exclusive; it is shown as its
first and last JST days (the last day is that of end − 1 s).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crev.audit.consortium import Consortium, cmt_height
from crev.core import merkle
from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.core.signing import verify
from crev.core.statetree import entry_leaf_hash
from crev.core.units import SLOT_SECONDS, jst
from crev.errors import NotFoundError
from crev.ledger.block import Block
from crev.ledger.events import Cancelled, Event, Issued, MeterValuesRecorded, SlotReconciled, event_from_value
from crev.ledger.reconcile import RECONCILE_REASON, lot_finality, tolerance_wh
from crev.ledger.records import PROVISIONAL, Lot, SlotTally
from crev.ledger.state import State
from crev.node.store import Store

Ranges = list[tuple[int, int]]  # [start, end) unit ranges
BlockAt = Callable[[int], Block | None]  # height → block (the store's, or a per-trace cache)
STEP_OF_MOVE = {"transfer": "transferred", "trade": "traded", "retire": "retired", "cancel": "cancelled"}


class _Blocks:
    """Blocks and transaction proofs read once per trace (many steps share one transaction)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._blocks: dict[int, Block] = {}
        self._proofs: dict[bytes, dict[str, Any]] = {}

    def block(self, height: int) -> Block:
        b = self._blocks.get(height)
        if b is None:
            b = self.store.block(height)
            if b is None:
                raise NotFoundError("block", f"no block {height} on this ledger")
            self._blocks[height] = b
        return b

    def tx_proof(self, tx_hash: bytes) -> dict[str, Any]:
        p = self._proofs.get(tx_hash)
        if p is None:
            p = self._proofs[tx_hash] = tx_proof(self.store, tx_hash, self.block)
        return p


def tx_proof(store: Store, tx_hash: bytes, block_at: BlockAt | None = None) -> dict[str, Any]:
    """Inclusion proof of a transaction in its block's ``tx_root`` (RFC 6962), checked before it is
    returned. ``leaf`` = SHA-256(0x00 ‖ tx bytes); ``path``: sibling hashes from the leaf up."""
    row = store.tx(tx_hash)
    if row is None:
        raise NotFoundError("tx", f"no transaction {tx_hash.hex()}")
    height, idx = row[0], row[1]
    block = block_at(height) if block_at is not None else store.block(height)
    if block is None:
        raise NotFoundError("block", f"no block {height} on this ledger")
    leaves = [merkle.leaf_hash(t) for t in block.txs]
    path = merkle.proof(leaves, idx)
    ok = merkle.verify_proof(leaves[idx], idx, len(leaves), path, block.header.tx_root)
    return {"height": height, "index": idx, "size": len(leaves), "tx_hash": tx_hash.hex(),
            "leaf": leaves[idx].hex(), "path": [p.hex() for p in path],
            "tx_root": block.header.tx_root.hex(), "block_hash": block.header.hash.hex(),
            "block_time": jst(block.header.time).isoformat(), "verified": ok}


def state_proof(store: Store, state: State, key: str, block_at: BlockAt | None = None) -> dict[str, Any]:
    """The state proof of ``key`` in full: enough to recompute the state root by hand and compare
    it with the root in the header of block ``block_height`` (the tip). ``value`` is the record's
    canonical CBOR (None if the key is absent); ``leaf_hash`` = SHA-256(0x00 ‖ u16 len(key) ‖ key ‖
    value) is the entry under ``key`` in ``bucket_entries``."""
    proof = state.prove(key)
    root = state.tree.root()
    head: Block | None
    if state.height == 0:
        head = None
    elif block_at is not None:
        head = block_at(state.height)
    else:
        head = store.block(state.height)
    header_root = head.header.state_root.hex() if head is not None else ""
    value = proof.value
    return {"key": key, "value": value.hex() if value is not None else None,
            "value_hash": sha256(value).hex() if value is not None else None,
            "leaf_hash": entry_leaf_hash(key, value).hex() if value is not None else None,
            "depth": proof.depth, "bucket": proof.bucket,
            "bucket_entries": [[k, h.hex()] for k, h in proof.bucket_entries],
            "siblings": [h.hex() for h in proof.siblings], "state_root": root.hex(),
            "block_height": state.height, "header_state_root": header_root,
            "verified": proof.verify(root) and root.hex() == header_root}


def period_text(start: int, end: int) -> dict[str, Any]:
    """A reporting period [start, end) [unix s, end exclusive] as its first and last JST days."""
    return {"first_day_jst": jst(start).date().isoformat(), "last_day_jst": jst(end - 1).date().isoformat(),
            "start": start, "end_exclusive": end}


def resolve(store: Store, state: State, ident: str) -> list[tuple[str, Ranges | None]]:
    """A lot id, a unit id (digits) or a retirement id → the lots to trace, each with the unit
    ranges to follow (None: the whole lot). A retirement gives every lot it drew on, in the order
    of its ranges, with the ranges it retired from each."""
    if ident in state.lots:
        return [(ident, None)]
    if ident.isdigit():
        unit = int(ident)
        row = store.db.execute("SELECT lot_id, first_unit, quantity_g FROM ix_lots WHERE first_unit <= ? "
                               "ORDER BY first_unit DESC LIMIT 1", (unit,)).fetchone()
        if row is not None and unit < row[1] + row[2] and str(row[0]) in state.lots:
            return [(str(row[0]), [(unit, unit + 1)])]
        raise NotFoundError("unit", f"no C-REV unit {unit} has been issued")
    ret = state.retirements.get(ident)
    if ret is not None:
        out: dict[str, Ranges] = {}
        for lot_id, a, b in ret.ranges:
            out.setdefault(lot_id, []).append((a, b))
        return list(out.items())
    raise NotFoundError("id", f"{ident!r} is not a lot id, unit id or retirement id on this ledger")


def proof_heights(out: dict[str, Any]) -> list[int]:
    """Every block height a trace's steps, retirement and transaction name (their proofs)."""
    heights: set[int] = set()

    def visit(step: dict[str, Any]) -> None:
        p, sp = step.get("proof"), step.get("state_proof")
        if isinstance(p, dict):
            heights.add(int(p["height"]))
        mi = step.get("meter_item")
        if isinstance(mi, dict) and isinstance(mi.get("proof"), dict):
            heights.add(int(mi["proof"]["height"]))
        if isinstance(sp, dict) and sp.get("block_height"):
            heights.add(int(sp["block_height"]))

    for lot in out.get("lots", []):
        for step in lot["steps"]:
            visit(step)
    for extra in ("retirement", "transaction"):
        if isinstance(out.get(extra), dict):
            visit(out[extra])
    return sorted(heights)


def consortium_proofs(store: Store, consortium: Consortium, heights: list[int]) -> dict[str, Any]:
    """For each crev height: the CometBFT header carrying its app hash and the commit signing it,
    verified (InvalidBlock if not), with the genesis validator set once."""
    blocks: dict[str, Any] = {}
    for h in heights:
        header = store.header(h)
        if header is None:
            raise NotFoundError("block", f"no block {h} on this ledger")
        raw = header.encode()
        blocks[str(h)] = {**consortium.proof(h, raw, cmt_height(store, h)), "crev_header": raw.hex(),
                          "crev_header_hash": header.hash.hex()}
    return {**consortium.to_json(), "blocks": blocks}


def trace(store: Store, state: State, ident: str, consortium: Consortium | None = None) -> dict[str, Any]:
    """Provenance of ``ident`` (see the module doc); JSON-ready. With ``consortium``, every block
    it names is proven by CometBFT's commit (``out["consortium"]``)."""
    blocks = _Blocks(store)
    kind = "lot" if ident in state.lots else "unit" if ident.isdigit() else "retirement"
    out: dict[str, Any] = {"query": ident, "kind": kind, "height": state.height,
                           "lots": [trace_lot(store, state, lot_id, ranges, blocks)
                                    for lot_id, ranges in resolve(store, state, ident)]}
    ret = state.retirements.get(ident)
    if ret is not None:
        out["retirement"] = {
            "retirement_id": ret.retirement_id, "account": ret.account, "beneficiary": ret.beneficiary,
            "purpose": ret.purpose, "period": period_text(ret.period_start, ret.period_end),
            "jurisdiction": ret.jurisdiction, "note": ret.note, "quantity_g": ret.quantity_g,
            "lots": len(out["lots"]), "ranges": [[lot_id, a, b - 1] for lot_id, a, b in ret.ranges],
            "height": ret.height, "tx_hash": ret.tx_hash.hex(), "retired_at_jst": jst(ret.block_time).isoformat(),
            "proof": blocks.tx_proof(ret.tx_hash),
            "state_proof": state_proof(store, state, f"t/{ident}", blocks.block),
        }
    if consortium is not None:
        out["consortium"] = consortium_proofs(store, consortium, proof_heights(out))
    return out


def _overlaps(a: int, b: int, ranges: Ranges | None) -> bool:
    return ranges is None or any(a < e and s < b for s, e in ranges)


def trace_lot(store: Store, state: State, lot_id: str, ranges: Ranges | None = None,
              blocks: _Blocks | None = None) -> dict[str, Any]:
    """One lot's provenance. With ``ranges`` ([start, end) unit ranges), only the movements that
    touched those units are listed (the path of those units); without, every movement of the lot."""
    blocks = blocks or _Blocks(store)
    lot = state.lots[lot_id]
    steps: list[dict[str, Any]] = _reading_steps(store, state, lot, blocks)
    li = store.db.execute("SELECT height, tx_hash FROM ix_lots WHERE lot_id = ?", (lot_id,)).fetchone()
    if li is not None:
        steps.append({
            "step": "issued", "lot_id": lot_id, "origin": lot.origin, "reference": lot.reference,
            "owner": lot.issued_to, "units": [lot.first_unit, lot.end_unit - 1], "quantity_g": lot.quantity_g,
            "self_consumed_wh": lot.self_consumed_wh, "factor_g_per_kwh": lot.factor_g_per_kwh,
            "factor": lot.factor_ref, "factor_source": state.factor_source(lot.factor_ref),
            "height": int(li[0]), "tx_hash": bytes(li[1]).hex(), "proof": blocks.tx_proof(bytes(li[1])),
        })
    # within one transaction a trade or transfer comes before the retirement it feeds
    moves = store.db.execute(
        "SELECT m.kind, m.party, m.counterparty, m.start_unit, m.end_unit, m.ref, m.height, m.tx_hash "
        "FROM ix_moves m LEFT JOIN txs t ON t.hash = m.tx_hash AND t.height = m.height WHERE m.lot_id = ? "
        "ORDER BY m.height, t.idx, m.kind IN ('retire', 'cancel'), m.rowid", (lot_id,)).fetchall()
    for kind, party, counter, a, b, ref, height, txh in moves:
        if not _overlaps(a, b, ranges):
            continue
        step: dict[str, Any] = {"step": STEP_OF_MOVE[kind], "units": [a, b - 1], "quantity_g": b - a,
                                "from": party}
        if kind in ("transfer", "trade"):
            step["to"] = counter
            if kind == "trade":
                step["trade"] = ref
        elif kind == "retire":
            ret = state.retirements[ref]
            step.update(retirement_id=ref, beneficiary=ret.beneficiary, purpose=ret.purpose,
                        period=period_text(ret.period_start, ret.period_end))
        else:
            step["reason"] = ref
        step.update(height=int(height), tx_hash=bytes(txh).hex(), proof=blocks.tx_proof(bytes(txh)))
        steps.append(step)
    rec = _reconciled_step(store, state, lot, blocks)
    if rec is not None:
        steps.insert(_reconciled_at(steps, lot, rec["height"]), rec)
    steps.append({
        "step": "current_state", "height": state.height,
        "segments": [{"units": [s.start, s.end - 1], "holder": s.holder, "status": s.status, "ref": s.ref}
                     for s in lot.segments if _overlaps(s.start, s.end, ranges)],
        "state_proof": state_proof(store, state, f"l/{lot_id}", blocks.block),
    })
    traced = [(lot.first_unit, lot.end_unit)] if ranges is None else ranges
    finality, basis = _finality(state, lot)
    return {"lot_id": lot_id, "device_id": lot.device_id, "origin": lot.origin,
            "slot_start_jst": jst(lot.slot_id * SLOT_SECONDS).isoformat(),
            "finality": finality, "finality_basis": basis,
            "units_traced": [[a, b - 1] for a, b in traced], "quantity_g_traced": sum(b - a for a, b in traced),
            "steps": steps}


def _finality(state: State, lot: Lot) -> tuple[str, str]:
    """A lot's finality at the head block's time and what it rests on: ``smart meter`` (its slot
    was reconciled), ``finality window`` (no smart-meter values by slot end + ``final_after_s``),
    or ``awaiting the smart meter until <JST time>``."""
    status = lot_finality(state, lot, state.last_time)
    tally = state.tallies.get((lot.device_id, lot.slot_id))
    if tally is not None and tally.status != PROVISIONAL:
        return status, "smart meter"
    if status != PROVISIONAL:
        return status, "finality window"
    until = lot.slot_id * SLOT_SECONDS + SLOT_SECONDS + state.params.final_after_s
    return status, f"awaiting the smart meter until {jst(until).isoformat()}"


def _reconciled_at(steps: list[dict[str, Any]], lot: Lot, height: int) -> int:
    """Where the reconciled step goes: before the top-up it issued, else before the first movement
    at or after its block (its cancellations follow it), else before the current state."""
    for i, st in enumerate(steps):
        if st["step"] == "issued" and lot.origin == "reconcile":
            return i
        if st["step"] not in ("signed_reading", "issued") and st["height"] >= height:
            return i
    return len(steps)


def _reconciling_txs(store: Store, height: int) -> list[tuple[bytes, list[Event]]]:
    """(tx hash, events) of the successful transactions of block ``height`` that reconciled a slot,
    in block order (a byte search for the event's type skips the others undecoded)."""
    needle = encode(SlotReconciled.type)
    rows = store.db.execute("SELECT hash, result FROM txs WHERE height = ? AND ok = 1 AND instr(result, ?) > 0 "
                            "ORDER BY idx", (height, needle))
    return [(bytes(h), [event_from_value(v) for v in decode(bytes(r), "result")[4]]) for h, r in rows]


def _reconciled_step(store: Store, state: State, lot: Lot, blocks: _Blocks) -> dict[str, Any] | None:
    """The ``reconciled`` step of a lot's slot (None while the slot is not reconciled): the smart
    meter's figures against the DGC's, what the reconciliation did and where, with proofs."""
    tally: SlotTally | None = state.tallies.get((lot.device_id, lot.slot_id))
    if tally is None or tally.status == PROVISIONAL or not tally.reconciled_height:
        return None
    sid = lot.slot_id
    found: tuple[bytes, SlotReconciled, list[Event]] | None = None
    for tx_hash, events in _reconciling_txs(store, tally.reconciled_height):
        for e in events:
            if type(e) is SlotReconciled and e.device_id == lot.device_id and e.slot_id == sid:
                found = (tx_hash, e, events)
    if found is None:
        raise NotFoundError("tally", f"slot tally v/{lot.device_id}/{sid} names block {tally.reconciled_height}, "
                                     f"whose transactions record no reconciliation of it")
    tx_hash, rec, events = found
    topups = [e.lot_id for e in events if type(e) is Issued and e.origin == "reconcile"
              and e.device_id == lot.device_id and e.slot_id == sid]
    lots = set(tally.lots)
    cancelled = [{"lot_id": e.lot_id, "holder": e.holder, "units": [e.start_unit, e.end_unit - 1],
                  "quantity_g": e.end_unit - e.start_unit}
                 for e in events if type(e) is Cancelled and e.reason == RECONCILE_REASON and e.lot_id in lots]
    return {
        "step": "reconciled", "status": rec.status, "device_id": lot.device_id, "slot_id": sid,
        "slot_start_jst": jst(sid * SLOT_SECONDS).isoformat(), "generation_wh": rec.generation_wh,
        "export_wh": {"dgc": rec.dgc_export_wh, "smart_meter": rec.sm_export_wh,
                      "difference": rec.dgc_export_wh - rec.sm_export_wh, "tolerance": rec.tolerance_wh},
        "import_wh": {"dgc": rec.dgc_import_wh, "smart_meter": rec.sm_import_wh,
                      "difference": rec.dgc_import_wh - rec.sm_import_wh,
                      "tolerance": tolerance_wh(rec.sm_import_wh, tally.sm_resolution_wh, state.params)},
        "resolution_wh": tally.sm_resolution_wh, "factor_g_per_kwh": tally.factor_g_per_kwh,
        "stood_g": rec.issued_g, "target_g": rec.target_g, "cancelled_g": rec.cancelled_g,
        "debt_g": rec.debt_g, "topup_g": rec.topup_g, "topup_lots": topups, "cancellations": cancelled,
        "height": tally.reconciled_height, "tx_hash": tx_hash.hex(), "proof": blocks.tx_proof(tx_hash),
        "meter_item": _meter_item(store, tally, blocks),
        "state_proof": state_proof(store, state, f"v/{lot.device_id}/{sid}", blocks.block),
    }


def _meter_item(store: Store, tally: SlotTally, blocks: _Blocks) -> dict[str, Any]:
    """The smart-meter item a tally holds (its hash and values) and the transaction that recorded
    it: the first ``submit_meter_values`` whose result carries that hash (MeterValuesRecorded)."""
    out: dict[str, Any] = {"item_hash": tally.sm_hash.hex(), "import_wh": tally.sm_import_wh,
                           "export_wh": tally.sm_export_wh, "resolution_wh": tally.sm_resolution_wh}
    if not tally.sm_hash:
        return out
    row = store.db.execute(
        "SELECT hash, result FROM txs WHERE kind = 'submit_meter_values' AND ok = 1 AND height <= ? "
        "AND instr(result, ?) > 0 ORDER BY height, idx LIMIT 1", (tally.reconciled_height, tally.sm_hash)).fetchone()
    if row is not None:
        tx_hash = bytes(row[0])
        for v in decode(bytes(row[1]), "result")[4]:
            e = event_from_value(v)
            if type(e) is MeterValuesRecorded and e.item_hash == tally.sm_hash:
                out["meter_id"] = e.meter_id
        proof = blocks.tx_proof(tx_hash)
        out.update(height=proof["height"], tx_hash=tx_hash.hex(), proof=proof)
    return out


def _reading_steps(store: Store, state: State, lot: Lot, blocks: _Blocks) -> list[dict[str, Any]]:
    """The signed reading(s) behind a lot: the reading that issued it (for a top-up, the original
    lot's reading) and, before it, the readings of the same device and slot that issued no lot of
    their own because they measured less than 1 g: their milligrams were carried into this lot
    (``co2_g_floor_carried``)."""
    base = state.lots.get(lot.lot_id.split("+")[0]) if lot.origin != "reading" else lot
    if base is None or not base.reading_hash:
        return []
    slot_start = base.slot_id * SLOT_SECONDS
    rows = store.db.execute(
        "SELECT device_id, seq, interval_start, interval_s, generation_wh, import_wh, export_wh, lot_id, "
        "reading_hash, height, tx_hash, owner FROM ix_readings WHERE device_id = ? AND interval_start >= ? "
        "AND interval_start < ? ORDER BY seq", (base.device_id, slot_start, slot_start + SLOT_SECONDS)).fetchall()
    at = next((i for i, r in enumerate(rows) if bytes(r[8]) == base.reading_hash), None)
    if at is None:
        return []
    chosen = [(rows[at], "issued_this_lot" if lot is base else "issued_the_original_lot")]
    if lot is base:
        j = at - 1
        while j >= 0 and not rows[j][7]:
            chosen.insert(0, (rows[j], "carried_into_this_lot"))
            j -= 1
    return [_reading_step(store, state, row, role, blocks) for row, role in chosen]


def _reading_step(store: Store, state: State, rd: Any, role: str, blocks: _Blocks) -> dict[str, Any]:
    device_id, seq, start, interval_s, g, i, e = str(rd[0]), int(rd[1]), int(rd[2]), int(rd[3]), rd[4], rd[5], rd[6]
    reading_hash, tx_hash = bytes(rd[8]), bytes(rd[10])
    dev = state.devices[device_id]
    raw = store.tx(tx_hash)
    reading: list[Any] | None = None
    if raw is not None:
        body = decode(raw[4])[5]
        reading = next((r for r in body if r[2] == device_id and r[3] == seq and sha256(encode(r)) == reading_hash),
                       None)
    key = dev.key_for(start + interval_s)
    sig_ok = (reading is not None and key is not None
              and verify(key.public_key, encode(reading[:12]), reading[12]))
    return {
        "step": "signed_reading", "role": role, "device_id": device_id, "seq": seq,
        "interval_start_jst": jst(start).isoformat(), "interval_s": interval_s,
        "generation_wh": g, "import_wh": i, "export_wh": e, "self_consumed_wh": g - e,
        "owner_at_the_time": rd[11], "reading_hash": reading_hash.hex(),
        "signature": reading[12].hex() if reading is not None else None,
        "device_public_key": key.public_key.hex() if key is not None else None,
        "signature_verified": sig_ok, "height": int(rd[9]), "tx_hash": tx_hash.hex(),
        "proof": blocks.tx_proof(tx_hash),
        "state_proof": state_proof(store, state, f"r/{device_id}/{seq}", blocks.block),
    }
