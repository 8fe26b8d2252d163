"""The kernel's checkpoint rows (``crev_native.pack_state_rows`` and ``pack_event_rows``, written
by ``packed.insert_packed``) change speed, never what is stored: a checkpoint written through them
leaves every table of the state file exactly as the reference (Python rows, ``insert_rows``)
does, value for value and type for type, on hand-made rows with every character JSON escapes and
on random ones; where the kernel cannot render a value exactly it says so (None), and the
reference writes."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crev.ledger.apply import TxResult
from crev.ledger.events import Issued, ReadingAccepted, Retired, Traded, Transferred
from crev.node import packed as packed_module
from crev.node.packed import LOT_ROWS, READING_ROWS, PackedRows, use_rows_kernel
from crev.node.store import Store, prepare_checkpoint

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")
if packed_module.ROWS_KERNEL is None:
    pytest.skip("the installed crev_native predates pack_state_rows (or SQLite < 3.38)", allow_module_level=True)

TABLES = ("state", "ix_readings", "ix_lots", "ix_moves", "ix_orders", "ix_devices", "state_buckets", "meta")
TRICKY = ['q"uote', "back\\slash", "new\nline", "tab\t", "\x01\x1f", "é", "あ", "😀", "\u2028", "\x7f", "", "plain"]


@pytest.fixture(autouse=True)
def kernel_back_on() -> Iterator[None]:
    yield
    use_rows_kernel(True)


def reading(device: str, seq: int, lot: str, owner: str, rh: bytes = b"\x11" * 32) -> ReadingAccepted:
    return ReadingAccepted(device, seq, 1_764_300_000 + 60 * seq, 60, 500, 120, 80, 540, 420, rh, lot, owner)


def issued(lot: str, device: str, owner: str, first: int) -> Issued:
    return Issued(lot, device, owner, first, 187, 420, 445, 980_167, "reading")


def dump(path: Path) -> dict[str, list[tuple[tuple[str, Any], ...]]]:
    db = sqlite3.connect(path)
    try:
        return {t: sorted(tuple((type(v).__name__, v) for v in row) for row in db.execute(f"SELECT * FROM {t}"))
                for t in TABLES}
    finally:
        db.close()


def write_both(tmp_path: Path, checkpoints: list[tuple[int, dict[str, bytes | None], list[tuple[int, list[TxResult]]]]]
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same checkpoints written by the kernel's path and by the reference; both dumps."""
    out = []
    for name, kernel in (("kernel", True), ("reference", False)):
        assert use_rows_kernel(kernel) == kernel
        (tmp_path / name).mkdir()
        store = Store(tmp_path / name / "ledger.sqlite")
        try:
            for height, changes, outcomes in checkpoints:
                store.write_checkpoint(height, changes, outcomes)
        finally:
            store.close()
        out.append(dump(tmp_path / name / "ledger.sqlite"))
    use_rows_kernel(True)
    return out[0], out[1]


def test_pack_state_rows_by_hand() -> None:
    """Sorted by key hash (b's is below o/1's), a blob cell is its offset (1-based) and length; the
    delete and the order come back apart; the key hashes list the upserts', then the deletes'."""
    (json, blob, n), deletes, hashes, orders = crev_native.pack_state_rows({"b": b"x", "a": None, "o/1": b"\x01\x02"})
    assert json == '[[1042540566,"b",1,1],[3617515160,"o/1",2,2]]' and blob == b"x\x01\x02" and n == 2
    assert deletes == [(3398926610, "a")]
    assert hashes == [1042540566, 3617515160, 3398926610]
    assert orders == [("o/1", b"\x01\x02")]


def test_every_character_json_escapes_is_stored_as_the_reference_stores_it(tmp_path: Path) -> None:
    changes: dict[str, bytes | None] = {f"l/{t}": t.encode() for t in TRICKY}
    changes["r/gone"] = None
    th = b"\xaa" * 32
    results = [TxResult(th, "submit_readings", True, None,
                        tuple(e for i, t in enumerate(TRICKY)
                              for e in (reading(f"dev{t}", i + 1, f"lot{t}", f"own{t}"),
                                        issued(f"lot{t}", f"dev{t}", f"own{t}", 1000 * i))), None)]
    kernel, reference = write_both(tmp_path, [(3, changes, [(3, results)])])
    assert kernel == reference
    assert len(kernel["state"]) == len(TRICKY) and len(kernel["ix_readings"]) == len(kernel["ix_lots"]) == len(TRICKY)
    assert ("str", 'lotq"uote') in [row[7] for row in kernel["ix_readings"]]


def test_a_later_row_replaces_an_earlier_one_in_both_and_the_other_events_index_as_before(tmp_path: Path) -> None:
    """The same reading indexed by two blocks (a replay after a crash): the later height stays,
    in both. Transfers, trades and retirements go to ix_moves through the reference's code."""
    th1, th2 = b"\x01" * 32, b"\x02" * 32
    r1 = TxResult(th1, "submit_readings", True, None,
                  (reading("d1", 1, "L1", "alice"), issued("L1", "d1", "alice", 0)), None)
    moves = TxResult(th2, "transfer", True, None, (
        Transferred("L1", "alice", "bob", 0, 50),
        Traded("T1", "m1", "ob", "oa", "carol", "bob", 10, 5000, 0, 0, 0, (("L1", 50, 60),), "bid", ""),
        Retired("R1", "carol", "Carol KK", "FY2026 report", "L1", 50, 60)), None)
    again = TxResult(th2, "submit_readings", True, None, (reading("d1", 1, "L1", "alice"),), None)
    kernel, reference = write_both(tmp_path, [(2, {"d/d1": b"\x05"}, [(1, [r1]), (2, [moves])]),
                                              (4, {"d/d1": b"\x06", "o/o1": None}, [(4, [again])])])
    assert kernel == reference
    assert [row[9] for row in kernel["ix_readings"]] == [("int", 4)]
    assert len(kernel["ix_moves"]) == 3
    kh = int.from_bytes(hashlib.sha256(b"d/d1").digest()[:4], "big")
    assert kernel["state"] == [(("int", kh), ("str", "d/d1"), ("bytes", b"\x06"))]


def test_values_the_kernel_cannot_render_exactly_are_left_to_the_reference() -> None:
    assert crev_native.pack_state_rows({"l/a\x00b": b"v"}) is None  # NUL in a text
    assert crev_native.pack_state_rows({"l/\ud800": b"v"}) is None  # a lone surrogate
    assert crev_native.pack_state_rows({"l/a": bytearray(b"v")}) is None  # not exact bytes
    assert crev_native.pack_state_rows({"l/a": 5}) is None
    th = b"\x01" * 32
    for bad in (reading("d", 2**64, "L", "o"), reading("d", True, "L", "o"), reading("d", 1, "L\x00", "o"),  # type: ignore[arg-type]
                reading("d", 1, "L", "o", rh="not bytes")):  # type: ignore[arg-type]
        res = TxResult(th, "submit_readings", True, None, (bad,), None)
        assert crev_native.pack_event_rows([(1, [res])], [READING_ROWS, LOT_ROWS]) is None
    # prepare_checkpoint then builds the reference's rows
    huge = TxResult(th, "k", True, None, (reading("d", 2**64, "L", "o"),), None)
    cp = prepare_checkpoint(1, {"l/a\x00b": b"v"}, [(1, [huge])])
    assert isinstance(cp.upserts, list) and isinstance(cp.readings, list) and cp.readings[0][1] == 2**64


def test_event_fields_are_read_from_their_slots_and_an_unset_one_is_refused_as_getattr_refuses_it() -> None:
    """The kernel reads an event's fields at slot offsets it probes on the class (not by
    ``getattr``): each row holds the values the event holds, and a field left unset (an event made
    without ``__init__``) raises the AttributeError that reading it in Python raises."""
    th = b"\x01" * 32
    events = (reading("d", 3, "L", "o"), issued("L", "d", "o", 9))
    (reading_rows, lot_rows), others = crev_native.pack_event_rows(
        [(4, [TxResult(th, "submit_readings", True, None, events, None)])], [READING_ROWS, LOT_ROWS])
    assert others == []
    assert reading_rows[2] == 1 and lot_rows[2] == 1
    # the JSON rows: each field in the table's order, the blob cells as (offset, length) into the blob
    assert reading_rows[0] == '[["d",3,1764300180,60,500,120,80,"L",1,32,4,33,32,"o"]]'
    assert reading_rows[1] == b"\x11" * 32 + th
    assert lot_rows[0] == '[["L",9,187,"d","o",980167,420,445,"reading",4,1,32]]'
    unset = object.__new__(ReadingAccepted)
    for name in ReadingAccepted.__slots__[:-1]:  # every field but ``owner``
        object.__setattr__(unset, name, getattr(events[0], name))
    with pytest.raises(AttributeError, match="owner"):
        unset.owner  # noqa: B018
    with pytest.raises(AttributeError, match="owner"):
        crev_native.pack_event_rows([(4, [TxResult(th, "k", True, None, (unset,), None)])], [READING_ROWS, LOT_ROWS])


def test_the_kernel_packs_where_it_can_whatever_sequence_holds_the_results() -> None:
    one = TxResult(b"\x01" * 32, "k", True, None, (reading("d", 1, "L", "o"),), None)
    for results in ([one], (one,)):
        cp = prepare_checkpoint(1, {"l/a": b"v"}, [(1, results)])  # type: ignore[list-item]
        assert isinstance(cp.upserts, PackedRows) and isinstance(cp.readings, PackedRows) and cp.readings.count == 1


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.dictionaries(text, st.one_of(st.none(), st.binary(max_size=20)), max_size=12),
       names=st.lists(st.tuples(text, text, st.integers(-2**63, 2**63 - 1)), max_size=8))
def test_random_rows_are_stored_as_the_reference_stores_them(tmp_path_factory: pytest.TempPathFactory,
                                                             keys: dict[str, bytes | None],
                                                             names: list[tuple[str, str, int]]) -> None:
    tmp = tmp_path_factory.mktemp("random")
    events = tuple(e for i, (dev, owner, n) in enumerate(names)
                   for e in (ReadingAccepted(dev, i + 1, n, 60, n, 0, 0, 0, 0, bytes([i]) * i, owner, owner),
                             Issued(owner, dev, owner, n, i, n, 0, i, dev)))
    changes = {f"l/{k}": v for k, v in keys.items()}
    outcomes = [(7, [TxResult(b"\x07" * 32, "submit_readings", True, None, events, None)])]
    nul_in_events = any("\x00" in dev + owner for dev, owner, _ in names)
    kernel, reference = write_both(tmp, [(7, changes, outcomes)])
    assert kernel == reference
    cp = prepare_checkpoint(7, changes, outcomes)
    assert isinstance(cp.readings, PackedRows) == (not nul_in_events)
