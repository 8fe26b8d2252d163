"""Consumer figures for a participant: per site and slot, per JST day, and fiscal year to date,
computed from the indexed readings and the current holdings (core/figures.py has the rules).

**Whose readings.** A site's readings count for whoever owned the device when each was accepted
(``ReadingAccepted.owner``, indexed as ``ix_readings.owner``), never its current owner: when a
device changes hands, the slots before the change stay in the earlier owner's report and the
later ones go to the new owner's.

**Which factor for which method** (GHG Protocol Scope 2; docs/emission-factors.md):

* *Location-based* = the average emission intensity of the grid the site draws from, with no
  contractual instruments. Of the table's kinds that is the site's grid area ``basic`` factor
  (基礎排出係数 of the area's incumbent), not ``adjusted``, which adds credits and certificates
  (a market instrument). Where the table has no basic row for the area it falls back, as
  ``FactorTable.lookup`` does, to the national average (全国平均係数). Caveat: since results
  year FY2023 the basic factor is published per menu and reflects non-fossil certificates, and
  the table holds the incumbent's residual menu, so it is the best grid-area proxy available, not
  a pure physical average.
* *Market-based* = the factor of the supply contract: the one issuance uses
  (``params.issuance_factor_kind``, by default the residual menu's ``adjusted`` factor), so
  the C-REV subtracted for the solar a participant claims is counted with the same factor as the
  grid power it displaces.

The factor rows actually used are listed per site (``location_factors``, ``market_factors``).

**Provisional or final.** Per site and slot, the C-REV the slot stands at (its slot tally's issued
− withdrawn: what the smart meter's reconciliation left, whoever holds it now) is split by the
slot's finality at the report's time (``now``, the head block's): final (reconciled, or past the
finality window), corrected and late count as final; provisional is not yet. The slots the smart
meter corrected are listed, and each site's device alerts: its reconciliation debt (``debt_g``
still to repay, ``debt_repaid_g``) and calibration drift (``drift_slots`` consecutive slots out of
tolerance, + above the smart meter / − below; ``drift_alerts`` raised so far).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crev.core.encoding import encode
from crev.core.factors import FactorRow
from crev.core.figures import Figures, claimed_wh_of, slot_figures, total
from crev.core.units import SLOT_SECONDS, fiscal_year, fiscal_year_bounds, jst_date
from crev.errors import NotFoundError
from crev.ledger.issuance import fiscal_year_cached
from crev.ledger.reconcile import slot_finality
from crev.ledger.records import CANCELLED, CORRECTED, LATE, PROVISIONAL, Device, Lot
from crev.ledger.snapshot import map_key
from crev.ledger.state import State
from crev.node.lazystate import checkpoint_of, read_ahead
from crev.node.store import SMALL_KINDS, Store

LOCATION_BASED_KIND = "basic"  # the grid area's average; lookup falls back to the national average


def _ref(row: FactorRow) -> str:
    return f"{row.key}/{row.fiscal_year}/{row.kind}"


@dataclass
class SiteReport:
    device_id: str
    grid_area: str
    rated_capacity_w: int
    slots: dict[int, Figures] = field(default_factory=dict)
    location_factors: dict[str, int] = field(default_factory=dict)  # factor ref → g-CO2e/kWh
    market_factors: dict[str, int] = field(default_factory=dict)
    finality: dict[int, str] = field(default_factory=dict)  # slot → provisional, final, corrected or late
    stands_g: dict[int, int] = field(default_factory=dict)  # slot → C-REV it stands at (issued − withdrawn)
    debt_g: int = 0  # the device's alerts at the report's time
    debt_repaid_g: int = 0
    drift_slots: int = 0
    drift_alerts: int = 0

    def crev_g(self, final: bool, start: int = 0, end: int = 2**62) -> int:
        """C-REV [g] of the site's slots in [start, end) [unix s] that are final (or provisional)."""
        return sum(g for s, g in self.stands_g.items()
                   if start <= s * SLOT_SECONDS < end and (self.finality[s] != PROVISIONAL) == final)

    def slots_with(self, status: str) -> list[int]:
        return sorted(s for s, f in self.finality.items() if f == status)

    @property
    def alerts(self) -> list[str]:
        """The device's alerts in words ([] when none)."""
        out = []
        if self.drift_slots:
            way = "above" if self.drift_slots > 0 else "below"
            out.append(f"calibration drift: {abs(self.drift_slots)} consecutive slot"
                       f"{'s' if abs(self.drift_slots) != 1 else ''} out of tolerance, the DGC {way} the smart "
                       f"meter ({self.drift_alerts} alert{'s' if self.drift_alerts != 1 else ''} so far)")
        elif self.drift_alerts:
            out.append(f"calibration drift: {self.drift_alerts} alert{'s' if self.drift_alerts != 1 else ''} "
                       f"so far (now within tolerance)")
        if self.debt_g:
            out.append(f"reconciliation debt: {self.debt_g:,} g to repay from the next issuance "
                       f"({self.debt_repaid_g:,} g repaid so far)")
        return out


@dataclass
class ParticipantReport:
    account_id: str
    name: str
    role: str
    sites: list[SiteReport]
    slots: dict[int, Figures]  # the participant's own sites plus C-REV bought, per slot
    bought_g: int

    def total(self, start: int = 0, end: int = 2**62) -> Figures:
        return total(f for s, f in self.slots.items() if start <= s * SLOT_SECONDS < end)

    def by_day(self) -> dict[str, Figures]:
        days: dict[str, list[Figures]] = defaultdict(list)
        for s, f in sorted(self.slots.items()):
            days[jst_date(s * SLOT_SECONDS)].append(f)
        return {d: total(fs) for d, fs in days.items()}

    def crev_g(self, final: bool, start: int = 0, end: int = 2**62) -> int:
        """C-REV [g] of the participant's sites' slots in [start, end) that are final (or provisional)."""
        return sum(site.crev_g(final, start, end) for site in self.sites)

    def fiscal_year_to_date(self, now: int) -> Figures:
        start, _ = fiscal_year_bounds(fiscal_year(now))
        return self.total(start, now + 1)


def lots_ever_held(store: Store, account_id: str, device_id: str | None = None) -> set[str]:
    """Every lot ``account_id`` ever held units of (of one device's, with ``device_id``): issued to
    it, or received by transfer or trade (the only ways units reach an account; retired units were
    held first). Index lookups, so a report costs what the account touched, not the whole ledger."""
    if device_id is None:
        rows = store.db.execute("SELECT lot_id FROM ix_lots WHERE owner = ? UNION SELECT lot_id FROM ix_moves "
                                "WHERE counterparty = ? AND kind IN ('transfer', 'trade')", (account_id, account_id))
    else:
        rows = store.db.execute(
            "SELECT lot_id FROM ix_lots WHERE owner = ? AND device_id = ? UNION SELECT m.lot_id FROM ix_moves m "
            "JOIN ix_lots l ON l.lot_id = m.lot_id WHERE m.counterparty = ? AND m.kind IN ('transfer', 'trade') "
            "AND l.device_id = ?", (account_id, device_id, account_id, device_id))
    return {str(r[0]) for r in rows}


def claims_by_slot(state: State, account_id: str, store: Store | None = None,
                   device_id: str | None = None) -> dict[tuple[str, int], tuple[int, int]]:
    """(device_id, slot_id) → (claimed g, claimed Wh) for the units ``account_id`` holds or retired.
    With ``store``, only the lots the account ever held are looked at (``lots_ever_held``; of
    ``device_id`` only, if given)."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    if store is None:
        lots: Iterable[Lot] = state.lots.values()
    else:
        ids = sorted(lots_ever_held(store, account_id, device_id))
        read_ahead(state, "l", ids)
        lots = (state.lots[i] for i in ids if i in state.lots)
    for lot in lots:
        g = sum(s.end - s.start for s in lot.segments if s.holder == account_id and s.status != CANCELLED)
        if g:
            key = (lot.device_id, lot.slot_id)
            pg, pw = out.get(key, (0, 0))
            out[key] = (pg + g, pw + claimed_wh_of(g, lot.quantity_g, lot.self_consumed_wh))
    return out


def sites_of(state: State, store: Store, account_id: str) -> set[str]:
    """The devices whose sites ``account_id``'s report covers: the ones it owns now and the ones
    whose readings were accepted while it owned them (``ix_readings.owner``, by index).

    On a lazily read state (a ``LedgerView``: ``crev report``) listing ``state.devices`` reads the
    bucket of every device in the fleet (10,000 bucket reads, ~1 s at 10M readings), so the
    devices owned now are looked for among those already in memory (held, or changed by the blocks
    after the checkpoint) and among the checkpoint's devices of that owner by ``ix_devices``
    (in a file from before that index, among the device rows whose bytes hold the account's
    encoded id: a superset found without decoding a record, but 10,000 random reads of a cold
    file, 1.5 s at 10M readings); each candidate is then read through the state, checked against
    the signed root, and kept only if the account owns it."""
    ids = {str(r[0]) for r in store.db.execute(
        "SELECT DISTINCT device_id FROM ix_readings WHERE owner = ?", (account_id,))}
    devices = state.devices
    if checkpoint_of(state) is None:  # held whole in memory: listing it costs nothing
        return ids | {d.device_id for d in devices.values() if d.owner == account_id}
    held: Iterable[Device] = dict.values(devices)  # what is in memory, without fetching the rest
    candidates = {d.device_id for d in held if d.owner == account_id}
    if store.has_device_index:
        candidates |= {str(r[0]) for r in store.db.execute(
            "SELECT device_id FROM ix_devices WHERE owner = ?", (account_id,))}
    else:
        needle = encode(account_id)
        candidates |= {str(map_key("d", key[2:])) for key, value in store.db.execute(
            f"SELECT key, value FROM state WHERE key >= 'd/' AND key < 'd0' AND {SMALL_KINDS}") if needle in value}
    for device_id in candidates - ids:
        dev = devices.get(device_id)
        if dev is not None and dev.owner == account_id:
            ids.add(device_id)
    return ids


def participant_report(state: State, store: Store, account_id: str, only_site: str | None = None) -> ParticipantReport:
    """The participant's figures; with ``only_site``, only that site's readings (and no C-REV bought
    from elsewhere), at the cost of that one site."""
    acct = state.accounts.get(account_id)
    if acct is None:
        raise NotFoundError("participant", f"no participant {account_id!r}")
    claims = claims_by_slot(state, account_id, store, only_site)
    sites: list[SiteReport] = []
    per_slot: dict[int, list[Figures]] = defaultdict(list)
    own_keys: set[tuple[str, int]] = set()
    kind = state.params.issuance_factor_kind
    if only_site is not None:
        dev_ = state.devices.get(only_site)
        ids = {only_site} if dev_ is not None and (dev_.owner == account_id or store.db.execute(
            "SELECT 1 FROM ix_readings WHERE owner = ? AND device_id = ? LIMIT 1",
            (account_id, only_site)).fetchone()) else set()
    else:
        ids = sites_of(state, store, account_id)
    devs = sorted((state.devices[i] for i in ids), key=lambda d: d.device_id)
    per_site: list[dict[int, list[int]]] = []  # each site's metered Wh by slot: generation, import, export
    for dev in devs:
        acc: dict[int, list[int]] = {}
        for start, g, i, e in store.db.execute(
                "SELECT interval_start, generation_wh, import_wh, export_wh FROM ix_readings "
                "WHERE device_id = ? AND owner = ? ORDER BY seq", (dev.device_id, account_id)):
            a = acc.setdefault(start // SLOT_SECONDS, [0, 0, 0])
            a[0] += g
            a[1] += i
            a[2] += e
        per_site.append(acc)
    read_ahead(state, "v", [(dev.device_id, slot) for dev, acc in zip(devs, per_site, strict=True) for slot in acc])
    for dev, acc in zip(devs, per_site, strict=True):
        site = SiteReport(dev.device_id, dev.grid_area, dev.rated_capacity_w, debt_g=dev.debt_g,
                          debt_repaid_g=dev.debt_repaid_g, drift_slots=dev.drift_slots,
                          drift_alerts=dev.drift_alerts)
        for slot, (g, i, e) in acc.items():
            fy = fiscal_year_cached(slot * SLOT_SECONDS)
            f_loc = state.factors.lookup(dev.grid_area, fy, LOCATION_BASED_KIND)
            f_mkt = state.factors.lookup(dev.grid_area, fy, kind)
            site.location_factors[_ref(f_loc)] = f_loc.g_per_kwh
            site.market_factors[_ref(f_mkt)] = f_mkt.g_per_kwh
            cg, cw = claims.get((dev.device_id, slot), (0, 0))
            own_keys.add((dev.device_id, slot))
            fig = slot_figures(g, i, e, f_loc.g_per_kwh, cg, cw, f_mkt.g_per_kwh)
            site.slots[slot] = fig
            per_slot[slot].append(fig)
            tally = state.tallies.get((dev.device_id, slot))
            site.finality[slot] = slot_finality(tally, slot * SLOT_SECONDS, state.last_time,
                                                state.params.final_after_s)
            site.stands_g[slot] = tally.issued_g - tally.withdrawn_g if tally is not None else 0
        sites.append(site)
    bought = 0
    for (dev_id, slot), (cg, cw) in claims.items():
        if (dev_id, slot) not in own_keys:
            bought += cg
            per_slot[slot].append(Figures(0, 0, 0, 0, 0, 0, 0, cg, cw))
    slots = {s: total(fs) for s, fs in sorted(per_slot.items())}
    return ParticipantReport(acct.account_id, acct.name, acct.role, sites, slots, bought)


def report_dict(rep: ParticipantReport, now: int) -> dict[str, Any]:
    """The report as JSON-ready data (``crev report --json``): totals, fiscal year to date (the
    fiscal year of ``now`` [unix s], up to ``now``), per JST day, and every slot of every site
    (keyed by slot id = unix s // 1800) with the factor rows each method used."""
    return {
        "participant": rep.account_id, "name": rep.name, "role": rep.role,
        "total": rep.total().to_dict(), "fiscal_year_to_date": rep.fiscal_year_to_date(now).to_dict(),
        "by_day": {d: f.to_dict() for d, f in rep.by_day().items()},
        "bought_g": rep.bought_g,
        "sites": {s.device_id: {str(k): {**v.to_dict(), "finality": s.finality.get(k, PROVISIONAL),
                                         "crev_g": s.stands_g.get(k, 0)} for k, v in s.slots.items()}
                  for s in rep.sites},
        "factors": factors_used(rep),
        "finality": finality_dict(rep, now),
    }


def finality_dict(rep: ParticipantReport, now: int) -> dict[str, Any]:
    """Per site: C-REV final and provisional [g] (all slots and fiscal year to date), the slots the
    smart meter corrected or compared late (slot ids), and the device's alerts."""
    fy0, _ = fiscal_year_bounds(fiscal_year(now))
    return {s.device_id: {
        "final_g": s.crev_g(True), "provisional_g": s.crev_g(False),
        "fiscal_year_to_date": {"final_g": s.crev_g(True, fy0, now + 1),
                                "provisional_g": s.crev_g(False, fy0, now + 1)},
        "corrected_slots": s.slots_with(CORRECTED), "late_slots": s.slots_with(LATE),
        "debt_g": s.debt_g, "debt_repaid_g": s.debt_repaid_g, "drift_slots": s.drift_slots,
        "drift_alerts": s.drift_alerts, "alerts": s.alerts,
    } for s in rep.sites}


def factors_used(rep: ParticipantReport) -> dict[str, Any]:
    """Per site: its grid area and the factor rows (ref → g-CO2e/kWh) each method used."""
    return {s.device_id: {"grid_area": s.grid_area, "location_based": s.location_factors,
                          "market_based": s.market_factors} for s in rep.sites}
