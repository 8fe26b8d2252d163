"""`crev dgc run` asks the ledger, before it signs anything, whether the ledger would take what it
signs: an unknown device id or a key file holding none of the device's keys stops it with an error
naming the config field (nothing is signed, so nothing is lost); a ledger it cannot reach does not
stop it (it signs and stores, and the dead letters would name the problem later)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crev.cli.dgc import registration_problem
from crev.device.config import SiteConfig, parse_config
from crev.sim.site import ManualClock
from tests.device.test_agent_e2e import (
    SURPLUS_SITE,
    Ledger,
    config_doc,
    key,
    midnight_days_ago,
    open_ledger,
    sim_site,
    toml,
)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = open_ledger(tmp_path / "ledger", midnight_days_ago(2))
    try:
        yield led
    finally:
        led.close()


def site(tmp: Path, url: str, **change: str) -> SiteConfig:
    sim = sim_site(ManualClock(midnight_days_ago(1)))
    sim.stop()
    doc = config_doc(tmp, sim, url)
    doc["sites"][0].update(change)
    return parse_config(doc, tmp).sites[0]


def test_a_registered_device_with_its_key_passes(ledger: Ledger, tmp_path: Path) -> None:
    assert registration_problem(site(tmp_path, ledger.url), 0, key(f"dev/{SURPLUS_SITE}").public_key) is None


def test_an_unknown_device_is_named_by_its_config_field(ledger: Ledger, tmp_path: Path) -> None:
    problem = registration_problem(site(tmp_path, ledger.url, device_id="no-such-site"), 0,
                                   key(f"dev/{SURPLUS_SITE}").public_key)
    assert problem == (f"sites[0].device_id: the ledger at {ledger.url} has no device 'no-such-site' "
                       "(ask the operator to register it)")


def test_a_key_file_with_another_key_is_named(ledger: Ledger, tmp_path: Path) -> None:
    wrong = key("someone-else").public_key
    problem = registration_problem(site(tmp_path, ledger.url), 0, wrong)
    assert problem is not None and problem.startswith(f"sites[0].key_file: {tmp_path / 'dev.key'} holds key "
                                                      f"{wrong.hex()[:16]}…, which is not a key of device "
                                                      f"{SURPLUS_SITE!r} on the ledger (registered: "
                                                      f"{key(f'dev/{SURPLUS_SITE}').public_key.hex()[:16]}…)")


def test_an_unreachable_ledger_is_not_a_reason_to_stop(tmp_path: Path) -> None:
    assert registration_problem(site(tmp_path, "http://127.0.0.1:9"), 0, key("x").public_key) is None


def test_crev_dgc_run_stops_on_a_wrong_key_before_signing_anything(ledger: Ledger, tmp_path: Path) -> None:
    sim = sim_site(ManualClock(midnight_days_ago(1)))
    try:
        doc = config_doc(tmp_path, sim, ledger.url)
        (tmp_path / "dev.key").write_text(key("someone-else").seed.hex())
        (tmp_path / "dgc.toml").write_text(toml(doc))
        r = subprocess.run([sys.executable, "-m", "crev.cli", "dgc", "run", str(tmp_path / "dgc.toml")],
                           capture_output=True, text=True, timeout=60)
    finally:
        sim.stop()
    assert r.returncode != 0
    assert "sites[0].key_file" in r.stdout + r.stderr and "not a key of device" in r.stdout + r.stderr
    assert not (tmp_path / "outbox.sqlite").exists()  # nothing was signed
