"""`crev demo`: a fleet of simulated business sites turns self-consumed solar into C-REV.

The demo initialises a ledger, registers the operator, the site owners (prosumers), three buyers
and an auditor, registers every site's DGC, and then runs the fleet in accelerated time, one
metering interval after another, on two paths:

* **Device sites** (six by default, :func:`choose_device_sites`): each has its simulated devices
  on loopback sockets — a utility smart meter speaking ECHONET Lite over UDP and a PCS with the
  DGC's grid meter speaking SunSpec Modbus TCP, all reading one ``SitePhysics`` (PV under the
  inverter's limit, the load, the grid point) that a ``ManualClock`` steps at the demo's
  simulated time — and a DGC agent (``SiteAgent``) that reads them through the real adapters at
  every control tick (300 s) and interval boundary, signs readings, the smart meter's 30-minute
  values and control records into its outbox (``<data dir>/dgc/``), while its ``Sender``
  delivers them to the node's HTTP API before the demo moves on. One site may not export
  (逆潮流なし) and one curtails export worth less than its owner's threshold: both are curtailed
  at sunny noons, with control records on the ledger. One DGC grid meter reads export 4 % low
  (the smart meter's values cancel over-issued C-REV; after three slots the ledger raises a
  calibration-drift alert), one 4 % high (top-ups), the others agree (provisional C-REV becomes
  final as the values arrive).
* **Direct sites** (the rest): each DGC signs a cumulative-register reading from the fleet
  simulator and a gateway submits them as one batch to the embedded node. They send no
  smart-meter values, so their C-REV stays provisional until the finality window passes.

With ``serve`` (the ``crev demo`` default) the same node then serves the HTTP API and the
dashboard, and the fleet (device sites included) and the market agents keep running, one metering
interval every ``pace_s`` seconds, until Ctrl-C.

The market runs live: the operator lists a continuous spot market (any C-REV) and a call market
for non-FIT C-REV that clears at every 30-minute slot boundary, and records the buyers' deposits.
Half of the site owners have an auto-offer policy (a share of each new lot offered at once, in the
block that issues it); the other half sell half of each day's C-REV to a buyer by direct transfer,
and the buyers retire most of that. Two buyers hold standing bids that retire on fill (one
accepts only Kanto and Chubu C-REV); the third bids into the call auction every day. The operator
makes one manual top-up (a site audit) and one cancellation (a meter fault), so every kind of
record is on the chain. Keys are derived from the seed, so a run is reproducible.

With ``consortium`` (``crev demo --consortium 4``) the same fleet and agents run against a localnet
of that many CometBFT validators written into the data directory (``crev consortium init``'s
layout), through the first member's node (``MemberLedger``: submissions by CometBFT's RPC, reads
from its crev data directory), and the dashboard then also shows the validators, who signed each
block and each member's height. Block time is then CometBFT's (the wall clock), not the simulated
clock: the live phase never runs ahead of it. Every site then takes the direct path (the device
sites' agents would need the member's API before the accelerated phase, and their intervals would
wait for the wall clock one by one).
"""

from __future__ import annotations

import heapq
import logging
import os
import random
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

from crev.core.hashing import sha256
from crev.core.signing import Signer
from crev.core.units import JST_OFFSET_SECONDS, SLOT_SECONDS, fiscal_year, fiscal_year_bounds, jst, parse_time
from crev.data import shipped_rows
from crev.device.agent import Devices, Sender, SiteAgent
from crev.device.config import SenderConfig, parse_config
from crev.device.dgc import DgcAgent
from crev.device.echonet import EchonetSmartMeter
from crev.device.outbox import Outbox
from crev.device.sunspec import ModbusLink, SunSpecGridMeter, SunSpecInverter
from crev.ledger.apply import BlockOutcome
from crev.ledger.block import Block
from crev.ledger.events import (
    AuctionCleared,
    CalibrationDrift,
    Cancelled,
    ControlRecorded,
    Issued,
    MeterValuesRecorded,
    ReadingAccepted,
    SlotReconciled,
    Traded,
)
from crev.ledger.genesis import Genesis
from crev.ledger.holdings import available
from crev.ledger.messages.correct import Correct
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.set_offer_policy import SetOfferPolicy
from crev.ledger.messages.set_standing_bid import SetStandingBid
from crev.ledger.messages.submit_readings import SubmitReadings, parse_reading
from crev.ledger.messages.transfer import Transfer
from crev.ledger.params import Params
from crev.ledger.records import ANY, CORRECTED, PROVISIONAL, TRADABLE, Filter, RetireSpec
from crev.ledger.state import State
from crev.ledger.tx import Message, Tx, build_tx
from crev.node.node import GENESIS_FILE, Node, Receipt
from crev.sim.echonet import SimulatedEchonetNode
from crev.sim.fleet import FleetSimulator, SiteSpec, make_fleet
from crev.sim.site import SLOT_S, FleetPhysics, ManualClock, SitePhysics
from crev.sim.sunspec import SunSpecServer

CHAIN_ID = "crev-demo"
OPERATOR = "jcrev-registry"
AUDITOR = "tohmatsu-audit"
BUYERS = (("kanto-rail", "Kanto Rail Holdings", "re100"),
          ("nihon-retail", "Nihon Retail Group", "statutory_report"),
          ("sakura-bank", "Sakura Bank", "cdp"))
SPOT, CALL = "jp-spot", "jp-nonfit-call"
DEVICE_SITES = 6  # sites run through simulated devices by default (the rest keep the direct path)
CONTROL_TICK_S = 300  # the agents' control tick [s, simulated]
METER_ERROR_BP = 400  # the DGC grid meter's export error on the two drifting sites [bp]
# The device sites' roles, in the order they are given (see choose_device_sites).
ZERO_EXPORT, EXPORT_UNPAID, READS_LOW, READS_HIGH, AGREES = (
    "zero-export", "export unpaid", "DGC export −4 %", "DGC export +4 %", "agrees")
POLICIES: dict[str, dict[str, Any]] = {
    ZERO_EXPORT: {"export_limit_w": 0},  # 逆潮流なし: no reverse power flow
    # a post-FIT buy-back of 7 JPY/kWh; the owner curtails export worth less than 8.5 JPY/kWh
    EXPORT_UNPAID: {"export_value_milli_jpy_per_kwh": 7_000, "curtail_below_milli_jpy_per_kwh": 8_500},
}


class Ledger(Protocol):
    """What the demo's fleet and agents need of a ledger: the embedded ``Node`` and a consortium
    member (``crev.consortium.member.MemberLedger``) both offer it."""

    @property
    def state(self) -> State: ...

    @property
    def listeners(self) -> list[Callable[[Block, BlockOutcome], None]]: ...

    def submit(self, raw: bytes | Tx) -> Future[Receipt]: ...

    def submit_wait(self, raw: bytes, timeout: float = ...) -> Receipt: ...

    def close(self) -> None: ...


def demo_key(seed: int, name: str) -> Signer:
    """Deterministic demo keys: never use such keys outside a demo."""
    return Signer(sha256(f"crev-demo/{seed}/{name}".encode()))


@dataclass
class DemoStats:
    intervals: int = 0
    readings: int = 0
    refused: int = 0
    issued_g: int = 0
    transferred_g: int = 0
    retired_g: int = 0
    generation_wh: int = 0
    demand_wh: int = 0
    self_consumed_wh: int = 0
    blocks: int = 0
    trades: int = 0
    traded_g: int = 0
    traded_jpy: int = 0
    auctions: int = 0
    last_price: dict[str, int] = field(default_factory=dict)
    sample_lot: str = ""
    sample_retirement: str = ""
    owners: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # the device sites (simulated ECHONET Lite and SunSpec devices read by DGC agents)
    device_sites: list[str] = field(default_factory=list)  # "site-028 (zero-export)", ...
    device_readings: int = 0
    meter_values: int = 0  # smart-meter slot values recorded
    slots: Counter[str] = field(default_factory=Counter)  # reconciled slots by status
    reconcile_cancelled_g: int = 0
    reconcile_debt_g: int = 0
    reconcile_topup_g: int = 0
    provisional_g: int = 0  # C-REV standing, by its slot's finality at the block time
    final_g: int = 0
    corrected_g: int = 0
    control_records: Counter[str] = field(default_factory=Counter)  # by reason
    curtailed_wh: int = 0
    curtailed_slots: int = 0
    drift_alerts: list[str] = field(default_factory=list)  # "site-019 export"
    device_alerts: int = 0


class _Accounts:
    """Signs transactions for the demo's participants, tracking their nonces."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.keys: dict[str, Signer] = {}
        self.nonces: dict[str, int] = defaultdict(int)

    def key(self, name: str) -> Signer:
        if name not in self.keys:
            self.keys[name] = demo_key(self.seed, name)
        return self.keys[name]

    def tx(self, signer: str, msg: Message) -> bytes:
        raw = build_tx(CHAIN_ID, msg, signer, self.nonces[signer], self.key(signer))
        self.nonces[signer] += 1
        return raw


def _check(r: Receipt, what: str) -> Receipt:
    if not r.ok:
        raise RuntimeError(f"demo step {what} was refused: {r.error}")
    return r


def default_start(days: int) -> int:
    """Midnight JST ``days`` days before today (so the demo shows recent days)."""
    now = int(time.time())
    today = (now + JST_OFFSET_SECONDS) // 86400 * 86400 - JST_OFFSET_SECONDS
    return today - days * 86400


def prepare_dir(data_dir: Path) -> None:
    if data_dir.exists():
        g = data_dir / GENESIS_FILE
        net = data_dir / "consortium.json"  # a consortium demo's localnet
        if not (g.exists() and f'"chain_id": "{CHAIN_ID}"' in g.read_text("utf-8")) and not (
                net.exists() and f'"chain_id": "{CHAIN_ID}"' in net.read_text("utf-8")):
            raise FileExistsError(f"{data_dir} exists and is not a demo ledger; choose another --data-dir")
        shutil.rmtree(data_dir)


@dataclass
class Serve:
    """After the accelerated days, keep the fleet running and serve the API and dashboard."""

    host: str = "127.0.0.1"
    port: int = 8000
    pace_s: float = 2.0  # wall-clock seconds per simulated metering interval in the live phase
    on_ready: Any = None  # called with the dashboard URL once it answers


def run_demo(data_dir: Path, *, sites: int = 40, days: int = 3, interval_s: int = 1800, seed: int = 1,
             start: str | None = None, console: Console | None = None, live: bool = True,
             serve: Serve | None = None, consortium: int = 0, base_port: int = 26600,
             device_sites: int = DEVICE_SITES) -> DemoStats:
    """``consortium``: run on a localnet of that many validators (0: the embedded node).
    ``device_sites``: how many sites run through simulated devices and DGC agents (embedded node
    only; see :class:`DeviceSites`)."""
    console = console or Console()
    t_begin = time.perf_counter()
    start_ts = parse_time(start) if start else default_start(days)
    prepare_dir(data_dir)
    acc = _Accounts(seed)
    fleet = make_fleet(sites, seed)
    genesis = Genesis(CHAIN_ID, start_ts - 3600, OPERATOR, "J-CREV Registry (demo operator)",
                      acc.key(OPERATOR).public_key, demo_key(seed, "sequencer").public_key,
                      emission_factors=tuple(shipped_rows()))
    clock = [float(start_ts)]
    net: Any = None
    node: Ledger
    if consortium:
        net, node = _start_consortium(data_dir, genesis, acc.key(OPERATOR).seed, consortium, base_port, console)
    else:
        Node.init(data_dir, genesis, demo_key(seed, "sequencer").seed)
        node = Node(data_dir, block_interval_ms=10, clock=lambda: clock[0]).start()
    max_future = Params().max_future_s

    def ledger_time(t: int) -> int:
        """The block time the ledger will use: the simulated clock, or CometBFT's (the wall clock)."""
        return max(t, int(time.time())) if consortium else t

    stats = DemoStats()
    node.listeners.append(lambda block, outcome: _count_market(stats, outcome))
    finality = FinalityCounter(node.state.params.final_after_s)
    node.listeners.append(finality.on_block)
    chosen = [] if consortium else choose_device_sites(fleet, min(device_sites, sites))
    dev_ids = {s.site_id for s, _ in chosen}
    device_lots: list[tuple[str, str, int]] = []  # (owner, lot, g) issued to device sites, from the events
    counted = [0]  # the height the device listener has seen

    def count_devices(block: Block, outcome: BlockOutcome) -> None:
        _count_devices(stats, outcome, dev_ids, device_lots)
        counted[0] = outcome.header.height

    node.listeners.append(count_devices)

    def devices_settled() -> None:
        """Wait for the listener to have counted the device sites' deliveries (a receipt is
        answered before the block's listeners run)."""
        if devices is None:
            return
        deadline = time.monotonic() + 10
        while counted[0] < node.state.height and time.monotonic() < deadline:
            time.sleep(0.002)
    server = None
    agents_api: Any = None
    devices: DeviceSites | None = None
    try:
        _register(node, acc, fleet, start_ts)
        stats.owners = sorted({s.owner_id for s in fleet})
        direct_sellers = _open_market(node, acc, stats.owners, start_ts)
        sim = FleetSimulator(fleet, seed, interval_s)
        agents = {s.site_id: DgcAgent(CHAIN_ID, s.site_id, acc.key(f"dgc/{s.site_id}"))
                  for s in fleet if s.site_id not in dev_ids}
        owner_of = {s.site_id: s.owner_id for s in fleet}
        if chosen:
            from crev.service.server import serve_in_thread

            # the agents' own door to the node (no rate limit: every agent is 127.0.0.1 here)
            assert isinstance(node, Node)
            (data_dir / "dgc").mkdir(exist_ok=True)
            agents_api = serve_in_thread(node, "127.0.0.1", 0, rate=0, refused_rate=0,
                                         nonce_file=data_dir / "dgc" / "api-nonces.sqlite")
            devices = DeviceSites(chosen, seed, interval_s, start_ts, data_dir, acc,
                                  f"http://127.0.0.1:{agents_api.port}")
            stats.device_sites = [f"{s.site_id} ({role})" for s, role in chosen]
        todays_lots: dict[str, list[tuple[str, int]]] = defaultdict(list)
        held: dict[str, list[tuple[str, int]]] = defaultdict(list)
        end_ts = start_ts + days * 86400

        pending: list[tuple[Future[Receipt], list[Any]]] = []  # batches submitted, receipts not yet read

        def drain() -> None:
            """Read the receipts of the batches submitted so far (in order)."""
            while pending:
                fut, rows = pending.pop(0)
                rec = _check(fut.result(120), "readings")
                for (status, lot_id, q, *_), e in zip(rec.detail, rows, strict=True):
                    if status == "accepted":
                        stats.readings += 1
                        if lot_id:
                            stats.issued_g += q
                            todays_lots[owner_of[e.site_id]].append((lot_id, q))
                    else:
                        stats.refused += 1

        def step(t: int, pipelined: bool = False) -> None:
            """One metering interval starting at ``t``: the direct sites' DGCs sign and a gateway
            submits them; the device sites' agents read their devices through the interval and
            their senders deliver; the day's market agents act at midnight. ``pipelined``: the
            receipt is read later (a consortium commits a block in about a second: the day's
            batches go in together)."""
            clock[0] = t + interval_s + 5
            while consortium and t + interval_s > time.time() + max_future - 60:
                time.sleep(1.0)  # a consortium's block time is the wall clock: never run ahead of it
            rows = [e for e in sim.interval(t) if e.site_id not in dev_ids]
            batch = [agents[e.site_id].reading(t, interval_s, e.generation_wh, e.import_wh, e.export_wh)
                     for e in rows]
            for e in rows:
                stats.generation_wh += e.generation_wh
                stats.demand_wh += e.generation_wh + e.import_wh - e.export_wh
                stats.self_consumed_wh += e.generation_wh - e.export_wh
            if batch:
                msg = SubmitReadings(tuple(parse_reading(r, f"readings[{i}]") for i, r in enumerate(batch)))
                pending.append((node.submit(build_tx(CHAIN_ID, msg)), rows))
            if devices is not None:  # while the node seals the gateway's batch
                devices.interval(t, stats)
            if not pipelined:
                drain()
            if devices is not None:
                devices.deliver()
                stats.curtailed_wh, stats.curtailed_slots = devices.curtailed_wh, len(devices.curtailed_slots)
                stats.device_alerts = devices.alerts()
            stats.intervals += 1
            t += interval_s
            if (t - start_ts) % 86400 == 0:
                drain()
                devices_settled()
                while device_lots:
                    owner, lot_id, q = device_lots.pop(0)
                    todays_lots[owner].append((lot_id, q))
                direct = {o: lots for o, lots in todays_lots.items() if o in direct_sellers}
                _end_of_day(node, acc, direct, held, stats, t)
                _call_orders(node, acc, direct, ledger_time(t))
                todays_lots.clear()
                if t - start_ts == 86400:
                    _operator_corrections(node, acc, stats, dev_ids)
            if devices is not None:
                _finality(node, finality, int(clock[0]), stats)
            stats.blocks = node.state.height
            stats.seconds = time.perf_counter() - t_begin

        table = _progress_table(stats, clock[0], end_ts - start_ts, 0)
        with Live(table, console=console, refresh_per_second=8, transient=False,
                  auto_refresh=live) as lv:
            t = start_ts
            while t < end_ts:
                step(t, pipelined=bool(consortium))
                t += interval_s
                lv.update(_progress_table(stats, t, end_ts - start_ts, t - start_ts))
            drain()
            devices_settled()
            if devices is not None:
                stats.refused += devices.dead_letters()
            lv.update(_progress_table(stats, t, end_ts - start_ts, t - start_ts))
        if serve is None:
            return stats
        # --- live phase: the API and dashboard over the same node, the fleet keeps reporting ---
        from crev.service.server import serve_in_thread

        if consortium:
            from crev.consortium.member import MemberLedger
            from crev.service.server import member_kw

            assert isinstance(node, MemberLedger)
            server = serve_in_thread(node, serve.host, serve.port, **member_kw(node))
        else:
            assert isinstance(node, Node)
            server = serve_in_thread(node, serve.host, serve.port)
        url = f"http://{serve.host}:{server.port}"
        if serve.on_ready is not None:
            serve.on_ready(url)
        with Live(_progress_table(stats, t, t - start_ts, t - start_ts, url), console=console,
                  refresh_per_second=4, transient=False, auto_refresh=live) as lv:
            while True:  # until Ctrl-C or SIGTERM
                due = time.monotonic() + serve.pace_s
                step(t)
                t += interval_s
                lv.update(_progress_table(stats, t, t - start_ts, t - start_ts, url))
                time.sleep(max(0.0, due - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        if devices is not None:
            devices.close()
        if agents_api is not None:
            agents_api.stop()
        node.close()
        if net is not None:
            net.stop()
    stats.seconds = time.perf_counter() - t_begin
    return stats



# --- device sites: simulated devices over loopback sockets, read by real DGC agents ---------------

def choose_device_sites(fleet: list[SiteSpec], n: int) -> list[tuple[SiteSpec, str]]:
    """Which ``n`` sites run through simulated devices, each with its role.

    The four sites with the lowest peak load / PV capacity export at a sunny noon (``make_fleet``
    forces one at 0.5). Of these, the one with the largest surplus (PV capacity − peak load [W])
    has a DGC grid meter that reads export 4 % low: the smart meter's values cancel over-issued
    C-REV and, after three slots out of tolerance, raise a calibration-drift alert (a small surplus
    would stay within the smart meter's tolerance). The second is a zero-export site (逆潮流なし,
    curtailed to its load), the third's meter reads export 4 % high (top-ups), the fourth curtails
    export worth less than its owner's threshold. The others agree with the smart meter, taken
    from the other end of the ranking (sites that import)."""
    ranked = sorted(fleet, key=lambda s: (s.peak_load_w / s.pv_capacity_w, s.site_id))
    surplus = sorted(ranked[:min(4, n)], key=lambda s: (s.peak_load_w - s.pv_capacity_w, s.site_id))
    chosen = list(zip(surplus, (READS_LOW, ZERO_EXPORT, READS_HIGH, EXPORT_UNPAID), strict=False))
    if len(chosen) == 1:  # one device site: show the control
        chosen = [(chosen[0][0], ZERO_EXPORT)]
    rest = [s for s in reversed(ranked) if all(s is not c for c, _ in chosen)]
    chosen += [(s, AGREES) for s in rest[:max(0, n - len(chosen))]]
    return chosen


@dataclass
class DeviceSite:
    spec: SiteSpec
    role: str
    physics: SitePhysics
    echonet: SimulatedEchonetNode
    sunspec: SunSpecServer
    meter: EchonetSmartMeter
    link: ModbusLink
    agent: SiteAgent
    sender: Sender
    outbox: Outbox
    generation_wh: int = 0  # the physics' registers at the last interval end [Wh]
    import_wh: int = 0
    export_wh: int = 0


class DeviceSites:
    """Sites whose readings travel the real path: ``SitePhysics`` (stepped by a ``ManualClock`` at
    the demo's simulated time) behind a simulated ECHONET Lite smart meter (UDP) and a SunSpec
    inverter and grid meter (Modbus TCP), read by a ``SiteAgent`` through the real adapters, its
    signed readings, smart-meter values and control records kept in an outbox under
    ``<data dir>/dgc/`` and delivered by a ``Sender`` to the node's HTTP API."""

    def __init__(self, chosen: list[tuple[SiteSpec, str]], seed: int, interval_s: int, start_ts: int,
                 data_dir: Path, acc: _Accounts, url: str) -> None:
        self.interval_s = interval_s
        self.clock = ManualClock(start_ts)
        # the device sites' own simulator (weather and load are keyed by site, so a subset simulates
        # the same sites as the fleet's): the simulated devices' threads never share the demo's
        self.fleet = FleetPhysics(FleetSimulator([s for s, _ in chosen], seed, interval_s))
        self.sites: list[DeviceSite] = []
        self.curtailed_wh = 0
        self.curtailed_slots: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        logging.getLogger("crev.dgc").addHandler(logging.NullHandler())  # alerts stay in the outboxes
        cfg = SenderConfig(batch_size=100, timeout_s=30.0, backoff_initial_s=0.05, backoff_max_s=2.0,
                           price_every_s=30.0)
        try:
            for spec, role in chosen:
                err = {READS_LOW: -METER_ERROR_BP, READS_HIGH: METER_ERROR_BP}.get(role, 0)
                # integrated from a slot before the start: the smart meter has a fixed value at the start
                physics = SitePhysics(self.fleet, spec.site_id, self.clock, start=start_ts - SLOT_S,
                                      dgc_export_error_bp=err)
                echonet = SimulatedEchonetNode(physics).start()
                sunspec = SunSpecServer(physics, serial=f"DGC-C-{spec.site_id.upper()}").start()
                control: dict[str, Any] = {"enabled": False}
                policy = POLICIES.get(role)
                if policy is not None:
                    control = {**policy, "enabled": True, "tick_s": CONTROL_TICK_S, "market_id": SPOT,
                               "owner_id": spec.owner_id}
                site_cfg = parse_config({"ledger_url": url, "sites": [{
                    "device_id": spec.site_id, "key_file": f"{spec.site_id}.key", "interval_s": interval_s,
                    "outbox": f"{spec.site_id}.outbox.sqlite", "meter_id": f"JP-SM-{spec.site_id.upper()}",
                    "smart_meter": {"host": "127.0.0.1", "port": echonet.port},
                    "inverter": {"host": "127.0.0.1", "port": sunspec.port, "unit": 1},
                    "grid_meter": {"host": "127.0.0.1", "port": sunspec.port, "unit": 2},
                    "control": control}]}, data_dir / "dgc").sites[0]
                meter = EchonetSmartMeter("127.0.0.1", echonet.port, name=f"smart-meter {spec.site_id}")
                link = ModbusLink("127.0.0.1", sunspec.port, timeout_s=3.0)
                devices = Devices(meter, SunSpecInverter("127.0.0.1", sunspec.port, 1, f"pcs {spec.site_id}",
                                                         link=link),
                                  SunSpecGridMeter("127.0.0.1", sunspec.port, 2, f"grid-meter {spec.site_id}",
                                                   link=link))
                outbox = Outbox(site_cfg.outbox)
                agent = SiteAgent(site_cfg, CHAIN_ID, acc.key(f"dgc/{spec.site_id}"), devices, outbox)
                sender = Sender(url, CHAIN_ID, outbox, cfg, agent=agent, rng=random.Random(f"{seed}/{spec.site_id}"))
                self.sites.append(DeviceSite(spec, role, physics, echonet, sunspec, meter, link, agent, sender,
                                             outbox))
            self.pool = ThreadPoolExecutor(max(1, len(self.sites)), thread_name_prefix="dgc-sender")
        except BaseException:
            self.close()
            raise
        self._step(start_ts)  # the first boundary and fixed value: the base of the first reading
        for d in self.sites:
            d.generation_wh = d.physics.generation_wh()
            d.import_wh, d.export_wh = d.physics.smart_meter_wh()

    @property
    def ids(self) -> set[str]:
        return {d.spec.site_id for d in self.sites}

    def _step(self, now: int) -> None:
        self.clock.t = now
        for d in self.sites:
            try:
                d.agent.step(now)
            except Exception as err:  # a device library's surprise: an alert, and the others go on
                d.agent.alert(f"{d.agent.device_id}.agent", f"{type(err).__name__}: {err}", now)

    def interval(self, t: int, stats: DemoStats) -> None:
        """Run the agents through the interval [t, t + interval_s]: every control tick and the
        boundary at its end (which signs the interval's reading and, at a slot end, the smart
        meter's values). Adds the sites' true energy flows and their curtailment to ``stats``."""
        end = t + self.interval_s
        times = sorted({end, *range(t - t % CONTROL_TICK_S + CONTROL_TICK_S, end, CONTROL_TICK_S)})
        for now in times:
            self._step(now)
        for d in self.sites:
            g = d.physics.generation_wh()
            imp, exp = d.physics.smart_meter_wh()
            dg, di, de = g - d.generation_wh, imp - d.import_wh, exp - d.export_wh
            d.generation_wh, d.import_wh, d.export_wh = g, imp, exp
            stats.generation_wh += dg
            stats.demand_wh += dg + di - de
            stats.self_consumed_wh += dg - de
            if d.agent.site.control.enabled:  # what the sun offered and the inverter did not deliver
                avail = sum(min(self.fleet.minute(d.spec.site_id, m)[0], d.physics.rated_w)
                            for m in range(t, end, 60)) * 60 // 3600
                lost = avail - dg
                if lost > max(100, avail // 100):
                    self.curtailed_wh += lost
                    self.curtailed_slots.add((d.spec.site_id, t - t % SLOT_S))

    def deliver(self, deadline_s: float = 120.0) -> None:
        """Deliver every site's outbox, all sites at once (their batches share blocks), and wait
        until it is committed (or ``deadline_s`` [wall s] passed: what is left goes next time).
        (Delivering while the agents read the next interval was measured slower: the senders
        then chase a filling outbox in smaller batches, and everything shares one GIL.)"""
        for f in [self.pool.submit(_deliver, d.sender, deadline_s, self._stop) for d in self.sites]:
            f.result()

    def alerts(self) -> int:
        return sum(d.agent.alerts_raised for d in self.sites)

    def dead_letters(self) -> int:
        return sum(len(d.outbox.dead_letters()) for d in self.sites)

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            self._stop.set()  # a delivery in flight ends at its next try
            pool.shutdown(wait=True, cancel_futures=True)
        for d in self.sites:
            d.sender.close()
            d.meter.close()
            d.link.close()
            d.echonet.stop()
            d.sunspec.stop()
            d.outbox.close()


def _deliver(sender: Sender, deadline_s: float, stop: threading.Event) -> bool:
    """Pump one sender until its outbox is empty (True), ``deadline_s`` [wall s] passes or ``stop``
    is set (False)."""
    end = time.monotonic() + deadline_s
    while not stop.is_set():
        wait = sender.pump()
        if not any(sender.outbox.depth().values()):
            return True
        if time.monotonic() > end:
            return False
        stop.wait(min(max(wait, 0.005), 0.2))
    return False


def _start_consortium(data_dir: Path, genesis: Genesis, operator_seed: bytes, validators: int, base_port: int,
                      console: Console) -> tuple[Any, Ledger]:
    """A localnet of ``validators`` in ``data_dir``, started, and its first member's ledger."""
    from crev.consortium import localnet
    from crev.consortium.member import Consortium, MemberLedger

    specs = localnet.init(data_dir, validators, chain_id=CHAIN_ID, base_port=base_port, timeout_commit="100ms",
                          genesis=genesis, operator_seed=operator_seed, events="summary")
    net = localnet.Localnet(data_dir).start()
    try:
        net.wait_blocks(1)
        first = specs[0]
        console.print(f"consortium: {validators} validators on loopback (rpc {', '.join(s.rpc_url for s in specs)}); "
                      f"the demo submits through {first.name}'s node")
        return net, MemberLedger(first.data, first.rpc_url, consortium=Consortium(specs, first.name))
    except BaseException:
        net.stop()
        raise


def _count_market(stats: DemoStats, outcome: Any) -> None:
    """Called for every committed block: count trades and auctions from the events."""
    for res in outcome.results:
        for e in res.events:
            if isinstance(e, Traded):
                stats.trades += 1
                stats.traded_g += e.quantity_g
                stats.traded_jpy += e.value_jpy
                stats.last_price[e.market_id] = e.price
                if e.retirement_id:
                    stats.retired_g += e.quantity_g
                    stats.sample_retirement = stats.sample_retirement or e.retirement_id
            elif isinstance(e, AuctionCleared):
                stats.auctions += 1


def _count_devices(stats: DemoStats, outcome: Any, device_ids: set[str],
                   device_lots: list[tuple[str, str, int]]) -> None:
    """Called for every committed block: what the device sites' agents delivered and what the
    ledger made of it (readings, lots, smart-meter values, reconciliation, control records, drift)."""
    if not device_ids:
        return
    for res in outcome.results:
        for e in res.events:
            if isinstance(e, ReadingAccepted) and e.device_id in device_ids:
                stats.readings += 1
                stats.device_readings += 1
            elif isinstance(e, Issued) and e.device_id in device_ids:
                stats.issued_g += e.quantity_g
                if e.origin == "reconcile":
                    stats.reconcile_topup_g += e.quantity_g
                elif e.origin == "reading":
                    device_lots.append((e.owner, e.lot_id, e.quantity_g))
            elif isinstance(e, MeterValuesRecorded):
                stats.meter_values += 1
            elif isinstance(e, SlotReconciled):
                stats.slots[e.status] += 1
                stats.reconcile_cancelled_g += e.cancelled_g
                stats.reconcile_debt_g += e.debt_g
            elif isinstance(e, ControlRecorded):
                stats.control_records[e.reason] += 1
            elif isinstance(e, CalibrationDrift):
                stats.drift_alerts.append(f"{e.device_id} {e.quantity}")


SlotKey = tuple[str, int]  # (device id, slot id)


class FinalityCounter:
    """The C-REV standing (issued − withdrawn) by its slot's finality, kept from the committed
    blocks' events rather than by reading every slot tally under the node's lock each interval.

    A slot's standing changes only by events the blocks carry: ``Issued`` (a reading's lot or a
    top-up, counted in its slot's tally), ``SlotReconciled`` (the status, and ``cancelled_g`` +
    ``debt_g`` withdrawn) and an operator's ``correct`` cancellation (its ``Cancelled`` events;
    the lot's slot is read from the state). The counter holds each slot whose finality window is
    still open at the last block's time, since its finality depends on the clock or may still be
    reconciled; a slot whose window has passed can no longer become corrected (a smart-meter value
    then arrives late) and moves to a sum by finality. Memory and the per-interval work are the
    open windows' slots (devices × the window's slots), not the history."""

    def __init__(self, final_after_s: int) -> None:
        self.final_after_s = final_after_s
        self.height = 0  # the last block counted
        self._lock = threading.Lock()
        self._open: dict[SlotKey, list[Any]] = {}  # [standing g, status] of slots in their window
        self._closing: list[tuple[int, SlotKey]] = []  # heap of (window end, slot) over ``_open``
        self._closed: Counter[str] = Counter()  # standing of the other slots, by finality
        self._corrected: set[SlotKey] = set()  # closed slots that were reconciled as corrected
        self._cancels: list[tuple[str, int]] = []  # (lot id, g) an operator cancelled, slot to read
        self._block_time = 0

    def _window_end(self, key: SlotKey) -> int:
        return key[1] * SLOT_SECONDS + SLOT_SECONDS + self.final_after_s

    def _add(self, key: SlotKey, grams: int) -> list[Any] | None:
        """Add ``grams`` to a slot's standing; returns its open entry (None once closed)."""
        slot = self._open.get(key)
        if slot is None:
            end = self._window_end(key)
            if end <= self._block_time:  # closed: its finality is settled
                self._closed[CORRECTED if key in self._corrected else "final"] += grams
                return None
            slot = self._open[key] = [0, PROVISIONAL]
            heapq.heappush(self._closing, (end, key))
        slot[0] += grams
        return slot

    def on_block(self, _block: Block, outcome: BlockOutcome) -> None:
        """A node listener: count one committed block."""
        with self._lock:
            self._block_time = outcome.header.time
            for res in outcome.results:
                # an operator's cancel action withdraws from its lot's slot; a top-up issues first
                # and cancels only to repay a debt, which withdraws nothing
                cancel = res.kind == "correct" and not any(isinstance(e, Issued) for e in res.events)
                for e in res.events:
                    if isinstance(e, Issued):
                        self._add((e.device_id, e.slot_id), e.quantity_g)
                    elif isinstance(e, SlotReconciled):
                        slot = self._add((e.device_id, e.slot_id), -(e.cancelled_g + e.debt_g))
                        if slot is not None:
                            slot[1] = e.status
                    elif cancel and isinstance(e, Cancelled):
                        self._cancels.append((e.lot_id, e.end_unit - e.start_unit))
            heap = self._closing
            while heap and heap[0][0] <= self._block_time:
                _, key = heapq.heappop(heap)
                standing, status = self._open.pop(key)
                if status == CORRECTED:
                    self._corrected.add(key)
                self._closed[CORRECTED if status == CORRECTED else "final"] += standing
            self.height = outcome.header.height

    def totals(self, now: int, lot_slot: Callable[[str], SlotKey | None]) -> Counter[str]:
        """Standing by finality (provisional, final, corrected) at time ``now``; ``lot_slot``
        gives a lot's (device, slot) for the operator's cancellations counted since last time."""
        with self._lock:
            cancels, self._cancels = self._cancels, []
        found = [(lot_slot(lot_id), grams) for lot_id, grams in cancels]
        with self._lock:
            for key, grams in found:
                if key is not None:
                    self._add(key, -grams)
            out = Counter(self._closed)
            for key, (standing, status) in self._open.items():
                if status == PROVISIONAL and now >= self._window_end(key):
                    status = "final"
                out[status if status in (PROVISIONAL, CORRECTED) else "final"] += standing
        return out


def _finality(node: Ledger, counter: FinalityCounter, now: int, stats: DemoStats) -> None:
    """The C-REV standing (issued − withdrawn) by its slot's finality at time ``now``:
    provisional, final (or late: compared after the finality window) and corrected."""
    deadline = time.monotonic() + 10
    while counter.height < node.state.height and time.monotonic() < deadline:
        time.sleep(0.002)  # a receipt is answered before the block's listeners run
    lock = getattr(node, "lock", None) or threading.Lock()

    def lot_slot(lot_id: str) -> SlotKey | None:
        with lock:
            lot = node.state.lots.get(lot_id)
        return None if lot is None else (lot.device_id, lot.slot_id)

    totals = counter.totals(now, lot_slot)
    stats.provisional_g, stats.final_g, stats.corrected_g = totals[PROVISIONAL], totals["final"], totals[CORRECTED]


def _open_market(node: Ledger, acc: _Accounts, owners: list[str], start_ts: int) -> set[str]:
    """List the markets, fund the buyers, set the automatic orders. Returns the owners who sell by
    direct transfer instead of an auto-offer."""
    fy = fiscal_year(start_ts)
    p0, p1 = fiscal_year_bounds(fy)
    steps: list[tuple[str, Message]] = [
        (OPERATOR, ListMarket(SPOT, "Japan spot C-REV / 国内スポット", "continuous", ANY, 500, 50_000, 100, 30, 0,
                              True)),
        (OPERATOR, ListMarket(CALL, "Non-FIT C-REV call auction / 非FIT 板寄せ", "call", Filter(fit=0), 500, 50_000,
                              100, 30, 1800, True)),
    ]
    for i, (bid, _, _) in enumerate(BUYERS):
        steps.append((OPERATOR, DepositJpy(bid, 200_000 + 100_000 * i, f"BANK-DEMO-{i + 1:04d}", os.urandom(16))))
    auto = owners[::2]
    for i, owner in enumerate(auto):
        steps.append((owner, SetOfferPolicy(SPOT, 6_000 + 500 * (i % 5), 2_500 + 250 * (i % 4))))
    (b0, n0, p_0), (b1, n1, p_1) = BUYERS[0], BUYERS[1]
    steps.append((b0, SetStandingBid(SPOT, 4_000, 5_000_000, ANY,
                                     RetireSpec(n0, p_0, p0, p1, "JP", f"FY{fy} RE100 claim (standing bid)"))))
    steps.append((b1, SetStandingBid(SPOT, 3_600, 3_000_000, Filter(grid_areas=("chubu", "tokyo")),
                                     RetireSpec(n1, p_1, p0, p1, "JP", f"FY{fy} 温対法 report (standing bid)"))))
    for signer, msg in steps:
        _check(node.submit_wait(acc.tx(signer, msg)), msg.kind)
    return set(owners) - set(auto)


def _call_orders(node: Ledger, acc: _Accounts, todays: dict[str, list[tuple[str, int]]], now: int) -> None:
    """The direct sellers offer 40 % of the day's C-REV (of the half they kept) in the call market;
    the third buyer bids there, good for one day."""
    for i, (owner, lots) in enumerate(sorted(todays.items())):
        items = tuple((lot, q * 2 // 5) for lot, q in lots if q * 2 // 5 > 0)
        total = sum(q for _, q in items)
        if total >= 100:
            _check(node.submit_wait(acc.tx(owner, PlaceOrder(CALL, "ask", 2_800 + 100 * (i % 5), total, "gtc", 0,
                                                             ANY, items, None))), "call offer")
    bid, _, _ = BUYERS[2]
    _check(node.submit_wait(acc.tx(bid, PlaceOrder(CALL, "bid", 3_200, 300_000, "gtt", now + 86400, ANY, (),
                                                   None))), "call bid")


def _register(node: Ledger, acc: _Accounts, fleet: list[Any], start_ts: int) -> None:
    owners: dict[str, str] = {}
    for s in fleet:
        owners.setdefault(s.owner_id, s.owner_id.replace("-", " ").title())
    futs = []
    for oid, name in sorted(owners.items()):
        futs.append(node.submit(acc.tx(OPERATOR, RegisterParticipant(oid, name, "prosumer",
                                                                     acc.key(oid).public_key, os.urandom(16)))))
    for bid, name, _ in BUYERS:
        futs.append(node.submit(acc.tx(OPERATOR, RegisterParticipant(bid, name, "buyer",
                                                                     acc.key(bid).public_key, os.urandom(16)))))
    futs.append(node.submit(acc.tx(OPERATOR, RegisterParticipant(AUDITOR, "Demo Audit LLC", "auditor",
                                                                 acc.key(AUDITOR).public_key, os.urandom(16)))))
    for f in futs:
        _check(f.result(30), "register participant")
    futs = []
    for s in fleet:
        commissioned = parse_time(s.commissioned)
        futs.append(node.submit(acc.tx(OPERATOR, RegisterDevice(
            s.site_id, s.owner_id, acc.key(f"dgc/{s.site_id}").public_key, s.pv_capacity_w,
            min(commissioned, start_ts), round(s.latitude * 1e6), round(s.longitude * 1e6), s.grid_area,
            f"DGC-C-{s.site_id.upper()}", start_ts + 5 * 365 * 86400, False, "solar_pv"))))
    for f in futs:
        _check(f.result(30), "register device")


def _end_of_day(node: Ledger, acc: _Accounts, todays: dict[str, list[tuple[str, int]]],
                held: dict[str, list[tuple[str, int]]], stats: DemoStats, now: int) -> None:
    """Each prosumer sells half of today's C-REV to a buyer; buyers retire 80 % of their holdings."""
    futs = []
    for i, (owner, lots) in enumerate(sorted(todays.items())):
        buyer = BUYERS[i % len(BUYERS)][0]
        items = tuple((lot, q // 2) for lot, q in lots if q >= 2)
        if items:
            futs.append((buyer, items, node.submit(acc.tx(owner, Transfer(buyer, items, "daily sale")))))
    for buyer, items, f in futs:
        _check(f.result(30), "transfer")
        held[buyer].extend(items)
        stats.transferred_g += sum(q for _, q in items)
    fy = fiscal_year(now - 1)
    p0, p1 = fiscal_year_bounds(fy)
    for bid, name, purpose in BUYERS:
        state_lots = node.state.lots
        have = [(lot, available(state_lots[lot], bid, TRADABLE)) for lot, _ in held[bid]]
        items = tuple((lot, q * 4 // 5) for lot, q in have if q * 4 // 5 > 0)
        if not items:
            continue
        r = _check(node.submit_wait(acc.tx(bid, Retire(items, name, purpose, p0, p1, "JP",
                                                       f"FY{fy} claim, {jst(now - 1).date()}"))), "retire")
        stats.retired_g += r.detail[1]
        stats.sample_retirement = stats.sample_retirement or r.detail[0]
        stats.sample_lot = stats.sample_lot or items[0][0]
        held[bid] = [(lot, q - q * 4 // 5) for lot, q in have if q - q * 4 // 5 > 0]


def _operator_corrections(node: Ledger, acc: _Accounts, stats: DemoStats, device_ids: set[str]) -> None:
    """The operator's manual corrections (``correct``), recorded as such: a top-up after a site
    audit found a site's CT reading 0.5 % low, and a cancellation after a meter fault. (The smart
    meter's reconciliation is the device sites' own: ``submit_meter_values``.) Lots of the direct
    sites are preferred, so the device sites' slots show the reconciliation alone."""
    lots = sorted(node.state.lots.values(), key=lambda lot: lot.first_unit)
    big = [lot for lot in lots if lot.quantity_g > 2000 and lot.device_id not in device_ids]
    if len(big) < 2:
        big = [lot for lot in lots if lot.quantity_g > 2000]
    if len(big) < 2:
        return
    up, down = big[len(big) // 2], big[-1]
    extra_wh = up.self_consumed_wh // 200  # the audit found 0.5 % more
    q = extra_wh * up.factor_g_per_kwh // 1000
    if q > 0:
        r = node.submit_wait(acc.tx(OPERATOR, Correct("topup", up.lot_id, q, extra_wh,
                                                      "operator correction: site audit found the CT 0.5 % low",
                                                      "AUDIT-0001")))
        _check(r, "top-up")
        stats.issued_g += q
    owner = down.issued_to
    tradable = sum(s.end - s.start for s in down.segments if s.status == "tradable" and s.holder == owner)
    if tradable >= 100:
        _check(node.submit_wait(acc.tx(OPERATOR, Correct("cancel", down.lot_id, 100, 0,
                                                         "meter fault: CT clamp misread",
                                                         "INC-2041", owner))), "cancel")


def _progress_table(s: DemoStats, now: float, span: int, done: int, url: str | None = None) -> Table:
    t = Table(title="crev demo: self-consumed solar → C-REV", show_header=False, min_width=60)
    if url:
        t.add_row("[bold]dashboard / ダッシュボード[/]", f"[bold cyan]{url}[/]  (live; Ctrl-C stops)")
        t.add_row("simulated time (JST)", f"{jst(int(now)).strftime('%Y-%m-%d %H:%M')}   live")
    else:
        pct = 100 * done / span if span else 100
        t.add_row("simulated time (JST)", f"{jst(int(now)).strftime('%Y-%m-%d %H:%M')}   {pct:5.1f} %")
    t.add_row("blocks committed", f"{s.blocks:,}")
    t.add_row("signed readings accepted", f"{s.readings:,}" + (f"  (refused {s.refused})" if s.refused else ""))
    t.add_row("C-REV issued", f"{s.issued_g / 1000:,.1f} kg-CO2e")
    t.add_row("C-REV transferred / retired", f"{s.transferred_g / 1000:,.1f} / {s.retired_g / 1000:,.1f} kg-CO2e")
    prices = ", ".join(f"{m} ¥{p:,}/t" for m, p in sorted(s.last_price.items())) or "—"
    t.add_row("market trades", f"{s.trades:,}: {s.traded_g / 1000:,.1f} kg for ¥{s.traded_jpy:,}  "
                               f"({s.auctions} call auctions)")
    t.add_row("last prices", prices)
    if s.device_sites:
        t.add_row("device sites (ECHONET Lite + SunSpec)",
                  f"{len(s.device_sites)}: " + ", ".join(s.device_sites))
        t.add_row("  readings / smart-meter values", f"{s.device_readings:,} / {s.meter_values:,}"
                                                     + (f"  ({s.device_alerts} device alerts)" if s.device_alerts
                                                        else ""))
        t.add_row("C-REV provisional / final / corrected",
                  f"{s.provisional_g / 1000:,.1f} / {s.final_g / 1000:,.1f} / {s.corrected_g / 1000:,.1f} kg")
        slots = ", ".join(f"{n} {k}" for k, n in sorted(s.slots.items())) or "—"
        t.add_row("  smart-meter reconciliation", f"{slots} slots; cancelled {s.reconcile_cancelled_g / 1000:,.1f} kg"
                                                  f" (debt {s.reconcile_debt_g / 1000:,.1f}), topped up "
                                                  f"{s.reconcile_topup_g / 1000:,.1f} kg")
        records = ", ".join(f"{n} {k}" for k, n in sorted(s.control_records.items())) or "none"
        t.add_row("curtailed (PCS control)", f"{s.curtailed_wh / 1000:,.1f} kWh in {s.curtailed_slots} slots; "
                                             f"control records: {records}")
        alerts = Counter(s.drift_alerts)  # a device raises one alert per run of slots out of tolerance
        t.add_row("calibration drift alerts",
                  ", ".join(a if n == 1 else f"{a} ×{n}" for a, n in sorted(alerts.items())) or "none")
    share = 100 * s.self_consumed_wh / s.demand_wh if s.demand_wh else 0.0
    t.add_row("fleet on-site renewable share", f"{share:.1f} %  of {s.demand_wh / 1e6:,.2f} MWh demand")
    rate = s.readings / s.seconds if s.seconds else 0.0
    t.add_row("wall time", f"{s.seconds:.1f} s  ({rate:,.0f} readings/s)")
    return t
