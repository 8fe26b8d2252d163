"""Protobuf varints, hand-computed: 300 = 0b10_0101100 → 0xac 0x02; -1 as int64 → nine 0xff and 0x01."""

from __future__ import annotations

import pytest

from crev.core.varint import uvarint


@pytest.mark.parametrize(("n", "hexed"), [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"),
                                          (2**32, "8080808010"), (-1, "ffffffffffffffffff01")])
def test_uvarint(n: int, hexed: str) -> None:
    assert uvarint(n).hex() == hexed
