"""Every endpoint of docs/api.md in process (FastAPI's TestClient), over the hand-computed ledger
of tests/service/apikit.py: exact values, the one error shape, pagination, signed private reads,
rate and size limits."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crev.core.encoding import decode
from crev.core.hashing import sha256
from crev.core.merkle import leaf_hash, verify_proof
from crev.core.signing import verify
from crev.ledger.block import Header
from crev.ledger.messages.transfer import Transfer
from crev.ledger.tx import build_tx
from crev.service.app import create_app
from crev.service.auth import sign_request
from crev.service.limits import BODY_LIMIT
from tests.node import nodekit as k
from tests.service import apikit as a


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[a.World]:
    w = a.build(tmp_path_factory.mktemp("api") / "ledger")
    try:
        yield w
    finally:
        w.node.close()


@pytest.fixture(scope="module")
def client(world: a.World) -> Iterator[TestClient]:
    with TestClient(create_app(world.node, rate=0)) as c:
        yield c


def get(client: TestClient, path: str, status: int = 200) -> Any:
    r = client.get(path)
    assert r.status_code == status, (path, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def assert_error(payload: Any, code: str, field: str) -> str:
    assert isinstance(payload, dict) and set(payload) >= {"error"}, payload
    err = payload["error"]
    assert set(err) == {"code", "field", "reason"}, err
    assert (err["code"], err["field"]) == (code, field), err
    assert isinstance(err["reason"], str) and err["reason"]
    return str(err["reason"])


def signed(client: TestClient, path: str, who: str, *, key_of: str | None = None, now: int | None = None,
           nonce: str | None = None) -> Any:
    headers = sign_request(k.key(key_of or who), who, "GET", path, int(time.time()) if now is None else now,
                           nonce=nonce)
    return client.get(path, headers=headers)


# --- chain ------------------------------------------------------------------------------------


def test_info_is_the_nodes_head(client: TestClient, world: a.World) -> None:
    st = world.node.state
    info = get(client, "/v1/info")
    assert info == {
        "chain_id": k.CHAIN, "height": st.height, "app_hash": st.tree.root().hex(),
        "last_block_hash": st.last_block_hash.hex(), "last_time": world.ids["auction_time"],
        "last_time_jst": "2026-07-01T00:30:00+09:00", "genesis_hash": st.genesis_hash.hex(),
        "operator_id": k.OPERATOR, "sequencer_public_key": k.key("sequencer").public_key.hex(),
        "state_tree_depth": 16}


def test_blocks_page_newest_first_and_each_block_is_the_stored_one(client: TestClient, world: a.World) -> None:
    height = world.node.state.height
    page = get(client, "/v1/blocks?offset=2&limit=3")
    assert (page["total"], page["offset"], page["limit"]) == (height, 2, 3)
    assert [b["height"] for b in page["items"]] == [height - 2, height - 3, height - 4]
    for row in page["items"]:
        stored = world.node.store.block(row["height"])
        assert stored is not None
        h = stored.header
        assert row == {"height": h.height, "hash": h.hash.hex(), "time": h.time, "time_jst": row["time_jst"],
                       "tx_count": h.tx_count, "tx_root": h.tx_root.hex(), "state_root": h.state_root.hex()}
    assert get(client, f"/v1/blocks?offset={height}")["items"] == []


def test_block_detail_has_its_header_bytes_signature_and_transactions(client: TestClient, world: a.World) -> None:
    b = get(client, "/v1/blocks/2")  # the block of dgc-0's three readings
    stored = world.node.store.block(2)
    assert stored is not None
    h = stored.header
    assert (b["height"], b["hash"], b["prev_hash"], b["time"]) == (2, h.hash.hex(), h.prev_hash.hex(), k.NOW)
    assert (b["tx_root"], b["results_root"], b["state_root"]) == \
        (h.tx_root.hex(), h.results_root.hex(), h.state_root.hex())
    assert (b["chain_id"], b["tx_count"], b["time_jst"]) == (k.CHAIN, 1, "2026-07-01T00:00:00+09:00")
    header = bytes.fromhex(b["header"])
    assert sha256(header).hex() == b["hash"] and Header.decode(header) == h
    assert verify(k.key("sequencer").public_key, header, bytes.fromhex(b["signature"]))
    assert b["txs"] == [{"index": 0, "tx_hash": world.ids["readings_tx"], "kind": "submit_readings", "ok": True,
                         "signer": ""}]


def test_tx_has_its_bytes_and_an_inclusion_proof(client: TestClient, world: a.World) -> None:
    txh = world.ids["transfer_tx"]
    t = get(client, f"/v1/tx/{txh}")
    raw = bytes.fromhex(t["raw"])
    assert sha256(raw).hex() == txh
    assert (t["kind"], t["signer"], t["ok"], t["error"], t["index"]) == ("transfer", k.OWNER, True, None, 0)
    assert [(e["type"], e["lot_id"], e["sender"], e["recipient"], e["start_unit"], e["end_unit"])
            for e in t["events"]] == [("transferred", a.LOT_A, k.OWNER, k.BUYER, 1, 101)]
    p = t["proof"]
    assert (p["height"], p["index"], p["size"], p["verified"]) == (t["height"], 0, 1, True)
    assert p["leaf"] == leaf_hash(raw).hex()
    assert verify_proof(leaf_hash(raw), 0, 1, [bytes.fromhex(x) for x in p["path"]], bytes.fromhex(p["tx_root"]))
    header = bytes.fromhex(t["block"]["header"])
    assert Header.decode(header).tx_root.hex() == p["tx_root"] and sha256(header).hex() == t["block"]["hash"]


def test_state_proof_of_a_lot_against_the_head(client: TestClient, world: a.World) -> None:
    p = get(client, f"/v1/proofs/state/l/{a.LOT_A}")
    assert (p["key"], p["verified"], p["block_height"]) == (f"l/{a.LOT_A}", True, world.node.state.height)
    assert p["state_root"] == p["header_state_root"] == world.node.state.tree.root().hex()
    assert p["block"]["height"] == world.node.state.height
    assert Header.decode(bytes.fromhex(p["block"]["header"])).state_root.hex() == p["state_root"]
    absent = get(client, "/v1/proofs/state/l/no-such-lot")
    assert absent["value"] is None and absent["verified"] is True


def test_the_supply_record_which_holds_all_jpy_deposited_is_proven_only_to_the_operator(client: TestClient) -> None:
    path = "/v1/proofs/state/s"
    assert_error(get(client, path, 401), "bad_signature", "X-Crev-Account")
    r = signed(client, path, k.OWNER)
    assert r.status_code == 403, r.text
    assert_error(r.json(), "forbidden", "X-Crev-Account")
    r = signed(client, path, k.OPERATOR)
    assert r.status_code == 200, r.text
    assert r.json()["key"] == "s" and r.json()["verified"] is True


# --- registry ---------------------------------------------------------------------------------


def test_participants_filter_by_role(client: TestClient) -> None:
    page = get(client, "/v1/participants?role=prosumer")
    assert page["total"] == 1 and [p["account_id"] for p in page["items"]] == [k.OWNER]
    p = page["items"][0]
    assert (p["name"], p["role"], p["public_key"], p["devices"]) == \
        ("Sun Co", "prosumer", k.key(k.OWNER).public_key.hex(), ["dgc-0", "dgc-1"])
    everyone = get(client, "/v1/participants?limit=2&offset=1")
    assert (everyone["total"], [p["account_id"] for p in everyone["items"]]) == (3, [k.OPERATOR, k.OWNER])
    assert get(client, f"/v1/participants/{k.BUYER}")["devices"] == []


def test_devices_list_and_detail(client: TestClient) -> None:
    page = get(client, "/v1/devices?owner=sun-co&grid_area=tokyo&limit=1")
    assert (page["total"], [d["device_id"] for d in page["items"]]) == (2, ["dgc-0"])
    assert get(client, "/v1/devices?grid_area=kansai")["total"] == 0
    d = get(client, "/v1/devices/dgc-0")
    assert (d["owner"], d["rated_capacity_w"], d["grid_area"], d["status"], d["readings"], d["issued_g"]) == \
        (k.OWNER, k.CAPACITY_W, "tokyo", "active", 3, 1_350)
    assert d["location"] == {"lat": 35.681236, "lon": 139.767125}
    assert d["last_reading"]["seq"] == 3 and d["last_reading"]["import_wh"] == 800
    assert d["last_reading"]["interval_start_jst"] == "2026-06-01T22:00:00+09:00"
    # the ledger's latest block is on 2026-07-01; every reading is from June
    assert d["today"] == {"date_jst": "2026-07-01", "generation_wh": 0, "self_consumed_wh": 0, "demand_wh": 0}
    assert [(r["seq"], r["generation_wh"], r["import_wh"], r["export_wh"], r["demand_wh"], r["lot_id"])
            for r in d["recent_readings"]] == [(3, 0, 800, 0, 800, ""), (2, 1_000, 1_500, 0, 2_500, a.LOT_B),
                                               (1, 3_000, 0, 1_000, 2_000, a.LOT_A)]
    assert d["keys"] == [{"public_key": k.key("dev/dgc-0").public_key.hex(), "valid_from": 0, "valid_until": 0,
                          "revoked": False}]


# --- C-REV ------------------------------------------------------------------------------------


def test_lots_page_newest_first(client: TestClient, world: a.World) -> None:
    page = get(client, "/v1/lots?offset=1&limit=2")
    assert (page["total"], page["offset"], page["limit"]) == (4, 1, 2)
    assert [(x["lot_id"], x["first_unit"], x["quantity_g"]) for x in page["items"]] == \
        [(a.LOT_C, 1_351, 315), (a.LOT_B, 901, 450)]
    lot_b = page["items"][1]
    assert lot_b == {"lot_id": a.LOT_B, "device_id": "dgc-0", "owner": k.OWNER, "first_unit": 901, "quantity_g": 450,
                     "slot_start": a.SLOT_B, "slot_start_jst": "2026-06-01T12:30:00+09:00",
                     "self_consumed_wh": 1_000, "factor_g_per_kwh": 450, "origin": "reading", "height": 2,
                     "tx_hash": world.ids["readings_tx"],
                     # no smart-meter values, and the head is 30 days past the slot: final by time
                     "finality": "final", "reconciliation": None}
    assert [x["lot_id"] for x in get(client, "/v1/lots?device_id=dgc-1")["items"]] == [a.LOT_D, a.LOT_C]
    assert get(client, "/v1/lots?owner=buyer-co")["total"] == 0  # lots are listed by who they were issued to
    assert get(client, "/v1/lots?offset=4")["items"] == []


def test_lot_record_shows_who_holds_each_range(client: TestClient, world: a.World) -> None:
    lot = get(client, f"/v1/lots/{a.LOT_A}")
    assert (lot["first_unit"], lot["last_unit"], lot["quantity_g"], lot["issued_to"]) == (1, 900, 900, k.OWNER)
    assert (lot["self_consumed_wh"], lot["factor_g_per_kwh"], lot["factor"], lot["factor_source"]) == \
        (2_000, 450, "tokyo/2025/adjusted", "test fixture")
    assert lot["segments"] == [
        {"start": 1, "end": 50, "holder": k.BUYER, "status": "retired", "ref": a.RETIREMENT},
        {"start": 51, "end": 400, "holder": k.BUYER, "status": "tradable", "ref": ""},
        {"start": 401, "end": 900, "holder": k.OWNER, "status": "tradable", "ref": ""}]
    sp = lot["state_proof"]
    assert (sp["key"], sp["verified"], sp["state_root"]) == \
        (f"l/{a.LOT_A}", True, world.node.state.tree.root().hex())


@pytest.mark.parametrize(("unit", "lot", "holder", "status", "ref"), [
    (1, a.LOT_A, k.BUYER, "retired", a.RETIREMENT),
    (400, a.LOT_A, k.BUYER, "tradable", ""),
    (401, a.LOT_A, k.OWNER, "tradable", ""),
    (901, a.LOT_B, k.OWNER, "escrowed", "o-00000004"),  # the resting spot offer
    (1_001, a.LOT_B, k.BUYER, "tradable", ""),  # bought in the call auction
    (1_980, a.LOT_D, k.OWNER, "tradable", ""),  # the last unit issued
])
def test_units(client: TestClient, unit: int, lot: str, holder: str, status: str, ref: str) -> None:
    assert get(client, f"/v1/units/{unit}") == {"unit_id": unit, "lot_id": lot, "holder": holder, "status": status,
                                                "ref": ref}


def test_retirements_list_and_detail(client: TestClient, world: a.World) -> None:
    page = get(client, f"/v1/retirements?account={k.BUYER}")
    assert page["total"] == 1
    r = page["items"][0]
    assert (r["retirement_id"], r["account"], r["beneficiary"], r["purpose"], r["quantity_g"], r["note"]) == \
        (a.RETIREMENT, k.BUYER, "Buyer Co", "re100", 50, "FY2026")
    assert (r["period"]["first_day_jst"], r["period"]["last_day_jst"]) == ("2026-04-01", "2027-03-31")
    assert r["tx_hash"] == world.ids["retire_tx"]
    assert get(client, f"/v1/retirements?account={k.OWNER}")["total"] == 0
    one = get(client, f"/v1/retirements/{a.RETIREMENT}")
    assert one["ranges"] == [[a.LOT_A, 1, 50]]
    assert one["proof"]["tx_hash"] == world.ids["retire_tx"] and one["proof"]["verified"] is True
    assert one["state_proof"]["key"] == f"t/{a.RETIREMENT}" and one["state_proof"]["verified"] is True


def test_certificate_pdf_and_qr(client: TestClient) -> None:
    r = client.get(f"/v1/retirements/{a.RETIREMENT}/certificate.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-") and len(r.content) > 2_000
    assert r.headers["content-disposition"] == f'inline; filename="{a.RETIREMENT}.pdf"'
    q = client.get(f"/v1/retirements/{a.RETIREMENT}/qr.svg")
    assert q.status_code == 200 and q.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in q.content


def test_trace_of_a_retirement_carries_what_a_browser_needs(client: TestClient, world: a.World) -> None:
    t = get(client, f"/v1/trace/{a.RETIREMENT}")
    assert (t["kind"], t["query"], t["height"]) == ("retirement", a.RETIREMENT, world.node.state.height)
    [lot] = t["lots"]
    assert (lot["lot_id"], lot["units_traced"], lot["quantity_g_traced"]) == (a.LOT_A, [[1, 50]], 50)
    steps = lot["steps"]
    assert [s["step"] for s in steps] == ["signed_reading", "issued", "transferred", "retired", "current_state"]
    reading, issued, moved, retired = steps[:4]
    assert (reading["seq"], reading["generation_wh"], reading["export_wh"], reading["signature_verified"]) == \
        (1, 3_000, 1_000, True)
    assert (issued["units"], issued["quantity_g"]) == ([1, 900], 900)
    assert (moved["units"], moved["from"], moved["to"]) == ([1, 100], k.OWNER, k.BUYER)
    assert (retired["units"], retired["retirement_id"]) == ([1, 50], a.RETIREMENT)
    # the blocks map holds every height a proof refers to, with header bytes and signature
    heights = {s["proof"]["height"] for s in steps[:4]} | {t["retirement"]["proof"]["height"]}
    heights.add(world.node.state.height)  # the state proofs' block
    assert set(t["blocks"]) == {str(h) for h in heights}
    for h, b in t["blocks"].items():
        header = bytes.fromhex(b["header"])
        assert sha256(header).hex() == b["hash"] and Header.decode(header).height == int(h)
        assert verify(k.key("sequencer").public_key, header, bytes.fromhex(b["signature"]))
    for s in [*steps[:4], t["retirement"]]:
        p = s["proof"]
        raw = bytes.fromhex(t["raw_txs"][p["tx_hash"]])
        assert sha256(raw).hex() == p["tx_hash"] == s["tx_hash"]
        root = Header.decode(bytes.fromhex(t["blocks"][str(p["height"])]["header"])).tx_root
        assert verify_proof(leaf_hash(raw), p["index"], p["size"], [bytes.fromhex(x) for x in p["path"]], root)
    # the signed reading's bytes hash to its reading hash and carry the device's signature
    rb = bytes.fromhex(reading["reading_bytes"])
    assert sha256(rb).hex() == reading["reading_hash"] == world.node.state.lots[a.LOT_A].reading_hash.hex()
    fields = decode(rb)
    assert fields[2:9] == ["dgc-0", 1, a.SLOT_A, 1_800, 3_000, 0, 1_000]
    assert fields[12].hex() == reading["signature"]
    assert t["retirement"]["ranges"] == [[a.LOT_A, 1, 50]]
    # each transaction's bytes once, not once per step
    assert set(t["raw_txs"]) == {s["proof"]["tx_hash"] for s in [*steps[:4], t["retirement"]]}


def test_trace_of_a_unit_and_of_a_tx_hash(client: TestClient, world: a.World) -> None:
    t = get(client, "/v1/trace/1001")
    assert [lot["lot_id"] for lot in t["lots"]] == [a.LOT_B]
    by_tx = get(client, f"/v1/trace/{world.ids['trade_tx']}")
    assert by_tx["kind"] == "tx" and by_tx["transaction"]["kind"] == "place_order"
    assert set(by_tx["blocks"]) == {str(by_tx["transaction"]["height"])}


# --- consumer figures -------------------------------------------------------------------------

# dgc-0's slots (apikit): location-based factor tokyo basic 420, market-based tokyo adjusted 450.
#   12:00  demand 2,000, import 0: location 0; gross ⌈2,000 × 0.45⌉ = 900. sun-co still holds
#          900 − 100 (transferred) − 300 (sold) = 500 g of lot A: claimed Wh ⌊2,000 × 500 / 900⌋ = 1,111
#          → market 900 − 500 = 400, renewable ⌊1,111 / 2,000⌋ = 5,555 bp, average ⌈400 / 2⌉ = 200 g/kWh
#   12:30  demand 2,500, import 1,500: location ⌈1,500 × 0.42⌉ = 630; gross ⌈2,500 × 0.45⌉ = 1,125;
#          holds 450 − 100 (call auction) = 350 g of lot B (the 100 g escrowed in an offer still count):
#          claimed Wh ⌊1,000 × 350 / 450⌋ = 777 → market 775, renewable 3,108 bp, average 310
#   22:00  demand 800, import 800: location 336, gross 360, nothing claimed → market 360, average 450
SLOT_12 = {"generation_wh": 3_000, "import_wh": 0, "export_wh": 1_000, "demand_wh": 2_000,
           "self_consumed_wh": 2_000, "claimed_wh": 1_111, "claimed_g": 500, "location_based_g": 0,
           "market_based_g": 400, "onsite_share_bp": 10_000, "renewable_share_bp": 5_555,
           "average_factor_g_per_kwh": 200}
SLOT_1230 = {"generation_wh": 1_000, "import_wh": 1_500, "export_wh": 0, "demand_wh": 2_500,
             "self_consumed_wh": 1_000, "claimed_wh": 777, "claimed_g": 350, "location_based_g": 630,
             "market_based_g": 775, "onsite_share_bp": 4_000, "renewable_share_bp": 3_108,
             "average_factor_g_per_kwh": 310}
SLOT_22 = {"generation_wh": 0, "import_wh": 800, "export_wh": 0, "demand_wh": 800, "self_consumed_wh": 0,
           "claimed_wh": 0, "claimed_g": 0, "location_based_g": 336, "market_based_g": 360, "onsite_share_bp": 0,
           "renewable_share_bp": 0, "average_factor_g_per_kwh": 450}
# the site's total: sums first, ratios from the sums. renewable ⌊1,888 × 10⁴ / 5,300⌋ = 3,562; 24/7
# matching Σ min(claimed Wh, demand) per slot / Σ demand = (1,111 + 777 + 0) / 5,300 = 3,562 bp too
# (no slot claims more than its demand); average ⌈1,535 × 1000 / 5,300⌉ = 290 g/kWh
DGC0_TOTAL = {"generation_wh": 4_000, "import_wh": 2_300, "export_wh": 1_000, "demand_wh": 5_300,
              "self_consumed_wh": 3_000, "claimed_wh": 1_888, "claimed_g": 850, "location_based_g": 966,
              "market_based_g": 1_535, "onsite_share_bp": 5_660, "renewable_share_bp": 3_562,
              "average_factor_g_per_kwh": 290}


def test_figures_of_one_site_by_hand(client: TestClient) -> None:
    f = get(client, "/v1/figures/sun-co?site=dgc-0")
    assert (f["participant"], f["name"], f["role"], f["site"]) == (k.OWNER, "Sun Co", "prosumer", "dgc-0")
    assert [{k_: v for k_, v in s.items() if k_ not in ("slot_start", "slot_start_jst")} for s in f["slots"]] == \
        [SLOT_12, SLOT_1230, SLOT_22]
    assert [(s["slot_start"], s["slot_start_jst"]) for s in f["slots"]] == [
        (a.SLOT_A, "2026-06-01T12:00:00+09:00"), (a.SLOT_B, "2026-06-01T12:30:00+09:00"),
        (a.SLOT_NIGHT, "2026-06-01T22:00:00+09:00")]
    assert f["total"] == DGC0_TOTAL
    assert f["fiscal_year_to_date"] == DGC0_TOTAL  # all in FY2026, before the ledger's clock
    assert f["by_day"] == {"2026-06-01": DGC0_TOTAL}
    assert f["matching_247_bp"] == 3_562
    assert f["now"] == {"slot_start": a.SLOT_NIGHT, "slot_start_jst": "2026-06-01T22:00:00+09:00", **SLOT_22}
    assert f["factors"]["dgc-0"] == {"grid_area": "tokyo", "location_based": {"tokyo/2025/basic": 420},
                                     "market_based": {"tokyo/2025/adjusted": 450}}


def test_figures_of_a_participant_with_two_sites(client: TestClient) -> None:
    f = get(client, "/v1/figures/sun-co")
    # dgc-1: two 1-minute readings G 800, I 300, E 100 in the 09:00 slot, both lots still held:
    # demand 2,000, self-consumed 1,400 = claimed Wh; location ⌈600 × 0.42⌉ = 252; gross 900 − 630 = 270
    dgc1 = {"generation_wh": 1_600, "import_wh": 600, "export_wh": 200, "demand_wh": 2_000,
            "self_consumed_wh": 1_400, "claimed_wh": 1_400, "claimed_g": 630, "location_based_g": 252,
            "market_based_g": 270, "onsite_share_bp": 7_000, "renewable_share_bp": 7_000,
            "average_factor_g_per_kwh": 135}
    assert f["sites"] == [{"device_id": "dgc-0", "grid_area": "tokyo", "rated_capacity_w": k.CAPACITY_W,
                           **DGC0_TOTAL, "matching_247_bp": 3_562},
                          {"device_id": "dgc-1", "grid_area": "tokyo", "rated_capacity_w": k.CAPACITY_W,
                           **dgc1, "matching_247_bp": 7_000}]
    t = f["total"]
    assert (t["demand_wh"], t["claimed_wh"], t["market_based_g"], t["location_based_g"]) == \
        (7_300, 3_288, 1_805, 1_218)
    # (1,111 + 777 + 0 + 1,400) / 7,300
    assert f["matching_247_bp"] == 3_288 * 10_000 // 7_300 == 4_504
    assert [s["slot_start"] for s in f["slots"]] == [k.T0 + 9 * 3600, a.SLOT_A, a.SLOT_B, a.SLOT_NIGHT]
    assert f["bought_g"] == 0


def test_figures_of_a_buyer_count_what_it_holds_and_retired(client: TestClient) -> None:
    f = get(client, "/v1/figures/buyer-co")
    # lot A: 1–50 retired, 51–400 held → 400 g of 900 = ⌊2,000 × 400 / 900⌋ = 888 Wh;
    # lot B: 100 g of 450 from the auction → ⌊1,000 × 100 / 450⌋ = 222 Wh. No demand of its own.
    assert f["bought_g"] == 500 and f["sites"] == []
    assert [(s["slot_start"], s["claimed_g"], s["claimed_wh"], s["demand_wh"]) for s in f["slots"]] == \
        [(a.SLOT_A, 400, 888, 0), (a.SLOT_B, 100, 222, 0)]
    assert (f["total"]["claimed_g"], f["total"]["market_based_g"], f["matching_247_bp"]) == (500, 0, 0)


def test_figures_between_dates(client: TestClient) -> None:
    inside = get(client, "/v1/figures/sun-co?site=dgc-0&from=2026-06-01&to=2026-06-01")
    assert len(inside["slots"]) == 3 and inside["by_day"] == {"2026-06-01": DGC0_TOTAL}
    after = get(client, "/v1/figures/sun-co?site=dgc-0&from=2026-06-02")
    assert (after["slots"], after["by_day"]) == ([], {})
    assert after["total"] == DGC0_TOTAL  # from/to bound by_day and slots only
    err = get(client, "/v1/figures/sun-co?from=2026-06-02&to=2026-06-01", 400)
    assert_error(err, "malformed", "from")
    assert_error(get(client, "/v1/figures/sun-co?to=2026-02-30", 400), "malformed", "to")
    light = get(client, "/v1/figures/sun-co?site=dgc-0&slots=false")
    assert light["slots"] is None and light["total"] == DGC0_TOTAL and light["matching_247_bp"] == 3_562
    assert_error(get(client, "/v1/figures/sun-co?slots=maybe", 400), "malformed", "slots")
    assert_error(get(client, "/v1/figures/sun-co?from=2026-06-01T00", 400), "malformed", "from")


# --- market -----------------------------------------------------------------------------------


def test_markets(client: TestClient, world: a.World) -> None:
    page = get(client, "/v1/markets")
    assert page["total"] == 2
    rows = {m["market_id"]: m for m in page["items"]}
    assert rows["spot"] == {"market_id": "spot", "name": "Spot", "mode": "continuous", "open": True, "price_min": 1,
                            "price_max": 10**9, "min_qty_g": 100, "fee_bp": 100, "best_bid": 1_500_000,
                            "best_ask": 2_500_000, "last_price": 2_000_000, "next_clear": 0}
    assert (rows["call"]["mode"], rows["call"]["last_price"], rows["call"]["next_clear"]) == \
        ("call", 150_000, world.ids["auction_time"] + 1_800)


def test_book(client: TestClient) -> None:
    assert get(client, "/v1/markets/spot/book") == {
        "market_id": "spot", "bids": [{"price": 1_500_000, "quantity_g": 200, "orders": 1}],
        "asks": [{"price": 2_500_000, "quantity_g": 100, "orders": 1}], "spread": 1_000_000}
    assert get(client, "/v1/markets/call/book") == {"market_id": "call", "bids": [], "asks": [], "spread": None}
    assert_error(get(client, "/v1/markets/spot/book?depth=0", 400), "malformed", "depth")


def test_trades(client: TestClient, world: a.World) -> None:
    page = get(client, "/v1/markets/spot/trades")
    assert (page["total"], page["offset"], page["limit"]) == (1, 0, 50)
    t = page["items"][0]
    assert (t["trade_id"], t["price"], t["quantity_g"], t["value_jpy"], t["buyer"], t["seller"]) == \
        ("tr-00000001", 2_000_000, 300, 600, k.BUYER, k.OWNER)
    assert (t["fee_buyer_jpy"], t["fee_seller_jpy"], t["aggressor"], t["tx_hash"]) == \
        (6, 6, "bid", world.ids["trade_tx"])
    assert (t["bid_order"], t["offer_order"], t["time_jst"]) == \
        ("o-00000002", "o-00000001", "2026-07-01T00:00:00+09:00")
    assert t["lots"] == [[a.LOT_A, 101, 400]]  # [lot, first unit, last unit]
    call = get(client, "/v1/markets/call/trades")["items"]
    assert [(x["trade_id"], x["price"], x["quantity_g"], x["value_jpy"], x["fee_buyer_jpy"], x["aggressor"])
            for x in call] == [("tr-00000002", 150_000, 100, 15, 0, "auction")]
    assert get(client, "/v1/markets/spot/trades?offset=1")["items"] == []


def test_auctions(client: TestClient, world: a.World) -> None:
    page = get(client, "/v1/markets/call/auctions")
    assert page["total"] == 1
    [x] = page["items"]
    assert (x["market_id"], x["price"], x["volume_g"], x["bids"], x["asks"], x["time"]) == \
        ("call", 150_000, 100, 1, 1, world.ids["auction_time"])
    assert x["height"] == world.node.state.height
    assert get(client, "/v1/markets/spot/auctions")["total"] == 0


# --- private ----------------------------------------------------------------------------------


def test_balances_of_buyer_and_seller(client: TestClient) -> None:
    r = signed(client, f"/v1/accounts/{k.BUYER}", k.BUYER)
    assert r.status_code == 200, r.text
    # 100,000 deposited − 606 (spot trade + fee) − 15 (auction) − 303 reserved for the resting bid
    assert r.json() == {"account_id": k.BUYER, "name": "Buyer Co", "role": "buyer", "nonce": 4,
                        "tradable_g": 350 + 100, "escrowed_g": 0, "retired_g": 50, "jpy": 99_076,
                        "jpy_escrowed": 303}
    r = signed(client, f"/v1/accounts/{k.OWNER}", k.OWNER)
    # held: lot A 401–900 (500), lot B 250 tradable + 100 escrowed, dgc-1 630; JPY 600 − 6 + 15
    assert r.json() == {"account_id": k.OWNER, "name": "Sun Co", "role": "prosumer", "nonce": 4,
                        "tradable_g": 500 + 250 + 630, "escrowed_g": 100, "retired_g": 0, "jpy": 609,
                        "jpy_escrowed": 0}


def test_orders_of_an_account_newest_first_with_pagination(client: TestClient) -> None:
    r = signed(client, f"/v1/accounts/{k.BUYER}/orders", k.BUYER)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 3
    assert [(o["order_id"], o["market_id"], o["side"], o["price"], o["quantity_g"], o["remaining_g"], o["status"])
            for o in page["items"]] == [
        ("o-00000006", "call", "bid", 200_000, 100, 0, "filled"),
        ("o-00000003", "spot", "bid", 1_500_000, 200, 200, "open"),
        ("o-00000002", "spot", "bid", 2_000_000, 300, 0, "filled")]
    path = f"/v1/accounts/{k.BUYER}/orders?offset=1&limit=1"
    r = signed(client, path, k.BUYER)
    assert r.status_code == 200, r.text
    assert ([o["order_id"] for o in r.json()["items"]], r.json()["total"]) == (["o-00000003"], 3)


def test_monthly_statement_json_csv_pdf(client: TestClient, world: a.World) -> None:
    r = signed(client, f"/v1/accounts/{k.BUYER}/statements/2026-07", k.BUYER)
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["account_id"], s["month"], s["opening_jpy"], s["closing_jpy"]) == (k.BUYER, "2026-07", 0, 99_379)
    assert (s["bought_g"], s["sold_g"], s["retired_g"], s["fees_paid_jpy"]) == (400, 0, 50, 6)
    assert [(x["kind"], x["quantity_g"], x["value_jpy"], x["fee_jpy"], x["net_jpy"]) for x in s["lines"]] == [
        ("deposit", 0, 100_000, 0, 100_000), ("bought", 300, 600, 6, -606), ("retired", 50, 0, 0, 0),
        ("bought", 100, 15, 0, -15)]
    r = signed(client, f"/v1/accounts/{k.BUYER}/statements/2026-07.csv", k.BUYER)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:4] == ["# statement", k.BUYER, "Buyer Co", "2026-07"]
    assert [row[1] for row in rows[2:6]] == ["deposit", "bought", "retired", "bought"]
    r = signed(client, f"/v1/accounts/{k.BUYER}/statements/2026-07.pdf", k.BUYER)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-") and len(r.content) > 2_000
    r = signed(client, f"/v1/accounts/{k.BUYER}/statements/2026-06", k.BUYER)
    assert r.status_code == 200 and r.json()["lines"] == [] and r.json()["closing_jpy"] == 0
    for bad in ("2026-13", "2026-7x", "2026-07.xls", "1999-12"):
        r = signed(client, f"/v1/accounts/{k.BUYER}/statements/{bad}", k.BUYER)
        assert r.status_code == 400, bad
        assert_error(r.json(), "malformed", "month")


def test_private_requests_refused(client: TestClient) -> None:
    path = f"/v1/accounts/{k.OWNER}"
    assert_error(client.get(path).json(), "bad_signature", "X-Crev-Account")
    r = signed(client, path, k.OWNER, nonce="0123456789abcdef")
    assert r.status_code == 200
    r = signed(client, path, k.OWNER, nonce="0123456789abcdef")  # the same nonce again: a replay
    assert r.status_code == 409
    assert_error(r.json(), "conflict", "X-Crev-Nonce")
    r = signed(client, path, k.OWNER, now=int(time.time()) - 301)
    assert r.status_code == 401
    assert "more than 300 s" in assert_error(r.json(), "bad_signature", "X-Crev-Time")
    r = signed(client, path, k.BUYER)  # buyer-co signs correctly, but for sun-co's data
    assert r.status_code == 403
    assert_error(r.json(), "forbidden", "X-Crev-Account")
    r = signed(client, f"/v1/accounts/{k.OWNER}/orders", k.OWNER, key_of="mallory")
    assert r.status_code == 401
    assert_error(r.json(), "bad_signature", "X-Crev-Signature")
    # signed for one path, sent to another
    headers = sign_request(k.key(k.OWNER), k.OWNER, "GET", path, int(time.time()))
    r = client.get(path + "/orders", headers=headers)
    assert r.status_code == 401
    assert_error(r.json(), "bad_signature", "X-Crev-Signature")
    r = signed(client, "/v1/accounts/nobody", k.OPERATOR)  # the operator may read anyone: unknown → 404
    assert r.status_code == 404
    assert_error(r.json(), "not_found", "account_id")
    r = signed(client, path, k.OWNER, nonce="XYZ")
    assert r.status_code == 401
    assert_error(r.json(), "bad_signature", "X-Crev-Nonce")


# --- errors, pagination -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "field"), [
    ("/v1/lots?limit=0", "limit"), ("/v1/lots?limit=501", "limit"), ("/v1/lots?offset=-1", "offset"),
    ("/v1/blocks?limit=x", "limit"), ("/v1/participants?offset=1.5", "offset"),
    ("/v1/devices?limit=", "limit"), ("/v1/retirements?offset=1000000001", "offset"),
    ("/v1/markets/spot/trades?limit=9999", "limit"), ("/v1/blocks/0", "height"), ("/v1/blocks/x", "height"),
    ("/v1/units/0", "unit_id"), ("/v1/units/-3", "unit_id"), ("/v1/tx/xyz", "tx_hash"),
    ("/v1/tx/" + "ab" * 31, "tx_hash"),
    ("/v1/figures/sun-co?from=2026-06", "from"),
    # regressions: datetime.date.fromisoformat alone also takes these
    ("/v1/figures/sun-co?to=20260601xx", "to"), ("/v1/figures/sun-co?from=2026-W01", "from"),
    ("/v1/figures/sun-co?from=20260601", "from"),
    # regression: a key of no record kind was a KeyError → 500
    ("/v1/proofs/state/0", "key"), ("/v1/proofs/state/zz/1", "key"),
])
def test_bad_parameters_are_400_naming_the_field(client: TestClient, path: str, field: str) -> None:
    assert_error(get(client, path, 400), "malformed", field)


def test_largest_page_and_its_bounds(client: TestClient, world: a.World) -> None:
    page = get(client, "/v1/blocks?limit=500&offset=0")
    assert (page["limit"], page["total"], len(page["items"])) == (500, world.node.state.height,
                                                                 world.node.state.height)
    assert get(client, "/v1/lots?offset=1000000000&limit=1") == {"items": [], "total": 4, "offset": 10**9,
                                                                  "limit": 1}


@pytest.mark.parametrize(("path", "field", "named"), [
    ("/v1/participants/nobody", "account_id", "nobody"), ("/v1/devices/dgc-9", "device_id", "dgc-9"),
    ("/v1/lots/dgc-0:20260601T0000", "lot_id", "dgc-0:20260601T0000"), ("/v1/units/1981", "unit_id", "1981"),
    ("/v1/retirements/ret-00000002", "retirement_id", "ret-00000002"),
    ("/v1/retirements/ret-00000002/certificate.pdf", "retirement_id", "ret-00000002"),
    ("/v1/retirements/ret-00000002/qr.svg", "retirement_id", "ret-00000002"),
    ("/v1/blocks/999", "height", "999"), ("/v1/tx/" + "ab" * 32, "tx_hash", "ab" * 32),
    ("/v1/markets/nope/book", "market_id", "nope"), ("/v1/markets/nope/trades", "market_id", "nope"),
    ("/v1/markets/nope/auctions", "market_id", "nope"), ("/v1/figures/nobody", "participant", "nobody"),
    ("/v1/figures/sun-co?site=dgc-9", "site", "dgc-9"), ("/v1/figures/buyer-co?site=dgc-0", "site", "dgc-0"),
    ("/v1/trace/ret-00000009", None, "ret-00000009"), ("/v1/trace/5000", None, "5000"),
    ("/v1/nothing", "path", "/v1/nothing"),
])
def test_unknown_ids_are_404_naming_the_field(client: TestClient, path: str, field: str | None, named: str) -> None:
    payload = get(client, path, 404)
    err = payload["error"]
    assert set(err) == {"code", "field", "reason"} and err["code"] == "not_found"
    if field is not None:
        assert err["field"] == field
    assert named in err["reason"]


def test_openapi_documents_the_error_shape_not_fastapis_422(client: TestClient) -> None:
    doc = get(client, "/openapi.json")
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    ops = [(path, m, op) for path, item in doc["paths"].items() for m, op in item.items()]
    assert len(ops) == 30
    for path, method, op in ops:
        assert "422" not in op["responses"], (method, path)
        assert op["responses"]["4XX"]["content"]["application/json"]["schema"] == \
            {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    body = doc["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error"]
    assert doc["components"]["schemas"]["ErrorDetail"]["required"] == ["code", "field", "reason"]
    assert set(doc["paths"]["/v1/tx"]["post"]["responses"]) == {"200", "202", "4XX", "5XX"}
    statement = doc["paths"]["/v1/accounts/{account_id}/statements/{month}"]["get"]
    assert set(statement["responses"]["200"]["content"]) == {"application/json", "text/csv", "application/pdf"}


def test_method_not_allowed(client: TestClient) -> None:
    r = client.delete("/v1/info")
    assert r.status_code == 405
    assert_error(r.json(), "method_not_allowed", "method")


# --- submitting in process ----------------------------------------------------------------------


def test_submit_wait_and_no_wait(tmp_path: Path) -> None:
    w = a.build(tmp_path)
    try:
        with TestClient(create_app(w.node, rate=0)) as c:
            raw = k.readings_tx([k.reading(1, 2)])
            r = c.post("/v1/tx", content=raw, headers={"Content-Type": "application/cbor"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["tx_hash"], body["committed"], body["ok"], body["height"]) == \
                (sha256(raw).hex(), True, True, w.node.state.height)
            assert body["detail"] == [["accepted", "dgc-1:20260601T0902", 315]]
            raw2 = k.readings_tx([k.reading(1, 3)])
            r = c.post("/v1/tx?wait=false", content=raw2, headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 202 and r.json() == {"tx_hash": sha256(raw2).hex(), "committed": False}
            deadline = time.monotonic() + 30
            while w.node.state.devices["dgc-1"].readings < 4:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            # a ledger rule refuses it: the reading again, but different (same seq, other values)
            clash = k.readings_tx([k.reading(1, 3, g=700)])
            r = c.post("/v1/tx", content=clash, headers={"Content-Type": "application/cbor"})
            assert r.status_code == 409, r.text
            assert_error(r.json(), "conflict", "readings[0].seq")
            assert r.json()["tx_hash"] == sha256(clash).hex()
            # a signed transaction with a nonce the signer already used: 409 bad_nonce, not a forgery
            stale = build_tx(k.CHAIN, Transfer(k.BUYER, ((a.LOT_A, 1),), ""), k.OWNER, 0, k.key(k.OWNER))
            r = c.post("/v1/tx", content=stale, headers={"Content-Type": "application/cbor"})
            assert r.status_code == 409, r.text
            reason = assert_error(r.json(), "bad_nonce", "tx.nonce")
            assert reason.startswith(f"is 0, expected {w.node.state.accounts[k.OWNER].nonce} ")
    finally:
        w.node.close()


# --- limits -----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(world: a.World) -> None:
    with TestClient(create_app(world.node, rate=1, burst=3)) as c:
        assert [c.get("/v1/info").status_code for _ in range(3)] == [200, 200, 200]
        r = c.get("/v1/info")
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        assert "retry in" in assert_error(r.json(), "rate_limited", "client")


def test_body_limits_and_content_type(client: TestClient) -> None:
    r = client.request("GET", "/v1/info", content=b"x" * (BODY_LIMIT + 1))
    assert r.status_code == 413
    assert str(BODY_LIMIT + 1) in assert_error(r.json(), "too_large", "body")
    assert client.request("GET", "/v1/info", content=b"x" * BODY_LIMIT).status_code == 200
    r = client.post("/v1/tx", content=b"\x80", headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    assert "application/json" in assert_error(r.json(), "unsupported_media_type", "Content-Type")
    r = client.post("/v1/tx", content=b"\x80")
    assert r.status_code == 415
    r = client.post("/v1/tx", content=b"\x80", headers={"Content-Type": "application/cbor"})
    assert r.status_code == 400
    assert_error(r.json(), "malformed", r.json()["error"]["field"])
