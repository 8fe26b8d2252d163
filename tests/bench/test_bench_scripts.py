"""The benchmark scripts still run (tiny sizes), so they cannot rot between measurements."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bench_market_runs_and_reports_every_figure() -> None:
    r = subprocess.run([sys.executable, str(BENCH / "bench_market.py"), "--orders", "3000"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert re.search(r"continuous without filters: 3,000 orders in .* orders/s, [\d,]+ fills", r.stdout)
    assert re.search(r"continuous with filters\s*: 3,000 orders", r.stdout)
    m = re.search(r"call auction: 3,000 orders rested in .*, cleared in .* at ([\d,]+) JPY/t, ([\d,]+) g", r.stdout)
    assert m and int(m.group(2).replace(",", "")) > 0
