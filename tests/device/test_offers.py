"""The DGC's offers with a delegated key (device/offers.py, docs/dgc.md "Offers with a delegated
key") against a real node and its HTTP API: the owner (sun-co) grants a delegate, the agent's
sender delivers the site's readings and, for each lot the receipt names, places an ask signed by
the delegate, escrowed from the owner's holdings.

Hand-computed numbers (tests/node/nodekit.py): each reading issues 315 g (⌊700 Wh × 450 / 1000⌋).
The owner's offer policy (5000 bp) auto-offers ⌊315 × 5000 / 10000⌋ = 157 g in the issuing block;
the agent offers ⌊315 × 3333 / 10000⌋ = ⌊104.99⌋ = 104 g of what is left (158 g), leaving 54 g
tradable. With the policy at 8000 bp only 315 − 252 = 63 g are left: the agent's 104 g ask is
refused (logged, not retried, no alert).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from crev.core.encoding import decode, encode
from crev.device.agent import Devices, Sender, SiteAgent
from crev.device.config import SiteConfig, parse_config
from crev.device.offers import offer_quantity_g
from crev.device.outbox import OFFER, Outbox
from crev.errors import MalformedError
from crev.ledger.holdings import available
from crev.ledger.messages.authorize_delegate import AuthorizeDelegate
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.set_offer_policy import SetOfferPolicy
from crev.ledger.records import ANY, ESCROWED, TRADABLE
from crev.ledger.tx import Message, build_tx
from crev.node.node import Node
from crev.service.server import Background, serve_in_thread
from tests.node import nodekit as k

DELEGATE = "sun-co.dgc-0"
SHARE_BP = 3333
PRICE = 40_000  # JPY/t
LOT_G = k.PER_READING_G  # 315 g


def lot_id(n: int) -> str:
    """The lot of nodekit reading n (0-based): 60 s intervals from 09:00 JST on T0."""
    return f"dgc-0:20260601T09{n:02d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    node: Node
    server: Background
    url: str
    signers: k.Signers
    tmp: Path

    def ok(self, signer: str, msg: Message) -> None:
        r = self.node.submit_wait(self.signers.tx(signer, msg))
        assert r.ok, r.error

    def site(self, **market: Any) -> SiteConfig:
        return parse_config(config_doc(self.tmp, self.url, market), self.tmp).sites[0]

    def sender(self, site: SiteConfig) -> Sender:
        """The site's sender as `crev dgc run` builds it (the agent's config carries the market)."""
        outbox = Outbox(site.outbox)
        agent = SiteAgent(site, k.CHAIN, k.key("dev/dgc-0"), Devices(*[cast(Any, None)] * 3), outbox)
        snd = Sender(site.ledger_url, k.CHAIN, outbox, cfg_sender(), agent=agent)
        assert snd.offers is not None
        return snd

    def asks(self) -> dict[str, list[Any]]:
        """The owner's open asks placed by order (not auto-offers), by lot: [quantity_g, price]."""
        out = {}
        for o in self.node.state.orders.values():
            if o.account == k.OWNER and o.side == "ask" and o.origin == "order" and o.status == "open":
                assert len(o.lots) == 1
                out[o.lots[0][0]] = [o.quantity_g, o.price]
        return out


def cfg_sender() -> Any:
    return parse_config({"ledger_url": "http://x.invalid", "sender": {"backoff_initial_s": 0.05,
                                                                      "backoff_max_s": 0.5},
                         "sites": [{"device_id": "x", "key_file": "x", "smart_meter": {"host": "h"},
                                    "inverter": {"host": "h"}, "grid_meter": {"host": "h"}}]}, Path(".")).sender


def config_doc(tmp: Path, url: str, market: dict[str, Any]) -> dict[str, Any]:
    (tmp / "dev.key").write_text(k.key("dev/dgc-0").seed.hex())
    (tmp / "delegate.key").write_text(k.key("delegate").seed.hex())
    m = {"delegate_id": DELEGATE, "delegate_key_file": "delegate.key", "market_id": "spot",
         "offer_share_bp": SHARE_BP, "price_jpy_per_t": PRICE, **market}
    return {"ledger_url": url, "chain_id": k.CHAIN,
            "sites": [{"device_id": "dgc-0", "key_file": "dev.key", "outbox": "outbox.sqlite", "rated_w": 100_000,
                       "smart_meter": {"host": "127.0.0.1"}, "inverter": {"host": "127.0.0.1"},
                       "grid_meter": {"host": "127.0.0.1", "unit": 2}, "market": m}]}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    node = k.open_node(k.init_dir(tmp_path / "ledger"))
    signers = k.register_fleet(node, 1)
    port = free_port()
    w = World(node, serve_in_thread(node, "127.0.0.1", port, rate=0), f"http://127.0.0.1:{port}", signers, tmp_path)
    w.ok(k.OPERATOR, ListMarket("spot", "Spot", "continuous", ANY, 1, 10**9, 100, 100, 0, True))
    w.ok(k.OWNER, AuthorizeDelegate("grant", DELEGATE, k.key("delegate").public_key, ("place_order",), 0))
    try:
        yield w
    finally:
        w.server.stop()
        node.close()


def deliver(snd: Sender, readings: range) -> None:
    """The site's readings n in ``readings``, signed as the agent signs them, delivered with offers."""
    for n in readings:
        snd.outbox.put("submit_readings", f"seq {n + 1}", k.reading(0, n), {"seq": n + 1}, 0, {})
    assert snd.drain(20), (snd.outbox.depth(), snd.offers and snd.offers.pending())


def offers_log(snd: Sender) -> dict[str, str]:
    return {r["lot_id"]: r["status"] for r in snd.outbox.log(OFFER, 100)}


# --- pure ---------------------------------------------------------------------------------------


def test_the_offered_share_rounds_down() -> None:
    assert offer_quantity_g(315, 3333) == 104  # 104.9895
    assert offer_quantity_g(315, 10_000) == 315
    assert offer_quantity_g(315, 0) == 0
    assert offer_quantity_g(2, 4999) == 0  # 0.9998: never more than the share


# --- config -------------------------------------------------------------------------------------


def test_a_delegate_key_equal_to_the_device_key_is_refused(tmp_path: Path) -> None:
    doc = config_doc(tmp_path, "http://127.0.0.1:9", {"delegate_key_file": "dev.key"})
    with pytest.raises(MalformedError) as e:
        parse_config(doc, tmp_path)
    assert e.value.field == "sites[0].market.delegate_key_file"
    assert "device key" in e.value.reason
    (tmp_path / "copy.key").write_text(k.key("dev/dgc-0").seed.hex().upper() + "\n")  # same seed, other file
    doc["sites"][0]["market"]["delegate_key_file"] = "copy.key"
    with pytest.raises(MalformedError, match="device key"):
        parse_config(doc, tmp_path)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("offer_share_bp", 10_001, "0..10000"), ("offer_share_bp", None, "required"),
    ("price_jpy_per_t", 0, "1..1000000000"), ("min_offer_g", 0, "at least 1 g"),
    ("delegate_id", "Sun Co", "a-z 0-9"), ("delegate_key_file", "missing.key", "cannot read"),
    ("colour", "red", "unknown field")])
def test_bad_market_fields_are_refused_by_name(tmp_path: Path, field: str, value: Any, says: str) -> None:
    doc = config_doc(tmp_path, "http://127.0.0.1:9", {field: value})
    if value is None:
        del doc["sites"][0]["market"][field]
    with pytest.raises(MalformedError) as e:
        parse_config(doc, tmp_path)
    assert (e.value.field, says in e.value.reason) == (f"sites[0].market.{field}", True), e.value


def test_the_market_table_is_optional_and_read_with_its_defaults(tmp_path: Path) -> None:
    doc = config_doc(tmp_path, "http://127.0.0.1:9", {})
    m = parse_config(doc, tmp_path).sites[0].market
    assert m is not None
    assert (m.at, m.delegate_id, m.market_id, m.offer_share_bp, m.price_jpy_per_t, m.min_offer_g) == (
        "sites[0].market", DELEGATE, "spot", SHARE_BP, PRICE, 1)
    del doc["sites"][0]["market"]
    assert parse_config(doc, tmp_path).sites[0].market is None


# --- against the node ---------------------------------------------------------------------------


def test_asks_are_signed_by_the_delegate_and_take_what_the_owners_policy_leaves(world: World) -> None:
    world.ok(k.OWNER, SetOfferPolicy("spot", 5_000, 30_000))
    snd = world.sender(world.site())
    t0 = time.perf_counter()
    deliver(snd, range(3))
    took = time.perf_counter() - t0
    st = world.node.state
    assert world.asks() == {lot_id(n): [104, PRICE] for n in range(3)}
    for n in range(3):
        lot = st.lots[lot_id(n)]
        assert lot.quantity_g == LOT_G == 315
        assert available(lot, k.OWNER, ESCROWED) == 157 + 104  # the policy's and the agent's
        assert available(lot, k.OWNER, TRADABLE) == 54
    assert st.delegates[DELEGATE].nonce == 3 and st.accounts[k.OWNER].nonce == 2  # grant + policy: own nonce
    log = offers_log(snd)
    assert all(log[lot_id(n)].startswith("placed ") for n in range(3)), log
    with httpx.Client() as c:  # the transactions' signer is the delegate, not the owner nor the device
        for n in range(3):
            tx = c.get(f"{world.url}/v1/tx/{log[lot_id(n)].rsplit(' ', 1)[1]}").json()
            assert (tx["kind"], tx["signer"], tx["ok"]) == ("place_order", DELEGATE, True)
            body = decode(bytes.fromhex(tx["raw"]), "tx")[5]
            assert body[:5] == ["spot", "ask", PRICE, 104, "gtc"] and body[7] == [[lot_id(n), 104]]
    # the owner raises its policy: what is left (63 g) is below the agent's 104 g: logged, no alert
    world.ok(k.OWNER, SetOfferPolicy("spot", 8_000, 30_000))
    deliver(snd, range(3, 5))
    log = offers_log(snd)
    for n in (3, 4):
        assert available(st.lots[lot_id(n)], k.OWNER, TRADABLE) == 63
        assert log[lot_id(n)].startswith("refused (rule_violation) at body.lots[0].quantity_g"), log
    assert lot_id(3) not in world.asks()
    assert not snd.outbox.alerts() and not snd.outbox.dead_letters() and snd.offers is not None
    assert (snd.offers.placed, snd.offers.refused, snd.offers.pending()) == (3, 2, 0)
    assert st.delegates[DELEGATE].nonce == 3  # refused transactions use no nonce
    print(f"3 readings delivered and 3 delegate-signed asks placed in {took:.2f} s")
    snd.close()
    snd.outbox.close()


def test_a_stale_nonce_is_read_again_and_the_offer_signed_again(world: World) -> None:
    snd = world.sender(world.site())
    deliver(snd, range(1))
    assert snd.offers is not None and snd.offers.nonce == 1
    # another holder of the delegate key (e.g. `crev order place --signer sun-co.dgc-0`) uses nonces 1 and 2
    for n in (1, 2):
        r = world.node.submit_wait(build_tx(k.CHAIN, PlaceOrder("spot", "ask", 90_000, 100, "gtc", 0, ANY,
                                                                ((lot_id(0), 100),), None), DELEGATE, n,
                                            k.key("delegate")))
        assert r.ok, r.error
    deliver(snd, range(1, 3))
    assert world.asks()[lot_id(1)] == [104, PRICE] and world.asks()[lot_id(2)] == [104, PRICE]
    assert snd.offers.resigned >= 2 and snd.offers.nonce == 5 == world.node.state.delegates[DELEGATE].nonce
    assert not snd.outbox.alerts() and not snd.outbox.dead_letters()
    snd.close()
    snd.outbox.close()


def test_a_lost_receipt_is_not_offered_twice(world: World) -> None:
    site = world.site()
    snd = world.sender(site)
    deliver(snd, range(1))
    placed = offers_log(snd)[lot_id(0)]
    tx_hash = placed.rsplit(" ", 1)[1]
    # the same signed offer again, as after a timeout: the ledger answers with the committed
    # transaction's receipt (or bad_nonce, and GET /v1/tx/{hash} finds it): placed once
    raw = bytes.fromhex(httpx.get(f"{world.url}/v1/tx/{tx_hash}").json()["raw"])
    snd.outbox.put(OFFER, "lot again", decode(raw, "tx"), {"lot_id": "again"}, 0, {})
    assert snd.drain(10)
    assert offers_log(snd)["again"] in (placed, f"placed (receipt lost) in tx {tx_hash}")
    assert len(world.asks()) == 1 and world.node.state.delegates[DELEGATE].nonce == 1
    snd.close()
    snd.outbox.close()


def test_a_revoked_delegate_is_an_alert_and_offers_pause(world: World) -> None:
    snd = world.sender(world.site())
    deliver(snd, range(2))
    assert len(world.asks()) == 2
    world.ok(k.OWNER, AuthorizeDelegate("revoke", DELEGATE, b"", (), 0))
    deliver(snd, range(2, 3))  # signed, then refused by the ledger: the delegate was revoked
    deliver(snd, range(3, 5))  # paused: not signed
    assert len(world.asks()) == 2  # no more offers
    alerts = snd.outbox.alerts()
    assert [a["field"] for a in alerts] == ["sites[0].market.delegate_id"], alerts
    assert "revoked by its owner" in alerts[0]["reason"] and "offers paused" in alerts[0]["reason"]
    assert alerts[0]["count"] == 1
    log = offers_log(snd)
    assert [log[lot_id(n)].split(":")[0] for n in (3, 4)] == ["skipped", "skipped"], log
    dead = snd.outbox.dead_letters()  # the offer signed before the ledger said so: kept, with the reason
    assert [d["ref"] for d in dead] == [f"lot {lot_id(2)}"] and dead[0]["code"] == "paused"
    assert snd.offers is not None and snd.offers.paused is not None
    snd.close()
    snd.outbox.close()
    # a restart reads the delegate's record at once: still revoked, still paused, no new alert
    snd = world.sender(world.site())
    deliver(snd, range(5, 6))
    assert offers_log(snd)[lot_id(5)].startswith("skipped: offers paused")
    assert len(world.asks()) == 2 and [a["count"] for a in snd.outbox.alerts()] == [1]
    snd.close()
    snd.outbox.close()


def test_a_delegate_never_granted_is_an_alert_at_start(world: World) -> None:
    snd = world.sender(world.site(delegate_id="sun-co.other"))
    deliver(snd, range(1))
    alerts = snd.outbox.alerts()
    assert [a["field"] for a in alerts] == ["sites[0].market.delegate_id"]
    assert "not granted" in alerts[0]["reason"]
    assert not world.asks()
    snd.close()
    snd.outbox.close()


def test_status_shows_the_offers(world: World) -> None:
    from crev.device.agent import status

    snd = world.sender(world.site(min_offer_g=105))  # 104 g < 105: skipped
    deliver(snd, range(1))
    st = status(snd.outbox)["offers"]
    assert (st["nonce"], st["pending"], st["paused"]) == (0, 0, None)
    assert st["last"][0]["lot_id"] == lot_id(0) and st["last"][0]["status"].startswith("skipped: 104 g is below")
    assert encode(st) is not None
    snd.close()
    snd.outbox.close()


def test_every_market_field_is_documented() -> None:
    from crev.device.config import _MARKET

    doc = (Path(__file__).resolve().parents[2] / "docs" / "dgc.md").read_text("utf-8")
    section = doc.split("## Offers with a delegated key")[1].split("\n## ")[0]
    for name in _MARKET:
        assert f"`{name}`" in doc and name in section, name
    assert "Forecast C-REV is not supported" in section


def test_a_bad_nonce_for_a_transaction_already_on_the_ledger_is_placed_not_signed_again(tmp_path: Path) -> None:
    """A node that no longer remembers the submission (e.g. restarted) answers bad_nonce to the
    same bytes: GET /v1/tx/{hash} finds it committed, so it is not signed again with a new nonce."""
    from crev.core.hashing import sha256
    from crev.device.offers import Offerer

    site = parse_config(config_doc(tmp_path, "http://ledger.test", {}), tmp_path).sites[0]
    assert site.market is not None
    outbox = Outbox(site.outbox)
    seen: list[str] = []
    committed: set[str] = set()

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(f"{req.method} {req.url.path}")
        if req.url.path == f"/v1/delegates/{DELEGATE}":
            return httpx.Response(200, json={"delegate_id": DELEGATE, "owner": k.OWNER, "revoked": False,
                                             "valid_until": 0, "kinds": ["place_order"], "nonce": 0,
                                             "public_key": k.key("delegate").public_key.hex()})
        if req.url.path == "/v1/tx":
            h = sha256(req.content).hex()
            if h in committed:
                return httpx.Response(409, json={"error": {"code": "bad_nonce", "field": "tx.nonce",
                                                           "reason": "is 0, expected 1"}})
            committed.add(h)
            return httpx.Response(503, json={"error": {"code": "unavailable", "field": "node",
                                                       "reason": "not committed within 60 s"}})
        if req.url.path.startswith("/v1/tx/"):
            ok = req.url.path.rsplit("/", 1)[1] in committed
            return httpx.Response(200 if ok else 404, json={"ok": True} if ok else {})
        return httpx.Response(404, json={})

    client = httpx.Client(transport=httpx.MockTransport(handle))
    off = Offerer.for_site(site.market, k.CHAIN, outbox, "http://ledger.test", client, cfg_sender(),
                           lambda f, r: outbox.alert("t", f, r, 0))
    off.lots_issued([(lot_id(0), LOT_G)])
    off.pump()  # 503: committed, but the receipt lost
    assert off.pending() == 1
    off.retry_at = 0.0
    off.pump()  # the same bytes: bad_nonce; the ledger has it
    assert off.pending() == 0 and off.resigned == 0 and off.placed == 1
    assert offers_log_of(outbox)[lot_id(0)].startswith("placed (receipt lost)")
    assert seen == [f"GET /v1/delegates/{DELEGATE}", "POST /v1/tx", "POST /v1/tx",
                    f"GET /v1/tx/{next(iter(committed))}"]
    client.close()
    outbox.close()


def offers_log_of(outbox: Outbox) -> dict[str, str]:
    return {r["lot_id"]: r["status"] for r in outbox.log(OFFER, 100)}


def test_crev_dgc_status_shows_the_offers(world: World) -> None:
    from click.testing import CliRunner

    from crev.cli import main
    from tests.device.test_agent_e2e import toml

    doc = config_doc(world.tmp, world.url, {})
    (world.tmp / "dgc.toml").write_text(toml(doc))
    snd = world.sender(parse_config(doc, world.tmp).sites[0])
    deliver(snd, range(2))
    snd.close()
    snd.outbox.close()
    out = CliRunner().invoke(main, ["dgc", "status", str(world.tmp / "dgc.toml"), "--json"])
    assert out.exit_code == 0, out.output
    offers = json.loads(out.output)["dgc-0"]["offers"]
    assert (offers["nonce"], offers["pending"], offers["paused"]) == (2, 0, None)
    assert [(o["lot_id"], o["quantity_g"], o["status"].split()[0]) for o in offers["last"]] == [
        (lot_id(1), 104, "placed"), (lot_id(0), 104, "placed")]
    from crev.cli.common import console

    with console.capture() as cap:  # the tables go to the rich console
        out = CliRunner().invoke(main, ["dgc", "status", str(world.tmp / "dgc.toml")])
    assert out.exit_code == 0, out.output
    shown = cap.get()
    assert "last offers (delegate nonce 2, 0 waiting)" in shown and shown.count("│ 104 ") == 2, shown
