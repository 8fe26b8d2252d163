"""Device batches: one unsigned transaction, many device-signed items, each judged on its own.

``submit_readings``, ``submit_meter_values`` and ``submit_controls`` carry items a device signed
(a gateway forwards many devices' at once, and one bad meter must not hold back the others). The
three share the batch rules, which live here:

* only a malformed *envelope* refuses the whole transaction: a body that is not an array, is
  empty or holds more than ``params.max_batch_readings`` items;
* an item whose own shape is wrong is a :class:`BadItem`, refused at its index by the handler,
  like an item refused against state; its result is ``["refused", code, field, reason]`` with
  ``field`` under ``<where>[i]``;
* a batch in which no item is newly accepted is refused as a whole (with the first refusal, or
  as all duplicates), so nothing that changes nothing reaches the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from crev.errors import ConflictError, CrevError, MalformedError
from crev.ledger.params import Params
from crev.ledger.shape import ID_RE, need_list

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BadItem:
    """An item of a batch whose own shape is wrong: refused on its own, at its index."""

    index: int  # its position in the batch
    value: Any  # as decoded, so the batch re-encodes to the same bytes
    error: MalformedError  # its field is already ``<where>[index].<field>``


def check_item_head(v: Any, where: str, length: int, version: str) -> list[Any]:
    """The part every device-signed item shares: an array of ``length`` elements opening with
    ``version``, the chain id (text) and the device id. Returns ``v``; MalformedError otherwise."""
    if type(v) is not list or len(v) != length:
        raise MalformedError(where, f"must be an array of {length} elements (see docs/wire-format.md)")
    if v[0] != version:
        raise MalformedError(f"{where}.version", f"must be {version!r}")
    if type(v[1]) is not str:
        raise MalformedError(f"{where}.chain_id", "must be text")
    if type(v[2]) is not str or not ID_RE.fullmatch(v[2]):
        raise MalformedError(f"{where}.device_id", "must be 1-64 of a-z 0-9 . _ -")
    return v


def need_int_field(x: Any, field: str) -> int:
    """An integer field of an item (a float, NaN or bool is named as such)."""
    if type(x) is not int:
        kind = "a fraction or NaN" if isinstance(x, float) else type(x).__name__
        raise MalformedError(field, f"must be an integer, found {kind}")
    return x


def parse_batch(body: Any, params: Params, parse: Callable[[Any, str], T], where: str,
                noun: str) -> tuple[tuple[T, ...], tuple[BadItem, ...]]:
    """The envelope check, then each item's shape: (the well-formed items, the others)."""
    items = need_list(body, "body")
    if not items:
        raise MalformedError("body", f"a batch must hold at least one {noun}")
    if len(items) > params.max_batch_readings:
        raise MalformedError("body", f"{len(items)} {noun}s exceed the batch limit of {params.max_batch_readings}")
    good: list[T] = []
    bad: list[BadItem] = []
    for i, v in enumerate(items):
        try:
            good.append(parse(v, f"{where}[{i}]"))
        except MalformedError as err:  # this item alone is refused, by the handler
            bad.append(BadItem(i, v, err))
    return tuple(good), tuple(bad)


def in_order(good: Sequence[T], bad: Sequence[BadItem]) -> list[T | BadItem]:
    """Every item of the batch in its order, well-formed or not."""
    if not bad:
        return list(good)
    by_index = {b.index: b for b in bad}
    rest = iter(good)
    return [by_index[i] if i in by_index else next(rest) for i in range(len(good) + len(bad))]


def judge(ctx: Any, items: Sequence[T | BadItem], accept: Callable[[Any, T], tuple[list[Any], bool]],
          where: str, noun: str, all_duplicates: Callable[[int], str]) -> list[list[Any]]:
    """Each item's result in order; ``accept(ctx, item)`` checks one item against state and
    returns (result, whether it is new). Raises the first refusal, or ConflictError at ``where``
    with ``all_duplicates(n)`` as its reason, when no item is new."""
    out: list[list[Any]] = []
    new = 0
    first: CrevError | None = None
    for i, item in enumerate(items):
        if isinstance(item, BadItem):
            first = first or item.error
            out.append(["refused", item.error.code, item.error.field, item.error.reason])
            continue
        try:
            result, fresh = accept(ctx, item)
            out.append(result)
            new += fresh
        except CrevError as err:
            e = err.at(f"{where}[{i}]")
            first = first or e
            out.append(["refused", e.code, e.field, e.reason])
    if not new:  # nothing to record: refuse the whole transaction so no junk reaches the chain
        n = len(out)
        if first is not None:
            raise type(first)(first.field, f"{first.reason} (no {noun} of the {n} in this batch was accepted)")
        raise ConflictError(where, all_duplicates(n))
    return out
