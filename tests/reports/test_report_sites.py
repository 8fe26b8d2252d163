"""Which sites a participant's report covers, found on a read-only view without reading every
device in the fleet: the devices it got readings for (by index) and the ones it owns without any
reading yet (by the ``ix_devices`` index, or among the checkpoint's device rows in a file from
before it, then checked through the state)."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.update_device import UpdateDevice
from crev.node.node import DB_FILE, LedgerView
from crev.node.store import Store
from crev.reports.report import participant_report, report_dict, sites_of
from tests.node import nodekit as k

OTHER = "other-co"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sun-co owns dgc-0, dgc-1 (2 readings each) and dgc-2 (none); other-co owns dgc-7 (none).
    Closed cleanly: the checkpoint is at the head, so a view holds nothing it was not asked for."""
    d = k.init_dir(tmp_path_factory.mktemp("sites") / "ledger")
    node = k.open_node(d)
    s = k.register_fleet(node, 3)
    r = node.submit_wait(s.tx(k.OPERATOR, RegisterParticipant(OTHER, "Other Co", "prosumer", k.key(OTHER).public_key)))
    assert r.ok, r.error
    r = node.submit_wait(s.tx(k.OPERATOR, RegisterDevice(
        "dgc-7", OTHER, k.key("dev/dgc-7").public_key, k.CAPACITY_W, k.T0 - 30 * 86400, 35_681_236, 139_767_125,
        "tokyo", "SN-0007", k.T0 + 5 * 365 * 86400, False, "solar_pv")))
    assert r.ok, r.error
    for j in range(2):
        r = node.submit_wait(k.batch(2, j))
        assert r.ok, r.error
    node.close()
    return d


def test_the_sites_are_those_with_readings_and_those_owned_without(ledger: Path) -> None:
    v = LedgerView(ledger)
    try:
        assert v.loaded_in_full is None
        assert sites_of(v.state, v.store, k.OWNER) == {"dgc-0", "dgc-1", "dgc-2"}
        assert sites_of(v.state, v.store, OTHER) == {"dgc-7"}
        assert sites_of(v.state, v.store, k.BUYER) == set()
    finally:
        v.close()


def test_finding_one_owner_s_sites_reads_only_its_devices(ledger: Path) -> None:
    v = LedgerView(ledger)
    try:
        devices = v.state.devices
        assert dict.__len__(devices) == 0  # nothing read yet
        rep = participant_report(v.state, v.store, OTHER)
        assert [s.device_id for s in rep.sites] == ["dgc-7"] and rep.sites[0].slots == {}
        assert set(dict.keys(devices)) == {"dgc-7"}  # not sun-co's three
    finally:
        v.close()


def test_the_report_equals_the_one_from_the_whole_state(ledger: Path) -> None:
    lazy, full = LedgerView(ledger), LedgerView(ledger, full=True)
    try:
        for acct in (k.OWNER, OTHER, k.BUYER):
            a = participant_report(lazy.state, lazy.store, acct)
            b = participant_report(full.state, full.store, acct)
            assert report_dict(a, lazy.state.last_time) == report_dict(b, full.state.last_time)
        owner = participant_report(lazy.state, lazy.store, k.OWNER)
        assert [s.device_id for s in owner.sites] == ["dgc-0", "dgc-1", "dgc-2"]
        # 2 one-minute readings of dgc-0 and dgc-1 in the 09:00 slot: 4 × 800 Wh generated
        assert sum(f.generation_wh for s in owner.sites for f in s.slots.values()) == 4 * k.GEN
        assert owner.sites[2].slots == {}
    finally:
        lazy.close()
        full.close()


def device_rows(d: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(d / DB_FILE)) as db:
        return [(str(a), str(b)) for a, b in db.execute("SELECT device_id, owner FROM ix_devices ORDER BY 1")]


def test_ix_devices_names_each_device_s_owner_and_follows_a_change_of_owner(ledger: Path, tmp_path: Path) -> None:
    """The checkpoint writes a device's row when it is registered or given another owner (not at
    each reading); the report then finds the owner's devices without readings by that index."""
    assert device_rows(ledger) == [("dgc-0", k.OWNER), ("dgc-1", k.OWNER), ("dgc-2", k.OWNER), ("dgc-7", OTHER)]
    d = tmp_path / "ledger"
    shutil.copytree(ledger, d)
    node = k.open_node(d)
    try:
        s = k.Signers({k.OPERATOR: node.state.accounts[k.OPERATOR].nonce})
        r = node.submit_wait(s.tx(k.OPERATOR, UpdateDevice("dgc-2", (("owner", OTHER),))))
        assert r.ok, r.error
        r = node.submit_wait(s.tx(k.OPERATOR, UpdateDevice("dgc-1", (("fit", True),))))  # not the owner
        assert r.ok, r.error
    finally:
        node.close()
    assert device_rows(d) == [("dgc-0", k.OWNER), ("dgc-1", k.OWNER), ("dgc-2", OTHER), ("dgc-7", OTHER)]
    with closing(LedgerView(d)) as v:
        assert v.store.has_device_index
        assert sites_of(v.state, v.store, k.OWNER) == {"dgc-0", "dgc-1"}  # dgc-2 had no reading while sun-co's
        assert sites_of(v.state, v.store, OTHER) == {"dgc-2", "dgc-7"}


def test_a_wrong_ix_devices_row_does_not_give_a_participant_another_s_device(ledger: Path, tmp_path: Path) -> None:
    """The index is not signed: each device it names is read through the state (checked against
    the signed root) and kept only if the participant owns it there."""
    d = tmp_path / "ledger"
    shutil.copytree(ledger, d)
    with closing(sqlite3.connect(d / DB_FILE)) as db:
        assert db.execute("UPDATE ix_devices SET owner = ? WHERE device_id = 'dgc-7'", (k.OWNER,)).rowcount == 1
        db.commit()
    with closing(LedgerView(d)) as v:
        assert sites_of(v.state, v.store, k.OWNER) == {"dgc-0", "dgc-1", "dgc-2"}  # dgc-7 read, and dropped
    with closing(LedgerView(d)) as v:  # a fresh view, which holds no device yet
        assert sites_of(v.state, v.store, OTHER) == set()  # what a lost row costs: dgc-7 had no reading


def test_a_file_from_before_ix_devices_is_read_by_scan_and_filled_when_opened_for_writing(
        ledger: Path, tmp_path: Path) -> None:
    d = tmp_path / "ledger"
    shutil.copytree(ledger, d)
    with closing(sqlite3.connect(d / DB_FILE)) as db:
        db.execute("DROP TABLE ix_devices")
        db.execute("DELETE FROM meta WHERE k = 'ix_devices_filled'")
        db.commit()
    with closing(LedgerView(d)) as v:
        assert not v.store.has_device_index and v.loaded_in_full is None
        assert sites_of(v.state, v.store, k.OWNER) == {"dgc-0", "dgc-1", "dgc-2"}
        assert sites_of(v.state, v.store, OTHER) == {"dgc-7"}
    with closing(Store(d / DB_FILE)) as store:
        assert store.has_device_index
    assert device_rows(d) == [("dgc-0", k.OWNER), ("dgc-1", k.OWNER), ("dgc-2", k.OWNER), ("dgc-7", OTHER)]


def test_reading_ahead_reads_the_buckets_on_their_own_connections_and_writes_nothing(
        ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Store.read_ahead`` runs the buckets' range reads on read-only connections of its own, all
    the spans split between them; too few spans are left to the usual reads. It changes no byte of
    the file, and a report read after it is the same."""
    d = tmp_path / "ledger"
    shutil.copytree(ledger, d)
    before = (d / DB_FILE).read_bytes()
    opened: list[str] = []
    queries: list[tuple[int, int]] = []
    connect = sqlite3.connect

    class Counting:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def execute(self, sql: str, args: tuple[int, int]) -> sqlite3.Cursor:
            queries.append(args)
            return self.db.execute(sql, args)

        def close(self) -> None:
            self.db.close()

    def spy(target: str, *a: Any, **kw: Any) -> object:
        opened.append(target)
        return Counting(connect(target, *a, **kw))

    with closing(LedgerView(d)) as v:
        expected = report_dict(participant_report(v.state, v.store, k.OWNER), v.state.last_time)
    with closing(LedgerView(d)) as v:
        spans = [(b << 22, (b + 1) << 22) for b in range(1024)]  # the whole kh range, in 1,024 spans
        monkeypatch.setattr(sqlite3, "connect", spy)
        v.store.read_ahead(spans[:7], threads=4)  # fewer than 2 a connection: not worth it
        assert opened == [] and queries == []
        v.store.read_ahead(spans, threads=4)
        monkeypatch.undo()
        assert opened == [f"file:{d / DB_FILE}?mode=ro"] * 4
        assert sorted(queries) == spans
        assert report_dict(participant_report(v.state, v.store, k.OWNER), v.state.last_time) == expected
    assert (d / DB_FILE).read_bytes() == before


def test_a_report_reads_ahead_twice_whatever_its_number_of_sites(ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once for the lots the participant held, once for every site's slot tallies: not once a site."""
    calls: list[int] = []
    monkeypatch.setattr(Store, "read_ahead", lambda self, spans, threads=8: calls.append(len(spans)))
    with closing(LedgerView(ledger)) as v:
        rep = participant_report(v.state, v.store, k.OWNER)
    assert [s.device_id for s in rep.sites] == ["dgc-0", "dgc-1", "dgc-2"]
    # 2 lots each of dgc-0 and dgc-1, and their one 09:00 slot each; dgc-2 has neither
    assert len(calls) == 2 and 1 <= calls[0] <= 4 and 1 <= calls[1] <= 2
