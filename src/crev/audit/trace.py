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
from crev.ledger.records import Lot
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
    steps.append({
        "step": "current_state", "height": state.height,
        "segments": [{"units": [s.start, s.end - 1], "holder": s.holder, "status": s.status, "ref": s.ref}
                     for s in lot.segments if _overlaps(s.start, s.end, ranges)],
        "state_proof": state_proof(store, state, f"l/{lot_id}", blocks.block),
    })
    traced = [(lot.first_unit, lot.end_unit)] if ranges is None else ranges
    return {"lot_id": lot_id, "device_id": lot.device_id, "origin": lot.origin,
            "units_traced": [[a, b - 1] for a, b in traced], "quantity_g_traced": sum(b - a for a, b in traced),
            "steps": steps}


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
