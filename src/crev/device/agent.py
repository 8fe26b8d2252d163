"""The DGC agent: a site's devices read at JST slot boundaries, signed items into the outbox, the
outbox delivered to the ledger, and the PCS limit kept where the control policy says.

Three parts, each a small object a single thread can drive (``crev dgc run`` and the demo call
them for one site or for many):

* :class:`SiteAgent` (``step(now)``): everything due at simulated time ``now`` — the metering
  boundary (the inverter's lifetime energy and the grid meter's import/export registers read at
  each interval boundary, the interval's values as register deltas, the DGC registers advanced and
  the reading signed), the smart meter's 30-minute fixed values at each slot end (a signed
  meter-values item), and the control tick (the slot decision of ``device/control.py``, the
  closed loop on the smart meter's instantaneous power, a signed control record when the
  decision is in force). It never touches the network; nothing it signs is lost (the outbox).
* :class:`Sender` (``pump()``): delivers the outbox in batches per kind, with backoff, and reads
  the market's C-REV price for the control policy.
* :func:`run_agents`: the loop that drives both for a list of sites on a clock (simulated or
  wall), until stopped.

**Nothing is invented.** A boundary read too late (more than ``max_read_delay_s`` after it) or not
at all starts no interval: the next reading starts at the next boundary read on time, and the
energy of the time between shows as a register gap, which the ledger judges (registers may
advance more than the interval values only across a seq or interval gap). A register that went
back or jumped beyond what the PV rating (or ``grid_limit_w``) allows is an alert naming the
device and field, and nothing is signed from it. See docs/dgc.md.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from crev.core.encoding import encode
from crev.core.metering import REGISTER_MODULUS_WH, capacity_limit_wh
from crev.core.signing import Signer
from crev.core.units import JST_OFFSET_SECONDS, SLOT_SECONDS
from crev.device.clock import Clock
from crev.device.config import SenderConfig, SiteConfig
from crev.device.control import Decision, decide, loop_limit, operator_limit_pct
from crev.device.dgc import DgcAgent
from crev.device.offers import Offerer
from crev.device.outbox import KINDS, OFFER, Outbox, Pending
from crev.device.ports import GridMeter, Inverter, SmartMeter
from crev.errors import CrevError
from crev.ledger.blinding import BLIND_LEN
from crev.ledger.messages.submit_controls import control_payload
from crev.ledger.messages.submit_meter_values import meter_values_payload
from crev.ledger.tx import TX_VERSION

log = logging.getLogger("crev.dgc")

CAPACITY_TOLERANCE_BP = 500  # the ledger's default capacity_tolerance_bp: a jump beyond it is refused anyway
DEFAULT_GRID_LIMIT_W = 100_000_000  # an import/export step above 100 MW is a jump [W]
METER_HISTORY_S = 2 * 86_400  # how far back missed smart-meter slots are filled from the meter's history [s]
SIGNED_KINDS = {"reading": "submit_readings", "meter": "submit_meter_values", "control": "submit_controls"}


@dataclass(frozen=True, slots=True)
class Devices:
    smart_meter: SmartMeter
    inverter: Inverter
    grid_meter: GridMeter


class BadValue(Exception):
    """A device value the agent will not sign: ``field`` names the device and its field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


# --- the site ----------------------------------------------------------------------------------


class SiteAgent:
    """One site's DGC: see the module docstring. ``step(now)`` does what is due at ``now``."""

    def __init__(self, site: SiteConfig, chain_id: str, key: Signer, devices: Devices, outbox: Outbox) -> None:
        self.site = site
        self.devices = devices
        self.outbox = outbox
        self.device_id = site.device_id
        saved = outbox.state()
        if saved.get("chain_id", chain_id) != chain_id or saved.get("device_id", site.device_id) != site.device_id:
            raise CrevError(f"{site.device_id}.outbox", f"{outbox.path} belongs to device {saved.get('device_id')!r} "
                                                        f"on chain {saved.get('chain_id')!r}")
        self.chain_id = chain_id
        regs = saved.get("dgc", {})
        self.dgc = DgcAgent(chain_id, site.device_id, key, regs.get("seq", 0), regs.get("g", 0), regs.get("i", 0),
                            regs.get("e", 0))
        self.key = key
        self.signed_end: int = saved.get("signed_end", 0)  # end of the last signed interval [unix s]
        self.signed_raw: list[int] | None = saved.get("signed_raw")  # device registers there [Wh]
        self.base: dict[str, Any] | None = saved.get("base")  # {"at", "raw"}: the last boundary read on time
        self.boundary_seen = max(self.signed_end, self.base["at"] if self.base else 0)
        self.meter_prev: dict[str, Any] | None = saved.get("meter_prev")  # {"at", "import", "export"} [Wh]
        self.meter_seen = self.meter_prev["at"] if self.meter_prev else 0
        self.meter_pending: int | None = None  # a slot end whose fixed values are awaited
        # slot end up to which smart-meter slots are settled: signed, or found missing from history
        self.meter_done: int = saved.get("meter_done", self.meter_seen)
        ctl = saved.get("control", {})
        self.control_seq: int = ctl.get("seq", 0)
        self.control_reason: str | None = ctl.get("reason")
        self.control_slot: int = ctl.get("slot", 0)
        self.next_tick = 0
        self.rated_w: int | None = site.rated_w
        self.crev_price_jpy_per_t = 0  # set by the Sender from the market
        self.decision: Decision | None = None
        self.last_limit_w: int | None = None
        self.alerts_raised = 0
        if not saved:
            outbox.save({"chain_id": chain_id, "device_id": site.device_id})

    # --- driving ---------------------------------------------------------------------------

    def step(self, now: int) -> None:
        """Do everything due at simulated time ``now`` [unix s]."""
        if self.rated_w is None and not self._read_rating(now):
            return
        b = now - now % self.site.interval_s
        if b > self.boundary_seen:
            self._boundary(b, now)
        s = now - now % SLOT_SECONDS
        if s > self.meter_seen:
            self.meter_pending, self.meter_seen = s, s
        if self.meter_pending is not None:
            self._meter(self.meter_pending, now)
        if self.site.control.enabled and now >= self.next_tick:
            self.next_tick = now - now % self.site.control.tick_s + self.site.control.tick_s
            self._control(now)

    def next_due(self, now: int) -> int:
        """The next simulated time at which ``step`` has something to do [unix s]."""
        due = now - now % self.site.interval_s + self.site.interval_s
        if self.boundary_seen < now - now % self.site.interval_s or self.meter_pending is not None:
            due = now + 1  # retrying a read
        if self.site.control.enabled:
            due = min(due, max(self.next_tick, now + 1))
        return due

    # --- alerts ----------------------------------------------------------------------------

    def alert(self, field: str, reason: str, at: int) -> None:
        self.alerts_raised += 1
        if self.outbox.alert(self.device_id, field, reason, at):
            log.warning("%s: %s: %s", self.device_id, field, reason)

    def _device_failed(self, err: Exception, device: str, at: int) -> None:
        fld = err.field if isinstance(err, CrevError) else f"{device}.connection"
        reason = err.reason if isinstance(err, CrevError) else (str(err) or type(err).__name__)
        self.outbox.bad(device, fld, reason, at)
        self.alert(fld, reason, at)

    def _read_rating(self, now: int) -> bool:
        inv = self.devices.inverter
        try:
            self.rated_w = inv.identity().rated_w
        except (CrevError, OSError) as err:
            self._device_failed(err, inv.name, now)
            return False
        return True

    # --- metering boundary -----------------------------------------------------------------

    def _boundary(self, b: int, now: int) -> None:
        late = now - b
        if late > self.site.max_read_delay_s:
            self.boundary_seen = b
            if self.base is not None or self.signed_end:
                self.alert(f"{self.device_id}.boundary", f"a boundary was read more than "
                                                         f"{self.site.max_read_delay_s} s late (agent down or "
                                                         "stalled): the time up to it is not signed, a register "
                                                         "gap follows", now)
            self.base = None
            return
        inv, gm = self.devices.inverter, self.devices.grid_meter
        try:
            g = inv.status().energy_wh
        except (CrevError, OSError) as err:
            self._device_failed(err, inv.name, now)
            return  # retried at the next step while within max_read_delay_s
        try:
            r = gm.registers()
        except (CrevError, OSError) as err:
            self._device_failed(err, gm.name, now)
            return
        self.outbox.good(inv.name, now)
        self.outbox.good(gm.name, now)
        self.boundary_seen = b
        raw = [g, r.import_wh, r.export_wh]
        base, self.base = self.base, {"at": b, "raw": raw}
        if base is None or base["at"] != b - self.site.interval_s:
            self.outbox.save({"base": self.base})
            return
        try:
            self._sign_reading(b, base["raw"], raw, now)
        except BadValue as err:
            self.alert(err.field, err.reason, now)
            self.outbox.save({"base": self.base})

    def _names(self) -> tuple[str, str, str]:
        return (f"{self.devices.inverter.name}.energy_wh", f"{self.devices.grid_meter.name}.import_wh",
                f"{self.devices.grid_meter.name}.export_wh")

    def _check_step(self, start: list[int], end: list[int], span_s: int, since: str) -> list[int]:
        """The register steps from ``start`` to ``end`` over ``span_s`` seconds, or BadValue."""
        assert self.rated_w is not None
        grid_w = self.site.grid_limit_w or DEFAULT_GRID_LIMIT_W
        limits = (capacity_limit_wh(self.rated_w, span_s, CAPACITY_TOLERANCE_BP),
                  capacity_limit_wh(grid_w, span_s, CAPACITY_TOLERANCE_BP),
                  capacity_limit_wh(grid_w, span_s, CAPACITY_TOLERANCE_BP))
        out = []
        for name, a, z, most in zip(self._names(), start, end, limits, strict=True):
            d = z - a
            if d < 0:
                raise BadValue(name, f"went back from {a} to {z} Wh {since}: nothing signed")
            if d > most:
                raise BadValue(name, f"jumped {d} Wh in {span_s} s {since} (at most {most} Wh possible): "
                                     "nothing signed")
            out.append(d)
        return out

    def _sign_reading(self, b: int, start_raw: list[int], end_raw: list[int], now: int) -> None:
        iv = self.site.interval_s
        start = b - iv
        g, i, e = self._check_step(start_raw, end_raw, iv, "in the interval")
        if self.signed_raw is None:  # the first reading: the DGC registers start at the devices'
            gap = [0, 0, 0]
            self.dgc.generation_register_wh, self.dgc.import_register_wh, self.dgc.export_register_wh = (
                x % REGISTER_MODULUS_WH for x in start_raw)
        elif start == self.signed_end:
            gap = [0, 0, 0]
        else:
            gap = self._check_step(self.signed_raw, start_raw, start - self.signed_end,
                                   "since the last signed reading")
        clamped = 0
        if e > g:  # the grid meter's error: export cannot exceed generation on the ledger
            clamped = e - g
            self.alert(self._names()[2], "export above generation in an interval: clamped to generation", now)
            e = g
        dgc = self.dgc
        dgc.generation_register_wh = (dgc.generation_register_wh + gap[0]) % REGISTER_MODULUS_WH
        dgc.import_register_wh = (dgc.import_register_wh + gap[1]) % REGISTER_MODULUS_WH
        dgc.export_register_wh = (dgc.export_register_wh + gap[2]) % REGISTER_MODULUS_WH
        item = dgc.reading(start, iv, g, i, e)
        summary = {"seq": dgc.seq, "interval_start": start, "interval_s": iv, "generation_wh": g, "import_wh": i,
                   "export_wh": e, "clamped_export_wh": clamped, "gap": start != self.signed_end and
                   self.signed_raw is not None}
        self.signed_end, self.signed_raw = b, end_raw
        self.outbox.put("submit_readings", f"seq {dgc.seq}", item, summary, b, {
            "dgc": {"seq": dgc.seq, "g": dgc.generation_register_wh, "i": dgc.import_register_wh,
                    "e": dgc.export_register_wh},
            "signed_end": b, "signed_raw": end_raw, "base": self.base})

    # --- the smart meter's 30-minute values ------------------------------------------------

    def _meter(self, s: int, now: int) -> None:
        sm = self.devices.smart_meter
        try:
            imp, exp = sm.fixed_values()
            regs = sm.registers()
        except (CrevError, OSError) as err:
            self._device_failed(err, sm.name, now)
            if now - s > self.site.meter_wait_s:
                self.meter_pending = None
                self.alert(f"{sm.name}.EA", f"no fixed value within {self.site.meter_wait_s} s of a slot end: "
                                            "that slot has no smart-meter item", now)
            return
        self.outbox.good(sm.name, now)
        at = min(imp.at, exp.at)
        if at < s:
            if now - s > self.site.meter_wait_s:
                self.meter_pending = None
                self.alert(f"{sm.name}.EA", f"the fixing time stayed before the slot end for "
                                            f"{self.site.meter_wait_s} s: that slot has no smart-meter item", now)
            return  # not fixed yet: asked again at the next step
        self.meter_pending = None
        prev, self.meter_prev = self.meter_prev, {"at": at, "import": imp.wh, "export": exp.wh}
        if at > s or at <= self.meter_done:
            self.outbox.save({"meter_prev": self.meter_prev})
            return
        if prev is not None and prev["at"] == at - SLOT_SECONDS and self.meter_done >= prev["at"]:
            self._sign_meter(prev, self.meter_prev, regs.modulus_wh, regs.resolution_wh, now,
                             {"meter_prev": self.meter_prev, "meter_done": at})
            return
        self._fill_meter(prev, self.meter_prev, regs.modulus_wh, regs.resolution_wh, now)

    def _sign_meter(self, a: dict[str, Any], b: dict[str, Any], modulus_wh: int, resolution_wh: int, now: int,
                    state: dict[str, Any], source: str = "EA/EB") -> bool:
        """Sign the slot from fixed value ``a`` to ``b`` (``{"at", "import", "export"}``, one slot
        apart) into the outbox with ``state``; False (an alert, ``state`` saved) on a jump."""
        sm = self.devices.smart_meter
        self.meter_done = max(self.meter_done, state.get("meter_done", 0))
        di, de = (b["import"] - a["import"]) % modulus_wh, (b["export"] - a["export"]) % modulus_wh
        most = capacity_limit_wh(self.site.grid_limit_w or DEFAULT_GRID_LIMIT_W, SLOT_SECONDS, CAPACITY_TOLERANCE_BP)
        for epc, d in (("EA", di), ("EB", de)) if source == "EA/EB" else (("E2", di), ("E4", de)):
            if d > most:
                self.alert(f"{sm.name}.{epc}", f"jumped {d} Wh in the slot ending {b['at']} (at most {most} Wh): "
                                               "nothing signed", now)
                self.outbox.save(state)
                return False
        slot = b["at"] - SLOT_SECONDS
        payload = meter_values_payload(self.chain_id, self.device_id, slot, di, de, b["import"], b["export"],
                                       resolution_wh, self.site.meter_id)
        item = [*payload, self.key.sign(encode(payload))]
        summary: dict[str, Any] = {"slot_start": slot, "import_wh": di, "export_wh": de}
        if source != "EA/EB":
            summary["from"] = source
        self.outbox.put("submit_meter_values", f"slot {slot}", item, summary, b["at"], state)
        return True

    def _fill_meter(self, prev: dict[str, Any] | None, cur: dict[str, Any], modulus_wh: int, resolution_wh: int,
                    now: int) -> None:
        """The slots since the last settled one (``meter_done``, at most ``METER_HISTORY_S`` back)
        from the meter's 30-minute history (E5/E2/E4), oldest first: a slot is signed only if the
        history (or EA/EB) holds both its ends; nothing is invented. History that disagrees with
        EA/EB, or a meter without history, is an alert, and only what EA/EB give is signed."""
        sm = self.devices.smart_meter
        at, was_done = cur["at"], self.meter_done
        lo = max(self.meter_done, at - METER_HISTORY_S)
        lo -= lo % SLOT_SECONDS
        known: dict[int, tuple[int, int]] = {at: (cur["import"], cur["export"])}
        if prev is not None and prev["at"] >= lo:
            known[prev["at"]] = (prev["import"], prev["export"])
        from_history: set[int] = set()
        try:
            history: dict[int, tuple[int, int]] = {}
            for off in range(_jst_day(at) - _jst_day(lo), -1, -1):  # oldest day first
                imps, exps = sm.history(off)
                ex = {v.at: v.wh for v in exps}
                history.update({v.at: (v.wh, ex[v.at]) for v in imps if v.at in ex and lo <= v.at <= at})
        except (CrevError, OSError) as err:
            self._device_failed(err, sm.name, now)
            history = {}
        for t, v in known.items():
            if t in history and history[t] != v:
                self.alert(f"{sm.name}.E2", f"history says {list(history[t])} Wh at {t}, EA/EB say {list(v)} Wh: "
                                            "the missed slots are not filled", now)
                history = {}
                break
        for t, v in history.items():
            if t not in known:
                known[t] = v
                from_history.add(t)
        ends = [e for e in range(lo + SLOT_SECONDS, at + SLOT_SECONDS, SLOT_SECONDS)
                if e - SLOT_SECONDS in known and e in known]
        missing = (at - lo) // SLOT_SECONDS - len(ends)
        for e in ends:
            state: dict[str, Any] = {"meter_done": e}
            if e == at:
                state["meter_prev"] = cur
            a = {"at": e - SLOT_SECONDS, "import": known[e - SLOT_SECONDS][0], "export": known[e - SLOT_SECONDS][1]}
            b = {"at": e, "import": known[e][0], "export": known[e][1]}
            filled = bool({e - SLOT_SECONDS, e} & from_history)
            self._sign_meter(a, b, modulus_wh, resolution_wh, now, state, "history" if filled else "EA/EB")
        if missing and was_done:  # a gap after signed slots (not a first start): say what is lost
            self.alert(f"{sm.name}.E2", f"{missing} slot(s) before {at} have no fixed values in the meter's "
                                        "history: they have no smart-meter item", now)
        self.meter_done = at
        self.outbox.save({"meter_prev": cur, "meter_done": at})

    # --- control ---------------------------------------------------------------------------

    def margin_w(self) -> int:
        if self.site.control.margin_w is not None:
            return self.site.control.margin_w
        assert self.rated_w is not None
        return max(50, self.rated_w // 100)

    def _control(self, now: int) -> None:
        assert self.rated_w is not None
        ctl = self.site.control
        slot = now - now % SLOT_SECONDS
        d = decide(ctl.policy, self.rated_w, slot, operator_limit_pct(ctl.schedule, slot), self.crev_price_jpy_per_t)
        self.decision = d
        sm, inv = self.devices.smart_meter, self.devices.inverter
        try:
            net = sm.instant_power_w()
        except (CrevError, OSError) as err:
            self._device_failed(err, sm.name, now)
            net = None
        try:
            st = inv.status()
        except (CrevError, OSError) as err:
            self._device_failed(err, inv.name, now)
            return
        if net is None:  # without the grid point's power, hold the cap by the slot decision alone
            want = d.ceiling_w if d.export_cap_w is None else min(st.limit_w, d.ceiling_w)
        else:
            want = loop_limit(net, st.power_w, d.export_cap_w, d.ceiling_w, self.margin_w())
        applied = st.limit_w
        deadband = self.margin_w() // 2
        loosen = want - st.limit_w > deadband or (want == d.ceiling_w and st.limit_w < want - max(1, want // 500))
        if want < st.limit_w or loosen:
            try:
                applied = inv.set_limit_w(want)
            except (CrevError, OSError) as err:
                self._device_failed(err, inv.name, now)
                return
        self.last_limit_w = applied
        if d.reason == self.control_reason and (d.reason == "released" or slot == self.control_slot):
            return
        self.control_seq += 1
        self.control_reason, self.control_slot = d.reason, slot
        p = ctl.policy
        cap = -1 if d.export_cap_w is None else d.export_cap_w  # -1: none (wire format)
        limit_in = -1 if p.export_limit_w is None else p.export_limit_w
        payload = control_payload(self.chain_id, self.device_id, self.control_seq, slot, now, applied, cap, d.reason,
                                  limit_in, p.export_value_milli_jpy_per_kwh, d.crev_price_jpy_per_t,
                                  p.curtail_below_milli_jpy_per_kwh,
                                  -1 if d.operator_limit_pct is None else d.operator_limit_pct,
                                  # a fresh salt per record: its leaf hash on the ledger must not tell
                                  # the owner's prices (docs/wire-format.md, submit_controls); kept in
                                  # the outbox with the item, so a resend is the same item
                                  os.urandom(BLIND_LEN))
        item = [*payload, self.key.sign(encode(payload))]
        self.outbox.put("submit_controls", f"control {self.control_seq}", item,
                        {"seq": self.control_seq, "slot_start": slot, "limit_w": applied, "export_cap_w": cap,
                         "reason": d.reason}, now,
                        {"control": {"seq": self.control_seq, "reason": d.reason, "slot": slot}})


def _jst_day(t: int) -> int:
    return (t + JST_OFFSET_SECONDS) // 86_400


# --- delivery ----------------------------------------------------------------------------------

_INDEXED = re.compile(r"^[a-z_]+\[(\d+)\]")
_TRANSIENT_CODES = {"unavailable", "overloaded", "rate_limited", "shutting_down", "too_many_connections", "timeout"}


def transient_refusal(code: str, reason: str) -> bool:
    """A refusal that may pass later: the ledger busy, or an interval ending after its block time."""
    return code in _TRANSIENT_CODES or (code == "rule_violation" and ("in the future" in reason
                                                                     or "after block time" in reason))


class Sender:
    """Delivers one site's outbox to the ledger's HTTP API (see the module docstring of outbox.py)."""

    def __init__(self, url: str, chain_id: str, outbox: Outbox, cfg: SenderConfig, *,
                 on_alert: Callable[[str, str], None] | None = None,
                 agent: SiteAgent | None = None, client: httpx.Client | None = None,
                 rng: random.Random | None = None, offers: Offerer | None = None) -> None:
        self.url = url.rstrip("/")
        self.chain_id = chain_id
        self.outbox = outbox
        self.cfg = cfg
        self.agent = agent
        self.on_alert = on_alert
        self.client = client or httpx.Client(timeout=cfg.timeout_s)
        self.rng = rng or random.Random()
        self.failures = 0
        self.retry_at = 0.0  # wall time before which nothing is sent
        self.kind_retry_at: dict[str, float] = {}
        self.batch_size = cfg.batch_size
        self.price_at = 0.0
        self.sent = 0  # items settled (accepted or duplicate)
        market = agent.site.market if agent is not None else None
        if offers is None and market is not None:  # the site's asks, signed by its owner's delegate (offers.py)
            offers = Offerer.for_site(market, chain_id, outbox, self.url, self.client, cfg, self._alert)
        self.offers = offers

    def close(self) -> None:
        self.client.close()

    def _alert(self, fld: str, reason: str) -> None:
        at = int(time.time())
        if self.agent is not None:
            self.agent.alert(fld, reason, at)
        else:
            self.outbox.alert(self.outbox.path.stem, fld, reason, at)

    def backoff(self, retry_after: float | None = None) -> float:
        """Wait before the next try: exponential with jitter, capped; at least ``retry_after``."""
        self.failures += 1
        cap = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2.0 ** min(self.failures - 1, 30))
        wait = cap * (0.5 + 0.5 * self.rng.random())
        if retry_after is not None:
            wait = max(wait, retry_after)
        self.retry_at = time.monotonic() + wait
        return wait

    def pump(self) -> float:
        """Send what is due: one batch per kind. Returns wall seconds until it is worth calling again."""
        now = time.monotonic()
        if now < self.retry_at:
            return self.retry_at - now
        self._price(now)
        more = False
        for kind in KINDS:
            if now < self.kind_retry_at.get(kind, 0.0):
                continue
            items = self.outbox.pending(kind, self.batch_size)
            if not items:
                continue
            if not self._send(kind, items):
                return max(0.0, self.retry_at - time.monotonic())
            more = more or len(items) == self.batch_size
        if self.offers is not None:
            self.offers.pump()
        return 0.0 if more else 0.2

    def drain(self, deadline_s: float = 30.0) -> bool:
        """Pump until the outbox is empty or ``deadline_s`` [wall s] passes; True if empty."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self._idle():
                return True
            time.sleep(min(max(self.pump(), 0.0), 0.2))
        return self._idle()

    def _idle(self) -> bool:
        return not any(self.outbox.depth().values()) and (self.offers is None or not self.offers.pending())

    def _post(self, raw: bytes) -> httpx.Response:
        return self.client.post(f"{self.url}/v1/tx", params={"wait": "true", "events": "false"}, content=raw,
                                headers={"Content-Type": "application/cbor"})

    def _send(self, kind: str, items: list[Pending]) -> bool:
        """One batch; False if the ledger could not be reached or asked to wait (backoff set)."""
        raw = encode([TX_VERSION, self.chain_id, kind, "", 0, [p.item for p in items], b""])
        try:
            resp = self._post(raw)
        except httpx.HTTPError as err:  # unreachable, or the receipt lost: the same items go again
            self.outbox.failed(items, f"{type(err).__name__}: {err}")
            self.backoff()
            return False
        try:
            body: Any = resp.json()
        except ValueError:
            body = {}
        if resp.status_code in (429, 503) or resp.status_code >= 500:
            self.outbox.failed(items, f"HTTP {resp.status_code}")
            self.backoff(_retry_after(resp))
            return False
        if resp.status_code == 200 and isinstance(body.get("detail"), list) and len(body["detail"]) == len(items):
            self.failures = 0
            self._settle(kind, items, body["detail"], body)
            return True
        refusal = body.get("error") if isinstance(body, dict) else None
        if not isinstance(refusal, dict):
            self.outbox.failed(items, f"HTTP {resp.status_code} without a receipt")
            self.backoff()
            return False
        self.failures = 0
        self._refused(kind, items, str(refusal.get("code", "")), str(refusal.get("field", "")),
                      str(refusal.get("reason", "")))
        return True

    def _settle(self, kind: str, items: list[Pending], detail: list[Any], body: dict[str, Any]) -> None:
        done: list[tuple[Pending, str]] = []
        later: list[Pending] = []
        lots: list[tuple[str, int]] = []  # issued by these readings: offered before the readings leave
        for p, det in zip(items, detail, strict=True):
            status = det[0] if isinstance(det, list) and det else ""
            if status in ("accepted", "duplicate"):
                done.append((p, status))
                if kind == "submit_readings" and len(det) >= 3 and det[1]:
                    lots.append((str(det[1]), int(det[2])))
            elif status == "refused" and len(det) >= 4:
                code, fld, reason = str(det[1]), _INDEXED.sub("", str(det[2])).lstrip("."), str(det[3])
                if transient_refusal(code, reason):
                    later.append(p)
                else:
                    self._dead(p, code, fld, reason)
            else:
                later.append(p)
        if self.offers is not None:
            self.offers.lots_issued(lots)
        self.outbox.done(done)
        self.sent += len(done)
        n_acc = sum(1 for _, s in done if s == "accepted")
        self.outbox.receipt(kind, str(body.get("tx_hash", "")), int(body.get("height") or 0), n_acc,
                            len(done) - n_acc)
        if later:
            self.outbox.failed(later, "refused for now (retried)")
            self.kind_retry_at[kind] = time.monotonic() + self.cfg.backoff_initial_s * 4

    def _refused(self, kind: str, items: list[Pending], code: str, fld: str, reason: str) -> None:
        """The whole transaction was refused: no item of it is newly accepted."""
        m = _INDEXED.match(fld)
        if code == "malformed" and fld.startswith("tx."):
            # e.g. a ledger that does not know this kind yet: keep the items, try again much later
            self.outbox.failed(items, f"{code}: {fld}: {reason}")
            self._alert(f"ledger.{kind}", f"the ledger refused the batch: {fld}: {reason}")
            self.kind_retry_at[kind] = time.monotonic() + self.cfg.backoff_max_s
        elif code == "malformed" and fld == "body" and len(items) > 1:
            self.batch_size = max(1, len(items) // 2)  # too many for the ledger's batch limit
        elif m is not None:
            i = int(m.group(1))
            # the first refused item is i; the ones before it were duplicates (none was new)
            if i < len(items):
                self.outbox.done([(p, "duplicate") for p in items[:i]])
                self.sent += i
                p = items[i]
                inner = fld[m.end():].lstrip(".")
                if transient_refusal(code, reason):
                    self.outbox.failed([p], f"{code}: {fld}: {reason}")
                    self.kind_retry_at[kind] = time.monotonic() + self.cfg.backoff_initial_s * 4
                else:
                    self._dead(p, code, inner or fld, re.sub(r" \(no \w+ of the \d+ in this batch was accepted\)$", "",
                                                            reason))
        elif code == "conflict":  # all duplicates: "already on the ledger, nothing new"
            self.outbox.done([(p, "duplicate") for p in items])
            self.sent += len(items)
        elif transient_refusal(code, reason):
            self.outbox.failed(items, f"{code}: {fld}: {reason}")
            self.backoff()
        else:
            self.outbox.failed(items, f"{code}: {fld}: {reason}")
            self._alert(f"ledger.{kind}", f"the ledger refused the batch ({code}): {fld}: {reason}")
            self.kind_retry_at[kind] = time.monotonic() + self.cfg.backoff_max_s

    def _dead(self, p: Pending, code: str, fld: str, reason: str) -> None:
        self.outbox.dead(p, code, fld, reason)
        self._alert(f"ledger.{p.kind}", f"{p.ref} refused ({code}) at {fld}: {reason}: moved to dead letters")

    # --- the C-REV price -------------------------------------------------------------------

    def _price(self, now: float) -> None:
        agent = self.agent
        if agent is None or agent.site.control.market_id is None or now < self.price_at:
            return
        self.price_at = now + self.cfg.price_every_s
        price = fetch_crev_price(self.client, self.url, agent.site.control.market_id, agent.site.control.owner_id)
        if price is not None:
            agent.crev_price_jpy_per_t = price
            self.outbox.save({"crev_price": {"price_jpy_per_t": price, "market_id": agent.site.control.market_id}})


def fetch_crev_price(client: httpx.Client, url: str, market_id: str, owner_id: str | None) -> int | None:
    """The site's C-REV price [JPY/t-CO2e]: the price of the owner's latest trade as seller in
    ``market_id``, else the market's last price; None if the ledger does not answer."""
    try:
        if owner_id:
            r = client.get(f"{url}/v1/markets/{market_id}/trades", params={"limit": 100})
            if r.status_code == 200:
                for t in r.json().get("items", []):
                    if t.get("seller") == owner_id:
                        return int(t["price"])
        r = client.get(f"{url}/v1/markets")
        if r.status_code != 200:
            return None
        for m in r.json().get("items", []):
            if m.get("market_id") == market_id:
                return int(m.get("last_price") or 0)
        return 0
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def _retry_after(resp: httpx.Response) -> float | None:
    v = resp.headers.get("Retry-After")
    try:
        return None if v is None else max(0.0, float(v))
    except ValueError:
        return None


# --- the loop ----------------------------------------------------------------------------------


def run_agents(agents: Sequence[SiteAgent], senders: Sequence[Sender], clock: Clock, stop: threading.Event, *,
               until: int | None = None, max_sleep_s: float = 0.5) -> None:
    """Drive ``agents`` on ``clock`` in this thread and ``senders`` on another, until ``stop`` is
    set or the clock reaches ``until`` [unix s]. One site's unexpected failure is an alert, not
    the end of the others."""
    sender_thread = threading.Thread(target=_send_loop, args=(senders, stop), name="dgc-sender", daemon=True)
    sender_thread.start()
    try:
        while not stop.is_set():
            now = clock.now()
            if until is not None and now >= until:
                break
            for a in agents:
                try:
                    a.step(now)
                except Exception as err:  # a bug or a device library's surprise: keep the other sites going
                    log.exception("%s: step failed", a.device_id)
                    a.alert(f"{a.device_id}.agent", f"{type(err).__name__}: {err}", now)
            due = min((a.next_due(now) for a in agents), default=now + 60)
            stop.wait(min(max(clock.wall_until(due), 0.001), max_sleep_s))
    finally:
        stop.set()
        sender_thread.join(10)


def _send_loop(senders: Sequence[Sender], stop: threading.Event) -> None:
    while not stop.is_set():
        wait = 1.0
        for s in senders:
            try:
                wait = min(wait, s.pump())
            except Exception:  # keep delivering for the other sites
                log.exception("sender for %s failed", s.outbox.path)
        stop.wait(max(wait, 0.01))


def status(outbox: Outbox) -> dict[str, Any]:
    """What ``crev dgc status`` shows for one site, as JSON-ready values."""
    st = outbox.state()
    return {
        "device_id": st.get("device_id"), "chain_id": st.get("chain_id"),
        "seq": st.get("dgc", {}).get("seq", 0), "registers": st.get("dgc", {}),
        "last_signed_end": st.get("signed_end", 0), "control": st.get("control", {}),
        "crev_price": st.get("crev_price"),
        "outbox": outbox.depth(), "dead_letters": outbox.dead_letters(), "receipts": outbox.receipts(),
        "health": outbox.health(), "alerts": outbox.alerts(),
        "last_readings": outbox.log("submit_readings", 10), "last_meter_values": outbox.log("submit_meter_values", 5),
        "last_controls": outbox.log("submit_controls", 5),
        "offers": {**st.get("offers", {}), "pending": len(outbox.pending(OFFER, 1_000_000)),
                   "last": outbox.log(OFFER, 10)},
    }


def status_json(outbox: Outbox) -> str:
    return json.dumps(status(outbox), indent=1, sort_keys=True, ensure_ascii=False)
