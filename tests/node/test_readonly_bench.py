"""bench/bench_readonly.py still runs (tiny sizes), so it cannot rot between measurements."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_readonly.py"


def test_bench_readonly_runs_and_reports_every_figure(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(BENCH), "--dir", str(tmp_path / "ledger"), "--readings", "2000",
                        "--devices", "200", "--owners", "20", "--batch", "500", "--export"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"ingest: 2,000 readings in .* readings/s over \d+ blocks; \d+ checkpoints", out), out
    assert re.search(r"checkpoint writes \(checkpoint thread\): [\d.]+ µs per reading \(CPU [\d.]+ µs\)", out)
    assert re.search(r"largest write-ahead log during the ingest: [\d,]+ MB", out)
    assert re.search(r"no block after the checkpoint .* open \d+ ms, one-site report \d+ ms", out)
    for row in ("open", "one-site report", r"trace of one lot", r"export lots \(every lot: O\(chain\)\)"):
        assert re.search(rf"^{row}\s+[\d,]+ ms\s+[\d,]+ ms\s+[\d.,]+×$", out, re.M), (row, out)
    assert "answers of the lazy and the full view: identical" in out
    assert re.search(r"peak RSS after the lazy open and its queries: [\d,]+ MB", out)
