"""The market's commands: ``crev jpy``, ``crev market``, ``crev order``, ``crev delegate``,
``crev statement``.

Commands that change the ledger sign a transaction with ``--signer``/``--key`` and send it to a
running node (``--node``); commands that read open the data directory read-only. The signer may be
a delegate (``crev delegate grant``) signing for its owner: give its nonce with ``--nonce`` (``crev
delegate show`` tells it), as the node's API answers accounts' nonces only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from crev.cli import common as base
from crev.ledger.records import ANY, Filter, RetireSpec
from crev.reports.marketdata import book_levels, market_rows

NODE = click.option("--node", "node_url", default=base.DEFAULT_NODE, show_default=True, help="The node's URL.")
_SIGNER = click.option("--signer", required=True, help="Account id (or delegate id) that signs.")
_NONCE = click.option("--nonce", type=click.IntRange(0), default=None, expose_value=False, is_eager=True,
                      callback=lambda ctx, _p, v: ctx.meta.__setitem__("crev.nonce", v),
                      help="The signer's next nonce (default: asked of the node; a delegate's: see "
                           "`crev delegate show`).")


def SIGNER(f: Any) -> Any:  # a decorator, named like the options around it
    return _NONCE(_SIGNER(f))


KEY = click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False), help="Its key file.")
DATA = click.argument("data_dir", type=click.Path(exists=True, file_okay=False))


def _send(node_url: str, signer: str, key: str, msg: Any) -> dict[str, Any]:
    """Sign ``msg`` as ``signer``, submit it, print the receipt; exit 1 if it was refused."""
    from crev.ledger.tx import build_tx

    info = base._info(node_url)
    nonce = click.get_current_context().meta.get("crev.nonce")
    raw = build_tx(info["chain_id"], msg, signer, base._nonce(node_url, signer) if nonce is None else nonce,
                   base._load_key(key))
    out = base._post(node_url, raw)
    click.echo(json.dumps(out, indent=1, ensure_ascii=False))
    if out.get("error") or not out.get("ok", False):
        sys.exit(1)
    return out


def _yen(v: int) -> str:
    return f"¥{v:,}"


# --- JPY ------------------------------------------------------------------------------------------


@click.group()
def jpy() -> None:
    """JPY accounts mirrored from the bank (operator)."""


@jpy.command("deposit")
@click.argument("account")
@click.argument("amount", type=click.IntRange(1))
@click.option("--ref", required=True, help="The bank's reference for the payment received.")
@NODE
@SIGNER
@KEY
def jpy_deposit(account: str, amount: int, ref: str, node_url: str, signer: str, key: str) -> None:
    """Record AMOUNT yen received for ACCOUNT."""
    import os

    from crev.ledger.messages.deposit_jpy import DepositJpy

    # the salt re-blinds the supply's JPY total (ledger/blinding.py): fresh for every deposit
    _send(node_url, signer, key, DepositJpy(account, amount, ref, os.urandom(16)))


@jpy.command("withdraw")
@click.argument("account")
@click.argument("amount", type=click.IntRange(1))
@click.option("--ref", required=True, help="The bank's reference for the payment made.")
@NODE
@SIGNER
@KEY
def jpy_withdraw(account: str, amount: int, ref: str, node_url: str, signer: str, key: str) -> None:
    """Record AMOUNT yen paid out to ACCOUNT."""
    import os

    from crev.ledger.messages.withdraw_jpy import WithdrawJpy

    _send(node_url, signer, key, WithdrawJpy(account, amount, ref, os.urandom(16)))  # salt as for a deposit


# --- markets ---------------------------------------------------------------------------------------


@click.group()
def market() -> None:
    """Markets: list one, see their books and trades."""


def _filter(areas: tuple[str, ...], fit: str | None, devices: tuple[str, ...], vintage_from: str | None,
            vintage_to: str | None) -> Filter:
    return Filter(tuple(sorted(set(areas))), (), {"fit": 1, "non-fit": 0, None: -1}[fit],
                  tuple(sorted(set(devices))),
                  base._when(vintage_from, "--vintage-from") if vintage_from else 0,
                  base._when(vintage_to, "--vintage-to") if vintage_to else 0)


def filter_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--area", "areas", multiple=True, help="Grid area (repeat for several)."),
        click.option("--fit", type=click.Choice(["fit", "non-fit"]), default=None, help="FIT or non-FIT only."),
        click.option("--device", "devices", multiple=True, help="Device id (repeat for several)."),
        click.option("--vintage-from", default=None, help="Earliest slot start (ISO date, JST)."),
        click.option("--vintage-to", default=None, help="Slot start before this (ISO date, JST)."),
    ]):
        f = opt(f)
    return f


@market.command("list-market")
@click.argument("market_id")
@click.option("--name", required=True)
@click.option("--mode", type=click.Choice(["continuous", "call"]), default="continuous", show_default=True)
@click.option("--price-min", default=1_000, show_default=True, type=click.IntRange(1), help="JPY per t-CO2e.")
@click.option("--price-max", default=100_000, show_default=True, type=click.IntRange(1), help="JPY per t-CO2e.")
@click.option("--min-qty", default=1_000, show_default=True, type=click.IntRange(1), help="Smallest order [g].")
@click.option("--fee-bp", default=30, show_default=True, type=click.IntRange(0, 1000), help="Fee per side [bp].")
@click.option("--every", "call_interval_s", default=1800, show_default=True, type=click.IntRange(60),
              help="Call markets: clear at every multiple of this [s].")
@click.option("--closed", is_flag=True, help="List it closed (or close it).")
@filter_options
@NODE
@SIGNER
@KEY
def market_list_market(market_id: str, name: str, mode: str, price_min: int, price_max: int, min_qty: int,
                       fee_bp: int, call_interval_s: int, closed: bool, areas: tuple[str, ...], fit: str | None,
                       devices: tuple[str, ...], vintage_from: str | None, vintage_to: str | None,
                       node_url: str, signer: str, key: str) -> None:
    """List (or change) a market: the product it trades and how it matches (operator)."""
    from crev.ledger.messages.list_market import ListMarket

    _send(node_url, signer, key, ListMarket(market_id, name, mode, _filter(areas, fit, devices, vintage_from,
                                                                           vintage_to),
                                            price_min, price_max, min_qty, fee_bp,
                                            call_interval_s if mode == "call" else 0, not closed))


@market.command("show")
@DATA
@click.option("--json", "as_json", is_flag=True)
def market_show(data_dir: str, as_json: bool) -> None:
    """Every market with its rules, last price and the best bid and offer."""
    rows = base._read(data_dir, lambda v: market_rows(v.state))
    if as_json:
        click.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    t = Table("market", "mode", "open", "JPY/t bounds", "min g", "fee bp", "best bid", "best offer", "last")
    for r in rows:
        t.add_row(escape(r["market_id"]), r["mode"], "yes" if r["open"] else "no",
                  f"{r['price_min']:,}–{r['price_max']:,}", f"{r['min_qty_g']:,}", str(r["fee_bp"]),
                  f"{r['best_bid']:,}" if r["best_bid"] else "—", f"{r['best_ask']:,}" if r["best_ask"] else "—",
                  f"{r['last_price']:,}" if r["last_price"] else "—")
    base.console.print(t)


@market.command("book")
@DATA
@click.argument("market_id")
@click.option("--depth", default=10, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
def market_book(data_dir: str, market_id: str, depth: int, as_json: bool) -> None:
    """The order book of MARKET_ID by price level (a call market's book is what waits for the auction)."""
    book = base._read(data_dir, lambda v: book_levels(v.state, market_id))
    if as_json:
        click.echo(json.dumps(book))
        return
    t = Table("bid orders", "bid g", "bid JPY/t", "offer JPY/t", "offer g", "offer orders",
              title=f"{escape(market_id)} — order book / 板",
              caption="a bid with a filter (areas, FIT, devices, vintage) may rest above offers it does not accept")
    for i in range(min(depth, max(len(book["bids"]), len(book["asks"])))):
        b = book["bids"][i] if i < len(book["bids"]) else None
        a = book["asks"][i] if i < len(book["asks"]) else None
        t.add_row(str(b[2]) if b else "", f"{b[1]:,}" if b else "", f"{b[0]:,}" if b else "",
                  f"{a[0]:,}" if a else "", f"{a[1]:,}" if a else "", str(a[2]) if a else "")
    base.console.print(t)


def trade_rows(store: Any, market_id: str | None, limit: int) -> list[dict[str, Any]]:
    from crev.core.units import jst
    from crev.ledger.events import Traded
    from crev.reports.statements import committed_events

    out: list[dict[str, Any]] = []
    for time_, height, tx_hash, events in committed_events(store):
        for e in events:
            if isinstance(e, Traded) and (market_id is None or e.market_id == market_id):
                out.append({"trade_id": e.trade_id, "time_jst": jst(time_).strftime("%Y-%m-%d %H:%M"),
                            "market_id": e.market_id, "buyer": e.buyer, "seller": e.seller,
                            "quantity_g": e.quantity_g, "price": e.price, "value_jpy": e.value_jpy,
                            "fees_jpy": e.fee_buyer_jpy + e.fee_seller_jpy, "retirement_id": e.retirement_id,
                            "aggressor": e.aggressor, "height": height, "tx_hash": tx_hash})
    return out[-limit:]


@market.command("trades")
@DATA
@click.argument("market_id", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
def market_trades(data_dir: str, market_id: str | None, limit: int, as_json: bool) -> None:
    """The latest trades (of one market, or all)."""
    rows = base._read(data_dir, lambda v: trade_rows(v.store, market_id, limit))
    if as_json:
        click.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    t = Table("time JST", "trade", "market", "seller → buyer", "g", "JPY/t", "JPY", "retired", "block")
    for r in rows:
        t.add_row(r["time_jst"], r["trade_id"], escape(r["market_id"]), f"{r['seller']} → {r['buyer']}",
                  f"{r['quantity_g']:,}", f"{r['price']:,}", f"{r['value_jpy']:,}", r["retirement_id"] or "",
                  str(r["height"]))
    base.console.print(t)


# --- orders ------------------------------------------------------------------------------------------


@click.group()
def order() -> None:
    """Bids and offers, auto-offers and standing bids."""


def _retire(beneficiary: str | None, purpose: str, fiscal_year: int | None, note: str) -> RetireSpec | None:
    from crev.core.units import fiscal_year_bounds

    if not beneficiary:
        return None
    if fiscal_year is None:
        base._fail("--retire-for needs --fiscal-year (the reporting period)")
        raise AssertionError
    start, end = fiscal_year_bounds(fiscal_year)
    return RetireSpec(beneficiary, purpose, start, end, "JP", note)


def retire_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--retire-for", "beneficiary", default=None, help="Retire on fill for this beneficiary."),
        click.option("--purpose", default="statutory_report", show_default=True,
                     type=click.Choice(["statutory_report", "re100", "cdp", "sbti", "voluntary", "other"])),
        click.option("--fiscal-year", type=int, default=None, help="Reporting period: this April–March FY."),
        click.option("--note", default="", help="Retirement note."),
    ]):
        f = opt(f)
    return f


@order.command("place")
@click.argument("market_id")
@click.argument("side", type=click.Choice(["bid", "ask"]))
@click.option("--price", required=True, type=click.IntRange(1), help="Limit [JPY per t-CO2e].")
@click.option("--qty", required=True, type=click.IntRange(1), help="Quantity [g-CO2e].")
@click.option("--tif", type=click.Choice(["gtc", "gtt", "ioc", "fok"]), default="gtc", show_default=True)
@click.option("--expires", default=None, help="gtt: expiry (ISO date-time, JST).")
@click.option("--lot", "lots", multiple=True, help="ask: LOT_ID=GRAMS to sell (repeat); default: oldest matching.")
@filter_options
@retire_options
@NODE
@SIGNER
@KEY
def order_place(market_id: str, side: str, price: int, qty: int, tif: str, expires: str | None,
                lots: tuple[str, ...], areas: tuple[str, ...], fit: str | None, devices: tuple[str, ...],
                vintage_from: str | None, vintage_to: str | None, beneficiary: str | None, purpose: str,
                fiscal_year: int | None, note: str, node_url: str, signer: str, key: str) -> None:
    """Place a bid or an offer (ask)."""
    from crev.ledger.messages.place_order import PlaceOrder

    items: list[tuple[str, int]] = []
    for spec in lots:
        lot_id, _, grams = spec.rpartition("=")
        if not lot_id or not grams.isdigit():
            base._fail(f"--lot {spec!r}: expected LOT_ID=GRAMS")
        items.append((lot_id, int(grams)))
    _send(node_url, signer, key, PlaceOrder(
        market_id, side, price, qty, tif, base._when(expires, "--expires") if expires else 0,
        _filter(areas, fit, devices, vintage_from, vintage_to), tuple(items),
        _retire(beneficiary, purpose, fiscal_year, note)))


@order.command("cancel")
@click.argument("order_id")
@NODE
@SIGNER
@KEY
def order_cancel(order_id: str, node_url: str, signer: str, key: str) -> None:
    """Cancel an open order of yours; what it reserved is released."""
    from crev.ledger.messages.cancel_order import CancelOrder

    _send(node_url, signer, key, CancelOrder(order_id))


@order.command("auto-offer")
@click.argument("market_id")
@click.option("--share", "share_pct", required=True, type=click.FloatRange(0.01, 100),
              help="Percent of each new lot to offer.")
@click.option("--price", required=True, type=click.IntRange(1), help="At no less than [JPY per t-CO2e].")
@NODE
@SIGNER
@KEY
def order_auto_offer(market_id: str, share_pct: float, price: int, node_url: str, signer: str, key: str) -> None:
    """Offer a share of every new lot of your devices automatically, in the block that issues it."""
    from crev.ledger.messages.set_offer_policy import SetOfferPolicy

    _send(node_url, signer, key, SetOfferPolicy(market_id, round(share_pct * 100), price))


@order.command("standing-bid")
@click.argument("market_id")
@click.option("--price", required=True, type=click.IntRange(1), help="At most [JPY per t-CO2e].")
@click.option("--monthly", "monthly_g", required=True, type=click.IntRange(0),
              help="Up to this many g per JST month (0 removes the standing bid).")
@filter_options
@retire_options
@NODE
@SIGNER
@KEY
def order_standing_bid(market_id: str, price: int, monthly_g: int, areas: tuple[str, ...], fit: str | None,
                       devices: tuple[str, ...], vintage_from: str | None, vintage_to: str | None,
                       beneficiary: str | None, purpose: str, fiscal_year: int | None, note: str,
                       node_url: str, signer: str, key: str) -> None:
    """Buy up to --monthly g a month at no more than --price, optionally retiring on fill."""
    from crev.ledger.messages.set_standing_bid import SetStandingBid

    flt = _filter(areas, fit, devices, vintage_from, vintage_to)
    _send(node_url, signer, key, SetStandingBid(market_id, price, monthly_g, flt if flt != ANY else ANY,
                                                _retire(beneficiary, purpose, fiscal_year, note)))


# --- delegated keys ------------------------------------------------------------------------------


@click.group()
def delegate() -> None:
    """Delegated keys: let a site's DGC sign your offers with a key of its own (never the device key)."""


@delegate.command("grant")
@click.argument("delegate_id")
@click.option("--delegate-key", "delegate_key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The delegate's key file (its public key is granted; the seed stays where it is).")
@click.option("--public-key", "public_key_hex", default=None, help="...or the delegate's public key in hex.")
@click.option("--kind", "kinds", multiple=True,
              type=click.Choice(["set_offer_policy", "place_order", "cancel_order"]),
              help="A kind it may sign (repeat; default all three; place_order: asks only).")
@click.option("--valid-until", default=None, help="It signs nothing from this time on (ISO, JST); default open.")
@NODE
@SIGNER
@KEY
def delegate_grant(delegate_id: str, delegate_key: str | None, public_key_hex: str | None, kinds: tuple[str, ...],
                   valid_until: str | None, node_url: str, signer: str, key: str) -> None:
    """Authorise DELEGATE_ID's key to sign --kind transactions for you (--signer), or change it."""
    from crev.ledger.messages.authorize_delegate import AuthorizeDelegate
    from crev.ledger.records import DELEGABLE_KINDS

    if (delegate_key is None) == (public_key_hex is None):
        base._fail("give the delegate's key as --delegate-key FILE or --public-key HEX (one of them)")
    if delegate_key is not None:
        pk = base._load_key(delegate_key).public_key
    else:
        try:
            pk = bytes.fromhex(public_key_hex or "")
        except ValueError:
            base._fail(f"--public-key {public_key_hex!r}: not hex")
            raise
    until = base._when(valid_until, "--valid-until") if valid_until else 0
    _send(node_url, signer, key, AuthorizeDelegate("grant", delegate_id, pk, tuple(dict.fromkeys(kinds))
                                                   or DELEGABLE_KINDS, until))


@delegate.command("revoke")
@click.argument("delegate_id")
@NODE
@SIGNER
@KEY
def delegate_revoke(delegate_id: str, node_url: str, signer: str, key: str) -> None:
    """Revoke your delegate DELEGATE_ID: it signs nothing from the next block on."""
    from crev.ledger.messages.authorize_delegate import AuthorizeDelegate

    _send(node_url, signer, key, AuthorizeDelegate("revoke", delegate_id, b"", (), 0))


@delegate.command("show")
@DATA
@click.argument("delegate_id")
@click.option("--json", "as_json", is_flag=True)
def delegate_show(data_dir: str, delegate_id: str, as_json: bool) -> None:
    """A delegate's record: owner, key, kinds, validity, and the nonce its next transaction needs."""
    def read(v: Any) -> dict[str, Any] | None:
        d = v.state.delegates.get(delegate_id)
        return None if d is None else {
            "delegate_id": d.delegate_id, "owner": d.owner, "public_key": d.public_key.hex(),
            "kinds": list(d.kinds), "valid_until": d.valid_until, "revoked": d.revoked, "nonce": d.nonce,
            "granted_height": d.granted_height}

    row = base._read(data_dir, read)
    if row is None:
        base._fail(f"no delegate {delegate_id!r}")
        raise AssertionError
    if as_json:
        click.echo(json.dumps(row, indent=1, ensure_ascii=False))
        return
    t = Table("delegate", "owner", "kinds", "valid until", "revoked", "next nonce")
    t.add_row(escape(row["delegate_id"]), escape(row["owner"]), ", ".join(row["kinds"]),
              str(row["valid_until"]) if row["valid_until"] else "open", "yes" if row["revoked"] else "no",
              str(row["nonce"]))
    base.console.print(t)


# --- statements ------------------------------------------------------------------------------------


@click.group()
def statement() -> None:
    """Monthly statements and retirement statements (CSV, JSON, PDF)."""


def _month(text: str) -> int:
    y, _, m = text.partition("-")
    if not (y.isdigit() and m.isdigit() and 1 <= int(m) <= 12 and len(y) == 4):
        base._fail(f"month: {text!r} is not YYYY-MM")
    return int(y) * 100 + int(m)


@statement.command("monthly")
@DATA
@click.argument("participant")
@click.argument("month")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), help="Write the statement as CSV here.")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False), help="Write a printable PDF here.")
@click.option("--json", "as_json", is_flag=True)
def statement_monthly(data_dir: str, participant: str, month: str, csv_out: str | None, pdf_out: str | None,
                      as_json: bool) -> None:
    """PARTICIPANT's trades, fees, net JPY and C-REV bought, sold and retired in MONTH (YYYY-MM, JST)."""
    from crev.reports.statements import monthly_statement, statement_csv, statement_pdf

    ym = _month(month)
    stmt = base._read(data_dir, lambda v: monthly_statement(v.state, v.store, participant, ym))
    if csv_out:
        Path(csv_out).write_text(statement_csv(stmt), "utf-8")
    if pdf_out:
        statement_pdf(stmt, Path(pdf_out))
    if as_json:
        click.echo(json.dumps({
            "participant": stmt.account_id, "month": month, "opening_jpy": stmt.opening_jpy,
            "closing_jpy": stmt.closing_jpy, "bought_g": stmt.bought_g, "sold_g": stmt.sold_g,
            "retired_g": stmt.retired_g, "fees_jpy": stmt.fees_paid_jpy, "trading_net_jpy": stmt.trading_net_jpy,
            "lines": [x.__dict__ for x in stmt.lines]}, indent=1, ensure_ascii=False))
        return
    con = base.console
    con.print(f"[bold]{escape(stmt.name)}[/bold] ({escape(stmt.account_id)}) — statement / 取引明細 {month}")
    con.print(f"  opening {_yen(stmt.opening_jpy)}  closing {_yen(stmt.closing_jpy)}  "
              f"bought {stmt.bought_g:,} g  sold {stmt.sold_g:,} g  retired {stmt.retired_g:,} g  "
              f"fees {_yen(stmt.fees_paid_jpy)}  trading net {_yen(stmt.trading_net_jpy)}")
    t = Table("time JST", "kind", "ref", "g", "JPY/t", "JPY", "fee", "net", "block")
    for x in stmt.lines[-50:]:
        t.add_row(x.when, x.kind, escape(x.ref), f"{x.quantity_g:,}", f"{x.price:,}" if x.price else "",
                  f"{x.value_jpy:,}", f"{x.fee_jpy:,}", f"{x.net_jpy:,}", str(x.height))
    con.print(t)
    if len(stmt.lines) > 50:
        con.print(f"  (last 50 of {len(stmt.lines):,} lines; --csv or --pdf for all)")
    for what, path in (("CSV", csv_out), ("PDF", pdf_out)):
        if path:
            con.print(f"  wrote {what} to {path}")


@statement.command("retirement")
@DATA
@click.argument("retirement_id")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False), help="Write a printable PDF here.")
@click.option("--public-url", default=None,
              help="The node's public URL (as `crev serve --public-url`): the PDF gets a QR code to the "
                   "retirement's public verification page there.")
@click.option("--json", "as_json", is_flag=True)
def statement_retirement(data_dir: str, retirement_id: str, pdf_out: str | None, public_url: str | None,
                         as_json: bool) -> None:
    """A retirement with its unit ranges and how to verify them."""
    from crev.reports.statements import retirement_pdf, retirement_statement, verification_url

    cert = base._read(data_dir, lambda v: retirement_statement(v.state, retirement_id))
    if pdf_out:
        retirement_pdf(cert, Path(pdf_out), verification_url(public_url, retirement_id) if public_url else None)
    if as_json:
        click.echo(json.dumps(cert, indent=1, ensure_ascii=False))
        return
    con = base.console
    con.print(f"[bold]{cert['retirement_id']}[/bold] — {cert['quantity_g']:,} g-CO2e retired by "
              f"{escape(cert['account'])} for {escape(cert['beneficiary'])} ({cert['purpose']}, "
              f"{cert['period_start_jst']} – {cert['period_last_day_jst']})")
    t = Table("lot", "units", "g", "device", "grid", "slot JST")
    for r in cert["ranges"]:
        t.add_row(escape(r["lot_id"]), f"{r['start_unit']}–{r['end_unit'] - 1}", f"{r['quantity_g']:,}",
                  escape(r["device_id"]), r["grid_area"], r["slot_start_jst"])
    con.print(t)
    con.print("verify / 検証: " + " ; ".join(cert["verify"]))
    if pdf_out:
        con.print(f"wrote PDF to {pdf_out}")
