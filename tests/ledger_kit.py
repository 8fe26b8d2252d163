"""A small in-memory ledger for tests: an operator, a prosumer with one device, a buyer, and
helpers to sign transactions and readings and apply blocks through the real BlockBuilder.

Hand-computable numbers: the device is in ``tokyo``; the factor table holds tokyo/2025/adjusted =
450 g/kWh and national/2025 = 400 g/kWh, so a reading in FY2026 (e.g. June 2026) issues
⌊self_consumed_wh × 450 / 1000⌋ g.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from crev.core.encoding import encode
from crev.core.factors import FactorRow
from crev.core.hashing import sha256
from crev.core.signing import Signer
from crev.core.units import parse_time
from crev.ledger.apply import BlockBuilder, TxResult
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.submit_readings import reading_payload
from crev.ledger.state import State
from crev.ledger.tx import Message, build_tx

CHAIN = "test-chain"
T0 = parse_time("2026-06-01T00:00")  # JST midnight, FY2026
NOON = T0 + 12 * 3600
FACTORS = (
    FactorRow("tokyo", 2025, "adjusted", 450, "test fixture"),
    FactorRow("national", 2025, "national_average", 400, "test fixture"),
)
CAPACITY_W = 50_000  # 50 kW: at most 25,000 Wh per 30 min, 26,250 Wh with the 5 % tolerance


def key(name: str) -> Signer:
    return Signer(sha256(f"test/{name}".encode()))


@dataclass
class Kit:
    state: State
    time: int
    nonces: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seq: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    regs: dict[str, list[int]] = field(default_factory=dict)

    # --- transactions ----------------------------------------------------------------------

    def tx(self, signer: str, msg: Message, nonce: int | None = None, signing_key: Signer | None = None) -> bytes:
        n = self.nonces[signer] if nonce is None else nonce
        raw = build_tx(CHAIN, msg, signer, n, signing_key or key(signer))
        return raw

    def block(self, *raws: bytes, dt: int = 10) -> list[TxResult]:
        """Apply ``raws`` as the next block (failed transactions are kept with their error)."""
        self.time += dt
        b = BlockBuilder(self.state, self.state.height + 1, self.time)
        results = [b.add(r) for r in raws]
        b.finish()
        # keep local nonces in step with the ledger
        for acct in self.state.accounts.values():
            self.nonces[acct.account_id] = acct.nonce
        return results

    def one(self, raw: bytes, dt: int = 10) -> TxResult:
        return self.block(raw, dt=dt)[0]

    # --- readings --------------------------------------------------------------------------

    def reading(self, start: int, g: int, i: int, e: int, *, device: str = "dgc-1", interval_s: int = 1800,
                seq: int | None = None, regs: tuple[int, int, int] | None = None,
                signer: Signer | None = None, **override: Any) -> list[Any]:
        """A signed reading; registers advance by (g, i, e) unless ``regs`` is given."""
        if seq is None:
            self.seq[device] += 1
            seq = self.seq[device]
        if regs is None:
            cur = self.regs.get(device, [1_000_000, 2_000_000, 300_000])
            regs = (cur[0] + g, cur[1] + i, cur[2] + e)
            self.regs[device] = list(regs)
        fields = reading_payload(CHAIN, device, seq, start, interval_s, g, i, e, *regs)
        names = ["version", "chain_id", "device_id", "seq", "interval_start", "interval_s", "generation_wh",
                 "import_wh", "export_wh", "generation_register_wh", "import_register_wh", "export_register_wh"]
        for k, v in override.items():
            fields[names.index(k)] = v
        sig = (signer or key(f"dev/{device}")).sign(encode(fields))
        return [*fields, sig]

    def submit(self, *readings: list[Any]) -> bytes:
        """One unsigned batch of these readings, well-formed or not (each is judged on its own)."""
        return self.submit_raw_body(list(readings))

    def submit_raw_body(self, body: list[Any]) -> bytes:
        """A readings transaction from an arbitrary body (for malformed-input tests)."""
        return encode(["crev/tx/1", CHAIN, "submit_readings", "", 0, body, b""])

    def root(self) -> bytes:
        return self.state.tree.root()


def make_kit(time: int | None = None) -> Kit:
    """Genesis + one block registering prosumer ``sun-co``, buyer ``buyer-co`` and device ``dgc-1``.

    The prosumers' records carry a blinding value (ledger/blinding.py; fixed here, random in real
    tools), the buyer's does not, as an account registered before blinds: both kinds stay covered."""
    g = Genesis(CHAIN, T0 - 86400, "operator", "Test Operator", key("operator").public_key,
                key("sequencer").public_key, emission_factors=FACTORS)
    kit = Kit(state_from_genesis(g), time if time is not None else T0 - 3600)
    res = kit.block(
        kit.tx("operator", RegisterParticipant("sun-co", "Sun Co", "prosumer", key("sun-co").public_key,
                                               sha256(b"blind/sun-co")[:16]), 0),
        kit.tx("operator", RegisterParticipant("buyer-co", "Buyer Co", "buyer", key("buyer-co").public_key), 1),
        kit.tx("operator", RegisterParticipant("other-co", "Other Co", "prosumer", key("other-co").public_key,
                                               sha256(b"blind/other-co")[:16]), 2),
        kit.tx("operator", RegisterDevice("dgc-1", "sun-co", key("dev/dgc-1").public_key, CAPACITY_W, T0 - 86400 * 30,
                                          35_681_236, 139_767_125, "tokyo", "SN-0001", T0 + 86400 * 365 * 5, False,
                                          "solar_pv"), 3),
    )
    assert all(r.ok for r in res), [r.error for r in res]
    return kit
