"""The site view in headless chromium, in English and Japanese, over the hand-computed ledger of
tests/service/sitekit.py served by a real ``crev serve``: each slot's C-REV as provisional, final,
corrected or late (the corrected slot with the smart meter's figure), the control records' table
with their reasons in words and the owner's money inputs withheld, the calibration-drift alert and
the reconciliation debt; a lot's page shows its finality. Screenshots go to test-artifacts/."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service import sitekit as s
from tests.web.webkit import ENV, Page, browser_page, free_port, stop_serve


@pytest.fixture(scope="module")
def site_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    w = s.build(root / "ledger")
    w.node.close()
    port = free_port()
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "crev.cli", "serve", str(root / "ledger"), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/v1/info", timeout=5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_serve(proc)
                raise RuntimeError(log.read_text(errors="replace")[-3000:]) from None
            time.sleep(0.2)
    try:
        yield base
    finally:
        stop_serve(proc)


@pytest.fixture
def site_page(browser: Any, site_base: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    with browser_page(browser, site_base, request.node.name) as p:
        yield p


def rows(page: Any, testid: str) -> list[str]:
    return [str(x) for x in page.locator(f"[data-testid={testid}]").all_inner_texts()]


def test_the_site_view_shows_finality_controls_drift_and_debt_in_english(site_page: Page) -> None:
    page = site_page.open("#/consumer/sun-co/dgc-0")
    slots = page.locator("[data-testid=slot-row]")
    assert slots.count() == 6
    finality = {slots.nth(i).get_attribute("data-slot"): slots.nth(i).get_attribute("data-finality") for i in range(6)}
    assert finality == {"10:00": "late", "11:00": "final", "12:00": "corrected", "12:30": "corrected",
                        "13:00": "corrected", "13:30": "provisional"}
    noon = page.locator("[data-testid=slot-row][data-slot='12:00']").inner_text()
    assert "corrected to 810 g (smart meter export 1,200 Wh)" in noon
    assert "50 g cancelled" in noon and "40 g recorded as debt" in noon
    controls = rows(page, "control-row")
    assert len(controls) == 3
    assert "2026-06-01 11:00 JST" in controls[0] and "100.0 kW" in controls[0] and "released: no limit" in controls[0]
    assert "40.0 kW" in controls[1] and "zero export (no reverse power flow)" in controls[1]
    assert "30.0 kW" in controls[2] and "grid operator's output control" in controls[2] and "30 %" in controls[2]
    # the owner's money inputs are not public
    assert "private (owner only)" in controls[0] and "¥8.5/kWh" not in controls[0]
    alert = page.locator("[data-testid=drift-alert]").inner_text()
    assert "Calibration drift" in alert and "below the smart meter" in alert and "4 consecutive slots" in alert
    debt = page.locator("[data-testid=debt]").inner_text()
    assert "Reconciliation debt" in debt and "40 g" in debt
    site_page.assert_clean()


def test_the_site_view_in_japanese(site_page: Page) -> None:
    page = site_page.open("#/consumer/sun-co/dgc-0")
    site_page.rerender(lambda: page.click("#lang-toggle"))
    assert "計量ドリフト" in page.locator("[data-testid=drift-alert]").inner_text()
    assert "4 コマ連続" in page.locator("[data-testid=drift-alert]").inner_text()
    assert "照合による負債" in page.locator("[data-testid=debt]").inner_text()
    controls = rows(page, "control-row")
    assert "系統運用者の出力制御" in controls[2] and "逆潮流なし（売電ゼロ）" in controls[1]
    assert "非公開（所有者のみ）" in controls[0]
    noon = page.locator("[data-testid=slot-row][data-slot='12:00']").inner_text()
    assert "訂正済" in noon and "スマートメーター売電 1,200 Wh により 810 g に訂正" in noon
    late = page.locator("[data-testid=slot-row][data-slot='13:30'] [data-testid=finality]").inner_text()
    assert late == "暫定"
    site_page.assert_clean()


def test_a_lots_page_shows_its_finality(site_page: Page) -> None:
    page = site_page.open(f"#/trace/{s.LOT[s.S12]}")
    badge = page.locator("[data-testid=finality]").first
    assert badge.get_attribute("data-finality") == "corrected" and badge.inner_text() == "corrected"
    shot = site_page.shot("lot_finality")
    assert Path(shot).exists()


def test_the_fleet_flags_the_drifting_site_and_its_debt(site_page: Page) -> None:
    page = site_page.open("#/fleet")
    drifting = page.locator("[data-testid=fleet-row][data-device='dgc-0']")
    assert drifting.locator("[data-testid=fleet-drift]").inner_text() == "Calibration drift"
    assert drifting.locator("[data-testid=fleet-debt]").inner_text() == "debt 40 g"
    # dgc-1 was topped up, never off three slots running, and owes nothing
    fine = page.locator("[data-testid=fleet-row][data-device='dgc-1']")
    assert fine.locator("[data-testid=fleet-drift]").count() == 0
    assert fine.locator("[data-testid=fleet-debt]").count() == 0
    site_page.assert_clean()
