"""A new reading (seq above its device's last_seq) cannot have been accepted before, so its handler
does not ask the record map for a prior one (on a node that map reads from disk); a replay, an
older seq or the same reading again still finds what was recorded. The rule it rests on is an
invariant: every reading record's seq is at most its device's last_seq."""

from __future__ import annotations

from typing import Any

import pytest

from crev.errors import InvalidBlock
from crev.ledger.invariants import check_invariants
from crev.ledger.records import ReadingRecord
from tests.ledger_kit import NOON, Kit


class CountingRecords(dict[tuple[str, int], ReadingRecord]):
    """The readings map, keeping the look-ups that found nothing (on a node, each is a read from
    disk) and those that found a record."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.missed: list[tuple[str, int]] = []
        self.found: list[tuple[str, int]] = []

    def get(self, k: tuple[str, int], default: Any = None) -> Any:
        (self.found if k in self else self.missed).append(k)
        return super().get(k, default)


def test_new_readings_skip_the_lookup_and_duplicates_still_find_their_record(kit: Kit) -> None:
    kit.time = NOON + 3600
    records = kit.state.readings = CountingRecords(kit.state.readings)
    first = kit.reading(NOON, 1_000, 0, 0, interval_s=1800)  # seq 1: 1,000 Wh × 450 = 450 g
    res = kit.one(kit.submit(first))
    assert res.detail == [["accepted", "dgc-1:20260601T1200", 450]]
    assert records.missed == []  # seq 1 > last_seq 0: no prior looked for
    second = kit.reading(NOON + 1800, 2_000, 0, 0, interval_s=1800)  # seq 2
    res = kit.one(kit.submit(second, first))
    assert res.ok
    assert res.detail == [["accepted", "dgc-1:20260601T1230", 900], ["duplicate", "dgc-1:20260601T1200", 450]]
    assert records.missed == []
    assert ("dgc-1", 1) in records.found  # the replay (seq 1 ≤ last_seq 2) found its record
    check_invariants(kit.state)


def test_a_different_reading_with_a_used_seq_is_still_a_conflict(kit: Kit) -> None:
    kit.time = NOON + 3600
    assert kit.one(kit.submit(kit.reading(NOON, 1_000, 0, 0, interval_s=1800))).ok
    other = kit.reading(NOON, 1_001, 0, 0, interval_s=1800, seq=1, regs=(1_001_001, 2_000_000, 300_000))
    res = kit.one(kit.submit(other))
    assert not res.ok and res.error is not None
    assert (res.error.code, res.error.field) == ("conflict", "readings[0].seq")
    assert res.error.reason.startswith("seq 1 was already used by a different reading (accepted at height 2)")


def test_a_reading_record_above_its_devices_last_seq_breaks_an_invariant(kit: Kit) -> None:
    kit.time = NOON + 3600
    assert kit.one(kit.submit(kit.reading(NOON, 1_000, 0, 0, interval_s=1800))).ok
    rec = kit.state.readings[("dgc-1", 1)]
    kit.state.readings[("dgc-1", 5)] = rec  # seq 5 > last_seq 1
    with pytest.raises(InvalidBlock) as err:
        check_invariants(kit.state)
    assert (err.value.field, err.value.reason) == ("reading dgc-1/5", "is above the device's last_seq 1")
    del kit.state.readings[("dgc-1", 5)]
    kit.state.readings[("ghost", 1)] = rec
    with pytest.raises(InvalidBlock, match="no device 'ghost'"):
        check_invariants(kit.state)
