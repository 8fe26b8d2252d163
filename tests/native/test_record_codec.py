"""``crev_native.RecordCodec`` (crev.ledger.record_codec): a record's canonical bytes straight from
its slots, exactly ``encode(record.to_value())`` (the reference), or None and the reference
decides. tests/native/test_codec_kernel.py replays the golden chain with and without it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crev.core.encoding import encode_reference, use_codec_kernel
from crev.ledger import record_codec as rc
from crev.ledger.records import Account, Device, DeviceKey, Lot, ReadingRecord, Segment, SlotTally, Supply

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")
if not hasattr(crev_native, "RecordCodec"):
    pytest.skip("the installed crev_native predates RecordCodec: pip install ./native", allow_module_level=True)

CODEC = rc.KERNEL_CODEC
HASH = bytes(range(32))


def reference(obj: Any) -> bytes:
    return encode_reference(obj.to_value())


def test_the_codec_is_in_use_where_the_kernel_is_installed() -> None:
    """Every registration agreed with its ``to_value`` on import (else the codec is left unused)."""
    assert CODEC is not None
    assert rc.record_codec() is CODEC
    use_codec_kernel(False)
    try:
        assert rc.record_codec() is None
    finally:
        use_codec_kernel(True)


def test_a_reading_record_by_hand() -> None:
    # 84: array(4); 19 0708: 1800; 58 20 + 32 bytes; 64 "lot1"; 07
    rec = ReadingRecord(1800, HASH, "lot1", 7)
    want = bytes.fromhex("84190708" "5820") + HASH + b"\x64lot1" + b"\x07"
    assert CODEC is not None
    assert CODEC.encode(rec) == want == reference(rec)


def test_an_account_leaves_out_an_empty_blind() -> None:
    """``Account.to_value`` has 11 items, 12 with a blinding value: the array's head says which."""
    assert CODEC is not None
    plain = Account("acme", "Acme", "prosumer", b"\x01" * 32, 3, 10, 0, 0, 1, -5, 0)
    assert CODEC.encode(plain) == reference(plain)
    assert CODEC.encode(plain)[:1] == b"\x8b"  # type: ignore[index]
    blinded = Account("acme", "Acme", "prosumer", b"\x01" * 32, 3, 10, 0, 0, 1, -5, 0, b"\x02" * 16)
    assert CODEC.encode(blinded)[:1] == b"\x8c"  # type: ignore[index]
    assert CODEC.encode(blinded) == reference(blinded)


def test_a_device_with_its_keys_and_a_lot_with_its_segments() -> None:
    assert CODEC is not None
    dev = Device("d1", "acme", 5_000, 1_700_000_000, 35_681_236, 139_767_125, "tokyo", "SN1", 1_900_000_000, False,
                 "solar_pv", [DeviceKey(b"\x03" * 32, 0, 0), DeviceKey(b"\x04" * 32, 1_700_000_000, 0, True)])
    dev.generation_register_wh = -1  # no reading yet: negative integers too
    lot = Lot("d1.1700000000", 1, 431, "d1", "acme", 944_444, 1_700_000_000, 1_700_000_060, 1_000, 431,
              "tokyo/2024/adjusted", "solar_pv", 35_681_236, 139_767_125, "tokyo", False, 9, 1_700_000_100, HASH,
              "reading", "", [Segment(1, 200, "acme", "tradable", ""), Segment(200, 432, "beta", "retired", "t1")])
    for obj in (dev, lot, SlotTally(1_700_000_000, 60, 10, 0, 0, lots=["a", "b"]), Supply(5, 4, 3, 1, 0, 0)):
        assert CODEC.encode(obj) == reference(obj)


integers = st.integers(min_value=-(2**63), max_value=2**64 - 1)
texts = st.text(max_size=12)


@st.composite
def segment(draw: st.DrawFn) -> Segment:
    return Segment(draw(integers), draw(integers), draw(texts), draw(texts), draw(texts))


@st.composite
def lot(draw: st.DrawFn) -> Lot:
    ints = [draw(integers) for _ in range(14)]
    return Lot(draw(texts), ints[0], ints[1], draw(texts), draw(texts), ints[2], ints[3], ints[4], ints[5], ints[6],
               draw(texts), draw(texts), ints[7], ints[8], draw(texts), draw(st.booleans()), ints[9], ints[10],
               draw(st.binary(max_size=40)), draw(texts), draw(texts), draw(st.lists(segment(), max_size=4)))


@given(lot())
def test_random_lots_encode_as_the_reference(obj: Lot) -> None:
    assert CODEC is not None
    assert CODEC.encode(obj) == reference(obj)


@given(st.lists(integers, min_size=9, max_size=9), st.lists(texts, max_size=5), st.text(max_size=10),
       st.binary(max_size=33))
def test_random_tallies_and_accounts_encode_as_the_reference(ints: list[int], lots: list[str], name: str,
                                                              blind: bytes) -> None:
    assert CODEC is not None
    tally = SlotTally(ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], ints[7], ints[8], lots)
    acct = Account(name, name, "buyer", blind, ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6], blind)
    for obj in (tally, acct):
        assert CODEC.encode(obj) == reference(obj)


@given(st.one_of(st.integers(max_value=-(2**63) - 1), st.integers(min_value=2**64), st.floats()))
def test_values_the_reference_encodes_are_left_to_it(n: Any) -> None:
    """A big integer (cbor2's bignum tag) or a float in any field: None, whatever the other fields."""
    assert CODEC is not None
    assert CODEC.encode(ReadingRecord(n, HASH, "l", 1)) is None
    assert CODEC.encode(Lot("l", 1, 1, "d", "o", 1, 1, 1, 1, 1, "f", "t", 1, 1, "g", False, 1, 1, HASH, "reading",
                            "", [Segment(0, n, "o", "tradable", "")])) is None


def test_what_it_does_not_know_is_left_to_the_reference() -> None:
    assert CODEC is not None

    @dataclass(slots=True)
    class Other:
        n: int

        def to_value(self) -> list[Any]:
            return [self.n]

    class Sub(ReadingRecord):
        __slots__ = ()

    unset = object.__new__(ReadingRecord)
    wrong_nested = Lot("l", 1, 1, "d", "o", 1, 1, 1, 1, 1, "f", "t", 1, 1, "g", False, 1, 1, HASH, "reading", "",
                       [ReadingRecord(1, HASH, "", 1)])  # type: ignore[list-item]
    tupled = Device("d1", "acme", 1, 1, 1, 1, "g", "s", 1, False, "t", (DeviceKey(HASH, 0, 0),))  # type: ignore[arg-type]
    for obj in (Other(1), Sub(1, HASH, "", 1), unset, wrong_nested, tupled, 7, "x", None):
        assert CODEC.encode(obj) is None


def test_values_of_a_blocks_keys() -> None:
    """Each key's record from its kind's map; None where ``State.value_of`` must tell: a record the
    map does not hold, another kind, a number not in canonical form."""
    assert CODEC is not None
    rec, tally, supply = ReadingRecord(1800, HASH, "", 2), SlotTally(1800, lots=[]), Supply()
    acct = Account("acme", "Acme", "prosumer", HASH, 0, 0, 0, 0, 1, 0, 0)
    maps: dict[str, Any] = {"a": {"acme": acct}, "d": {}, "l": {}, "r": {("d1", 12): rec}, "v": {("d1", 1): tally},
                            "s": supply}
    keys = ["a/acme", "a/nobody", "r/d1/12", "r/d1/012", "r/d1/+12", "r/d1/12x", "r/d1", "v/d1/1", "s", "t/x",
            "g", "l/none", "r/d1/99999999999999999999"]
    got = CODEC.values_of(maps, keys)
    assert got == [reference(acct), None, reference(rec), None, None, None, None, reference(tally), reference(supply),
                   None, None, None, None]


def test_a_dict_subclass_is_read_as_a_dict() -> None:
    """A node's record maps fetch what they miss from disk (``LazyRecords``): the codec reads only
    what the map holds, and leaves the rest to ``value_of``, which fetches."""
    assert CODEC is not None

    class Fetching(dict[str, Any]):
        def __missing__(self, key: str) -> Any:
            raise AssertionError("the codec must not fetch")

        def get(self, key: str, default: Any = None) -> Any:
            raise AssertionError("the codec must not call get")

    seg = Segment(0, 1, "a", "tradable", "")
    one = Lot("l1", 1, 1, "d", "o", 1, 1, 1, 1, 1, "f", "t", 1, 1, "g", False, 1, 1, HASH, "reading", "", [seg])
    got = CODEC.values_of({"l": Fetching(l1=one)}, ["l/l1", "l/l2"])
    assert got == [reference(one), None]


def test_registration_checks() -> None:
    codec = crev_native.RecordCodec()

    @dataclass(slots=True)
    class Plain:
        a: int
        b: str

    @dataclass(slots=True)
    class Holder:
        items: list[Plain]

    with pytest.raises(ValueError, match="register Plain first"):
        codec.register(Holder, ["items"], [Plain], False)
    with pytest.raises(ValueError, match="one nested entry a field"):
        codec.register(Plain, ["a", "b"], [None], False)
    with pytest.raises(AttributeError):
        codec.register(Plain, ["a", "c"], [None, None], False)
    with pytest.raises(TypeError, match="plain classes only"):
        codec.register(int, ["real"], [None], False)
    codec.register(Plain, ["b", "a"], [None, None], False)  # the order is the caller's: to_value's
    assert codec.encode(Plain(1, "x")) == encode_reference(["x", 1])


def test_a_registration_that_differs_from_to_value_is_caught() -> None:
    """``_agrees`` compares a probe record with ``to_value``: fields out of order, a field missing
    or the empty-last rule wrong are each caught, so such a codec is never used."""
    codec = crev_native.RecordCodec()
    names = [f.name for f in fields(ReadingRecord)]
    codec.register(ReadingRecord, list(reversed(names)), [None] * len(names), False)
    assert not rc._agrees(codec, ReadingRecord, {}, False)
    codec.register(ReadingRecord, names[:-1], [None] * (len(names) - 1), False)
    assert not rc._agrees(codec, ReadingRecord, {}, False)
    acct = [f.name for f in fields(Account)]
    codec.register(Account, acct, [None] * len(acct), False)  # to_value leaves an empty blind out
    assert not rc._agrees(codec, Account, {}, True)
    codec.register(Account, acct, [None] * len(acct), True)
    assert rc._agrees(codec, Account, {}, True)


def test_every_event_encodes_as_its_to_value() -> None:
    """Each event, its type first: the codec learnt every event class of crev.ledger.events."""
    assert CODEC is not None
    assert rc.EVENTS
    for i, cls in enumerate(rc.EVENTS):
        e = rc._probe(cls, {}, None)
        assert CODEC.encode(e) == reference(e), cls.__name__
        assert CODEC.encode_value([e, (e, i)]) == encode_reference([e.to_value(), [e.to_value(), i]])


def test_a_result_with_its_events_encodes_as_the_reference() -> None:
    from crev.errors import ConflictError
    from crev.ledger.apply import TxResult
    from crev.ledger.events import Issued, ReadingAccepted

    accepted = ReadingAccepted("d1", 7, 1800, 60, 100, 20, 30, 90, 70, HASH, "d1.1800", "acme")
    issued = Issued("d1.1800", "d1", "acme", 1, 30, 70, 430, 1, "reading")
    ok = TxResult(HASH, "submit_readings", True, None, (accepted, issued), [["accepted", "d1.1800", 30]])
    failed = TxResult(HASH, "submit_readings", False, ConflictError("seq", "used"), (), None)
    for res in (ok, failed):
        want = encode_reference(res.to_value())
        assert res.encode() == want
        assert CODEC is not None and CODEC.encode_value(res.to_value(events_as_records=True)) == want
        use_codec_kernel(False)
        try:
            assert res.encode() == want
        finally:
            use_codec_kernel(True)
    assert CODEC.encode_value([1.5, issued]) is None  # a float: the reference's


def test_the_golden_chain_replays_alike_in_small_kernel_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """``State.seal`` and the tree hand the kernel a block's records, leaves and buckets in calls of
    ``KERNEL_CHUNK`` at most: with a chunk of 3, every block of the golden chain still has its
    golden hash (so every root is the same across chunk boundaries)."""
    import json
    from pathlib import Path

    from crev.core import statetree
    from tests.core.test_golden_vectors import replay_chain

    golden = json.loads((Path(__file__).parents[1] / "vectors" / "golden.json").read_text(encoding="utf-8"))
    monkeypatch.setattr(statetree, "KERNEL_CHUNK", 3)  # every kernel_chunks caller: tree and records
    _, outcomes = replay_chain()
    assert [o.header.hash.hex() for o in outcomes] == [b["block_hash"] for b in golden["chain"]["blocks"]]
    assert max(len(o.changed) for o in outcomes) > 3  # the chunks were used


def test_map_keys_parse_state_keys_as_map_key_does() -> None:
    """``crev_native.map_keys`` (``lazystate.evict``'s keep list): each key of the given kinds
    parsed as ``crev.ledger.snapshot.map_key`` parses it, in order, grouped by kind; a numbered key
    whose number is not plain ASCII digits is left to ``map_key`` (which may refuse it); other kinds
    are skipped."""
    from crev.ledger.snapshot import map_key

    keys = ["r/d1/12", "r/d1/007", "r/d1/x", "r/d1", "v/d-2/944444", "c/d1/3", "b/acme/tokyo/x", "b/acme",
            "l/lot.1", "t/ret1", "o/ord1", "d/dev1", "x", "r/", "é/x", "r/a/b/5", "r/d1/99999999999999999999",
            "r/d1/+5", "r/d1/٥", "l/"]
    kinds = "rvcblto"
    got, left = crev_native.map_keys(iter(keys), kinds)
    want: dict[str, list[Any]] = {k: [] for k in kinds}
    for key in keys:
        if key[0] in kinds and key[1:2] == "/" and key not in left:
            want[key[0]].append(map_key(key[0], key[2:]))
    assert got == want
    assert left == ["r/d1/x", "r/d1", "r/", "r/d1/99999999999999999999", "r/d1/+5", "r/d1/٥"]
    assert got["r"] == [("d1", 12), ("d1", 7), ("a/b", 5)] and got["b"] == [("acme", "tokyo/x"), ("acme", "")]
