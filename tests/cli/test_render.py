"""The terminal rendering of trace, report and verify (node/render.py), printed to a string.

Text participants write is printed exactly as written, never read as Rich markup: a note
``[bold]x[/`` would otherwise lose its ``[bold]`` and, next to any other tag, crash the command.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from crev.audit.replay import VerifyReport
from crev.audit.trace import trace
from crev.cli.render import print_report, print_trace, print_verify
from crev.core.figures import slot_figures
from crev.core.units import SLOT_SECONDS, fiscal_year_bounds
from crev.ledger.messages.correct import Correct
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from crev.node.node import LedgerView
from crev.reports.report import ParticipantReport, SiteReport, participant_report
from tests.audit.test_trace import L0, L1, build_ledger
from tests.node import nodekit as k

STEP_RE = re.compile(r"^\s+(signed_reading|issued|transferred|traded|retired|cancelled|current_state)\s", re.M)
ODD_NAME = "[/]Odd[bold"
ODD_BENEFICIARY = "[bold]x[/"
ODD_NOTE = "[/bold] note [red]"
ODD_REASON = "[/]meter fault"
ODD_REFERENCE = "[link=http://x]T-1"


def console() -> Console:
    return Console(file=io.StringIO(), width=120)


def text(c: Console) -> str:
    f = c.file
    assert isinstance(f, io.StringIO)
    return f.getvalue()


def flat(s: str) -> str:
    return " ".join(s.split())


def traced(d: Path, ident: str) -> dict[str, Any]:
    view = LedgerView(d)
    try:
        return trace(view.store, view.state, ident)
    finally:
        view.close()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ledger(tmp_path_factory.mktemp("render") / "ledger")


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger whose participant text is all markup-like: a name, a beneficiary, a note, a
    cancellation reason and a top-up reference."""
    d = k.init_dir(tmp_path_factory.mktemp("render-odd") / "ledger")
    node = k.open_node(d)
    try:
        s = k.register_fleet(node, 1)
        assert node.submit_wait(s.tx(k.OPERATOR, RegisterParticipant("odd-co", ODD_NAME, "buyer",
                                                                     k.key("odd-co").public_key))).ok
        assert node.submit_wait(k.batch(1, 0)).ok
        assert node.submit_wait(s.tx(k.OWNER, Transfer("odd-co", ((L0, 100),), "[i]memo"))).ok
        p0, p1 = fiscal_year_bounds(2026)
        assert node.submit_wait(s.tx("odd-co", Retire(((L0, 40),), ODD_BENEFICIARY, "re100", p0, p1, "JP", ODD_NOTE),
                                     signing_key=k.key("odd-co"))).ok
        assert node.submit_wait(s.tx(k.OPERATOR, Correct("cancel", L0, 5, 0, ODD_REASON, "TICKET-7", k.OWNER))).ok
        assert node.submit_wait(s.tx(k.OPERATOR, Correct("topup", L0, 4, 10, "reconciled", ODD_REFERENCE, ""))).ok
    finally:
        node.close()
    return d


# --- trace ---------------------------------------------------------------------------------------


def test_a_retirement_prints_every_lot_with_its_steps_and_proofs(ledger: Path) -> None:
    out = traced(ledger, "ret-00000002")
    c = console()
    print_trace(c, out)
    raw = text(c)
    s = flat(raw)
    assert "ret-00000002 210 g retired by buyer-co for Buyer Co [HQ]" in s
    assert "purpose re100 · period 2026-04-01 – 2027-03-31 (inclusive, JST) · jurisdiction JP" in s
    assert "note: FY2026 claim [bold]x[/" in s
    assert f"from 2 lots: {L0} units 1–60 (60 g); {L1} units 316–465 (150 g)" in s
    assert f"lot {L0} device dgc-0 · reading · units traced 1–60 (60 g)" in s
    assert f"lot {L1} device dgc-1 · reading · units traced 316–465 (150 g)" in s
    assert STEP_RE.findall(raw) == ["signed_reading", "issued", "transferred", "retired", "current_state"] * 2
    # every proof is printed, each checked
    n_tx = 1 + sum(1 for lot in out["lots"] for st in lot["steps"] if "proof" in st)
    n_state = 1 + sum(1 for lot in out["lots"] for st in lot["steps"] if "state_proof" in st)
    assert s.count("tx proof ✓") == n_tx == 9  # the retirement + 4 steps of each lot
    assert s.count("state proof ✓") == n_state == 5  # the retirement, each lot's reading and current state
    assert "✗" not in s
    sp = out["retirement"]["state_proof"]
    assert (f"state proof ✓ key t/ret-00000002 = value {sp['value_hash'][:12]}… · bucket {sp['bucket']} "
            f"(1 entry) · 16 siblings → state root {sp['state_root'][:12]}… = header of block {out['height']}") in s
    p = out["retirement"]["proof"]
    assert (f"tx proof ✓ leaf {p['leaf'][:12]}… #{p['index']} of {p['size']} · path (none) → tx root "
            f"{p['tx_root'][:12]}… in block {p['height']}") in s  # one transaction per block here
    assert "units 316–465: buyer-co retired ret-00000002" in s


def test_max_lots_prints_the_first_lots_in_full_and_counts_the_rest(ledger: Path) -> None:
    c = console()
    print_trace(c, traced(ledger, "ret-00000002"), max_lots=1)
    raw = text(c)
    s = flat(raw)
    assert f"from 2 lots: {L0} units 1–60 (60 g); {L1} units 316–465 (150 g)" in s
    assert f"lot {L0} " in s and f"lot {L1} " not in s
    assert STEP_RE.findall(raw) == ["signed_reading", "issued", "transferred", "retired", "current_state"]
    assert "… 1 more lot (150 g) not shown in full; --json has every one" in s


def test_a_failed_proof_shows_a_cross(ledger: Path) -> None:
    out = traced(ledger, L0)
    out["lots"][0]["steps"][-1]["state_proof"]["verified"] = False
    c = console()
    print_trace(c, out)
    assert flat(text(c)).count("state proof ✗") == 1


def test_markup_in_participant_text_is_printed_as_written(odd: Path) -> None:
    c = console()
    print_trace(c, traced(odd, "ret-00000001"))
    s = flat(text(c))
    assert f"retired by odd-co for {ODD_BENEFICIARY}" in s
    assert f"note: {ODD_NOTE}" in s
    c = console()
    print_trace(c, traced(odd, L0))  # the whole lot: transfer, retirement, cancellation
    s = flat(text(c))
    assert "cancelled block" in s and f"from sun-co · {ODD_REASON} [TICKET-7]" in s
    c = console()
    print_trace(c, traced(odd, f"{L0}+1"))  # the top-up: the original lot's reading, then its issuance
    raw = text(c)
    s = flat(raw)
    assert STEP_RE.findall(raw) == ["signed_reading", "issued", "current_state"]
    assert "issued the original lot" in s and "· topup" in s
    assert f"reference: {L0}: reconciled [{ODD_REFERENCE}]" in s


def test_markup_in_a_report_name_is_printed_as_written(odd: Path) -> None:
    view = LedgerView(odd)
    try:
        rep = participant_report(view.state, view.store, "odd-co")
        now = view.state.last_time
    finally:
        view.close()
    c = console()
    print_report(c, rep, now, "[/x]")
    s = flat(text(c))
    assert f"{ODD_NAME} (odd-co, buyer)" in s
    assert "no slots of [/x] in this report" in s
    # bought 100 g: 60 g still held + 40 g retired
    assert "C-REV bought from other sites and still held or retired: 0.10 kg" in s


# --- report --------------------------------------------------------------------------------------


def test_report_prints_days_totals_sites_factors_and_slots() -> None:
    slot = (k.T0 + 9 * 3600) // SLOT_SECONDS
    # G 80,000, I 30,000, E 10,000 Wh; tokyo basic 420, adjusted 450; 31,500 g of C-REV held (70,000 Wh):
    # location ⌈30,000 × 420 / 1000⌉ = 12,600 g; market ⌈100,000 × 450 / 1000⌉ − 31,500 = 13,500 g;
    # on-site 70,000 / 100,000 = 70.0 %, claimed 70.0 %, average ⌈13,500 × 1000 / 100,000⌉ = 135 g/kWh
    f = slot_figures(80_000, 30_000, 10_000, 420, 31_500, 70_000, 450)
    site = SiteReport("dgc-[0]", "tokyo", 100_000, {slot: f}, {"tokyo/2025/basic": 420},
                      {"tokyo/2025/adjusted": 450})
    rep = ParticipantReport("sun-co", "Sun [b]Co", "prosumer", [site], {slot: f}, 0)
    c = console()
    print_report(c, rep, k.T0 + 86400, "2026-06-01")
    s = flat(text(c))
    assert "Sun [b]Co (sun-co, prosumer)" in s
    row = "2026-06-01 │ 100.0 │ 70.0 │ 70.0 % │ 31.50 │ 70.0 % │ 12.60 │ 13.50 │ 135"
    assert row in s
    assert row.replace("2026-06-01", "total") in s and row.replace("2026-06-01", "FY to date") in s
    assert "dgc-[0] │ tokyo │ 100.0 │ 1 │ tokyo/2025/basic = 420 g/kWh │ tokyo/2025/adjusted = 450 g/kWh" in s
    assert "dgc-[0] │ 09:00 │ 80,000 │ 30,000 │ 10,000 │ 100,000 │ 70,000 │ 31,500 │ 70.0 %" in s
    assert "bought" not in s


# --- verify --------------------------------------------------------------------------------------


def test_verify_counts_accepted_and_refused_readings_apart() -> None:
    c = console()
    print_verify(c, VerifyReport(True, 5, 7, 2, "ab" * 32, readings_refused=4, readings_duplicate=1), 2.0)
    assert flat(text(c)) == ("OK 5 blocks, 7 transactions, 2 readings verified and accepted, 4 refused, "
                             f"1 duplicate in 2.0 s (1 readings/s); state root {'ab' * 32}")
    c = console()
    print_verify(c, VerifyReport(False, 2, 3, 0, "", 3, "header.tx_root: [/] differs"), 1.0)
    assert flat(text(c)) == "FAILED at block 3: header.tx_root: [/] differs"
