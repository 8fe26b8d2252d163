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


def resolve(store: Store, state: State, ident: str) -> list[str]:
    """A lot id, a unit id (digits) or a retirement id → the lot ids to trace (every lot a
    retirement drew on, in the order of its ranges)."""
    if ident in state.lots:
        return [ident]
    if ident.isdigit():
        unit = int(ident)
        row = store.db.execute("SELECT lot_id, first_unit, quantity_g FROM ix_lots WHERE first_unit <= ? "
                               "ORDER BY first_unit DESC LIMIT 1", (unit,)).fetchone()
        if row is not None and unit < row[1] + row[2]:
            return [str(row[0])]
        raise NotFoundError("unit", f"no C-REV unit {unit} has been issued")
    if ident in state.retirements:
        return list(dict.fromkeys(lot_id for lot_id, _, _ in state.retirements[ident].ranges))
    raise NotFoundError("id", f"{ident!r} is not a lot id, unit id or retirement id on this ledger")


def state_proof(store: Store, state: State, key: str) -> dict[str, Any]:
    """The state proof of ``key`` in full: enough to recompute the state root by hand
    (docs/wire-format.md §7) and compare it with the root in the last block's header."""
    proof = state.prove(key)
    root = state.tree.root()
    head = store.block(state.height)
    header_root = head.header.state_root.hex() if head is not None else ""
    return {"key": key, "value_hash": sha256(proof.value).hex() if proof.value is not None else None,
            "depth": proof.depth, "bucket": proof.bucket,
            "bucket_entries": [[k, h.hex()] for k, h in proof.bucket_entries],
            "siblings": [h.hex() for h in proof.siblings], "state_root": root.hex(),
            "block_height": state.height, "header_state_root": header_root,
            "verified": proof.verify(root) and root.hex() == header_root}


def period_text(start: int, end: int) -> list[str]:
    """A [start, end) period as its first and last JST days (end is exclusive)."""
    return [jst(start).date().isoformat(), jst(end - 1).date().isoformat()]


def trace(store: Store, state: State, ident: str) -> dict[str, Any]:
    """Provenance of ``ident``: for a retirement, of every lot it retired from."""
    out: dict[str, Any] = {"query": ident, "lots": [trace_lot(store, state, lot_id)
                                                    for lot_id in resolve(store, state, ident)]}
    ret = state.retirements.get(ident)
    if ret is not None:
        out["retirement"] = {
            "retirement_id": ret.retirement_id, "account": ret.account, "beneficiary": ret.beneficiary,
            "purpose": ret.purpose, "period": period_text(ret.period_start, ret.period_end),
            "jurisdiction": ret.jurisdiction, "note": ret.note, "quantity_g": ret.quantity_g,
            "ranges": [[lot_id, a, b - 1] for lot_id, a, b in ret.ranges],
            "proof": tx_proof(store, ret.tx_hash), "state_proof": state_proof(store, state, f"t/{ident}"),
        }
    return out


def trace_lot(store: Store, state: State, lot_id: str) -> dict[str, Any]:
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
        step: dict[str, Any] = {"step": {"transfer": "transferred", "trade": "traded", "retire": "retired",
                                         "cancel": "cancelled"}[kind],
                                "units": [a, b - 1], "quantity_g": b - a, "from": party,
                                "proof": tx_proof(store, bytes(txh))}
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
        steps.append(step)
    steps.append({
        "step": "current_state", "height": state.height,
        "segments": [{"units": [s.start, s.end - 1], "holder": s.holder, "status": s.status, "ref": s.ref}
                     for s in lot.segments],
        "state_proof": state_proof(store, state, f"l/{lot_id}"),
    })
    return {"lot_id": lot_id, "device_id": lot.device_id, "steps": steps}
