"""Hostile CBOR costs time and memory linear in its length, and is refused before values are built.

CBOR's shared values (tag 28 marks a value, tag 29 refers back to it) turn 137 bytes into a DAG
whose tree form doubles with every level: re-encoding or walking it took 6.7 s at 22 levels and
would take about 28 minutes at 30. The decoder now refuses every tag as it meets it, before the
tag's meaning is applied, and refuses indefinite lengths and nesting deeper than ``MAX_DEPTH``.
Each hostile body below is decoded on a thread that must finish within a generous bound: a body
that still blew up would never finish (2^60 steps), so the bound is a proof of termination, not
a speed test.
"""

from __future__ import annotations

import threading
from fractions import Fraction

import cbor2
import pytest

from crev.core.encoding import MAX_DEPTH, decode, decode_committed, encode
from crev.errors import MalformedError


def shared_chain(levels: int) -> bytes:
    """[28([0]), 28([29(0), 29(0)]), 28([29(1), 29(1)]), ...]: the last item expands to 2^levels."""
    items = [b"\xd8\x1c\x81\x00"]
    for k in range(1, levels):
        ref = b"\xd8\x1d" + encode(k - 1)
        items.append(b"\xd8\x1c\x82" + ref + ref)
    return b"\x98" + bytes([levels]) + b"".join(items)


def shared_nest(levels: int) -> bytes:
    """28([28([... 28([]) ...]), 29(k)]) nested ``levels`` deep, the shape of the reported body."""
    inner = b"\xd8\x1c\x80"
    for k in range(1, levels):
        inner = b"\xd8\x1c\x82" + inner + b"\xd8\x1d" + encode(k - 1)
    return inner


def decode_within(raw: bytes, seconds: float = 10.0) -> MalformedError:
    out: list[BaseException | None] = [None]

    def run() -> None:
        try:
            decode(raw, "tx")
        except BaseException as exc:  # handed to the test thread
            out[0] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"decoding {len(raw)} bytes did not finish in {seconds} s"
    assert isinstance(out[0], MalformedError), out[0]
    return out[0]


@pytest.mark.parametrize("levels", [22, 30, 60, 200])
def test_a_chain_of_shared_values_is_refused_at_its_first_tag(levels: int) -> None:
    raw = shared_chain(levels)
    assert len(raw) < 11 * levels
    err = decode_within(raw)
    assert (err.field, err.reason) == ("tx", "holds CBOR tag 28: tags (shared values, dates, big numbers ...) "
                                             "are not used by crev")


def test_the_reported_137_byte_body_is_refused() -> None:
    raw = shared_nest(22)
    assert 120 < len(raw) < 140
    err = decode_within(raw)
    assert "nests arrays deeper than 16 levels" in err.reason or "holds CBOR tag 28" in err.reason


@pytest.mark.parametrize("levels", [2, 5])
def test_shallow_nests_of_shared_values_are_refused_by_their_tag(levels: int) -> None:
    # (a tag counts as a level of nesting for the depth bound, so deeper nests stop there first)
    assert "holds CBOR tag 28" in decode_within(shared_nest(levels)).reason


def test_a_rational_of_huge_integers_is_refused_before_any_arithmetic() -> None:
    # tag 30 [2^(8·400,000) + 1, 3^500,000]: a Fraction would run a gcd of two 3-million-bit numbers
    raw = cbor2.dumps(cbor2.CBORTag(30, [2 ** (8 * 400_000) + 1, 3**500_000]))
    err = decode_within(raw)
    assert err.reason.startswith("holds CBOR tag 2:")  # the first bignum's tag, met before 30's meaning
    assert cbor2.loads(cbor2.dumps(cbor2.CBORTag(30, [1, 3]))) == Fraction(1, 3)  # what cbor2 would do


@pytest.mark.parametrize(("tag", "value"), [(0, "2026-01-01T00:00:00Z"), (1, 0), (4, [1, 2]), (5, [1, 2]),
                                            (25, 0), (35, "a+"), (258, [1]), (55799, 1), (60_000, [1])])
def test_every_tag_is_refused_by_number(tag: int, value: object) -> None:
    err = decode_within(cbor2.dumps(cbor2.CBORTag(tag, value)))
    assert err.reason.startswith(f"holds CBOR tag {tag}:")


def test_indefinite_lengths_and_deep_nesting_are_refused() -> None:
    assert "indefinite length" in decode_within(b"\x9f\x01\xff").reason
    assert "indefinite length" in decode_within(b"\x5f\x41\x00\xff").reason
    deep = b"\x81" * (MAX_DEPTH + 1) + b"\x00"
    assert f"nests arrays deeper than {MAX_DEPTH} levels" in decode_within(deep).reason
    ok = b"\x81" * (MAX_DEPTH - 1) + b"\x00"
    assert encode(decode(ok)) == ok


def test_a_length_claiming_more_than_the_body_holds_allocates_nothing() -> None:
    for raw in (b"\x9b" + (2**40).to_bytes(8, "big"), b"\x5b" + (2**40).to_bytes(8, "big"),
                b"\x9a" + (2**31).to_bytes(4, "big") + b"\x00" * 8):
        assert "not valid CBOR" in decode_within(raw).reason


def test_committed_bytes_decode_as_decode_decodes_them_and_hostile_ones_are_refused_the_same_way() -> None:
    """``decode_committed`` (state entries already checked against a signed root) skips only the
    canonical round trip: canonical bytes give decode's value, and tags, indefinite lengths, deep
    nests and short bodies give decode's error, reason for reason."""
    for value in ([], ["d/x", 0, 2**64 - 1, -2**64, b"\x00" * 32, True, False, None, [["é", [1]]]],
                  "あ", 23, 24, -25):
        raw = encode(value)
        assert decode_committed(raw, "v") == decode(raw, "v") == value
    hostile = [cbor2.dumps(cbor2.CBORTag(2, b"\x01" * 9)), shared_chain(24), b"\x9f\x01\xff",
               b"\x81" * (MAX_DEPTH + 1) + b"\x00", b"\x9b" + (2**40).to_bytes(8, "big"), b"\x82\x01"]
    for raw in hostile:
        with pytest.raises(MalformedError) as committed:
            decode_committed(raw, "v")
        with pytest.raises(MalformedError) as plain:
            decode(raw, "v")
        assert (committed.value.field, committed.value.reason) == (plain.value.field, plain.value.reason)
    # what it does not check, by design: a non-canonical head (1 as 0x18 0x01) decodes to its value
    assert decode_committed(b"\x18\x01", "v") == 1
    with pytest.raises(MalformedError, match="canonical"):
        decode(b"\x18\x01", "v")
