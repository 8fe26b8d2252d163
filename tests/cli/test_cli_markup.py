"""Text that participants and users write (names, notes, beneficiaries, ids, paths) is printed as
written: the crev command never reads it as Rich markup (a note "[bold]x[/" used to crash it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crev.cli import main
from crev.core.units import fiscal_year_bounds
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from tests.node import nodekit as k

LOT = "dgc-0:20260601T0900"
NAME = "[bold]Odd & Co[/"
BENEFICIARY = "[red]Bene[/red] [link=http://x]"
NOTE = "[/]note[bold"


def run(*args: str) -> Result:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = k.init_dir(tmp_path_factory.mktemp("markup") / "ledger")
    node = k.open_node(d)
    try:
        s = k.register_fleet(node, 1)
        assert node.submit_wait(s.tx(k.OPERATOR, RegisterParticipant("odd-co", NAME, "buyer",
                                                                     k.key("odd-co").public_key))).ok
        assert node.submit_wait(k.batch(1, 0)).ok
        assert node.submit_wait(s.tx(k.OWNER, Transfer("odd-co", ((LOT, 100),), "[i]memo"))).ok
        p0, p1 = fiscal_year_bounds(2026)
        assert node.submit_wait(s.tx("odd-co", Retire(((LOT, 40),), BENEFICIARY, "re100", p0, p1, "JP", NOTE),
                                     signing_key=k.key("odd-co"))).ok
    finally:
        node.close()
    return d


def test_report_prints_a_name_and_a_slots_day_as_written(ledger: Path) -> None:
    out = flat(run("report", str(ledger), "odd-co").output)
    assert f"{NAME} (odd-co, buyer)" in out
    out = flat(run("report", str(ledger), k.OWNER, "--slots", "[/x]").output)
    assert "slots of [/x]" in out


def test_trace_prints_a_beneficiary_and_a_note_as_written(ledger: Path) -> None:
    out = flat(run("trace", str(ledger), "ret-00000001").output)
    assert f"retired by odd-co for {BENEFICIARY}" in out
    assert f"note: {NOTE}" in out


def test_export_and_init_print_paths_and_ids_as_written(ledger: Path, tmp_path: Path) -> None:
    target = tmp_path / "[bold]"
    target.mkdir()
    out = flat(run("export", str(ledger), "lots", "--out", str(target / "x[i].csv")).output)
    assert out.startswith("wrote 1 lots to ") and out.endswith("/[bold]/x[i].csv")
    assert (target / "x[i].csv").read_text().startswith("lot_id,")
    key = tmp_path / "op.key"
    run("keys", "new", str(key))
    out = flat(run("init", str(tmp_path / "l"), "--chain-id", "c[/b]", "--operator-id", "op", "--operator-name",
                   "[u]Op", "--operator-key", str(key), "--genesis-time", "2026-06-01").output)
    assert out.startswith("initialised c[/b] in ")
