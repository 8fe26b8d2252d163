"""``crev dgc``: run the DGC agent for one site or a gateway of many (``run``), and show what it
did (``status``). The config file is described in docs/dgc.md."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from crev.cli.common import _fail, _load_key, _when, console
from crev.device.agent import Devices, Sender, SiteAgent, run_agents, status
from crev.device.clock import Clock, ScaledClock, WallClock
from crev.device.config import AgentConfig, SiteConfig, load_config
from crev.device.outbox import Outbox
from crev.errors import CrevError


@click.group()
def dgc() -> None:
    """The DGC agent: read a site's meters and inverter, sign, store and forward to the ledger."""


def _config(path: str) -> AgentConfig:
    try:
        return load_config(path)
    except CrevError as err:
        _fail(f"{path}: {err.field}: {err.reason}")
        raise


def _chain_id(cfg: AgentConfig, stop: threading.Event) -> str:
    """The ledger's chain id from GET /v1/info, checked against the config's; the config's alone
    while the ledger is down (the agent signs and stores meanwhile)."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{cfg.ledger_url}/v1/info", timeout=5) as resp:
                got = str(json.loads(resp.read())["chain_id"])
        except (urllib.error.URLError, OSError, ValueError, KeyError) as err:
            if cfg.chain_id:
                console.print(f"ledger {escape(cfg.ledger_url)} not reachable ({escape(str(err))}); "
                              f"signing for chain {escape(cfg.chain_id)} from the config")
                return cfg.chain_id
            console.print(f"waiting for {escape(cfg.ledger_url)} to learn the chain id ({escape(str(err))})")
            stop.wait(5)
            continue
        if cfg.chain_id and cfg.chain_id != got:
            _fail(f"chain_id: the config says {cfg.chain_id!r}, the ledger at {cfg.ledger_url} is {got!r}")
        return got
    raise SystemExit(0)


def registration_problem(site: SiteConfig, index: int, public_key: bytes) -> str | None:
    """Why the ledger would refuse everything this site signs, before it signs anything: the device
    is not registered, is revoked, or ``key_file`` holds none of its registered keys. None when the
    ledger agrees, or cannot be asked now (the agent then signs and stores; the dead letters would
    name the problem later)."""
    url = f"{site.ledger_url}/v1/devices/{urllib.parse.quote(site.device_id, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            dev = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return (f"sites[{index}].device_id: the ledger at {site.ledger_url} has no device "
                    f"{site.device_id!r} (ask the operator to register it)")
        return None
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if dev.get("status") == "revoked":
        return f"sites[{index}].device_id: device {site.device_id!r} is revoked on the ledger"
    keys = {k.get("public_key") for k in dev.get("keys", []) if not k.get("revoked")}
    if public_key.hex() not in keys:
        return (f"sites[{index}].key_file: {site.key_file} holds key {public_key.hex()[:16]}…, which is not a "
                f"key of device {site.device_id!r} on the ledger (registered: "
                f"{', '.join(k[:16] + '…' for k in sorted(keys)) or 'none'})")
    return None


def open_devices(site: SiteConfig) -> Devices:
    """The site's real devices: the smart meter over ECHONET Lite, the inverter and grid meter over
    SunSpec Modbus TCP (one connection when they share host and port)."""
    from crev.device.echonet import EchonetSmartMeter
    from crev.device.sunspec import ModbusLink, SunSpecGridMeter, SunSpecInverter

    sm = EchonetSmartMeter(site.smart_meter.host, site.smart_meter.port, timeout_s=site.smart_meter.timeout_s)
    inv_ep, gm_ep = site.inverter, site.grid_meter
    link = ModbusLink(inv_ep.host, inv_ep.port, timeout_s=inv_ep.timeout_s)
    gm_link = link if (gm_ep.host, gm_ep.port) == (inv_ep.host, inv_ep.port) else ModbusLink(
        gm_ep.host, gm_ep.port, timeout_s=gm_ep.timeout_s)
    inv = SunSpecInverter(inv_ep.host, inv_ep.port, inv_ep.unit, rated_w=site.rated_w, link=link)
    gm = SunSpecGridMeter(gm_ep.host, gm_ep.port, gm_ep.unit, link=gm_link)
    return Devices(sm, inv, gm)


@dgc.command("run")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--until", default=None, help="Stop when the (simulated) clock reaches this ISO time.")
@click.option("--site", "only", multiple=True, help="Run only this device id (repeatable).")
def run(config: str, until: str | None, only: tuple[str, ...]) -> None:
    """Run the agent for every site of CONFIG until SIGTERM or Ctrl-C."""
    cfg = _config(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    chain_id = _chain_id(cfg, stop)
    clock: Clock = WallClock()
    if cfg.clock is not None:
        clock = ScaledClock(cfg.clock.origin, cfg.clock.speed,
                            cfg.clock.wall_origin if cfg.clock.wall_origin is not None else time.time())
    sites = [s for s in cfg.sites if not only or s.device_id in only]
    if not sites:
        _fail(f"--site: no site {', '.join(only)} in {config}")
    agents, senders = [], []
    for s in sites:
        key = _load_key(str(s.key_file))
        problem = registration_problem(s, cfg.sites.index(s), key.public_key)
        if problem:
            _fail(problem)
        try:
            agent = SiteAgent(s, chain_id, key, open_devices(s), Outbox(s.outbox))
        except CrevError as err:
            _fail(f"{err.field}: {err.reason}")
            raise
        agents.append(agent)
        senders.append(Sender(s.ledger_url, chain_id, agent.outbox, cfg.sender, agent=agent))
    console.print(f"crev dgc: {len(agents)} site(s) on chain {escape(chain_id)}, ledger {escape(cfg.ledger_url)}"
                  + (f", simulated clock x{cfg.clock.speed:g}" if cfg.clock else ""))
    run_agents(agents, senders, clock, stop, until=_when(until, "--until") if until else None)
    for snd in senders:
        snd.close()
    for a in agents:
        a.outbox.close()


@dgc.command("status")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def status_cmd(config: str, as_json: bool) -> None:
    """Last readings, outbox depth, dead letters, receipts, device health and alerts per site."""
    cfg = _config(config)
    out: dict[str, Any] = {}
    for s in cfg.sites:
        if not s.outbox.exists():
            out[s.device_id] = {"device_id": s.device_id, "outbox_missing": str(s.outbox)}
            continue
        ob = Outbox(s.outbox)
        try:
            out[s.device_id] = status(ob)
        finally:
            ob.close()
    if as_json:
        click.echo(json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False))
        return
    for dev, st in out.items():
        _render(dev, st)


def _t(ts: Any) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(ts) + 9 * 3600)) + " JST"


def _render(dev: str, st: dict[str, Any]) -> None:
    if "outbox_missing" in st:
        console.print(f"[bold]{escape(dev)}[/bold]: no outbox yet ({escape(st['outbox_missing'])})")
        return
    depth = st["outbox"]
    console.print(f"[bold]{escape(dev)}[/bold] chain {escape(str(st['chain_id']))} · seq {st['seq']} · "
                  f"last signed end {_t(st['last_signed_end'])} · outbox "
                  + ", ".join(f"{k} {v}" for k, v in depth.items())
                  + f" · dead letters {len(st['dead_letters'])}")
    t = Table("seq", "interval start", "G Wh", "I Wh", "E Wh", "clamped", "status", title="last readings")
    for r in st["last_readings"]:
        t.add_row(str(r.get("seq")), _t(r.get("interval_start")), str(r.get("generation_wh")),
                  str(r.get("import_wh")), str(r.get("export_wh")), str(r.get("clamped_export_wh") or ""),
                  str(r["status"]))
    console.print(t)
    offers = st.get("offers") or {}
    if offers.get("last") or offers.get("pending") or offers.get("paused"):
        title = (f"last offers (delegate nonce {offers.get('nonce', 0)}, {offers.get('pending', 0)} waiting"
                 + (f", paused: {offers['paused']}" if offers.get("paused") else "") + ")")
        t = Table("at", "lot", "lot g", "offered g", "JPY/t", "status", title=escape(title))
        for o in offers.get("last", []):
            t.add_row(_t(o.get("at")), escape(str(o.get("lot_id"))), str(o.get("lot_g")), str(o.get("quantity_g")),
                      str(o.get("price_jpy_per_t")), escape(str(o["status"])))
        console.print(t)
    t = Table("kind", "height", "received", "accepted", "duplicate", title="last receipts")
    for r in st["receipts"]:
        t.add_row(r["kind"], str(r["height"]), _t(r["at"]), str(r["accepted"]), str(r["duplicate"]))
    console.print(t)
    t = Table("device", "last good read", "last error at", "field", "error", title="device health")
    for h in st["health"]:
        t.add_row(escape(h["device"]), _t(h["last_good_at"]), _t(h["last_error_at"]), escape(h["last_error_field"]),
                  escape(h["last_error"]))
    console.print(t)
    if st["dead_letters"]:
        t = Table("kind", "item", "code", "field", "reason", title="dead letters")
        for d in st["dead_letters"]:
            t.add_row(d["kind"], d["ref"], d["code"], escape(d["field"]), escape(d["reason"]))
        console.print(t)
    t = Table("last", "field", "reason", "count", title="alerts")
    for a in st["alerts"][:20]:
        t.add_row(_t(a["last_at"]), escape(a["field"]), escape(a["reason"]), str(a["count"]))
    console.print(t)
    sys.stdout.flush()


__all__ = ["dgc", "open_devices"]
