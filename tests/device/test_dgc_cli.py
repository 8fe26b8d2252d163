"""`crev dgc`: config errors name their field, `status` as tables and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crev.cli import main
from crev.device.config import load_config
from crev.device.outbox import Outbox
from crev.errors import MalformedError

GOOD = """
ledger_url = "http://127.0.0.1:8000"
chain_id = "crev-test"

[clock]
origin = "2026-06-10T06:00"
speed = 60.0

[[sites]]
device_id = "site-001"
key_file = "site-001.key"
[sites.smart_meter]
host = "192.0.2.10"
[sites.inverter]
host = "192.0.2.11"
unit = 1
[sites.grid_meter]
host = "192.0.2.11"
unit = 2
[sites.control]
export_limit_w = 0
schedule_file = "sched.csv"

[[sites]]
device_id = "site-002"
key_file = "/keys/site-002.key"
interval_s = 300
outbox = "/var/lib/crev/site-002.sqlite"
[sites.smart_meter]
host = "192.0.2.20"
port = 3610
[sites.inverter]
host = "192.0.2.21"
[sites.grid_meter]
host = "192.0.2.21"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "sched.csv").write_text("2026-06-10T11:00,2026-06-10T13:00,50\n")
    p = tmp_path / "dgc.toml"
    p.write_text(text)
    return p


def test_a_good_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    a, b = cfg.sites
    assert (a.device_id, a.interval_s, a.smart_meter.port, a.inverter.port, a.grid_meter.unit) == (
        "site-001", 1800, 3610, 502, 2)
    assert a.key_file == tmp_path / "site-001.key" and a.outbox == tmp_path / "site-001.outbox.sqlite"
    assert a.control.enabled and a.control.policy.export_limit_w == 0 and a.control.schedule[0].limit_pct == 50
    assert not b.control.enabled and b.interval_s == 300 and b.max_read_delay_s == 20
    assert cfg.clock is not None and cfg.clock.speed == 60.0 and cfg.chain_id == "crev-test"


@pytest.mark.parametrize(("old", "new", "field"), [
    ('port = 3610', 'port = 70000', "sites[1].smart_meter.port"),
    ('interval_s = 300', 'interval_s = 420', "sites[1].interval_s"),
    ('interval_s = 300', 'interval_s = 30', "sites[1].interval_s"),
    ('device_id = "site-002"', 'device_id = "Site 2"', "sites[1].device_id"),
    ('device_id = "site-002"', 'device_id = "site-001"', "sites[1].device_id"),
    ('export_limit_w = 0', 'export_limit_w = -5', "sites[0].control.export_limit_w"),
    ('export_limit_w = 0', 'export_limit_w = "none"', "sites[0].control.export_limit_w"),
    ('unit = 2', 'unit = 300', "sites[0].grid_meter.unit"),
    ('speed = 60.0', 'speed = 0', "clock.speed"),
    ('origin = "2026-06-10T06:00"', 'origin = "dawn"', "clock.origin"),
    ('ledger_url = "http://127.0.0.1:8000"', 'ledger_url = "127.0.0.1:8000"', "ledger_url"),
    ('schedule_file = "sched.csv"', 'schedule_file = "missing.csv"', "sites[0].control.schedule_file"),
    ('key_file = "site-001.key"', 'key_fil = "site-001.key"', "sites[0].key_fil"),
])
def test_a_bad_field_is_named(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in GOOD
    with pytest.raises(MalformedError) as e:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    assert e.value.field == field, e.value


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("port = 3610", "port = 0"))
    r = CliRunner().invoke(main, ["dgc", "status", str(p)])
    assert r.exit_code == 2
    assert "sites[1].smart_meter.port: must be 1..65535, found 0" in " ".join(r.output.split())


def test_status_tables_and_json(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    ob = Outbox(tmp_path / "site-001.outbox.sqlite")
    ob.save({"chain_id": "crev-test", "device_id": "site-001", "dgc": {"seq": 1, "g": 10, "i": 0, "e": 0},
             "signed_end": 1_780_000_200})
    ob.put("submit_readings", "seq 1", ["r"], {"seq": 1, "interval_start": 1_780_000_200 - 1800, "generation_wh": 10,
                                              "import_wh": 0, "export_wh": 0}, 1_780_000_200, {})
    ob.alert("site-001", "inverter x.energy_wh", "went back from 5 to 4 Wh", 1_780_000_200)
    ob.good("inverter x", 1_780_000_200)
    ob.close()
    r = CliRunner().invoke(main, ["dgc", "status", str(p), "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert st["site-001"]["outbox"]["submit_readings"] == 1
    assert st["site-001"]["alerts"][0]["field"] == "inverter x.energy_wh"
    assert st["site-002"]["outbox_missing"] == "/var/lib/crev/site-002.sqlite"
    r = CliRunner().invoke(main, ["dgc", "status", str(p)])
    assert r.exit_code == 0, r.output
    assert "last readings" in r.output and "went back" in r.output and "no outbox yet" in r.output
