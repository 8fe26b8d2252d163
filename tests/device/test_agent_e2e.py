"""The DGC agent end to end over real sockets: simulated ECHONET Lite smart meter and SunSpec
inverter + grid meter (crev.sim, driven by SitePhysics) on loopback, a real crev node with its HTTP
API, and the agent in process or as a `crev dgc run` process.

(a) the ledger is down for a simulated day, then up: every reading arrives once, in order,
    gap-free seq, and the ledger's invariants hold;
(b) `crev dgc run` killed with SIGKILL at random moments, several times: every reading the agent
    signed is on the ledger, no seq twice, the issued total is what the readings give;
(c) zero export over the sockets: the smart meter's export stays within 1 % of the generation.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crev.cli.dgc import open_devices
from crev.core.hashing import sha256
from crev.core.signing import Signer
from crev.core.units import JST_OFFSET_SECONDS, fiscal_year
from crev.data import shipped_rows
from crev.device.agent import Sender, SiteAgent, run_agents
from crev.device.clock import ScaledClock
from crev.device.config import AgentConfig, parse_config
from crev.device.outbox import Outbox
from crev.ledger.genesis import Genesis
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.tx import Message, build_tx
from crev.node.node import Node
from crev.service.server import Background, serve_in_thread
from crev.sim import site as simsite
from crev.sim.echonet import SimulatedEchonetNode
from crev.sim.fleet import FleetSimulator, make_fleet
from crev.sim.site import FleetPhysics, ManualClock, SitePhysics
from crev.sim.sunspec import SunSpecServer
from tests.device.test_agent import SUNNY, SURPLUS_SITE

CHAIN = "dgc-e2e"
ROOT = Path(__file__).resolve().parents[2]
SPEC = next(s for s in make_fleet(6, 1) if s.site_id == SURPLUS_SITE)


def key(name: str) -> Signer:
    return Signer(sha256(f"dgc-e2e/{name}".encode()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def midnight_days_ago(days: int) -> int:
    now = int(time.time())
    return (now + JST_OFFSET_SECONDS) // 86400 * 86400 - JST_OFFSET_SECONDS - days * 86400


@dataclass
class Ledger:
    node: Node
    server: Background | None
    url: str
    port: int

    def serve(self) -> None:
        self.server = serve_in_thread(self.node, "127.0.0.1", self.port, rate=0)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.node.close()


def open_ledger(d: Path, genesis_time: int, *, serve: bool = True) -> Ledger:
    g = Genesis(CHAIN, genesis_time, "operator", "Operator", key("operator").public_key, key("sequencer").public_key,
                emission_factors=tuple(shipped_rows()))
    Node.init(d, g, key("sequencer").seed)
    node = Node(d, block_interval_ms=10, verify_threads=1).start()  # block time: the wall clock
    certified = genesis_time + 10 * 365 * 86400
    txs: list[Message] = [
        RegisterParticipant("owner-co", "Owner Co", "prosumer", key("owner-co").public_key),
        RegisterDevice(SURPLUS_SITE, "owner-co", key(f"dev/{SURPLUS_SITE}").public_key, SPEC.pv_capacity_w,
                       genesis_time, 35_681_236, 139_767_125, SPEC.grid_area, "SN-1", certified, False, "solar_pv")]
    for n, msg in enumerate(txs):
        r = node.submit_wait(build_tx(CHAIN, msg, "operator", n, key("operator")))
        assert r.ok, r.error
    port = free_port()
    led = Ledger(node, None, f"http://127.0.0.1:{port}", port)
    if serve:
        led.serve()
    return led


@dataclass
class SimSite:
    physics: SitePhysics
    echonet: SimulatedEchonetNode
    sunspec: SunSpecServer

    def stop(self) -> None:
        self.echonet.stop()
        self.sunspec.stop()


def sim_site(clock: simsite.Clock, start: int | None = None) -> SimSite:
    p = SitePhysics(FleetPhysics(FleetSimulator(make_fleet(6, 1), 1)), SURPLUS_SITE, clock, start=start)
    return SimSite(p, SimulatedEchonetNode(p).start(), SunSpecServer(p).start())


def config_doc(tmp: Path, sim: SimSite, url: str, *, clock: dict[str, Any] | None = None,
               control: dict[str, Any] | None = None) -> dict[str, Any]:
    (tmp / "dev.key").write_text(key(f"dev/{SURPLUS_SITE}").seed.hex())
    doc: dict[str, Any] = {
        "ledger_url": url, "chain_id": CHAIN,
        "sender": {"batch_size": 50, "timeout_s": 10, "backoff_initial_s": 0.05, "backoff_max_s": 0.5},
        "sites": [{"device_id": SURPLUS_SITE, "key_file": "dev.key", "outbox": "outbox.sqlite",
                   "max_read_delay_s": 900,
                   "smart_meter": {"host": "127.0.0.1", "port": sim.echonet.port, "timeout_s": 0.5},
                   "inverter": {"host": "127.0.0.1", "port": sim.sunspec.port, "unit": 1, "timeout_s": 0.5},
                   "grid_meter": {"host": "127.0.0.1", "port": sim.sunspec.port, "unit": 1, "timeout_s": 0.5}}]}
    if clock:
        doc["clock"] = clock
    if control:
        doc["sites"][0]["control"] = control
    return doc


def toml(doc: dict[str, Any]) -> str:
    """Just enough TOML for these configs."""
    def val(v: Any) -> str:
        return f'"{v}"' if isinstance(v, str) else ("true" if v is True else "false" if v is False else repr(v))

    lines = [f"{k} = {val(v)}" for k, v in doc.items() if not isinstance(v, dict | list)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += [f"[{k}]", *(f"{a} = {val(b)}" for a, b in v.items())]
    for s in doc["sites"]:
        lines.append("[[sites]]")
        lines += [f"{a} = {val(b)}" for a, b in s.items() if not isinstance(b, dict)]
        for a, b in s.items():
            if isinstance(b, dict):
                lines += [f"[sites.{a}]", *(f"{x} = {val(y)}" for x, y in b.items())]
    return "\n".join(lines) + "\n"


def signed_so_far(tmp: Path) -> int:
    """The seq of the last reading a running agent has signed, read from its outbox (read-only)."""
    path = tmp / "outbox.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT value FROM state WHERE key = 'dgc'").fetchone()
    except sqlite3.OperationalError:  # the agent has not created its tables yet
        return 0
    finally:
        db.close()
    return int(json.loads(row[0]).get("seq", 0)) if row else 0


def ledger_readings(node: Node) -> list[tuple[int, int]]:
    """(seq, interval_start) of the site's readings on the ledger, by seq."""
    return sorted((seq, rec.interval_start) for (dev, seq), rec in node.state.readings.items() if dev == SURPLUS_SITE)


def issued_g(node: Node) -> int:
    return sum(lot.quantity_g for lot in node.state.lots.values() if lot.device_id == SURPLUS_SITE)


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


# --- (a) a day without the ledger ---------------------------------------------------------------


def test_ledger_down_for_a_day_then_every_reading_arrives_once_in_order(tmp: Path) -> None:
    origin = midnight_days_ago(3) + 6 * 3600 - 60
    speed = 7200.0  # a simulated day in 12 s
    wall0 = time.time()
    led = open_ledger(tmp / "ledger", origin - 86400, serve=False)
    sim = sim_site(simsite.ScaledClock(origin, speed, wall0))
    try:
        cfg: AgentConfig = parse_config(config_doc(tmp, sim, led.url), tmp)
        site = cfg.sites[0]
        outbox = Outbox(site.outbox)
        agent = SiteAgent(site, CHAIN, key(f"dev/{SURPLUS_SITE}"), open_devices(site), outbox)
        sender = Sender(site.ledger_url, CHAIN, outbox, cfg.sender, agent=agent)
        clock = ScaledClock(origin, speed, wall0)
        stop = threading.Event()
        t = threading.Thread(target=run_agents, args=([agent], [sender], clock, stop), daemon=True)
        t.start()
        day_end = origin + 86400 + 120
        while clock.now() < day_end:
            time.sleep(0.05)
        assert outbox.depth()["submit_readings"] >= 40  # signed and stored while the ledger was down
        assert sender.failures > 0
        led.serve()
        deadline = time.time() + 20
        while outbox.depth()["submit_readings"] and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        t.join(10)
        # The simulated clock kept running while the backlog drained (a slot every 0.25 s of wall
        # time), so a reading may have been signed after the outbox last looked empty: deliver it too.
        assert sender.drain(10)
        signed = agent.dgc.seq
        on_ledger = ledger_readings(led.node)
        assert [s for s, _ in on_ledger] == list(range(1, signed + 1))  # each once, gap-free seq
        starts = [st for _, st in on_ledger]
        assert starts == sorted(starts) and len(set(starts)) == len(starts)  # in order
        assert outbox.depth()["submit_readings"] == 0 and not outbox.dead_letters()
        check_invariants(led.node.state)
        print(f"(a) {signed} readings signed during {len(starts) * 1800 / 3600:.0f} simulated hours "
              f"without the ledger, all delivered once; late boundaries: "
              f"{sum(a['count'] for a in outbox.alerts() if a['field'].endswith('.boundary'))}")
        outbox.close()
        sender.close()
    finally:
        sim.stop()
        led.close()
    out = subprocess.run([sys.executable, "-m", "crev.cli", "verify", str(tmp / "ledger"), "--threads", "1"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


# --- (b) kill -9 --------------------------------------------------------------------------------


def test_kill_9_at_random_moments_loses_nothing_and_issues_nothing_twice(tmp: Path) -> None:
    origin = midnight_days_ago(2) + 7 * 3600 - 60
    speed = 3600.0
    wall0 = time.time() + 1.5  # the first process is up by then
    led = open_ledger(tmp / "ledger", origin - 86400)
    sim = sim_site(simsite.ScaledClock(origin, speed, wall0), start=origin)
    rng = random.Random(7)
    procs = []
    try:
        doc = config_doc(tmp, sim, led.url, clock={"origin": origin, "speed": speed, "wall_origin": wall0})
        cfg_file = tmp / "dgc.toml"
        cfg_file.write_text(toml(doc))
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        for _cycle in range(4):
            before = signed_so_far(tmp)
            p = subprocess.Popen([sys.executable, "-m", "crev.cli", "dgc", "run", str(cfg_file)], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            procs.append(p)
            # each agent signs a few readings before its kill, however long a loaded machine takes
            # to start it; then the kill comes at a random moment
            deadline = time.time() + 60
            while signed_so_far(tmp) < before + 3 and time.time() < deadline and p.poll() is None:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 2.0))
            assert p.poll() is None, p.stdout.read() if p.stdout else ""
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        # what the killed agents signed, delivered by one more sender (as the next start would)
        cfg = parse_config(doc, tmp)
        outbox = Outbox(cfg.sites[0].outbox)
        sender = Sender(led.url, CHAIN, outbox, cfg.sender)
        assert sender.drain(20)
        signed = outbox.state()["dgc"]["seq"]
        logged = sorted(int(r["ref"].split()[1]) for r in outbox.log("submit_readings", 1000))
        on_ledger = ledger_readings(led.node)
        assert signed >= 10
        assert logged == list(range(1, signed + 1))
        assert [s for s, _ in on_ledger] == logged  # nothing lost, no seq twice
        assert not outbox.dead_letters()
        st = led.node.state
        expected = 0
        for (dev, seq), rec in sorted(st.readings.items()):
            if dev != SURPLUS_SITE:
                continue
            r = next(x for x in outbox.log("submit_readings", 1000) if x["ref"] == f"seq {seq}")
            f = st.factors.lookup(SPEC.grid_area, fiscal_year(rec.interval_start), st.params.issuance_factor_kind)
            expected += (r["generation_wh"] - r["export_wh"]) * f.g_per_kwh // 1000
        assert issued_g(led.node) == expected  # each 30-minute reading issues once, nothing twice
        check_invariants(st)
        gaps = sum(1 for a, b in itertools.pairwise(on_ledger) if b[1] - a[1] != 1800)
        print(f"(b) 4 kill -9 cycles: {signed} readings signed and on the ledger once each, {gaps} register gaps, "
              f"{issued_g(led.node)} g issued")
        outbox.close()
        sender.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        sim.stop()
        led.close()


# --- (c) zero export over the sockets -----------------------------------------------------------


def _run_site(tmp: Path, control: dict[str, Any] | None) -> tuple[int, int]:
    start, end = SUNNY + 11 * 3600, SUNNY + 12 * 3600
    clock = ManualClock(start - 60)
    sim = sim_site(clock)
    try:
        cfg = parse_config(config_doc(tmp, sim, "http://127.0.0.1:9", control=control), tmp)
        site = cfg.sites[0]
        agent = SiteAgent(site, CHAIN, key(f"dev/{SURPLUS_SITE}"), open_devices(site), Outbox(site.outbox))
        e0 = g0 = 0
        while clock.t < end:
            clock.advance(10)
            agent.step(clock.t)
            if clock.t == start:
                sim.physics.advance()
                e0, g0 = sim.physics.export_j, sim.physics.generation_j
        sim.physics.advance()
        exported, generated = (sim.physics.export_j - e0) // 3600, (sim.physics.generation_j - g0) // 3600
        sm_regs = agent.devices.smart_meter.registers()
        res = sm_regs.resolution_wh  # the smart meter reads what the physics did, in its steps
        assert sm_regs.export_wh == sim.physics.export_j // 3600 // res * res
        agent.outbox.close()
        return exported, generated
    finally:
        sim.stop()


def test_zero_export_over_sockets(tmp: Path) -> None:
    (tmp / "free").mkdir()
    (tmp / "zero").mkdir()
    free_e, free_g = _run_site(tmp / "free", None)
    e, g = _run_site(tmp / "zero", {"export_limit_w": 0, "tick_s": 10})
    print(f"(c) zero export over ECHONET Lite + SunSpec: exported {e} Wh of {g} Wh generated "
          f"({100 * e / g:.2f} %); released: {free_e} of {free_g} Wh")
    assert free_e > 0.2 * free_g
    assert e <= 0.01 * g
