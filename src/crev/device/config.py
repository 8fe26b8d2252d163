"""The DGC agent's configuration: a TOML file (docs/dgc.md) parsed into typed, checked dataclasses.

Every bad field is a :class:`crev.errors.MalformedError` naming its path, e.g.
``sites[2].smart_meter.port: must be 1..65535, found 70000``. Relative paths (key files,
outboxes, the output-control schedule) are relative to the config file's folder.

Units: powers in W, simulated times in unix seconds (or ISO text, JST if no offset), wall-clock
durations of the sender in seconds (float), the control's prices in milli-JPY per kWh, the offers'
prices in JPY per t-CO2e and their quantities in g-CO2e.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crev.core.units import ALLOWED_INTERVAL_SECONDS, parse_time
from crev.device.control import OperatorWindow, Policy, parse_schedule
from crev.errors import MalformedError
from crev.ledger.shape import ID_RE


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A device on the network: ECHONET Lite (host, port) or SunSpec Modbus TCP (host, port, unit)."""

    host: str
    port: int
    unit: int = 1  # Modbus unit id (SunSpec only)
    timeout_s: float = 2.0  # one request's answer [s, wall]


@dataclass(frozen=True, slots=True)
class ControlConfig:
    enabled: bool
    policy: Policy
    schedule: tuple[OperatorWindow, ...]
    schedule_file: Path | None
    tick_s: int  # control tick [s, simulated]
    margin_w: int | None  # export kept this far below the cap [W]; None = 1 % of the rating, at least 50 W
    market_id: str | None  # where the site's C-REV price is read
    owner_id: str | None  # the site owner's account: its own trades give the price


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """The site's offers, placed with a key its owner delegated on the ledger (device/offers.py)."""

    at: str  # where this table is in the config (``sites[i].market``): alerts name it
    delegate_id: str  # the delegate's id on the ledger (authorize_delegate)
    delegate_key_file: Path  # its Ed25519 seed in hex; never the device key
    market_id: str  # where the asks are placed
    offer_share_bp: int  # the share of each newly issued lot offered [basis points, 0..10000]
    price_jpy_per_t: int  # the ask's limit price [JPY per t-CO2e]
    min_offer_g: int  # an ask below this is not placed [g-CO2e]


@dataclass(frozen=True, slots=True)
class SiteConfig:
    device_id: str
    key_file: Path
    ledger_url: str
    interval_s: int  # metering interval [s]
    outbox: Path
    smart_meter: Endpoint
    inverter: Endpoint
    grid_meter: Endpoint
    control: ControlConfig
    rated_w: int | None  # None: the inverter's nameplate (SunSpec WRtg)
    meter_id: str  # the smart meter's id in meter-value items (supply point id)
    max_read_delay_s: int  # a boundary read later than this is not used [s, simulated]
    meter_wait_s: int  # how long to wait for the smart meter's fixed value of a slot [s, simulated]
    grid_limit_w: int | None  # an import/export step above this power is a jump [W]; None = 100 MW
    market: MarketConfig | None = None  # None: the agent places no offers


@dataclass(frozen=True, slots=True)
class ClockConfig:
    """Simulated time, as ``crev.device.clock.ScaledClock``: ``origin + (wall − wall_origin) × speed``."""

    origin: int  # [unix s]
    speed: float  # simulated seconds per wall second
    wall_origin: float | None  # [unix s, wall]; None = when the agent starts


@dataclass(frozen=True, slots=True)
class SenderConfig:
    batch_size: int  # items per transaction, 1..500
    timeout_s: float  # one POST's answer [s, wall]
    backoff_initial_s: float  # first retry after a failure [s, wall]
    backoff_max_s: float  # the backoff's cap [s, wall]
    price_every_s: float  # how often the C-REV price is read [s, wall]


@dataclass(frozen=True, slots=True)
class AgentConfig:
    path: Path
    ledger_url: str
    chain_id: str | None
    clock: ClockConfig | None
    sender: SenderConfig
    sites: tuple[SiteConfig, ...]


_TOP = {"ledger_url", "chain_id", "clock", "sender", "sites"}
_SITE = {"device_id", "key_file", "ledger_url", "interval_s", "outbox", "smart_meter", "inverter", "grid_meter",
         "control", "rated_w", "meter_id", "max_read_delay_s", "meter_wait_s", "grid_limit_w", "market"}
_CONTROL = {"enabled", "export_limit_w", "export_value_milli_jpy_per_kwh", "curtail_below_milli_jpy_per_kwh",
            "schedule_file", "tick_s", "margin_w", "market_id", "owner_id"}
_MARKET = {"delegate_id", "delegate_key_file", "market_id", "offer_share_bp", "price_jpy_per_t", "min_offer_g"}
MAX_PRICE_JPY_PER_T = 10**9  # the ledger's hard ceiling on any price


def load_config(path: Path | str) -> AgentConfig:
    """Read and check a config file. Raises MalformedError naming the field (or the file)."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text("utf-8"))
    except OSError as err:
        raise MalformedError(str(p), f"cannot read: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise MalformedError(str(p), f"not valid TOML: {err}") from None
    return parse_config(doc, p.resolve().parent, p)


def parse_config(doc: dict[str, Any], base: Path, path: Path | None = None) -> AgentConfig:
    """Check a parsed TOML document; relative paths are resolved against ``base``."""
    _no_unknown(doc, _TOP, "")
    ledger_url = _url(doc.get("ledger_url"), "ledger_url", required=False)
    chain_id = _opt_text(doc, "chain_id", "")
    clock = _clock(doc["clock"], "clock") if "clock" in doc else None
    sender = _sender(doc.get("sender", {}), "sender")
    raw_sites = doc.get("sites")
    if not isinstance(raw_sites, list) or not raw_sites:
        raise MalformedError("sites", "at least one [[sites]] table is required")
    sites = tuple(_site(s, f"sites[{i}]", base, ledger_url) for i, s in enumerate(raw_sites))
    seen: dict[str, int] = {}
    for i, s in enumerate(sites):
        if s.device_id in seen:
            raise MalformedError(f"sites[{i}].device_id", f"{s.device_id!r} is also sites[{seen[s.device_id]}]")
        seen[s.device_id] = i
    outs: dict[Path, int] = {}
    for i, s in enumerate(sites):
        if s.outbox in outs:
            raise MalformedError(f"sites[{i}].outbox", f"{s.outbox} is also sites[{outs[s.outbox]}]'s outbox")
        outs[s.outbox] = i
    return AgentConfig(path or base, ledger_url or sites[0].ledger_url, chain_id, clock, sender, sites)


# --- sections ----------------------------------------------------------------------------------


def _site(v: Any, at: str, base: Path, ledger_url: str | None) -> SiteConfig:
    d = _table(v, at)
    _no_unknown(d, _SITE, at)
    device_id = _text(d.get("device_id"), f"{at}.device_id")
    if not ID_RE.fullmatch(device_id):
        raise MalformedError(f"{at}.device_id", "must be 1-64 of a-z 0-9 . _ - (as registered on the ledger)")
    key_file = _path(d.get("key_file"), f"{at}.key_file", base)
    url = _url(d.get("ledger_url"), f"{at}.ledger_url", required=False) or ledger_url
    if url is None:
        raise MalformedError(f"{at}.ledger_url", "required (here or at the top level)")
    interval_s = _int(d.get("interval_s", 1800), f"{at}.interval_s")
    if interval_s not in ALLOWED_INTERVAL_SECONDS:
        raise MalformedError(f"{at}.interval_s", f"must be 60..1800 s dividing 1800 "
                                                 f"({', '.join(map(str, sorted(ALLOWED_INTERVAL_SECONDS)))}), "
                                                 f"found {interval_s}")
    outbox = _path(d.get("outbox", f"{device_id}.outbox.sqlite"), f"{at}.outbox", base)
    smart_meter = _endpoint(d.get("smart_meter"), f"{at}.smart_meter", 3610, unit=False)
    inverter = _endpoint(d.get("inverter"), f"{at}.inverter", 502, unit=True)
    gm_raw = d.get("grid_meter")
    if gm_raw is None:
        raise MalformedError(f"{at}.grid_meter", "required: host, port, unit of the DGC's SunSpec meter")
    grid_meter = _endpoint(gm_raw, f"{at}.grid_meter", inverter.port, unit=True)
    rated_w = _opt_pos(d, "rated_w", at)
    meter_id = _text(d.get("meter_id", f"{smart_meter.host}:{smart_meter.port}"), f"{at}.meter_id")
    if len(meter_id) > 64:
        raise MalformedError(f"{at}.meter_id", "must be at most 64 characters")
    delay = _int(d.get("max_read_delay_s", max(5, interval_s // 15)), f"{at}.max_read_delay_s")
    if not 1 <= delay < interval_s:
        raise MalformedError(f"{at}.max_read_delay_s", f"must be 1..{interval_s - 1} s, found {delay}")
    wait = _int(d.get("meter_wait_s", 600), f"{at}.meter_wait_s")
    if not 1 <= wait < 1800:
        raise MalformedError(f"{at}.meter_wait_s", f"must be 1..1799 s, found {wait}")
    control = _control(d.get("control", {}), f"{at}.control", base)
    market = _market(d["market"], f"{at}.market", base, key_file) if "market" in d else None
    return SiteConfig(device_id, key_file, url, interval_s, outbox, smart_meter, inverter, grid_meter, control,
                      rated_w, meter_id, delay, wait, _opt_pos(d, "grid_limit_w", at), market)


def read_seed(path: Path) -> bytes:
    """An Ed25519 seed from a key file (64 hex characters). Raises OSError or ValueError."""
    seed = bytes.fromhex(path.read_text("utf-8").strip())
    if len(seed) != 32:
        raise ValueError(f"{len(seed)} bytes, expected a 32-byte seed (64 hex characters)")
    return seed


def _market(v: Any, at: str, base: Path, device_key_file: Path) -> MarketConfig:
    d = _table(v, at)
    _no_unknown(d, _MARKET, at)
    delegate_id = _text(d.get("delegate_id"), f"{at}.delegate_id")
    if not ID_RE.fullmatch(delegate_id):
        raise MalformedError(f"{at}.delegate_id", "must be 1-64 of a-z 0-9 . _ - (as granted on the ledger)")
    key_file = _path(d.get("delegate_key_file"), f"{at}.delegate_key_file", base)
    try:
        seed = read_seed(key_file)
    except (OSError, ValueError) as err:
        raise MalformedError(f"{at}.delegate_key_file", f"cannot read a key from {key_file}: {err}") from None
    try:
        device_seed: bytes | None = read_seed(device_key_file)
    except (OSError, ValueError):
        device_seed = None  # the device key's own errors are reported where it is loaded
    if seed == device_seed:
        raise MalformedError(f"{at}.delegate_key_file", f"{key_file} holds the device key: the device key "
                                                        "signs readings only, never a ledger transaction; give "
                                                        "the delegate a key of its own")
    market_id = _text(d.get("market_id"), f"{at}.market_id")
    if not ID_RE.fullmatch(market_id):
        raise MalformedError(f"{at}.market_id", "must be 1-64 of a-z 0-9 . _ - (a market listed on the ledger)")
    share = _int(d.get("offer_share_bp"), f"{at}.offer_share_bp")
    if not 0 <= share <= 10_000:
        raise MalformedError(f"{at}.offer_share_bp", f"must be 0..10000 basis points, found {share}")
    price = _int(d.get("price_jpy_per_t"), f"{at}.price_jpy_per_t")
    if not 1 <= price <= MAX_PRICE_JPY_PER_T:
        raise MalformedError(f"{at}.price_jpy_per_t", f"must be 1..{MAX_PRICE_JPY_PER_T} JPY/t, found {price}")
    min_g = _int(d.get("min_offer_g", 1), f"{at}.min_offer_g")
    if min_g < 1:
        raise MalformedError(f"{at}.min_offer_g", f"must be at least 1 g, found {min_g}")
    return MarketConfig(at, delegate_id, key_file, market_id, share, price, min_g)


def _control(v: Any, at: str, base: Path) -> ControlConfig:
    d = _table(v, at)
    _no_unknown(d, _CONTROL, at)
    enabled = d.get("enabled", bool(d))
    if type(enabled) is not bool:
        raise MalformedError(f"{at}.enabled", "must be true or false")
    limit = d.get("export_limit_w")
    if limit is not None:
        limit = _int(limit, f"{at}.export_limit_w")
        if limit < 0:
            raise MalformedError(f"{at}.export_limit_w", f"must be 0 (no reverse power flow) or a cap in W, "
                                                         f"found {limit}")
    value = _nonneg(d.get("export_value_milli_jpy_per_kwh", 0), f"{at}.export_value_milli_jpy_per_kwh")
    below = _nonneg(d.get("curtail_below_milli_jpy_per_kwh", 0), f"{at}.curtail_below_milli_jpy_per_kwh")
    schedule: tuple[OperatorWindow, ...] = ()
    sfile = None
    if "schedule_file" in d:
        sfile = _path(d["schedule_file"], f"{at}.schedule_file", base)
        try:
            text = sfile.read_text("utf-8")
        except OSError as err:
            raise MalformedError(f"{at}.schedule_file", f"cannot read {sfile}: {err.strerror or err}") from None
        schedule = parse_schedule(text, f"{at}.schedule_file")
    tick = _int(d.get("tick_s", 30), f"{at}.tick_s")
    if not 1 <= tick <= 600:
        raise MalformedError(f"{at}.tick_s", f"must be 1..600 s, found {tick}")
    margin = d.get("margin_w")
    if margin is not None:
        margin = _nonneg(margin, f"{at}.margin_w")
    market_id = _opt_text(d, "market_id", at)
    owner_id = _opt_text(d, "owner_id", at)
    return ControlConfig(enabled, Policy(limit, value, below), schedule, sfile, tick, margin, market_id, owner_id)


def _endpoint(v: Any, at: str, default_port: int, *, unit: bool) -> Endpoint:
    if v is None:
        raise MalformedError(at, "required: a table with host and port" + (" and unit" if unit else ""))
    d = _table(v, at)
    _no_unknown(d, {"host", "port", "unit", "timeout_s"} if unit else {"host", "port", "timeout_s"}, at)
    host = _text(d.get("host"), f"{at}.host")
    port = _int(d.get("port", default_port), f"{at}.port")
    if not 1 <= port <= 65535:
        raise MalformedError(f"{at}.port", f"must be 1..65535, found {port}")
    u = _int(d.get("unit", 1), f"{at}.unit")
    if not 0 <= u <= 247:
        raise MalformedError(f"{at}.unit", f"must be a Modbus unit id 0..247, found {u}")
    timeout = _float(d.get("timeout_s", 2.0), f"{at}.timeout_s")
    if not 0 < timeout <= 60:
        raise MalformedError(f"{at}.timeout_s", f"must be above 0 and at most 60 s, found {timeout}")
    return Endpoint(host, port, u, timeout)


def _clock(v: Any, at: str) -> ClockConfig:
    d = _table(v, at)
    _no_unknown(d, {"origin", "speed", "wall_origin"}, at)
    o = d.get("origin")
    if isinstance(o, str):
        try:
            origin = parse_time(o)
        except ValueError:
            raise MalformedError(f"{at}.origin", f"{o!r} is not an ISO date-time") from None
    else:
        origin = _int(o, f"{at}.origin")
    speed = _float(d.get("speed", 1.0), f"{at}.speed")
    if not 0 < speed <= 1_000_000:
        raise MalformedError(f"{at}.speed", f"must be above 0 and at most 1,000,000, found {speed}")
    wall = d.get("wall_origin")
    return ClockConfig(origin, speed, None if wall is None else _float(wall, f"{at}.wall_origin"))


def _sender(v: Any, at: str) -> SenderConfig:
    d = _table(v, at)
    _no_unknown(d, {"batch_size", "timeout_s", "backoff_initial_s", "backoff_max_s", "price_every_s"}, at)
    batch = _int(d.get("batch_size", 100), f"{at}.batch_size")
    if not 1 <= batch <= 500:
        raise MalformedError(f"{at}.batch_size", f"must be 1..500, found {batch}")
    vals = []
    for name, default in (("timeout_s", 30.0), ("backoff_initial_s", 0.5), ("backoff_max_s", 60.0),
                          ("price_every_s", 60.0)):
        x = _float(d.get(name, default), f"{at}.{name}")
        if not 0 < x <= 86400:
            raise MalformedError(f"{at}.{name}", f"must be above 0 and at most 86400 s, found {x}")
        vals.append(x)
    if vals[2] < vals[1]:
        raise MalformedError(f"{at}.backoff_max_s", "must be at least backoff_initial_s")
    return SenderConfig(batch, *vals)


# --- values ------------------------------------------------------------------------------------


def _table(v: Any, at: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise MalformedError(at, f"must be a table, found {type(v).__name__}")
    return v


def _no_unknown(d: dict[str, Any], known: set[str], at: str) -> None:
    for k in d:
        if k not in known:
            where = f"{at}.{k}" if at else k
            raise MalformedError(where, f"unknown field (known: {', '.join(sorted(known))})")


def _text(v: Any, at: str) -> str:
    if not isinstance(v, str) or not v:
        raise MalformedError(at, "required: non-empty text" if v is None else "must be non-empty text")
    return v


def _opt_text(d: dict[str, Any], name: str, at: str) -> str | None:
    return None if d.get(name) is None else _text(d[name], f"{at}.{name}" if at else name)


def _int(v: Any, at: str) -> int:
    if type(v) is not int:
        raise MalformedError(at, "required: an integer" if v is None else f"must be an integer, found {v!r}")
    return v


def _nonneg(v: Any, at: str) -> int:
    x = _int(v, at)
    if x < 0:
        raise MalformedError(at, f"must not be negative, found {x}")
    return x


def _opt_pos(d: dict[str, Any], name: str, at: str) -> int | None:
    if d.get(name) is None:
        return None
    x = _int(d[name], f"{at}.{name}")
    if x <= 0:
        raise MalformedError(f"{at}.{name}", f"must be above 0 W, found {x}")
    return x


def _float(v: Any, at: str) -> float:
    if type(v) not in (int, float):
        raise MalformedError(at, f"must be a number, found {v!r}")
    return float(v)


def _path(v: Any, at: str, base: Path) -> Path:
    p = Path(_text(v, at))
    return p if p.is_absolute() else base / p


def _url(v: Any, at: str, *, required: bool) -> str | None:
    if v is None and not required:
        return None
    u = _text(v, at)
    if not u.startswith(("http://", "https://")):
        raise MalformedError(at, f"must be an http:// or https:// URL, found {u!r}")
    return u.rstrip("/")
