"""Small helpers for the node tests: a data directory with a known genesis, a fleet of devices
registered through the node itself, and deterministic signed readings.

Hand-computable numbers (as in tests/ledger_kit.py): devices are in ``tokyo``, the factor table
holds tokyo/2025/adjusted = 450 g/kWh, so a reading in June 2026 issues
⌊(generation − export) × 450 / 1000⌋ g.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crev.core.encoding import decode, encode
from crev.core.factors import FactorRow
from crev.core.hashing import sha256
from crev.core.signing import Signer
from crev.core.units import parse_time
from crev.ledger.apply import apply_block
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.submit_readings import SubmitReadings, parse_reading, reading_payload
from crev.ledger.state import State
from crev.ledger.tx import Message, build_tx
from crev.node.node import DB_FILE, GENESIS_FILE, Node
from crev.node.store import Store, chain_file

CHAIN = "node-test"
T0 = parse_time("2026-06-01T00:00")  # JST midnight, FY2026
NOW = T0 + 30 * 86400  # the node's (fixed) clock: every test reading lies before it
FACTOR = 450
FACTORS = (
    FactorRow("tokyo", 2025, "adjusted", FACTOR, "test fixture"),
    FactorRow("national", 2025, "national_average", 400, "test fixture"),
)
CAPACITY_W = 100_000
OPERATOR = "operator"
OWNER = "sun-co"
BUYER = "buyer-co"
# one interval's energy per device [Wh]: g, i, e (60 s at 100 kW allows 1,750 Wh with tolerance)
GEN, IMP, EXP = 800, 300, 100
PER_READING_G = (GEN - EXP) * FACTOR // 1000  # 315 g of C-REV per reading


def key(name: str) -> Signer:
    return Signer(sha256(f"node-test/{name}".encode()))


def genesis() -> Genesis:
    return Genesis(CHAIN, T0 - 86400, OPERATOR, "Test Operator", key(OPERATOR).public_key,
                   key("sequencer").public_key, emission_factors=FACTORS)


def init_dir(d: Path) -> Path:
    Node.init(d, genesis(), key("sequencer").seed)
    return d


def open_node(d: Path, *, start: bool = True, clock: Callable[[], float] = lambda: float(NOW),
              **kw: Any) -> Node:
    """A node with a fixed clock, a short block interval and in-process signature checks."""
    kw.setdefault("block_interval_ms", 10)
    kw.setdefault("verify_threads", 1)
    n = Node(d, clock=clock, **kw)
    return n.start() if start else n


@dataclass
class Signers:
    """Builds signed transactions, tracking each signer's nonce."""

    nonces: dict[str, int] = field(default_factory=dict)

    def tx(self, signer: str, msg: Message, *, signing_key: Signer | None = None) -> bytes:
        n = self.nonces.get(signer, 0)
        self.nonces[signer] = n + 1
        return build_tx(CHAIN, msg, signer, n, signing_key or key(signer))


def device_id(i: int) -> str:
    return f"dgc-{i}"


def register_fleet(node: Node, devices: int, signers: Signers | None = None) -> Signers:
    """Register the owner, a buyer and ``devices`` DGCs through the node (one block or a few)."""
    s = signers or Signers()
    futs = [node.submit(s.tx(OPERATOR, RegisterParticipant(OWNER, "Sun Co", "prosumer", key(OWNER).public_key))),
            node.submit(s.tx(OPERATOR, RegisterParticipant(BUYER, "Buyer Co", "buyer", key(BUYER).public_key)))]
    for i in range(devices):
        futs.append(node.submit(s.tx(OPERATOR, RegisterDevice(
            device_id(i), OWNER, key(f"dev/{device_id(i)}").public_key, CAPACITY_W, T0 - 30 * 86400,
            35_681_236, 139_767_125, "tokyo", f"SN-{i:04d}", T0 + 5 * 365 * 86400, False, "solar_pv"))))
    for f in futs:
        r = f.result(60)
        assert r.ok and r.committed, r.error
    return s


def reading(dev: int, k: int, *, g: int = GEN, i: int = IMP, e: int = EXP, interval_s: int = 60,
            signer: Signer | None = None) -> list[Any]:
    """Device ``dev``'s k-th (0-based) reading: contiguous 60 s intervals from 09:00 JST on T0,
    registers advancing by exactly (GEN, IMP, EXP) per interval (so use the default g/i/e for a chain
    of contiguous readings)."""
    start = T0 + 9 * 3600 + k * interval_s
    regs = (1_000_000 + (k + 1) * GEN, 2_000_000 + (k + 1) * IMP, 300_000 + (k + 1) * EXP)
    p = reading_payload(CHAIN, device_id(dev), k + 1, start, interval_s, g, i, e, *regs)
    return [*p, (signer or key(f"dev/{device_id(dev)}")).sign(encode(p))]


def readings_tx(readings: list[list[Any]]) -> bytes:
    msg = SubmitReadings(tuple(parse_reading(r, f"readings[{n}]") for n, r in enumerate(readings)))
    return build_tx(CHAIN, msg)


def batch(devices: int, k: int) -> bytes:
    """One reading (the k-th) from each of ``devices`` devices, as one unsigned transaction."""
    return readings_tx([reading(d, k) for d in range(devices)])


# --- reading a data directory behind the node's back ------------------------------------------


def sql(d: Path) -> sqlite3.Connection:
    """A raw connection to the ledger in ``d``: its state file, with the chain's file attached."""
    db = sqlite3.connect(d / DB_FILE, isolation_level=None)
    db.execute("ATTACH ? AS chain", (str(chain_file(d / DB_FILE)),))
    return db


def replay_root(d: Path) -> tuple[State, bytes]:
    """An independent reference: genesis + every stored block through apply_block, from scratch."""
    g = Genesis.from_json((d / GENESIS_FILE).read_text("utf-8"))
    st = state_from_genesis(g)
    store = Store(d / DB_FILE)
    try:
        for block in store.blocks():
            apply_block(st, block)
    finally:
        store.close()
    return st, st.tree.root()


def accepted_readings(d: Path) -> list[tuple[list[Any], list[Any], int]]:
    """Every reading in a committed submit_readings transaction with its result detail and height."""
    out = []
    with closing(sql(d)) as db:
        rows = db.execute("SELECT raw, result, height FROM txs WHERE kind = 'submit_readings' "
                          "ORDER BY height, idx").fetchall()
    for raw, result, height in rows:
        body = decode(bytes(raw))[5]
        detail = decode(bytes(result))[5]
        for r, det in zip(body, detail, strict=True):
            out.append((r, det, int(height)))
    return out


# --- a ledger whose checkpoint lags its blocks, left by a node that died -----------------------

_STOPPED_SCRIPT = """
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from crev.core.units import fiscal_year_bounds
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from tests.node import nodekit as k

d = k.init_dir(Path(sys.argv[1]))
node = k.open_node(d, checkpoint_s=3600)
s = k.register_fleet(node, 2)
node.flush()
for j in range(3):
    assert node.submit_wait(k.batch(2, j)).ok
assert node.submit_wait(s.tx(k.OWNER, Transfer(k.BUYER, (("dgc-0:20260601T0900", 100),), "sale"))).ok
p0, p1 = fiscal_year_bounds(2026)
assert node.submit_wait(s.tx(k.BUYER, Retire((("dgc-0:20260601T0900", 40),), "Buyer Co", "re100", p0, p1,
                                            "JP", "FY2026"))).ok
print(node.state.height, node.state.tree.root().hex(), flush=True)
os._exit(0)  # like kill -9: no final checkpoint
"""


@dataclass(frozen=True)
class Stopped:
    """What the dead node had committed: its height and state root (its checkpoint is older)."""

    height: int
    root: bytes


def stopped_ledger(d: Path) -> Stopped:
    """A ledger in ``d`` whose node died after committing blocks its last checkpoint does not
    cover: registrations (checkpointed), then 3 reading batches of 2 devices (6 lots of
    PER_READING_G), a transfer of 100 g of dgc-0's first lot to the buyer and a retirement of 40 g
    of it (ret-00000001), none checkpointed."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", _STOPPED_SCRIPT, str(d), str(root)], capture_output=True,
                         text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr
    height, hexroot = out.stdout.split()
    return Stopped(int(height), bytes.fromhex(hexroot))
