"""The dashboard in consortium mode (`crev consortium up`, 4 validators, the API over one member's
node) in headless chromium: the ledger view lists the members with their heights and voting power,
each block row says who signed it, and a block's page names its signers and their power."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from tests.consortium.netkit import free_port, make_net, post, start_up
from tests.node import nodekit as k
from tests.web.webkit import Page, browser_page


@pytest.fixture(scope="module")
def consortium_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("net")
    make_net(root, 4)
    port = free_port()
    up, _ = start_up(root, "--port", str(port))
    try:
        base = f"http://127.0.0.1:{port}"
        api = httpx.Client(base_url=base, timeout=60)
        s = k.Signers()
        for raw in [s.tx(k.OPERATOR, RegisterParticipant(k.OWNER, "Sun Co", "prosumer", k.key(k.OWNER).public_key)),
                    s.tx(k.OPERATOR, RegisterDevice(
                        k.device_id(0), k.OWNER, k.key(f"dev/{k.device_id(0)}").public_key, k.CAPACITY_W,
                        k.T0 - 30 * 86400, 35_681_236, 139_767_125, "tokyo", "SN-0000", k.T0 + 5 * 365 * 86400,
                        False, "solar_pv"))]:
            assert post(api, raw).json()["ok"]
        rec = post(api, k.readings_tx([k.reading(0, 0)])).json()
        assert rec["ok"], rec
        yield base, rec
    finally:
        up.send_signal(signal.SIGTERM)
        up.communicate(timeout=60)


@pytest.fixture
def cpage(browser: Any, consortium_api: tuple[str, dict[str, Any]], request: pytest.FixtureRequest) -> Iterator[Page]:
    with browser_page(browser, consortium_api[0], request.node.name) as p:
        yield p


def test_ledger_view_shows_members_heights_and_signers(cpage: Page, consortium_api: tuple[str, dict[str, Any]]
                                                        ) -> None:
    _, rec = consortium_api
    page = cpage.open("#/ledger")
    card = page.locator("[data-testid=consortium]")
    card.wait_for()
    rows = page.locator("[data-testid=member-row]")
    assert rows.count() == 4
    names = [rows.nth(i).get_attribute("data-name") for i in range(4)]
    assert names == ["registry", "utility", "retailer", "auditor"]
    assert all(int(rows.nth(i).get_attribute("data-height") or 0) >= 1 for i in range(4))
    assert "Total voting power 40" in card.inner_text()
    # each crev block row: who signed it, with the power (at least 3 of the 4 validators' 40)
    signers = page.locator(f"[data-testid=block-row][data-height='{rec['height']}'] [data-testid=block-signers]")
    text = signers.inner_text()
    assert sum(n in text for n in ("registry", "utility", "retailer", "auditor")) >= 3 and "/40" in text, text

    cpage.rerender(lambda: page.goto(f"{cpage.base}/#/block/{rec['height']}"))
    who = page.locator("[data-testid=block-signers]").inner_text()
    assert sum(n in who for n in ("registry", "utility", "retailer", "auditor")) >= 3 and "of 40" in who, who
    # the header checked in the browser through CometBFT's commit (no sequencer key in this mode)
    assert page.locator("[data-testid=verify-check][data-status=pass]").count() >= 3
    failed = page.locator("[data-testid=verify-check][data-status=fail]")
    assert failed.count() == 0, [failed.nth(i).inner_text() for i in range(failed.count())]

    cpage.rerender(lambda: page.locator("[data-testid=lang-toggle]").click())
    assert "署名者（CometBFT ブロック" in page.locator("main").inner_text()
    cpage.assert_clean()
