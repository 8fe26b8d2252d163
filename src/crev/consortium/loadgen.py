"""Measure a localnet: signed readings per second committed, and submission-to-commit latency.

    python -m crev.consortium.loadgen --validators 4 --devices 200 --rounds 50

Writes a throwaway localnet (its own genesis and operator key), starts it, registers the devices,
signs ``rounds`` batches of one reading per device, submits them all with ``broadcast_tx_sync``
to the first member, and watches committed blocks (``block`` + ``block_results``) until every
batch is in; each batch's latency runs from its submission to the moment its block was seen.
Also prints the raw Ed25519 verify rate of one core, measured in the same run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from crev.consortium import localnet
from crev.consortium.cometbft import CometError, set_config
from crev.core.encoding import encode
from crev.core.factors import FactorRow
from crev.core.hashing import sha256
from crev.core.signing import Signer, verify_many
from crev.ledger.genesis import Genesis
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.submit_readings import SubmitReadings, parse_reading, reading_payload
from crev.ledger.tx import build_tx

CHAIN = "crev-loadgen"
DAY = 86400


def _key(name: str) -> Signer:
    return Signer(sha256(f"loadgen/{name}".encode()))


def raw_verify_rate(n: int = 4000) -> float:
    s = _key("v")
    triples = [(s.public_key, m, s.sign(m)) for m in (i.to_bytes(8, "big") * 8 for i in range(n))]
    t = time.perf_counter()
    assert all(verify_many(triples))
    return n / (time.perf_counter() - t)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(validators: int, devices: int, rounds: int, timeout_commit: str, root: Path, base_port: int,
        events: str = "all", rate: float = 0.0, config: dict[str, dict[str, object]] | None = None,
        block_max_bytes: int = 0) -> dict[str, Any]:
    """``rate``: readings/s offered (batches spaced evenly); 0 submits everything at once.
    ``config``: config.toml settings for every member (``set_config``), e.g. the mempool's size or
    the p2p rates; ``block_max_bytes``: the genesis' consensus parameter (0: CometBFT's default)."""
    raw = raw_verify_rate()  # before the net runs: one core to itself
    now = int(time.time())
    start = (now - 30 * DAY) // 1800 * 1800
    g = Genesis(CHAIN, start - DAY, "operator", "Operator", _key("operator").public_key, _key("operator").public_key,
                emission_factors=tuple(FactorRow("tokyo", y, "adjusted", 450, "loadgen") for y in (2024, 2025, 2026)))
    specs = localnet.init(root, validators, base_port=base_port, timeout_commit=timeout_commit, genesis=g,
                          events=events)
    for s in specs:
        if config:
            set_config(s.home, config)
        if block_max_bytes:
            gpath = s.home / "config" / "genesis.json"
            doc = json.loads(gpath.read_text("utf-8"))
            cp = doc["consensus_params"]
            cp["block"]["max_bytes"] = str(block_max_bytes)
            # evidence must fit in a block
            cp["evidence"]["max_bytes"] = str(min(int(cp["evidence"]["max_bytes"]), block_max_bytes // 2))
            gpath.write_text(json.dumps(doc, indent=2, ensure_ascii=False), "utf-8")
    net = localnet.Localnet(root)
    try:
        net.start()
        rpc = net.rpc()
        rpc.wait_height(1, 60)
        nonce = 0

        def op(msg: Any) -> bytes:
            nonlocal nonce
            nonce += 1
            return build_tx(CHAIN, msg, "operator", nonce - 1, _key("operator"))

        setup = [op(RegisterParticipant("owner", "Owner", "prosumer", _key("owner").public_key, os.urandom(16)))]
        setup += [op(RegisterDevice(f"d{i}", "owner", _key(f"d{i}").public_key, 100_000, start - 10 * DAY, 35_681_236,
                                    139_767_125, "tokyo", f"SN{i}", start + 365 * DAY, False, "solar_pv"))
                  for i in range(devices)]
        for tx in setup[:-1]:
            if rpc.broadcast_sync(tx)["code"] != 0:
                raise CometError("a registration was refused")
        if rpc.broadcast_commit(setup[-1])["tx_result"]["code"] != 0:
            raise CometError("a registration failed")
        batches = []
        for k in range(rounds):
            rs = []
            for i in range(devices):
                p = reading_payload(CHAIN, f"d{i}", k + 1, start + k * 60, 60, 800, 300, 100,
                                    (k + 1) * 800, (k + 1) * 300, (k + 1) * 100)
                rs.append([*p, _key(f"d{i}").sign(encode(p))])
            msg = SubmitReadings(tuple(parse_reading(r, "r") for r in rs))
            batches.append(build_tx(CHAIN, msg))
        h0 = rpc.height()
        sent: dict[bytes, float] = {}
        t0 = time.monotonic()
        refused: list[str] = []

        def submit() -> None:  # beside the watcher below, so a block is seen when it commits
            for n, tx in enumerate(batches):
                if rate > 0:
                    time.sleep(max(0.0, t0 + n * devices / rate - time.monotonic()))
                sent[sha256(tx)] = time.monotonic()
                r = rpc.broadcast_sync(tx)
                if r["code"] != 0:
                    refused.append(str(r["log"]))

        submitter = threading.Thread(target=submit, daemon=True)
        submitter.start()
        latencies: list[float] = []
        accepted = 0
        h = h0
        deadline = time.monotonic() + 300
        while len(latencies) < len(batches) and time.monotonic() < deadline:
            if refused:
                raise CometError(f"CheckTx refused a batch: {refused[0]}")
            if rpc.height() <= h:
                time.sleep(0.02)
                continue
            h += 1
            blk = rpc.call("block", height=str(h))["block"]
            txs = [base64.b64decode(t) for t in blk["data"]["txs"] or []]
            for _ in range(3000):  # the block is stored before it is executed: its results come later
                try:
                    res = rpc.call("block_results", height=str(h))["txs_results"] or []
                    break
                except CometError:
                    time.sleep(0.02)
            else:
                raise CometError(f"no results for height {h}")
            seen = time.monotonic()  # committed and executed on the member we submitted to
            for tx, rr in zip(txs, res, strict=True):
                th = sha256(tx)
                if th in sent:  # set before broadcast_sync returns, so before its block exists
                    latencies.append(seen - sent[th])
                    if rr["code"] == 0:
                        accepted += devices
            t_end = seen
        blocks = h - h0
        elapsed = t_end - t0
        cpu_apps = sum(cpu_seconds(p.pid) for p in net.apps.values())
        cpu_nodes = sum(cpu_seconds(p.pid) for p in net.nodes.values())
        lat = sorted(latencies)
        return {"validators": validators, "events": events, "readings": accepted, "seconds": round(elapsed, 2),
                "readings_per_s": round(accepted / elapsed), "blocks": blocks,
                "blocks_per_s": round(blocks / elapsed, 2),
                "p50_s": round(statistics.median(lat), 2), "p99_s": round(lat[int(0.99 * (len(lat) - 1))], 2),
                "offered_per_s": rate or "burst", "raw_verify_per_s_one_core": round(raw),
                "cpu_s_apps": round(cpu_apps, 1), "cpu_s_cometbft": round(cpu_nodes, 1)}
    finally:
        net.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--timeout-commit", default="200ms")
    ap.add_argument("--base-port", type=int, default=27600)
    ap.add_argument("--events", choices=("all", "summary"), default="all")
    ap.add_argument("--rate", type=float, default=0.0, help="readings/s offered (0: all at once)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="crev-loadgen-") as tmp:
        out = run(a.validators, a.devices, a.rounds, a.timeout_commit, Path(tmp) / "net", a.base_port, a.events,
                  a.rate)
    print(" ".join(f"{k}={v}" for k, v in out.items()), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
