"""What the dashboard tests share: the ``crev`` command, the served ledger, a page with its
errors and screenshots (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.prockit import PGRP, live_processes

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ENV = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
# This machine's network is closed: nothing may try to reach out (updates, sync, QUIC probes...).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium; .ci/run does) "
           "to run the dashboard tests")


def crev(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real ``crev`` command of this interpreter's environment."""
    return subprocess.run([sys.executable, "-m", "crev.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """The demo ledger on disk and the ``crev serve`` process answering for it."""

    data_dir: Path
    base: str
    proc: subprocess.Popen[bytes]
    log: Path
    devices: list[dict[str, Any]] = field(default_factory=list)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return json.loads(r.read())

    def height(self) -> int:
        return int(self.get("/v1/info")["height"])

    def report(self, participant: str) -> dict[str, Any]:
        """What ``crev report DATA_DIR PARTICIPANT --json`` prints (read-only, beside the server)."""
        out = crev("report", str(self.data_dir), participant, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        return dict(json.loads(out.stdout))

    def server_log(self) -> str:
        return self.log.read_text("utf-8", errors="replace")[-4000:]


def start_serve(data: Path, log: Path) -> Served:
    """``crev serve DATA --port <free>`` in its own process group, once it answers /v1/info."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "crev.cli", "serve", str(data), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)
    s = Served(data, f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            info = s.get("/v1/info")
            break
        except OSError:  # URLError is an OSError
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_serve(proc)
                raise RuntimeError(f"crev serve did not answer /v1/info:\n{s.server_log()}") from None
            time.sleep(0.2)
    assert info["chain_id"] == "crev-demo", info
    return s


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (from /proc)."""
    return live_processes(PGRP, pgid)


def stop_serve(proc: subprocess.Popen[bytes], timeout: float = 20) -> tuple[int, list[int]]:
    """SIGTERM ``crev serve`` as a service manager would; its exit code and the processes of its
    group still alive after it exited (then ended too, so nothing outlives the tests)."""
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait(timeout=10)
    time.sleep(0.2)
    left = group_members(proc.pid)
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return rc, left


@dataclass
class Page:
    """A Playwright page plus what went wrong on it (uncaught errors, failed API calls)."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)
    allow_not_found: bool = False  # a test that looks up something absent expects a 404 from the API

    def open(self, route: str) -> Any:
        """Load the dashboard at hash route ``route`` and wait until the view has rendered."""
        self.page.goto(f"{self.base}/{route}")
        self.wait_ready()
        return self.page

    def wait_ready(self, timeout_ms: float = 10_000) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function("window.crevReady === true", timeout=timeout_ms)
        except PlaywrightTimeout:
            body = self.page.evaluate("document.body ? document.body.innerText : ''")
            raise AssertionError(
                f"window.crevReady never became true at {self.page.url} within {timeout_ms / 1000:.0f} s; "
                f"page errors {self.errors}; failed API requests {self.bad_responses}; "
                f"page text {body[:300]!r}") from None

    def rerender(self, action: Any) -> None:
        """Run ``action`` (a click, a hash change) and wait for the view it leads to."""
        self.page.evaluate("window.crevReady = false")
        action()
        self.wait_ready()

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{safe(name)}.png"
        # Let Chart.js finish its animations, or the picture catches the charts half-drawn.
        with contextlib.suppress(Exception):
            self.page.wait_for_function(
                "!window.Chart || Object.values(window.Chart.instances).every(c => !window.Chart.animator.running(c))",
                timeout=3_000)
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        assert not self.errors, f"errors in the page: {self.errors}"
        assert not self.bad_responses, f"failed API requests: {self.bad_responses}"


@contextlib.contextmanager
def browser_page(browser: Any, base: str, shot_name: str) -> Iterator[Page]:
    """A fresh English, Tokyo-time page on ``base`` that records uncaught errors and failed API
    calls (a 404 too, unless the test sets ``allow_not_found``), and leaves a screenshot named
    ``shot_name`` in test-artifacts/ when the test ends, passed or failed."""
    ctx = browser.new_context(locale="en-US", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    p = Page(page, base)
    page.on("pageerror", lambda exc: p.errors.append(f"pageerror: {exc}"))

    def on_console(msg: Any) -> None:
        if msg.type == "error" and not (p.allow_not_found and "404" in msg.text):
            p.errors.append(f"console.error: {msg.text}")

    def on_response(resp: Any) -> None:
        if "/v1/" in resp.url and resp.status >= 400 and not (p.allow_not_found and resp.status == 404):
            p.bad_responses.append(f"{resp.status} {resp.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    try:
        yield p
    finally:
        try:
            p.shot(shot_name)
        finally:
            ctx.close()


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:120]


