"""`crev consortium up` serves the HTTP API and the dashboard over one member's node (a real process
tree: four cometbft nodes, four crev apps and the API process): a readings batch POSTed to the API
is answered with a committed receipt once its block is in, the same transaction is then in every
member's crev data directory, `/v1/consortium` lists the four validators with their heights, and a
block's signers hold more than 2/3 of the voting power."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.node.store import Store
from tests.consortium.netkit import free_port, make_net, post, start_up
from tests.node import nodekit as k

pytestmark = pytest.mark.slow


def stored(data: Path, tx_hash: str) -> tuple[int, int, bool] | None:
    store = Store(data / "ledger.sqlite", readonly=True)
    try:
        row = store.tx(bytes.fromhex(tx_hash))
        return None if row is None else (row[0], row[1], row[3])
    finally:
        store.close()


def test_consortium_up_serves_the_api_over_one_member(tmp_path: Path) -> None:
    net = make_net(tmp_path, 4)
    port = free_port()
    up, lines = start_up(tmp_path, "--api-member", "utility", "--port", str(port))
    try:
        assert any(f"API and dashboard: http://127.0.0.1:{port}" in x and "utility" in x for x in lines), lines
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        s = k.Signers()
        regs = [s.tx(k.OPERATOR, RegisterParticipant(k.OWNER, "Sun Co", "prosumer", k.key(k.OWNER).public_key))]
        regs += [s.tx(k.OPERATOR, RegisterDevice(
            k.device_id(i), k.OWNER, k.key(f"dev/{k.device_id(i)}").public_key, k.CAPACITY_W, k.T0 - 30 * 86400,
            35_681_236, 139_767_125, "tokyo", f"SN-{i:04d}", k.T0 + 5 * 365 * 86400, False, "solar_pv"))
            for i in range(3)]
        for raw in regs:
            r = post(api, raw)
            assert r.status_code == 200 and r.json()["committed"] and r.json()["ok"], r.text

        # a malformed body: the stateless check answers before anything reaches CometBFT
        bad = post(api, b"\xa1\x01")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed"
        # a used nonce: CheckTx refuses it, answered as the embedded node answers (409 bad_nonce)
        again = post(api, k.Signers().tx(k.OPERATOR, RegisterParticipant("x-co", "X", "buyer", k.key("x").public_key)))
        assert again.status_code == 409 and again.json()["error"]["code"] == "bad_nonce", again.text

        # a transaction that passes CheckTx but fails in its block (the account exists): CometBFT keeps
        # it in the block with its error; answered with the error's status, saying where it is
        dup = post(api, s.tx(k.OPERATOR, RegisterParticipant(k.OWNER, "Sun Co", "prosumer", k.key(k.OWNER).public_key)))
        body = dup.json()
        assert dup.status_code == 409 and body["error"]["code"] == "conflict", dup.text
        assert body["committed"] is True and body["height"] >= 1 and body["index"] >= 0
        s.nonces[k.OPERATOR] -= 1  # a failed transaction does not use its nonce

        batch = k.readings_tx([k.reading(d, 0) for d in range(3)])
        r = post(api, batch)
        assert r.status_code == 200, r.text
        rec = r.json()
        assert rec["committed"] and rec["ok"] and rec["error"] is None and rec["height"] >= 1 and rec["index"] >= 0
        assert [d[0] for d in rec["detail"]] == ["accepted"] * 3
        assert sum(1 for e in rec["events"] if e["type"] == "issued") == 3
        # the same bytes again: the committed receipt, not a second copy
        assert post(api, batch).json() == rec

        # read your writes: the lots are listed at once (indexed after the file's checkpoint)
        lots = api.get("/v1/lots", params={"device_id": k.device_id(0)}).json()
        assert lots["total"] == 1 and lots["items"][0]["quantity_g"] == k.PER_READING_G
        tx = api.get(f"/v1/tx/{rec['tx_hash']}").json()
        assert (tx["height"], tx["index"], tx["ok"]) == (rec["height"], rec["index"], True)

        # the transaction is on every member, at the same crev height and index
        where = (rec["height"], rec["index"], True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(stored(m.data, rec["tx_hash"]) != where for m in net.members):
            time.sleep(0.1)
        assert [stored(m.data, rec["tx_hash"]) for m in net.members] == [where] * 4

        c = api.get("/v1/consortium").json()
        assert c["api_member"] == "utility"
        assert sorted(v["name"] for v in c["validators"]) == ["auditor", "registry", "retailer", "utility"]
        assert c["total_power"] == 40 and all(v["power"] == 10 for v in c["validators"])
        assert [m["name"] for m in c["members"]] == ["registry", "utility", "retailer", "auditor"]
        for m in c["members"]:
            assert m["up"] and m["height"] >= 2 and m["power"] == 10 and len(m["node_id"]) == 40, m
            assert m["moniker"] == m["name"] and m["rpc"] == net.member(m["name"]).rpc_url
        assert c["crev_height"] >= rec["height"]

        b = api.get(f"/v1/blocks/{rec['height']}").json()
        assert b["cometbft_height"] >= 1 and b["total_power"] == 40
        assert 3 * b["signed_power"] > 2 * b["total_power"]
        assert b["signed_power"] == sum(x["power"] for x in b["signers"])
        assert {x["name"] for x in b["signers"]} | {x["name"] for x in b["absent"]} == {
            "registry", "utility", "retailer", "auditor"}
        rows = api.get("/v1/blocks").json()["items"]
        assert rows[0]["signed_power"] >= 30 and len(rows[0]["signers"]) >= 3

        # the embedded node's dashboard answers here too
        assert api.get("/").status_code == 200
        assert api.get("/v1/info").json()["height"] >= rec["height"]
    finally:
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert "consortium stopped" in out
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
