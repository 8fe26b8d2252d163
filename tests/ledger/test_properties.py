"""Property tests: random sequences of blocks through the real BlockBuilder keep every conserved
quantity, agree with an independent model of who holds which units, and replay to the same state.

Each example registers 1-3 devices, then applies random blocks of

* signed readings (random G/I/E with E ≤ G within capacity, random time and seq gaps with the
  registers advancing through the gap, register rollover near 10**10) and bad ones (duplicate,
  conflicting seq, forged signature, over capacity, register going backwards, timestamp in the
  future, export above generation);
* transfers between sun-co, other-co and buyer-co of random lots and amounts (including too much,
  lots the sender never held, unknown recipients, to oneself);
* retirements; cancellations and top-ups by the operator.

A small model written here (not the ledger's code) predicts each outcome and each lot's unit
segments; after every block the ledger must match it, ``check_invariants`` must pass, no balance
may be negative, each account's balances must equal what the segments say, and the incremental
state root must equal a from-scratch root of every record. At the end the same blocks replayed on
a fresh kit, and a state loaded from the snapshot entries, give the identical state.

Factors (see tests/ledger_kit.py): devices in tokyo issue ⌊self × 450 / 1000⌋ g, the device in
kansai (no area row) falls back to the national average: ⌊self × 400 / 1000⌋ g.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crev.core.encoding import encode
from crev.core.statetree import root_of
from crev.core.units import fiscal_year_bounds
from crev.ledger.apply import BlockBuilder, TxResult
from crev.ledger.genesis import Genesis
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.correct import Correct
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from crev.ledger.snapshot import load_state
from crev.ledger.state import State
from tests.ledger_kit import CHAIN, FACTORS, T0, Kit, key, make_kit

M = 10**10  # register modulus
JST = timezone(timedelta(hours=9))
PARTIES = ("sun-co", "other-co", "buyer-co")
RECIPIENTS = (*PARTIES, "operator", "nobody")
FY_START, FY_END = fiscal_year_bounds(2026)
CANCEL_REASON, CANCEL_REF = "meter fault", "TICKET-7"


@dataclass(frozen=True)
class DevSpec:
    device_id: str
    owner: str
    capacity_w: int
    grid_area: str
    factor: int  # the factor the lookup rule must pick for FY2026 readings
    first_regs: tuple[int, int, int]


DEVICES = (
    # registered by make_kit; the kit's default registers
    DevSpec("dgc-1", "sun-co", 50_000, "tokyo", 450, (1_000_000, 2_000_000, 300_000)),
    # starts 20 kWh below the top of its registers: rolls over within a few readings
    DevSpec("dgc-2", "other-co", 10_000, "tokyo", 450, (M - 20_000, M - 5_000, M - 1_000)),
    # kansai has no factor row: national average 400
    DevSpec("dgc-3", "sun-co", 4_000, "kansai", 400, (0, 0, 0)),
)


def capacity_wh(capacity_w: int, seconds: int) -> int:
    """W × s × 1.05 / 3600, rounded down (the 5 % tolerance of the chain parameters)."""
    return capacity_w * seconds * 10_500 // 36_000_000


def lot_label(ts: int) -> str:
    return datetime.fromtimestamp(ts, JST).strftime("%Y%m%dT%H%M")


# --- the plan (what hypothesis generates) ------------------------------------------------------


class ReadingAct(NamedTuple):
    dev: int
    variant: str
    gap: int  # intervals skipped before this one
    seq_skip: int  # seq numbers skipped
    g_pm: int  # generation in ‰ of the interval's capacity
    i: int  # import [Wh]
    e_pm: int  # export in ‰ of generation
    interval: int
    gap_pm: int  # energy in the gap, ‰ of what the capacity allows
    pick: int  # which earlier reading (dup / conflict)


class TransferAct(NamedTuple):
    sender: int
    recipient: int
    picks: tuple[int, ...]
    pms: tuple[int, ...]
    over: bool  # ask for more than is held in the first lot
    prefer_held: bool


class RetireAct(NamedTuple):
    holder: int
    picks: tuple[int, ...]
    pms: tuple[int, ...]
    over: bool
    prefer_held: bool


class CancelAct(NamedTuple):
    pick: int
    pm: int
    over: bool


class TopupAct(NamedTuple):
    pick: int
    wh: int
    pm: int
    over: bool


class BlockPlan(NamedTuple):
    extra_dt: int
    actions: tuple[Any, ...]


VARIANTS = ("ok",) * 8 + ("dup", "conflict", "bad_sig", "over_capacity", "backwards", "future", "malformed")
small_pm = st.one_of(st.just(0), st.just(1000), st.integers(0, 1000))

reading_acts = st.builds(
    ReadingAct,
    dev=st.integers(0, 2),
    variant=st.sampled_from(VARIANTS),
    gap=st.sampled_from((0, 0, 0, 0, 1, 2, 5)),
    seq_skip=st.sampled_from((0, 0, 0, 0, 0, 1, 3)),
    g_pm=small_pm,
    i=st.one_of(st.just(0), st.integers(0, 40_000)),
    e_pm=small_pm,
    interval=st.sampled_from((1800, 1800, 1800, 900)),
    gap_pm=small_pm,
    pick=st.integers(0, 1000),
)
picks = st.lists(st.integers(0, 1000), min_size=1, max_size=2).map(tuple)
pms = st.lists(st.integers(0, 1000), min_size=2, max_size=2).map(tuple)
rarely = st.sampled_from((False, False, False, False, True))
mostly = st.sampled_from((True, True, True, False))
transfer_acts = st.builds(TransferAct, st.integers(0, 2), st.sampled_from((0, 1, 2, 0, 1, 2, 3, 4)), picks, pms,
                          rarely, mostly)
retire_acts = st.builds(RetireAct, st.integers(0, 2), picks, pms, rarely, mostly)
cancel_acts = st.builds(CancelAct, st.integers(0, 1000), st.integers(0, 1000), rarely)
topup_acts = st.builds(TopupAct, st.integers(0, 1000), st.integers(1, 30_000), st.integers(0, 1000), rarely)
actions = st.one_of(reading_acts, reading_acts, reading_acts, transfer_acts, transfer_acts, transfer_acts,
                    retire_acts, retire_acts, cancel_acts, topup_acts)
blocks = st.builds(BlockPlan, st.sampled_from((0, 0, 0, 600, 3 * 3600)),
                   st.lists(actions, max_size=6).map(tuple))
plans = st.tuples(st.integers(1, 3), st.lists(blocks, min_size=2, max_size=12))


# --- the model ---------------------------------------------------------------------------------

Run = tuple[int, int, str, str, str]  # (start, end, holder, status, ref), like a Segment


@dataclass
class DevModel:
    spec: DevSpec
    last_seq: int = 0
    last_end: int = 0
    regs: tuple[int, int, int] | None = None
    readings: int = 0
    issued_g: int = 0
    accepted: list[tuple[list[Any], str, int, int]] = field(default_factory=list)  # (reading, lot, height, g)
    carry_slot: int = -1  # the slot whose sub-gram remainder carry_mg is
    carry_mg: int = 0

    @property
    def cursor(self) -> int:
        return max(self.last_end, T0)


@dataclass
class LotModel:
    device: str
    issued_to: str
    origin: str
    factor: int
    quantity: int
    runs: list[Run]
    wh: int = 0  # self-consumed Wh it was issued for
    interval_s: int = 1800


def merged(runs: list[Run]) -> list[Run]:
    out: list[Run] = []
    for r in runs:
        if out and out[-1][1] == r[0] and out[-1][2:] == r[2:]:
            out[-1] = (out[-1][0], r[1], *r[2:])
        else:
            out.append(r)
    return out


@dataclass
class Model:
    devices: dict[str, DevModel] = field(default_factory=dict)
    lots: dict[str, LotModel] = field(default_factory=dict)
    nonces: Counter[str] = field(default_factory=Counter)
    next_unit: int = 1
    retirements: dict[str, int] = field(default_factory=dict)

    def held(self, lot_id: str, holder: str | None, status: str = "tradable") -> int:
        return sum(e - s for s, e, h, st_, _ in self.lots[lot_id].runs
                   if st_ == status and (holder is None or h == holder))

    def touches(self, lot_id: str, holder: str) -> bool:
        return any(h == holder for _, _, h, _, _ in self.lots[lot_id].runs)

    def move(self, lot_id: str, holder: str | None, q: int, new_holder: str | None, status: str,
             ref: str) -> None:
        """Move q tradable units, lowest unit ids first."""
        lot = self.lots[lot_id]
        out: list[Run] = []
        left = q
        for s, e, h, st_, r in lot.runs:
            if left and st_ == "tradable" and (holder is None or h == holder):
                take = min(left, e - s)
                out.append((s, s + take, new_holder or h, status, ref))
                if take < e - s:
                    out.append((s + take, e, h, st_, r))
                left -= take
            else:
                out.append((s, e, h, st_, r))
        assert left == 0
        lot.runs = merged(out)

    def issue(self, lot_id: str, dev: DevModel, owner: str, q: int, origin: str, factor: int,
              wh: int, interval_s: int) -> None:
        assert lot_id not in self.lots
        self.lots[lot_id] = LotModel(dev.spec.device_id, owner, origin, factor, q,
                                     [(self.next_unit, self.next_unit + q, owner, "tradable", "")],
                                     wh, interval_s)
        self.next_unit += q
        dev.issued_g += q

    def balances(self, account: str) -> tuple[int, int, int]:
        t = {"tradable": 0, "escrowed": 0, "retired": 0}
        for lot in self.lots.values():
            for s, e, h, st_, _ in lot.runs:
                if h == account and st_ in t:
                    t[st_] += e - s
        return t["tradable"], t["escrowed"], t["retired"]


# --- the scenario runner -----------------------------------------------------------------------


@dataclass
class Expect:
    kind: str
    ok: bool
    code: str = ""
    field: str | None = ""  # None: any field
    detail: Any = None
    readings: list[tuple[Any, ...]] | None = None  # per reading: expected status tuple


@dataclass
class Recorded:
    height: int
    time: int
    raws: list[bytes]
    results: list[bytes]
    block_hash: bytes
    root: bytes


class Scenario:
    def __init__(self, n_devices: int) -> None:
        self.kit: Kit = make_kit()
        self.initial_root = self.kit.root()
        self.model = Model()
        for acct in self.kit.state.accounts.values():
            self.model.nonces[acct.account_id] = acct.nonce
        self.model.devices["dgc-1"] = DevModel(DEVICES[0])
        self.record: list[Recorded] = []
        self.seen: Counter[str] = Counter()
        self.n_devices = n_devices
        if n_devices > 1:
            raws, expects = [], []
            for spec in DEVICES[1:n_devices]:
                msg = RegisterDevice(spec.device_id, spec.owner, key(f"dev/{spec.device_id}").public_key,
                                     spec.capacity_w, T0 - 86_400, 35_000_000, 135_000_000, spec.grid_area,
                                     f"SN-{spec.device_id}", T0 + 5 * 365 * 86_400, False, "solar_pv")
                raws.append(self.signed("operator", msg))
                self.model.nonces["operator"] += 1
                expects.append(Expect("register_device", True, detail=[spec.device_id]))
                self.model.devices[spec.device_id] = DevModel(spec)
            self.apply(raws, expects, self.kit.time + 10)

    # --- building transactions --------------------------------------------------------------

    def signed(self, signer: str, msg: Any) -> bytes:
        return self.kit.tx(signer, msg, nonce=self.model.nonces[signer])

    def build(self, plan: BlockPlan) -> tuple[list[bytes], list[Expect], int]:
        """Raw transactions and expected results for one planned block, updating the model as
        the ledger should. Returns (raws, expectations, block time)."""
        height = self.kit.state.height + 1
        raws: list[bytes] = []
        expects: list[Expect] = []
        batch: list[list[Any]] = []
        batch_expect: list[tuple[Any, ...]] = []
        ends: list[int] = []

        def flush() -> None:
            if batch:
                raws.append(self.kit.submit(*batch))
                if any(e[0] == "accepted" for e in batch_expect):
                    expects.append(Expect("submit_readings", True,
                                          readings=[e[:3] for e in batch_expect]))
                else:  # nothing new: the whole batch is refused, with its first refusal's error
                    bad = [e for e in batch_expect if e[0] == "refused"]
                    if bad:
                        expects.append(Expect("submit_readings", False, bad[0][1], bad[0][2]))
                    else:
                        expects.append(Expect("submit_readings", False, "conflict", "readings"))
                    self.seen["readings:batch_refused"] += 1
                batch.clear()
                batch_expect.clear()

        for act in plan.actions:
            if isinstance(act, ReadingAct):
                if act.dev >= self.n_devices:
                    act = act._replace(dev=act.dev % self.n_devices)
                reading, expect = self.reading(act, height, ends, len(batch))
                batch.append(reading)
                batch_expect.append(expect)
                continue
            flush()
            made_tx = self.holdings(act)
            if made_tx is not None:
                raws.append(made_tx[0])
                expects.append(made_tx[1])
        flush()
        block_time = max([self.kit.time + 10 + plan.extra_dt, *ends])
        return raws, expects, block_time

    def reading(self, act: ReadingAct, height: int, ends: list[int],
                index: int) -> tuple[list[Any], tuple[Any, ...]]:
        kit, dev = self.kit, self.model.devices[DEVICES[act.dev].device_id]
        spec = dev.spec
        dev_id = spec.device_id
        variant = act.variant
        if variant in ("dup", "conflict") and not dev.accepted:
            variant = "ok"
        if variant == "backwards" and dev.regs is None:
            variant = "ok"  # the first reading has nothing to go backwards from
        where = f"readings[{index}]"
        if variant == "dup":
            reading, lot_id, _h, q = dev.accepted[act.pick % len(dev.accepted)]
            self.seen["reading:duplicate"] += 1
            return list(reading), ("duplicate", lot_id, q)  # its first lot again, nothing new
        if variant == "conflict":
            old = dev.accepted[act.pick % len(dev.accepted)][0]
            # same device and seq, different generation (registers unchanged): a different reading
            seq, start, interval = old[3], old[4], old[5]
            reading = kit.reading(start, old[6] + 1, old[7], old[8], device=dev_id, interval_s=interval,
                                  seq=seq, regs=(old[9], old[10], old[11]))
            self.seen["reading:conflict"] += 1
            return reading, ("refused", "conflict", f"{where}.seq")

        interval = act.interval
        start = dev.cursor + act.gap * interval
        if variant == "future":
            horizon = max([self.kit.time, *(d.cursor for d in self.model.devices.values())]) + 2 * 86_400
            start = horizon
        start += -start % interval
        end = start + interval
        limit = capacity_wh(spec.capacity_w, interval)
        g = limit * act.g_pm // 1000
        if variant == "over_capacity":
            g = limit + 1 + act.g_pm % 50
        e = g * act.e_pm // 1000
        i = act.i
        if variant == "malformed":
            e = g + 1  # export above generation: refused before anything is looked up
        seq = dev.last_seq + 1 + act.seq_skip
        gx = ix = ex = 0
        contiguous = seq == dev.last_seq + 1 and start == dev.last_end
        if dev.regs is not None and not contiguous:
            gx = capacity_wh(spec.capacity_w, start - dev.last_end) * act.gap_pm // 1000
            ix = act.gap_pm * 7
            ex = gx // 3
        base = dev.regs if dev.regs is not None else spec.first_regs
        regs = ((base[0] + gx + g) % M, (base[1] + ix + i) % M, (base[2] + ex + e) % M)
        if variant == "backwards":
            assert dev.regs is not None
            regs = ((dev.regs[0] - 1 - act.g_pm) % M, regs[1], regs[2])
        signer = key("dev/intruder") if variant == "bad_sig" else None
        reading = kit.reading(start, g, i, e, device=dev_id, interval_s=interval, seq=seq, regs=regs,
                              signer=signer)
        if variant != "future":
            ends.append(end)
        self.seen[f"reading:{variant}"] += 1
        if variant == "malformed":  # refused on its own by its shape; the rest of the batch goes on
            return reading, ("refused", "malformed", f"{where}.export_wh")
        if variant == "bad_sig":
            return reading, ("refused", "bad_signature", f"{where}.signature")
        if variant == "over_capacity":
            return reading, ("refused", "rule_violation", f"{where}.generation_wh")
        if variant == "future":
            return reading, ("refused", "rule_violation", f"{where}.interval_start")
        if variant == "backwards":
            return reading, ("refused", "rule_violation", None)
        # accepted
        # sub-gram remainders carry to the next reading of the same slot
        slot = start // 1800
        mg = (g - e) * spec.factor + (dev.carry_mg if dev.carry_slot == slot and g > e else 0)
        q = mg // 1000
        if g > e:
            dev.carry_slot, dev.carry_mg = slot, mg % 1000
        lot_id = f"{dev_id}:{lot_label(start)}" if q > 0 else ""
        if q > 0:
            self.model.issue(lot_id, dev, spec.owner, q, "reading", spec.factor, g - e, interval)
            self.seen["lot:issued"] += 1
        if dev.regs is not None and not contiguous:
            self.seen["reading:gap"] += 1
        if dev.regs is not None and any(regs[k] < dev.regs[k] for k in range(3)):
            self.seen["reading:rollover"] += 1
        dev.last_seq, dev.last_end, dev.regs = seq, end, regs
        dev.readings += 1
        dev.accepted.append((reading, lot_id, height, q))
        return reading, ("accepted", lot_id, q)

    def choose_lots(self, holder: str | None, pick_list: tuple[int, ...], prefer_held: bool) -> list[str]:
        lots = list(self.model.lots)
        if prefer_held and holder is not None:
            held = [lot for lot in lots if self.model.held(lot, holder) > 0]
            lots = held or lots
        chosen: list[str] = []
        for p in pick_list:
            if lots and lots[p % len(lots)] not in chosen:
                chosen.append(lots[p % len(lots)])
        return chosen

    def amounts(self, holder: str | None, lots: list[str], pm_list: tuple[int, ...], over: bool) -> list[int]:
        out = []
        for n, lot in enumerate(lots):
            have = self.model.held(lot, holder)
            out.append(have + 1 + pm_list[n] % 7 if over and n == 0 else max(1, have * pm_list[n] // 1000))
        return out

    def check_items(self, holder: str, items: list[tuple[str, int]]) -> tuple[str, str] | None:
        """The first refusal check_holdings would give, or None."""
        for n, (lot, q) in enumerate(items):
            have = self.model.held(lot, holder)
            if have == 0 and not self.model.touches(lot, holder):
                return "forbidden", f"body.items[{n}].lot_id"
            if q > have:
                return "rule_violation", f"body.items[{n}].quantity_g"
        return None

    def holdings(self, act: Any) -> tuple[bytes, Expect] | None:
        m = self.model
        if isinstance(act, TransferAct):
            sender, recipient = PARTIES[act.sender], RECIPIENTS[act.recipient]
            lots = self.choose_lots(sender, act.picks, act.prefer_held)
            if not lots:
                return None
            items = list(zip(lots, self.amounts(sender, lots, act.pms, act.over), strict=True))
            raw = self.signed(sender, Transfer(recipient, tuple(items), "property test"))
            if recipient == "nobody":
                refusal: tuple[str, str] | None = ("not_found", "body.recipient")
            elif recipient == sender:
                refusal = ("rule_violation", "body.recipient")
            else:
                refusal = self.check_items(sender, items)
            if refusal:
                self.seen[f"transfer:{refusal[0]}"] += 1
                return raw, Expect("transfer", False, *refusal)
            for lot, q in items:
                m.move(lot, sender, q, recipient, "tradable", "")
            m.nonces[sender] += 1
            self.seen["transfer:ok"] += 1
            return raw, Expect("transfer", True, detail=[sum(q for _, q in items)])
        if isinstance(act, RetireAct):
            holder = PARTIES[act.holder]
            lots = self.choose_lots(holder, act.picks, act.prefer_held)
            if not lots:
                return None
            items = list(zip(lots, self.amounts(holder, lots, act.pms, act.over), strict=True))
            raw = self.signed(holder, Retire(tuple(items), "Buyer Co FY2026 report", "voluntary",
                                             FY_START, FY_END, "JP", ""))
            refusal = self.check_items(holder, items)
            if refusal:
                self.seen[f"retire:{refusal[0]}"] += 1
                return raw, Expect("retire", False, *refusal)
            rid = f"ret-{len(m.retirements) + 1:08d}"
            total = sum(q for _, q in items)
            for lot, q in items:
                m.move(lot, holder, q, None, "retired", rid)
            m.retirements[rid] = total
            m.nonces[holder] += 1
            self.seen["retire:ok"] += 1
            return raw, Expect("retire", True, detail=[rid, total])
        if isinstance(act, CancelAct):
            lots = self.choose_lots(None, (act.pick,), False)
            if not lots:
                return None
            lot = lots[0]
            # whoever holds the lot's lowest tradable units (else its first holder)
            holder = next((h for _, _, h, st_, _ in m.lots[lot].runs if st_ == "tradable"),
                          m.lots[lot].issued_to)
            q = self.amounts(holder, lots, (act.pm, 0), act.over)[0]
            raw = self.signed("operator", Correct("cancel", lot, q, 0, CANCEL_REASON, CANCEL_REF, holder))
            if q > m.held(lot, holder):
                self.seen["cancel:refused"] += 1
                return raw, Expect("correct", False, "rule_violation", "body.quantity_g")
            m.move(lot, holder, q, None, "cancelled", f"{CANCEL_REASON} [{CANCEL_REF}]")
            m.nonces["operator"] += 1
            self.seen["cancel:ok"] += 1
            return raw, Expect("correct", True, detail=[lot, q])
        if isinstance(act, TopupAct):
            lots = self.choose_lots(None, (act.pick,), False)
            if not lots:
                return None
            lot_id = lots[0]
            lot = m.lots[lot_id]
            limit = act.wh * lot.factor // 1000
            q = limit + 1 + act.pm % 5 if act.over else max(1, limit * act.pm // 1000)
            raw = self.signed("operator", Correct("topup", lot_id, q, act.wh, "smart meter reconciliation",
                                                  "STATEMENT-2026-06"))
            if lot.origin != "reading":
                self.seen["topup:of_topup"] += 1
                return raw, Expect("correct", False, "rule_violation", "body.lot_id")
            if q > limit:
                self.seen["topup:too_much"] += 1
                return raw, Expect("correct", False, "rule_violation", "body.quantity_g")
            n, wh = 1, lot.wh + act.wh
            while f"{lot_id}+{n}" in m.lots:
                wh += m.lots[f"{lot_id}+{n}"].wh
                n += 1
            dev = m.devices[lot.device]
            if wh > capacity_wh(dev.spec.capacity_w, lot.interval_s):
                self.seen["topup:over_capacity"] += 1
                return raw, Expect("correct", False, "rule_violation", "body.self_consumed_wh")
            m.issue(f"{lot_id}+{n}", dev, lot.issued_to, q, "topup", lot.factor, act.wh, lot.interval_s)
            m.nonces["operator"] += 1
            self.seen["topup:ok"] += 1
            return raw, Expect("correct", True, detail=[f"{lot_id}+{n}", q])
        raise AssertionError(act)

    # --- applying and checking ---------------------------------------------------------------

    def apply(self, raws: list[bytes], expects: list[Expect], block_time: int) -> list[TxResult]:
        kit = self.kit
        results = kit.block(*raws, dt=block_time - kit.time)
        self.record.append(Recorded(kit.state.height, kit.time, list(raws),
                                    [encode(r.to_value()) for r in results], kit.state.last_block_hash,
                                    kit.root()))
        check_results(results, expects)
        self.check_state()
        return results

    def run(self, plan: BlockPlan) -> None:
        raws, expects, block_time = self.build(plan)
        self.apply(raws, expects, block_time)

    def check_state(self) -> None:
        st_ = self.kit.state
        check_invariants(st_)
        check_independently(st_)
        # every changed record was folded into the tree: the incremental root equals a fresh one
        assert st_.tree.root() == root_of([(k, v) for k in st_.all_keys() if (v := st_.value_of(k)) is not None],
                                          st_.params.state_tree_depth)
        self.check_model()

    def check_model(self) -> None:
        st_, m = self.kit.state, self.model
        assert set(st_.lots) == set(m.lots)
        for lot_id, lm in m.lots.items():
            lot = st_.lots[lot_id]
            assert [tuple(s.to_value()) for s in lot.segments] == lm.runs, lot_id
            assert (lot.quantity_g, lot.issued_to, lot.origin, lot.factor_g_per_kwh, lot.device_id) == (
                lm.quantity, lm.issued_to, lm.origin, lm.factor, lm.device), lot_id
        for acct in st_.accounts.values():
            assert (acct.tradable_g, acct.escrowed_g, acct.retired_g) == m.balances(acct.account_id)
            assert acct.nonce == m.nonces[acct.account_id], acct.account_id
        issued = sum(lm.quantity for lm in m.lots.values())
        statuses = Counter[str]()
        for lm in m.lots.values():
            for s, e, _, status, _ in lm.runs:
                statuses[status] += e - s
        sup = st_.supply
        assert sup.to_value() == [m.next_unit, issued, statuses["tradable"], 0, statuses["retired"],
                                  statuses["cancelled"], len(m.retirements), 0, 0, 0]
        assert {rid: r.quantity_g for rid, r in st_.retirements.items()} == m.retirements
        for dev_id, dm in m.devices.items():
            d = st_.devices[dev_id]
            regs = dm.regs if dm.regs is not None else (-1, -1, -1)
            assert (d.last_seq, d.last_interval_end, d.readings, d.issued_g) == (
                dm.last_seq, dm.last_end, dm.readings, dm.issued_g), dev_id
            assert (d.generation_register_wh, d.import_register_wh, d.export_register_wh) == regs, dev_id
            assert d.issued_g == sum(lm.quantity for lm in m.lots.values() if lm.device == dev_id)
            assert (d.carry_slot, d.carry_mg) == (dm.carry_slot, dm.carry_mg), dev_id


def check_results(results: list[TxResult], expects: list[Expect]) -> None:
    assert len(results) == len(expects)
    for n, (res, exp) in enumerate(zip(results, expects, strict=True)):
        got = (res.kind, res.ok, res.error and res.error.code, res.error and res.error.field)
        assert res.ok == exp.ok, (n, got, exp)
        if not exp.ok:
            assert res.error is not None
            assert res.error.code == exp.code, (n, got, exp)
            assert exp.field is None or res.error.field == exp.field, (n, got, exp)
            continue
        assert res.kind == exp.kind, (n, got, exp)
        if exp.readings is None:
            assert res.detail == exp.detail, (n, res.detail, exp)
            continue
        assert len(res.detail) == len(exp.readings)
        for got_r, exp_r in zip(res.detail, exp.readings, strict=True):
            if exp_r[0] == "refused":
                assert got_r[:2] == list(exp_r[:2]), (got_r, exp_r)
                assert exp_r[2] is None or got_r[2] == exp_r[2], (got_r, exp_r)
            else:
                assert got_r == list(exp_r), (got_r, exp_r)


def check_independently(state: State) -> None:
    """The conservation rules, recomputed here from the lots (not via check_invariants)."""
    per_acct: Counter[tuple[str, str]] = Counter()
    per_status: Counter[str] = Counter()
    for lot in state.lots.values():
        lot_status: Counter[str] = Counter()
        pos = lot.first_unit
        for s in lot.segments:
            assert s.start == pos and s.end > s.start, lot.lot_id
            pos = s.end
            lot_status[s.status] += s.end - s.start
            per_acct[(s.holder, s.status)] += s.end - s.start
        assert pos == lot.first_unit + lot.quantity_g, lot.lot_id
        # per lot: tradable + escrowed + retired + cancelled = issued
        assert sum(lot_status.values()) == lot.quantity_g, lot.lot_id
        per_status.update(lot_status)
    sup = state.supply
    assert sup.tradable_g + sup.escrowed_g + sup.retired_g + sup.cancelled_g == sup.issued_g
    assert (sup.tradable_g, sup.escrowed_g, sup.retired_g, sup.cancelled_g) == (
        per_status["tradable"], per_status["escrowed"], per_status["retired"], per_status["cancelled"])
    assert sup.issued_g == sum(lot.quantity_g for lot in state.lots.values())
    for acct in state.accounts.values():
        for status in ("tradable", "escrowed", "retired"):
            have = getattr(acct, f"{status}_g")
            assert have >= 0, (acct.account_id, status, have)
            assert have == per_acct[(acct.account_id, status)], (acct.account_id, status)


def genesis() -> Genesis:
    """The genesis make_kit builds (same arguments)."""
    return Genesis(CHAIN, T0 - 86_400, "operator", "Test Operator", key("operator").public_key,
                   key("sequencer").public_key, emission_factors=FACTORS)


def replay(sc: Scenario) -> State:
    """A fresh kit from the same genesis, then the very same blocks at the same heights and times."""
    fresh = make_kit()
    assert fresh.root() == sc.initial_root
    for rec in sc.record:
        b = BlockBuilder(fresh.state, rec.height, rec.time)
        results = [b.add(raw) for raw in rec.raws]
        b.finish()
        assert [encode(r.to_value()) for r in results] == rec.results, rec.height
        assert fresh.state.tree.root() == rec.root, rec.height
        assert fresh.state.last_block_hash == rec.block_hash, rec.height
    return fresh.state


def snapshot_of(state: State) -> State:
    items = [(k, v) for k in state.all_keys() if (v := state.value_of(k)) is not None]
    g = genesis()
    assert g.hash == state.genesis_hash
    return load_state(g, items, state.height, state.last_block_hash, state.last_time)


def run_plan(n_devices: int, plan: list[BlockPlan]) -> Scenario:
    sc = Scenario(n_devices)
    for bp in plan:
        sc.run(bp)
    # replaying the recorded blocks from genesis gives the identical state and results
    replayed = replay(sc)
    st_ = sc.kit.state
    assert replayed.tree.root() == st_.tree.root()
    assert replayed.all_keys() == st_.all_keys()
    # so does a state loaded from the snapshot entries ...
    loaded = snapshot_of(st_)
    assert loaded.tree.root() == st_.tree.root()
    assert sorted(loaded.all_keys()) == sorted(st_.all_keys())
    for k in st_.all_keys():
        assert loaded.value_of(k) == st_.value_of(k), k
    check_invariants(loaded)
    # ... which then applies the next block exactly as the live state does
    readings = [ReadingAct(d, "ok", 0, 0, 700, 1_000, 200, 1800, 0, 0) for d in range(n_devices)]
    follow = BlockPlan(600, (*readings, TransferAct(0, 2, (0,), (500, 500), False, True)))
    raws, expects, block_time = sc.build(follow)
    b = BlockBuilder(loaded, loaded.height + 1, block_time)
    loaded_results = [encode(b.add(raw).to_value()) for raw in raws]
    b.finish()
    live_results = sc.apply(raws, expects, block_time)
    assert loaded_results == [encode(r.to_value()) for r in live_results]
    assert loaded.tree.root() == st_.tree.root()
    assert loaded.last_block_hash == st_.last_block_hash
    return sc


# --- the tests ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plans)
def test_random_blocks_conserve_supply_match_the_model_and_replay_identically(
    plan: tuple[int, list[BlockPlan]],
) -> None:
    run_plan(plan[0], plan[1])


R = ReadingAct


def test_hand_written_plan_covers_every_action_and_outcome() -> None:
    """A fixed plan through the same runner, so each kind of step is known to be exercised."""
    noon = ReadingAct(0, "ok", 24, 0, 800, 0, 250, 1800, 0, 0)  # dgc-1 at 12:00 JST: G 21,000, E 5,250
    plan = [
        BlockPlan(0, (noon, R(1, "ok", 24, 0, 900, 500, 100, 1800, 0, 0), R(2, "ok", 24, 0, 1000, 0, 0, 900, 0, 0))),
        BlockPlan(0, (
            R(0, "ok", 0, 0, 500, 2_000, 0, 1800, 0, 0),  # contiguous
            R(1, "ok", 2, 1, 600, 0, 500, 1800, 800, 0),  # time and seq gap, registers roll over
            R(0, "dup", 0, 0, 0, 0, 0, 1800, 0, 0),
            R(0, "conflict", 0, 0, 0, 0, 0, 1800, 0, 1),
            R(0, "bad_sig", 0, 0, 500, 0, 0, 1800, 0, 0),
            R(0, "over_capacity", 0, 0, 10, 0, 0, 1800, 0, 0),
            R(0, "backwards", 0, 0, 10, 0, 0, 1800, 0, 0),
            R(0, "future", 0, 0, 500, 0, 0, 1800, 0, 0),
            R(0, "malformed", 0, 0, 500, 0, 0, 1800, 0, 0),
        )),
        BlockPlan(0, (R(0, "bad_sig", 0, 0, 500, 0, 0, 1800, 0, 0), R(0, "dup", 0, 0, 0, 0, 0, 1800, 0, 0))),
        BlockPlan(0, (R(0, "dup", 0, 0, 0, 0, 0, 1800, 0, 0),)),  # nothing new: refused whole
        BlockPlan(600, (
            TransferAct(0, 2, (0, 1), (500, 1000), False, True),  # sun-co → buyer-co, two lots
            TransferAct(1, 2, (0,), (1000, 0), True, True),  # other-co: more than it holds
            TransferAct(2, 4, (0,), (100, 0), False, True),  # to nobody
            TransferAct(2, 2, (0,), (100, 0), False, True),  # to itself
            TransferAct(2, 0, (0,), (200, 0), False, True),  # buyer-co → sun-co (merges back)
        )),
        BlockPlan(0, (
            RetireAct(2, (0,), (500, 0), False, True),
            RetireAct(2, (0,), (0, 0), True, True),
            CancelAct(0, 300, False),
            CancelAct(0, 0, True),
            TopupAct(0, 2_000, 1000, False),
            TopupAct(0, 2_000, 0, True),
            TopupAct(0, 30_000, 0, False),  # more than the device can generate in the interval
        )),
        BlockPlan(0, (TopupAct(1_000, 100, 500, False), TransferAct(2, 1, (3,), (999, 0), False, False))),
    ]
    sc = run_plan(3, plan)
    for outcome in ("reading:ok", "reading:duplicate", "reading:conflict", "reading:bad_sig",
                    "reading:over_capacity", "reading:backwards", "reading:future", "reading:malformed",
                    "reading:gap", "reading:rollover", "lot:issued", "transfer:ok", "transfer:rule_violation",
                    "transfer:not_found", "retire:ok", "retire:rule_violation", "cancel:ok", "cancel:refused",
                    "topup:ok", "topup:too_much", "topup:over_capacity", "readings:batch_refused"):
        assert sc.seen[outcome] > 0, (outcome, sc.seen)
    st_ = sc.kit.state
    assert st_.supply.retired_g > 0
    assert st_.supply.cancelled_g > 0
    assert st_.accounts["buyer-co"].tradable_g > 0
    # G 21,000, E 5,250 → 15,750 Wh self-consumed × 450 g/kWh = 7,087.5 → 7,087 g
    assert st_.lots["dgc-1:20260601T1200"].quantity_g == 7_087
