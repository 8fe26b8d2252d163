"""``crev.core.slotted.constructor``: the kernel builds the hot path's records and events exactly as
their dataclass ``__init__`` does, or the class itself is used."""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError, dataclass, field, fields
from typing import Any

import pytest

from crev.core.slotted import constructor, eligible
from crev.ledger import events
from crev.ledger.events import Event, Issued, ReadingAccepted
from crev.ledger.messages.submit_readings import Reading
from crev.ledger.records import Lot, ReadingRecord, Segment

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")
if not hasattr(crev_native, "new_slotted"):
    pytest.skip("the installed crev_native predates new_slotted: pip install ./native", allow_module_level=True)

SAMPLES: dict[str, Any] = {"str": "x", "int": 7, "bool": True, "bytes": b"\x01\xff", "tuple[str, ...]": ("a", "b"),
                           "tuple[tuple[str, int, int], ...]": (("l", 1, 2),),
                           "list[Segment]": [Segment(0, 1, "a", "t")]}
EVENTS = [c for c in vars(events).values() if inspect.isclass(c) and issubclass(c, Event) and c is not Event]


def values_for(cls: type) -> tuple[Any, ...]:
    return tuple(SAMPLES[str(f.type)] for f in fields(cls))


@pytest.mark.parametrize("cls", [*EVENTS, Lot, Reading, ReadingRecord, Segment], ids=lambda c: c.__name__)
def test_the_kernel_builds_the_same_object(cls: type) -> None:
    assert eligible(cls)
    make = constructor(cls)
    assert make is not cls
    args = values_for(cls)
    got, want = make(*args), cls(*args)
    assert type(got) is cls
    assert got == want
    assert [getattr(got, f.name) for f in fields(cls)] == list(args)
    if cls.__hash__ is not None:
        assert hash(got) == hash(want)


def test_a_frozen_event_stays_frozen() -> None:
    e = constructor(ReadingAccepted)("d", 1, 2, 3, 4, 5, 6, 7, 8, b"h", "l", "o")
    with pytest.raises(FrozenInstanceError):
        e.seq = 2  # type: ignore[misc]
    assert e.to_value() == ["reading_accepted", "d", 1, 2, 3, 4, 5, 6, 7, 8, b"h", "l", "o"]


def test_keywords_and_defaults_go_through_the_class() -> None:
    make = constructor(Segment)
    s = make(1, 5, "a", "tradable")  # ref defaults to ""
    assert s == Segment(1, 5, "a", "tradable", "") and s.size == 4
    assert make(start=1, end=2, holder="a", status="tradable").ref == ""
    lot = constructor(Lot)(*values_for(Lot))
    assert lot.end_unit == 14  # first_unit 7 + quantity_g 7


def test_classes_whose_init_does_more_are_left_alone() -> None:
    @dataclass(slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("negative")

    @dataclass(slots=True)
    class Partly:
        n: int
        total: int = field(init=False, default=0)

    @dataclass
    class Unslotted:
        n: int

    for cls in (Checked, Partly, Unslotted):
        assert not eligible(cls)
        assert constructor(cls) is cls


def test_issued_by_hand() -> None:
    e = constructor(Issued)("dgc-1:20260601T0900", "dgc-1", "sun-co", 100, 315, 700, 450, 989_040, "reading")
    assert e == Issued("dgc-1:20260601T0900", "dgc-1", "sun-co", 100, 315, 700, 450, 989_040, "reading")
    assert e.to_dict()["quantity_g"] == 315


@pytest.mark.parametrize("cls", [int, str, bytes, list, dict, tuple])
def test_new_slotted_refuses_classes_object_new_does_not_make(cls: type) -> None:
    with pytest.raises(TypeError, match="plain classes only"):
        crev_native.new_slotted(cls, (), ())


def test_new_slotted_wants_one_value_per_field() -> None:
    with pytest.raises(TypeError, match="one value per field"):
        crev_native.new_slotted(Segment, ("start",), (1, 2))


def test_a_record_of_atomic_values_is_left_out_of_the_cyclic_collector() -> None:
    """No reference cycle can pass through an object that holds only ints, floats, strs, bytes,
    bools and None: the kernel untracks it (as CPython does a tuple of such values), so the
    collector's young-generation scans skip it. Refcounting still frees it."""
    import gc

    make = constructor(Segment)
    seg = make(1, 5, "a", "tradable", "")
    assert not gc.is_tracked(seg) and gc.is_tracked(Segment(1, 5, "a", "tradable", ""))
    assert seg == Segment(1, 5, "a", "tradable", "")
    e = constructor(Issued)("l", "d", "o", 1, 2, 3, 4, 5, "reading")
    assert not gc.is_tracked(e)
    assert not gc.is_tracked(crev_native.new_slotted(Segment, ("start", "end", "holder", "status", "ref"),
                                                     (1.5, None, True, b"x", "")))
    # anything that can hold a reference keeps it tracked: a list, a tuple, a subclass of int
    lot = constructor(Lot)(*values_for(Lot))  # its segments are a list
    assert gc.is_tracked(lot)
    assert gc.is_tracked(constructor(Segment)(1, 5, ("a",), "tradable", ""))

    class Count(int):
        pass

    assert gc.is_tracked(constructor(Segment)(Count(1), 5, "a", "tradable", ""))


def test_an_untracked_record_is_freed_when_its_last_reference_goes() -> None:
    import gc
    import weakref

    @dataclass(slots=True, weakref_slot=True)  # weakref-able, to see it go
    class Held:
        n: int

    got = crev_native.new_slotted(Held, ("n",), (3,))
    assert not gc.is_tracked(got) and got.n == 3
    gone = weakref.ref(got)
    del got
    assert gone() is None


def test_each_value_goes_into_its_own_slot_and_is_held_once() -> None:
    """The kernel stores each value straight into the slot whose offset it probed for that name
    (once per class and names tuple): each field reads back its own value whatever the order of the
    names, and each value gains exactly one reference per object, released with it."""
    import sys

    marker = object()
    before = sys.getrefcount(marker)
    names = ("status", "start", "ref", "end", "holder")  # not the declaration order
    made = [crev_native.new_slotted(Segment, names, ("tradable", 1, marker, 5, "a")) for _ in range(100)]
    assert all((s.start, s.end, s.holder, s.status, s.ref) == (1, 5, "a", "tradable", marker) for s in made)
    assert sys.getrefcount(marker) == before + 100
    del made
    assert sys.getrefcount(marker) == before


def test_a_name_that_is_no_slot_is_set_by_name() -> None:
    """Probing finds no slot for a name the class does not declare as one: the field is set through
    ``object.__setattr__``, which raises as it would."""
    with pytest.raises(AttributeError):
        crev_native.new_slotted(Segment, ("start", "end", "holder", "status", "nope"), (1, 2, "a", "t", ""))

    class Open:  # a plain class with a __dict__: no slots to probe, set by name
        pass

    got = crev_native.new_slotted(Open, ("x",), (7,))
    assert got.x == 7
