"""The market's commands against a running node over HTTP: fund, list, place, cancel, book,
trades, statements; and text from participants is never read as Rich markup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crev.cli import main
from crev.service.server import serve_in_thread
from tests.node import nodekit as k


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Path, str, dict[str, str]]]:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    k.register_fleet(node, 1)
    assert node.submit_wait(k.readings_tx([k.reading(0, j) for j in range(4)])).ok  # 4 × 315 g for sun-co
    server = serve_in_thread(node, "127.0.0.1", 0, rate=0)
    keys = {}
    for name in (k.OPERATOR, k.OWNER, k.BUYER):
        p = tmp_path / f"{name}.key"
        p.write_text(k.key(name).seed.hex())
        keys[name] = str(p)
    try:
        yield d, f"http://127.0.0.1:{server.port}", keys
    finally:
        server.stop()
        node.close()


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_a_trade_from_the_command_line(live: tuple[Path, str, dict[str, str]], tmp_path: Path) -> None:
    d, url, keys = live

    def signed(who: str) -> list[str]:
        return ["--node", url, "--signer", who, "--key", keys[who]]

    r = run("market", "list-market", "spot", "--name", "Spot [bold]", "--min-qty", "100", "--fee-bp", "100",
            "--price-max", "2000000", *signed(k.OPERATOR))
    assert r.exit_code == 0, r.output
    assert run("jpy", "deposit", k.BUYER, "5000", "--ref", "BANK-7", *signed(k.OPERATOR)).exit_code == 0
    r = run("order", "place", "spot", "ask", "--price", "1000000", "--qty", "600",
            "--lot", "dgc-0:20260601T0900=315", "--lot", "dgc-0:20260601T0901=285", *signed(k.OWNER))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["detail"] == ["o-00000001", "open", 0, 0]
    r = run("order", "place", "spot", "bid", "--price", "1000000", "--qty", "400", "--retire-for", "Buyer [red]Co",
            "--purpose", "re100", "--fiscal-year", "2026", *signed(k.BUYER))
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["detail"] == ["o-00000002", "filled", 400, 2]
    r = run("order", "place", "spot", "bid", "--price", "1000", "--qty", "100", *signed(k.BUYER))
    assert json.loads(r.output)["detail"][:2] == ["o-00000003", "open"]
    r = run("order", "cancel", "o-00000003", *signed(k.BUYER))
    assert r.exit_code == 0 and json.loads(r.output)["detail"] == ["o-00000003", 100]
    r = run("order", "cancel", "o-00000003", *signed(k.BUYER))
    assert r.exit_code == 1 and "closed as cancelled" in r.output
    # reading the ledger while the node runs
    r = run("market", "book", str(d), "spot", "--json")
    assert json.loads(r.output) == {"bids": [], "asks": [[1_000_000, 200, 1]]}
    r = run("market", "trades", str(d), "--json")
    trades = json.loads(r.output)
    # 315 g then 85 g at 1,000,000 JPY/t: 315 and 85 JPY, fees 3 + 3 and 0 + 0
    assert [(t["quantity_g"], t["value_jpy"], t["fees_jpy"]) for t in trades] == [(315, 315, 6), (85, 85, 0)]
    assert all(t["retirement_id"] for t in trades)
    r = run("statement", "monthly", str(d), k.BUYER, "2026-07", "--json", "--pdf", str(tmp_path / "s.pdf"))
    st = json.loads(r.output)
    assert (st["opening_jpy"], st["closing_jpy"], st["bought_g"], st["retired_g"]) == (0, 5_000 - 403, 400, 400)
    assert (tmp_path / "s.pdf").read_bytes().startswith(b"%PDF-")
    r = run("statement", "retirement", str(d), "ret-00000001")
    assert r.exit_code == 0 and "Buyer [red]Co" in r.output  # printed as written, not as markup
    r = run("statement", "retirement", str(d), "ret-00000001", "--pdf", str(tmp_path / "r.pdf"),
            "--public-url", "https://registry.example/")
    assert r.exit_code == 0, r.output
    assert b"https://registry.example/#/trace/ret-00000001" in (tmp_path / "r.pdf").read_bytes()  # its QR target
    r = run("market", "show", str(d), "--json")
    assert json.loads(r.output)[0]["name"] == "Spot [bold]"
    r = run("trace", str(d), "ret-00000002")
    assert r.exit_code == 0, r.output
    assert "Buyer [red]Co" in r.output and "traded" in r.output


def test_markup_in_a_note_does_not_break_trace(live: tuple[Path, str, dict[str, str]]) -> None:
    d, url, _ = live
    from crev.core.units import fiscal_year_bounds
    from crev.ledger.messages.retire import Retire
    from crev.ledger.tx import build_tx

    p0, p1 = fiscal_year_bounds(2026)
    raw = build_tx(k.CHAIN, Retire((("dgc-0:20260601T0900", 10),), "[/]", "other", p0, p1, "JP", "[bold]x[/"),
                   k.OWNER, 0, k.key(k.OWNER))
    import urllib.request

    req = urllib.request.Request(f"{url}/v1/tx", data=raw, method="POST",
                                 headers={"Content-Type": "application/cbor"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert json.loads(resp.read())["ok"]
    r = run("trace", str(d), "ret-00000001")
    assert r.exit_code == 0, r.output
    assert "[bold]x[/" in r.output and "[/]" in r.output


def test_a_delegate_granted_from_the_command_line_offers_for_its_owner(
        live: tuple[Path, str, dict[str, str]], tmp_path: Path) -> None:
    d, url, keys = live
    site_key = tmp_path / "site.key"
    site_key.write_text(k.key("site-1").seed.hex())
    owner = ["--node", url, "--signer", k.OWNER, "--key", keys[k.OWNER]]
    r = run("market", "list-market", "spot", "--name", "Spot", "--min-qty", "100", "--node", url,
            "--signer", k.OPERATOR, "--key", keys[k.OPERATOR])
    assert r.exit_code == 0, r.output
    # never the device key
    dev_key = tmp_path / "dev.key"
    dev_key.write_text(k.key("dev/dgc-0").seed.hex())
    r = run("delegate", "grant", "sun-co.site-1", "--delegate-key", str(dev_key), *owner)
    assert r.exit_code == 1 and json.loads(r.output)["error"]["field"] == "body.public_key"
    r = run("delegate", "grant", "sun-co.site-1", "--delegate-key", str(site_key), "--kind", "place_order",
            "--kind", "cancel_order", *owner)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["detail"] == ["sun-co.site-1"]
    r = run("delegate", "show", str(d), "sun-co.site-1", "--json")
    shown = json.loads(r.output)
    assert (shown["owner"], shown["kinds"], shown["nonce"], shown["revoked"]) == \
        (k.OWNER, ["place_order", "cancel_order"], 0, False)
    site = ["--node", url, "--signer", "sun-co.site-1", "--key", str(site_key), "--nonce", "0"]
    r = run("order", "place", "spot", "ask", "--price", "5000", "--qty", "300", *site)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["detail"][:2] == ["o-00000001", "open"] and out["events"][0]["account"] == k.OWNER
    r = run("order", "place", "spot", "bid", "--price", "5000", "--qty", "300", *site[:-1], "1")
    assert r.exit_code == 1 and json.loads(r.output)["error"]["field"] == "body.side"
    r = run("delegate", "revoke", "sun-co.site-1", *owner)
    assert r.exit_code == 0, r.output
    r = run("order", "cancel", "o-00000001", *site[:-1], "1")
    assert r.exit_code == 1 and "revoked" in json.loads(r.output)["error"]["reason"]
