"""``crev sim devices``: simulated site devices on loopback, to try ``crev dgc run`` by hand.

For N sites of :func:`crev.sim.fleet.make_fleet` it starts, on one shared
:class:`crev.device.clock.ScaledClock` (it catches up from a past origin, then runs in real time), a
:class:`~crev.sim.site.SitePhysics` behind a simulated ECHONET Lite smart meter (UDP) and a
simulated SunSpec inverter and grid meter (Modbus TCP); registers the owners and the DGC devices
on a running node over HTTP (operator-signed transactions, as ``crev submit`` builds them); writes
``OUTDIR/dgc.toml`` for ``crev dgc run``; and serves until Ctrl-C or SIGTERM. See docs/dgc.md
("Try it with simulated devices").

OUTDIR holds ``keys/`` (one device key per site, one key per owner, mode 600), ``sim.json`` (what
was chosen: sites, seed, clock, ports, roles), ``sim-state.json`` (each site's energy registers,
saved every second and on stop, so a re-run continues them instead of starting the meters at 0),
``dgc.toml`` and, once the agent runs, its outboxes. A re-run with the same OUTDIR reuses all of
it; an option that contradicts ``sim.json`` is refused.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from crev.cli.common import DEFAULT_NODE, _fail, _info, _load_key, _nonce, _post, _when, console
from crev.core.signing import Signer
from crev.core.units import JST_OFFSET_SECONDS, parse_time
from crev.device.config import load_config
from crev.errors import CrevError

SLOT_S = 1800
MANIFEST = "sim.json"
STATE = "sim-state.json"
CONFIG = "dgc.toml"
DEFAULT_SPEED = 60.0  # simulated s per wall s while catching up: a 30-minute reading every 30 wall s
DEFAULT_TICK_S = 60  # the DGC's control tick [s, simulated]


@click.group()
def sim() -> None:
    """Simulated devices to try the DGC agent by hand."""


def default_origin(now: float) -> int:
    """Today's 06:00 JST if that has passed, else yesterday's [unix s]."""
    day = (int(now) + JST_OFFSET_SECONDS) // 86400 * 86400 - JST_OFFSET_SECONDS
    six = day + 6 * 3600
    return six if six <= now else six - 86400


@dataclass
class SimSite:
    site_id: str
    owner_id: str
    role: str  # "zero-export" or "released"
    physics: Any  # crev.sim.site.SitePhysics
    echonet: Any  # crev.sim.echonet.SimulatedEchonetNode
    sunspec: Any  # crev.sim.sunspec.SunSpecServer


# --- files in OUTDIR ---------------------------------------------------------------------------


def _write_key(path: Path) -> Signer:
    """A new device or owner key (hex seed, mode 600), or the one already there."""
    if path.exists():
        return _load_key(str(path))
    seed = os.urandom(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
    return Signer(seed)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string for this text
    return repr(v)


def config_text(m: dict[str, Any]) -> str:
    """``dgc.toml`` for the manifest ``m`` (a valid ``crev dgc run`` config; paths relative to OUTDIR)."""
    clock = m["clock"]
    lines = ["# written by `crev sim devices`: the simulated sites' devices on loopback (docs/dgc.md)",
             f"ledger_url = {_toml_value(m['ledger_url'])}", f"chain_id = {_toml_value(m['chain_id'])}", "",
             "[clock]  # the devices' clock: catches up from origin at speed, then runs in real time",
             f"origin = {clock['origin']}", f"speed = {_toml_value(float(clock['speed']))}",
             f"wall_origin = {_toml_value(float(clock['wall_origin']))}", "",
             "[sender]", "backoff_initial_s = 0.5", "backoff_max_s = 5.0", "price_every_s = 30.0"]
    host = m["host"]
    for s in m["sites"]:
        sid = s["site_id"]
        lines += ["", "[[sites]]", f"device_id = {_toml_value(sid)}", f"key_file = {_toml_value(f'keys/{sid}.key')}",
                  f"interval_s = {m['interval_s']}", f"outbox = {_toml_value(f'outbox/{sid}.sqlite')}",
                  f"meter_id = {_toml_value('JP-SM-' + sid.upper())}",
                  f"max_read_delay_s = {max(120, m['interval_s'] // 15)}",
                  "[sites.smart_meter]", f"host = {_toml_value(host)}", f"port = {s['echonet_port']}",
                  "[sites.inverter]", f"host = {_toml_value(host)}", f"port = {s['sunspec_port']}", "unit = 1",
                  "[sites.grid_meter]", f"host = {_toml_value(host)}", f"port = {s['sunspec_port']}", "unit = 2",
                  "[sites.control]"]
        if s["role"] == "zero-export":
            lines += ["enabled = true", "export_limit_w = 0  # no reverse power flow (逆潮流なし)",
                      f"tick_s = {m['tick_s']}"]
        else:
            lines += ["enabled = false"]
    return "\n".join(lines) + "\n"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return out
    except (OSError, ValueError) as err:
        _fail(f"{path}: cannot read ({err}); remove OUTDIR to start afresh")
        raise


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


def _same(given: Any, saved: Any, option: str, outdir: Path) -> Any:
    """``given`` (None: not given) checked against the value ``saved`` in OUTDIR/sim.json."""
    if given is not None and given != saved:
        _fail(f"{option}: {outdir} was set up with {saved!r}, not {given!r}: use the same options, or another "
              f"OUTDIR (or remove {outdir} to start afresh)")
    return saved


# --- the ledger --------------------------------------------------------------------------------


def _get(url: str) -> dict[str, Any] | None:
    """GET a JSON document; None on 404."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        _fail(f"GET {url}: HTTP {err.code}")
        raise
    except urllib.error.URLError as err:
        _fail(f"cannot reach node at {url}: {err.reason}")
        raise


def register(url: str, chain_id: str, operator_id: str, operator: Signer, specs: list[Any],
             keys: dict[str, Signer], commissioned: int, certified_until: int) -> list[str]:
    """Register each site's owner (unless it exists) and device (unless it exists with this key)
    with operator-signed transactions over HTTP; returns what was done, one line each."""
    import crev.ledger.messages  # noqa: F401 - registers every transaction kind
    from crev.ledger.messages.register_device import RegisterDevice
    from crev.ledger.messages.register_participant import RegisterParticipant
    from crev.ledger.tx import Message, build_tx

    done: list[str] = []

    def send(msg: Message, what: str) -> None:
        raw = build_tx(chain_id, msg, operator_id, _nonce(url, operator_id), operator)
        out = _post(url, raw)
        if not out.get("ok"):
            err = out.get("error") or {}
            why = f"{err.get('code')}: {err.get('field')}: {err.get('reason')}" if isinstance(err, dict) else err
            _fail(f"{what}: the node refused it ({why})")
        done.append(f"registered {what}")

    for oid in sorted({s.owner_id for s in specs}):
        got = _get(f"{url}/v1/participants/{oid}")
        if got is None:
            send(RegisterParticipant(oid, oid.replace("-", " ").title(), "prosumer", keys[oid].public_key,
                                     os.urandom(16)),  # its record's blinding value (ledger/blinding.py)
                 f"participant {oid}")
        elif got.get("role") != "prosumer":
            _fail(f"participant {oid} exists on the ledger as a {got.get('role')}: devices belong to prosumers")
        else:
            done.append(f"participant {oid} exists")
    for s in specs:
        pub = keys[s.site_id].public_key.hex()
        got = _get(f"{url}/v1/devices/{s.site_id}")
        if got is None:
            send(RegisterDevice(s.site_id, s.owner_id, keys[s.site_id].public_key, s.pv_capacity_w,
                                min(parse_time(s.commissioned), commissioned), round(s.latitude * 1e6),
                                round(s.longitude * 1e6), s.grid_area, f"SIM-{chain_id}-{s.site_id}"[:64],
                                certified_until, False, "solar_pv"), f"device {s.site_id}")
        elif not any(k.get("public_key") == pub and not k.get("revoked") for k in got.get("keys", [])):
            _fail(f"device {s.site_id} exists on the ledger at {url} with another key than "
                  f"keys/{s.site_id}.key: use another ledger, or that OUTDIR's keys")
        else:
            done.append(f"device {s.site_id} exists with this key")
    return done


# --- the command -------------------------------------------------------------------------------


def _site_error(values: tuple[str, ...], ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        site, sep, bp = v.partition("=")
        if not sep or site not in ids:
            _fail(f"--dgc-export-error-bp: {v!r} must be SITE=BP with SITE one of {', '.join(ids)}")
        try:
            out[site] = int(bp)
        except ValueError:
            _fail(f"--dgc-export-error-bp: {bp!r} is not a whole number of basis points (e.g. -400 for 4 % low)")
        if not -5000 <= out[site] <= 5000:
            _fail(f"--dgc-export-error-bp: {out[site]} is outside -5000..5000 bp")
    return out


@sim.command("devices")
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--ledger", "ledger_url", default=None, help=f"The node's HTTP API [default: {DEFAULT_NODE}].")
@click.option("--operator-id", required=True, help="The registry operator's account id (as at `crev init`).")
@click.option("--operator-key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The operator's key file: it signs the registrations.")
@click.option("--sites", "n_sites", default=None, type=click.IntRange(1, 50),
              help="How many sites of make_fleet(N, SEED) [default: 2].")
@click.option("--seed", default=None, type=int, help="Fleet and weather seed [default: 1].")
@click.option("--start", default=None,
              help="Simulated time at start (ISO, JST if no offset) [default: today's 06:00 JST, or "
                   "yesterday's before 06:00].")
@click.option("--speed", default=None, type=click.FloatRange(1.0, 100_000.0),
              help=f"Simulated s per wall s until the clock has caught up with the wall clock; real time "
                   f"after [default: {DEFAULT_SPEED:g}].")
@click.option("--interval", "interval_s", default=None, type=click.Choice(["300", "600", "900", "1800"]),
              help="The DGC's metering interval [s] [default: 1800].")
@click.option("--zero-export", "zero_export", multiple=True, metavar="SITE",
              help="A site under zero export (逆潮流なし) by its DGC (repeatable; 'none' for none) "
                   "[default: the site with the lowest peak load per PV W].")
@click.option("--dgc-export-error-bp", "errors", multiple=True, metavar="SITE=BP",
              help="The DGC grid meter of SITE reads export BP basis points off the smart meter "
                   "(e.g. site-001=-400: 4 % low; repeatable).")
@click.option("--tick", "tick_s", default=None, type=click.IntRange(1, 600),
              help=f"The zero-export control tick [s, simulated] [default: {DEFAULT_TICK_S}].")
@click.option("--host", default=None, help="Address the devices listen on [default: 127.0.0.1].")
@click.option("--base-port", default=None, type=click.IntRange(0, 65000),
              help="Site i's smart meter on UDP BASE+2i, its SunSpec server on TCP BASE+2i+1 "
                   "[default: 0, free ports].")
def devices(outdir: str, ledger_url: str | None, operator_id: str, operator_key: str, n_sites: int | None,
            seed: int | None, start: str | None, speed: float | None, interval_s: str | None,
            zero_export: tuple[str, ...], errors: tuple[str, ...], tick_s: int | None, host: str | None,
            base_port: int | None) -> None:
    """Run simulated devices for N sites, register them on the ledger and write OUTDIR/dgc.toml.

    Each site gets a smart meter (ECHONET Lite over UDP) and an inverter with its grid meter
    (SunSpec over Modbus TCP), all reading one simulated site. Serves until Ctrl-C or SIGTERM;
    run `crev dgc run OUTDIR/dgc.toml` meanwhile.
    """
    from crev.sim.echonet import SimulatedEchonetNode
    from crev.sim.fleet import FleetSimulator, make_fleet
    from crev.sim.site import FleetPhysics, ScaledClock, SitePhysics
    from crev.sim.sunspec import SunSpecServer

    out = Path(outdir)
    mpath, spath, cpath = out / MANIFEST, out / STATE, out / CONFIG
    operator = _load_key(operator_key)
    saved = _read_json(mpath) if mpath.exists() else None
    url = (ledger_url or (saved or {}).get("ledger_url") or DEFAULT_NODE).rstrip("/")
    if saved is not None:
        url = _same(url, saved["ledger_url"], "--ledger", out)
    info = _info(url)
    chain_id = str(info["chain_id"])
    if saved is not None:
        _same(chain_id, saved["chain_id"], f"the ledger at {url} (chain id)", out)
        _same(operator_id, saved["operator_id"], "--operator-id", out)
        n = _same(n_sites, saved["n_sites"], "--sites", out)
        seed_v = _same(seed, saved["seed"], "--seed", out)
        _same(None if start is None else _when(start, "--start"), saved["clock"]["origin"], "--start", out)
        _same(speed, saved["clock"]["speed"], "--speed", out)
        iv = _same(None if interval_s is None else int(interval_s), saved["interval_s"], "--interval", out)
        _same(tick_s, saved["tick_s"], "--tick", out)
        _same(host, saved["host"], "--host", out)
        _same(base_port, saved["base_port"], "--base-port", out)
        specs = make_fleet(n, seed_v)
        if zero_export:
            _same(sorted(z for z in zero_export if z != "none"),
                  sorted(s["site_id"] for s in saved["sites"] if s["role"] == "zero-export"), "--zero-export", out)
        if errors:
            _same(_site_error(errors, [s.site_id for s in specs]),
                  {s["site_id"]: s["dgc_export_error_bp"] for s in saved["sites"] if s["dgc_export_error_bp"]},
                  "--dgc-export-error-bp", out)
        m = saved
    else:
        if cpath.exists():
            _fail(f"{cpath} exists but {mpath} does not: not an OUTDIR of `crev sim devices`; use another")
        n, seed_v, iv = n_sites or 2, 1 if seed is None else seed, int(interval_s or 1800)
        specs = make_fleet(n, seed_v)
        ids = [s.site_id for s in specs]
        zeros = [z for z in zero_export if z != "none"]
        for z in zeros:
            if z not in ids:
                _fail(f"--zero-export: no site {z!r} (the sites are {', '.join(ids)})")
        if not zero_export:
            zeros = [min(specs, key=lambda s: (s.peak_load_w / s.pv_capacity_w, s.site_id)).site_id]
        err = _site_error(errors, ids)
        now = time.time()
        origin = _when(start, "--start") if start else default_origin(now)
        if origin % 60:
            _fail("--start: must be on a whole minute")
        if origin > now:
            _fail("--start: must not be in the future (the ledger refuses readings ahead of its clock)")
        h = host or "127.0.0.1"
        bp = base_port or 0
        m = {"ledger_url": url, "chain_id": chain_id, "operator_id": operator_id, "n_sites": n, "seed": seed_v,
             "interval_s": iv, "tick_s": tick_s or DEFAULT_TICK_S, "host": h, "base_port": bp,
             "clock": {"origin": origin, "speed": speed or DEFAULT_SPEED, "wall_origin": round(now, 3)},
             "sites": [{"site_id": s.site_id, "owner_id": s.owner_id,
                        "role": "zero-export" if s.site_id in zeros else "released",
                        "dgc_export_error_bp": err.get(s.site_id, 0),
                        "echonet_port": bp + 2 * i if bp else 0, "sunspec_port": bp + 2 * i + 1 if bp else 0}
                       for i, s in enumerate(specs)]}

    keys = {s.site_id: _write_key(out / "keys" / f"{s.site_id}.key") for s in specs}
    keys |= {s.owner_id: _write_key(out / "keys" / f"{s.owner_id}.key") for s in specs}
    origin = int(m["clock"]["origin"])
    done = register(url, chain_id, operator_id, operator, specs, keys, origin - SLOT_S,
                    origin + 5 * 365 * 86400)

    # the devices
    clock = ScaledClock(origin, float(m["clock"]["speed"]), float(m["clock"]["wall_origin"]))
    fleet = FleetPhysics(FleetSimulator(specs, seed_v, iv))
    regs = _read_json(spath) if spath.exists() else {}
    sites: list[SimSite] = []
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for s in m["sites"]:
            r = regs.get(s["site_id"])
            # a fresh site starts a slot before the origin: its smart meter has a fixed value at the origin
            p = SitePhysics(fleet, s["site_id"], clock, start=int(r["t"]) if r else origin - SLOT_S,
                            dgc_export_error_bp=int(s["dgc_export_error_bp"]))
            if r:  # continue the registers where the last run left them
                p.generation_j, p.import_j, p.export_j = int(r["generation_j"]), int(r["import_j"]), int(r["export_j"])
            try:
                e = SimulatedEchonetNode(p, host=m["host"], port=int(s["echonet_port"])).start()
            except OSError as err:
                _fail(f"{s['site_id']}: smart meter: cannot listen on UDP {m['host']}:{s['echonet_port']}: "
                      f"{err.strerror or err}")
                raise
            try:
                ss = SunSpecServer(p, m["host"], int(s["sunspec_port"]), serial=f"SIM-{s['site_id']}").start()
            except OSError as err:
                e.stop()
                _fail(f"{s['site_id']}: SunSpec server: cannot listen on TCP {m['host']}:{s['sunspec_port']}: "
                      f"{err.strerror or err}")
                raise
            sites.append(SimSite(s["site_id"], s["owner_id"], s["role"], p, e, ss))
            # the ports as bound, kept for a re-run (a `crev dgc run` meanwhile reconnects to them)
            s["echonet_port"], s["sunspec_port"] = int(e.port), int(ss.port)
        text = config_text(m)
        reused = cpath.exists()
        if reused and cpath.read_text("utf-8") != text:
            _fail(f"{cpath} differs from what {mpath} gives (edited, or the ports changed): remove it to have it "
                  "rewritten, or use another OUTDIR")
        out.mkdir(parents=True, exist_ok=True)
        _write_json(mpath, m)
        cpath.write_text(text, "utf-8")
        try:
            load_config(cpath)
        except CrevError as err:  # a bug here, not the user's: say so plainly
            _fail(f"{cpath}: the written config does not load: {err.field}: {err.reason}")
        _save_state(spath, sites)
        _announce(out, m, done, clock, reused)
        _serve(sites, clock, spath, stop)
    finally:
        for st in sites:
            st.echonet.stop()
            st.sunspec.stop()
        if sites:
            _save_state(spath, sites)
    console.print("simulated devices stopped; their registers are saved in "
                  f"{escape(str(spath))} (a re-run continues them)")


def _save_state(path: Path, sites: list[SimSite]) -> None:
    doc = {}
    for s in sites:
        p = s.physics
        with p._lock:  # one consistent snapshot of the site's registers
            doc[s.site_id] = {"t": p.t, "generation_j": p.generation_j, "import_j": p.import_j, "export_j": p.export_j}
    _write_json(path, doc)


def _jst(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + JST_OFFSET_SECONDS)) + " JST"


def _announce(out: Path, m: dict[str, Any], done: list[str], clock: Any, reused: bool) -> None:
    c = m["clock"]
    now = time.time()
    speed = float(c["speed"])
    behind = now - clock.at(now)
    catch_up = f"caught up with the wall clock in about {behind / max(speed - 1, 1e-9) / 60:.1f} min, then " \
               "real time" if behind > 1 else "real time"
    console.print(f"ledger {escape(m['ledger_url'])} (chain {escape(m['chain_id'])}): " + "; ".join(done))
    for s in m["sites"]:
        console.print(f"  {s['site_id']} ({escape(s['owner_id'])}, {s['role']}"
                      + (f", DGC export {s['dgc_export_error_bp']:+d} bp" if s["dgc_export_error_bp"] else "")
                      + f"): smart meter udp://{m['host']}:{s['echonet_port']}, "
                        f"SunSpec tcp://{m['host']}:{s['sunspec_port']}")
    console.print(f"simulated clock from {_jst(int(c['origin']))} ×{speed:g}: {catch_up}")
    cfg = out / CONFIG
    console.print(f"{'reused' if reused else 'wrote'} {escape(str(cfg))} (device keys in {escape(str(out / 'keys'))})\n"
                  "next, in another terminal:\n"
                  f"  crev dgc run {escape(str(cfg))}\n"
                  f"  crev dgc status {escape(str(cfg))}\n"
                  "Ctrl-C stops the devices.", soft_wrap=True)


def _table(sites: list[SimSite], clock: Any) -> Table:
    t = Table("site", "role", "PV W", "load W", "net W", "inverter limit W",
              title=f"simulated {_jst(clock.now())}", title_justify="left",
              caption="net: + import, − export at the grid point", caption_justify="left")
    for s in sites:
        p = s.physics
        with p._lock:
            pv, load = p.pv_power_w(), p.load_w
            limit = p.limit_w
        t.add_row(s.site_id, s.role, f"{pv:,}", f"{load:,}", f"{load - pv:+,}",
                  f"{limit:,}" + (" (rated)" if limit >= p.rated_w else ""))
    return t


def _serve(sites: list[SimSite], clock: Any, spath: Path, stop: threading.Event) -> None:
    if console.is_terminal:
        with Live(_table(sites, clock), console=console, refresh_per_second=2, transient=False) as live:
            while not stop.wait(1.0):
                _save_state(spath, sites)
                live.update(_table(sites, clock))
        return
    last = 0.0
    while not stop.wait(1.0):  # not a terminal (a log file): the table every 30 s
        _save_state(spath, sites)
        if time.monotonic() - last >= 30:
            last = time.monotonic()
            console.print(_table(sites, clock))


__all__ = ["config_text", "default_origin", "register", "sim"]
