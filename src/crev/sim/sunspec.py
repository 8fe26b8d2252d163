"""A simulated PCS and grid meter: a SunSpec Modbus TCP server whose registers are the site's physics.

One map at base 40000 (any Modbus unit id answers):

``'SunS'`` · model 1 (common) · 120 (nameplate) · 103 (three-phase inverter) · 123 (immediate
controls) · 203 (wye meter at the grid point) · end marker 0xFFFF

Every read computes the registers from a :class:`crev.sim.site.SitePhysics` at that moment: the
inverter's WH from ``generation_wh()`` and W from ``pv_power_w()``, the meter's TotWhImp/TotWhExp
from ``dgc_meter_wh()`` and W from ``net_power_w()`` (+ import / − export, SunSpec's meter sign).
Writing WMaxLimPct or WMaxLim_Ena (model 123) calls ``physics.set_limit_w``: the inverter honours
its limit, so curtailment changes what the inverter and the meter show next.

Powers are served with the smallest scale factor ≥ 0 that fits int16 (a 187.5 kW site's W has
W_SF = 1, so W reads in 10 W steps); WMaxLimPct_SF is −1 (0.1 % steps).

Faults for tests: ``refuse_setpoints`` answers every write with Modbus exception 3 (illegal data
value); ``without_suns`` serves the same map with the marker zeroed.

pymodbus 3.16's server takes a :class:`pymodbus.simulator.SimDevice` whose ``action`` coroutine is
called on every access with the device's register list, before the read is answered or the write
stored: the action fills the list from the physics on reads and refuses or applies writes. (The
``ModbusDeviceContext`` / ``ModbusSequentialDataBlock`` datastore of earlier 3.x is deprecated in
3.16 and converted to a SimDevice internally.) The server runs in its own thread with its own
asyncio loop; port 0 binds an ephemeral port, read back from :attr:`SunSpecServer.port`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from crev.device import sunspec as ss
from crev.sim.site import SitePhysics

BASE = 40000
# Model lengths L (registers after ID and L), from the SunSpec model definitions.
LENGTHS = {1: 66, 120: 26, 103: 50, 123: 24, 203: 105}
ORDER = (1, 120, 103, 123, 203)
PCT_SF = -1  # WMaxLimPct in 0.1 %
PCT_FULL = 1000  # 100.0 %


def layout(base: int = BASE) -> dict[int, int]:
    """Model id → address of its ID register, in the order served."""
    out: dict[int, int] = {}
    address = base + 2
    for mid in ORDER:
        out[mid] = address
        address += 2 + LENGTHS[mid]
    return out


MAP_WORDS = 2 + sum(2 + LENGTHS[m] for m in ORDER) + 2  # marker, models, end marker


def power_sf(max_w: int) -> int:
    """The smallest scale factor ≥ 0 with ``max_w`` / 10^sf within int16 (≤ 32767)."""
    sf = 0
    while max_w // ss.POW10[sf] > 32767:
        sf += 1
    return sf


def _s16(value: int) -> int:
    return value & 0xFFFF


def _text(s: str, n: int) -> list[int]:
    raw = s.encode("utf-8")[: 2 * n].ljust(2 * n, b"\x00")
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, 2 * n, 2)]


class SunSpecServer:
    """A simulated SunSpec inverter with its grid meter, on (host, port); see the module docstring.

    Use as a context manager, or :meth:`start` / :meth:`stop`.
    """

    def __init__(self, physics: SitePhysics, host: str = "127.0.0.1", port: int = 0, *,
                 manufacturer: str = "crev-sim", model: str = "PCS-3P", serial: str | None = None,
                 refuse_setpoints: bool = False, without_suns: bool = False) -> None:
        self.physics = physics
        self.host = host
        self._want_port = port
        self.port = 0  # the bound port once started
        self.manufacturer, self.model = manufacturer, model
        self.serial = serial or f"SIM-{physics.site_id}"
        self.refuse_setpoints = refuse_setpoints
        self.without_suns = without_suns
        spec = next(s for s in physics.fleet.sim.sites if s.site_id == physics.site_id)
        self.inverter_w_sf = power_sf(physics.rated_w)
        self.meter_w_sf = power_sf(max(physics.rated_w, spec.peak_load_w))
        self.models = layout()
        self.pct_raw = PCT_FULL  # WMaxLimPct as last written
        self.enabled = 0  # WMaxLim_Ena
        self._controls: dict[int, int] = {}  # other writable model-123 registers: address → value
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # --- the register image ---------------------------------------------------------------------

    def image(self) -> list[int]:
        """The whole map, from BASE, computed from the physics now."""
        p = self.physics
        w = [0] * MAP_WORDS
        if not self.without_suns:
            w[0:2] = ss.SUNS

        def put(mid: int, offset: int, values: Sequence[int]) -> None:
            at = self.models[mid] - BASE + offset
            w[at:at + len(values)] = values

        for mid in ORDER:
            put(mid, 0, (mid, LENGTHS[mid]))
        end = self.models[ORDER[-1]] - BASE + 2 + LENGTHS[ORDER[-1]]
        w[end:end + 2] = (ss.END_ID, 0)

        put(1, ss.MN.offset, _text(self.manufacturer, 16))
        put(1, ss.MD.offset, _text(self.model, 16))
        put(1, 42, _text("1.0", 8))  # Vr
        put(1, ss.SN.offset, _text(self.serial, 16))
        put(1, 66, (1,))  # DA

        put(120, 2, (4,))  # DERTyp: PV
        put(120, ss.WRTG.offset, (p.rated_w // ss.POW10[self.inverter_w_sf], self.inverter_w_sf))

        gen_wh, pv_w = p.generation_wh(), p.pv_power_w()
        put(103, ss.INV_W.offset, (_s16(pv_w // ss.POW10[self.inverter_w_sf]), self.inverter_w_sf))
        put(103, 16, (500, _s16(-1)))  # Hz 50.0
        wh = gen_wh % (1 << 32)
        put(103, ss.INV_WH.offset, (wh >> 16, wh & 0xFFFF, 0))  # WH, WH_SF 0
        put(103, 38, (4 if pv_w > 0 else 2,))  # St: MPPT / sleeping

        for address, value in self._controls.items():
            w[address - BASE] = value
        put(123, 4, (1,))  # Conn: connected
        put(123, ss.C123_PCT.offset, (self.pct_raw,))
        put(123, ss.C123_ENA.offset, (self.enabled,))
        put(123, ss.C123_SF.offset, (_s16(PCT_SF), 0, 0))  # WMaxLimPct_SF, OutPFSet_SF, VArPct_SF

        imp, exp = p.dgc_meter_wh()
        net = p.net_power_w()
        put(203, 16, (500, _s16(-1)))  # Hz 50.0
        put(203, ss.MTR_W.offset, (_s16(net // ss.POW10[self.meter_w_sf]),))
        put(203, ss.MTR_W_SF.offset, (self.meter_w_sf,))
        exp32, imp32 = exp % (1 << 32), imp % (1 << 32)
        put(203, ss.MTR_WH_EXP.offset, (exp32 >> 16, exp32 & 0xFFFF))
        put(203, ss.MTR_WH_IMP.offset, (imp32 >> 16, imp32 & 0xFFFF))
        put(203, ss.MTR_WH_SF.offset, (0,))
        return w

    # --- writes ---------------------------------------------------------------------------------

    def _write(self, address: int, values: Sequence[int]) -> ExcCodes | None:
        first = self.models[123] + 2  # Conn_WinTms: the first writable point
        last = self.models[123] + 22  # VArPct_Ena: the last
        if not (first <= address and address + len(values) - 1 <= last):
            return ExcCodes.ILLEGAL_ADDRESS
        if self.refuse_setpoints:
            return ExcCodes.ILLEGAL_VALUE
        pct_at = self.models[123] + ss.C123_PCT.offset
        ena_at = self.models[123] + ss.C123_ENA.offset
        pct, ena = self.pct_raw, self.enabled
        for i, value in enumerate(values):
            if address + i == pct_at:
                pct = value
            elif address + i == ena_at:
                ena = value
        if pct > PCT_FULL or ena not in (0, 1):
            return ExcCodes.ILLEGAL_VALUE
        for i, value in enumerate(values):
            if address + i not in (pct_at, ena_at):
                self._controls[address + i] = value
        self.pct_raw, self.enabled = pct, ena
        rated = self.physics.rated_w
        self.physics.set_limit_w(ss.pct_to_w(pct, PCT_SF, rated) if ena else rated)
        return None

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if set_values is not None:
            return self._write(address, [int(v) for v in set_values])
        image = self.image()
        registers[0:len(image)] = image  # the block starts at BASE (start_address)
        return None

    # --- serving --------------------------------------------------------------------------------

    def start(self) -> SunSpecServer:
        """Bind and serve in a background thread; returns when listening (port set)."""
        self._thread = threading.Thread(target=self._run, name=f"sunspec-sim {self.physics.site_id}", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error
        if not self.port:
            raise RuntimeError("simulated SunSpec server did not start within 10 s")
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> SunSpecServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        device = SimDevice(0, simdata=[SimData(BASE, count=MAP_WORDS, values=0, datatype=DataType.REGISTERS)],
                           action=self._action)
        server = ModbusTcpServer(device, address=(self.host, self._want_port))
        await server.serve_forever(background=True)
        sockets = getattr(server.transport, "sockets", None)
        if not sockets:
            raise RuntimeError(f"simulated SunSpec server: not listening on {self.host}:{self._want_port}")
        self.port = int(sockets[0].getsockname()[1])
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]
