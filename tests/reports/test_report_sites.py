"""Which sites a participant's report covers, found on a read-only view without reading every
device in the fleet: the devices it got readings for (by index) and the ones it owns without any
reading yet (among the checkpoint's device rows, then checked through the state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.node.node import LedgerView
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
