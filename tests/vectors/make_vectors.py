"""Regenerate tests/vectors/golden.json: the crev wire-format golden vectors.

Run from the repository root::

    .venv/bin/python tests/vectors/make_vectors.py

Every input is fixed (seeds, ids, field values), and Ed25519 signatures are deterministic, so the
output never changes unless the wire format changes. tests/core/test_golden_vectors.py checks the
current code against the file; docs/wire-format.md explains the formats.

JSON notation for CBOR values (the "value" fields): a JSON integer is a CBOR integer, true/false
are CBOR booleans, a JSON string is a CBOR text string, {"bytes": "<hex>"} is a CBOR byte string
and a JSON array is a CBOR array. All byte strings are lowercase hex.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from crev.core import merkle
from crev.core.encoding import decode, encode
from crev.core.factors import FactorRow
from crev.core.hashing import sha256
from crev.core.signing import Signer, public_key_from_seed
from crev.core.statetree import StateTree, bucket_index, entry_leaf_hash
from crev.core.units import parse_time
from crev.device.dgc import DgcAgent
from crev.ledger.apply import BlockBuilder
from crev.ledger.block import Block, Header
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.submit_controls import control_payload
from crev.ledger.messages.submit_meter_values import meter_values_payload
from crev.ledger.messages.submit_readings import reading_payload
from crev.ledger.messages.transfer import Transfer
from crev.ledger.params import Params
from crev.ledger.records import Filter, RetireSpec
from crev.ledger.tx import REGISTRY, build_tx

OUT = Path(__file__).with_name("golden.json")

CHAIN_ID = "crev-golden-1"
DEVICE_ID = "dgc-0001"
SENDER_ID = "tokyo-factory"
RECIPIENT_ID = "osaka-buyer"

SEEDS = {
    "device": bytes([0x01]) * 32,  # the DGC's signing key
    "account": bytes([0x02]) * 32,  # participant "tokyo-factory", signs the transfer
    "operator": bytes([0x03]) * 32,  # not used to sign here; its public key appears in state
    "sequencer": bytes([0x04]) * 32,  # signs the block header
}

# 2026-04-01 10:00 JST = 2026-04-01 01:00 UTC, a 30-minute slot boundary.
INTERVAL_START = 1_775_005_200

# Japanese fiscal year 2026 = [2026-04-01 00:00 JST, 2027-04-01 00:00 JST) = [2026-03-31 15:00 UTC, ...).
# Written out so that a reader can check them; tests/core/test_golden_vectors.py compares them with
# crev.core.units.fiscal_year_bounds(2026).
FY2026_START = 1_774_969_200
FY2026_END = 1_806_505_200

# RFC 8032 §7.1, TEST 1 (empty message).
RFC8032_TEST1 = {
    "secret_key": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "message": "",
    "signature": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
                 "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
}

READING_FIELDS = ("version", "chain_id", "device_id", "seq", "interval_start", "interval_s",
                  "generation_wh", "import_wh", "export_wh", "generation_register_wh",
                  "import_register_wh", "export_register_wh")


def to_json(v: Any) -> Any:
    """A CBOR value in the JSON notation of this file."""
    if v is None:  # only a failed transaction's result detail: CBOR null, 0xf6
        return None
    if isinstance(v, bool | int | str):
        return v
    if isinstance(v, bytes | bytearray):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, list | tuple):
        return [to_json(x) for x in v]
    raise TypeError(f"no JSON notation for {type(v).__name__}")


def uint_head(major: int, n: int, width: int) -> bytes:
    """A CBOR head with an argument of ``width`` bytes (0 = in the initial byte), possibly not shortest."""
    if width == 0:
        return bytes([major << 5 | n])
    ai = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([major << 5 | ai]) + n.to_bytes(width, "big")


# --- (a) canonical CBOR ------------------------------------------------------------------------

CBOR_CASES: list[tuple[str, str, Any, list[str]]] = [
    # name, description, value, non-canonical encodings of the same value (hex)
    ("uint_0", "0: fits in the initial byte", 0, ["1800", "190000"]),
    ("uint_23", "23: the largest integer in the initial byte", 23, ["1817"]),
    ("uint_24", "24: the smallest integer needing a 1-byte argument", 24, ["190018"]),
    ("uint_255", "255: the largest 1-byte argument", 255, ["1900ff"]),
    ("uint_256", "256: the smallest 2-byte argument", 256, ["1a00000100"]),
    ("uint_65535", "65535: the largest 2-byte argument", 65535, ["1a0000ffff"]),
    ("uint_65536", "65536: the smallest 4-byte argument", 65536, ["1b0000000000010000"]),
    ("uint_2p32", "2**32: the smallest 8-byte argument", 2**32, ["c2450100000000"]),
    ("uint_2p63m1", "2**63-1: the largest integer the ledger accepts anywhere", 2**63 - 1,
     ["c2487fffffffffffffff"]),
    ("nint_m1", "-1: negative integers are major type 1 with argument -1-n", -1, ["3800"]),
    ("nint_m24", "-24: the last negative integer in the initial byte", -24, ["3817"]),
    ("nint_m25", "-25: needs a 1-byte argument", -25, ["390018"]),
    ("nint_m500", "-500: a 2-byte argument", -500, ["3a000001f3"]),
    ("text_empty", "the empty text string", "", ["7800", "7fff"]),
    ("text_ascii", "ASCII text", "crev", ["780463726576"]),
    ("text_japanese", "Japanese text: the length counts UTF-8 bytes, not characters",
     "自家消費の太陽光", [(uint_head(3, 24, 2) + "自家消費の太陽光".encode()).hex()]),
    ("text_24_bytes", "a 24-byte text needs a 1-byte length argument", "abcdefghijklmnopqrstuvwx",
     ["790018" + b"abcdefghijklmnopqrstuvwx".hex()]),
    ("bytes_empty", "the empty byte string", b"", ["5800", "5fff"]),
    ("bytes_two", "a byte string", b"\x00\xff", ["580200ff", "5f410041ffff"]),
    ("bool_false", "false", False, []),
    ("bool_true", "true", True, ["f815"]),
    ("array_empty", "the empty array", [], ["9800", "9fff"]),
    ("array_nested", "nested arrays", [1, [2, 3], []], ["9f0182020380ff", "83019802020380", "83018202039800"]),
    ("array_24", "an array of 24 elements needs a 1-byte length argument", list(range(24)),
     ["990018" + bytes(range(24)).hex()]),
    ("array_mixed", "an array mixing every allowed type",
     ["crev", 1, -1, b"\x01\x02", True, False, ["東京"]], []),
]


def cbor_vectors() -> list[dict[str, Any]]:
    out = []
    for name, desc, value, bad in CBOR_CASES:
        out.append({"name": name, "description": desc, "value": to_json(value), "hex": encode(value).hex(),
                    "non_canonical": bad})
    return out


# --- (b) Ed25519 -------------------------------------------------------------------------------


def ed25519_vectors() -> dict[str, Any]:
    keys = [{"name": name, "seed": seed.hex(), "public_key": public_key_from_seed(seed).hex()}
            for name, seed in SEEDS.items()]
    msgs = [("device", b""), ("device", "crev 自家消費".encode()), ("account", b"crev/tx/1")]
    sigs = [{"key": k, "message": m.hex(), "signature": Signer(SEEDS[k]).sign(m).hex()} for k, m in msgs]
    return {
        "description": "Ed25519 (RFC 8032, pure): 32-byte seed -> 32-byte public key; signature over the exact "
                       "message bytes (no pre-hashing). Signatures are deterministic.",
        "keys": keys,
        "signatures": sigs,
        "rfc8032_test1": {"description": "RFC 8032 section 7.1 TEST 1, for cross-checking your library",
                          **RFC8032_TEST1},
    }


# --- (c) a reading and (d) a submit_readings transaction ---------------------------------------


def make_agent() -> DgcAgent:
    # registers start near the 10**10 Wh wrap so that the second reading's generation register rolls over
    return DgcAgent(CHAIN_ID, DEVICE_ID, Signer(SEEDS["device"]), seq=41,
                    generation_register_wh=9_999_998_000, import_register_wh=123_456,
                    export_register_wh=654_321)


READING_INTERVALS = [
    # interval_start, interval_s, generation_wh, import_wh, export_wh
    (INTERVAL_START, 1800, 1234, 56, 321),
    (INTERVAL_START + 1800, 1800, 987, 0, 0),
]


def reading_vector(r: list[Any], description: str) -> dict[str, Any]:
    signed = encode(r[:12])
    full = encode(r)
    return {
        "description": description,
        "fields": dict(zip(READING_FIELDS, r[:12], strict=True)),
        "signed_elements": to_json(r[:12]),
        "signed_hex": signed.hex(),
        "signer": "device",
        "public_key": public_key_from_seed(SEEDS["device"]).hex(),
        "signature": r[12].hex(),
        "reading": to_json(r),
        "reading_hex": full.hex(),
        "reading_hash": sha256(full).hex(),
    }


def non_canonical_reading(r: list[Any]) -> bytes:
    """The reading with seq (42, canonically 0x18 0x2a) written with a 2-byte argument."""
    parts = [encode(x) for x in r]
    parts[3] = uint_head(0, r[3], 2)
    return b"\x8d" + b"".join(parts)


def reading_vectors() -> tuple[dict[str, Any], list[list[Any]]]:
    agent = make_agent()
    readings = [agent.reading(*iv) for iv in READING_INTERVALS]
    first = reading_vector(readings[0], "One DGC reading: the device signs the canonical encoding of the first 12 "
                                        "elements; the reading is the 13-element array with the signature "
                                        "appended; reading_hash = SHA-256(reading_hex).")
    first["agent_before"] = {"seq": 41, "generation_register_wh": 9_999_998_000,
                             "import_register_wh": 123_456, "export_register_wh": 654_321}
    first["non_canonical_reading_hex"] = non_canonical_reading(readings[0]).hex()
    return first, readings


def submit_vector(readings: list[list[Any]]) -> dict[str, Any]:
    msg = REGISTRY["submit_readings"](readings, Params())
    raw = build_tx(CHAIN_ID, msg)
    second = reading_vector(readings[1], "The second reading (seq 43, the next slot). Its generation register "
                                         "wrapped: 9999999234 + 987 = 10000000221 -> 221.")
    return {
        "description": "An unsigned submit_readings transaction carrying two readings of one device: "
                       '["crev/tx/1", chain_id, "submit_readings", "", 0, [reading, reading], h\'\']. '
                       "tx_hash = SHA-256(tx_hex).",
        "chain_id": CHAIN_ID,
        "kind": "submit_readings",
        "second_reading": second,
        "reading_hashes": [sha256(encode(r)).hex() for r in readings],
        "tx": to_json(["crev/tx/1", CHAIN_ID, "submit_readings", "", 0, readings, b""]),
        "tx_hex": raw.hex(),
        "tx_hash": sha256(raw).hex(),
    }, raw


# --- (e) a signed transfer -----------------------------------------------------------------------


TRANSFER = {
    "signer": SENDER_ID,
    "nonce": 7,
    "recipient": RECIPIENT_ID,
    "items": [["dgc-0001:20260401T1000", 500], ["dgc-0001:20260401T1030", 250]],
    "memo": "4月分 自家消費CO2削減量",
}


def transfer_vector() -> tuple[dict[str, Any], bytes]:
    t = TRANSFER
    msg = Transfer(t["recipient"], tuple((a, b) for a, b in t["items"]), t["memo"])
    signer = Signer(SEEDS["account"])
    raw = build_tx(CHAIN_ID, msg, t["signer"], t["nonce"], signer)
    body = msg.to_body()
    unsigned = ["crev/tx/1", CHAIN_ID, "transfer", t["signer"], t["nonce"], body]
    signed = encode(unsigned)
    sig = signer.sign(signed)
    assert encode([*unsigned, sig]) == raw
    return {
        "description": "A signed transfer. The signer signs the canonical encoding of the first six elements "
                       '["crev/tx/1", chain_id, kind, signer, nonce, body]; the transaction is the 7-element array '
                       "with the signature appended; tx_hash = SHA-256(tx_hex). "
                       "body = [recipient, [[lot_id, quantity_g], ...], memo].",
        "chain_id": CHAIN_ID,
        "kind": "transfer",
        **t,
        "signer_key": "account",
        "public_key": signer.public_key.hex(),
        "body": to_json(body),
        "signed_elements": to_json(unsigned),
        "signed_hex": signed.hex(),
        "signature": sig.hex(),
        "tx_hex": raw.hex(),
        "tx_hash": sha256(raw).hex(),
    }, raw


ORDER = {
    "signer": "kanto-rail",
    "nonce": 3,
    "market_id": "jp-spot",
    "side": "bid",
    "price": 3_500,
    "quantity_g": 250_000,
    "tif": "gtt",
    "expires_at": 1_780_243_200,
    "filter": [["chubu", "tokyo"], ["solar_pv"], 0, [], FY2026_START, 0],
    "lots": [],
    "retire": ["Kanto Rail Holdings", "re100", FY2026_START, FY2026_END, "JP", "FY2026 RE100 / 再エネ100"],
}


def order_vector() -> dict[str, Any]:
    o = ORDER
    f = o["filter"]
    msg = PlaceOrder(o["market_id"], o["side"], o["price"], o["quantity_g"], o["tif"], o["expires_at"],
                     Filter(tuple(f[0]), tuple(f[1]), f[2], tuple(f[3]), f[4], f[5]), (), RetireSpec(*o["retire"]))
    signer = Signer(SEEDS["account"])
    raw = build_tx(CHAIN_ID, msg, o["signer"], o["nonce"], signer)
    body = msg.to_body()
    unsigned = ["crev/tx/1", CHAIN_ID, "place_order", o["signer"], o["nonce"], body]
    sig = signer.sign(encode(unsigned))
    assert encode([*unsigned, sig]) == raw
    return {
        "description": "A signed place_order: a good-till-time bid for up to 250 kg at ≤ 3,500 JPY/t, accepting "
                       "non-FIT solar C-REV from Tokyo or Chubu with a slot start from 2026-04-01, retired on fill "
                       "for the buyer's FY2026 RE100 claim. body = [market_id, side, price, quantity_g, tif, "
                       "expires_at, filter, lots, retire]; filter = [grid_areas (sorted), technologies, fit, "
                       "devices, vintage_start, vintage_end]; see docs/wire-format.md.",
        "chain_id": CHAIN_ID,
        "kind": "place_order",
        **o,
        "signer_key": "account",
        "body": to_json(body),
        "signed_hex": encode(unsigned).hex(),
        "signature": sig.hex(),
        "tx_hex": raw.hex(),
        "tx_hash": sha256(raw).hex(),
    }


# --- (f) Merkle ----------------------------------------------------------------------------------


def merkle_vectors() -> dict[str, Any]:
    leaves = [f"leaf-{i}".encode() for i in range(7)]
    hashes = [merkle.leaf_hash(x) for x in leaves]
    proofs = []
    for index, size in ((4, 7), (6, 7), (0, 1), (2, 3)):
        path = merkle.proof(hashes[:size], index)
        proofs.append({"index": index, "size": size, "leaf_hash": hashes[index].hex(),
                       "path": [p.hex() for p in path],
                       "root": merkle.root(leaves[:size]).hex()})
    return {
        "description": "RFC 6962-shaped Merkle tree over SHA-256. leaf = SHA-256(0x00 || data), "
                       "node = SHA-256(0x01 || left || right), empty tree = SHA-256(''). "
                       "roots[n] is the root over the first n leaves.",
        "leaves": [x.hex() for x in leaves],
        "leaf_hashes": [h.hex() for h in hashes],
        "roots": [{"size": n, "root": merkle.root(leaves[:n]).hex()} for n in (0, 1, 2, 3, 5, 7)],
        "proofs": proofs,
    }


# --- (g) state tree ------------------------------------------------------------------------------


def _same_bucket_key(prefix: str, target: int, depth: int, taken: set[str]) -> str:
    """The first ``prefix<n>`` key that falls into bucket ``target`` (a deterministic search)."""
    n = 0
    while True:
        k = f"{prefix}{n}"
        if k not in taken and bucket_index(k, depth) == target:
            return k
        n += 1


def state_vectors(reading_hash: bytes) -> dict[str, Any]:
    depth = 16
    pk = {name: public_key_from_seed(seed) for name, seed in SEEDS.items()}
    entries: list[tuple[str, bytes]] = [
        ("g", encode([CHAIN_ID, sha256(b"crev golden genesis"), [16], "registry", pk["sequencer"]])),
        ("s", encode([751, 750, 750, 0, 0, 0, 0])),
        ("a/registry", encode(["registry", "Registry", "operator", pk["operator"], 3, 0, 0, 0, 0])),
        ("a/tokyo-factory", encode(["tokyo-factory", "東京工場", "prosumer", pk["account"], 7, 0, 0, 0, 1])),
        ("d/dgc-0001", encode(["dgc-0001", "tokyo-factory", 5000])),
        ("r/dgc-0001/42", encode([INTERVAL_START, reading_hash, "dgc-0001:20260401T1000", 42])),
    ]
    proved = "r/dgc-0001/42"
    taken = {k for k, _ in entries}
    # a second entry in the same bucket as the proved key, so the proof lists two entries
    mate = _same_bucket_key("t/ret-", bucket_index(proved, depth), depth, taken)
    entries.append((mate, encode([mate[2:], "tokyo-factory", 250])))
    taken.add(mate)
    # an absent key that falls into the non-empty bucket of "a/tokyo-factory"
    absent = _same_bucket_key("a/absent-", bucket_index("a/tokyo-factory", depth), depth, taken)
    tree = StateTree(depth)
    for k, v in entries:
        tree.set(k, v)
    root = tree.root()
    values = dict(entries)

    def proof_json(key: str, value: bytes | None, description: str) -> dict[str, Any]:
        p = tree.prove(key, value)
        assert p.verify(root)
        return {"description": description, "key": key, "value": None if value is None else value.hex(),
                "bucket": p.bucket,
                "bucket_entries": [{"key": k, "leaf_hash": h.hex()} for k, h in p.bucket_entries],
                "siblings": [s.hex() for s in p.siblings]}

    return {
        "description": "State tree, depth 16: leaf = SHA-256(0x00 || u16be(len key) || key || value); bucket = "
                       "first 16 bits of SHA-256(key); bucket hash = SHA-256(0x02 || leaf hashes sorted by key); "
                       "root = complete binary tree over 2**16 bucket hashes, node = SHA-256(0x01 || l || r). "
                       "Values are illustrative canonical CBOR, not real records.",
        "depth": depth,
        "empty_root": StateTree(depth).root().hex(),
        "entries": [{"key": k, "value": v.hex(), "leaf_hash": entry_leaf_hash(k, v).hex(),
                     "bucket": bucket_index(k, depth)} for k, v in entries],
        "root": root.hex(),
        "presence_proof": proof_json(proved, values[proved],
                                     f"{proved} is present; its bucket also holds {mate}"),
        "absence_proof": proof_json(absent, None,
                                    f"{absent} is absent; its bucket holds a/tokyo-factory only"),
    }


# --- (h) block header ----------------------------------------------------------------------------


def header_vector(txs: list[bytes], state_root: bytes) -> dict[str, Any]:
    h = Header(
        chain_id=CHAIN_ID,
        height=42,
        time=INTERVAL_START + 3600 + 5,
        prev_hash=sha256(b"crev golden: previous block"),
        tx_root=merkle.root(txs),
        results_root=sha256(b"crev golden: results root"),
        state_root=state_root,
        tx_count=len(txs),
    )
    sequencer = Signer(SEEDS["sequencer"])
    sig = sequencer.sign(h.encode())
    block = Block(h, sig, tuple(txs)).encode()
    return {
        "description": 'Block header ["crev/block/1", chain_id, height, time, prev_hash, tx_root, results_root, '
                       "state_root, tx_count]; block_hash = SHA-256(header_hex); the sequencer signs header_hex. "
                       "tx_root is the Merkle root over the two raw transactions above (submit_readings, then "
                       "transfer); prev_hash and results_root are fixed stand-ins (SHA-256 of a label); "
                       "state_root is the state-tree root above.",
        "fields": {"version": "crev/block/1", "chain_id": h.chain_id, "height": h.height, "time": h.time,
                   "prev_hash": h.prev_hash.hex(), "tx_root": h.tx_root.hex(),
                   "results_root": h.results_root.hex(), "state_root": h.state_root.hex(),
                   "tx_count": h.tx_count},
        "header_hex": h.encode().hex(),
        "block_hash": h.hash.hex(),
        "sequencer_public_key": sequencer.public_key.hex(),
        "signature": sig.hex(),
        "block_hex": block.hex(),
        "block_description": "A whole block is [header, signature, [tx bytes, ...]].",
    }


# --- (i) a short chain: genesis and two blocks, with every transaction's result ----------------

# Its own keys, so that the sections above stay as they are.
CHAIN_SEEDS = {
    "operator": bytes([0x03]) * 32,  # "registry", the operator named in genesis
    "sequencer": bytes([0x04]) * 32,
    "prosumer": bytes([0x02]) * 32,  # "tokyo-factory", owner of the device
    "buyer": bytes([0x05]) * 32,  # "osaka-buyer"
    "buyer_rotated": bytes([0x08]) * 32,  # osaka-buyer's key after rotate_key
    "device": bytes([0x06]) * 32,  # dgc-0101's first key
    "device_rotated": bytes([0x07]) * 32,  # dgc-0101's key after update_device
    "delegate": bytes([0x09]) * 32,  # "tokyo-factory.site-1": the site DGC's delegated key
}
OPERATOR_ID = "registry"
BUYER_ID = "osaka-buyer"
CHAIN_DEVICE = "dgc-0101"
DELEGATE_ID = "tokyo-factory.site-1"
JST_MIDNIGHT = FY2026_START  # 2026-04-01 00:00 JST
GENESIS_TIME = JST_MIDNIGHT
BLOCK_TIMES = (JST_MIDNIGHT + 12 * 3600 + 1800 + 5,  # 2026-04-01 12:30:05 JST
               JST_MIDNIGHT + 13 * 3600 + 5)  # 13:00:05 JST, when the call auction listed in block 1 is due
FACTOR_ROWS = (["tokyo", 2025, "adjusted", 423, "golden vector fixture", ""],
               ["national", 2025, "national_average", 438, "golden vector fixture", ""])


def slot(hh: int, mm: int) -> int:
    """Unix time of hh:mm JST on 2026-04-01."""
    return JST_MIDNIGHT + hh * 3600 + mm * 60


def chain_genesis() -> Genesis:
    pk = {name: public_key_from_seed(seed) for name, seed in CHAIN_SEEDS.items()}
    return Genesis(CHAIN_ID, GENESIS_TIME, OPERATOR_ID, "Golden Registry / 登録機関", pk["operator"],
                   pk["sequencer"], Params(),
                   tuple(FactorRow(*r) for r in FACTOR_ROWS))  # type: ignore[arg-type]


class Chain:
    """Signs transactions with the right nonces (a wrong one only where asked)."""

    def __init__(self) -> None:
        self.nonces: dict[str, int] = {}
        self.keys = {OPERATOR_ID: "operator", SENDER_ID: "prosumer", BUYER_ID: "buyer", DELEGATE_ID: "delegate"}

    def tx(self, signer: str, kind: str, body: list[Any], nonce: int | None = None) -> tuple[bytes, str]:
        n = self.nonces.get(signer, 0) if nonce is None else nonce
        if nonce is None:
            self.nonces[signer] = n + 1
        unsigned = ["crev/tx/1", CHAIN_ID, kind, signer, n, body]
        REGISTRY[kind](body, Params())  # the body is well-formed
        sig = Signer(CHAIN_SEEDS[self.keys[signer]]).sign(encode(unsigned))
        return encode([*unsigned, sig]), kind

    @staticmethod
    def unsigned(kind: str, body: list[Any]) -> tuple[bytes, str]:
        return encode(["crev/tx/1", CHAIN_ID, kind, "", 0, body, b""]), kind


def chain_readings() -> list[list[Any]]:
    """dgc-0101's batch: three contiguous readings, then one after a missing one (a gap), the first
    one again (a duplicate) and one whose export exceeds its generation (refused on its own)."""
    agent = DgcAgent(CHAIN_ID, CHAIN_DEVICE, Signer(CHAIN_SEEDS["device"]), seq=0,
                     generation_register_wh=48_200_000, import_register_wh=9_100_000,
                     export_register_wh=3_300_000)
    r1 = agent.reading(slot(10, 0), 1800, 612_345, 40_000, 12_222)  # 600 123 Wh self-consumed
    r2 = agent.reading(slot(10, 30), 1800, 705_000, 12_000, 5_000)  # 700 000 Wh
    r3 = agent.reading(slot(11, 0), 1800, 4_000, 80_000, 4_000)  # all exported: nothing to issue
    agent.reading(slot(11, 30), 1800, 300_000, 20_000, 10_000)  # seq 4: never sent
    r5 = agent.reading(slot(12, 0), 1800, 650_000, 10_000, 50_000)  # 600 000 Wh, after the gap
    bad = reading_payload(CHAIN_ID, CHAIN_DEVICE, 6, slot(12, 30), 1800, 100, 0, 200,
                          agent.generation_register_wh + 100, agent.import_register_wh,
                          agent.export_register_wh + 200)
    bad.append(Signer(CHAIN_SEEDS["device"]).sign(encode(bad)))
    return [r1, r2, r3, r5, r1, bad]


def chain_meter_values() -> list[list[Any]]:
    """The smart meter's values for dgc-0101's first two slots: 10:00 exported 1 000 Wh more than
    the DGC measured (out of the 2 % tolerance: the slot is corrected, 1 269 g cancelled), 10:30
    agrees within tolerance (final)."""
    out = []
    for start, imp, exp, regs in ((slot(10, 0), 40_000, 13_222, (9_140_000, 3_313_222)),
                                  (slot(10, 30), 12_010, 5_010, (9_152_010, 3_318_232))):
        item = meter_values_payload(CHAIN_ID, CHAIN_DEVICE, start, imp, exp, *regs, 1, "JP-SM-13-0101")
        out.append([*item, Signer(CHAIN_SEEDS["device"]).sign(encode(item))])
    return out


def chain_controls() -> list[list[Any]]:
    """dgc-0101 capped its inverter at 1 MW in the 12:00 slot for a contracted 500 kW export cap."""
    item = control_payload(CHAIN_ID, CHAIN_DEVICE, 1, slot(12, 0), slot(12, 0) + 10, 1_000_000, 500_000,
                           "export_cap", 500_000, 8_500, 3_000, 5_000, -1)
    return [[*item, Signer(CHAIN_SEEDS["device"]).sign(encode(item))]]


def chain_blocks() -> list[tuple[int, list[tuple[bytes, str]], str]]:
    """(time, [(raw tx, what it shows)], description) of each block."""
    pk = {name: public_key_from_seed(seed) for name, seed in CHAIN_SEEDS.items()}
    c = Chain()
    op, pro, buy = OPERATOR_ID, SENDER_ID, BUYER_ID
    lot1, lot2, lot5 = (f"{CHAIN_DEVICE}:20260401T{t}" for t in ("1000", "1030", "1200"))
    any_filter = [[], [], -1, [], 0, 0]
    fy2026 = [FY2026_START, FY2026_END]
    b1 = [
        c.tx(op, "register_participant", [pro, "東京工場", "prosumer", pk["prosumer"]]),
        c.tx(op, "register_participant", [buy, "Osaka Trading Co.", "buyer", pk["buyer"]]),
        c.tx(op, "register_device", [CHAIN_DEVICE, pro, pk["device"], 1_500_000, parse_time("2026-03-01"),
                                     35_681_236, 139_767_125, "tokyo", "MS-0101", parse_time("2036-04-01"),
                                     False, "solar_pv"]),
        c.unsigned("submit_readings", chain_readings()),
        c.tx(pro, "transfer", [buy, [[lot1, 100_000]], "4月分"]),
        c.tx(buy, "retire", [[[lot1, 40_000]], "Osaka Trading Co.", "statutory_report", *fy2026, "JP",
                             "FY2026 report"]),
        c.tx(op, "correct", ["cancel", lot2, 1_000, 0, "meter recalibrated", "TKT-1042", pro]),
        c.tx(op, "correct", ["topup", lot1, 846, 2_000, "smart meter reconciliation", "TEPCO-2026-04", ""]),
        c.tx(op, "set_emission_factors", [["okinawa", 2025, "adjusted", 698, "golden vector fixture", ""]]),
        c.tx(op, "deposit_jpy", [buy, 2_000_000, "BANK-20260401-01"]),
        c.tx(op, "withdraw_jpy", [buy, 100_000, "BANK-20260401-02"]),
        c.tx(op, "list_market", ["jp-spot", "JP solar spot", "continuous", any_filter, 1, 1_000_000, 1_000, 100,
                                 0, True]),
        c.tx(op, "list_market", ["jp-call", "Tokyo solar call", "call", [["tokyo"], [], -1, [], 0, 0], 1,
                                 1_000_000, 1_000, 100, 1800, True]),
        c.tx(pro, "set_offer_policy", ["jp-spot", 2_500, 4_000]),
        c.tx(pro, "place_order", ["jp-spot", "ask", 3_200, 150_000, "gtc", 0, any_filter, [[lot2, 150_000]], []]),
        c.tx(buy, "place_order", ["jp-spot", "bid", 3_500, 100_000, "ioc", 0, any_filter, [],
                                  ["Osaka Trading Co.", "re100", *fy2026, "JP", ""]]),
        c.tx(buy, "set_standing_bid", ["jp-call", 3_000, 50_000, any_filter, []]),
        c.tx(pro, "place_order", ["jp-call", "ask", 2_800, 40_000, "gtc", 0, any_filter, [[lot5, 40_000]], []]),
        c.tx(buy, "place_order", ["jp-spot", "bid", 1_000, 20_000, "gtc", 0, any_filter, [], []]),
        c.tx(buy, "cancel_order", ["o-00000005"]),
        c.tx(pro, "authorize_delegate", ["grant", DELEGATE_ID, pk["delegate"],
                                         ["set_offer_policy", "place_order", "cancel_order"], 0]),
        c.tx(DELEGATE_ID, "place_order", ["jp-spot", "ask", 3_300, 10_000, "gtc", 0, any_filter, [[lot5, 10_000]],
                                          []]),
        c.tx(pro, "authorize_delegate", ["revoke", DELEGATE_ID, b"", [], 0]),
        c.unsigned("submit_meter_values", chain_meter_values()),
        c.unsigned("submit_controls", chain_controls()),
        c.tx(op, "update_device", [CHAIN_DEVICE, [["meter_serial", "MS-0101-B"],
                                                  ["public_key", pk["device_rotated"]]]]),
        c.tx(op, "revoke_device", [CHAIN_DEVICE, pk["device"], "key replaced"]),
        c.tx(buy, "rotate_key", [pk["buyer_rotated"]]),
        c.tx(op, "reset_participant_key", [pro, b"", "laptop stolen"]),
    ]
    c.keys[buy] = "buyer_rotated"
    b2 = [
        c.unsigned("market_tick", [BLOCK_TIMES[1]]),
        c.tx(buy, "transfer", [pro, [[lot1, 1_000]], ""], nonce=c.nonces[buy] - 1),  # stale nonce: refused
        c.tx(op, "revoke_device", [CHAIN_DEVICE, b"", "site decommissioned"]),
    ]
    return [(BLOCK_TIMES[0], b1, "Block 1: registrations, a batch of readings (accepted, nothing to issue, "
                                 "after a gap, duplicate, refused), transfer, retirement, both corrections, "
                                 "factors, money, two markets, an offer policy, orders, a trade that retires "
                                 "at once, a standing bid, a cancelled order, a delegated key granted, an offer it "
                                 "signs for its owner and its revocation, smart-meter values (one slot "
                                 "corrected, one final), a control record, device and participant keys."),
            (BLOCK_TIMES[1], b2, "Block 2: the call auction clears, a transaction with a stale nonce fails "
                                 "(kept in the block, as a CometBFT block keeps it), the device is revoked.")]


def chain_vectors() -> dict[str, Any]:
    g = chain_genesis()
    state = state_from_genesis(g)
    sequencer = Signer(CHAIN_SEEDS["sequencer"])
    blocks = []
    for time, txs, description in chain_blocks():
        builder = BlockBuilder(state, state.height + 1, time)
        for raw, _ in txs:
            builder.add(raw, keep_failed=True)
        out = builder.finish()
        sig = sequencer.sign(out.header.encode())
        results = []
        for (raw, kind), r, enc in zip(txs, out.results, out.encoded_results, strict=True):
            assert r.kind == kind and r.tx_hash == sha256(raw)
            results.append({"kind": kind, "ok": r.ok, "value": to_json(r.to_value()), "hex": enc.hex(),
                            "leaf_hash": merkle.leaf_hash(enc).hex()})
        h = out.header
        blocks.append({
            "description": description,
            "height": h.height,
            "time": h.time,
            "txs": [raw.hex() for raw, _ in txs],
            "results": results,
            "results_root": h.results_root.hex(),
            "tx_root": h.tx_root.hex(),
            "state_root": h.state_root.hex(),
            "header_hex": h.encode().hex(),
            "block_hash": h.hash.hex(),
            "signature": sig.hex(),
            "block_hex": Block(h, sig, tuple(out.txs)).encode().hex(),
        })
    return {
        "description": "A real chain: genesis, then two blocks built by the ledger (crev.ledger.apply.BlockBuilder). "
                       "Each result is the canonical CBOR of [tx_hash, kind, ok, error, events, detail] "
                       "(docs/wire-format.md section 5); results_root is the RFC 6962 Merkle root over the "
                       "results' bytes in block order. Replaying block_hex from genesis with apply_block "
                       "reproduces every root.",
        "seeds": {name: seed.hex() for name, seed in CHAIN_SEEDS.items()},
        "genesis": {"value": to_json(g.to_value()), "hex": encode(g.to_value()).hex(), "hash": g.hash.hex()},
        "blocks": blocks,
    }


# --- (j) blinding values (docs/wire-format.md §7, "Blinding values") -----------------------------

# Fixed here so that the vector is reproducible; real tools draw each from os.urandom(16).
BLINDS = {
    "tokyo-factory": bytes(range(0x00, 0x10)),  # register_participant's blind
    "tokyo-factory/rotated": bytes(range(0x10, 0x20)),  # rotate_key to the same key with a new blind
    "osaka-buyer": bytes(range(0x20, 0x30)),  # reset_participant_key blinds an account registered without
    "deposit": bytes(range(0x30, 0x40)),  # deposit_jpy's salt
    "withdrawal": bytes(range(0x40, 0x50)),  # withdraw_jpy's salt
    "control": bytes(range(0x50, 0x60)),  # the control item's salt
}
BLINDED_RECORDS = ("a/tokyo-factory", "a/osaka-buyer", "s", f"c/{CHAIN_DEVICE}/1")


def blinding_vectors() -> dict[str, Any]:
    """One block on the chain's genesis with every blinded encoding: the state records it leaves
    (each with its leaf hash) and the chain of the supply's JPY blind."""
    g = chain_genesis()
    state = state_from_genesis(g)
    pk = {name: public_key_from_seed(seed) for name, seed in CHAIN_SEEDS.items()}
    c = Chain()
    op, pro, buy = OPERATOR_ID, SENDER_ID, BUYER_ID
    item = control_payload(CHAIN_ID, CHAIN_DEVICE, 1, slot(12, 0), slot(12, 0) + 10, 1_000_000, 500_000,
                           "export_cap", 500_000, 8_500, 3_000, 5_000, -1, BLINDS["control"])
    signed_item = encode(item)
    control_item = [*item, Signer(CHAIN_SEEDS["device"]).sign(signed_item)]
    txs = [
        c.tx(op, "register_participant", [pro, "東京工場", "prosumer", pk["prosumer"], BLINDS["tokyo-factory"]]),
        c.tx(op, "register_participant", [buy, "Osaka Trading Co.", "buyer", pk["buyer"]]),
        c.tx(op, "register_device", [CHAIN_DEVICE, pro, pk["device"], 1_500_000, parse_time("2026-03-01"),
                                     35_681_236, 139_767_125, "tokyo", "MS-0101", parse_time("2036-04-01"),
                                     False, "solar_pv"]),
        c.tx(op, "deposit_jpy", [buy, 2_000_000, "BANK-20260401-01", BLINDS["deposit"]]),
        c.tx(op, "withdraw_jpy", [buy, 100_000, "BANK-20260401-02", BLINDS["withdrawal"]]),
        c.tx(op, "reset_participant_key", [buy, pk["buyer"], "blind the record", BLINDS["osaka-buyer"]]),
        c.tx(pro, "rotate_key", [pk["prosumer"], BLINDS["tokyo-factory/rotated"]]),
        c.unsigned("submit_controls", [control_item]),
    ]
    builder = BlockBuilder(state, 1, BLOCK_TIMES[0])
    for raw, _ in txs:
        builder.add(raw, keep_failed=True)
    out = builder.finish()
    assert all(r.ok for r in out.results), [r.error for r in out.results]
    first = sha256(BLINDS["deposit"])[:16]
    records = {}
    for key in BLINDED_RECORDS:
        value = state.value_of(key)
        assert value is not None
        records[key] = {"value": to_json(decode(value)), "hex": value.hex(),
                        "leaf_hash": entry_leaf_hash(key, value).hex()}
    return {
        "description": "Blinding values (docs/wire-format.md section 7): one block on the genesis of 'chain' "
                       "whose transactions carry every optional blind and salt. Each is encoded only when "
                       "present; the records they leave end with it, so their leaf hashes cannot be searched "
                       "for the JPY or prices in them. 'blinds' are fixed here; real tools draw them at random.",
        "blinds": {name: b.hex() for name, b in BLINDS.items()},
        "txs": [{"kind": kind, "hex": raw.hex(), "tx_hash": sha256(raw).hex()} for raw, kind in txs],
        "control_item": {"signed_hex": signed_item.hex(), "item_hex": encode(control_item).hex(),
                         "item_hash": sha256(encode(control_item)).hex()},
        "supply_blind": {"after_deposit": first.hex(),
                         "after_withdrawal": sha256(first + BLINDS["withdrawal"])[:16].hex(),
                         "rule": "jpy_blind = first 16 bytes of SHA-256(previous jpy_blind || salt); "
                                 "previous = empty before the first"},
        "records": records,
        "height": 1,
        "time": BLOCK_TIMES[0],
        "state_root": out.header.state_root.hex(),
        "header_hex": out.header.encode().hex(),
    }


def build() -> dict[str, Any]:
    reading, readings = reading_vectors()
    submit, submit_raw = submit_vector(readings)
    transfer, transfer_raw = transfer_vector()
    state = state_vectors(sha256(encode(readings[0])))
    return {
        "format": "crev golden vectors 1",
        "generated_by": "tests/vectors/make_vectors.py",
        "see": "docs/wire-format.md",
        "notation": "Byte strings are lowercase hex. In 'value', 'fields' and similar CBOR values: JSON integer = "
                    "CBOR integer, true/false = CBOR bool, JSON string = CBOR text, {\"bytes\": hex} = CBOR byte "
                    "string, JSON array = CBOR array. Some integers exceed 2**53: parse them exactly.",
        "chain_id": CHAIN_ID,
        "seeds": {name: seed.hex() for name, seed in SEEDS.items()},
        "cbor": cbor_vectors(),
        "ed25519": ed25519_vectors(),
        "reading": reading,
        "submit_readings_tx": submit,
        "transfer_tx": transfer,
        "place_order_tx": order_vector(),
        "merkle": merkle_vectors(),
        "state_tree": state,
        "block_header": header_vector([submit_raw, transfer_raw], bytes.fromhex(state["root"])),
        "chain": chain_vectors(),
        "blinding": blinding_vectors(),
    }


def main() -> int:
    text = json.dumps(build(), indent=1, ensure_ascii=False) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text)} characters, SHA-256 {hashlib.sha256(text.encode()).hexdigest()[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
