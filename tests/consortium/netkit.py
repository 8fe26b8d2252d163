"""Real CometBFT networks for tests: a localnet of N validators on free loopback ports, with the
node tests' genesis (tests/node/nodekit.py: its keys, devices and readings)."""

from __future__ import annotations

import base64
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from crev.consortium import localnet
from crev.consortium.cometbft import Rpc
from crev.core.encoding import decode
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from tests.consortium.abcikit import cometbft_binary, pb
from tests.node import nodekit as k


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (32768 on Linux by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base(n: int) -> int:
    """A base port such that base + 10i + {0, 1, 2} are free for i < n, chosen below the kernel's
    ephemeral range: a member started seconds after this check (a replica joining later) must not
    find its port taken by some process's outgoing connection in the meantime."""
    high = max(_ephemeral_low() - 10 * n - 10, 20010)
    for _ in range(200):
        base = random.randrange(20000, high, 10)
        try:
            socks = []
            for i in range(n):
                for j in range(3):
                    s = socket.socket()
                    socks.append(s)
                    s.bind(("127.0.0.1", base + 10 * i + j))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


def make_net(root: Path, validators: int, timeout_commit: str = "200ms") -> localnet.Localnet:
    binary = cometbft_binary()
    pb()
    localnet.init(root, validators, base_port=free_base(validators), timeout_commit=timeout_commit,
                  genesis=k.genesis(), binary=binary)
    return localnet.Localnet(root, binary)


def committed(rpc: Rpc, tx: bytes) -> dict[str, Any]:
    """broadcast_tx_commit; the result with tx_result.data decoded (crev's canonical result)."""
    r = rpc.broadcast_commit(tx)
    assert r["check_tx"]["code"] == 0, r["check_tx"]
    res = r["tx_result"]
    res["result"] = decode(base64.b64decode(res["data"])) if res.get("data") else None
    res["height"] = int(r["height"])
    return res


def register(rpc: Rpc, devices: int) -> k.Signers:
    s = k.Signers()
    for tx in [s.tx(k.OPERATOR, RegisterParticipant(k.OWNER, "Sun Co", "prosumer", k.key(k.OWNER).public_key)),
               s.tx(k.OPERATOR, RegisterParticipant(k.BUYER, "Buyer Co", "buyer", k.key(k.BUYER).public_key))]:
        assert committed(rpc, tx)["code"] == 0
    txs = [s.tx(k.OPERATOR, RegisterDevice(
        k.device_id(i), k.OWNER, k.key(f"dev/{k.device_id(i)}").public_key, k.CAPACITY_W, k.T0 - 30 * 86400,
        35_681_236, 139_767_125, "tokyo", f"SN-{i:04d}", k.T0 + 5 * 365 * 86400, False, "solar_pv"))
        for i in range(devices)]
    for tx in txs[:-1]:
        assert rpc.broadcast_sync(tx)["code"] == 0
    assert committed(rpc, txs[-1])["code"] == 0
    return s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_up(root: Path, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    up = subprocess.Popen([sys.executable, "-m", "crev.consortium.cli", "consortium", "up", str(root), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert up.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        assert line, f"consortium up ended: {''.join(lines)}"
        lines.append(line)
        if line.startswith("consortium up:"):
            return up, lines
    raise AssertionError(f"consortium up did not come up: {''.join(lines)}")


def post(api: httpx.Client, raw: bytes) -> httpx.Response:
    return api.post("/v1/tx", content=raw, headers={"Content-Type": "application/cbor"})
