"""Certificates (lots) and retirements as flat rows for CSV and JSON export, and the CSV writing
that every CSV of participant-written text goes through (``rows_csv``, ``csv_cell``).

**Formula injection.** Names, beneficiaries, notes and bank references are written by
participants. A spreadsheet (Excel, LibreOffice Calc, Google Sheets) opening a CSV runs any cell
that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and also one that starts with a tab,
CR or LF before such a character: ``=HYPERLINK("http://x","y")`` becomes a live link that can
carry other cells away, ``+cmd|' /C calc'!A0`` a DDE command. As OWASP recommends ("CSV
Injection"), ``csv_cell`` prefixes such a text cell with a single quote, which spreadsheets take
as "this is text" and do not show. The full-width forms (＝ ＋ － ＠) get the prefix too, as a
precaution for Japanese input methods (not in OWASP's list). Only ``str`` cells are touched:
numbers stay numbers, so a withdrawal's net of -1200 JPY or a western longitude is still a
negative number in the spreadsheet. A bank reference "-1200" is text and gets the quote. Read
back with a CSV parser (not a spreadsheet), a prefixed cell starts with ``'``: strip one leading
quote from text columns if you need the original text (JSON exports carry it unchanged).

**Finality.** A lot row's ``finality`` is its slot's at the head block's time (``provisional``,
``final``, ``corrected`` or ``late``; ledger/reconcile.py). A retirement row says how much of what
it retired was final *when it was retired* (``final_g_at_retirement``, ``provisional_g_at_retirement``
and ``finality_at_retirement``: final, provisional or mixed; ``finality_at``): a slot counts as
reconciled then only if the block that reconciled it came before the retirement's (one reconciled
in the retirement's own block is counted as not yet, the cautious side), else as final once the
retirement's block time had reached slot end + ``final_after_s``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from crev.core.units import SLOT_SECONDS, jst
from crev.ledger.holdings import available
from crev.ledger.reconcile import lot_finality
from crev.ledger.records import CANCELLED, ESCROWED, FINAL, PROVISIONAL, RETIRED, TRADABLE, Lot, Retirement
from crev.ledger.state import State


def finality_at(state: State, lot: Lot, height: int, time: int) -> str:
    """The finality ``lot`` had in block ``height`` at block time ``time`` [unix s], from its slot
    tally as it stands now: its reconciled status if the block that reconciled it came before
    ``height``, else final once ``time`` ≥ slot end + ``final_after_s``, else provisional."""
    tally = state.tallies.get((lot.device_id, lot.slot_id))
    if tally is not None and tally.status != PROVISIONAL and 0 < tally.reconciled_height < height:
        return tally.status
    end = lot.slot_id * SLOT_SECONDS + SLOT_SECONDS
    return FINAL if time >= end + state.params.final_after_s else PROVISIONAL


def summary(final_g: int, provisional_g: int) -> str:
    """final, provisional or mixed (of what has some grams; "" for none)."""
    if final_g and provisional_g:
        return "mixed"
    return FINAL if final_g else PROVISIONAL if provisional_g else ""


def retirement_finality(state: State, r: Retirement) -> tuple[int, int]:
    """(final g, provisional g) of what ``r`` retired, as it was when it was retired."""
    final = provisional = 0
    for lot_id, a, b in r.ranges:
        if finality_at(state, state.lots[lot_id], r.height, r.block_time) == PROVISIONAL:
            provisional += b - a
        else:
            final += b - a
    return final, provisional


def lot_rows(state: State) -> list[dict[str, Any]]:
    out = []
    now = state.last_time
    state.tallies.values()  # a lazily read state fetches every tally in one pass, not one per lot
    for lot in sorted(state.lots.values(), key=lambda x: x.first_unit):
        out.append({
            "lot_id": lot.lot_id, "first_unit": lot.first_unit, "last_unit": lot.end_unit - 1,
            "quantity_g": lot.quantity_g, "device_id": lot.device_id, "issued_to": lot.issued_to,
            "interval_start_jst": jst(lot.interval_start).isoformat(),
            "interval_end_jst": jst(lot.interval_end).isoformat(), "slot_id": lot.slot_id,
            "self_consumed_wh": lot.self_consumed_wh, "factor_g_per_kwh": lot.factor_g_per_kwh,
            "factor": lot.factor_ref, "factor_source": state.factor_source(lot.factor_ref),
            "technology": lot.technology,
            "latitude": lot.latitude_e6 / 1e6, "longitude": lot.longitude_e6 / 1e6,
            "grid_area": lot.grid_area, "fit": lot.fit, "height": lot.height,
            "issued_at_jst": jst(lot.block_time).isoformat(), "reading_hash": lot.reading_hash.hex(),
            "origin": lot.origin, "reference": lot.reference,
            "tradable_g": available(lot, None, TRADABLE), "escrowed_g": available(lot, None, ESCROWED),
            "retired_g": available(lot, None, RETIRED), "cancelled_g": available(lot, None, CANCELLED),
            "finality": lot_finality(state, lot, now),
        })
    return out


def retirement_rows(state: State) -> list[dict[str, Any]]:
    out = []
    for r in sorted(state.retirements.values(), key=lambda x: x.retirement_id):
        out.append({
            "retirement_id": r.retirement_id, "account": r.account, "beneficiary": r.beneficiary,
            "purpose": r.purpose, "period_start_jst": jst(r.period_start).date().isoformat(),
            "period_last_day_jst": jst(r.period_end - 1).date().isoformat(), "jurisdiction": r.jurisdiction,
            "note": r.note, "quantity_g": r.quantity_g, "height": r.height,
            "retired_at_jst": jst(r.block_time).isoformat(), "tx_hash": r.tx_hash.hex(),
            "unit_ranges": ";".join(f"{lot}:{a}-{b - 1}" for lot, a, b in r.ranges),
        })
        final, provisional = retirement_finality(state, r)
        out[-1].update(final_g_at_retirement=final, provisional_g_at_retirement=provisional,
                       finality_at_retirement=summary(final, provisional))
    return out


#: first characters that make a spreadsheet read a cell as a formula (OWASP: = + - @ tab CR LF),
#: and their full-width forms
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell no spreadsheet runs: text starting with a formula character gets a
    leading ``'``; numbers (and anything not ``str``) are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in values]


def write_csv_rows(out: io.StringIO, rows: Iterable[Sequence[Any]], lineterminator: str = "\r\n") -> None:
    """Rows (lists of cells) to ``out`` as CSV, every text cell through ``csv_cell``."""
    w = csv.writer(out, lineterminator=lineterminator)
    for row in rows:
        w.writerow(csv_row(row))


def rows_csv(rows: list[dict[str, Any]]) -> str:
    """Flat rows (``lot_rows``, ``retirement_rows``) as CSV with a header line ("" for no rows),
    CRLF line ends as ``csv.DictWriter`` writes them (what ``crev export`` wrote so far). Column
    names are ours; every value goes through ``csv_cell``."""
    if not rows:
        return ""
    out = io.StringIO()
    cols = list(rows[0])
    write_csv_rows(out, [cols, *([r[c] for c in cols] for r in rows)])
    return out.getvalue()
