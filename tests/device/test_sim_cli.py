"""`crev sim devices` with `crev dgc run`, over real processes: what docs/dgc.md ("Try it with
simulated devices") tells a user to type, from `crev keys new` to `crev verify`. Also the shared
simulated clock: it catches up from a past origin, then runs in real time, never ahead of it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from crev.cli.sim import default_origin
from crev.core.units import JST_OFFSET_SECONDS
from crev.device.clock import ScaledClock
from crev.device.config import load_config
from crev.sim import site

ROOT = Path(__file__).resolve().parents[2]
CLOCKS = (ScaledClock,)


# --- the clock ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLOCKS)
def test_scaled_clock_catches_up_then_runs_in_real_time(cls: Any) -> None:
    c = cls(origin=1_000_000, speed=10.0, wall_origin=1_000_900.0)  # 900 s behind the wall at start
    assert c.at(1_000_900.0) == 1_000_000
    assert c.at(1_000_950.0) == 1_000_500  # catching up at ×10
    assert c.at(1_001_000.0) == 1_001_000  # caught up after 900 / (10 − 1) = 100 wall s
    assert c.at(1_005_000.5) == 1_005_000  # then the wall clock, never ahead of it


@pytest.mark.parametrize("cls", CLOCKS)
def test_scaled_clock_wall_until_agrees_with_now(cls: Any) -> None:
    now = time.time()
    c = cls(origin=int(now) - 900, speed=10.0, wall_origin=now)
    assert c.wall_until(int(now) - 900) <= 0  # already there
    assert c.wall_until(int(now) - 400) == pytest.approx(50, abs=0.5)  # scaled: 500 sim s in 50 wall s
    # beyond the wall: real time (``int(now)`` drops up to a second, so compare with the wall itself)
    assert c.wall_until(int(now) + 300) == pytest.approx(int(now) + 300 - time.time(), abs=0.5)
    for t in (int(now) - 600, int(now) + 60):
        w = max((t - c.origin) / c.speed + c.wall_origin, float(t))
        assert c.at(w + 1e-3) >= t > c.at(w - 1.0)


def test_devices_and_agents_run_on_one_clock_class() -> None:
    """A simulated device process and a `crev dgc run` process given the same three numbers agree:
    both use the DGC's ScaledClock."""
    assert site.ScaledClock is ScaledClock
    a, b = site.ScaledClock(1_000_000, 60.0, 1_000_500.0), ScaledClock(1_000_000, 60.0, 1_000_500.0)
    for w in (1_000_500.0, 1_000_503.3, 1_000_509.0, 1_000_600.0, 2_000_000.0):
        assert a.at(w) == b.at(w)


def test_default_origin_is_the_last_six_o_clock_jst() -> None:
    day = 1_800_000_000 // 86400 * 86400 - JST_OFFSET_SECONDS  # 00:00 JST of some day
    assert default_origin(day + 9 * 3600) == day + 6 * 3600
    assert default_origin(day + 6 * 3600) == day + 6 * 3600
    assert default_origin(day + 5 * 3600) == day + 6 * 3600 - 86400


# --- the processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def crev(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crev.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=ENV)


ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}


def start(*args: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "crev.cli", *args], cwd=cwd, env=ENV,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def iso_jst(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+09:00", time.gmtime(t + JST_OFFSET_SECONDS))


def stop(p: subprocess.Popen[bytes], log: Path) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
        raise AssertionError(f"did not stop on SIGTERM:\n{log.read_text()}") from None


def test_sim_devices_and_dgc_run_deliver_readings_to_a_running_node(tmp_path: Path) -> None:
    t0 = time.monotonic()
    times: dict[str, float] = {}
    assert crev("keys", "new", "operator.key", cwd=tmp_path).returncode == 0
    out = crev("init", "data", "--chain-id", "sim-e2e", "--operator-id", "operator", "--operator-name", "Operator",
               "--operator-key", "operator.key", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = {k: tmp_path / f"{k}.log" for k in ("serve", "sim", "dgc")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["serve"] = start("serve", "data", "--port", str(port), "--block-ms", "50", cwd=tmp_path,
                               log=logs["serve"])
        deadline = time.monotonic() + 30
        while True:
            try:
                get(f"{url}/v1/info")
                break
            except OSError:
                assert time.monotonic() < deadline and procs["serve"].poll() is None, logs["serve"].read_text()
                time.sleep(0.1)
        times["node up"] = time.monotonic() - t0
        now = int(time.time())
        origin = (now - 5 * 3600) // 1800 * 1800  # 5 simulated hours to catch up at ×900: ~20 s
        procs["sim"] = start("sim", "devices", "sim", "--ledger", url, "--operator-id", "operator",
                             "--operator-key", "operator.key", "--sites", "2", "--start", iso_jst(origin),
                             "--speed", "900", "--tick", "300", cwd=tmp_path, log=logs["sim"])
        cfg = tmp_path / "sim" / "dgc.toml"
        deadline = time.monotonic() + 30
        while "crev dgc run" not in logs["sim"].read_text():
            assert time.monotonic() < deadline and procs["sim"].poll() is None, logs["sim"].read_text()
            time.sleep(0.1)
        times["devices up"] = time.monotonic() - t0
        text = logs["sim"].read_text()
        assert f"crev dgc run {Path('sim') / 'dgc.toml'}" in text and "crev dgc status" in text
        config = load_config(cfg)
        ids = [s.device_id for s in config.sites]
        assert ids == ["site-001", "site-002"]
        assert [s.control.policy.export_limit_w for s in config.sites].count(0) == 1  # one zero-export site
        for s in config.sites:
            assert s.key_file.stat().st_mode & 0o777 == 0o600
        procs["dgc"] = start("dgc", "run", str(Path("sim") / "dgc.toml"), cwd=tmp_path, log=logs["dgc"])
        deadline = time.monotonic() + 60
        while True:
            devs = {d: get(f"{url}/v1/devices/{d}") for d in ids}
            slots = {d: get(f"{url}/v1/devices/{d}/slots?limit=20")["items"] for d in ids}
            metered = {d: sum(1 for s in slots[d] if s.get("smart_meter")) for d in ids}
            controlled = [d for d in ids if devs[d]["last_control"]]
            if all(devs[d]["readings"] >= 3 and metered[d] >= 2 for d in ids) and controlled:
                break
            for k, p in procs.items():
                assert p.poll() is None, f"{k} exited:\n{logs[k].read_text()}"
            assert time.monotonic() < deadline, (devs, metered, logs["dgc"].read_text())
            time.sleep(0.5)
        times["readings, meter values, controls on the ledger"] = time.monotonic() - t0
        zero = next(s.device_id for s in config.sites if s.control.policy.export_limit_w == 0)
        assert controlled == [zero] and devs[zero]["last_control"]["reason"] == "zero_export"
        assert "simulated" in logs["sim"].read_text()  # the live table (printed as lines in a log)
    finally:
        for k in ("dgc", "sim", "serve"):
            if k in procs:
                stop(procs[k], logs[k])
    times["all stopped"] = time.monotonic() - t0
    assert "simulated devices stopped" in logs["sim"].read_text()
    state = json.loads((tmp_path / "sim" / "sim-state.json").read_text())
    assert set(state) == set(ids) and all(v["import_j"] + v["export_j"] > 0 for v in state.values())
    out = crev("verify", "data", "--threads", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    out = crev("dgc", "status", str(Path("sim") / "dgc.toml"), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    for d in ids:
        assert not any(st[d]["outbox"].values()), st[d]["outbox"]  # everything delivered
        assert not st[d]["dead_letters"]
        assert st[d]["seq"] >= 3
    times["verify and status"] = time.monotonic() - t0
    print("wall times [s]: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
