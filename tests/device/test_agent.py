"""The DGC agent (device/agent.py) against in-memory devices backed by real site physics
(crev.sim.site.SitePhysics: PV under the inverter limit, integrated in joules) and the ledger's
real rules (tests/ledger_kit.py): boundaries, register gaps, bad registers, clamping, smart-meter
items, zero-export control, and the sender's outcomes through a transport that runs the kit ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from crev.core.encoding import decode
from crev.core.units import parse_time
from crev.device.agent import Devices, Sender, SiteAgent
from crev.device.config import SiteConfig, parse_config
from crev.device.echonet import jst_day_start
from crev.device.outbox import Outbox
from crev.device.ports import FixedValue, GridMeterRegisters, InverterIdentity, InverterStatus, MeterRegisters
from crev.errors import DeviceError
from crev.sim.fleet import FleetSimulator, make_fleet
from crev.sim.site import FleetPhysics, ManualClock, SitePhysics
from tests import ledger_kit as lk

DAY = parse_time("2026-06-01T00:00")  # the ledger kit's T0: FY2026, tokyo 450 g/kWh
SURPLUS_SITE = "site-002"  # make_fleet(6, 1): tokyo, 17 kW PV, 8.5 kW peak office load
SUNNY = parse_time("2026-06-10T00:00")  # a sunny Wednesday: site-002 exports ~13.6 of 28.3 kWh at 11:00-13:00


@cache
def fleet() -> FleetPhysics:
    return FleetPhysics(FleetSimulator(make_fleet(6, 1), 1))


# --- in-memory devices over the physics ---------------------------------------------------------


@dataclass
class MemSmartMeter:
    p: SitePhysics
    name: str = "smart-meter mem"
    no_data: bool = False
    no_history: bool = False
    history_shift_s: int = 0  # a meter that stamps its history one way or the other (00:00… or 00:30…)
    history_calls: int = 0

    def registers(self) -> MeterRegisters:
        imp, exp = self.p.smart_meter_wh()
        return MeterRegisters(imp, exp, 1, 10**9)

    def fixed_values(self) -> tuple[FixedValue, FixedValue]:
        self.p.advance()
        if self.no_data or not self.p.last_fixed_at:
            raise DeviceError(f"{self.name}.EA", "no data (0xFFFFFFFE)")
        imp, exp = self.p.fixed[self.p.last_fixed_at]
        return FixedValue(self.p.last_fixed_at, imp), FixedValue(self.p.last_fixed_at, exp)

    def instant_power_w(self) -> int:
        return self.p.net_power_w()

    def history(self, day_offset: int) -> tuple[list[FixedValue], list[FixedValue]]:
        """E2/E4 as the simulated node answers them: the JST day's fixed values at 00:00 ... 23:30."""
        self.history_calls += 1
        if self.no_history:
            raise DeviceError(f"{self.name}.E5", "refused (SetC_SNA from 0x028801)")
        start = jst_day_start(self.p.advance()) - day_offset * 86_400
        ats = [start + 1800 * i for i in range(48) if start + 1800 * i in self.p.fixed]
        sh = self.history_shift_s
        return ([FixedValue(t + sh, self.p.fixed[t][0]) for t in ats],
                [FixedValue(t + sh, self.p.fixed[t][1]) for t in ats])


@dataclass
class MemInverter:
    p: SitePhysics
    name: str = "inverter mem"
    energy_offset: Callable[[int], int] = lambda t: 0

    def identity(self) -> InverterIdentity:
        return InverterIdentity("mem", "PCS", "1", self.p.rated_w)

    def status(self) -> InverterStatus:
        g = self.p.generation_wh()
        return InverterStatus(g + self.energy_offset(self.p.t), self.p.pv_power_w(), self.p.limit_w)

    def set_limit_w(self, limit_w: int) -> int:
        return self.p.set_limit_w(limit_w)


@dataclass
class MemGridMeter:
    p: SitePhysics
    name: str = "grid-meter mem"
    export_offset: Callable[[int], int] = lambda t: 0
    down: bool = False

    def registers(self) -> GridMeterRegisters:
        if self.down:
            raise DeviceError(f"{self.name}.connection", "no answer within 2 s")
        imp, exp = self.p.dgc_meter_wh()
        return GridMeterRegisters(imp, exp + self.export_offset(self.p.t), self.p.net_power_w())


@dataclass
class Site:
    clock: ManualClock
    physics: SitePhysics
    meter: MemSmartMeter
    inverter: MemInverter
    grid: MemGridMeter
    cfg: SiteConfig
    outbox: Outbox
    agent: SiteAgent = field(init=False)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A new agent process on the same outbox (what a restart after kill -9 sees)."""
        self.agent = SiteAgent(self.cfg, lk.CHAIN, lk.key("dev/dgc-1"), Devices(self.meter, self.inverter, self.grid),
                               self.outbox)

    def run(self, until: int, step_s: int = 20) -> None:
        while self.clock.t < until:
            self.clock.advance(step_s)
            self.agent.step(self.clock.t)

    def skip(self, until: int) -> None:
        """The agent is down: time (and the sun) moves on without it."""
        self.clock.t = until
        self.physics.advance()

    def items(self, kind: str) -> list[list[Any]]:
        rows = self.outbox._db.execute("SELECT item FROM outbox WHERE kind = ? ORDER BY id", (kind,)).fetchall()
        return [decode(bytes(r[0])) for r in rows]


def site_config(tmp_path: Path, **control: Any) -> SiteConfig:
    doc: dict[str, Any] = {"ledger_url": "http://ledger.invalid", "sites": [{
        "device_id": "dgc-1", "key_file": "dgc-1.key", "smart_meter": {"host": "127.0.0.1"},
        "inverter": {"host": "127.0.0.1"}, "grid_meter": {"host": "127.0.0.1", "unit": 2}}]}
    if control:
        doc["sites"][0]["control"] = control
    return parse_config(doc, tmp_path).sites[0]


def make_site(tmp_path: Path, start: int, site_id: str = SURPLUS_SITE, **control: Any) -> Site:
    clock = ManualClock(start)
    p = SitePhysics(fleet(), site_id, clock)
    return Site(clock, p, MemSmartMeter(p), MemInverter(p), MemGridMeter(p), site_config(tmp_path, **control),
                Outbox(tmp_path / "dgc-1.outbox.sqlite"))


def ledger_kit() -> lk.Kit:
    kit = lk.make_kit()
    kit.time = DAY + 2 * 86400  # every reading of these tests lies before the block time
    return kit


def submit(kit: lk.Kit, kind: str, items: list[list[Any]]) -> list[Any]:
    from crev.core.encoding import encode

    r = kit.one(encode(["crev/tx/1", lk.CHAIN, kind, "", 0, items, b""]))
    assert r.ok, r.error
    return list(r.detail)


# --- boundaries and registers -------------------------------------------------------------------


def test_a_day_of_contiguous_readings_passes_the_ledger(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 6 * 3600 - 20)
    s.run(DAY + 6 * 3600 + 30)
    g0 = s.physics.generation_wh()
    s.run(DAY + 18 * 3600 + 30)
    readings = s.items("submit_readings")
    assert [r[3] for r in readings] == list(range(1, 25))
    assert [r[4] for r in readings] == [DAY + 6 * 3600 + 1800 * k for k in range(24)]
    detail = submit(ledger_kit(), "submit_readings", readings)
    assert all(d[0] == "accepted" for d in detail), detail
    total_g = sum(r[6] for r in readings)
    assert abs(total_g - (s.physics.generation_wh() - g0)) <= 20  # reads land within a 20 s step of the boundary
    assert sum(r[6] - r[8] for r in readings) > 0


def test_downtime_is_a_register_gap_never_an_invented_reading(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 8 * 3600 - 20)
    s.run(DAY + 9 * 3600 + 30)  # readings 08:00-08:30, 08:30-09:00
    s.skip(DAY + 11 * 3600 + 600)  # down from 09:00:30 to 11:10
    s.restart()
    s.run(DAY + 12 * 3600 + 30)
    readings = s.items("submit_readings")
    starts = [r[4] - DAY for r in readings]
    assert starts == [8 * 3600, 8 * 3600 + 1800, 11 * 3600 + 1800]  # 11:00 was read late: 11:30 is the baseline
    assert [r[3] for r in readings] == [1, 2, 3]  # seq has no gap: nothing was signed while down
    gap_g = readings[2][9] - readings[1][9] - readings[2][6]
    assert gap_g > 1000  # 09:00-11:30 of June sun shows in the register step
    kit = ledger_kit()
    assert [d[0] for d in submit(kit, "submit_readings", readings)] == ["accepted"] * 3
    alerts = s.outbox.alerts()
    assert any(a["field"] == "dgc-1.boundary" for a in alerts), alerts


def test_a_register_that_goes_back_is_an_alert_and_nothing_is_signed(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 10 * 3600 - 20)
    back_at = DAY + 10 * 3600 + 2000
    s.grid.export_offset = lambda t: -5_000 if t >= back_at else 0
    s.run(DAY + 11 * 3600 + 30)
    readings = s.items("submit_readings")
    assert [r[4] - DAY for r in readings] == [10 * 3600]  # 10:30-11:00 went back: not signed
    alert = next(a for a in s.outbox.alerts() if "went back" in a["reason"])
    assert alert["field"] == "grid-meter mem.export_wh" and alert["device"] == "dgc-1"


def test_a_generation_jump_is_an_alert(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 10 * 3600 - 20)
    s.inverter.energy_offset = lambda t: 100_000 if t >= DAY + 10 * 3600 + 2000 else 0
    s.run(DAY + 11 * 3600 + 30)
    assert len(s.items("submit_readings")) == 1
    alert = next(a for a in s.outbox.alerts() if "jumped" in a["reason"])
    assert alert["field"] == "inverter mem.energy_wh"


def test_export_above_generation_is_clamped_and_recorded(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 12 * 3600 - 20)
    s.grid.export_offset = lambda t: 0 if t < DAY + 12 * 3600 + 600 else 30_000
    s.run(DAY + 12 * 3600 + 1830)
    (r,) = s.items("submit_readings")
    assert r[8] == r[6]  # export = generation
    log = s.outbox.log("submit_readings")[0]
    assert log["clamped_export_wh"] > 0
    assert any("clamped" in a["reason"] for a in s.outbox.alerts())
    assert submit(ledger_kit(), "submit_readings", [r])[0][0] == "accepted"


def test_a_device_that_does_not_answer_is_retried_then_the_interval_is_lost(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 10 * 3600 - 20)
    s.run(DAY + 10 * 3600 + 1800 - 20)
    s.grid.down = True
    s.run(DAY + 10 * 3600 + 1800 + 60)  # down for the 10:30 boundary, back within max_read_delay_s
    s.grid.down = False
    s.run(DAY + 11 * 3600 + 30)
    assert [r[4] - DAY for r in s.items("submit_readings")] == [10 * 3600, 10 * 3600 + 1800]
    assert s.outbox.health()[0]["device"] == "grid-meter mem"
    assert any(h["last_error"] for h in s.outbox.health())


# --- the smart meter's fixed values -----------------------------------------------------------


def test_meter_values_per_slot_and_no_data_is_retried(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 10 * 3600 - 20)
    s.run(DAY + 11 * 3600 + 30)
    s.meter.no_data = True
    s.run(DAY + 11 * 3600 + 1800 + 120)
    s.meter.no_data = False
    s.run(DAY + 12 * 3600 + 30)
    items = s.items("submit_meter_values")
    assert [m[3] - DAY for m in items] == [10 * 3600, 10 * 3600 + 1800, 11 * 3600, 11 * 3600 + 1800]
    for m in items:
        imp1, exp1 = s.physics.fixed[m[3] + 1800]
        assert (m[6], m[7]) == (imp1, exp1)
        if m[3] in s.physics.fixed:
            imp0, exp0 = s.physics.fixed[m[3]]
            assert (m[4], m[5]) == (imp1 - imp0, exp1 - exp0)
    assert any(a["field"] == "smart-meter mem.EA" for a in s.outbox.alerts())
    kit = ledger_kit()
    submit(kit, "submit_readings", s.items("submit_readings"))
    assert all(d[0] == "accepted" for d in submit(kit, "submit_meter_values", items))


def _check_meter_items(s: Site, items: list[list[Any]]) -> None:
    """Each item's registers are the physics' fixed values at its slot end, its import/export the
    differences from the slot start's (hand-checked against what the meter fixed)."""
    for m in items:
        imp0, exp0 = s.physics.fixed[m[3]]
        imp1, exp1 = s.physics.fixed[m[3] + 1800]
        assert (m[4], m[5], m[6], m[7]) == (imp1 - imp0, exp1 - exp0, imp1, exp1), m[3] - DAY


def test_slots_missed_while_down_are_filled_from_the_meter_history(tmp_path: Path) -> None:
    s = make_site(tmp_path, SUNNY + 10 * 3600 - 20)
    s.run(SUNNY + 11 * 3600 + 30)  # slots 10:00, 10:30 signed from EA/EB
    assert s.meter.history_calls == 3  # the first start looked two days back (today, 1 and 2 days before)
    s.skip(SUNNY + 13 * 3600 + 600)  # down from 11:00:30 to 13:10: 11:30, 12:00, 12:30, 13:00 fixed unseen
    s.restart()
    s.run(SUNNY + 14 * 3600 + 30)
    items = s.items("submit_meter_values")
    starts = [(m[3] - SUNNY) / 3600 for m in items]
    assert starts == [10, 10.5, 11, 11.5, 12, 12.5, 13, 13.5]  # oldest first, nothing twice
    assert s.meter.history_calls == 4  # after the restart: today only, once
    _check_meter_items(s, items)
    noon = next(m for m in items if m[3] == SUNNY + 12 * 3600)
    imp0, exp0 = s.physics.fixed[SUNNY + 12 * 3600]
    imp1, exp1 = s.physics.fixed[SUNNY + 12 * 3600 + 1800]
    assert noon[5] == exp1 - exp0 > 3000 and noon[4] == imp1 - imp0  # a sunny noon: the site exports
    logs = {row["slot_start"]: row for row in s.outbox.log("submit_meter_values")}
    assert sorted(t for t, row in logs.items() if row.get("from") == "history") == [
        SUNNY + 11 * 3600, SUNNY + 11 * 3600 + 1800, SUNNY + 12 * 3600, SUNNY + 12 * 3600 + 1800]
    s.restart()  # again: what was filled is remembered
    s.run(SUNNY + 15 * 3600 + 30)
    again = [m[3] for m in s.items("submit_meter_values")]
    assert len(again) == len(set(again)) == 10 and s.meter.history_calls == 4
    kit = ledger_kit()
    kit.time = SUNNY + 2 * 86400
    assert all(d[0] == "accepted" for d in submit(kit, "submit_meter_values", s.items("submit_meter_values")))


def test_a_fill_across_midnight_asks_yesterday_then_today(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 22 * 3600 - 20)
    s.run(DAY + 23 * 3600 + 30)  # 22:00, 22:30
    s.skip(DAY + 25 * 3600 + 600)  # down until 01:10 the next day
    s.meter.history_calls = 0
    s.restart()
    s.run(DAY + 25 * 3600 + 630)
    items = s.items("submit_meter_values")
    assert [(m[3] - DAY) / 3600 for m in items] == [22, 22.5, 23, 23.5, 24, 24.5]
    assert s.meter.history_calls == 2
    _check_meter_items(s, items)


def test_a_first_start_signs_only_what_the_meter_holds(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 10 * 3600 + 1000)  # the meter's history starts with the physics
    s.physics.advance_to(DAY + 11 * 3600 + 1000)  # the meter ran for an hour before the DGC came up
    s.run(DAY + 11 * 3600 + 1800 + 30)
    items = s.items("submit_meter_values")
    assert [(m[3] - DAY) / 3600 for m in items] == [10.5, 11]  # 10:00 has no fixed value: not invented
    _check_meter_items(s, items)
    assert not any(a["field"].endswith(".E2") for a in s.outbox.alerts())


def test_history_stamped_the_other_way_is_caught_and_nothing_is_filled_from_it(tmp_path: Path) -> None:
    """A meter whose E2/E4 values are stamped half an hour later than the agent reads them (the other
    convention, 00:30 … 24:00): its history disagrees with EA/EB at a slot end both give, so the agent
    raises an alert naming E2 and signs nothing from it: the missed slots stay without items."""
    s = make_site(tmp_path, SUNNY + 10 * 3600 - 20)
    s.run(SUNNY + 11 * 3600 + 30)  # 10:00 and 10:30 from EA/EB (the first start's history is empty here)
    s.meter.history_shift_s = 1800
    s.skip(SUNNY + 13 * 3600 + 600)  # down from 11:00:30 to 13:10
    s.restart()
    s.run(SUNNY + 14 * 3600 + 30)
    starts = [(m[3] - SUNNY) / 3600 for m in s.items("submit_meter_values")]
    # 11:00 … 12:30 missed and not filled from the disagreeing history; 13:00 and 13:30 from EA/EB
    # (the 13:00 fixed value was read after the restart)
    assert starts == [10, 10.5, 13, 13.5]
    assert not any(row.get("from") == "history" for row in s.outbox.log("submit_meter_values"))
    alerts = [a for a in s.outbox.alerts() if a["field"] == "smart-meter mem.E2"]
    assert alerts and "history says" in alerts[0]["reason"] and "not filled" in alerts[0]["reason"]


def test_a_meter_without_history_keeps_the_slot_by_slot_items(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 10 * 3600 - 20)
    s.meter.no_history = True
    s.run(DAY + 10 * 3600 + 30)
    s.skip(DAY + 11 * 3600 + 600)
    s.restart()
    s.run(DAY + 12 * 3600 + 30)
    assert [(m[3] - DAY) / 3600 for m in s.items("submit_meter_values")] == [11, 11.5]
    assert any(a["field"] == "smart-meter mem.E5" for a in s.outbox.alerts())


# --- control --------------------------------------------------------------------------------


def _export_over(s: Site, start: int, end: int) -> tuple[int, int]:
    s.run(start)
    e0, g0 = s.physics.export_j, s.physics.generation_j
    s.run(end)
    return (s.physics.export_j - e0) // 3600, (s.physics.generation_j - g0) // 3600


def test_zero_export_keeps_the_grid_point_at_zero(tmp_path: Path) -> None:
    start, end = SUNNY + 11 * 3600, SUNNY + 13 * 3600
    free = make_site(tmp_path / "free", start - 60)
    free_e, free_g = _export_over(free, start, end)
    s = make_site(tmp_path / "zero", start - 60, export_limit_w=0, tick_s=10)
    e, g = _export_over(s, start, end)
    print(f"zero export (in memory): exported {e} of {g} Wh generated; released: {free_e} of {free_g} Wh")
    assert free_e > 0.2 * free_g  # without control the site exports a good share of its PV
    assert e <= 0.01 * g, (e, g)  # with zero export: at most 1 % of the generation
    assert g >= free_g - free_e - 0.02 * free_g  # and the PV still covers the load
    recs = s.items("submit_controls")
    assert {r[8] for r in recs} == {"zero_export"}
    assert [r[4] - SUNNY for r in recs] == list(range(10 * 3600 + 1800, 13 * 3600 + 1, 1800))  # one a slot


def test_a_reason_change_is_a_record_and_release_lets_pv_follow(tmp_path: Path) -> None:
    sched = tmp_path / "sched.csv"
    sched.write_text("2026-06-01T11:00,2026-06-01T11:30,30\n")
    s = make_site(tmp_path, DAY + 10 * 3600 + 1790, schedule_file=str(sched), tick_s=30)
    s.run(DAY + 12 * 3600)
    recs = s.items("submit_controls")
    assert [(r[4] - DAY, r[8]) for r in recs] == [(10 * 3600 + 1800, "released"), (11 * 3600, "grid_operator"),
                                                  (11 * 3600 + 1800, "released")]
    assert recs[1][6] <= 17_000 * 30 // 100 and recs[1][13] == 30
    assert recs[2][6] == s.physics.rated_w and recs[2][7] == -1 and recs[2][13] == -1
    kit = ledger_kit()
    assert all(d[0] == "accepted" for d in submit(kit, "submit_controls", recs))


# --- the sender, through a transport that runs the kit ledger -------------------------------------


@dataclass
class FakeApi:
    """POST /v1/tx answered by the kit ledger (the API's receipt and error shapes); scripted faults."""

    kit: lk.Kit
    script: list[str] = field(default_factory=list)  # "down", "503", "lose" (commit, then drop the answer)
    posts: int = 0

    def handler(self, req: httpx.Request) -> httpx.Response:
        self.posts += 1
        fault = self.script.pop(0) if self.script else ""
        if fault == "down":
            raise httpx.ConnectError("connection refused", request=req)
        if fault == "503":
            return httpx.Response(503, headers={"Retry-After": "0"},
                                  json={"error": {"code": "overloaded", "field": "", "reason": "busy"}})
        r = self.kit.one(req.content)
        if fault == "lose":
            raise httpx.ReadTimeout("timed out", request=req)
        if r.error is not None:
            return httpx.Response(409 if r.error.code == "conflict" else 422, json={"error": r.error.to_dict()})
        return httpx.Response(200, json={"ok": True, "committed": True, "height": self.kit.state.height,
                                         "detail": json.loads(json.dumps(r.detail)), "tx_hash": "00"})


def sender_for(s: Site, api: FakeApi) -> Sender:
    from crev.device.config import SenderConfig

    cfg = SenderConfig(batch_size=5, timeout_s=1, backoff_initial_s=0.001, backoff_max_s=0.002, price_every_s=60)
    return Sender("http://ledger.invalid", lk.CHAIN, s.outbox, cfg, agent=s.agent,
                  client=httpx.Client(transport=httpx.MockTransport(api.handler)))


def test_sender_retries_through_outages_and_lost_receipts(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 6 * 3600 - 20)
    s.run(DAY + 12 * 3600 + 30)
    n = len(s.items("submit_readings"))
    assert n == 12
    api = FakeApi(ledger_kit(), ["down", "down", "503", "lose"])
    snd = sender_for(s, api)
    assert snd.drain(10)
    assert s.outbox.depth()["submit_readings"] == 0
    assert len(api.kit.state.readings) == n  # each once, the lost receipt's batch answered as duplicates
    statuses = [r["status"] for r in s.outbox.log("submit_readings", 20)]
    assert statuses.count("duplicate") == 5 and statuses.count("accepted") == n - 5


def test_sender_dead_letters_what_will_never_pass(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 6 * 3600 - 20)
    s.run(DAY + 8 * 3600 + 30)  # 4 readings
    rows = s.outbox._db.execute("SELECT id, item FROM outbox WHERE kind='submit_readings' ORDER BY id").fetchall()
    from crev.core.encoding import encode

    bad = decode(bytes(rows[2][1]))
    bad[12] = bytes(64)  # a forged signature
    s.outbox._db.execute("UPDATE outbox SET item = ? WHERE id = ?", (encode(bad), rows[2][0]))
    api = FakeApi(ledger_kit())
    assert sender_for(s, api).drain(10)
    (dead,) = s.outbox.dead_letters()
    assert (dead["ref"], dead["code"], dead["field"]) == ("seq 3", "bad_signature", "signature")
    assert any("dead letters" in a["reason"] for a in s.outbox.alerts())
    # seq 4 followed a refused seq 3: the ledger sees an interval gap and still accepts it
    assert sorted(k[1] for k in api.kit.state.readings) == [1, 2, 4]


def test_a_batch_refused_whole_settles_item_by_item(tmp_path: Path) -> None:
    s = make_site(tmp_path, DAY + 6 * 3600 - 20)
    s.run(DAY + 7 * 3600 + 30)  # 2 readings
    kit = ledger_kit()
    submit(kit, "submit_readings", s.items("submit_readings"))  # already on the ledger (a lost receipt)
    api = FakeApi(kit)
    assert sender_for(s, api).drain(10)
    assert [r["status"] for r in s.outbox.log("submit_readings")] == ["duplicate", "duplicate"]
    assert not s.outbox.dead_letters()
