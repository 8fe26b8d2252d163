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


def test_bench_api_runs_and_reports_every_figure() -> None:
    r = subprocess.run([sys.executable, str(BENCH / "bench_api.py"), "--quick"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert re.search(r"fleet: 500 sites owned by 50 consumers", r.stdout)
    for name in (r"in process, node\.submit_wait", r"HTTP, POST /v1/tx\?wait=true"):
        m = re.search(name + r"\s*: 4 requests in .* = ([\d,]+) readings/s; latency p50 [\d.]+ ms, p99 [\d.]+ ms",
                      r.stdout)
        assert m and int(m.group(1).replace(",", "")) > 0, r.stdout
    assert re.search(r"ratio HTTP / in process: \d+\.\d\d", r.stdout)
    assert len(re.findall(r"GET /v1/figures, \d clients?\s*: 40 requests in .* requests/s", r.stdout)) == 2
    assert re.search(r"one figures query in process: [\d.]+ ms", r.stdout)
    assert re.search(r"the scan of all 500 lots it replaced", r.stdout)
    assert re.search(r"\(c\) one consumer owning all 500 sites", r.stdout)
    assert re.search(r"[\d,]+ bytes per answer \(with \?site=, only that site", r.stdout)


def test_bench_frontdoor_runs_and_reports_every_figure() -> None:
    r = subprocess.run([sys.executable, str(BENCH / "bench_frontdoor.py"), "--quick"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for label in ("back-pressure off", r"budget 0\.4 s", r"budget 0\.4 s, clients retry"):
        m = re.search(label + r"\s+offered 2,000 readings/s for [\d.]+ s: committed ([\d,]+)/s; admitted (\d+)/30 "
                      r"batches \(503(?:s retried)?: \d+.*\); admitted p50 [\d.]+ s p99 [\d.]+ s", r.stdout)
        assert m and int(m.group(1).replace(",", "")) > 0 and int(m.group(2)) > 0, r.stdout
    for charge in ("off", "on "):
        assert re.search(rf"refused-work charge {charge}: honest [\d,]+ readings/s alone, [\d,]+/s under attack = "
                         r"\d+\.\d\d×", r.stdout), r.stdout


def test_bench_consortium_runs_and_reports_every_figure() -> None:
    """A 4-validator localnet at tiny size (skips, saying why, where the cometbft binary is missing)."""
    from tests.consortium.abcikit import cometbft_binary
    from tests.consortium.netkit import free_base

    cometbft_binary()
    r = subprocess.run([sys.executable, str(BENCH / "bench_consortium.py"), "--quick", "--base-port",
                        str(free_base(4))], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert re.search(r"machine: .* \| nproc \d+", r.stdout)
    m = re.search(r"raw Ed25519 verify, 1 core: ([\d,]+) /s; bound \d+ cores × raw ÷ 4 validators = ([\d,]+)", r.stdout)
    assert m and int(m.group(1).replace(",", "")) > 0
    assert re.search(r"embedded node: [\d,]+ readings/s", r.stdout)
    m = re.search(r"quick\s+4 validators, batches of 20, .*: ([\d,]+) readings/s committed \([\d.]+ of the bound\), "
                  r"[\d.]+ blocks/s, p50 [\d.]+ s, p99 [\d.]+ s \[60 readings", r.stdout)
    assert m and int(m.group(1).replace(",", "")) > 0, r.stdout


def test_bench_state_runs_and_reports_every_figure(tmp_path: Path) -> None:
    """50 devices, two sizes of 2 and 4 rounds (100 and 200 readings), restart and reads timed."""
    r = subprocess.run([sys.executable, str(BENCH / "bench_state.py"), "--devices", "50", "--sizes", "100,200",
                        "--batch", "25", "--depth", "8", "--restart", "--signed", str(tmp_path / "signed"),
                        "--keep", str(tmp_path / "ledger")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert re.search(r"signed 4 rounds \(200 readings\) in [\d.]+ s", r.stdout)
    assert len(list((tmp_path / "signed").iterdir())) == 4
    assert re.search(r"ledger: 50 devices, 50 owners, state tree depth 8, batches of 25", r.stdout)
    heights = [int(h) for h in re.findall(
        r"(?:100|200) readings at height (\d+): [\d,]+ readings/s over the last 100 \([\d,]+ with its checkpoint "
        r"written; the sealer waited [\d.]+ s for the writer\); RSS [\d,]+ MB \(peak [\d,]+\); on disk [\d.]+ GB",
        r.stdout)]
    assert len(re.findall(r"; C heap [\d.,]+ MB in use \([\d.,]+ MB mapped apart\), [\d.,]+ MB free; "
                          r"SQLite [\d.,]+ MB", r.stdout)) == 2, r.stdout
    assert len(heights) == 2 and 0 < heights[0] < heights[1], r.stdout
    assert len(re.findall(r"restart \(child\): Node\(dir\)\.start\(\) → info\(\) in [\d.]+ s", r.stdout)) == 2
    assert re.search(r"crev report \S+ c00005 \(one site, 4 slots\): [\d.]+ s to exit", r.stdout)
    assert re.search(r"LedgerView open [\d.]+ s \(in full: None\) \+ one-site report [\d,]+ ms \(4 slots\)", r.stdout)
    m = re.search(r"RSS\(200\) / RSS\(100\) = (\d+\.\d\d) \(bar ≤ 1\.2: (MET|NOT MET)\)", r.stdout)
    assert m and float(m.group(1)) > 0, r.stdout
    assert re.search(r"crev report of one site at 200 readings: [\d.]+ s \(bar < 2\.0 s", r.stdout)


def test_bench_readings_runs_and_reports_where_the_cpu_goes() -> None:
    r = subprocess.run([sys.executable, str(BENCH / "bench_readings.py"), "--devices", "50", "--per-device", "2",
                        "--batch", "20", "--configs", "pynacl/threads", "--latency-rates", ""],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = re.search(r"end-to-end: 100 readings verified\+issued\+committed in [\d.]+ s = ([\d,]+) readings/s", r.stdout)
    assert m and int(m.group(1).replace(",", "")) > 0, r.stdout
    m = re.search(r"CPU by thread, µs a reading: (.*); cyclic GC [\d,]+ of them \(\d+ collections\)", r.stdout)
    assert m and re.search(r"\bseal [\d,]+", m.group(1)) and re.search(r"\bcheck [\d,]+", m.group(1)), r.stdout
    phases = re.search(r"the sealer's CPU by phase, µs a reading: read ahead [\d.]+, apply ([\d.]+), finish ([\d.]+), "
                       r"commit [\d.]+, receipts [\d.]+, evict [\d.]+", r.stdout)
    assert phases and float(phases.group(1)) > 0 and float(phases.group(2)) > 0, r.stdout
