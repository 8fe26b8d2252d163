"""Checks several handlers share."""

from __future__ import annotations

from typing import Any

from crev.errors import MalformedError, NotFoundError, PermissionError_, RuleError
from crev.ledger.holdings import available
from crev.ledger.records import OPERATOR, TRADABLE, Account, Device, Lot
from crev.ledger.shape import MAX_U63, need_id, need_int, need_list, need_text


def require_operator(ctx: Any) -> Account:
    signer: Account | None = ctx.signer
    if signer is None or signer.role != OPERATOR:
        raise PermissionError_("tx.signer", "only the registry operator may do this")
    return signer


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
