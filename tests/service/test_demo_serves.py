"""`crev demo` (the README's first command) ends with the dashboard and API on a real port while
the fleet keeps reporting: the chain grows while we watch, the dashboard page is served, and
SIGTERM stops it cleanly, leaving a ledger that verifies."""

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

from tests.cli.test_cli import ENV, crev


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def start_demo(d: Path, port: int, *options: str) -> tuple[subprocess.Popen[str], str, dict[str, Any]]:
    """``crev demo`` on 3 sites for a day into ``d``, serving on ``port``, once it answers /v1/info:
    the process, the base URL and that first answer (the demo's chain id checked)."""
    proc = subprocess.Popen([sys.executable, "-m", "crev.cli", "demo", "--data-dir", str(d), "--sites", "3",
                             "--days", "1", "--port", str(port), "--pace", "0.2", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            info = get(f"{base}/v1/info", timeout=20)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.stdout.read() if proc.stdout else "crev demo did not answer") from None
            time.sleep(0.3)
    assert info["chain_id"] == "crev-demo", info
    return proc, base, info


def test_demo_serves_a_live_dashboard_and_stops_cleanly(tmp_path: Path) -> None:
    d = tmp_path / "demo"
    port = free_port()
    proc, base, info = start_demo(d, port, "--start", "2026-06-01")
    try:
        first = info["height"]
        # one day of 3 sites: 48 intervals of 3 readings each before serving
        assert get(f"{base}/v1/devices")["total"] == 3
        time.sleep(2.0)  # ~10 more intervals at 0.2 s each
        later = get(f"{base}/v1/info")["height"]
        assert later > first
        with urllib.request.urlopen(f"{base}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"{base}" in out and "Traceback" not in out
    v = crev("verify", str(d))
    assert v.returncode == 0, v.stdout + v.stderr
    assert os.path.exists(d / "ledger.sqlite")
