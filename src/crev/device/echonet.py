"""ECHONET Lite: the frame codec, the smart meter's and the PV's properties, and a UDP client.

The DGC reads the utility smart meter over the B-route (a Wi-SUN link the DGC's dongle joins with
the PANA credentials from the utility; see docs/echonet-lite.md). What crosses that link is
ECHONET Lite: UDP datagrams to port 3610, each one frame of format 1 (ECHONET Lite Specification
Ver.1.14, Part II "ECHONET Lite Communication Middleware Specifications", §3.2 "Frame format")::

    EHD1 0x10 | EHD2 0x81 | TID (2) | SEOJ (3) | DEOJ (3) | ESV | OPC | OPC × (EPC, PDC, EDT[PDC])

This module has three layers, pure to impure:

* the frame codec (:func:`encode_frame`, :func:`decode_frame`) over frozen :class:`Frame`s;
* property codecs into crev's own types for the **low-voltage smart electric energy meter class
  0x0288** and the **household solar power generation class 0x0279** (APPENDIX "Detailed
  Requirements for ECHONET Device Objects", Release N, the classes of those names), all integers:
  Wh, W, unix seconds (the meter's JST clock converted to UTC), never floats;
* :class:`EchonetSmartMeter` (the ``SmartMeter`` port, with the meter's 30-minute history
  E5/E2/E4) and :class:`EchonetSolar` (the ``Inverter`` port, an alternative control path
  through A0) over a real, synchronous UDP socket.

Every failure is a :class:`crev.errors.DeviceError` whose ``field`` names the frame field or the
property (``TID``, ``props[1].PDC``, ``EA``); the clients prefix their ``name``
(``smart-meter 192.0.2.7:3610.EA``). Encoding our own bad input raises
:class:`crev.errors.MalformedError`.
"""

from __future__ import annotations

import calendar
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeVar

from crev.core.units import JST_OFFSET_SECONDS
from crev.device.ports import FixedValue, InverterIdentity, InverterStatus, MeterRegisters
from crev.errors import DeviceError, MalformedError

# --- the frame (Part II §3.2) ------------------------------------------------------------------

EHD1: Final = 0x10  # ECHONET Lite (Part II §3.2.1)
EHD2_FORMAT1: Final = 0x81  # format 1, the specified message format (§3.2.2)
ECHONET_PORT: Final = 3610  # UDP and TCP port of every ECHONET Lite node (Part II §7)
HEADER_LEN: Final = 12  # EHD1 EHD2 TID(2) SEOJ(3) DEOJ(3) ESV OPC
NO_DATA_U32: Final = 0xFFFF_FFFE  # "no data" / "no measurement" of an unsigned long (Appendix, 0x0288 E0/E3/EA/EB)


class ESV(IntEnum):
    """ECHONET Lite service codes (Part II §3.2.5, tables 3-9 to 3-11). SetGet (0x6E) is not
    supported: its body has two operation counts, and crev never needs it."""

    SETI_SNA = 0x50  # SetI refused (some properties not set)
    SETC_SNA = 0x51  # SetC refused
    GET_SNA = 0x52  # Get refused (some properties not available)
    INF_SNA = 0x53  # INF_REQ refused
    SETI = 0x60  # set, no response wanted
    SETC = 0x61  # set, response wanted
    GET = 0x62  # read
    INF_REQ = 0x63  # ask for a notification
    SET_RES = 0x71  # SetC accepted
    GET_RES = 0x72  # Get answered
    INF = 0x73  # notification
    INFC = 0x74  # notification wanting a confirmation
    INFC_RES = 0x7A  # confirmation of an INFC


# What answers each request (§3.2.5): the accepted and the refused service.
RESPONSES: Final[dict[ESV, tuple[ESV, ESV]]] = {
    ESV.GET: (ESV.GET_RES, ESV.GET_SNA),
    ESV.SETC: (ESV.SET_RES, ESV.SETC_SNA),
    ESV.INF_REQ: (ESV.INF, ESV.INF_SNA),
}


@dataclass(frozen=True, slots=True)
class EOJ:
    """An ECHONET object: class (group code << 8 | class code) and instance (Part II §3.2.4)."""

    cls: int  # e.g. 0x0288 low-voltage smart meter
    instance: int  # 0x01..0x7F; 0x00 addresses every instance

    def to_bytes(self) -> bytes:
        return bytes([self.cls >> 8, self.cls & 0xFF, self.instance])

    def __str__(self) -> str:
        return f"0x{self.cls:04X}{self.instance:02X}"


CONTROLLER: Final = EOJ(0x05FF, 0x01)  # the DGC speaks as a controller (management/operation class group)
NODE_PROFILE: Final = EOJ(0x0EF0, 0x01)
SMART_METER_CLASS: Final = 0x0288  # low-voltage smart electric energy meter
SOLAR_CLASS: Final = 0x0279  # household solar power generation


@dataclass(frozen=True, slots=True)
class Property:
    """One operation: EPC and its data (EDT); empty EDT (PDC 0) in a Get or a refusal."""

    epc: int
    edt: bytes = b""


@dataclass(frozen=True, slots=True)
class Frame:
    """An ECHONET Lite format-1 frame."""

    tid: int  # transaction id, 0..65535, echoed by the answer
    seoj: EOJ  # source object
    deoj: EOJ  # destination object
    esv: ESV
    props: tuple[Property, ...]

    def prop(self, epc: int) -> Property | None:
        return next((p for p in self.props if p.epc == epc), None)


def _check_range(field: str, value: int, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedError(field, f"must be an integer in {lo}..{hi}, got {value!r}")


def encode_frame(frame: Frame) -> bytes:
    """The bytes of ``frame``. MalformedError naming the field if a value does not fit."""
    _check_range("TID", frame.tid, 0, 0xFFFF)
    for name, eoj in (("SEOJ", frame.seoj), ("DEOJ", frame.deoj)):
        _check_range(f"{name}.cls", eoj.cls, 0, 0xFFFF)
        _check_range(f"{name}.instance", eoj.instance, 0, 0xFF)
    _check_range("OPC", len(frame.props), 1, 0xFF)  # OPC 0 is not a valid operation (§3.2.6)
    out = bytearray([EHD1, EHD2_FORMAT1])
    out += frame.tid.to_bytes(2, "big")
    out += frame.seoj.to_bytes() + frame.deoj.to_bytes()
    out += bytes([ESV(frame.esv), len(frame.props)])
    for i, p in enumerate(frame.props):
        _check_range(f"props[{i}].EPC", p.epc, 0, 0xFF)
        _check_range(f"props[{i}].PDC", len(p.edt), 0, 0xFF)
        out += bytes([p.epc, len(p.edt)]) + p.edt
    return bytes(out)


def decode_frame(data: bytes) -> Frame:
    """Parse one datagram. DeviceError naming the field for a foreign or malformed frame: a wrong
    EHD1/EHD2, a header cut short, an unknown ESV, OPC 0, a property cut short or whose PDC runs
    past the end, bytes left after the last property."""
    if len(data) < 2:
        raise DeviceError("EHD1", f"a frame needs at least {HEADER_LEN} bytes, got {len(data)}")
    if data[0] != EHD1:
        raise DeviceError("EHD1", f"0x{data[0]:02X} is not ECHONET Lite (0x10)")
    if data[1] != EHD2_FORMAT1:
        raise DeviceError("EHD2", f"0x{data[1]:02X} is not format 1 (0x81)")
    if len(data) < HEADER_LEN:
        raise DeviceError("header", f"truncated: {len(data)} bytes, the header alone is {HEADER_LEN}")
    tid = int.from_bytes(data[2:4], "big")
    seoj = EOJ(int.from_bytes(data[4:6], "big"), data[6])
    deoj = EOJ(int.from_bytes(data[7:9], "big"), data[9])
    try:
        esv = ESV(data[10])
    except ValueError:
        raise DeviceError("ESV", f"0x{data[10]:02X} is not a supported service") from None
    opc = data[11]
    if opc == 0:
        raise DeviceError("OPC", "0 properties")
    props: list[Property] = []
    pos = HEADER_LEN
    for i in range(opc):
        if pos + 2 > len(data):
            raise DeviceError(f"props[{i}]", f"OPC says {opc} properties, the frame ends after {i}")
        epc, pdc = data[pos], data[pos + 1]
        if pos + 2 + pdc > len(data):
            raise DeviceError(f"props[{i}].PDC",
                              f"{pdc} bytes of EPC 0x{epc:02X} run past the end ({len(data) - pos - 2} left)")
        props.append(Property(epc, bytes(data[pos + 2:pos + 2 + pdc])))
        pos += 2 + pdc
    if pos != len(data):
        raise DeviceError("OPC", f"{len(data) - pos} trailing bytes after the {opc} properties OPC announced")
    return Frame(tid, seoj, deoj, esv, tuple(props))


# --- property codecs: shared shapes ------------------------------------------------------------


def _edt_len(epc: str, edt: bytes, n: int) -> None:
    if len(edt) != n:
        raise DeviceError(epc, f"expected {n} data bytes, got {len(edt)}")


def _u32(epc: str, edt: bytes) -> int:
    """An unsigned long property; the no-data code is a DeviceError naming the property."""
    _edt_len(epc, edt, 4)
    value = int.from_bytes(edt, "big")
    if value == NO_DATA_U32:
        raise DeviceError(epc, "no data (0xFFFFFFFE)")
    return value


def u8(value: int) -> bytes:
    return value.to_bytes(1, "big")


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def s32(value: int) -> bytes:
    return value.to_bytes(4, "big", signed=True)


def jst_datetime_bytes(at: int) -> bytes:
    """YYYY(2) MM DD hh mm ss of unix time ``at`` [s] on the JST wall clock (EA/EB's 7 bytes)."""
    t = time.gmtime(at + JST_OFFSET_SECONDS)
    return u16(t.tm_year) + bytes([t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec])


def parse_jst_datetime(epc: str, edt: bytes) -> int:
    """The 7 date-time bytes (JST) as unix seconds (UTC). DeviceError on an impossible date."""
    _edt_len(epc, edt, 7)
    year, (month, day, hour, minute, second) = int.from_bytes(edt[0:2], "big"), edt[2:7]
    if not (1 <= year <= 9999 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour <= 23 and minute <= 59 and second <= 59):
        raise DeviceError(epc, f"not a date and time: {edt.hex()}")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - JST_OFFSET_SECONDS


# --- low-voltage smart electric energy meter 0x0288 --------------------------------------------
# APPENDIX Detailed Requirements for ECHONET Device Objects, Release N, "Low-voltage smart
# electric energy meter class": D3 coefficient (unsigned long, 1..999,999, optional), D7
# effective digits (unsigned char, 1..8), E0/E3 normal/reverse cumulative (unsigned long,
# 0..99,999,999), E1 unit (unsigned char), E7 instantaneous power (signed long, W), EA/EB the
# normal/reverse cumulative fixed at the latest 30-minute boundary (7 date-time bytes + long).

EPC_COEFFICIENT: Final = 0xD3
EPC_DIGITS: Final = 0xD7
EPC_IMPORT: Final = 0xE0  # normal direction: bought from the grid
EPC_UNIT: Final = 0xE1
EPC_EXPORT: Final = 0xE3  # reverse direction: sold to the grid
EPC_INSTANT_POWER: Final = 0xE7
EPC_FIXED_IMPORT: Final = 0xEA
EPC_FIXED_EXPORT: Final = 0xEB

# E1 unit code → one register step as an exact fraction of a Wh: (numerator, denominator).
UNIT_WH: Final[dict[int, tuple[int, int]]] = {
    0x00: (1000, 1),  # 1 kWh
    0x01: (100, 1),  # 0.1 kWh
    0x02: (10, 1),  # 0.01 kWh
    0x03: (1, 1),  # 0.001 kWh
    0x04: (1, 10),  # 0.0001 kWh
    0x0A: (10_000, 1),  # 10 kWh
    0x0B: (100_000, 1),  # 100 kWh
    0x0C: (1_000_000, 1),  # 1000 kWh
    0x0D: (10_000_000, 1),  # 10000 kWh
}
E7_NO_DATA: Final = frozenset({0x7FFF_FFFF, -0x8000_0000, 0x7FFF_FFFE})  # overflow, underflow, no data


def parse_unit(edt: bytes) -> int:
    """E1: the unit code (a key of :data:`UNIT_WH`)."""
    _edt_len("E1", edt, 1)
    if edt[0] not in UNIT_WH:
        raise DeviceError("E1", f"unknown unit code 0x{edt[0]:02X}")
    return edt[0]


def parse_coefficient(edt: bytes) -> int:
    """D3: the coefficient the registers are multiplied by (1..999,999)."""
    value = _u32("D3", edt)
    if not 1 <= value <= 999_999:
        raise DeviceError("D3", f"coefficient {value} outside 1..999999")
    return value


def parse_digits(edt: bytes) -> int:
    """D7: effective digits of the cumulative registers (1..8); they wrap at 10^digits."""
    _edt_len("D7", edt, 1)
    if not 1 <= edt[0] <= 8:
        raise DeviceError("D7", f"{edt[0]} effective digits outside 1..8")
    return edt[0]


@dataclass(frozen=True, slots=True)
class MeterScale:
    """How a meter's register counts become Wh: count × coefficient × unit (E1 × D3), wrapping at
    10^digits (D7). Sub-Wh units (0x04, 0.1 Wh) are floored to whole Wh (never report more
    energy than was measured), so the conversion is exact integer arithmetic."""

    unit_code: int  # E1
    coefficient: int = 1  # D3 (default 1 when the meter does not have it)
    digits: int = 8  # D7

    def to_wh(self, count: int) -> int:
        """A register count as whole Wh, floored [Wh]."""
        num, den = UNIT_WH[self.unit_code]
        return count * self.coefficient * num // den

    def to_count(self, wh: int) -> int:
        """Whole Wh as the register count a meter shows (floored, wrapped at 10^digits)."""
        num, den = UNIT_WH[self.unit_code]
        wrap: int = 10**self.digits
        return wh * den // (self.coefficient * num) % wrap

    @property
    def resolution_wh(self) -> int:
        """One register step [Wh], floored, at least 1."""
        return max(1, self.to_wh(1))

    @property
    def modulus_wh(self) -> int:
        """Where the registers wrap to 0: 10^digits steps [Wh] (floored)."""
        return self.to_wh(10**self.digits)

    def registers(self, import_count: int, export_count: int) -> MeterRegisters:
        return MeterRegisters(self.to_wh(import_count), self.to_wh(export_count), self.resolution_wh,
                              self.modulus_wh)


def parse_cumulative(epc: int, edt: bytes) -> int:
    """E0 or E3: the register count (0..99,999,999); no data is a DeviceError."""
    name = f"{epc:02X}"
    value = _u32(name, edt)
    if value > 99_999_999:
        raise DeviceError(name, f"register {value} above 99999999")
    return value


def parse_instant_power(edt: bytes) -> int:
    """E7: net power at the grid point, + import / − export [W]."""
    _edt_len("E7", edt, 4)
    value = int.from_bytes(edt, "big", signed=True)
    if value in E7_NO_DATA:
        raise DeviceError("E7", f"no measurement (0x{value & 0xFFFF_FFFF:08X})")
    return value


def parse_fixed_value(epc: int, edt: bytes, scale: MeterScale) -> FixedValue:
    """EA or EB: the cumulative register fixed at a 30-minute boundary, as (unix s, Wh)."""
    name = f"{epc:02X}"
    _edt_len(name, edt, 11)
    count = _u32(name, edt[7:11])
    at = parse_jst_datetime(name, edt[0:7])
    if at % 1800:
        raise DeviceError(name, f"fixing time {at} is not a 30-minute boundary")
    return FixedValue(at, scale.to_wh(count))


def fixed_value_edt(at: int, count: int) -> bytes:
    """EA/EB data for fixing time ``at`` [unix s] and register ``count`` (NO_DATA_U32 for none)."""
    return jst_datetime_bytes(at) + u32(count)


# --- 30-minute history: E5 (day to retrieve), E2/E4 (that day's 48 fixed values) ------------------
# APPENDIX, Release N, low-voltage smart electric energy meter class: E5 "day for which the
# historical data of measured cumulative amounts of electric energy is to be retrieved 1"
# (unsigned char, 0 = today, 1 = yesterday, ... 99; Set/Get); E2 / E4 "historical data of
# measured cumulative amounts of electric energy 1" (normal / reverse direction): unsigned short
# (the day, 0..99) + unsigned long × 48 (0..99,999,999, 0xFFFFFFFE no data), 194 bytes, "48
# pieces of half-hourly data for the preceding 24 hours". The Appendix does not stamp the 48
# values with times; crev reads value i as fixed at 00:00 + 30 min × i (JST) of that day, the
# reading of two independent B-route implementations (futomi/node-echonet-lite: "00:00 to
# 23:30"; smdn/Smdn.Net.EchonetLite.RouteB: day + i × 24 h / 48). A day's 24:00 value is then
# the next day's first. A meter using the other reading (00:30 .. 24:00) would show here as
# fixing times 30 minutes early: the agent's check against EA/EB catches it (see agent.py).

EPC_HISTORY_IMPORT: Final = 0xE2
EPC_HISTORY_EXPORT: Final = 0xE4
EPC_HISTORY_DAY: Final = 0xE5
EPC_CURRENT_DATE: Final = 0x98  # superclass: current date setting, YYYY(2) MM DD (the meter's clock)
HISTORY_VALUES: Final = 48
HISTORY_LEN: Final = 2 + 4 * HISTORY_VALUES  # 194 bytes
HISTORY_MAX_DAY: Final = 99
DAY_S: Final = 86_400


def jst_day_start(at: int) -> int:
    """The unix time of 00:00 JST of the JST day containing ``at`` [unix s]."""
    return at - (at + JST_OFFSET_SECONDS) % DAY_S


def jst_date_bytes(at: int) -> bytes:
    """YYYY(2) MM DD of unix time ``at`` on the JST calendar (superclass 0x98's 4 bytes)."""
    return jst_datetime_bytes(at)[0:4]


def parse_jst_date(epc: str, edt: bytes) -> int:
    """0x98 current date (JST): unix seconds of that day's 00:00 JST. DeviceError on an impossible date."""
    _edt_len(epc, edt, 4)
    return parse_jst_datetime(epc, edt + b"\x00\x00\x00")


def history_edt(day: int, counts: list[int | None]) -> bytes:
    """E2/E4 data: ``day`` (0..99) and 48 register counts for 00:00, 00:30, ... 23:30 JST of that
    day (None: no data, sent as 0xFFFFFFFE)."""
    if len(counts) != HISTORY_VALUES:
        raise MalformedError("history", f"needs {HISTORY_VALUES} values, got {len(counts)}")
    _check_range("history.day", day, 0, HISTORY_MAX_DAY)
    return u16(day) + b"".join(u32(NO_DATA_U32 if c is None else c) for c in counts)


def parse_history(epc: int, edt: bytes, scale: MeterScale, day_start: int) -> tuple[int, list[FixedValue]]:
    """E2 or E4: (the day number, the fixed values with data) for the day starting at
    ``day_start`` [unix s, 00:00 JST]; value i is fixed at ``day_start + 1800 × i``. No-data
    entries (0xFFFFFFFE) are left out; any other value above 99,999,999 is a DeviceError naming
    the property and the entry (``E2[17]``)."""
    name = f"{epc:02X}"
    _edt_len(name, edt, HISTORY_LEN)
    day = int.from_bytes(edt[0:2], "big")
    if day > HISTORY_MAX_DAY:
        raise DeviceError(name, f"day {day} outside 0..{HISTORY_MAX_DAY}")
    out: list[FixedValue] = []
    for i in range(HISTORY_VALUES):
        count = int.from_bytes(edt[2 + 4 * i:6 + 4 * i], "big")
        if count == NO_DATA_U32:
            continue
        if count > 99_999_999:
            raise DeviceError(f"{name}[{i}]", f"register {count} above 99999999")
        out.append(FixedValue(day_start + 1800 * i, scale.to_wh(count)))
    return day, out


# --- household solar power generation 0x0279 ---------------------------------------------------
# APPENDIX, Release N, "Household solar power generation class": E0 instantaneous generation
# (unsigned short, W, 0..65533), E1 cumulative generation (unsigned long, 0.001 kWh = 1 Wh,
# 0..999,999,999), A0 output power control setting 1 (unsigned char, %, 0..100, Set/Get).

EPC_SOLAR_POWER: Final = 0xE0
EPC_SOLAR_ENERGY: Final = 0xE1
EPC_OUTPUT_LIMIT_PCT: Final = 0xA0
EPC_MAKER_CODE: Final = 0x8A  # superclass: manufacturer code (3 bytes)
EPC_PRODUCT_CODE: Final = 0x8C  # superclass: product code (12 ASCII bytes), optional
EPC_SERIAL: Final = 0x8D  # superclass: production number (12 ASCII bytes), optional


def parse_solar_power(edt: bytes) -> int:
    """0x0279 E0: generation now [W] (0..65,533; DeviceError on the overflow/underflow codes)."""
    _edt_len("E0", edt, 2)
    value = int.from_bytes(edt, "big")
    if value == 0xFFFF:  # the class's range ends at 65,533 W: a larger (business) PCS overflows
        raise DeviceError("E0", "overflow (0xFFFF): generation above 65533 W")
    if value == 0xFFFE:
        raise DeviceError("E0", "underflow or no measurement (0xFFFE)")
    return value


def parse_solar_energy(edt: bytes) -> int:
    """0x0279 E1: lifetime generation [Wh] (the unit 0.001 kWh is exactly 1 Wh)."""
    value = _u32("E1", edt)
    if value > 999_999_999:
        raise DeviceError("E1", f"cumulative {value} above 999999999")
    return value


def parse_percent(edt: bytes) -> int:
    """0x0279 A0: output power control setting 1 [% of the rated output]."""
    _edt_len("A0", edt, 1)
    if edt[0] > 100:
        raise DeviceError("A0", f"{edt[0]} % above 100")
    return edt[0]


def parse_ascii(epc: str, edt: bytes) -> str:
    """A fixed-width ASCII property (8C, 8D), NUL and space padding removed."""
    try:
        return edt.rstrip(b"\x00 ").decode("ascii")
    except UnicodeDecodeError:
        raise DeviceError(epc, f"not ASCII: {edt.hex()}") from None


# --- the UDP client ----------------------------------------------------------------------------


class EchonetLink:
    """A synchronous request/response link to one ECHONET Lite node over UDP.

    Each request gets the next TID (kept for its retries); an answer must come from the node's
    address and carry that TID, the addressed object as SEOJ, our object as DEOJ and the request's
    response ESV. Anything else is counted and ignored: ``stray`` (other TIDs, objects, services
    and INF announcements), ``malformed`` (undecodable datagrams). A request with no answer after
    ``retries`` resends raises DeviceError (the last malformed datagram's error if one came)."""

    def __init__(self, host: str, port: int = ECHONET_PORT, *, timeout_s: float = 2.0, retries: int = 2,
                 name: str, local_port: int = 0, seoj: EOJ = CONTROLLER) -> None:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self.name = name
        self.addr = addr
        self.timeout_s = timeout_s
        self.retries = retries
        self.seoj = seoj
        self.tid = 0
        self.stray = 0
        self.malformed = 0
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        # Some nodes answer to port 3610 rather than to the request's source port: local_port=3610.
        self.sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", local_port))

    def close(self) -> None:
        self.sock.close()

    def next_tid(self) -> int:
        self.tid = (self.tid + 1) & 0xFFFF
        return self.tid

    def request(self, deoj: EOJ, esv: ESV, props: tuple[Property, ...]) -> Frame:
        """Send one request and return its answer (accepted or refused: the caller reads the ESV)."""
        frame = Frame(self.next_tid(), self.seoj, deoj, esv, props)
        data = encode_frame(frame)
        last_error: DeviceError | None = None
        for _ in range(self.retries + 1):
            self.sock.sendto(data, self.addr)
            deadline = time.monotonic() + self.timeout_s
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                try:
                    datagram, source = self.sock.recvfrom(2048)
                except TimeoutError:
                    break
                if source[:2] != self.addr[:2]:
                    self.stray += 1
                    continue
                try:
                    answer = decode_frame(datagram)
                except DeviceError as e:
                    self.malformed += 1
                    last_error = e
                    continue
                if (answer.tid != frame.tid or answer.seoj.cls != deoj.cls
                        or (deoj.instance and answer.seoj.instance != deoj.instance)
                        or answer.deoj != self.seoj or answer.esv not in RESPONSES[esv]):
                    self.stray += 1
                    continue
                return answer
        if last_error is not None:
            raise last_error.at(self.name)
        raise DeviceError(f"{self.name}.{esv.name}",
                          f"no answer from {deoj} after {self.retries + 1} tries of {self.timeout_s} s")

    def get(self, deoj: EOJ, epcs: tuple[int, ...], *, optional: frozenset[int] = frozenset()) -> dict[int, bytes]:
        """Get ``epcs``; their data by EPC. A property the node refuses (Get_SNA, PDC 0) is a
        DeviceError naming it, unless it is ``optional`` (then it is left out)."""
        answer = self.request(deoj, ESV.GET, tuple(Property(e) for e in epcs))
        got = {p.epc: p.edt for p in answer.props}
        for epc in epcs:
            if epc not in got:
                raise DeviceError(f"{self.name}.{epc:02X}", f"missing from the {answer.esv.name} answer")
        if answer.esv == ESV.GET_SNA:
            refused = [e for e in epcs if not got[e]]
            for epc in refused:
                if epc not in optional:
                    raise DeviceError(f"{self.name}.{epc:02X}", f"not available (Get_SNA from {deoj})")
            for epc in refused:
                del got[epc]
        return got

    def set(self, deoj: EOJ, props: tuple[Property, ...]) -> None:
        """SetC ``props``; DeviceError naming the first property the node refuses (SetC_SNA)."""
        answer = self.request(deoj, ESV.SETC, props)
        if answer.esv == ESV.SETC_SNA:
            refused = next((p for p in answer.props if p.edt), answer.props[0])
            raise DeviceError(f"{self.name}.{refused.epc:02X}", f"refused (SetC_SNA from {deoj})")


T = TypeVar("T")


def _parsed(name: str, fn: Callable[[], T]) -> T:
    """``fn()``, its DeviceError's field prefixed with the device's name."""
    try:
        return fn()
    except DeviceError as e:
        raise e.at(name) from None


class EchonetSmartMeter:
    """The utility smart meter (class 0x0288) as the ``SmartMeter`` port.

    Reads D7, E1 and D3 once (cached in ``scale``); then E0/E3 for the registers, EA/EB for the
    30-minute fixed values and E7 for the instantaneous power."""

    def __init__(self, host: str, port: int = ECHONET_PORT, *, timeout_s: float = 2.0, retries: int = 2,
                 name: str | None = None, instance: int = 0x01, local_port: int = 0) -> None:
        self.name = name or f"smart-meter {host}:{port}"
        self.eoj = EOJ(SMART_METER_CLASS, instance)
        self.link = EchonetLink(host, port, timeout_s=timeout_s, retries=retries, name=self.name,
                                local_port=local_port)
        self._scale: MeterScale | None = None

    def close(self) -> None:
        self.link.close()

    def _parse(self, fn: Callable[[], T]) -> T:
        return _parsed(self.name, fn)

    @property
    def scale(self) -> MeterScale:
        if self._scale is None:
            got = self.link.get(self.eoj, (EPC_DIGITS, EPC_UNIT))
            coefficient = self.link.get(self.eoj, (EPC_COEFFICIENT,), optional=frozenset({EPC_COEFFICIENT}))
            self._scale = self._parse(lambda: MeterScale(
                parse_unit(got[EPC_UNIT]),
                parse_coefficient(coefficient[EPC_COEFFICIENT]) if EPC_COEFFICIENT in coefficient else 1,
                parse_digits(got[EPC_DIGITS])))
        return self._scale

    def registers(self) -> MeterRegisters:
        scale = self.scale
        got = self.link.get(self.eoj, (EPC_IMPORT, EPC_EXPORT))
        return self._parse(lambda: scale.registers(parse_cumulative(EPC_IMPORT, got[EPC_IMPORT]),
                                                   parse_cumulative(EPC_EXPORT, got[EPC_EXPORT])))

    def fixed_values(self) -> tuple[FixedValue, FixedValue]:
        scale = self.scale
        got = self.link.get(self.eoj, (EPC_FIXED_IMPORT, EPC_FIXED_EXPORT))
        return self._parse(lambda: (parse_fixed_value(EPC_FIXED_IMPORT, got[EPC_FIXED_IMPORT], scale),
                                    parse_fixed_value(EPC_FIXED_EXPORT, got[EPC_FIXED_EXPORT], scale)))

    def instant_power_w(self) -> int:
        got = self.link.get(self.eoj, (EPC_INSTANT_POWER,))
        return self._parse(lambda: parse_instant_power(got[EPC_INSTANT_POWER]))

    def history(self, day_offset: int) -> tuple[list[FixedValue], list[FixedValue]]:
        """(import, export) fixed values of the JST day ``day_offset`` days before the meter's
        today (0..99): SetC E5, then one Get of E2, E4 and 0x98 (the meter's date, so the values
        are stamped by the meter's own calendar even across its midnight). Only values with data,
        oldest first. DeviceError naming the property (E5 refused, E2's day not the one asked)."""
        _check_range(f"{self.name}.E5", day_offset, 0, HISTORY_MAX_DAY)
        scale = self.scale
        self.link.set(self.eoj, (Property(EPC_HISTORY_DAY, u8(day_offset)),))
        got = self.link.get(self.eoj, (EPC_HISTORY_IMPORT, EPC_HISTORY_EXPORT, EPC_CURRENT_DATE))

        def parse() -> tuple[list[FixedValue], list[FixedValue]]:
            day_start = parse_jst_date("98", got[EPC_CURRENT_DATE]) - day_offset * DAY_S
            values: list[list[FixedValue]] = []
            for epc in (EPC_HISTORY_IMPORT, EPC_HISTORY_EXPORT):
                day, vals = parse_history(epc, got[epc], scale, day_start)
                if day != day_offset:
                    raise DeviceError(f"{epc:02X}", f"answered day {day}, E5 was set to {day_offset}")
                values.append(vals)
            return values[0], values[1]

        return self._parse(parse)


class EchonetSolar:
    """A household PV inverter (class 0x0279) as the ``Inverter`` port: E0 power, E1 energy, and
    A0 (output power control setting 1, % of ``rated_w``) as its active-power limit — an
    alternative to SunSpec for a PCS that speaks only ECHONET Lite."""

    def __init__(self, host: str, port: int = ECHONET_PORT, *, rated_w: int, timeout_s: float = 2.0,
                 retries: int = 2, name: str | None = None, instance: int = 0x01, local_port: int = 0) -> None:
        self.name = name or f"solar {host}:{port}"
        self.rated_w = rated_w
        self.eoj = EOJ(SOLAR_CLASS, instance)
        self.link = EchonetLink(host, port, timeout_s=timeout_s, retries=retries, name=self.name,
                                local_port=local_port)

    def close(self) -> None:
        self.link.close()

    def _parse(self, fn: Callable[[], T]) -> T:
        return _parsed(self.name, fn)

    def power_w(self) -> int:
        got = self.link.get(self.eoj, (EPC_SOLAR_POWER,))
        return self._parse(lambda: parse_solar_power(got[EPC_SOLAR_POWER]))

    def energy_wh(self) -> int:
        got = self.link.get(self.eoj, (EPC_SOLAR_ENERGY,))
        return self._parse(lambda: parse_solar_energy(got[EPC_SOLAR_ENERGY]))

    def limit_pct(self) -> int:
        got = self.link.get(self.eoj, (EPC_OUTPUT_LIMIT_PCT,))
        return self._parse(lambda: parse_percent(got[EPC_OUTPUT_LIMIT_PCT]))

    def set_limit_pct(self, pct: int) -> int:
        """SetC A0 to ``pct`` [%], then read it back; returns what the inverter applies [%]."""
        _check_range(f"{self.name}.A0", pct, 0, 100)
        self.link.set(self.eoj, (Property(EPC_OUTPUT_LIMIT_PCT, u8(pct)),))
        return self.limit_pct()

    # --- the Inverter port ---

    def identity(self) -> InverterIdentity:
        got = self.link.get(self.eoj, (EPC_MAKER_CODE, EPC_PRODUCT_CODE, EPC_SERIAL),
                            optional=frozenset({EPC_PRODUCT_CODE, EPC_SERIAL}))

        def parse() -> InverterIdentity:
            _edt_len("8A", got[EPC_MAKER_CODE], 3)
            return InverterIdentity(f"0x{got[EPC_MAKER_CODE].hex().upper()}",
                                    parse_ascii("8C", got.get(EPC_PRODUCT_CODE, b"")),
                                    parse_ascii("8D", got.get(EPC_SERIAL, b"")), self.rated_w)

        return self._parse(parse)

    def status(self) -> InverterStatus:
        got = self.link.get(self.eoj, (EPC_SOLAR_ENERGY, EPC_SOLAR_POWER, EPC_OUTPUT_LIMIT_PCT))
        return self._parse(lambda: InverterStatus(parse_solar_energy(got[EPC_SOLAR_ENERGY]),
                                                  parse_solar_power(got[EPC_SOLAR_POWER]),
                                                  self.rated_w * parse_percent(got[EPC_OUTPUT_LIMIT_PCT]) // 100))

    def set_limit_w(self, limit_w: int) -> int:
        """Set the limit as A0 = floor(limit_w × 100 / rated_w) % (floored: never above the asked
        limit, the zero-export direction); returns rated_w × applied % / 100 [W], floored."""
        pct = max(0, min(100, limit_w * 100 // self.rated_w))
        return self.rated_w * self.set_limit_pct(pct) // 100

