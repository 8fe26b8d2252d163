"""A simulated ECHONET Lite node: the site's smart meter (0x028801) and optionally its PV (0x027901).

The node answers on a real UDP socket, from a thread, as a utility smart meter does over the
B-route: every value comes from one :class:`crev.sim.site.SitePhysics`, encoded with the codecs
of :mod:`crev.device.echonet` (so the simulator and the DGC's adapter share one reading of the
spec):

* 0x0288 E0/E3 ← ``smart_meter_wh()`` as register counts in the configured unit (E1, default
  0x01 = 0.1 kWh with 6 effective digits, what Japanese utility meters commonly report), D3
  (answered only when a coefficient is configured), D7, E7 ← ``net_power_w()``, EA/EB ← the
  latest ``fixed`` value at ``last_fixed_at`` (no data before the first boundary), E5 (SetC/Get:
  the history day, 0 = today) with E2/E4 ← that JST day's ``fixed`` values at 00:00, 00:30, ...
  23:30 (no data for the slot ends the physics does not hold: before the start, older than its
  96, not reached yet) and 0x98 ← the JST date of the physics' clock;
* 0x0279 E0 ← ``pv_power_w()``, E1 ← ``generation_wh()`` (0.001 kWh = 1 Wh), A0 (Get, SetC and
  SetI) → ``set_limit_w(rated × pct / 100)``.

Unknown properties are refused as the spec says (Get_SNA / SetC_SNA echoing each refused EPC).
:class:`Faults` lets a test make the node misbehave: fall silent, answer "no data" for EA/EB,
send a malformed frame, answer from a foreign object or with a stale TID first.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from crev.device.echonet import (
    EOJ,
    EPC_COEFFICIENT,
    EPC_CURRENT_DATE,
    EPC_DIGITS,
    EPC_EXPORT,
    EPC_FIXED_EXPORT,
    EPC_FIXED_IMPORT,
    EPC_HISTORY_DAY,
    EPC_HISTORY_EXPORT,
    EPC_HISTORY_IMPORT,
    EPC_IMPORT,
    EPC_INSTANT_POWER,
    EPC_MAKER_CODE,
    EPC_OUTPUT_LIMIT_PCT,
    EPC_SOLAR_ENERGY,
    EPC_SOLAR_POWER,
    EPC_UNIT,
    ESV,
    HISTORY_MAX_DAY,
    HISTORY_VALUES,
    NO_DATA_U32,
    SMART_METER_CLASS,
    SOLAR_CLASS,
    Frame,
    MeterScale,
    Property,
    decode_frame,
    encode_frame,
    fixed_value_edt,
    history_edt,
    jst_date_bytes,
    jst_day_start,
    s32,
    u8,
    u16,
    u32,
)
from crev.errors import DeviceError
from crev.sim.site import SLOT_S, SitePhysics

SMART_METER = EOJ(SMART_METER_CLASS, 0x01)
SOLAR = EOJ(SOLAR_CLASS, 0x01)
MAKER_CODE = b"\x00\x00\x00"  # 0x000000: no registered maker (the simulator)


@dataclass
class Faults:
    """What the node does wrong, set by tests while it runs."""

    silent: bool = False  # answer nothing
    no_fixed_data: bool = False  # EA/EB answer 0xFFFFFFFE
    no_history: bool = False  # E5/E2/E4 refused, as by a meter without history
    malformed: int = 0  # the next N answers are cut short (PDC runs past the end)
    foreign_eoj: int = 0  # the next N answers come from another object, then the right one
    stale_tid: int = 0  # the next N answers are preceded by one with the previous TID


class SimulatedEchonetNode:
    """One site's ECHONET Lite node on (host, port); port 0 picks a free one (see ``port``)."""

    def __init__(self, physics: SitePhysics, *, host: str = "127.0.0.1", port: int = 0,
                 scale: MeterScale | None = None, coefficient_answered: bool = False,
                 solar: bool = False) -> None:
        self.physics = physics
        self.scale = scale or MeterScale(unit_code=0x01, coefficient=1, digits=6)
        self.coefficient_answered = coefficient_answered or self.scale.coefficient != 1
        self.solar = solar
        self.faults = Faults()
        self.requests = 0  # datagrams received
        self.limit_pct = 100
        self.history_day = 0  # E5
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.05)
        self.host, self.port = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"echonet-sim {self.port}", daemon=True)

    def start(self) -> SimulatedEchonetNode:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sock.close()

    def __enter__(self) -> SimulatedEchonetNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the loop ------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            for out in self.answer(data):
                try:
                    self.sock.sendto(out, source)
                except OSError:  # the asker is gone; a real node would not notice either
                    break

    def answer(self, data: bytes) -> list[bytes]:
        """The datagrams the node sends back for one it received (none for a foreign or
        malformed frame, an unaddressed object, a SetI that succeeded, or while silent)."""
        if self.faults.silent:
            return []
        try:
            req = decode_frame(data)
        except DeviceError:
            return []
        objects = [SMART_METER, SOLAR] if self.solar else [SMART_METER]
        target = next((o for o in objects if o.cls == req.deoj.cls and req.deoj.instance in (0, o.instance)), None)
        if target is None:
            return []
        reply = self._handle(target, req)
        if reply is None:
            return []
        out: list[bytes] = []
        f = self.faults
        if f.stale_tid:
            f.stale_tid -= 1
            out.append(encode_frame(Frame((reply.tid - 1) & 0xFFFF, reply.seoj, reply.deoj, reply.esv, reply.props)))
        if f.foreign_eoj:
            f.foreign_eoj -= 1
            out.append(encode_frame(Frame(reply.tid, EOJ(0x0130, 0x01), reply.deoj, reply.esv, reply.props)))
        body = encode_frame(reply)
        if f.malformed:
            f.malformed -= 1
            body = body[:-1]  # the last property's EDT one byte short: its PDC runs past the end
        out.append(body)
        return out

    def _handle(self, target: EOJ, req: Frame) -> Frame | None:
        def reply(esv: ESV, props: list[Property]) -> Frame:
            return Frame(req.tid, target, req.seoj, esv, tuple(props))

        if req.esv in (ESV.GET, ESV.INF_REQ):
            props = [Property(p.epc, self._get(target, p.epc)) for p in req.props]
            ok = all(p.edt for p in props)
            if req.esv == ESV.GET:
                return reply(ESV.GET_RES if ok else ESV.GET_SNA, props)
            return reply(ESV.INF if ok else ESV.INF_SNA, props)
        if req.esv in (ESV.SETC, ESV.SETI):
            results = [(p, self._set(target, p)) for p in req.props]
            ok = all(accepted for _, accepted in results)
            # accepted properties answer with PDC 0; refused ones echo what was asked
            props = [Property(p.epc) if accepted else p for p, accepted in results]
            if req.esv == ESV.SETC:
                return reply(ESV.SET_RES if ok else ESV.SETC_SNA, props)
            return None if ok else reply(ESV.SETI_SNA, props)
        return None

    # --- properties ----------------------------------------------------------------------------

    def _get(self, target: EOJ, epc: int) -> bytes:
        """A property's data now, or b"" if the object does not have it."""
        ph, scale = self.physics, self.scale
        if epc == 0x80:
            return u8(0x30)  # operation status: ON
        if epc == EPC_MAKER_CODE:
            return MAKER_CODE
        if target == SMART_METER:
            if epc == EPC_UNIT:
                return u8(scale.unit_code)
            if epc == EPC_DIGITS:
                return u8(scale.digits)
            if epc == EPC_COEFFICIENT:
                return u32(scale.coefficient) if self.coefficient_answered else b""
            if epc in (EPC_IMPORT, EPC_EXPORT):
                imp, exp = ph.smart_meter_wh()
                return u32(scale.to_count(imp if epc == EPC_IMPORT else exp))
            if epc == EPC_INSTANT_POWER:
                return s32(max(-0x7FFF_FFFF, min(0x7FFF_FFFD, ph.net_power_w())))
            if epc in (EPC_FIXED_IMPORT, EPC_FIXED_EXPORT):
                t = ph.advance()
                at = ph.last_fixed_at
                if at == 0 or self.faults.no_fixed_data:
                    return fixed_value_edt(at or t // SLOT_S * SLOT_S, NO_DATA_U32)
                imp, exp = ph.fixed[at]
                return fixed_value_edt(at, scale.to_count(imp if epc == EPC_FIXED_IMPORT else exp))
            if self.faults.no_history and epc in (EPC_HISTORY_DAY, EPC_HISTORY_IMPORT, EPC_HISTORY_EXPORT):
                return b""
            if epc == EPC_HISTORY_DAY:
                return u8(self.history_day)
            if epc in (EPC_HISTORY_IMPORT, EPC_HISTORY_EXPORT):
                day_start = jst_day_start(ph.advance()) - self.history_day * 86_400
                side = 0 if epc == EPC_HISTORY_IMPORT else 1
                counts: list[int | None] = []
                for i in range(HISTORY_VALUES):
                    v = ph.fixed.get(day_start + SLOT_S * i)
                    counts.append(None if v is None else scale.to_count(v[side]))
                return history_edt(self.history_day, counts)
            if epc == EPC_CURRENT_DATE:
                return jst_date_bytes(ph.advance())
        if target == SOLAR:
            if epc == EPC_SOLAR_POWER:
                pv_w = ph.pv_power_w()
                return u16(pv_w if pv_w <= 0xFFFD else 0xFFFF)  # overflow code above 65,533 W
            if epc == EPC_SOLAR_ENERGY:
                return u32(ph.generation_wh() % 1_000_000_000)
            if epc == EPC_OUTPUT_LIMIT_PCT:
                return u8(self.limit_pct)
        return b""

    def _set(self, target: EOJ, p: Property) -> bool:
        """Apply one set; False if refused (unknown property, wrong size, out of range)."""
        if target == SOLAR and p.epc == EPC_OUTPUT_LIMIT_PCT and len(p.edt) == 1 and p.edt[0] <= 100:
            self.limit_pct = p.edt[0]
            self.physics.set_limit_w(self.physics.rated_w * self.limit_pct // 100)
            return True
        if (target == SMART_METER and p.epc == EPC_HISTORY_DAY and not self.faults.no_history and len(p.edt) == 1
                and p.edt[0] <= HISTORY_MAX_DAY):
            self.history_day = p.edt[0]
            return True
        return False
