"""``crev device``: what the ledger holds about one DGC, for its operator — its slot tallies (the
DGC's figures against the utility smart meter, the C-REV issued and withdrawn, each slot's
finality) and its control records (what it applied to the inverter, and why). Read-only, from a
data directory (safe beside a running node); records are read one by one, so the cost is the
slots or records asked for, not the ledger's size."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from crev.cli.common import DEFAULT_DIR, _fail, _read, _when, console
from crev.core.units import SLOT_SECONDS, jst

MAX_SLOTS = 31 * 48  # one listing: at most 31 days of slots


@click.group()
def device() -> None:
    """One DGC's slot tallies (smart-meter reconciliation) and control records."""


def _device(view: Any, device_id: str) -> Any:
    dev = view.state.devices.get(device_id)
    if dev is None:
        _fail(f"device: no device {device_id!r} on this ledger")
    return dev


def slot_rows(view: Any, device_id: str, start: int, end: int) -> list[dict[str, Any]]:
    """The device's slot tallies for the slots starting in [start, end) [unix s], as JSON-ready rows
    with each slot's finality at the head block's time (slots without a tally are left out)."""
    from crev.ledger.reconcile import slot_finality, tolerance_wh

    st = view.state
    now = st.last_time
    rows = []
    for sid in range(start // SLOT_SECONDS, -(-end // SLOT_SECONDS)):
        t = st.tallies.get((device_id, sid))
        if t is None:
            continue
        meter = t.has_meter
        rows.append({
            "slot_id": sid, "slot_start_jst": jst(sid * SLOT_SECONDS).isoformat(),
            "finality": slot_finality(t, sid * SLOT_SECONDS, now, st.params.final_after_s),
            "covered_s": t.covered_s, "generation_wh": t.generation_wh, "import_wh": t.import_wh,
            "export_wh": t.export_wh,
            "sm_import_wh": t.sm_import_wh if meter else None, "sm_export_wh": t.sm_export_wh if meter else None,
            "export_tolerance_wh": tolerance_wh(t.sm_export_wh, t.sm_resolution_wh, st.params) if meter else None,
            "issued_g": t.issued_g, "withdrawn_g": t.withdrawn_g, "debt_g": t.debt_g,
            "stands_g": t.issued_g - t.withdrawn_g, "target_g": t.target_g if t.target_g >= 0 else None,
            "lots": list(t.lots), "sm_item_hash": t.sm_hash.hex() if t.sm_hash else None,
            "reconciled_height": t.reconciled_height or None,
        })
    return rows


@device.command("slots")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False), default=DEFAULT_DIR)
@click.argument("device_id", metavar="DEVICE")
@click.option("--from", "from_", default=None, help="First slot (ISO date or time, JST). Default: a day before "
                                                     "the last block.")
@click.option("--to", default=None, help="End (exclusive; ISO date or time, JST). Default: the last block's time.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows instead of a table.")
def slots(data_dir: str, device_id: str, from_: str | None, to: str | None, as_json: bool) -> None:
    """DEVICE's slots: the DGC's export and import against the smart meter's, C-REV issued, withdrawn
    and standing, and each slot's finality (provisional / final / corrected / late)."""
    start_opt = _when(from_, "--from") if from_ else None
    end_opt = _when(to, "--to") if to else None

    def run(view: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        dev = _device(view, device_id)
        end = end_opt if end_opt is not None else view.state.last_time + SLOT_SECONDS
        start = start_opt if start_opt is not None else end - 86_400
        if end <= start:
            _fail("--to must be after --from")
        if (end - start) // SLOT_SECONDS > MAX_SLOTS:
            _fail(f"at most {MAX_SLOTS // 48} days of slots at once: narrow --from/--to")
        alerts = {"debt_g": dev.debt_g, "debt_repaid_g": dev.debt_repaid_g, "drift_slots": dev.drift_slots,
                  "drift_alerts": dev.drift_alerts}
        return alerts, slot_rows(view, device_id, start, end)

    alerts, rows = _read(data_dir, run)
    if as_json:
        click.echo(json.dumps({"device_id": device_id, **alerts, "slots": rows}, indent=1, ensure_ascii=False))
        return
    t = Table(title=Text(f"{device_id}: slots / コマ — DGC against the smart meter"))
    t.add_column("slot (JST)")
    t.add_column("finality")
    t.add_column("export Wh\nDGC / meter ±tol", justify="right")
    t.add_column("import Wh\nDGC / meter", justify="right")
    t.add_column("C-REV g\nissued → stands", justify="right")
    t.add_column("debt g", justify="right")

    def n(v: int | None) -> str:
        return "-" if v is None else f"{v:,}"

    for r in rows:
        fin = r["finality"] + ("" if r["covered_s"] == SLOT_SECONDS else f" ({r['covered_s']:,} s read)")
        tol = "" if r["export_tolerance_wh"] is None else f" ±{r['export_tolerance_wh']:,}"
        t.add_row(jst(r["slot_id"] * SLOT_SECONDS).strftime("%m-%d %H:%M"), fin,
                  f"{n(r['export_wh'])} / {n(r['sm_export_wh'])}{tol}", f"{n(r['import_wh'])} / {n(r['sm_import_wh'])}",
                  f"{n(r['issued_g'])} → {n(r['stands_g'])}", n(r["debt_g"]) if r["debt_g"] else "")
    if rows:
        console.print(t)
    else:
        console.print("no slots of this device in that range")
    console.print(Text(f"device debt {alerts['debt_g']:,} g (repaid {alerts['debt_repaid_g']:,} g) · drift "
                       f"{alerts['drift_slots']:+d} slots, {alerts['drift_alerts']} alert(s)"))


def control_rows(view: Any, device_id: str, last: int) -> list[dict[str, Any]]:
    """The device's ``last`` most recent control records, newest first, as JSON-ready rows."""
    dev = _device(view, device_id)
    rows = []
    for seq in range(dev.last_control_seq, max(0, dev.last_control_seq - last), -1):
        c = view.state.controls.get((device_id, seq))
        if c is None:
            continue
        rows.append({"seq": seq, "slot_start_jst": jst(c.slot_start).isoformat(),
                     "applied_at_jst": jst(c.applied_at).isoformat(), "limit_w": c.limit_w,
                     "export_cap_w": c.export_cap_w, "reason": c.reason, "export_limit_w": c.export_limit_w,
                     "export_value_milli_jpy_per_kwh": c.export_value_milli_jpy_per_kwh,
                     "crev_price_jpy_per_t": c.crev_price_jpy_per_t,
                     "curtail_below_milli_jpy_per_kwh": c.curtail_below_milli_jpy_per_kwh,
                     "operator_limit_pct": c.operator_limit_pct, "control_hash": c.control_hash.hex(),
                     "height": c.height})
    return rows


@device.command("controls")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False), default=DEFAULT_DIR)
@click.argument("device_id", metavar="DEVICE")
@click.option("--last", default=48, show_default=True, type=click.IntRange(1, 100_000),
              help="How many of the most recent control records.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows instead of a table.")
def controls(data_dir: str, device_id: str, last: int, as_json: bool) -> None:
    """DEVICE's control records, newest first: the inverter limit it applied, the export cap, the
    reason and the inputs it weighed (export value, C-REV price, threshold, grid-operator limit)."""
    rows = _read(data_dir, lambda v: control_rows(v, device_id, last))
    if as_json:
        click.echo(json.dumps({"device_id": device_id, "controls": rows}, indent=1, ensure_ascii=False))
        return
    if not rows:
        console.print("no control records for this device")
        return
    t = Table(title=Text(f"{device_id}: control records / 出力制御記録"))
    t.add_column("seq", justify="right")
    t.add_column("applied (JST)")
    t.add_column("limit W\ncap W", justify="right")
    t.add_column("reason")
    t.add_column("inputs")
    t.add_column("block", justify="right")

    def w(v: int) -> str:
        return "none" if v < 0 else f"{v:,}"

    for r in rows:
        inputs = (f"export limit {w(r['export_limit_w'])} W · value ¥{r['export_value_milli_jpy_per_kwh'] / 1000:g}/kWh"
                  f" (curtail below ¥{r['curtail_below_milli_jpy_per_kwh'] / 1000:g}) · C-REV "
                  f"¥{r['crev_price_jpy_per_t']:,}/t · grid operator "
                  + ("none" if r["operator_limit_pct"] < 0 else f"{r['operator_limit_pct']} %"))
        t.add_row(str(r["seq"]), r["applied_at_jst"][5:16].replace("T", " "),
                  f"{r['limit_w']:,}\n{w(r['export_cap_w'])}", Text(r["reason"]), Text(inputs), str(r["height"]))
    console.print(t)
