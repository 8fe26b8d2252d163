"""SunSpec Modbus: the PCS (PV inverter) and the DGC's own grid-point meter, in crev's types.

A SunSpec device lays out its Modbus holding registers as a chain of *models*: the marker
``'SunS'`` (0x5375 0x6E53) at a base address (40000, else 0, else 50000), then one model after
another, each opening with its ID and its length L (registers after the header), and the end
marker ID 0xFFFF. Offsets below are from the start of a model (offset 0 is its ID), as the SunSpec
Information Model Reference and the SunSpec model definitions (github.com/sunspec/models,
``json/model_<id>.json``) give them; docs/sunspec.md says why they are written here and not
taken from pysunspec2.

=========  ==================  ===========================================================
model      points read         use
=========  ==================  ===========================================================
1          Mn, Md, SN          the inverter's identity
120        WRtg, WRtg_SF       rated power [W] (the basis of WMaxLimPct)
101/2/3    W, W_SF, WH, WH_SF  AC power [W], lifetime AC energy [Wh] (G)
123        WMaxLimPct(_SF),    the active-power limit [% of WMax], its enable
           WMaxLim_Ena
704        WMaxLimPctEna,      the same for DER (IEEE 1547) devices, used when 123 is absent
           WMaxLimPct(_SF)
201..204   W, W_SF, TotWhExp,  the DGC's grid-point meter: net power [W], export and import
           TotWhImp, TotWh_SF  energy [Wh] (I and E)
=========  ==================  ===========================================================

Arithmetic is integer only: a point's value is ``raw × 10^sf``, floored (towards −∞) when sf is
negative (:func:`scaled`). A point holding its "not implemented" value (int16 0x8000, uint16
0xFFFF, acc32/uint32 0xFFFFFFFF, sunssf 0x8000) is a :class:`DeviceError` naming it.

Sign: SunSpec meter models count real power W positive in the import direction (energy received
from the grid, what TotWhImp accumulates) and negative when exporting — crev's own convention, so
W passes unchanged; a meter mounted or configured the other way round is declared with
``export_positive=True``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from crev.device.ports import GridMeterRegisters, InverterIdentity, InverterStatus
from crev.errors import DeviceError

SUNS = (0x5375, 0x6E53)  # 'SunS'
BASES = (40000, 0, 50000)  # where the marker is looked for, in this order
END_ID = 0xFFFF
MAX_READ = 125  # registers per Modbus read (FC03)

NOT_IMPLEMENTED_INT16 = 0x8000
NOT_IMPLEMENTED_UINT16 = 0xFFFF
NOT_IMPLEMENTED_UINT32 = 0xFFFFFFFF  # acc32's own "not implemented" is 0, which a new counter also reads

INVERTER_MODELS = (101, 102, 103)
METER_MODELS = (201, 202, 203, 204)


# --- where each point sits: offset from the model's ID register -----------------------------------

@dataclass(frozen=True, slots=True)
class Point:
    name: str
    offset: int  # from the model's ID register
    size: int = 1  # registers


# Model 1, common (SunSpec model_1: ID 0, L 1, Mn 2..17, Md 18..33, Opt 34, Vr 42, SN 50..65)
MN = Point("Mn", 2, 16)
MD = Point("Md", 18, 16)
SN = Point("SN", 50, 16)
# Model 120, nameplate (DERTyp 2, WRtg 3, WRtg_SF 4)
WRTG = Point("WRtg", 3)
WRTG_SF = Point("WRtg_SF", 4)
# Models 101/102/103, integer inverters (W 14, W_SF 15, WH 24..25 acc32, WH_SF 26)
INV_W = Point("W", 14)
INV_W_SF = Point("W_SF", 15)
INV_WH = Point("WH", 24, 2)
INV_WH_SF = Point("WH_SF", 26)
# Model 123, immediate controls (WMaxLimPct 5, WMaxLim_Ena 9, WMaxLimPct_SF 23)
C123_PCT = Point("WMaxLimPct", 5)
C123_ENA = Point("WMaxLim_Ena", 9)
C123_SF = Point("WMaxLimPct_SF", 23)
# Model 704, DER AC controls (WMaxLimPctEna 14, WMaxLimPct 15, WMaxLimPct_SF 54)
C704_ENA = Point("WMaxLimPctEna", 14)
C704_PCT = Point("WMaxLimPct", 15)
C704_SF = Point("WMaxLimPct_SF", 54)
# Models 201..204, integer meters (W 18, W_SF 22, TotWhExp 38..39, TotWhImp 46..47, TotWh_SF 54)
MTR_W = Point("W", 18)
MTR_W_SF = Point("W_SF", 22)
MTR_WH_EXP = Point("TotWhExp", 38, 2)
MTR_WH_IMP = Point("TotWhImp", 46, 2)
MTR_WH_SF = Point("TotWh_SF", 54)


# --- decoding: pure functions over register words -------------------------------------------------

POW10: tuple[int, ...] = tuple(10**i for i in range(11))  # 10^0 .. 10^10: sunssf is within ±10


def scaled(raw: int, sf: int) -> int:
    """``raw × 10^sf`` as an integer: exact for sf ≥ 0, floored (towards −∞) for sf < 0."""
    return raw * POW10[sf] if sf >= 0 else raw // POW10[-sf]


def uint16(word: int, field: str) -> int:
    if word == NOT_IMPLEMENTED_UINT16:
        raise DeviceError(field, "not implemented (0xFFFF)")
    return word


def int16(word: int, field: str) -> int:
    if word == NOT_IMPLEMENTED_INT16:
        raise DeviceError(field, "not implemented (0x8000)")
    return word - 0x10000 if word & 0x8000 else word


def acc32(hi: int, lo: int, field: str) -> int:
    value = hi << 16 | lo
    if value == NOT_IMPLEMENTED_UINT32:
        raise DeviceError(field, "not implemented (0xFFFFFFFF)")
    return value


def sunssf(word: int, field: str) -> int:
    """A scale factor: int16 in −10..10 (SunSpec), 0x8000 = not implemented."""
    sf = int16(word, field)
    if not -10 <= sf <= 10:
        raise DeviceError(field, f"scale factor {sf} outside -10..10")
    return sf


def string(words: Sequence[int], field: str) -> str:
    """A SunSpec string: two bytes per register, high byte first, NUL-padded."""
    raw = b"".join(w.to_bytes(2, "big") for w in words).split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DeviceError(field, f"not UTF-8 text: {raw!r}") from exc


# --- the register map ---------------------------------------------------------------------------

class Registers(Protocol):
    """Holding registers of one Modbus unit; ``field`` names the point for errors."""

    name: str

    def read(self, address: int, count: int, field: str) -> list[int]:
        """DeviceError on an exception response or no answer."""
        ...

    def write(self, address: int, value: int, field: str) -> None:
        """Write one register (FC06); DeviceError when the device refuses it."""
        ...


class IllegalAddress(DeviceError):
    """The device answered "illegal data address" (Modbus exception 2): nothing is mapped there."""


@dataclass(frozen=True, slots=True)
class SunSpecMap:
    """Where the SunS marker was found and where each model starts (its ID register)."""

    base: int
    models: dict[int, tuple[int, int]]  # model ID → (address of its ID register, L); first instance

    def find(self, *ids: int) -> tuple[int, int, int] | None:
        """(model id, address, L) of the first of ``ids`` the map holds, in the order given."""
        for mid in ids:
            if mid in self.models:
                return (mid, *self.models[mid])
        return None


def discover(regs: Registers) -> SunSpecMap:
    """Find the 'SunS' marker (40000, then 0, then 50000) and walk the model headers to 0xFFFF.

    Raises DeviceError ``<device>.SunS`` naming the addresses tried when no base holds the marker.
    """
    for base in BASES:
        try:
            marker = regs.read(base, 2, "SunS")
        except IllegalAddress:
            continue
        if tuple(marker) == SUNS:
            return SunSpecMap(base, _walk(regs, base + 2))
    tried = ", ".join(str(b) for b in BASES)
    raise DeviceError(f"{regs.name}.SunS", f"no SunSpec marker 'SunS' (0x53756E53) at {tried}")


def _walk(regs: Registers, address: int) -> dict[int, tuple[int, int]]:
    models: dict[int, tuple[int, int]] = {}
    while True:
        if address + 2 > 0x10000 or len(models) > 256:
            raise DeviceError(f"{regs.name}.models", f"no end marker 0xFFFF before address {address}")
        mid, length = regs.read(address, 2, f"model@{address}")
        if mid == END_ID:
            return models
        models.setdefault(mid, (address, length))
        address += 2 + length


def read_model(regs: Registers, address: int, length: int, name: str) -> list[int]:
    """The whole model, header included (``words[offset]`` is the point at that offset)."""
    words: list[int] = []
    total = 2 + length
    while len(words) < total:
        n = min(MAX_READ, total - len(words))
        words += regs.read(address + len(words), n, name)
    return words


def _field(regs: Registers, point: Point) -> str:
    return f"{regs.name}.{point.name}"


def _need(words: Sequence[int], point: Point, regs: Registers, model: int) -> Sequence[int]:
    if point.offset + point.size > len(words):
        raise DeviceError(_field(regs, point), f"beyond the length of model {model} (L={len(words) - 2})")
    return words[point.offset:point.offset + point.size]


def _u16(words: Sequence[int], p: Point, regs: Registers, model: int) -> int:
    return uint16(_need(words, p, regs, model)[0], _field(regs, p))


def _i16(words: Sequence[int], p: Point, regs: Registers, model: int) -> int:
    return int16(_need(words, p, regs, model)[0], _field(regs, p))


def _sf(words: Sequence[int], p: Point, regs: Registers, model: int) -> int:
    return sunssf(_need(words, p, regs, model)[0], _field(regs, p))


def _acc32(words: Sequence[int], p: Point, regs: Registers, model: int) -> int:
    hi, lo = _need(words, p, regs, model)
    return acc32(hi, lo, _field(regs, p))


def _model(regs: Registers, smap: SunSpecMap, ids: Sequence[int], what: str) -> tuple[int, list[int]]:
    found = smap.find(*ids)
    if found is None:
        raise DeviceError(f"{regs.name}.models", f"no {what} model ({'/'.join(map(str, ids))}) in the map")
    mid, address, length = found
    return mid, read_model(regs, address, length, f"model {mid}")


@dataclass(frozen=True, slots=True)
class Common:
    manufacturer: str
    model: str
    serial: str


def read_common(regs: Registers, smap: SunSpecMap) -> Common:
    mid, w = _model(regs, smap, (1,), "common")
    return Common(string(_need(w, MN, regs, mid), _field(regs, MN)),
                  string(_need(w, MD, regs, mid), _field(regs, MD)),
                  string(_need(w, SN, regs, mid), _field(regs, SN)))


def read_rated_w(regs: Registers, smap: SunSpecMap) -> int | None:
    """WRtg × 10^WRtg_SF [W] from model 120, or None when the map has no nameplate model."""
    if smap.find(120) is None:
        return None
    mid, w = _model(regs, smap, (120,), "nameplate")
    return scaled(_u16(w, WRTG, regs, mid), _sf(w, WRTG_SF, regs, mid))


def read_inverter(regs: Registers, smap: SunSpecMap) -> tuple[int, int]:
    """(WH [Wh], W [W]) from model 101/102/103."""
    mid, w = _model(regs, smap, INVERTER_MODELS, "integer inverter")
    energy_wh = scaled(_acc32(w, INV_WH, regs, mid), _sf(w, INV_WH_SF, regs, mid))
    power_w = scaled(_i16(w, INV_W, regs, mid), _sf(w, INV_W_SF, regs, mid))
    return energy_wh, power_w


def read_meter(regs: Registers, smap: SunSpecMap, *, export_positive: bool = False) -> GridMeterRegisters:
    """TotWhImp, TotWhExp [Wh] and W [W] (+ import / − export) from meter model 201..204."""
    mid, w = _model(regs, smap, METER_MODELS, "meter")
    sf = _sf(w, MTR_WH_SF, regs, mid)
    power = scaled(_i16(w, MTR_W, regs, mid), _sf(w, MTR_W_SF, regs, mid))
    return GridMeterRegisters(import_wh=scaled(_acc32(w, MTR_WH_IMP, regs, mid), sf),
                              export_wh=scaled(_acc32(w, MTR_WH_EXP, regs, mid), sf),
                              power_w=-power if export_positive else power)


@dataclass(frozen=True, slots=True)
class Controls:
    """The active-power limit points of model 123 or 704, with absolute addresses."""

    model: int
    pct: Point
    ena: Point
    pct_address: int
    ena_address: int
    pct_raw: int  # WMaxLimPct as read
    enabled: bool
    sf: int  # WMaxLimPct_SF

    def limit_w(self, rated_w: int) -> int:
        """The limit applied [W]: rated when disabled, else rated × pct × 10^sf / 100 floored."""
        return rated_w if not self.enabled else pct_to_w(self.pct_raw, self.sf, rated_w)


def pct_to_w(raw: int, sf: int, rated_w: int) -> int:
    """rated × raw × 10^sf / 100 [W], floored."""
    return rated_w * raw * POW10[sf] // 100 if sf >= 0 else rated_w * raw // (100 * POW10[-sf])


def w_to_pct(limit_w: int, sf: int, rated_w: int) -> int:
    """The largest raw WMaxLimPct whose limit does not exceed ``limit_w`` (floored: never allow more)."""
    return limit_w * 100 // (rated_w * POW10[sf]) if sf >= 0 else limit_w * 100 * POW10[-sf] // rated_w


def read_controls(regs: Registers, smap: SunSpecMap) -> Controls:
    """Model 123 if the map has it, else 704."""
    mid, w = _model(regs, smap, (123, 704), "immediate controls")
    pct, ena, sfp = (C123_PCT, C123_ENA, C123_SF) if mid == 123 else (C704_PCT, C704_ENA, C704_SF)
    address = smap.models[mid][0]
    return Controls(mid, pct, ena, address + pct.offset, address + ena.offset,
                    _u16(w, pct, regs, mid), _u16(w, ena, regs, mid) == 1, _sf(w, sfp, regs, mid))


def apply_limit(regs: Registers, smap: SunSpecMap, rated_w: int, limit_w: int) -> int:
    """Set the active-power limit to ``limit_w`` [W]; returns the limit the inverter applied [W].

    Writes WMaxLimPct floored to a whole step (so never above ``limit_w``), then the enable
    point 1; ``limit_w`` ≥ ``rated_w`` releases the limit (WMaxLimPct 100 %, enable 0). Reads both
    back. DeviceError ``<device>.<point>`` when the inverter refuses a write (an exception
    response) or the read-back differs from what was written by more than one step.
    """
    ctl = read_controls(regs, smap)
    release = limit_w >= rated_w
    raw = w_to_pct(rated_w if release else max(0, limit_w), ctl.sf, rated_w)
    ena = 0 if release else 1
    regs.write(ctl.pct_address, raw, ctl.pct.name)
    regs.write(ctl.ena_address, ena, ctl.ena.name)
    back = read_controls(regs, smap)
    if abs(back.pct_raw - raw) > 1:
        raise DeviceError(f"{regs.name}.{ctl.pct.name}", f"wrote {raw}, reads back {back.pct_raw}")
    if back.enabled != (ena == 1):
        raise DeviceError(f"{regs.name}.{ctl.ena.name}", f"wrote {ena}, reads back {int(back.enabled)}")
    return back.limit_w(rated_w)


# --- Modbus TCP -------------------------------------------------------------------------------------

class ModbusLink:
    """One Modbus TCP connection (pymodbus's synchronous client), shareable by the devices behind
    one host and port (an inverter and a meter on one gateway); calls are serialised by a lock."""

    def __init__(self, host: str, port: int = 502, *, timeout_s: float = 3.0) -> None:
        self.host, self.port = host, port
        self._client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._client.close()  # type: ignore[no-untyped-call]

    def read(self, unit_id: int, address: int, count: int, device: str, point: str) -> list[int]:
        """Read ``count`` holding registers; errors name ``<device>.<point>`` (``.connection``
        when the device does not answer)."""
        with self._lock:
            try:
                rr = self._client.read_holding_registers(address, count=count, device_id=unit_id)
            except ModbusException as exc:
                self._client.close()  # type: ignore[no-untyped-call]
                raise DeviceError(f"{device}.connection", f"no answer from {self.host}:{self.port}: {exc}") from exc
        if rr.isError():
            code = rr.exception_code
            cls = IllegalAddress if code == 2 else DeviceError
            raise cls(f"{device}.{point}", f"exception response {code} reading {count} registers at {address}")
        regs = list(rr.registers)
        if len(regs) != count:
            raise DeviceError(f"{device}.{point}", f"asked for {count} registers at {address}, got {len(regs)}")
        return regs

    def write(self, unit_id: int, address: int, value: int, device: str, point: str) -> None:
        """Write one holding register (FC06); an exception response is "refused"."""
        with self._lock:
            try:
                rr = self._client.write_register(address, value, device_id=unit_id)
            except ModbusException as exc:
                self._client.close()  # type: ignore[no-untyped-call]
                raise DeviceError(f"{device}.connection", f"no answer from {self.host}:{self.port}: {exc}") from exc
        if rr.isError():
            raise DeviceError(f"{device}.{point}",
                              f"refused: exception response {rr.exception_code} writing {value} at {address}")


class _Unit:
    """One Modbus unit on a link, as :class:`Registers`; fields are prefixed with the device name."""

    def __init__(self, link: ModbusLink, unit_id: int, name: str) -> None:
        self.link, self.unit_id, self.name = link, unit_id, name

    def read(self, address: int, count: int, field: str) -> list[int]:
        return self.link.read(self.unit_id, address, count, self.name, field)

    def write(self, address: int, value: int, field: str) -> None:
        self.link.write(self.unit_id, address, value, self.name, field)


class _Device:
    def __init__(self, kind: str, host: str, port: int, unit_id: int, name: str | None, timeout_s: float,
                 link: ModbusLink | None) -> None:
        self.name = name or f"{kind} {host}:{port}#{unit_id}"
        self._owns_link = link is None
        self.link = link or ModbusLink(host, port, timeout_s=timeout_s)
        self.regs: Registers = _Unit(self.link, unit_id, self.name)
        self._map: SunSpecMap | None = None

    def sunspec_map(self) -> SunSpecMap:
        """The device's map, discovered on first use and kept."""
        if self._map is None:
            self._map = discover(self.regs)
        return self._map

    def close(self) -> None:
        if self._owns_link:
            self.link.close()


class SunSpecInverter(_Device):
    """The PCS over SunSpec Modbus TCP (:class:`crev.device.ports.Inverter`).

    ``rated_w`` is used when the map has no nameplate model 120. WMaxLimPct is a percentage of
    WMax; crev takes WMax = WRtg (model 121's WMax, when a vendor sets it lower, is not read).
    """

    def __init__(self, host: str, port: int = 502, unit_id: int = 1, name: str | None = None,
                 timeout_s: float = 3.0, *, rated_w: int | None = None, link: ModbusLink | None = None) -> None:
        super().__init__("inverter", host, port, unit_id, name, timeout_s, link)
        self._rated_w = rated_w

    def rated_w(self) -> int:
        rated = read_rated_w(self.regs, self.sunspec_map())
        if rated is None:
            rated = self._rated_w
        if rated is None or rated <= 0:
            raise DeviceError(f"{self.name}.WRtg", "no nameplate model 120 and no configured rating")
        return rated

    def identity(self) -> InverterIdentity:
        common = read_common(self.regs, self.sunspec_map())
        return InverterIdentity(common.manufacturer, common.model, common.serial, self.rated_w())

    def status(self) -> InverterStatus:
        smap = self.sunspec_map()
        energy_wh, power_w = read_inverter(self.regs, smap)
        return InverterStatus(energy_wh, power_w, read_controls(self.regs, smap).limit_w(self.rated_w()))

    def set_limit_w(self, limit_w: int) -> int:
        """See :func:`apply_limit`."""
        return apply_limit(self.regs, self.sunspec_map(), self.rated_w(), limit_w)


class SunSpecGridMeter(_Device):
    """The DGC's grid-point meter as a SunSpec meter model 201..204 (:class:`crev.device.ports.GridMeter`)."""

    def __init__(self, host: str, port: int = 502, unit_id: int = 1, name: str | None = None,
                 timeout_s: float = 3.0, *, export_positive: bool = False, link: ModbusLink | None = None) -> None:
        super().__init__("grid-meter", host, port, unit_id, name, timeout_s, link)
        self.export_positive = export_positive

    def registers(self) -> GridMeterRegisters:
        return read_meter(self.regs, self.sunspec_map(), export_positive=self.export_positive)
