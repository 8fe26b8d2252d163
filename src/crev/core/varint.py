"""Protobuf's base-128 varint (unsigned LEB128), the one piece of protobuf's wire format crev
writes itself: CometBFT frames ABCI messages with a uvarint length, and signs votes as
uvarint-length-prefixed protobuf (docs/wire-format.md §10)."""

from __future__ import annotations


def uvarint(n: int) -> bytes:
    """``n`` as a protobuf varint; a negative ``n`` is an int64 written as its uint64 two's
    complement (10 bytes), as protobuf does."""
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
