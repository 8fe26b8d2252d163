"""Events turn into their canonical array (results root) and JSON form (receipts) through a
per-class getter; both must equal the plain field-by-field reading they replace, for every event."""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

import pytest

from crev.core.encoding import use_codec_kernel
from crev.ledger import events
from crev.ledger.events import DeviceUpdated, Event, ReadingAccepted

SAMPLES: dict[str, Any] = {"str": "x", "int": 7, "bool": True, "bytes": b"\x01\xff", "tuple[str, ...]": ("a", "b"),
                           "tuple[tuple[str, int, int], ...]": (("l", 1, 2),)}
CLASSES = [c for c in vars(events).values() if inspect.isclass(c) and issubclass(c, Event) and c is not Event]


def plain_value(e: Event) -> list[Any]:
    return [e.type, *[getattr(e, f.name) for f in fields(e)]]


def plain_dict(e: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"type": e.type}
    for f in fields(e):
        v = getattr(e, f.name)
        out[f.name] = v.hex() if isinstance(v, bytes) else list(v) if isinstance(v, tuple) else v
    return out


@pytest.mark.parametrize("kernel", [False, True], ids=["reference", "kernel"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_event_reads_as_field_by_field(cls: type[Event], kernel: bool) -> None:
    """With the reference and, where installed, with the kernel's ``event_dict``."""
    if kernel and not use_codec_kernel(True):
        pytest.skip("crev_native is not installed")
    use_codec_kernel(kernel)
    try:
        e = cls(*[SAMPLES[str(f.type)] for f in fields(cls)])
        assert e.to_value() == plain_value(e)
        assert e.to_dict() == plain_dict(e)
        assert list(e.to_dict()) == ["type", *[f.name for f in fields(cls)]]  # the JSON keeps the field order
    finally:
        use_codec_kernel(True)


def test_reading_accepted_by_hand() -> None:
    e = ReadingAccepted("dgc-1", 3, 1_780_272_000, 60, 800, 300, 100, 1_000, 700, b"\xab" * 2, "dgc-1:x", "sun-co")
    assert e.to_value() == ["reading_accepted", "dgc-1", 3, 1_780_272_000, 60, 800, 300, 100, 1_000, 700, b"\xab\xab",
                            "dgc-1:x", "sun-co"]
    assert e.to_dict()["reading_hash"] == "abab"
    assert DeviceUpdated("dgc-1", ("owner",)).to_dict() == {"type": "device_updated", "device_id": "dgc-1",
                                                             "changed": ["owner"]}
