"""What the API answers, as JSON-ready data built from the state and the store (no HTTP here).

Each function takes what a consistent read gives (``State``, read-only ``Store``) and returns
plain dicts and lists with integers, hex strings and JST times; ``app.py`` maps them to routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from crev.audit.trace import period_text, state_proof, trace, tx_proof
from crev.core.encoding import decode, encode
from crev.core.figures import Figures, total
from crev.core.hashing import sha256
from crev.core.units import JST_OFFSET_SECONDS, SLOT_SECONDS, fiscal_year, fiscal_year_bounds, jst, jst_date
from crev.errors import MalformedError, NotFoundError
from crev.ledger.block import Block, Header
from crev.ledger.events import event_from_value
from crev.ledger.reconcile import lot_finality, slot_finality, tolerance_wh
from crev.ledger.records import (
    PROVISIONAL,
    TALLY_STATUSES,
    Account,
    ControlRecord,
    Device,
    Lot,
    Order,
    Retirement,
    SlotTally,
)
from crev.ledger.state import State
from crev.node.lazystate import checkpoint_of
from crev.node.store import Store
from crev.reports.report import factors_used, participant_report
from crev.service.auth import Signed

DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def page(items: list[Any], total_: int, offset: int, limit: int) -> dict[str, Any]:
    return {"items": items, "total": total_, "offset": offset, "limit": limit}


def when(ts: int) -> str:
    return jst(ts).isoformat()


def jst_day_bounds(date: str, field: str) -> int:
    """Unix time of 00:00 JST on ``date`` (YYYY-MM-DD)."""
    import datetime as dt

    try:
        if not DATE_RE.fullmatch(date):  # fromisoformat also takes 2026-W01 and 20260601xx
            raise ValueError(date)
        d = dt.date.fromisoformat(date)
    except ValueError:
        raise MalformedError(field, f"{date!r} is not a date YYYY-MM-DD") from None
    return (d - dt.date(1970, 1, 1)).days * 86400 - JST_OFFSET_SECONDS


# --- chain ----------------------------------------------------------------------------------------


def info(state: State) -> dict[str, Any]:
    return {"chain_id": state.chain_id, "height": state.height, "app_hash": state.tree.root().hex(),
            "last_block_hash": state.last_block_hash.hex(), "last_time": state.last_time,
            "last_time_jst": when(state.last_time) if state.last_time else None,
            "genesis_hash": state.genesis_hash.hex(), "operator_id": state.operator_id,
            "sequencer_public_key": state.sequencer_key.hex(),
            "state_tree_depth": state.params.state_tree_depth}


def header_row(h: Header) -> dict[str, Any]:
    return {"height": h.height, "hash": h.hash.hex(), "time": h.time, "time_jst": when(h.time),
            "tx_count": h.tx_count, "tx_root": h.tx_root.hex(), "state_root": h.state_root.hex()}


def blocks(store: Store, offset: int, limit: int) -> dict[str, Any]:
    head = store.height()
    rows = store.db.execute("SELECT header FROM blocks WHERE height <= ? ORDER BY height DESC LIMIT ?",
                            (head - offset, limit)).fetchall()
    return page([header_row(Header.decode(bytes(r[0]))) for r in rows], head, offset, limit)


def block_wire(b: Block) -> dict[str, Any]:
    """The bytes a browser needs to check a header itself."""
    return {"height": b.header.height, "hash": b.header.hash.hex(), "header": b.header.encode().hex(),
            "signature": b.signature.hex(), "time": b.header.time}


def block(store: Store, height: int) -> dict[str, Any]:
    b = store.block(height)
    if b is None:
        raise NotFoundError("height", f"no block {height} (the chain is {store.height()} blocks long)")
    h = b.header
    txs = []
    for idx, (txh, kind, ok, raw) in enumerate(store.db.execute(
            "SELECT hash, kind, ok, raw FROM txs WHERE height = ? ORDER BY idx", (height,))):
        txs.append({"index": idx, "tx_hash": bytes(txh).hex(), "kind": kind, "ok": bool(ok),
                    "signer": decode(bytes(raw), "tx")[3]})
    return {**header_row(h), "prev_hash": h.prev_hash.hex(), "results_root": h.results_root.hex(),
            "chain_id": h.chain_id, **block_wire(b), "txs": txs}


def need_hash(text: str, field: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise MalformedError(field, "must be 64 hex characters (a SHA-256 hash)")
    return raw


#: What is public (docs/api.md): the kinds of transaction whose amounts and bank references only
#: their account and the operator may read, with the account they belong to (from the body).
PRIVATE_KINDS = {"deposit_jpy": 0, "withdraw_jpy": 0}  # kind → index of the account in the body
#: per event type, the fields withheld from everyone else
PRIVATE_EVENT_FIELDS = {"jpy_deposited": ("amount_jpy", "reference"), "jpy_withdrawn": ("amount_jpy", "reference")}
#: what a public answer about such a transaction withholds besides the events' private fields:
#: the result detail (the account's balance after it), the bytes (they hold the amount and the
#: bank reference) and the inclusion proof (without the bytes it ties no hash to the block)
REDACTED = ("amount_jpy", "reference", "detail", "raw", "proof")
#: a control record's money inputs: the owner's commercial settings (docs/api.md, "What is
#: public"); its limits, cap, reason and the grid operator's limit stay public
CONTROL_MONEY = ("export_value_milli_jpy_per_kwh", "crev_price_jpy_per_t", "curtail_below_milli_jpy_per_kwh")
#: a submit_controls transaction's bytes hold those inputs: withheld with its inclusion proof
REDACTED_CONTROLS = ("raw", "proof")
#: transactions that may carry an account's blinding value (ledger/blinding.py): kind → (index of
#: the account in the body, None for the signer itself; index of the blind). Only a body that holds
#: a blind is private: the blind is the secret that keeps the account record's leaf hash from
#: telling its JPY, and the bytes (with the proof that needs them) are withheld with it
BLINDED_KINDS: dict[str, tuple[int | None, int]] = {"register_participant": (0, 4), "rotate_key": (None, 1),
                                                    "reset_participant_key": (0, 3)}
REDACTED_BLIND = ("blind", "raw", "proof")


def private_to(kind: str, raw: bytes, owner_of: Callable[[str], str | None] | None = None) -> str | None:
    """The account whose private data a transaction of ``kind`` holds (None: nothing private).

    A ``submit_controls`` batch belongs to the owner of its devices (``owner_of(device_id)``);
    a batch of several owners' devices, or of an unknown device, to the operator alone
    (``"operator"`` here stands for "no participant": only the operator may read it)."""
    if kind == "submit_controls":
        body = decode(raw, "tx")[5]
        ids = {str(v[2]) for v in body if isinstance(v, list) and len(v) > 2} if isinstance(body, list) else set()
        owners = {owner_of(i) if owner_of is not None else None for i in ids}
        if len(owners) == 1 and None not in owners:
            return owners.pop() or ""
        return ""
    blinded = BLINDED_KINDS.get(kind)
    if blinded is not None:
        tx_ = decode(raw, "tx")
        body = tx_[5]
        account_at, blind_at = blinded
        if not isinstance(body, list) or len(body) <= blind_at:
            return None  # no blind: nothing private (a registration before blinds)
        return str(tx_[3] if account_at is None else body[account_at])
    at = PRIVATE_KINDS.get(kind)
    if at is None:
        return None
    body = decode(raw, "tx")[5]
    return str(body[at]) if isinstance(body, list) and len(body) > at else ""


def redacted_fields(kind: str) -> tuple[str, ...]:
    if kind in BLINDED_KINDS:
        return REDACTED_BLIND
    return REDACTED_CONTROLS if kind == "submit_controls" else REDACTED


def may_read(reader: Signed | None, owner: str | None) -> bool:
    return owner is None or (reader is not None and reader.may_read(owner))


def redact_event(e: dict[str, Any]) -> dict[str, Any]:
    hidden = PRIVATE_EVENT_FIELDS.get(str(e.get("type")), ())
    return {k: (None if k in hidden else v) for k, v in e.items()}


def tx(store: Store, tx_hash: str, reader: Signed | None = None,
       owner_of: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """One committed transaction. A deposit or withdrawal of JPY is answered whole only to
    ``reader`` = its account or the operator (a checked signed request, ``auth.reader``); anyone
    else gets it with ``REDACTED`` set to null, plus ``redacted`` (the names) and ``private_to``.
    A ``submit_controls`` batch likewise withholds its bytes and proof (``REDACTED_CONTROLS``)
    from anyone but its devices' owner (``owner_of``) and the operator, and a registration or key
    change carrying an account's blinding value withholds them (``REDACTED_BLIND``) from anyone
    but that account and the operator."""
    h = need_hash(tx_hash, "tx_hash")
    row = store.tx(h)
    if row is None:
        raise NotFoundError("tx_hash", f"no transaction {tx_hash} on this ledger")
    height, idx, kind, ok, raw, result = row
    v = decode(result, "result")
    b = store.block(height)
    assert b is not None
    owner = private_to(kind, raw, owner_of)
    if not may_read(reader, owner):
        hidden = redacted_fields(kind)
        error = None if not v[3] else {"code": v[3][0], "field": v[3][1], "reason": None}
        return {"tx_hash": tx_hash, "height": height, "index": idx, "kind": kind, "signer": decode(raw, "tx")[3],
                "ok": ok, "error": error, "events": [redact_event(event_from_value(e).to_dict()) for e in v[4]],
                "detail": None if "detail" in hidden else v[5], "raw": None, "proof": None, "block": block_wire(b),
                "redacted": [*hidden, *(["error.reason"] if error else [])], "private_to": owner}
    return {"tx_hash": tx_hash, "height": height, "index": idx, "kind": kind, "signer": decode(raw, "tx")[3],
            "ok": ok, "error": None if not v[3] else {"code": v[3][0], "field": v[3][1], "reason": v[3][2]},
            "events": [event_from_value(e).to_dict() for e in v[4]], "detail": v[5], "raw": raw.hex(),
            "proof": tx_proof(store, h, lambda _h: b), "block": block_wire(b)}


# --- registry -------------------------------------------------------------------------------------


def participant(state: State, a: Account) -> dict[str, Any]:
    return {"account_id": a.account_id, "name": a.name, "role": a.role, "public_key": a.public_key.hex(),
            "registered_height": a.registered_height, "nonce": a.nonce,
            "devices": sorted(d.device_id for d in state.devices.values() if d.owner == a.account_id)}


def participants(state: State, role: str | None, offset: int, limit: int) -> dict[str, Any]:
    rows = [a for a in sorted(state.accounts.values(), key=lambda a: a.account_id) if role in (None, a.role)]
    return page([participant(state, a) for a in rows[offset:offset + limit]], len(rows), offset, limit)


def delegate(state: State, delegate_id: str) -> dict[str, Any]:
    """A delegated key (``k/<delegate_id>``): whom it acts for, what it may sign, until when, and
    the next nonce a transaction it signs must carry."""
    d = state.delegates.get(delegate_id)
    if d is None:
        raise NotFoundError("delegate_id", f"no delegate {delegate_id!r}")
    return {"delegate_id": d.delegate_id, "owner": d.owner, "public_key": d.public_key.hex(), "kinds": list(d.kinds),
            "valid_until": d.valid_until, "valid_until_jst": when(d.valid_until) if d.valid_until else None,
            "revoked": d.revoked, "nonce": d.nonce, "granted_height": d.granted_height,
            "state_key": f"k/{d.delegate_id}"}


def account(state: State, account_id: str) -> Account:
    a = state.accounts.get(account_id)
    if a is None:
        raise NotFoundError("account_id", f"no participant {account_id!r}")
    return a


def _reading_row(r: Any) -> dict[str, Any]:
    seq, start, interval_s, g, i, e, lot_id, height, rh = r
    return {"seq": seq, "interval_start": start, "interval_start_jst": when(start), "interval_s": interval_s,
            "generation_wh": g, "import_wh": i, "export_wh": e, "self_consumed_wh": g - e,
            "demand_wh": g + i - e, "lot_id": lot_id, "height": height, "reading_hash": bytes(rh).hex()}


READING_COLS = "seq, interval_start, interval_s, generation_wh, import_wh, export_wh, lot_id, height, reading_hash"


def device(state: State, store: Store, d: Device, today: dict[str, tuple[int, int, int]], day: str) -> dict[str, Any]:
    last = store.db.execute(f"SELECT {READING_COLS} FROM ix_readings WHERE device_id = ? AND seq = ?",
                            (d.device_id, d.last_seq)).fetchone() if d.readings else None
    g, sc, dem = today.get(d.device_id, (0, 0, 0))
    return {"device_id": d.device_id, "owner": d.owner, "rated_capacity_w": d.rated_capacity_w,
            "location": {"lat": d.latitude_e6 / 1e6, "lon": d.longitude_e6 / 1e6},
            "grid_area": d.grid_area, "fit": d.fit, "technology": d.technology,
            "status": "active" if d.active else "revoked", "commissioned": d.commissioned,
            "commissioned_jst": when(d.commissioned), "meter_serial": d.meter_serial,
            "certified_until_jst": when(d.certified_until), "readings": d.readings, "issued_g": d.issued_g,
            "debt_g": d.debt_g, "debt_repaid_g": d.debt_repaid_g, "drift": drift(state, d),
            "last_reading": _reading_row(last) if last else None,
            "today": {"date_jst": day, "generation_wh": g, "self_consumed_wh": sc, "demand_wh": dem}}


def _today(state: State, store: Store, device_id: str | None = None) -> tuple[str, dict[str, tuple[int, int, int]]]:
    """Per device, the JST day of the ledger's latest block: generation, self-consumed, demand."""
    day = jst_date(state.last_time) if state.last_time else jst_date(0)
    start = jst_day_bounds(day, "day")
    q = ("SELECT device_id, SUM(generation_wh), SUM(generation_wh - export_wh), "
         "SUM(generation_wh + import_wh - export_wh) FROM ix_readings WHERE interval_start >= ? "
         "AND interval_start < ?")
    args: list[Any] = [start, start + 86400]
    if device_id is not None:
        q += " AND device_id = ?"
        args.append(device_id)
    rows = store.db.execute(q + " GROUP BY device_id", args).fetchall()
    return day, {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def devices(state: State, store: Store, owner: str | None, grid_area: str | None, offset: int,
            limit: int) -> dict[str, Any]:
    rows = [d for d in sorted(state.devices.values(), key=lambda d: d.device_id)
            if owner in (None, d.owner) and grid_area in (None, d.grid_area)]
    day, today = _today(state, store)
    return page([device(state, store, d, today, day) for d in rows[offset:offset + limit]], len(rows),
                offset, limit)


def device_detail(state: State, store: Store, device_id: str) -> dict[str, Any]:
    d = state.devices.get(device_id)
    if d is None:
        raise NotFoundError("device_id", f"no device {device_id!r}")
    day, today = _today(state, store, device_id)
    out = device(state, store, d, today, day)
    out["keys"] = [{"public_key": k.public_key.hex(), "valid_from": k.valid_from, "valid_until": k.valid_until,
                    "revoked": k.revoked} for k in d.keys]
    out["recent_readings"] = [_reading_row(r) for r in store.db.execute(
        f"SELECT {READING_COLS} FROM ix_readings WHERE device_id = ? ORDER BY seq DESC LIMIT 96", (device_id,))]
    c = state.controls.get((device_id, d.last_control_seq)) if d.last_control_seq else None
    out["last_control"] = None if c is None else {
        k: v for k, v in control_row(d.last_control_seq, c).items() if k not in ("inputs", "control_hash")}
    return out


def device_owner(state: State, device_id: str) -> str | None:
    d = state.devices.get(device_id)
    return None if d is None else d.owner


# --- smart-meter reconciliation and control records ----------------------------------------------

#: the longest span of ``/v1/devices/{id}/slots`` [JST days]
MAX_SLOT_DAYS = 31
DEFAULT_SLOT_DAYS = 7


def drift(state: State, d: Device) -> dict[str, Any]:
    """A device's calibration-drift state: ``consecutive`` reconciled slots out of tolerance the
    same way (``direction``: the DGC reads ``above`` or ``below`` the smart meter), ``alert`` while
    that run has reached ``params.drift_alert_slots`` (``alert_after_slots``); ``alerts_raised``
    counts the CalibrationDrift events so far."""
    n = abs(d.drift_slots)
    return {"consecutive": n, "direction": None if n == 0 else ("above" if d.drift_slots > 0 else "below"),
            "alert": n >= state.params.drift_alert_slots, "alert_after_slots": state.params.drift_alert_slots,
            "alerts_raised": d.drift_alerts}


def reconciliation(state: State, t: SlotTally | None) -> dict[str, Any] | None:
    """A slot's comparison with the smart meter, for a lot's answer (None: no smart-meter values)."""
    if t is None or not t.has_meter:
        return None
    return {"status": t.status, "dgc_import_wh": t.import_wh, "dgc_export_wh": t.export_wh,
            "smart_meter_import_wh": t.sm_import_wh, "smart_meter_export_wh": t.sm_export_wh,
            "tolerance_wh": tolerance_wh(t.sm_export_wh, t.sm_resolution_wh, state.params),
            "issued_g": t.issued_g, "standing_g": t.issued_g - t.withdrawn_g,
            "target_g": None if t.target_g < 0 else t.target_g}


def tally_row(state: State, device_id: str, t: SlotTally, now: int) -> dict[str, Any]:
    """One slot tally (state key ``v/<device>/<slot_id>``) with its finality at block time ``now``."""
    sid = t.slot_start // SLOT_SECONDS
    topped_up = 0
    for lot_id in t.lots:
        rec = state.lots.get(lot_id)
        if rec is not None and rec.origin == "reconcile":
            topped_up += rec.quantity_g
    meter = tol = None
    if t.has_meter:
        meter = {"import_wh": t.sm_import_wh, "export_wh": t.sm_export_wh, "resolution_wh": t.sm_resolution_wh,
                 "item_hash": t.sm_hash.hex()}
        tol = {"import_wh": tolerance_wh(t.sm_import_wh, t.sm_resolution_wh, state.params),
               "export_wh": tolerance_wh(t.sm_export_wh, t.sm_resolution_wh, state.params)}
    return {"device_id": device_id, "slot_id": sid, "slot_start": t.slot_start, "slot_start_jst": when(t.slot_start),
            "status": t.status, "finality": slot_finality(t, t.slot_start, now, state.params.final_after_s),
            "covered_s": t.covered_s,
            "dgc": {"generation_wh": t.generation_wh, "import_wh": t.import_wh, "export_wh": t.export_wh},
            "smart_meter": meter, "tolerance": tol, "factor_g_per_kwh": t.factor_g_per_kwh,
            "issued_g": t.issued_g, "withdrawn_g": t.withdrawn_g, "standing_g": t.issued_g - t.withdrawn_g,
            "target_g": None if t.target_g < 0 else t.target_g,
            "corrections": {"cancelled_g": t.withdrawn_g - t.debt_g, "topped_up_g": topped_up, "debt_g": t.debt_g},
            "lots": list(t.lots), "reconciled_height": t.reconciled_height or None,
            "state_key": f"v/{device_id}/{sid}"}


def _device(state: State, device_id: str) -> Device:
    d = state.devices.get(device_id)
    if d is None:
        raise NotFoundError("device_id", f"no device {device_id!r}")
    return d


def _day_span(state: State, date_from: str | None, date_to: str | None, days: int | None) -> tuple[int, int]:
    """[lo, hi) unix s of the JST days ``from``..``to`` (inclusive). Missing ``to``: the day of
    the latest block; missing ``from``: ``days`` − 1 days before ``to`` (None: unbounded)."""
    hi = (jst_day_bounds(date_to, "to") if date_to else
          jst_day_bounds(jst_date(state.last_time) if state.last_time else jst_date(0), "to")) + 86400
    default_lo = 0 if days is None else hi - days * 86400
    lo = jst_day_bounds(date_from, "from") if date_from else default_lo
    if lo >= hi:
        raise MalformedError("from", f"{date_from} is after {date_to}")
    return lo, hi


def device_slots(state: State, device_id: str, date_from: str | None, date_to: str | None, finality: str | None,
                 order: str, offset: int, limit: int) -> dict[str, Any]:
    """A device's slot tallies over JST days ``from``..``to`` (default: the 7 days up to the latest
    block's; at most ``MAX_SLOT_DAYS``), newest first unless ``order`` is ``asc``; only slots the
    ledger holds a tally for (a reading or smart-meter values)."""
    _device(state, device_id)
    lo, hi = _day_span(state, date_from, date_to, DEFAULT_SLOT_DAYS)
    if hi - lo > MAX_SLOT_DAYS * 86400:
        raise MalformedError("to" if date_to else "from",
                             f"the span {date_from or '…'}..{date_to or '…'} exceeds {MAX_SLOT_DAYS} days: page "
                             f"through it a month at a time")
    if finality is not None and finality not in TALLY_STATUSES:
        raise MalformedError("finality", f"{finality!r}: one of {', '.join(TALLY_STATUSES)}")
    now = state.last_time
    sids = range(lo // SLOT_SECONDS, hi // SLOT_SECONDS)
    rows = []
    for sid in (sids if order == "asc" else reversed(sids)):
        t = state.tallies.get((device_id, sid))
        if t is None:
            continue
        if finality is not None and slot_finality(t, t.slot_start, now, state.params.final_after_s) != finality:
            continue
        rows.append(t)
    return {**page([tally_row(state, device_id, t, now) for t in rows[offset:offset + limit]], len(rows), offset,
                   limit), "from_jst": when(lo), "to_jst": when(hi)}


def control_row(seq: int, c: ControlRecord, public: bool = False) -> dict[str, Any]:
    """One control record (``c/<device>/<seq>``); -1 ("none") becomes null. ``public``: its money
    inputs (``CONTROL_MONEY``) are withheld (null, named in ``redacted``)."""
    def none(x: int) -> int | None:
        return None if x < 0 else x

    inputs: dict[str, Any] = {
        "export_limit_w": none(c.export_limit_w),
        "export_value_milli_jpy_per_kwh": c.export_value_milli_jpy_per_kwh,
        "crev_price_jpy_per_t": c.crev_price_jpy_per_t,
        "curtail_below_milli_jpy_per_kwh": c.curtail_below_milli_jpy_per_kwh,
        "operator_limit_pct": none(c.operator_limit_pct)}
    out: dict[str, Any] = {
        "seq": seq, "slot_start": c.slot_start, "slot_start_jst": when(c.slot_start), "applied_at": c.applied_at,
        "applied_at_jst": when(c.applied_at), "limit_w": c.limit_w, "export_cap_w": none(c.export_cap_w),
        "reason": c.reason, "inputs": inputs, "control_hash": c.control_hash.hex(), "height": c.height}
    if public:
        for k in CONTROL_MONEY:
            inputs[k] = None
        out["redacted"] = [f"inputs.{k}" for k in CONTROL_MONEY]
    return out


def device_controls(state: State, device_id: str, date_from: str | None, date_to: str | None,
                    reader: Signed | None, offset: int, limit: int) -> dict[str, Any]:
    """A device's control records whose slot lies in JST days ``from``..``to`` (default: all),
    newest (highest seq) first. Their money inputs only for the owner's or the operator's
    signed request (``reader``)."""
    d = _device(state, device_id)
    lo, hi = _day_span(state, date_from, date_to, None) if (date_from or date_to) else (0, 2**62)
    # the device's own records only, seq by seq down from its last (never a scan of every device's)
    rows = [(seq, c) for seq in range(d.last_control_seq, 0, -1)
            if (c := state.controls.get((device_id, seq))) is not None and lo <= c.slot_start < hi]
    public = not may_read(reader, d.owner)
    out = page([control_row(seq, c, public) for seq, c in rows[offset:offset + limit]], len(rows), offset, limit)
    if public:
        out["private_to"] = d.owner
    return out


# --- C-REV ----------------------------------------------------------------------------------------


LOT_COLS = ("lot_id, first_unit, quantity_g, device_id, owner, slot_id, self_consumed_wh, factor_g_per_kwh, "
            "origin, height, tx_hash")


def _lot_row(r: Any) -> dict[str, Any]:
    lot_id, first, q, dev, owner, slot, wh, f, origin, height, txh = r
    return {"lot_id": lot_id, "device_id": dev, "owner": owner, "first_unit": first, "quantity_g": q,
            "slot_start": slot * SLOT_SECONDS, "slot_start_jst": when(slot * SLOT_SECONDS),
            "self_consumed_wh": wh, "factor_g_per_kwh": f, "origin": origin, "height": height,
            "tx_hash": bytes(txh).hex()}


def _with_finality(state: State, row: dict[str, Any]) -> dict[str, Any]:
    """A lot row plus its slot's ``finality`` at the head's block time and ``reconciliation``."""
    t = state.tallies.get((row["device_id"], row["slot_start"] // SLOT_SECONDS))
    row["finality"] = slot_finality(t, row["slot_start"], state.last_time, state.params.final_after_s)
    row["reconciliation"] = reconciliation(state, t)
    return row


def lots(state: State, store: Store, device_id: str | None, owner: str | None, offset: int, limit: int,
         finality: str | None = None) -> dict[str, Any]:
    """Lots newest first, each with its finality; ``finality`` keeps those of one (provisional,
    final, corrected, late)."""
    where: list[str] = []
    args: list[Any] = []
    if device_id is not None:
        where.append("device_id = ?")
        args.append(device_id)
    if owner is not None:
        where.append("owner = ?")
        args.append(owner)
    if finality is not None and finality not in TALLY_STATUSES:
        raise MalformedError("finality", f"{finality!r}: one of {', '.join(TALLY_STATUSES)}")
    if finality == PROVISIONAL:  # only a slot within the finality window can still be provisional
        where.append("slot_id * ? > ?")
        args += [SLOT_SECONDS, state.last_time - SLOT_SECONDS - state.params.final_after_s]
    w = (" WHERE " + " AND ".join(where)) if where else ""
    if finality is None:
        n = store.db.execute(f"SELECT COUNT(*) FROM ix_lots{w}", args).fetchone()[0]
        rows = store.db.execute(f"SELECT {LOT_COLS} FROM ix_lots{w} ORDER BY first_unit DESC LIMIT ? OFFSET ?",
                                [*args, limit, offset]).fetchall()
        return page([_with_finality(state, _lot_row(r)) for r in rows], int(n), offset, limit)
    # finality is derived from the slot tally and the block time, not indexed: filter as we go
    picked: list[dict[str, Any]] = []
    n = 0
    for r in store.db.execute(f"SELECT {LOT_COLS} FROM ix_lots{w} ORDER BY first_unit DESC", args):
        row = _lot_row(r)
        t = state.tallies.get((row["device_id"], row["slot_start"] // SLOT_SECONDS))
        if slot_finality(t, row["slot_start"], state.last_time, state.params.final_after_s) != finality:
            continue
        if offset <= n < offset + limit:
            picked.append(_with_finality(state, row))
        n += 1
    return page(picked, n, offset, limit)


def lot_record(state: State, lot: Lot) -> dict[str, Any]:
    return {"lot_id": lot.lot_id, "first_unit": lot.first_unit, "last_unit": lot.end_unit - 1,
            "quantity_g": lot.quantity_g, "device_id": lot.device_id, "issued_to": lot.issued_to,
            "slot_start": lot.interval_start, "slot_start_jst": when(lot.interval_start),
            "slot_end_jst": when(lot.interval_end), "self_consumed_wh": lot.self_consumed_wh,
            "factor_g_per_kwh": lot.factor_g_per_kwh, "factor": lot.factor_ref,
            "factor_source": state.factor_source(lot.factor_ref), "technology": lot.technology,
            "location": {"lat": lot.latitude_e6 / 1e6, "lon": lot.longitude_e6 / 1e6},
            "grid_area": lot.grid_area, "fit": lot.fit, "height": lot.height,
            "issued_at_jst": when(lot.block_time), "reading_hash": lot.reading_hash.hex(), "origin": lot.origin,
            "reference": lot.reference,
            "segments": [{"start": s.start, "end": s.end - 1, "holder": s.holder, "status": s.status,
                          "ref": s.ref} for s in lot.segments]}


def lot(state: State, store: Store, lot_id: str) -> dict[str, Any]:
    rec = state.lots.get(lot_id)
    if rec is None:
        raise NotFoundError("lot_id", f"no lot {lot_id!r}")
    return {**lot_record(state, rec), "finality": lot_finality(state, rec, state.last_time),
            "reconciliation": reconciliation(state, state.tallies.get((rec.device_id, rec.slot_id))),
            "state_proof": state_proof(store, state, f"l/{lot_id}")}


def unit(state: State, store: Store, unit_id: int) -> dict[str, Any]:
    row = store.db.execute("SELECT lot_id FROM ix_lots WHERE first_unit <= ? ORDER BY first_unit DESC LIMIT 1",
                           (unit_id,)).fetchone()
    rec = state.lots.get(str(row[0])) if row else None
    if rec is None or not rec.first_unit <= unit_id < rec.end_unit:
        raise NotFoundError("unit_id", f"no C-REV unit {unit_id} has been issued")
    seg = next(s for s in rec.segments if s.start <= unit_id < s.end)
    return {"unit_id": unit_id, "lot_id": rec.lot_id, "holder": seg.holder, "status": seg.status, "ref": seg.ref}


def retirement_row(r: Retirement) -> dict[str, Any]:
    return {"retirement_id": r.retirement_id, "account": r.account, "beneficiary": r.beneficiary,
            "purpose": r.purpose, "period": period_text(r.period_start, r.period_end),
            "jurisdiction": r.jurisdiction, "note": r.note, "quantity_g": r.quantity_g, "height": r.height,
            "tx_hash": r.tx_hash.hex(), "retired_at_jst": when(r.block_time)}


def retirement_ids(state: State, store: Store, account_id: str) -> list[str]:
    """The ids of ``account_id``'s retirements: those the store's index rows name (a retirement's
    moves, written with the checkpoint) and those held in memory since (every retirement made after
    the checkpoint is: nothing changed since one is evicted), each kept only if its record, read
    through the state, is the account's."""
    ids = {str(r[0]) for r in store.db.execute(
        "SELECT DISTINCT ref FROM ix_moves WHERE kind = 'retire' AND party = ?", (account_id,))}
    ids.update(dict.keys(state.retirements))
    return [rid for rid in ids if (r := state.retirements.get(rid)) is not None and r.account == account_id]


def account_orders(state: State, store: Store, account_id: str, side: str | None, market_id: str | None,
                   offset: int, limit: int) -> dict[str, Any]:
    """The account's orders (open and closed) of ``side`` and ``market_id`` if given, newest first.
    A state whose closed orders live on disk (node/lazystate.py) is not read whole: the stored
    orders come from the store's ``ix_orders`` (an order's account, side and market never change;
    ``store`` must be at the state's checkpoint or later), those held in memory since from their
    records, and only the page's records are read."""
    def wanted(o: Order) -> bool:
        return o.account == account_id and side in (None, o.side) and market_id in (None, o.market_id)

    # held whole (a scan costs nothing), or a file written before ix_orders (every order read)
    if checkpoint_of(state) is None or not store.has_order_index:
        seqs = {o.order_id: o.seq for o in state.orders.values() if wanted(o)}
    else:
        seqs = dict(store.account_orders(account_id, side, market_id))
        # held: open, or changed since the checkpoint
        seqs.update((o.order_id, o.seq) for o in dict.values(state.orders) if wanted(o))
    ids = sorted(seqs, key=seqs.__getitem__, reverse=True)
    return page([order_row(state.orders[oid]) for oid in ids[offset:offset + limit]], len(ids), offset, limit)


def retirements(state: State, store: Store, account_id: str | None, offset: int, limit: int) -> dict[str, Any]:
    """Newest first. Retirement ids are numbered in order (``ret-`` and the count so far) and never
    removed, so the unfiltered list is a range of numbers and reads only its page's records: a
    state whose retirements live on disk is not read whole to show 50 of them."""
    if account_id is None:
        n = state.supply.retirements
        ids = [f"ret-{i:08d}" for i in range(n - offset, max(n - offset - limit, 0), -1)]
        rows = [r for rid in ids if (r := state.retirements.get(rid)) is not None]
        return page([retirement_row(r) for r in rows], n, offset, limit)
    ids = sorted(retirement_ids(state, store, account_id), key=lambda rid: int(rid[4:]), reverse=True)
    return page([retirement_row(state.retirements[rid]) for rid in ids[offset:offset + limit]], len(ids), offset,
                limit)


def retirement(state: State, store: Store, rid: str) -> dict[str, Any]:
    r = state.retirements.get(rid)
    if r is None:
        raise NotFoundError("retirement_id", f"no retirement {rid!r}")
    return {**retirement_row(r), "ranges": [[lot_id, a, b - 1] for lot_id, a, b in r.ranges],
            "proof": tx_proof(store, r.tx_hash), "state_proof": state_proof(store, state, f"t/{rid}")}


def browser_trace(state: State, store: Store, ident: str, reader: Signed | None = None) -> dict[str, Any]:
    """``trace`` plus the bytes a browser needs to check every proof itself: each block header
    with its signature, each transaction's bytes once (``raw_txs``, by hash), each signed
    reading's bytes. A transaction hash of a deposit or withdrawal of JPY is answered as ``tx``
    answers it to ``reader`` (redacted unless its account or the operator signed)."""
    if len(ident) == 64 and all(c in "0123456789abcdefABCDEF" for c in ident):
        ident = ident.lower()
        t = tx(store, ident, reader, lambda d: device_owner(state, d))
        out: dict[str, Any] = {"query": ident, "kind": "tx", "height": state.height, "lots": [],
                               "transaction": t}
        heights = {t["height"]}
    else:
        if ident.isdigit() and (len(ident) > 19 or int(ident) >= 2**62):
            raise NotFoundError("unit", f"no C-REV unit {ident} has been issued")
        out = trace(store, state, ident)
        heights = set()
    raws: dict[str, bytes] = {}
    withheld: set[str] = set()

    def fill(step: dict[str, Any]) -> None:
        p = step.get("proof")
        if isinstance(p, dict):
            heights.add(int(p["height"]))
            txh = p["tx_hash"]
            if txh not in raws and txh not in withheld:
                row = store.tx(bytes.fromhex(txh))
                assert row is not None
                if may_read(reader, private_to(row[2], row[4], lambda d: device_owner(state, d))):
                    raws[txh] = row[4]
                else:  # no unit moves in a deposit or withdrawal, so no step names one today
                    withheld.add(txh)
            if step.get("step") == "signed_reading" and txh in raws:
                step["reading_bytes"] = _reading_bytes(raws[txh], step["reading_hash"])
        sp = step.get("state_proof")
        if isinstance(sp, dict) and sp.get("block_height"):
            heights.add(int(sp["block_height"]))

    for lot_ in out["lots"]:
        rec = state.lots.get(str(lot_.get("lot_id")))
        if rec is not None:
            lot_["finality"] = lot_finality(state, rec, state.last_time)
        for step in lot_["steps"]:
            fill(step)
    if "retirement" in out:
        fill(out["retirement"])
    blocks_: dict[str, Any] = {}
    for h in sorted(heights):
        b = store.block(h)
        if b is not None:
            blocks_[str(h)] = block_wire(b)
    out["blocks"] = blocks_
    # each transaction's bytes once (a retirement of hundreds of lots shares a few transactions)
    out["raw_txs"] = {h: raw.hex() for h, raw in raws.items()}
    return out


def _reading_bytes(tx_raw: bytes, reading_hash: str) -> str:
    for r in decode(tx_raw, "tx")[5]:
        raw = encode(r)
        if sha256(raw).hex() == reading_hash:
            return raw.hex()
    raise NotFoundError("reading_hash", f"reading {reading_hash} is not in its transaction")


# --- consumer figures -----------------------------------------------------------------------------


def matching_247_bp(slots: dict[int, Figures]) -> int:
    """Share of demand covered by renewable C-REV of the same 30-minute slot (held or retired),
    slot by slot, in basis points (⌊⌋): Σ min(claimed Wh, demand Wh) / Σ demand Wh."""
    demand = sum(f.demand_wh for f in slots.values())
    if demand <= 0:
        return 0
    matched = sum(min(f.claimed_wh, f.demand_wh) for f in slots.values())
    return matched * 10_000 // demand


def figures(state: State, store: Store, participant_id: str, site: str | None, date_from: str | None,
            date_to: str | None, with_slots: bool = True) -> dict[str, Any]:
    rep = participant_report(state, store, participant_id, site)
    now = state.last_time
    if site is not None:
        chosen = [s for s in rep.sites if s.device_id == site]
        if not chosen:
            raise NotFoundError("site", f"{participant_id!r} has no site {site!r}")
        slots = chosen[0].slots
    else:
        slots = rep.slots
    lo = jst_day_bounds(date_from, "from") if date_from else 0
    hi = jst_day_bounds(date_to, "to") + 86400 if date_to else 2**62
    if lo >= hi:
        raise MalformedError("from", f"{date_from} is after {date_to}")
    picked = {s: f for s, f in sorted(slots.items()) if lo <= s * SLOT_SECONDS < hi}
    days: dict[str, list[Figures]] = {}
    for s, f in picked.items():
        days.setdefault(jst_date(s * SLOT_SECONDS), []).append(f)
    fy_start = fiscal_year_bounds(fiscal_year(now))[0]
    latest = max(slots) if slots else None
    return {
        "participant": rep.account_id, "name": rep.name, "role": rep.role, "site": site,
        "total": total(slots.values()).to_dict(),
        "fiscal_year_to_date": total(f for s, f in slots.items()
                                     if fy_start <= s * SLOT_SECONDS <= now).to_dict(),
        "now": None if latest is None else {"slot_start": latest * SLOT_SECONDS,
                                            "slot_start_jst": when(latest * SLOT_SECONDS),
                                            **slots[latest].to_dict()},
        "matching_247_bp": matching_247_bp(slots),
        "by_day": {d: total(fs).to_dict() for d, fs in days.items()},
        "slots": [{"slot_start": s * SLOT_SECONDS, "slot_start_jst": when(s * SLOT_SECONDS), **f.to_dict()}
                  for s, f in picked.items()] if with_slots else None,
        "sites": [{"device_id": s.device_id, "grid_area": s.grid_area, "rated_capacity_w": s.rated_capacity_w,
                   **total(s.slots.values()).to_dict(), "matching_247_bp": matching_247_bp(s.slots)}
                  for s in rep.sites],
        "bought_g": rep.bought_g, "factors": factors_used(rep),
    }


# --- market ---------------------------------------------------------------------------------------


def order_row(o: Order) -> dict[str, Any]:
    return {"order_id": o.order_id, "seq": o.seq, "market_id": o.market_id, "account": o.account,
            "side": o.side, "price": o.price, "quantity_g": o.quantity_g, "remaining_g": o.remaining_g,
            "tif": o.tif, "expires_at": o.expires_at, "status": o.status, "escrow_jpy": o.escrow_jpy,
            "height": o.height, "retire": None if o.retire is None else {
                "beneficiary": o.retire.beneficiary, "purpose": o.retire.purpose,
                "period": period_text(o.retire.period_start, o.retire.period_end)}}
