"""Checks several handlers share."""

from __future__ import annotations

from typing import Any

from crev.errors import MalformedError, NotFoundError, PermissionError_, RuleError
from crev.ledger.holdings import available
from crev.ledger.records import OPERATOR, TRADABLE, Account, Device, Filter, Lot, Market, RetireSpec
from crev.ledger.shape import MAX_U63, need_choice, need_id, need_int, need_list, need_text, need_time
from crev.ledger.vocab import GRID_AREAS, PURPOSES, TECHNOLOGIES


def require_operator(ctx: Any) -> Account:
    signer: Account | None = ctx.signer
    if signer is None or signer.role != OPERATOR:
        raise PermissionError_("tx.signer", "only the registry operator may do this")
    return signer


def refuse_delegate_key(ctx: Any, public_key: bytes, where: str) -> None:
    """A device key is never a delegated key (messages/authorize_delegate.py): it signs readings
    only. RuleError at ``where`` if some delegate holds ``public_key``, revoked or not."""
    for d in ctx.state.delegates.values():
        if d.public_key == public_key:
            raise RuleError(where, f"is the key of delegate {d.delegate_id}: a device key signs its readings "
                                   "only, never a ledger transaction")


def active_device(ctx: Any, device_id: str) -> Device:
    """The registered, not revoked device ``device_id`` (the field is ``body.device_id``)."""
    dev: Device | None = ctx.state.devices.get(device_id)
    if dev is None:
        raise NotFoundError("body.device_id", f"no device {device_id!r}")
    if not dev.active:
        raise RuleError("body.device_id", "device is already revoked")
    return dev


def parse_items(v: Any, where: str) -> tuple[tuple[str, int], ...]:
    """[[lot_id, quantity_g], ...] with each lot at most once and quantities ≥ 1."""
    items = need_list(v, where)
    if not items:
        raise MalformedError(where, "must list at least one lot")
    if len(items) > 10_000:
        raise MalformedError(where, "at most 10000 lots per transaction")
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    for i, item in enumerate(items):
        lot_id, q = need_list(item, f"{where}[{i}]", 2)
        need_text(lot_id, f"{where}[{i}].lot_id", 128)
        need_int(q, f"{where}[{i}].quantity_g", 1, MAX_U63)
        if lot_id in seen:
            raise MalformedError(f"{where}[{i}].lot_id", f"{lot_id} is listed twice")
        seen.add(lot_id)
        out.append((lot_id, q))
    return tuple(out)


def check_holdings(ctx: Any, holder: str, items: tuple[tuple[str, int], ...], where: str) -> list[Lot]:
    """Every listed lot exists and ``holder`` holds enough of it tradable."""
    lots: list[Lot] = []
    for i, (lot_id, q) in enumerate(items):
        lot = ctx.state.lots.get(lot_id)
        if lot is None:
            raise NotFoundError(f"{where}[{i}].lot_id", f"no lot {lot_id!r}")
        have = available(lot, holder, TRADABLE)
        if have == 0 and not any(s.holder == holder for s in lot.segments):
            raise PermissionError_(f"{where}[{i}].lot_id", f"{holder} holds no units of {lot_id}")
        if q > have:
            raise RuleError(f"{where}[{i}].quantity_g",
                            f"{q} g exceeds the {have} g {holder} holds tradable in {lot_id}")
        lots.append(lot)
    return lots


def need_account_id(v: Any, where: str) -> str:
    return need_id(v, where)


# --- market fields ------------------------------------------------------------------------------

MAX_PRICE = 10**9  # JPY per t-CO2e: a hard ceiling above any market's own bounds
MAX_FILTER_ITEMS = 64


def _need_names(v: Any, where: str, choices: tuple[str, ...] | None) -> tuple[str, ...]:
    items = need_list(v, where)
    if len(items) > MAX_FILTER_ITEMS:
        raise MalformedError(where, f"at most {MAX_FILTER_ITEMS} entries")
    out: list[str] = []
    for i, x in enumerate(items):
        if choices is not None:
            if x not in choices:
                raise MalformedError(f"{where}[{i}]", f"must be one of {', '.join(choices)}")
        else:
            need_id(x, f"{where}[{i}]")
        if x in out:
            raise MalformedError(f"{where}[{i}]", f"{x} is listed twice")
        out.append(x)
    return tuple(sorted(out))


def parse_filter(v: Any, where: str) -> Filter:
    """[grid_areas, technologies, fit (-1 either, 0 non-FIT, 1 FIT), devices, vintage_start,
    vintage_end (0 = open)], optionally followed by ``true`` (final_only: only units of final
    slots, see ledger/reconcile.py; absent when false, so one filter has one encoding); lists are
    kept sorted so equal filters have equal bytes."""
    b = need_list(v, where)
    if len(b) not in (6, 7):
        raise MalformedError(where, "must be an array of 6 elements, or 7 with final_only true last")
    if len(b) == 7 and b[6] is not True:
        raise MalformedError(f"{where}.final_only", "must be true when present (omit it for false)")
    fit = b[2]
    if type(fit) is not int or fit not in (-1, 0, 1):
        raise MalformedError(f"{where}.fit", "must be -1 (either), 0 (non-FIT) or 1 (FIT)")
    f = Filter(_need_names(b[0], f"{where}.grid_areas", GRID_AREAS),
               _need_names(b[1], f"{where}.technologies", TECHNOLOGIES), fit,
               _need_names(b[3], f"{where}.devices", None),
               need_time(b[4], f"{where}.vintage_start"), need_time(b[5], f"{where}.vintage_end"),
               len(b) == 7)
    if f.vintage_end and f.vintage_end <= f.vintage_start:
        raise MalformedError(f"{where}.vintage_end", "must be after vintage_start (or 0 for open)")
    return f


def parse_retire(v: Any, where: str, params: Any) -> RetireSpec | None:
    """[] or [beneficiary, purpose, period_start, period_end, jurisdiction, note]."""
    b = need_list(v, where)
    if not b:
        return None
    need_list(b, where, 6)
    spec = RetireSpec(need_text(b[0], f"{where}.beneficiary", params.max_text_len),
                      need_choice(b[1], f"{where}.purpose", PURPOSES),
                      need_time(b[2], f"{where}.period_start"), need_time(b[3], f"{where}.period_end"),
                      need_text(b[4], f"{where}.jurisdiction", 16),
                      need_text(b[5], f"{where}.note", params.max_text_len, empty=True))
    if spec.period_end <= spec.period_start:
        raise MalformedError(f"{where}.period_end", "must be after period_start")
    return spec


def need_price(v: Any, where: str) -> int:
    return need_int(v, where, 1, MAX_PRICE)


def existing_account(ctx: Any, account_id: str, where: str = "body.account_id") -> Account:
    acct: Account | None = ctx.state.accounts.get(account_id)
    if acct is None:
        raise NotFoundError(where, f"no participant {account_id!r}")
    return acct


def check_price(market: Market, price: int, where: str = "body.price") -> None:
    if not market.price_min <= price <= market.price_max:
        raise RuleError(where, f"{price} JPY/t is outside market {market.market_id}'s bounds "
                               f"{market.price_min} … {market.price_max}")


def open_market(ctx: Any, market_id: str, where: str = "body.market_id") -> Market:
    m: Market | None = ctx.state.markets.get(market_id)
    if m is None:
        raise NotFoundError(where, f"no market {market_id!r}")
    if not m.open:
        raise RuleError(where, f"market {market_id} is closed")
    return m
