"""Grid emission factors [g-CO2e/kWh], keyed by (key, fiscal year, kind).

``key`` is a grid area code (the area's incumbent retailer, e.g. ``tokyo``) or ``national``.
``kind`` is ``national_average`` (全国平均係数), ``basic`` (基礎排出係数) or ``adjusted``
(調整後排出係数). ``fiscal_year`` is the results year (実績年度) the Ministry's table describes.

The package ships ``data/emission_factors.csv``, every row citing its source; the operator can load
a CSV of the same columns, which the ledger records as a transaction and which overrides rows with
the same (key, fiscal_year, kind).

Factors for results year X are published around December of X+1 and used for the reports of
fiscal year X+1. Lookup for an interval in fiscal year F therefore takes the newest row with
results year ≤ F − 1 for the device's grid area and the chain's issuance kind, else the national
average by the same rule: a factor that had been published, never a future one. (An older area
row wins over a newer national average: the area's own retailer figure is the better estimate.)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from crev.errors import MalformedError, NotFoundError

KINDS = ("national_average", "basic", "adjusted")
COLUMNS = ("key", "fiscal_year", "kind", "g_per_kwh", "source", "note")
NATIONAL = "national"
MAX_FACTOR_G_PER_KWH = 2000  # no grid emits 2 kg/kWh; anything above is a unit mistake


@dataclass(frozen=True, slots=True)
class FactorRow:
    key: str
    fiscal_year: int
    kind: str
    g_per_kwh: int
    source: str
    note: str = ""

    def as_list(self) -> list[object]:
        return [self.key, self.fiscal_year, self.kind, self.g_per_kwh, self.source, self.note]

    @staticmethod
    def from_list(v: list[object], where: str = "factor") -> FactorRow:
        if not isinstance(v, list) or len(v) != 6:
            raise MalformedError(where, "expected [key, fiscal_year, kind, g_per_kwh, source, note]")
        key, fy, kind, g, source, note = v
        row = FactorRow(key, fy, kind, g, source, note)  # type: ignore[arg-type]
        row.check(where)
        return row

    def check(self, where: str) -> None:
        if not isinstance(self.key, str) or not self.key or len(self.key) > 64:
            raise MalformedError(f"{where}.key", "must be a non-empty text of at most 64 characters")
        if type(self.fiscal_year) is not int or not 1990 <= self.fiscal_year <= 2200:
            raise MalformedError(f"{where}.fiscal_year", "must be an integer year 1990..2200")
        if self.kind not in KINDS:
            raise MalformedError(f"{where}.kind", f"must be one of {', '.join(KINDS)}")
        if type(self.g_per_kwh) is not int or not 0 <= self.g_per_kwh <= MAX_FACTOR_G_PER_KWH:
            raise MalformedError(
                f"{where}.g_per_kwh", f"must be an integer 0..{MAX_FACTOR_G_PER_KWH} [g-CO2e/kWh]"
            )
        if not isinstance(self.source, str) or not self.source.strip():
            raise MalformedError(f"{where}.source", "every factor must cite its source")
        if not isinstance(self.note, str):
            raise MalformedError(f"{where}.note", "must be text")


def parse_csv(text: str, name: str = "csv") -> list[FactorRow]:
    """Parse a factor table. Errors name the line and column; nothing is partially accepted."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))  # spreadsheets add a BOM
    try:
        header = next(reader)
    except StopIteration:
        raise MalformedError(name, "empty file") from None
    if tuple(h.strip() for h in header) != COLUMNS:
        raise MalformedError(f"{name}:1", f"header must be {','.join(COLUMNS)}")
    rows: list[FactorRow] = []
    seen: set[tuple[str, int, str]] = set()
    for rec in reader:
        where = f"{name}:{reader.line_num}"  # the physical line, even after a multi-line field
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != len(COLUMNS):
            raise MalformedError(where, f"expected {len(COLUMNS)} columns, found {len(rec)}")
        key, fy_s, kind, g_s, source, note = (c.strip() for c in rec)
        if not (fy_s.isascii() and fy_s.isdigit()):
            raise MalformedError(f"{where}.fiscal_year", f"not an integer: {fy_s!r}")
        if not (g_s.isascii() and g_s.lstrip("-").isdigit()):
            raise MalformedError(f"{where}.g_per_kwh", f"not an integer g/kWh: {g_s!r}")
        fy, g = int(fy_s), int(g_s)
        row = FactorRow(key, fy, kind, g, source, note)
        row.check(where)
        ident = (key, fy, kind)
        if ident in seen:
            raise MalformedError(where, f"duplicate row for {key} {fy} {kind}")
        seen.add(ident)
        rows.append(row)
    if not rows:
        raise MalformedError(name, "no rows")
    return rows


class FactorTable:
    """Rows indexed for lookup. Later rows with the same (key, year, kind) replace earlier ones."""

    def __init__(self, rows: list[FactorRow] | None = None) -> None:
        self._rows: dict[tuple[str, int, str], FactorRow] = {}
        self._cache: dict[tuple[str, int, str], FactorRow] = {}
        for r in rows or []:
            self._rows[(r.key, r.fiscal_year, r.kind)] = r

    def upsert(self, rows: list[FactorRow]) -> None:
        for r in rows:
            self._rows[(r.key, r.fiscal_year, r.kind)] = r
        self._cache.clear()

    def rows(self) -> list[FactorRow]:
        return [self._rows[k] for k in sorted(self._rows)]

    def _newest(self, key: str, fy: int, kind: str) -> FactorRow | None:
        best: FactorRow | None = None
        for (k, y, kd), row in self._rows.items():
            if k == key and kd == kind and y <= fy and (best is None or y > best.fiscal_year):
                best = row
        return best

    def lookup(self, grid_area: str, fy: int, kind: str) -> FactorRow:
        """The factor in force for electricity used in fiscal year ``fy`` in ``grid_area``."""
        ck = (grid_area, fy, kind)
        hit = self._cache.get(ck)
        if hit is not None:
            return hit
        row = self._newest(grid_area, fy - 1, kind) or self._newest(NATIONAL, fy - 1, "national_average")
        if row is None:
            raise NotFoundError("emission_factor", f"no factor for {grid_area} {kind} with results year "
                                                   f"before FY{fy}")
        self._cache[ck] = row
        return row
