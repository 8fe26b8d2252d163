"""crev trace on a small hand-built ledger: a retirement drawing on two lots traces both, each only
along the units it retired; every printed proof is recomputed here from its hex with
crev.core.merkle / crev.core.statetree and compared with the block headers read straight from
SQLite; periods show their inclusive last day; sub-gram readings carried into a lot are listed.

The ledger (nodekit: tokyo, 450 g/kWh; each reading G 800, I 300, E 100 Wh → 700 Wh → 315 g):

* dgc-0 and dgc-1 read 09:00–09:01 → lots L0 = units 1–315 and L1 = units 316–630 (sun-co)
* sun-co sends buyer-co 100 g of L0 (units 1–100) and 200 g of L1 (units 316–515)
* sun-co retires 50 g of L0 (units 101–150) for June 2026: ret-00000001
* buyer-co retires 60 g of L0 (units 1–60) and 150 g of L1 (units 316–465) for FY2026: ret-00000002
* dgc-2 reads three 1-minute intervals of 1 Wh self-consumption each: 450 mg, 900 mg, then
  1,350 mg → the third issues lot L2 of 1 g (units 631) carrying the first two readings' milligrams
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from crev.audit.trace import trace
from crev.core import merkle
from crev.core.encoding import decode, encode
from crev.core.statetree import bucket_hash, bucket_index, entry_leaf_hash
from crev.core.units import fiscal_year_bounds, parse_time
from crev.errors import NotFoundError
from crev.ledger.block import Header
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.submit_readings import reading_payload
from crev.ledger.messages.transfer import Transfer
from crev.ledger.records import Lot, Retirement
from crev.node.node import LedgerView
from tests.node import nodekit as k

L0, L1, L2 = "dgc-0:20260601T0900", "dgc-1:20260601T0900", "dgc-2:20260601T0902"
JUNE = (parse_time("2026-06-01"), parse_time("2026-07-01"))
FY2026 = fiscal_year_bounds(2026)


def tiny_reading(seq: int) -> list[Any]:
    """dgc-2's seq-th 1-minute reading from 09:00: G 1, I 0, E 0 Wh (1 Wh self-consumed)."""
    start = k.T0 + 9 * 3600 + (seq - 1) * 60
    p = reading_payload(k.CHAIN, "dgc-2", seq, start, 60, 1, 0, 0, 10 + seq, 20, 30)
    return [*p, k.key("dev/dgc-2").sign(encode(p))]


def build_ledger(d: Path) -> Path:
    k.init_dir(d)
    node = k.open_node(d)
    try:
        s = k.register_fleet(node, 3)
        assert node.submit_wait(k.batch(2, 0)).ok
        assert node.submit_wait(s.tx(k.OWNER, Transfer(k.BUYER, ((L0, 100), (L1, 200)), "sale"))).ok
        assert node.submit_wait(s.tx(k.OWNER, Retire(((L0, 50),), "Sun Co", "voluntary", *JUNE, "JP", ""))).ok
        assert node.submit_wait(s.tx(k.BUYER, Retire(((L0, 60), (L1, 150)), "Buyer Co [HQ]", "re100", *FY2026,
                                                     "JP", "FY2026 claim [bold]x[/"))).ok
        for seq in (1, 2, 3):
            assert node.submit_wait(k.readings_tx([tiny_reading(seq)])).ok
    finally:
        node.close()
    return d


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ledger(tmp_path_factory.mktemp("trace") / "ledger")


def do_trace(d: Path, ident: str) -> dict[str, Any]:
    view = LedgerView(d)
    try:
        return trace(view.store, view.state, ident)
    finally:
        view.close()


# --- independent checks: headers and transactions read with plain SQL ---------------------------


def header(d: Path, height: int) -> Header:
    with closing(k.sql(d)) as db:
        return Header.decode(bytes(db.execute("SELECT header FROM blocks WHERE height = ?", (height,)).fetchone()[0]))


def raw_tx(d: Path, tx_hash: str) -> bytes:
    with closing(k.sql(d)) as db:
        return bytes(db.execute("SELECT raw FROM txs WHERE hash = ?", (bytes.fromhex(tx_hash),)).fetchone()[0])


def tx_root_from_proof(p: dict[str, Any]) -> bytes:
    """RFC 6962: fold the audit path from the leaf up (an odd last node is promoted unchanged)."""
    h, i, n = bytes.fromhex(p["leaf"]), p["index"], p["size"]
    path = [bytes.fromhex(x) for x in p["path"]]
    while n > 1:
        if i % 2 == 1:
            h = merkle.node_hash(path.pop(0), h)
        elif i + 1 < n:
            h = merkle.node_hash(h, path.pop(0))
        i, n = i // 2, (n + 1) // 2
    assert path == []
    return h


def check_tx_proof(d: Path, p: dict[str, Any]) -> None:
    assert p["verified"] is True
    assert bytes.fromhex(p["leaf"]) == merkle.leaf_hash(raw_tx(d, p["tx_hash"]))
    hdr = header(d, p["height"])
    assert tx_root_from_proof(p) == hdr.tx_root == bytes.fromhex(p["tx_root"])
    assert merkle.verify_proof(bytes.fromhex(p["leaf"]), p["index"], p["size"],
                               [bytes.fromhex(x) for x in p["path"]], hdr.tx_root)


def state_root_from_proof(sp: dict[str, Any]) -> bytes:
    """The state tree by hand: the key's leaf hash from its value, the bucket hash of the sorted
    entries, then one node hash per level, the bucket index's bits choosing left or right."""
    key, value = sp["key"], bytes.fromhex(sp["value"])
    entries = [(kk, bytes.fromhex(h)) for kk, h in sp["bucket_entries"]]
    assert [kk for kk, _ in entries] == sorted(kk for kk, _ in entries)
    assert dict(entries)[key] == entry_leaf_hash(key, value) == bytes.fromhex(sp["leaf_hash"])
    assert bucket_index(key, sp["depth"]) == sp["bucket"]
    h, i = bucket_hash(hh for _, hh in entries), sp["bucket"]
    assert len(sp["siblings"]) == sp["depth"] == 16
    for sib in (bytes.fromhex(x) for x in sp["siblings"]):
        h = merkle.node_hash(sib, h) if i & 1 else merkle.node_hash(h, sib)
        i >>= 1
    return h


def check_state_proof(d: Path, sp: dict[str, Any]) -> None:
    assert sp["verified"] is True
    root = state_root_from_proof(sp)
    assert root == header(d, sp["block_height"]).state_root == bytes.fromhex(sp["state_root"])
    assert sp["header_state_root"] == sp["state_root"]


def all_proofs(out: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    txp: list[dict[str, Any]] = []
    stp: list[dict[str, Any]] = []
    if "retirement" in out:
        txp.append(out["retirement"]["proof"])
        stp.append(out["retirement"]["state_proof"])
    for lot in out["lots"]:
        for st in lot["steps"]:
            if "proof" in st:
                txp.append(st["proof"])
            if "state_proof" in st:
                stp.append(st["state_proof"])
    return txp, stp


# --- a retirement of two lots -------------------------------------------------------------------


def test_a_retirement_traces_every_lot_it_covers_along_the_units_it_retired(ledger: Path) -> None:
    out = do_trace(ledger, "ret-00000002")
    assert out["kind"] == "retirement"
    ret = out["retirement"]
    assert (ret["account"], ret["beneficiary"], ret["purpose"], ret["quantity_g"]) == (
        k.BUYER, "Buyer Co [HQ]", "re100", 210)
    assert ret["note"] == "FY2026 claim [bold]x[/"
    assert ret["ranges"] == [[L0, 1, 60], [L1, 316, 465]]
    assert ret["lots"] == 2
    assert [x["lot_id"] for x in out["lots"]] == [L0, L1]
    l0, l1 = out["lots"]
    assert (l0["units_traced"], l0["quantity_g_traced"]) == ([[1, 60]], 60)
    assert (l1["units_traced"], l1["quantity_g_traced"]) == ([[316, 465]], 150)
    # L0: reading → issuance → transfer to buyer-co → this retirement; sun-co's own ret-00000001
    # (units 101–150) is not on these units' path
    assert [s["step"] for s in l0["steps"]] == ["signed_reading", "issued", "transferred", "retired", "current_state"]
    rd, iss, tr, rt, cur = l0["steps"]
    assert (rd["device_id"], rd["seq"], rd["role"], rd["signature_verified"]) == ("dgc-0", 1, "issued_this_lot", True)
    assert (rd["generation_wh"], rd["import_wh"], rd["export_wh"], rd["self_consumed_wh"]) == (800, 300, 100, 700)
    assert rd["owner_at_the_time"] == k.OWNER and rd["device_public_key"] == k.key("dev/dgc-0").public_key.hex()
    assert (iss["units"], iss["quantity_g"], iss["factor_g_per_kwh"], iss["factor"]) == (
        [1, 315], 315, 450, "tokyo/2025/adjusted")  # ⌊700 × 450 / 1000⌋ = 315
    assert (tr["units"], tr["quantity_g"], tr["from"], tr["to"]) == ([1, 100], 100, k.OWNER, k.BUYER)
    assert (rt["units"], rt["quantity_g"], rt["from"], rt["retirement_id"]) == ([1, 60], 60, k.BUYER, "ret-00000002")
    assert cur["segments"] == [{"units": [1, 60], "holder": k.BUYER, "status": "retired", "ref": "ret-00000002"}]
    # L1: units 316–630, 200 to buyer-co (316–515), 150 of them retired (316–465)
    assert [s["step"] for s in l1["steps"]] == ["signed_reading", "issued", "transferred", "retired", "current_state"]
    assert l1["steps"][1]["units"] == [316, 630]
    assert l1["steps"][2]["units"] == [316, 515]
    assert l1["steps"][3]["units"] == [316, 465]
    # heights and tx hashes: the reading batch, the transfer, the retirement
    assert rd["height"] == iss["height"] < tr["height"] < rt["height"] == ret["height"]
    assert rt["tx_hash"] == ret["tx_hash"] == ret["proof"]["tx_hash"]


def test_every_printed_proof_recomputes_the_header_roots(ledger: Path) -> None:
    for ident in ("ret-00000002", L0, L2, "50"):
        txp, stp = all_proofs(do_trace(ledger, ident))
        assert txp and stp
        for p in txp:
            check_tx_proof(ledger, p)
        for sp in stp:
            check_state_proof(ledger, sp)


def test_the_state_proof_value_is_the_record_itself(ledger: Path) -> None:
    out = do_trace(ledger, "ret-00000002")
    lot = Lot.from_value(decode(bytes.fromhex(out["lots"][0]["steps"][-1]["state_proof"]["value"])))
    assert lot.lot_id == L0 and lot.quantity_g == 315
    assert [(s.start, s.end - 1, s.holder, s.status, s.ref) for s in lot.segments] == [
        (1, 60, k.BUYER, "retired", "ret-00000002"), (61, 100, k.BUYER, "tradable", ""),
        (101, 150, k.OWNER, "retired", "ret-00000001"), (151, 315, k.OWNER, "tradable", "")]
    ret = Retirement.from_value(decode(bytes.fromhex(out["retirement"]["state_proof"]["value"])))
    assert ret.ranges == [(L0, 1, 61), (L1, 316, 466)] and ret.quantity_g == 210
    # the proof was made at the tip; its header is the last block's
    view = LedgerView(ledger)
    try:
        assert out["retirement"]["state_proof"]["block_height"] == view.state.height == out["height"]
    finally:
        view.close()


def test_a_period_shows_its_inclusive_last_day(ledger: Path) -> None:
    fy = do_trace(ledger, "ret-00000002")["retirement"]["period"]
    assert fy == {"first_day_jst": "2026-04-01", "last_day_jst": "2027-03-31",
                  "start": FY2026[0], "end_exclusive": FY2026[1]}
    lot = do_trace(ledger, L0)["lots"][0]
    june = next(s for s in lot["steps"] if s.get("retirement_id") == "ret-00000001")["period"]
    # stored [2026-06-01 00:00, 2026-07-01 00:00) JST: the last day is 30 June, not 1 July
    assert (june["first_day_jst"], june["last_day_jst"]) == ("2026-06-01", "2026-06-30")


# --- a lot, a unit, carried readings ---------------------------------------------------------------


def test_a_lot_lists_every_movement_of_its_units(ledger: Path) -> None:
    out = do_trace(ledger, L0)
    assert out["kind"] == "lot" and "retirement" not in out
    lot = out["lots"][0]
    assert lot["units_traced"] == [[1, 315]] and lot["quantity_g_traced"] == 315
    moves = [(s["step"], s["units"], s.get("retirement_id")) for s in lot["steps"][2:-1]]
    assert moves == [("transferred", [1, 100], None), ("retired", [101, 150], "ret-00000001"),
                     ("retired", [1, 60], "ret-00000002")]
    assert len(lot["steps"][-1]["segments"]) == 4


def test_a_unit_follows_only_the_movements_that_touched_it(ledger: Path) -> None:
    out = do_trace(ledger, "50")
    assert out["kind"] == "unit"
    lot = out["lots"][0]
    assert lot["lot_id"] == L0 and lot["units_traced"] == [[50, 50]]
    assert [(s["step"], s.get("retirement_id")) for s in lot["steps"]] == [
        ("signed_reading", None), ("issued", None), ("transferred", None), ("retired", "ret-00000002"),
        ("current_state", None)]
    assert lot["steps"][-1]["segments"] == [
        {"units": [1, 60], "holder": k.BUYER, "status": "retired", "ref": "ret-00000002"}]


def test_readings_below_one_gram_are_traced_into_the_lot_they_carried_into(ledger: Path) -> None:
    lot = do_trace(ledger, L2)["lots"][0]
    readings = [s for s in lot["steps"] if s["step"] == "signed_reading"]
    # 1 Wh × 450 g/kWh = 450 mg each: 450 → 0 g, 900 → 0 g, 1,350 → 1 g (350 mg carried on)
    assert [(r["seq"], r["role"]) for r in readings] == [
        (1, "carried_into_this_lot"), (2, "carried_into_this_lot"), (3, "issued_this_lot")]
    assert all(r["signature_verified"] for r in readings)
    issued = next(s for s in lot["steps"] if s["step"] == "issued")
    assert (issued["units"], issued["quantity_g"], issued["self_consumed_wh"]) == ([631, 631], 1, 1)


def test_unknown_ids_are_refused(ledger: Path) -> None:
    for ident in ("ret-00000009", "99999", "no-such-lot"):
        with pytest.raises(NotFoundError):
            do_trace(ledger, ident)
