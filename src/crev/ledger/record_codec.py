"""The hot records' and events' canonical bytes by the kernel: ``encode(record.to_value())``
without the list.

Sealing a block re-encodes every record it changed (``State.seal``): for a reading, its device,
lot, slot tally and reading record, each a ``to_value`` list handed to ``encode``. Where the
compiled kernel is installed, ``crev_native.RecordCodec`` encodes those records straight from
their slots (native/src/records.rs), in one call for a block's keys (``values_of``).

``to_value`` stays the reference, and the codec is *exact or silent*: it answers None for
anything it does not encode exactly as ``encode(record.to_value())`` would (another class, a
float, a big integer, a record the map does not hold), and the caller encodes that the
reference's way. Each class's registration is checked here, on import, against its ``to_value``
on a probe record whose fields all differ (``_agrees``): a field added to a record but not to
its ``to_value``, or in another order, leaves the codec unused rather than wrong. tests/native/
test_record_codec.py compares the two on random records and whole ledgers. The events are learnt
too, each with its type as a constant first item, so that a block's results, events included,
are encoded in one call (``TxResult.encode``).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Protocol, cast

from crev.core import encoding
from crev.core.encoding import encode_reference
from crev.ledger import events
from crev.ledger.events import Event
from crev.ledger.records import Account, Device, DeviceKey, Lot, ReadingRecord, Segment, SlotTally, Supply


class RecordCodecKernel(Protocol):
    """``crev_native.RecordCodec`` (native/crev_native.pyi)."""

    def register(self, cls: type, names: list[str], nested: list[type | None], optional_last: bool,
                 prefix: tuple[Any, ...] | None = None, /) -> None: ...

    def encode(self, obj: Any, /) -> bytes | None: ...

    def encode_value(self, value: Any, /) -> bytes | None: ...

    def values_of(self, maps: dict[str, Any], keys: list[str], /) -> list[bytes | None]: ...


#: The records the codec learns: each class (its fields, in declaration order, are ``to_value``'s),
#: the fields that list records of another class, and whether its last field (bytes) is left out
#: of ``to_value`` when empty. Nested classes come before the classes that list them.
RECORDS: tuple[tuple[type, dict[str, type], bool], ...] = (
    (DeviceKey, {}, False),
    (Device, {"keys": DeviceKey}, False),
    (Segment, {}, False),
    (Lot, {"segments": Segment}, False),
    (ReadingRecord, {}, False),
    (SlotTally, {}, False),
    (Account, {}, True),
    (Supply, {}, True),
)


def _probe(cls: type, nested: dict[str, type], last: bytes | None) -> Any:
    """An instance of ``cls`` whose fields all hold different values: a distinct int, a one-item
    list for a list field (one probe record for a nested one), ``last`` in the last field if given."""
    obj: Any = object.__new__(cls)
    fs = fields(cls)
    for i, f in enumerate(fs):
        value: Any = 1_000 + i
        if f.name in nested:
            value = [_probe(nested[f.name], {}, None)]
        elif str(f.type).startswith("list["):
            value = [f"p{i}"]
        elif last is not None and i == len(fs) - 1:
            value = last
        object.__setattr__(obj, f.name, value)
    return obj


#: The events (``TxResult.encode``): each ``to_value`` is its type, then its fields in order.
EVENTS: tuple[type[Event], ...] = tuple(c for c in vars(events).values()
                                        if isinstance(c, type) and issubclass(c, Event) and c is not Event)


def _agrees(codec: RecordCodecKernel, cls: type, nested: dict[str, type], optional_last: bool) -> bool:
    """Whether the codec encodes probe records of ``cls`` exactly as their ``to_value`` does."""
    lasts: tuple[bytes | None, ...] = (b"", b"\x01") if optional_last else (None,)
    for last in lasts:
        obj = _probe(cls, nested, last)
        if codec.encode(obj) != encode_reference(obj.to_value()):
            return False
    return True


def _build() -> RecordCodecKernel | None:
    kernel = encoding.KERNEL
    make = getattr(kernel, "RecordCodec", None)
    if make is None:  # absent, or a kernel built before the codec existed
        return None
    codec = cast(RecordCodecKernel, make())
    for cls, nested, optional_last in RECORDS:
        names = [f.name for f in fields(cls)]
        codec.register(cls, names, [nested.get(n) for n in names], optional_last)
        if not _agrees(codec, cls, nested, optional_last):
            return None
    for ev in EVENTS:
        names = [f.name for f in fields(ev)]
        try:
            codec.register(ev, names, [None] * len(names), False, (ev.type,))
        except (TypeError, ValueError, AttributeError):  # not slotted: its results go to the reference
            continue
        if not _agrees(codec, ev, {}, False):
            return None
    return codec


KERNEL_CODEC: RecordCodecKernel | None = _build()


def record_codec() -> RecordCodecKernel | None:
    """The kernel's record codec, where it is installed, checked, and the codec kernel is in use
    (``use_codec_kernel``)."""
    return KERNEL_CODEC if encoding.codec_kernel() is not None else None


def encode_record(obj: Any) -> bytes:
    """``encode(obj.to_value())``, by the kernel's record codec where it can."""
    codec = record_codec()
    if codec is not None:
        out = codec.encode(obj)
        if out is not None:
            return out
    return encoding.encode(obj.to_value())
