"""Provenance of C-REV: signed reading → issuance → every transfer → retirement, each step with
its block, transaction hash and a Merkle proof that anyone can check against the block header."""

from __future__ import annotations

from typing import Any

from crev.core import merkle
from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.core.signing import verify
from crev.core.units import jst
from crev.errors import NotFoundError
from crev.ledger.state import State
from crev.node.store import Store


def tx_proof(store: Store, tx_hash: bytes) -> dict[str, Any]:
    """Inclusion proof of a transaction in its block's tx_root, checked before it is returned."""
    row = store.tx(tx_hash)
    if row is None:
        raise NotFoundError("tx", f"no transaction {tx_hash.hex()}")
    height, idx = row[0], row[1]
    block = store.block(height)
    assert block is not None
    leaves = [merkle.leaf_hash(t) for t in block.txs]
    path = merkle.proof(leaves, idx)
    ok = merkle.verify_proof(leaves[idx], idx, len(leaves), path, block.header.tx_root)
    return {"height": height, "index": idx, "size": len(leaves), "tx_hash": tx_hash.hex(),
            "leaf": leaves[idx].hex(), "path": [p.hex() for p in path],
            "tx_root": block.header.tx_root.hex(), "block_hash": block.header.hash.hex(),
            "block_time": jst(block.header.time).isoformat(), "verified": ok}


def resolve_lot(store: Store, state: State, ident: str) -> str:
    """A lot id, a unit id (digits) or a retirement id → lot id(s) (first lot for a retirement)."""
    if ident in state.lots:
        return ident
    if ident.isdigit():
        unit = int(ident)
        row = store.db.execute("SELECT lot_id, first_unit, quantity_g FROM ix_lots WHERE first_unit <= ? "
                               "ORDER BY first_unit DESC LIMIT 1", (unit,)).fetchone()
        if row is not None and unit < row[1] + row[2]:
            return str(row[0])
        raise NotFoundError("unit", f"no C-REV unit {unit} has been issued")
    if ident in state.retirements:
        return state.retirements[ident].ranges[0][0]
    raise NotFoundError("id", f"{ident!r} is not a lot id, unit id or retirement id on this ledger")


def trace(store: Store, state: State, ident: str) -> dict[str, Any]:
    lot_id = resolve_lot(store, state, ident)
    lot = state.lots[lot_id]
    steps: list[dict[str, Any]] = []
    rd = store.db.execute("SELECT device_id, seq, interval_start, interval_s, generation_wh, import_wh, "
                          "export_wh, reading_hash, height, tx_hash FROM ix_readings WHERE lot_id = ?",
                          (lot_id if lot.origin == "reading" else lot_id.split("+")[0],)).fetchone()
    if rd is not None:
        dev = state.devices[rd[0]]
        raw = store.tx(bytes(rd[9]))
        reading: list[Any] | None = None
        if raw is not None:
            body = decode(raw[4])[5]
            reading = next((r for r in body if sha256(encode(r)) == bytes(rd[7])), None)
        sig_ok = False
        if reading is not None:
            key = dev.key_for(rd[2] + rd[3])
            sig_ok = key is not None and verify(key.public_key, encode(reading[:12]), reading[12])
        steps.append({
            "step": "signed_reading", "device_id": rd[0], "seq": rd[1],
            "interval": f"{jst(rd[2]).isoformat()} / {rd[3]} s",
            "generation_wh": rd[4], "import_wh": rd[5], "export_wh": rd[6],
            "reading_hash": bytes(rd[7]).hex(), "signature_verified": sig_ok,
            "proof": tx_proof(store, bytes(rd[9])),
        })
    li = store.db.execute("SELECT height, tx_hash FROM ix_lots WHERE lot_id = ?", (lot_id,)).fetchone()
    if li is not None:
        steps.append({
            "step": "issued", "lot_id": lot_id, "owner": lot.issued_to,
            "units": [lot.first_unit, lot.end_unit - 1], "quantity_g": lot.quantity_g,
            "self_consumed_wh": lot.self_consumed_wh, "factor_g_per_kwh": lot.factor_g_per_kwh,
            "factor": lot.factor_ref, "factor_source": state.factor_source(lot.factor_ref),
            "proof": tx_proof(store, bytes(li[1])),
        })
    for kind, party, counter, a, b, ref, _height, txh in store.db.execute(
            "SELECT kind, party, counterparty, start_unit, end_unit, ref, height, tx_hash FROM ix_moves "
            "WHERE lot_id = ? ORDER BY height, rowid", (lot_id,)):
        step: dict[str, Any] = {"step": {"transfer": "transferred", "retire": "retired",
                                         "cancel": "cancelled"}[kind],
                                "units": [a, b - 1], "quantity_g": b - a, "from": party,
                                "proof": tx_proof(store, bytes(txh))}
        if kind == "transfer":
            step["to"] = counter
        elif kind == "retire":
            ret = state.retirements[ref]
            step.update(retirement_id=ref, beneficiary=ret.beneficiary, purpose=ret.purpose,
                        period=[jst(ret.period_start).date().isoformat(),
                                jst(ret.period_end).date().isoformat()])
        else:
            step["reason"] = ref
        steps.append(step)
    proof = state.prove(f"l/{lot_id}")
    root = state.tree.root()
    current = {
        "step": "current_state", "height": state.height, "state_root": root.hex(),
        "segments": [{"units": [s.start, s.end - 1], "holder": s.holder, "status": s.status, "ref": s.ref}
                     for s in lot.segments],
        "state_proof": {"bucket": proof.bucket, "bucket_entries": len(proof.bucket_entries),
                        "siblings": len(proof.siblings), "verified": proof.verify(root)},
    }
    steps.append(current)
    return {"lot_id": lot_id, "query": ident, "device_id": lot.device_id, "steps": steps}
