"""Fixtures for the dashboard tests: a small demo ledger served by a real ``crev serve`` process,
and Debian's headless chromium driven by Playwright (never a downloaded browser).

The ledger is built once per session by the real command line (``crev demo --no-serve``), then
``crev serve`` runs it on a free port until the session ends. Every test gets a fresh browser
context (fresh storage, so a language choice never leaks into the next test) and leaves a
screenshot of its page in ``test-artifacts/`` (gitignored), whether it passed or failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.webkit import CHROMIUM, CHROMIUM_ARGS, Page, Served, browser_page, crev, start_serve, stop_serve


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("web")
    data = root / "ledger"
    made = crev("demo", "--data-dir", str(data), "--sites", "6", "--days", "1", "--no-serve")
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    s = start_serve(data, root / "serve.log")
    try:
        s.devices = s.get("/v1/devices?limit=500")["items"]
        yield s
    finally:
        stop_serve(s.proc)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # launch() gives chromium a fresh temporary --user-data-dir (it refuses one in args) and
        # deletes it afterwards; every test then opens its own context with empty storage.
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def web(browser: Any, served: Served, request: pytest.FixtureRequest) -> Iterator[Page]:
    with browser_page(browser, served.base, request.node.name) as p:
        yield p
