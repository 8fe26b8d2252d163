"""Statements: per participant and JST month, what it traded, paid and retired; and one statement
per retirement listing its unit ranges and how anyone can verify them. As CSV and as printable PDF
(Japanese and English).

Built from the events in the committed blocks (never from the state machine's private tables), so
a statement can be checked against the chain: every line names its block height and transaction.
The JPY balance is available + reserved (what open bids hold is still the participant's money).

**Finality.** A line that moved C-REV (bought, sold, retired) has a ``finality`` column: final,
provisional or mixed, as those units' slots stood in that line's block (``export.finality_at``:
reconciled with the smart meter before it, or past the finality window). A retirement statement
says the same for each range it retired (``finality_at_retirement``) and in total, and each
range's finality now (``finality_now``: what a later reconciliation made of it).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from crev.core.encoding import decode, encode
from crev.core.units import JST, jst
from crev.errors import NotFoundError
from crev.ledger.events import Event, JpyDeposited, JpyWithdrawn, Retired, Traded, event_from_value
from crev.ledger.reconcile import lot_finality
from crev.ledger.records import PROVISIONAL
from crev.ledger.state import State
from crev.node.store import Store
from crev.reports.export import finality_at, retirement_finality, summary, write_csv_rows

#: transaction kinds whose events can move JPY or C-REV between participants
MONEY_KINDS = ("deposit_jpy", "withdraw_jpy", "place_order", "market_tick", "submit_readings",
               "set_standing_bid", "retire", "cancel_order", "list_market")


@dataclass(frozen=True)
class Line:
    """One movement on a participant's statement."""

    time: int
    height: int
    tx_hash: str
    kind: str  # bought, sold, fees, deposit, withdrawal, retired
    ref: str  # trade id, retirement id or bank reference
    market_id: str
    counterparty: str
    quantity_g: int
    price: int  # JPY per t-CO2e
    value_jpy: int
    fee_jpy: int
    net_jpy: int  # the change of the participant's JPY balance
    ranges: tuple[tuple[str, int, int], ...] = ()  # (lot_id, start unit, end unit) the line moved
    finality: str = ""  # final, provisional or mixed: those units' slots in this line's block

    @property
    def when(self) -> str:
        return jst(self.time).strftime("%Y-%m-%d %H:%M")


@dataclass
class MonthlyStatement:
    account_id: str
    name: str
    month: int  # YYYYMM (JST)
    opening_jpy: int
    lines: list[Line] = field(default_factory=list)

    def total(self, kind: str, attr: str) -> int:
        return sum(getattr(x, attr) for x in self.lines if x.kind == kind)

    @property
    def bought_g(self) -> int:
        return self.total("bought", "quantity_g")

    @property
    def sold_g(self) -> int:
        return self.total("sold", "quantity_g")

    @property
    def retired_g(self) -> int:
        return self.total("retired", "quantity_g")

    @property
    def fees_paid_jpy(self) -> int:
        return sum(x.fee_jpy for x in self.lines if x.kind in ("bought", "sold"))

    @property
    def trading_net_jpy(self) -> int:
        return sum(x.net_jpy for x in self.lines if x.kind in ("bought", "sold", "fees"))

    @property
    def closing_jpy(self) -> int:
        return self.opening_jpy + sum(x.net_jpy for x in self.lines)


def month_bounds(month: int) -> tuple[int, int]:
    """[start, end) unix s of the JST month YYYYMM."""
    y, m = divmod(month, 100)
    if not (1 <= m <= 12 and 1970 <= y <= 9999):
        raise ValueError(f"month {month} is not YYYYMM")
    start = datetime(y, m, 1, tzinfo=JST)
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=JST)
    return int(start.timestamp()), int(end.timestamp())


def lines_for(account: str, operator: str, time: int, height: int, tx_hash: str,
              events: Iterable[Event]) -> Iterator[Line]:
    """The statement lines one transaction's events make for ``account``."""
    retired: dict[str, list[tuple[str, int, int]]] = {}
    for e in events:
        if isinstance(e, Traded):
            if e.buyer == account:
                yield Line(time, height, tx_hash, "bought", e.trade_id, e.market_id, e.seller, e.quantity_g,
                           e.price, e.value_jpy, e.fee_buyer_jpy, -(e.value_jpy + e.fee_buyer_jpy), e.ranges)
            if e.seller == account:
                yield Line(time, height, tx_hash, "sold", e.trade_id, e.market_id, e.buyer, e.quantity_g,
                           e.price, e.value_jpy, e.fee_seller_jpy, e.value_jpy - e.fee_seller_jpy, e.ranges)
            if account == operator and e.fee_buyer_jpy + e.fee_seller_jpy:
                yield Line(time, height, tx_hash, "fees", e.trade_id, e.market_id, "", 0, 0, 0,
                           0, e.fee_buyer_jpy + e.fee_seller_jpy)
        elif isinstance(e, JpyDeposited) and e.account == account:
            yield Line(time, height, tx_hash, "deposit", e.reference, "", "", 0, 0, e.amount_jpy, 0,
                       e.amount_jpy)
        elif isinstance(e, JpyWithdrawn) and e.account == account:
            yield Line(time, height, tx_hash, "withdrawal", e.reference, "", "", 0, 0, e.amount_jpy, 0,
                       -e.amount_jpy)
        elif isinstance(e, Retired) and e.account == account:
            retired.setdefault(e.retirement_id, []).append((e.lot_id, e.start_unit, e.end_unit))
    for rid, rs in retired.items():
        yield Line(time, height, tx_hash, "retired", rid, "", "", sum(b - a for _, a, b in rs), 0, 0, 0, 0,
                   tuple(rs))


def line_finality(state: State, line: Line) -> str:
    """final, provisional or mixed: the slots of the units ``line`` moved, in its block."""
    final = provisional = 0
    for lot_id, a, b in line.ranges:
        lot = state.lots.get(lot_id)
        if lot is None:
            continue
        if finality_at(state, lot, line.height, line.time) == PROVISIONAL:
            provisional += b - a
        else:
            final += b - a
    return summary(final, provisional)


def committed_events(store: Store, end_time: int | None = None,
                     only: tuple[str, ...] = ()) -> Iterator[tuple[int, int, str, list[Event]]]:
    """(block time, height, tx hash, events) of every committed transaction that can move money or
    C-REV between participants, in chain order, up to ``end_time`` (exclusive). With ``only``
    (event types), transactions whose stored result cannot hold one of them are skipped without
    being decoded (a byte search for the type's CBOR text; a false match only costs a decode)."""
    needles = [encode(t) for t in only]
    q = ("SELECT b.time, t.height, t.hash, t.result FROM txs t JOIN blocks b ON b.height = t.height "
         f"WHERE t.ok = 1 AND t.kind IN ({','.join('?' * len(MONEY_KINDS))})")
    args: list[Any] = list(MONEY_KINDS)
    if end_time is not None:
        q += " AND b.time < ?"
        args.append(end_time)
    for time, height, tx_hash, result in store.db.execute(q + " ORDER BY t.height, t.idx", args):
        if needles and not any(n in result for n in needles):
            continue
        events = [event_from_value(v) for v in decode(bytes(result), "result")[4]]
        yield int(time), int(height), bytes(tx_hash).hex(), events


def monthly_statement(state: State, store: Store, account: str, month: int) -> MonthlyStatement:
    acct = state.accounts.get(account)
    if acct is None:
        raise NotFoundError("participant", f"no participant {account!r}")
    start, end = month_bounds(month)
    stmt = MonthlyStatement(acct.account_id, acct.name, month, 0)
    for time, height, tx_hash, events in committed_events(store, end):
        for line in lines_for(account, state.operator_id, time, height, tx_hash, events):
            if time < start:
                stmt.opening_jpy += line.net_jpy
            else:
                stmt.lines.append(replace(line, finality=line_finality(state, line)) if line.ranges else line)
    return stmt


CSV_FIELDS = ("time_jst", "kind", "ref", "market_id", "counterparty", "quantity_g", "price_jpy_per_t",
              "value_jpy", "fee_jpy", "net_jpy", "height", "tx_hash", "finality")


def statement_csv(stmt: MonthlyStatement) -> str:
    """The statement as CSV: a summary line, the column names, one line per movement. The
    participant's name and each line's reference (a bank reference is free text) are text cells
    that pass through ``csv_cell`` (no cell opens as a formula); the amounts are numbers and stay
    numbers, negative ones included (``net_jpy`` of a purchase or withdrawal)."""
    out = io.StringIO()
    rows: list[list[Any]] = [
        ["# statement", stmt.account_id, stmt.name, f"{stmt.month // 100}-{stmt.month % 100:02d}",
         f"opening_jpy={stmt.opening_jpy}", f"closing_jpy={stmt.closing_jpy}",
         f"bought_g={stmt.bought_g}", f"sold_g={stmt.sold_g}", f"retired_g={stmt.retired_g}",
         f"fees_jpy={stmt.fees_paid_jpy}"],
        list(CSV_FIELDS)]
    for x in stmt.lines:
        rows.append([x.when, x.kind, x.ref, x.market_id, x.counterparty, x.quantity_g, x.price, x.value_jpy,
                     x.fee_jpy, x.net_jpy, x.height, x.tx_hash, x.finality])
    write_csv_rows(out, rows, lineterminator="\n")
    return out.getvalue()


# --- retirement statements ----------------------------------------------------------------------


def retirement_statement(state: State, rid: str) -> dict[str, Any]:
    r = state.retirements.get(rid)
    if r is None:
        raise NotFoundError("retirement_id", f"no retirement {rid!r}")
    lots = []
    for lot_id, a, b in r.ranges:
        lot = state.lots[lot_id]
        lots.append({"lot_id": lot_id, "start_unit": a, "end_unit": b, "quantity_g": b - a,
                     "device_id": lot.device_id, "grid_area": lot.grid_area, "fit": lot.fit,
                     "slot_start_jst": jst(lot.interval_start).strftime("%Y-%m-%d %H:%M"),
                     "factor_g_per_kwh": lot.factor_g_per_kwh,
                     "finality_at_retirement": finality_at(state, lot, r.height, r.block_time),
                     "finality_now": lot_finality(state, lot, state.last_time)})
    final, provisional = retirement_finality(state, r)
    return {
        "retirement_id": r.retirement_id, "account": r.account, "beneficiary": r.beneficiary,
        "purpose": r.purpose, "jurisdiction": r.jurisdiction, "note": r.note,
        "period_start_jst": jst(r.period_start).strftime("%Y-%m-%d"),
        "period_last_day_jst": jst(r.period_end - 1).strftime("%Y-%m-%d"),
        "quantity_g": r.quantity_g, "height": r.height,
        "time_jst": jst(r.block_time).strftime("%Y-%m-%d %H:%M"), "tx_hash": r.tx_hash.hex(),
        "ranges": lots,
        "final_g_at_retirement": final, "provisional_g_at_retirement": provisional,
        "finality_at_retirement": summary(final, provisional),
        "verify": [f"crev trace {r.retirement_id}", "crev verify"],
    }


# --- PDF ------------------------------------------------------------------------------------------


def _pdf_doc(path: Path, title: str, subject: str = "") -> Any:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import SimpleDocTemplate

    if "HeiseiKakuGo-W5" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    return SimpleDocTemplate(str(path), pagesize=A4, title=title, author="crev", subject=subject,
                             leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm)


def _styles() -> Any:
    from reportlab.lib.styles import ParagraphStyle

    return (ParagraphStyle("h", fontName="HeiseiKakuGo-W5", fontSize=14, leading=18, spaceAfter=6),
            ParagraphStyle("p", fontName="HeiseiKakuGo-W5", fontSize=9, leading=12))


def _table(rows: list[list[Any]], widths: list[float] | None = None) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    t = Table([[str(c) for c in r] for r in rows], colWidths=widths, repeatRows=1)
    t.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), "HeiseiKakuGo-W5", 7.5),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dfe9e1")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("ALIGN", (4, 1), (-1, -1), "RIGHT"),
    ]))
    return t


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _finality_text(final_g: int, provisional_g: int) -> str:
    """What of a retirement was final when retired, in words (確定: final, 暫定: provisional)."""
    if not provisional_g:
        return f"all final / 全量確定 ({final_g:,} g)"
    return (f"{final_g:,} g final / 確定, {provisional_g:,} g provisional / 暫定 (not yet reconciled with the "
            f"smart meter / スマートメーター未照合)")


def statement_pdf(stmt: MonthlyStatement, path: Path) -> None:
    from reportlab.platypus import Paragraph, Spacer

    h, p = _styles()
    ym = f"{stmt.month // 100}-{stmt.month % 100:02d}"
    doc = _pdf_doc(path, f"crev statement {stmt.account_id} {ym}")
    story: list[Any] = [
        Paragraph(f"取引明細書 / Statement — {ym}", h),
        Paragraph(f"{_esc(stmt.name)} ({_esc(stmt.account_id)})", p),
        Spacer(1, 6),
        _table([["期首残高 Opening JPY", "購入 Bought g", "売却 Sold g", "償却 Retired g", "手数料 Fees JPY",
                 "取引収支 Trading net JPY", "期末残高 Closing JPY"],
                [f"{stmt.opening_jpy:,}", f"{stmt.bought_g:,}", f"{stmt.sold_g:,}", f"{stmt.retired_g:,}",
                 f"{stmt.fees_paid_jpy:,}", f"{stmt.trading_net_jpy:,}", f"{stmt.closing_jpy:,}"]]),
        Spacer(1, 10),
    ]
    rows: list[list[Any]] = [["日時 JST", "種別 Kind", "参照 Ref", "市場 Market", "数量 g", "単価 JPY/t",
                              "金額 JPY", "手数料 JPY", "収支 Net JPY", "ブロック Block", "確定 Finality"]]
    for x in stmt.lines:
        rows.append([x.when, x.kind, x.ref, x.market_id, f"{x.quantity_g:,}", f"{x.price:,}" if x.price else "",
                     f"{x.value_jpy:,}", f"{x.fee_jpy:,}", f"{x.net_jpy:,}", x.height, x.finality])
    if len(rows) == 1:
        rows.append(["—", "no movements this month / 当月の取引なし", "", "", "", "", "", "", "", "", ""])
    story.append(_table(rows))
    story += [Spacer(1, 10), Paragraph(
        "Every line names the block that records it; <font face='Courier'>crev verify</font> replays "
        "the chain and checks every signature and root. 各行は記録したブロックを示します。", p)]
    doc.build(story)


def verification_url(base_url: str, retirement_id: str) -> str:
    """A retirement's public verification page on the node at ``base_url`` (the dashboard's
    explorer, which checks its proofs in the browser); what certificates' QR codes point to."""
    return f"{base_url.rstrip('/')}/#/trace/{retirement_id}"


def qr_drawing(text: str, size_pt: float = 90.0) -> Any:
    """A QR code of ``text`` as a reportlab drawing ``size_pt`` points wide (for PDF or SVG)."""
    from reportlab.graphics.barcode.qr import QrCodeWidget
    from reportlab.graphics.shapes import Drawing

    w = QrCodeWidget(text)
    x0, y0, x1, y1 = w.getBounds()
    d = Drawing(size_pt, size_pt, transform=[size_pt / (x1 - x0), 0, 0, size_pt / (y1 - y0), 0, 0])
    d.add(w)
    return d


def retirement_pdf(cert: dict[str, Any], path: Path, verify_url: str | None = None) -> None:
    """The retirement certificate; with ``verify_url``, a QR code to its public verification page."""
    from reportlab.platypus import Paragraph, Spacer

    h, p = _styles()
    doc = _pdf_doc(path, f"crev retirement {cert['retirement_id']}",
                   f"verify at {verify_url}" if verify_url else "")
    story: list[Any] = [
        Paragraph(f"償却証明書 / Retirement statement — {cert['retirement_id']}", h),
        _table([["項目 Field", "内容 Value"],
                ["受益者 Beneficiary", cert["beneficiary"]], ["償却者 Retired by", cert["account"]],
                ["用途 Purpose", cert["purpose"]], ["法域 Jurisdiction", cert["jurisdiction"]],
                ["報告期間 Period", f"{cert['period_start_jst']} – {cert['period_last_day_jst']}"],
                ["数量 Quantity", f"{cert['quantity_g']:,} g-CO2e"],
                ["記録 Recorded", f"block {cert['height']}, {cert['time_jst']} JST"],
                ["取引 Transaction", cert["tx_hash"]], ["備考 Note", cert["note"]],
                ["償却時の確定状況 Finality when retired",
                 _finality_text(cert.get("final_g_at_retirement", 0), cert.get("provisional_g_at_retirement", 0))]],
               [45 * 2.83, 130 * 2.83]),
        Spacer(1, 10),
    ]
    rows: list[list[Any]] = [["ロット Lot", "単位 Units", "g", "機器 Device", "系統 Grid", "FIT", "コマ Slot (JST)",
                              "係数 g/kWh", "償却時 At retirement", "現在 Now"]]
    for r in cert["ranges"]:
        rows.append([r["lot_id"], f"{r['start_unit']}–{r['end_unit'] - 1}", f"{r['quantity_g']:,}",
                     r["device_id"], r["grid_area"], "yes" if r["fit"] else "no", r["slot_start_jst"],
                     r["factor_g_per_kwh"], r.get("finality_at_retirement", ""), r.get("finality_now", "")])
    story += [_table(rows), Spacer(1, 10), Paragraph(
        "How to verify / 検証方法: <font face='Courier'>" + " ; ".join(cert["verify"]) + "</font> — "
        "the trace shows each unit range from the DGC's signed reading to this retirement, with Merkle "
        "proofs against the block headers.", p)]
    if verify_url:
        story += [Spacer(1, 8), qr_drawing(verify_url),
                  Paragraph(f"公開検証ページ / Public verification page: {_esc(verify_url)}", p)]
    doc.build(story)
