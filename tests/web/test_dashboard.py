"""The dashboard in Debian's headless chromium (Playwright), against a real ``crev serve``.

Every view is loaded from its hash route; the figures shown are compared with what ``crev report``
computes; one C-REV is followed through the explorer and its proofs are checked in the browser,
then a tampered proof must fail; the live height follows a transaction submitted here. Each test
leaves a screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from crev.core.figures import Figures, total
from crev.demo import CHAIN_ID, OPERATOR, demo_key
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.tx import build_tx
from crev.service.auth import sign_request
from tests.web.webkit import ROOT, Page, Served, needs_chromium

pytestmark = needs_chromium

CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


# --- what the ledger holds, from the API and the command line ------------------------------------


def figures(d: dict[str, int]) -> Figures:
    """A ``Figures`` back from its ``to_dict`` form (gross = market-based + claimed; not used here
    for anything but the total's own market-based figure)."""
    return Figures(d["generation_wh"], d["import_wh"], d["export_wh"], d["demand_wh"], d["self_consumed_wh"],
                   d["location_based_g"], d["market_based_g"] + d["claimed_g"], d["claimed_g"], d["claimed_wh"])


@dataclass(frozen=True)
class Facts:
    owner: str  # the participant with the most sites
    sites: list[str]
    ret: dict[str, Any]  # a retirement traced back to a signed reading, with "trace" and "steps"


@pytest.fixture(scope="module")
def facts(served: Served) -> Facts:
    by_owner: dict[str, list[str]] = {}
    for dev in served.devices:
        by_owner.setdefault(dev["owner"], []).append(dev["device_id"])
    owner = max(sorted(by_owner), key=lambda o: len(by_owner[o]))
    rets = served.get("/v1/retirements?limit=500")["items"]
    assert rets, "the demo ledger has no retirement"
    for r in sorted(rets, key=lambda r: r["retirement_id"]):
        trace = served.get(f"/v1/trace/{r['retirement_id']}")
        steps = [s["step"] for lot in trace["lots"] for s in lot["steps"]]
        if "signed_reading" in steps and "retired" in steps:
            return Facts(owner, sorted(by_owner[owner]), {**r, "trace": trace, "steps": steps})
    raise AssertionError("no retirement traces back to a signed reading")


def shown_bp(web: Page) -> int:
    el = web.page.locator("[data-testid=renewable-share]")
    assert el.count() == 1, f"{el.count()} elements [data-testid=renewable-share]"
    value = el.get_attribute("data-value")
    assert value is not None and re.fullmatch(r"\d+", value), f"renewable-share data-value={value!r}"
    return int(value)


# --- every view loads ---------------------------------------------------------------------------


def routes(served: Served, facts: Facts) -> list[tuple[str, list[str]]]:
    """Each hash route with texts its view must show (ids and hash prefixes taken from the API)."""
    owner, sites, ret = facts.owner, facts.sites, facts.ret
    tip = served.get("/v1/blocks?limit=1")["items"][0]
    block = served.get(f"/v1/blocks/{ret['height']}")
    return [
        (f"#/consumer/{owner}", [owner]),
        (f"#/consumer/{owner}/{sites[0]}", [sites[0]]),
        ("#/market", ["jp-spot", "jp-nonfit-call"]),
        ("#/market/jp-spot", ["jp-spot"]),
        (f"#/trace/{ret['retirement_id']}", [ret["retirement_id"]]),
        ("#/ledger", [str(tip["height"]), tip["hash"][:8]]),
        (f"#/block/{block['height']}", [block["hash"][:8], ret["tx_hash"][:8]]),
        (f"#/tx/{ret['tx_hash']}", [ret["tx_hash"][:8], str(ret["height"])]),
        ("#/fleet", [d["device_id"] for d in served.devices]),
        (f"#/certificate/{ret['retirement_id']}", [ret["retirement_id"], ret["beneficiary"]]),
    ]


VIEWS = ["consumer", "consumer-site", "market", "market-id", "trace", "ledger", "block", "tx", "fleet",
         "certificate"]


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_loads_and_shows_the_ledger(web: Page, served: Served, facts: Facts, view: str) -> None:
    route, texts = routes(served, facts)[VIEWS.index(view)]
    page = web.open(route)
    body = page.inner_text("body")
    missing = [t for t in texts if t not in body]
    assert not missing, f"{route} does not show {missing}"
    web.assert_clean()


# --- consumer figures equal crev report ---------------------------------------------------------


def _stable(served: Served, look: Any) -> Any:
    """``look()`` while no block is sealed meanwhile (a market tick may seal one at any time)."""
    for _ in range(3):
        h = served.height()
        out = look()
        if served.height() == h:
            return out
    raise AssertionError("the chain kept moving; could not compare with a stable report")


def test_site_renewable_share_equals_crev_report(web: Page, served: Served, facts: Facts) -> None:
    owner, sites = facts.owner, facts.sites
    site = sites[0]

    def look() -> tuple[int, Figures]:
        web.open(f"#/consumer/{owner}/{site}")
        rep = served.report(owner)
        return shown_bp(web), total(figures(f) for f in rep["sites"][site].values())

    shown, expected = _stable(served, look)
    assert expected.demand_wh > 0 and expected.claimed_wh > 0, "the site should have demand and claimed C-REV"
    assert shown == expected.renewable_share_bp, (site, shown, expected)
    web.assert_clean()


def test_participant_renewable_share_equals_crev_report(web: Page, served: Served, facts: Facts) -> None:
    owner, sites = facts.owner, facts.sites
    assert len(sites) > 1

    def look() -> tuple[int, dict[str, Any]]:
        web.open(f"#/consumer/{owner}")
        return shown_bp(web), served.report(owner)

    shown, rep = _stable(served, look)
    by_site = {s: total(figures(f) for f in rep["sites"][s].values()).renewable_share_bp for s in sites}
    assert rep["total"]["renewable_share_bp"] == total(
        figures(f) for s in sites for f in rep["sites"][s].values()).renewable_share_bp
    assert shown == rep["total"]["renewable_share_bp"], (owner, shown, rep["total"], by_site)
    web.assert_clean()


def test_charts_use_the_locked_chart_js(web: Page, served: Served, facts: Facts) -> None:
    """Chart.js comes from the npm lockfile (served at /vendor), and the consumer view draws with it."""
    lock = json.loads((ROOT / "src/crev/web/package-lock.json").read_text("utf-8"))
    locked = lock["packages"]["node_modules/chart.js"]["version"]
    assert locked.startswith("4.")
    page = web.open(f"#/consumer/{facts.owner}")
    assert page.evaluate("typeof window.Chart") == "function", "Chart.js did not load from /vendor"
    assert page.evaluate("window.Chart.version") == locked
    drawn = page.evaluate("Object.values(window.Chart.instances).map(c => c.data.datasets.length)")
    assert len(drawn) >= 2 and all(n > 0 for n in drawn), drawn
    assert page.locator("canvas").count() >= len(drawn)
    web.assert_clean()


# --- the explorer: trace, verify, tamper, search ------------------------------------------------


def _see_trace(web: Page, served: Served, ret: dict[str, Any]) -> None:
    page = web.page
    page.locator("[data-testid=trace-step]").first.wait_for()
    shown = [page.locator("[data-testid=trace-step]").nth(i).get_attribute("data-step")
             for i in range(page.locator("[data-testid=trace-step]").count())]
    assert "signed_reading" in shown and "retired" in shown, shown
    assert shown.count("signed_reading") == ret["steps"].count("signed_reading"), (shown, ret["steps"])
    assert shown.count("retired") == ret["steps"].count("retired"), (shown, ret["steps"])


def test_trace_by_route_then_verify_passes(web: Page, served: Served, facts: Facts) -> None:
    ret = facts.ret
    web.open(f"#/trace/{ret['retirement_id']}")
    _see_trace(web, served, ret)
    web.page.click("[data-testid=verify-button]")
    web.page.locator("[data-testid=verify-result][data-status=pass]").first.wait_for(timeout=30_000)
    assert web.page.locator("[data-testid=verify-result][data-status=fail]").count() == 0
    web.assert_clean()


def test_trace_by_search(web: Page, served: Served, facts: Facts) -> None:
    ret = facts.ret
    web.open("#/ledger")
    web.page.fill("[data-testid=search-input]", ret["retirement_id"])
    web.rerender(lambda: web.page.click("[data-testid=search-button]"))
    _see_trace(web, served, ret)
    assert ret["retirement_id"] in web.page.url
    web.assert_clean()


def _flip(h: str) -> str:
    return h[:-1] + ("0" if h[-1] != "0" else "1")


def tamper_path(trace: dict[str, Any]) -> str:
    """Change one hash of a signed reading's transaction inclusion proof (everywhere it occurs): of
    the first reading whose block holds more than one transaction (a one-transaction block's proof
    has no path; a device site's agent may deliver a reading alone)."""
    steps = [s for lot in trace["lots"] for s in lot["steps"] if s["step"] == "signed_reading"]
    step = next((s for s in steps if s["proof"]["path"]), None)
    assert step is not None, f"all {len(steps)} signed readings of the trace are alone in their blocks"
    return str(step["proof"]["path"][0])


def tamper_sibling(trace: dict[str, Any]) -> str:
    """Change one sibling hash of the retirement record's state proof (everywhere it occurs)."""
    return str(trace["retirement"]["state_proof"]["siblings"][-1])


@pytest.mark.parametrize("where", [tamper_path, tamper_sibling], ids=["tx-proof-path", "state-proof-sibling"])
def test_tampered_proof_fails_verification(web: Page, served: Served, facts: Facts, where: Any) -> None:
    ret = facts.ret
    changed: list[str] = []

    def route(r: Any) -> None:
        resp = r.fetch()
        text = resp.text()
        victim = where(json.loads(text))  # from this very answer: state proofs follow the tip
        assert len(victim) == 64 and victim in text
        changed.append(victim)
        r.fulfill(response=resp, body=text.replace(victim, _flip(victim)),
                  headers={**resp.headers, "content-type": "application/json"})

    web.page.route("**/v1/trace/**", route)
    web.open(f"#/trace/{ret['retirement_id']}")
    assert changed, "the trace was not fetched through the tampering route"
    _see_trace(web, served, ret)
    web.page.click("[data-testid=verify-button]")
    web.page.locator("[data-testid=verify-result][data-status=fail]").first.wait_for(timeout=30_000)
    assert web.page.locator("[data-testid=verify-result][data-status=pass]").count() == 0
    web.assert_clean()


def test_search_for_nothing_says_not_found(web: Page, served: Served) -> None:
    web.allow_not_found = True
    web.open("#/ledger")
    web.page.fill("[data-testid=search-input]", "ret-99999999")
    web.page.click("[data-testid=search-button]")
    web.page.locator("[data-testid=search-not-found]").wait_for()
    assert web.page.locator("[data-testid=trace-step]").count() == 0
    web.assert_clean()


# --- language -----------------------------------------------------------------------------------


def test_language_toggle_switches_to_japanese(web: Page, served: Served, facts: Facts) -> None:
    owner = facts.owner
    page = web.open(f"#/consumer/{owner}")
    assert page.get_attribute("html", "lang") == "en"
    english = page.inner_text("body")
    web.rerender(lambda: page.click("[data-testid=lang-toggle]"))
    page.locator("html[lang=ja]").wait_for(state="attached")
    japanese = page.inner_text("body")
    assert len(CJK.findall(japanese)) > len(CJK.findall(english)) + 10, japanese[:500]
    assert "再エネ" in japanese or "再生可能" in japanese, japanese[:500]
    web.assert_clean()


# --- live updates -------------------------------------------------------------------------------


def _post(served: Served, path: str, body: bytes, headers: dict[str, str]) -> Any:
    req = urllib.request.Request(served.base + path, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def submit_deposit(served: Served) -> int:
    """The operator records a 1-yen deposit (a real signed transaction over the API); its height."""
    key = demo_key(1, OPERATOR)
    target = f"/v1/accounts/{OPERATOR}"
    req = urllib.request.Request(served.base + target,
                                 headers=sign_request(key, OPERATOR, "GET", target, int(time.time())))
    with urllib.request.urlopen(req, timeout=30) as r:
        nonce = int(json.loads(r.read())["nonce"])
    raw = build_tx(CHAIN_ID, DepositJpy("kanto-rail", 1, f"WEB-TEST-{time.time_ns()}"), OPERATOR, nonce, key)
    rec = _post(served, "/v1/tx?wait=true", raw, {"Content-Type": "application/cbor"})
    assert rec["committed"] and rec["ok"], rec
    return int(rec["height"])


def test_live_height_follows_new_blocks(web: Page, served: Served) -> None:
    page = web.open("#/ledger")
    live = page.locator("[data-testid=live-height]")

    def shown() -> int:
        text = live.get_attribute("data-value") or live.inner_text()
        digits = re.sub(r"[^\d]", "", text)
        assert digits, f"live-height shows {text!r}"
        return int(digits)

    before = shown()
    assert before == served.height() or before == served.height() - 1
    web.shot("live-height-before")
    h = submit_deposit(served)
    assert h > before
    deadline = time.monotonic() + 15
    while shown() < h:
        assert time.monotonic() < deadline, f"live-height stayed at {shown()} after block {h} was sealed"
        page.wait_for_timeout(100)
    assert shown() >= h > before
    web.assert_clean()


# --- fleet, market, certificate -----------------------------------------------------------------


def test_fleet_table_has_a_row_per_device(web: Page, served: Served) -> None:
    page = web.open("#/fleet")
    rows = page.locator("[data-testid=fleet-row]")
    assert rows.count() == len(served.devices) == served.get("/v1/devices")["total"]
    body = page.inner_text("[data-testid=fleet-table]") if page.locator("[data-testid=fleet-table]").count() else \
        page.inner_text("body")
    for d in served.devices:
        assert d["device_id"] in body
    web.assert_clean()


def test_market_trades_table_has_rows(web: Page, served: Served) -> None:
    trades = served.get("/v1/markets/jp-spot/trades?limit=500")
    assert trades["total"] > 0
    page = web.open("#/market/jp-spot")
    rows = page.locator("[data-testid=trade-row]")
    rows.first.wait_for()
    assert 0 < rows.count() <= trades["total"]
    newest = trades["items"][0]
    first = rows.first.inner_text()
    assert newest["buyer"] in first and newest["seller"] in first, (first, newest)
    web.assert_clean()


def test_certificate_shows_qr_and_quantity(web: Page, served: Served, facts: Facts) -> None:
    ret = facts.ret
    page = web.open(f"#/certificate/{ret['retirement_id']}")
    qr = page.locator("[data-testid=certificate-qr]")
    qr.wait_for()
    loaded = qr.evaluate("el => el.tagName === 'IMG' ? el.complete && el.naturalWidth > 0 "
                         ": !!el.querySelector('svg, img, canvas')")
    assert loaded, "the QR code did not render"
    qty = page.locator("[data-testid=certificate-quantity]")
    assert qty.get_attribute("data-value") == str(ret["quantity_g"]), (qty.get_attribute("data-value"), ret)
    assert f"{ret['quantity_g']:,}" in qty.inner_text() or str(ret["quantity_g"]) in qty.inner_text()
    web.assert_clean()
