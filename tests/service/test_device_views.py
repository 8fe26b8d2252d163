"""The API's read side of smart-meter reconciliation and control records (docs/api.md), in process,
over the hand-computed ledger of tests/service/sitekit.py: lots' finality and its filter, a
device's debt, drift and last control record, its slot tallies and control records (money inputs
withheld from the public), the one error shape for bad parameters, and the stream's events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from crev.ledger.apply import TxResult
from crev.ledger.events import CalibrationDrift, ControlRecorded, DebtRecorded, SlotReconciled
from crev.service.app import create_app
from crev.service.auth import sign_request
from crev.service.live import _stream_items
from tests.node import nodekit as k
from tests.service import sitekit as s


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s.Sites]:
    w = s.build(tmp_path_factory.mktemp("sites") / "ledger")
    try:
        yield w
    finally:
        w.node.close()


@pytest.fixture(scope="module")
def client(sites: s.Sites) -> Iterator[TestClient]:
    with TestClient(create_app(sites.node, rate=0)) as c:
        yield c


def get(client: TestClient, path: str, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    r = client.get(path, headers=headers)
    assert r.status_code == status, (path, r.status_code, r.text)
    return r.json()


def error_of(client: TestClient, path: str) -> tuple[str, str]:
    body = get(client, path, 400)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "field", "reason"}, body
    assert body["error"]["reason"]
    return body["error"]["code"], body["error"]["field"]


# --- lots -----------------------------------------------------------------------------------------


def test_each_lot_carries_its_slots_finality_at_the_heads_block_time(client: TestClient) -> None:
    rows = {x["lot_id"]: x for x in get(client, "/v1/lots?device_id=dgc-0&limit=500")["items"]}
    assert {lid: rows[lid]["finality"] for lid in rows} == {
        s.LOT[s.S10]: "late", s.LOT[s.S11]: "final", s.LOT[s.S12]: "corrected", s.LOT[s.S1230]: "corrected",
        s.LOT[s.S13]: "corrected", s.LOT[s.S1330]: "provisional"}
    assert rows[s.LOT[s.S1330]]["reconciliation"] is None  # no smart-meter values yet
    assert rows[s.LOT[s.S12]]["reconciliation"] == {
        "status": "corrected", "dgc_import_wh": 0, "dgc_export_wh": 1_000, "smart_meter_import_wh": 0,
        "smart_meter_export_wh": 1_200, "tolerance_wh": 24,  # max(1 + 10, ⌊1,200 × 200 / 10,000⌋)
        "issued_g": 900, "standing_g": 810, "target_g": 810}  # ⌊(3,000 − 1,200) × 450 / 1,000⌋


def test_the_finality_filter_keeps_one_kind_and_counts_them(client: TestClient) -> None:
    def ids(q: str) -> tuple[list[str], int]:
        p = get(client, f"/v1/lots?{q}")
        return [x["lot_id"] for x in p["items"]], p["total"]

    assert ids("finality=provisional") == ([s.LOT[s.S1330]], 1)
    assert ids("finality=late") == ([s.LOT[s.S10]], 1)
    assert ids("finality=final") == ([s.LOT[s.S11]], 1)
    # newest first: the top-up (issued last), dgc-1's reading, then dgc-0's 13:00, 12:30, 12:00
    assert ids("finality=corrected") == ([s.TOPUP, s.LOT1, s.LOT[s.S13], s.LOT[s.S1230], s.LOT[s.S12]], 5)
    assert ids("finality=corrected&device_id=dgc-0&offset=1&limit=1") == ([s.LOT[s.S1230]], 3)


def test_a_lot_shows_its_finality_and_a_top_up_its_reconciliation(client: TestClient) -> None:
    topup = get(client, f"/v1/lots/{quote(s.TOPUP)}")
    assert (topup["origin"], topup["quantity_g"], topup["finality"]) == ("reconcile", 90, "corrected")
    # dgc-1 12:00: DGC export 300, smart meter 100 → target ⌊900 × 0.45⌋ = 405 = 315 + a top-up of 90
    assert topup["reconciliation"]["target_g"] == 405 and topup["reconciliation"]["standing_g"] == 405
    assert get(client, f"/v1/lots/{quote(s.LOT[s.S1330])}")["finality"] == "provisional"


def test_bad_finality_is_the_one_error_shape_naming_the_parameter(client: TestClient) -> None:
    assert error_of(client, "/v1/lots?finality=done") == ("malformed", "finality")
    assert error_of(client, "/v1/devices/dgc-0/slots?finality=maybe") == ("malformed", "finality")


# --- a device -------------------------------------------------------------------------------------


def test_a_device_shows_its_debt_drift_and_last_control(client: TestClient) -> None:
    d = get(client, "/v1/devices/dgc-0")
    assert (d["debt_g"], d["debt_repaid_g"]) == (40, 0)  # 90 withdrawn from 12:00, sun-co held only 50
    # 12:00, 12:30, 13:00 (the alert at the third) and the late 10:00: four below the meter
    assert d["drift"] == {"consecutive": 4, "direction": "below", "alert": True, "alert_after_slots": 3,
                          "alerts_raised": 1}
    assert d["last_control"] == {"seq": 3, "slot_start": s.S13, "slot_start_jst": "2026-06-01T13:00:00+09:00",
                                 "applied_at": s.S13 + 600, "applied_at_jst": "2026-06-01T13:10:00+09:00",
                                 "limit_w": 30_000, "export_cap_w": None, "reason": "grid_operator", "height": 6}
    other = get(client, "/v1/devices/dgc-1")
    assert (other["debt_g"], other["drift"]["consecutive"], other["drift"]["direction"], other["drift"]["alert"],
            other["last_control"]) == (0, 1, "above", False, None)
    fleet = {x["device_id"]: x for x in get(client, "/v1/devices")["items"]}
    assert fleet["dgc-0"]["drift"]["alert"] is True and fleet["dgc-0"]["debt_g"] == 40


def test_slots_are_the_tallies_newest_first_with_corrections(client: TestClient) -> None:
    p = get(client, f"/v1/devices/dgc-0/slots?from={s.DAY}&to={s.DAY}")
    assert p["total"] == 6 and [x["slot_start"] for x in p["items"]] == [s.S1330, s.S13, s.S1230, s.S12, s.S11, s.S10]
    by = {x["slot_start"]: x for x in p["items"]}
    assert [by[t]["finality"] for t in (s.S10, s.S11, s.S12, s.S1330)] == ["late", "final", "corrected", "provisional"]
    noon = by[s.S12]
    assert noon == {
        "device_id": "dgc-0", "slot_id": s.S12 // 1800, "slot_start": s.S12,
        "slot_start_jst": "2026-06-01T12:00:00+09:00",
        "status": "corrected", "finality": "corrected", "covered_s": 1800,
        "dgc": {"generation_wh": 3_000, "import_wh": 0, "export_wh": 1_000},
        "smart_meter": {"import_wh": 0, "export_wh": 1_200, "resolution_wh": 1,
                        "item_hash": noon["smart_meter"]["item_hash"]},
        "tolerance": {"import_wh": 11, "export_wh": 24}, "factor_g_per_kwh": 450,
        "issued_g": 900, "withdrawn_g": 90, "standing_g": 810, "target_g": 810,
        "corrections": {"cancelled_g": 50, "topped_up_g": 0, "debt_g": 40},
        "lots": [s.LOT[s.S12]], "reconciled_height": noon["reconciled_height"], "state_key": f"v/dgc-0/{s.S12 // 1800}"}
    assert len(noon["smart_meter"]["item_hash"]) == 64 and noon["reconciled_height"] >= 1
    assert by[s.S10]["corrections"] == {"cancelled_g": 0, "topped_up_g": 0, "debt_g": 0}  # late: never corrected
    # the target is recorded, not applied: ⌊(500 − 50) × 450 / 1,000⌋ = 202, and 225 stands
    assert (by[s.S10]["standing_g"], by[s.S10]["target_g"]) == (225, 202)
    assert by[s.S1330]["smart_meter"] is None and by[s.S1330]["target_g"] is None
    up = get(client, f"/v1/devices/dgc-1/slots?from={s.DAY}&to={s.DAY}")["items"][0]
    assert (up["issued_g"], up["corrections"], up["lots"]) == (
        405, {"cancelled_g": 0, "topped_up_g": 90, "debt_g": 0}, [s.LOT1, s.TOPUP])


def test_slots_page_order_and_filter(client: TestClient) -> None:
    asc = get(client, f"/v1/devices/dgc-0/slots?from={s.DAY}&to={s.DAY}&order=asc&offset=1&limit=2")
    assert [x["slot_start"] for x in asc["items"]] == [s.S11, s.S12] and asc["total"] == 6
    corrected = get(client, f"/v1/devices/dgc-0/slots?from={s.DAY}&to={s.DAY}&finality=corrected")
    assert [x["slot_start"] for x in corrected["items"]] == [s.S13, s.S1230, s.S12]
    # default span: the 7 JST days up to the latest block's (2026-06-02)
    dflt = get(client, "/v1/devices/dgc-0/slots")
    assert dflt["total"] == 6 and dflt["from_jst"] == "2026-05-27T00:00:00+09:00"
    assert dflt["to_jst"] == "2026-06-03T00:00:00+09:00"
    assert get(client, "/v1/devices/dgc-0/slots?from=2026-06-02&to=2026-06-02")["items"] == []


def test_slot_parameters_are_checked(client: TestClient) -> None:
    assert error_of(client, "/v1/devices/dgc-0/slots?from=2026-13-01") == ("malformed", "from")
    assert error_of(client, "/v1/devices/dgc-0/slots?to=yesterday") == ("malformed", "to")
    assert error_of(client, "/v1/devices/dgc-0/slots?from=2026-06-02&to=2026-06-01") == ("malformed", "from")
    assert error_of(client, "/v1/devices/dgc-0/slots?from=2026-01-01&to=2026-06-01") == ("malformed", "to")
    assert error_of(client, "/v1/devices/dgc-0/slots?order=sideways") == ("malformed", "order")
    assert error_of(client, "/v1/devices/dgc-0/slots?limit=501") == ("malformed", "limit")
    assert error_of(client, "/v1/devices/dgc-0/controls?from=06/01/2026") == ("malformed", "from")
    missing = get(client, "/v1/devices/nope/slots", 404)
    assert missing["error"]["field"] == "device_id"
    assert get(client, "/v1/devices/nope/controls", 404)["error"]["field"] == "device_id"


# --- control records ------------------------------------------------------------------------------


def test_control_records_withhold_the_owners_money_inputs_from_the_public(client: TestClient) -> None:
    p = get(client, "/v1/devices/dgc-0/controls")
    assert p["total"] == 3 and [x["seq"] for x in p["items"]] == [3, 2, 1] and p["private_to"] == "sun-co"
    two = p["items"][1]
    assert two == {"seq": 2, "slot_start": s.S12, "slot_start_jst": "2026-06-01T12:00:00+09:00",
                   "applied_at": s.S12 + 300, "applied_at_jst": "2026-06-01T12:05:00+09:00", "limit_w": 40_000,
                   "export_cap_w": 0, "reason": "zero_export",
                   "inputs": {"export_limit_w": 0, "export_value_milli_jpy_per_kwh": None, "crev_price_jpy_per_t": None,
                              "curtail_below_milli_jpy_per_kwh": None, "operator_limit_pct": None},
                   "control_hash": two["control_hash"], "height": 6,
                   "redacted": ["inputs.export_value_milli_jpy_per_kwh", "inputs.crev_price_jpy_per_t",
                                "inputs.curtail_below_milli_jpy_per_kwh"]}
    assert p["items"][0]["inputs"]["operator_limit_pct"] == 30  # the grid operator's limit is public
    ranged = get(client, f"/v1/devices/dgc-0/controls?from={s.DAY}&to={s.DAY}&offset=1&limit=1")
    assert [x["seq"] for x in ranged["items"]] == [2] and ranged["total"] == 3
    assert get(client, "/v1/devices/dgc-0/controls?from=2026-06-02")["total"] == 0


@pytest.mark.parametrize("who", [k.OWNER, k.OPERATOR])
def test_the_owner_and_the_operator_read_the_inputs(client: TestClient, who: str) -> None:
    path = "/v1/devices/dgc-0/controls"
    p = get(client, path, headers=sign_request(k.key(who), who, "GET", path, int(time.time())))
    assert "private_to" not in p and all("redacted" not in x for x in p["items"])
    assert p["items"][2]["inputs"] == {"export_limit_w": None, "export_value_milli_jpy_per_kwh": 8_500,
                                       "crev_price_jpy_per_t": 3_000, "curtail_below_milli_jpy_per_kwh": 1_000,
                                       "operator_limit_pct": None}


def test_a_buyers_signed_request_still_gets_the_public_view(client: TestClient) -> None:
    path = "/v1/devices/dgc-0/controls"
    p = get(client, path, headers=sign_request(k.key(k.BUYER), k.BUYER, "GET", path, int(time.time())))
    assert p["private_to"] == "sun-co" and p["items"][0]["inputs"]["crev_price_jpy_per_t"] is None


def test_the_controls_transaction_withholds_its_bytes_from_the_public(client: TestClient, sites: s.Sites) -> None:
    path = f"/v1/tx/{sites.ids['controls_tx']}"
    pub = get(client, path)
    assert (pub["raw"], pub["proof"], pub["redacted"], pub["private_to"]) == (None, None, ["raw", "proof"], "sun-co")
    assert pub["detail"] == [["accepted", 1], ["accepted", 2], ["accepted", 3]]  # seqs only: public
    mine = get(client, path, headers=sign_request(k.key(k.OWNER), k.OWNER, "GET", path, int(time.time())))
    assert mine["raw"] and mine["proof"] and "redacted" not in mine
    meter = get(client, f"/v1/tx/{sites.ids['meter_tx']}")  # smart-meter values: public, like readings
    assert meter["raw"] and "redacted" not in meter


def test_state_proofs_of_tallies_are_public_and_of_control_records_private(client: TestClient) -> None:
    key = f"v/dgc-0/{s.S12 // 1800}"
    assert get(client, f"/v1/proofs/state/{key}")["key"] == key
    path = "/v1/proofs/state/c/dgc-0/1"
    assert get(client, path, 401)["error"]["code"] == "bad_signature"
    signed = get(client, path, headers=sign_request(k.key(k.OWNER), k.OWNER, "GET", path, int(time.time())))
    assert signed["key"] == "c/dgc-0/1"


# --- the stream -----------------------------------------------------------------------------------


def test_the_stream_announces_reconciliations_drift_debt_and_controls() -> None:
    res = TxResult(b"\x01" * 32, "submit_meter_values", True, None, (
        SlotReconciled("dgc-0", s.S12 // 1800, "corrected", 3_000, 0, 1_000, 0, 1_200, 24, 900, 810, 0, 50, 40),
        DebtRecorded("dgc-0", s.S12 // 1800, 40, 40),
        CalibrationDrift("dgc-0", s.S13 // 1800, "export", 100, 300, 3),
        ControlRecorded("dgc-0", 3, s.S13, s.S13 + 600, 30_000, "grid_operator", b"\x02" * 32)), None)
    assert _stream_items(res, 9, {}) == [
        {"event": "reconciled", "device_id": "dgc-0", "slot_start": s.S12, "status": "corrected",
         "dgc_export_wh": 1_000, "smart_meter_export_wh": 1_200, "tolerance_wh": 24, "issued_g": 900,
         "target_g": 810, "topup_g": 0, "cancelled_g": 50, "debt_g": 40, "height": 9},
        {"event": "debt", "device_id": "dgc-0", "change": "recorded", "quantity_g": 40, "debt_g": 40, "height": 9},
        {"event": "drift", "device_id": "dgc-0", "slot_start": s.S13, "quantity": "export", "dgc_wh": 100,
         "smart_meter_wh": 300, "consecutive": 3, "height": 9},
        {"event": "control", "device_id": "dgc-0", "seq": 3, "slot_start": s.S13, "applied_at": s.S13 + 600,
         "limit_w": 30_000, "reason": "grid_operator", "height": 9}]
