"""Terminal rendering (rich) of ``crev trace``, ``crev report`` and ``crev verify``.

Every line is assembled as a ``rich.text.Text`` from plain strings, never parsed as markup, so text
a participant wrote (a name, a note, a beneficiary, a reference) or any id is printed exactly as it
is: ``[bold]x[/`` shows as ``[bold]x[/`` and cannot break or restyle the output.

Proofs are shown compactly (hashes shortened to 12 hex digits, long paths elided); ``--json`` has
them in full.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from crev.audit.replay import VerifyReport
from crev.core.units import SLOT_SECONDS, fiscal_year, fiscal_year_bounds, jst, jst_date
from crev.reports.report import ParticipantReport

Part = str | tuple[str, str]
STEP_WIDTH = 15
INDENT = " " * (STEP_WIDTH + 3)


def _line(console: Console, *parts: Part) -> None:
    console.print(Text.assemble(*parts))


def _short(h: str | None, n: int = 12) -> str:
    if not h:
        return "-"
    return h[:n] + "…" if len(h) > n else h


def _mark(ok: bool) -> tuple[str, str]:
    return ("✓", "green") if ok else ("✗", "bold red")


def _units(u: list[int]) -> str:
    return f"{u[0]:,}–{u[1]:,}" if u[0] != u[1] else f"{u[0]:,}"


def _hashes(hs: list[str], keep: int = 3) -> str:
    shown = " ".join(_short(h, 8) for h in hs[:keep])
    return shown + (f" …(+{len(hs) - keep})" if len(hs) > keep else "") if hs else "(none)"


def _period(p: dict[str, Any]) -> str:
    return f"{p['first_day_jst']} – {p['last_day_jst']} (inclusive, JST)"


def tx_proof_parts(p: dict[str, Any]) -> list[Part]:
    """One transaction inclusion proof, compactly."""
    return ["tx proof ", _mark(p["verified"]),
            f" leaf {_short(p['leaf'])} #{p['index']} of {p['size']} · path {_hashes(p['path'])} "
            f"→ tx root {_short(p['tx_root'])} in block {p['height']}"]


def state_proof_parts(sp: dict[str, Any]) -> list[Part]:
    """One state proof, compactly."""
    n = len(sp["bucket_entries"])
    return ["state proof ", _mark(sp["verified"]),
            f" key {sp['key']} = value {_short(sp['value_hash'])} · bucket {sp['bucket']} "
            f"({n} entr{'y' if n == 1 else 'ies'}) · {len(sp['siblings'])} siblings "
            f"→ state root {_short(sp['state_root'])} = header of block {sp['block_height']}"]


# --- trace ----------------------------------------------------------------------------------


#: finality labels, English / Japanese (暫定: provisional, 確定: final, 補正済: corrected, 遅延: late)
FINALITY = {"provisional": ("provisional / 暫定", "yellow"), "final": ("final / 確定", "green"),
            "corrected": ("corrected / 補正済", "magenta"), "late": ("late / 遅延", "yellow")}


def finality_part(status: str) -> tuple[str, str]:
    """A finality status as its bilingual, coloured label."""
    return FINALITY.get(status, (status, ""))


def print_trace(console: Console, out: dict[str, Any], max_lots: int | None = None) -> None:
    """Print ``crev.audit.trace.trace`` output as a timeline: the retirement (if one was asked for),
    then each lot with its steps, every step with its block, transaction and proofs. A retirement
    can draw on hundreds of lots: ``max_lots`` prints only the first ones in full (all are named
    in the retirement's summary, and all are in the JSON)."""
    ret = out.get("retirement")
    if ret is not None:
        _print_retirement(console, ret, out["lots"])
    lots = out["lots"] if max_lots is None else out["lots"][:max_lots]
    for lot in lots:
        console.print()
        traced = lot["units_traced"]
        _line(console, ("lot ", "bold"), (lot["lot_id"], "bold"),
              f"  device {lot['device_id']} · {lot['origin']} · units traced "
              f"{', '.join(_units(u) for u in traced)} ({lot['quantity_g_traced']:,} g)")
        if "finality" in lot:
            _line(console, "  finality ", finality_part(lot["finality"]),
                  f" at block {out['height']} ({lot['finality_basis']})")
        for st in lot["steps"]:
            _print_step(console, st)
    if len(lots) < len(out["lots"]):
        rest = out["lots"][len(lots):]
        console.print()
        _line(console, f"… {len(rest):,} more lot{'s' if len(rest) != 1 else ''} "
              f"({sum(x['quantity_g_traced'] for x in rest):,} g) not shown in full; --json has every one")


def _print_retirement(console: Console, ret: dict[str, Any], lots: list[dict[str, Any]]) -> None:
    _line(console, (ret["retirement_id"], "bold"), f"  {ret['quantity_g']:,} g retired by ", ret["account"],
          " for ", (ret["beneficiary"], "bold"))
    _line(console, "  purpose ", ret["purpose"], " · period ", _period(ret["period"]), " · jurisdiction ",
          ret["jurisdiction"])
    if ret["note"]:
        _line(console, "  note: ", ret["note"])
    _line(console, f"  block {ret['height']} · tx {_short(ret['tx_hash'])} · retired at {ret['retired_at_jst']}")
    _line(console, "  ", *tx_proof_parts(ret["proof"]))
    _line(console, "  ", *state_proof_parts(ret["state_proof"]))
    _line(console, f"  from {len(lots)} lot{'s' if len(lots) != 1 else ''}: ",
          "; ".join(f"{x['lot_id']} units {', '.join(_units(u) for u in x['units_traced'])} "
                    f"({x['quantity_g_traced']:,} g)" for x in lots))


def _print_step(console: Console, st: dict[str, Any]) -> None:
    name = st["step"]
    head: tuple[str, str] = (f"  {name:<{STEP_WIDTH}} ", "cyan")
    if name == "signed_reading":
        _line(console, head, f"block {st['height']} tx {_short(st['tx_hash'])} · {st['device_id']} seq {st['seq']} · "
              f"{st['interval_start_jst']} / {st['interval_s']} s · G {st['generation_wh']:,} I {st['import_wh']:,} "
              f"E {st['export_wh']:,} Wh (self-consumed {st['self_consumed_wh']:,}) · owner ",
              st["owner_at_the_time"], f" · {st['role'].replace('_', ' ')}")
        _line(console, INDENT, "signature ", _mark(st["signature_verified"]),
              f" {_short(st['signature'])} by device key {_short(st['device_public_key'])} · reading hash "
              f"{_short(st['reading_hash'])}")
    elif name == "issued":
        _line(console, head, f"block {st['height']} tx {_short(st['tx_hash'])} · {st['quantity_g']:,} g, units "
              f"{_units(st['units'])} to ", st["owner"], f" · {st['self_consumed_wh']:,} Wh × "
              f"{st['factor_g_per_kwh']} g/kWh ({st['factor']}) · {st['origin']}")
        if st["reference"]:
            _line(console, INDENT, "reference: ", st["reference"])
        if st["factor_source"]:
            _line(console, INDENT, "factor source: ", st["factor_source"])
    elif name == "reconciled":
        _print_reconciled(console, head, st)
        return
    elif name == "current_state":
        _line(console, head, f"at block {st['height']}")
        for seg in st["segments"]:
            _line(console, INDENT, f"units {_units(seg['units'])}: ", seg["holder"], f" {seg['status']} ",
                  seg["ref"])
        _line(console, INDENT, *state_proof_parts(st["state_proof"]))
        return
    else:
        parts: list[Part] = [head, f"block {st['height']} tx {_short(st['tx_hash'])} · {st['quantity_g']:,} g, "
                             f"units {_units(st['units'])} · from ", st["from"]]
        if "to" in st:
            parts += [" to ", st["to"]]
        if name == "traded":
            parts += [" · trade ", st["trade"]]
        elif name == "retired":
            parts += [" · ", (st["retirement_id"], "bold"), " for ", st["beneficiary"], " · ", st["purpose"],
                      " · period ", _period(st["period"])]
        elif name == "cancelled":
            parts += [" · ", st["reason"]]
        _line(console, *parts)
    _line(console, INDENT, *tx_proof_parts(st["proof"]))
    if "state_proof" in st:
        _line(console, INDENT, *state_proof_parts(st["state_proof"]))


def _print_reconciled(console: Console, head: tuple[str, str], st: dict[str, Any]) -> None:
    """A slot's reconciliation: the DGC against the smart meter, what it did, and its proofs."""
    ex, im = st["export_wh"], st["import_wh"]
    _line(console, head, f"block {st['height']} tx {_short(st['tx_hash'])} · slot {st['slot_start_jst']} · ",
          finality_part(st["status"]))
    _line(console, INDENT, f"export DGC {ex['dgc']:,} / smart meter {ex['smart_meter']:,} Wh "
          f"(Δ {ex['difference']:+,}, ±{ex['tolerance']:,}) · import DGC {im['dgc']:,} / smart meter "
          f"{im['smart_meter']:,} Wh (Δ {im['difference']:+,}, ±{im['tolerance']:,}) · G {st['generation_wh']:,} Wh")
    did = []
    if st["cancelled_g"]:
        did.append(f"cancelled {st['cancelled_g']:,} g")
    if st["debt_g"]:
        did.append(f"debt {st['debt_g']:,} g on the device")
    if st["topup_g"]:
        did.append(f"topped up {st['topup_g']:,} g ({', '.join(st['topup_lots'])})")
    _line(console, INDENT, f"stood {st['stood_g']:,} g → target {st['target_g']:,} g: ",
          "; ".join(did) if did else "no change")
    mi = st["meter_item"]
    same = mi.get("tx_hash") == st["tx_hash"]
    where = (" (this transaction)" if same else f" in block {mi['height']} tx {_short(mi['tx_hash'])}"
             if "tx_hash" in mi else "")
    _line(console, INDENT, f"smart-meter item {_short(mi['item_hash'])}{where}",
          f" · meter {mi['meter_id']}" if mi.get("meter_id") else "")
    if "proof" in mi and not same:
        _line(console, INDENT, "meter ", *tx_proof_parts(mi["proof"]))
    _line(console, INDENT, *tx_proof_parts(st["proof"]))
    _line(console, INDENT, *state_proof_parts(st["state_proof"]))


# --- report ---------------------------------------------------------------------------------


def _pct(bp: int) -> str:
    return f"{bp / 100:.1f} %"


def _kg(g: int) -> str:
    return f"{g / 1000:,.2f}"


def print_report(console: Console, rep: ParticipantReport, now: int, slots_day: str | None = None) -> None:
    """Print a participant's consumer figures: one row per JST day, the total and the fiscal year
    to date (the fiscal year of ``now`` [unix s]); the sites with the factor rows each method
    used; and, with ``slots_day`` (YYYY-MM-DD, JST), every slot of every site that day."""
    t = Table(title=Text(f"{rep.name} ({rep.account_id}, {rep.role}) — consumer figures / 需要家指標"),
              caption="on-site share = self-consumed / demand; claimed share = C-REV held or retired / demand; "
                      "location-based: grid-area basic factor × grid import; market-based: adjusted factor × "
                      "demand − C-REV claimed")
    for col in ("day (JST)", "demand kWh", "self-consumed kWh", "on-site share", "C-REV held/retired kg",
                "claimed share", "location-based kg", "market-based kg", "avg factor g/kWh"):
        t.add_column(col, justify="right")
    rows = [*rep.by_day().items(), ("total", rep.total()), ("FY to date", rep.fiscal_year_to_date(now))]
    for d, f in rows:
        t.add_row(d, f"{f.demand_wh / 1000:,.1f}", f"{f.self_consumed_wh / 1000:,.1f}", _pct(f.onsite_share_bp),
                  _kg(f.claimed_g), _pct(f.renewable_share_bp), _kg(f.location_based_g), _kg(f.market_based_g),
                  str(f.average_factor_g_per_kwh))
    console.print(t)
    if rep.sites:
        s = Table(title="sites and factors / 拠点と排出係数")
        for col in ("site", "grid area", "capacity kW", "slots", "location-based factor", "market-based factor"):
            s.add_column(col)
        for site in rep.sites:
            s.add_row(Text(site.device_id), Text(site.grid_area), f"{site.rated_capacity_w / 1000:,.1f}",
                      str(len(site.slots)), Text(_factors(site.location_factors)),
                      Text(_factors(site.market_factors)))
        console.print(s)
        _print_finality(console, rep, now)
    if rep.bought_g:
        _line(console, f"C-REV bought from other sites and still held or retired: {_kg(rep.bought_g)} kg")
    if slots_day:
        st = Table(title=Text(f"slots of {slots_day} (JST)"))
        for col in ("site", "slot", "G Wh", "I Wh", "E Wh", "demand Wh", "self Wh", "claimed g", "share"):
            st.add_column(col, justify="right")
        n = 0
        for site in rep.sites:
            for slot, f in sorted(site.slots.items()):
                if jst_date(slot * SLOT_SECONDS) == slots_day:
                    n += 1
                    st.add_row(Text(site.device_id), jst(slot * SLOT_SECONDS).strftime("%H:%M"),
                               f"{f.generation_wh:,}", f"{f.import_wh:,}", f"{f.export_wh:,}", f"{f.demand_wh:,}",
                               f"{f.self_consumed_wh:,}", f"{f.claimed_g:,}", _pct(f.renewable_share_bp))
        if n:
            console.print(st)
        else:
            _line(console, f"no slots of {slots_day} in this report")


def _print_finality(console: Console, rep: ParticipantReport, now: int) -> None:
    """Per site: C-REV final and provisional, the slots the smart meter corrected, and the device's
    alerts (calibration drift, reconciliation debt)."""
    fy0, _ = fiscal_year_bounds(fiscal_year(now))
    t = Table(title="C-REV provisional and final / 暫定・確定", caption="final: reconciled with the utility smart "
              "meter (or past the finality window); C-REV as each slot stands after reconciliation")
    for col in ("site", "final kg", "provisional kg", "FY final kg", "FY provisional kg", "corrected slots",
                "late slots", "debt g"):
        t.add_column(col, justify="right")
    for site in rep.sites:
        corrected = site.slots_with("corrected")
        shown = ", ".join(jst(x * SLOT_SECONDS).strftime("%m-%d %H:%M") for x in corrected[:3])
        t.add_row(Text(site.device_id), _kg(site.crev_g(True)), _kg(site.crev_g(False)),
                  _kg(site.crev_g(True, fy0, now + 1)), _kg(site.crev_g(False, fy0, now + 1)),
                  f"{len(corrected)}" + (f" ({shown}{', …' if len(corrected) > 3 else ''})" if corrected else ""),
                  str(len(site.slots_with("late"))), f"{site.debt_g:,}")
    console.print(t)
    for site in rep.sites:
        for alert in site.alerts:
            _line(console, ("⚠ ", "yellow"), site.device_id, ": ", alert)


def _factors(used: dict[str, int]) -> str:
    return ", ".join(f"{ref} = {g} g/kWh" for ref, g in sorted(used.items())) or "-"


# --- verify ---------------------------------------------------------------------------------


def verify_dict(rep: VerifyReport, seconds: float) -> dict[str, Any]:
    """``crev verify --json``: every field of the report, and the seconds it took."""
    out = {k: v for k, v in dataclasses.asdict(rep).items() if k != "seen"}
    out["seconds"] = round(seconds, 3)
    return out


def print_verify(console: Console, rep: VerifyReport, seconds: float) -> None:
    """The auditor's verdict in one line; readings accepted and refused are counted apart. A resumed
    replay says first what it resumed from and how that was checked, or why it replayed in full."""
    if rep.resumed_from:
        _line(console, f"resumed from block {rep.resumed_from:,} ({rep.resumed_with}: {rep.resume_check}); "
              f"replayed {rep.blocks_replayed:,} block{'s' if rep.blocks_replayed != 1 else ''} after it")
    elif rep.full_replay_reason:
        _line(console, ("full replay from genesis", "yellow"), f": cannot resume ({rep.full_replay_reason})")
    if not rep.ok:
        where = f" at block {rep.first_bad_height}" if rep.first_bad_height is not None else ""
        _line(console, ("FAILED", "bold red"), f"{where}: ", rep.error)
        return
    rate = rep.readings / seconds if seconds else 0
    dup = f", {rep.readings_duplicate:,} duplicate" if rep.readings_duplicate else ""
    blocks = (f"{rep.blocks:,} blocks; the {rep.blocks_replayed:,} replayed hold" if rep.resumed_from
              else f"{rep.blocks:,} blocks,")
    _line(console, ("OK", "bold green"), f" {blocks} {rep.txs:,} transactions, "
          f"{rep.readings:,} readings verified and accepted, {rep.readings_refused:,} refused{dup} in "
          f"{seconds:.1f} s ({rate:,.0f} readings/s); state root {rep.state_root}")
    if rep.meter_items or rep.slots_reconciled or rep.control_records:
        _line(console, *verify_meter_parts(rep))
    if rep.record:
        _line(console, f"audit record written: {rep.record} (block {rep.blocks:,})")


def verify_meter_parts(rep: VerifyReport) -> list[Part]:
    """The smart meter's part of a replay: items, slots reconciled by status, what reconciliation
    changed, drift alerts and control records (スマートメーター照合)."""
    by = rep.slots_reconciled
    statuses = ", ".join(f"{by[s]:,} {s}" for s in ("final", "corrected", "late") if by.get(s))
    items = f"{rep.meter_items:,} item{'s' if rep.meter_items != 1 else ''}"
    parts: list[Part] = [f"smart meter / スマートメーター: {items}, {sum(by.values()):,} slots reconciled "
                         f"({statuses or 'none'})"]
    changed = [f"{g:,} g {what}" for g, what in ((rep.reconcile_cancelled_g, "cancelled"),
                                                 (rep.reconcile_debt_g, "recorded as debt"),
                                                 (rep.reconcile_topup_g, "topped up")) if g]
    if changed:
        parts.append(" · " + ", ".join(changed))
    if rep.drift_alerts:
        parts += [" · ", (f"{rep.drift_alerts:,} calibration drift alert{'s' if rep.drift_alerts != 1 else ''}",
                          "yellow")]
    parts.append(f" · {rep.control_records:,} control record{'s' if rep.control_records != 1 else ''}")
    return parts
