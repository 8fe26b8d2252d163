"""The dashboard with a deposit of JPY, whose amount, bank reference and bytes the public API
withholds (docs/api.md, "What is public"): its page shows none of them, and the explorer's
in-browser verification of it passes on what is public (its block's header and signature)
without a failed check for the withheld bytes."""

from __future__ import annotations

from tests.web.test_dashboard import submit_deposit
from tests.web.webkit import Page, Served, needs_chromium

pytestmark = needs_chromium


def deposit_hash(served: Served) -> str:
    h = submit_deposit(served)
    block = served.get(f"/v1/blocks/{h}")
    return str(next(t["tx_hash"] for t in block["txs"] if t["kind"] == "deposit_jpy"))


def test_a_deposit_page_shows_no_amount_and_its_trace_verifies(web: Page, served: Served) -> None:
    txh = deposit_hash(served)
    public = served.get(f"/v1/tx/{txh}")
    assert public["raw"] is None and public["events"][0]["reference"] is None
    web.open(f"#/tx/{txh}")
    web.page.locator("ol.events li").first.wait_for()
    web.shot("deposit-tx-page")
    body = web.page.inner_text("body")
    assert "WEB-TEST-" not in body and txh in body
    # the page says what is withheld and for whom, instead of "0 bytes" and an empty proof
    withheld = web.page.locator("[data-testid=withheld]")
    assert withheld.count() == 3 and public["private_to"] in withheld.first.inner_text()  # size, detail, proof
    assert "0 bytes" not in body and "{i}" not in body and "leaf" not in body.lower().split("withheld")[0][-40:]
    assert public["block"]["time"] > 0
    web.assert_clean()

    web.open(f"#/trace/{txh}")
    web.page.locator("[data-testid=trace-step]").first.wait_for()
    web.page.click("[data-testid=verify-button]")
    web.page.locator("[data-testid=verify-result][data-status=pass]").first.wait_for(timeout=30_000)
    assert web.page.locator("[data-testid=verify-result][data-status=fail]").count() == 0
    assert "WEB-TEST-" not in web.page.inner_text("body")
    web.assert_clean()
