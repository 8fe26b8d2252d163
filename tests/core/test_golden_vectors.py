"""The code must reproduce tests/vectors/golden.json byte for byte.

These vectors pin the wire format (docs/wire-format.md). If a test here fails, the encoding, a hash
or a signature input changed: that breaks every device and client already in the field. Change the
vectors (tests/vectors/make_vectors.py) only together with a new version string.

Besides the crev code, a small independent CBOR encoder, an RFC 6962 Merkle root and a state-proof
verifier written from the document are checked against the same vectors, so the file itself is
checked against the specification, not only against the code that wrote it.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey, VerifyKey

import crev.ledger.messages  # noqa: F401  (registers every transaction kind)
from crev.core import merkle
from crev.core.encoding import decode, encode
from crev.core.factors import FactorRow
from crev.core.hashing import sha256
from crev.core.signing import Signer, public_key_from_seed, verify
from crev.core.statetree import StateProof, StateTree, bucket_index, entry_leaf_hash
from crev.core.units import fiscal_year_bounds
from crev.device.dgc import DgcAgent
from crev.errors import MalformedError
from crev.ledger.apply import BlockOutcome, apply_block
from crev.ledger.block import Block, Header
from crev.ledger.events import (
    AuctionCleared,
    Cancelled,
    ControlRecorded,
    EmissionFactorsSet,
    Event,
    Issued,
    JpyDeposited,
    JpyWithdrawn,
    MarketListed,
    MeterValuesRecorded,
    OfferPolicySet,
    OrderClosed,
    OrderPlaced,
    ReadingAccepted,
    Retired,
    SlotReconciled,
    StandingBidSet,
    Traded,
    Transferred,
)
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.messages.submit_readings import parse_reading, reading_payload
from crev.ledger.messages.transfer import Transfer
from crev.ledger.params import Params
from crev.ledger.state import State
from crev.ledger.tx import REGISTRY, build_tx, decode_tx
from tests.core import wire_format_tables as wft

GOLDEN = json.loads((Path(__file__).parents[1] / "vectors" / "golden.json").read_text(encoding="utf-8"))
CHAIN_ID = GOLDEN["chain_id"]
SEEDS = {name: bytes.fromhex(h) for name, h in GOLDEN["seeds"].items()}


def h(x: str) -> bytes:
    return bytes.fromhex(x)


def from_json(v: Any) -> Any:
    """The JSON notation of golden.json back to a Python CBOR value."""
    if isinstance(v, dict):
        assert set(v) == {"bytes"}, v
        return h(v["bytes"])
    if isinstance(v, list):
        return [from_json(x) for x in v]
    assert isinstance(v, bool | int | str), v
    return v


def same(a: Any, b: Any) -> bool:
    """Equal with identical types all the way down (so True is not 1 and b'' is not '')."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --- an independent encoder for the crev CBOR subset (docs/wire-format.md, "Canonical rules") ----


def ref_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for ai, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | ai]) + n.to_bytes(width, "big")
    raise ValueError("integer too large")


def ref_encode(v: Any) -> bytes:
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        return ref_head(0, v) if v >= 0 else ref_head(1, -1 - v)
    if isinstance(v, bytes):
        return ref_head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode("utf-8")
        return ref_head(3, len(b)) + b
    if isinstance(v, list):
        return ref_head(4, len(v)) + b"".join(ref_encode(x) for x in v)
    raise TypeError(type(v).__name__)


# --- (a) canonical CBOR -------------------------------------------------------------------------

CBOR_IDS = [c["name"] for c in GOLDEN["cbor"]]


@pytest.mark.parametrize("case", GOLDEN["cbor"], ids=CBOR_IDS)
def test_cbor_encoding(case: dict[str, Any]) -> None:
    value = from_json(case["value"])
    assert encode(value).hex() == case["hex"]
    assert ref_encode(value).hex() == case["hex"]


@pytest.mark.parametrize("case", GOLDEN["cbor"], ids=CBOR_IDS)
def test_cbor_decode_round_trip(case: dict[str, Any]) -> None:
    value = from_json(case["value"])
    decoded = decode(h(case["hex"]))
    assert same(decoded, value)
    assert encode(decoded).hex() == case["hex"]


@pytest.mark.parametrize("case", GOLDEN["cbor"], ids=CBOR_IDS)
def test_cbor_decoder_rejects_non_canonical(case: dict[str, Any]) -> None:
    good = h(case["hex"])
    for bad_hex in case["non_canonical"]:
        bad = h(bad_hex)
        assert bad != good
        with pytest.raises(MalformedError):
            decode(bad)
    # trailing bytes and truncation are never accepted either
    with pytest.raises(MalformedError):
        decode(good + b"\x00")
    if len(good) > 1:
        with pytest.raises(MalformedError):
            decode(good[:-1])


def test_cbor_vectors_cover_the_edges() -> None:
    values = [from_json(c["value"]) for c in GOLDEN["cbor"]]
    for needed in (0, 23, 24, 255, 256, 65535, 65536, 2**32, -1, True, False, b"", ""):
        assert any(same(v, needed) for v in values), needed
    assert any(isinstance(v, str) and any(ord(ch) > 0x3000 for ch in v) for v in values)
    assert any(isinstance(v, list) and any(isinstance(x, list) for x in v) for v in values)


# --- (b) Ed25519 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", GOLDEN["ed25519"]["keys"], ids=lambda k: k["name"])
def test_ed25519_public_keys(key: dict[str, str]) -> None:
    seed = h(key["seed"])
    assert seed == SEEDS[key["name"]]
    assert public_key_from_seed(seed).hex() == key["public_key"]
    assert Signer(seed).public_key.hex() == key["public_key"]
    assert bytes(SigningKey(seed).verify_key).hex() == key["public_key"]


@pytest.mark.parametrize("vec", GOLDEN["ed25519"]["signatures"], ids=lambda v: f"{v['key']}-{v['message'][:8]}")
def test_ed25519_signatures(vec: dict[str, str]) -> None:
    seed, msg, sig = SEEDS[vec["key"]], h(vec["message"]), h(vec["signature"])
    pk = public_key_from_seed(seed)
    assert Signer(seed).sign(msg) == sig
    assert verify(pk, msg, sig)
    assert not verify(pk, msg + b"\x00", sig)
    assert not verify(pk, msg, bytes([sig[0] ^ 1]) + sig[1:])
    assert not verify(public_key_from_seed(bytes(32)), msg, sig)


def test_rfc8032_test_vector_1() -> None:
    v = GOLDEN["ed25519"]["rfc8032_test1"]
    sk, pk, msg, sig = h(v["secret_key"]), h(v["public_key"]), h(v["message"]), h(v["signature"])
    # PyNaCl directly
    signing = SigningKey(sk)
    assert bytes(signing.verify_key) == pk
    assert bytes(signing.sign(msg).signature) == sig
    assert VerifyKey(pk).verify(msg, sig) == msg
    # and through crev
    assert public_key_from_seed(sk) == pk
    assert Signer(sk).sign(msg) == sig
    assert verify(pk, msg, sig)
    assert not verify(pk, b"x", sig)


# --- (c) a reading -------------------------------------------------------------------------------


def check_reading(vec: dict[str, Any]) -> None:
    f = vec["fields"]
    payload = reading_payload(*(f[k] for k in list(f)[1:]))
    assert same(payload, from_json(vec["signed_elements"]))
    assert f["version"] == payload[0] == "crev/reading/1"
    signed = h(vec["signed_hex"])
    assert encode(payload) == signed
    assert ref_encode(payload) == signed
    sig = h(vec["signature"])
    assert Signer(SEEDS[vec["signer"]]).sign(signed) == sig
    assert public_key_from_seed(SEEDS[vec["signer"]]).hex() == vec["public_key"]
    assert verify(h(vec["public_key"]), signed, sig)
    full = h(vec["reading_hex"])
    reading = [*payload, sig]
    assert same(from_json(vec["reading"]), reading)
    assert encode(reading) == full
    assert ref_encode(reading) == full
    assert full == b"\x8d" + signed[1:] + b"\x58\x40" + sig  # the 13-element array extends the 12
    assert sha256(full).hex() == vec["reading_hash"]
    assert hashlib.sha256(full).hexdigest() == vec["reading_hash"]
    # the ledger's own parse of the bytes
    decoded = decode(full)
    assert same(decoded, reading)
    r = parse_reading(decoded, "reading")
    assert r.signed_bytes == signed
    assert r.hash.hex() == vec["reading_hash"]
    assert r.signature == sig
    assert same(r.to_list(), reading)


def test_reading_vector() -> None:
    check_reading(GOLDEN["reading"])


def test_second_reading_vector() -> None:
    check_reading(GOLDEN["submit_readings_tx"]["second_reading"])


def test_dgc_agent_reproduces_the_readings() -> None:
    before = GOLDEN["reading"]["agent_before"]
    agent = DgcAgent(CHAIN_ID, GOLDEN["reading"]["fields"]["device_id"], Signer(SEEDS["device"]), **before)
    for vec in (GOLDEN["reading"], GOLDEN["submit_readings_tx"]["second_reading"]):
        f = vec["fields"]
        got = agent.reading(f["interval_start"], f["interval_s"], f["generation_wh"], f["import_wh"],
                            f["export_wh"])
        assert encode(got).hex() == vec["reading_hex"]


def test_reading_fields_obey_the_documented_rules() -> None:
    for vec in (GOLDEN["reading"], GOLDEN["submit_readings_tx"]["second_reading"]):
        f = vec["fields"]
        assert 1800 % f["interval_s"] == 0 and f["interval_s"] % 60 == 0
        assert f["interval_start"] % f["interval_s"] == 0
        assert 0 <= f["export_wh"] <= f["generation_wh"]
        assert all(0 <= f[k] < 10**10 for k in list(f)[6:])


def test_non_canonical_reading_is_rejected() -> None:
    bad = h(GOLDEN["reading"]["non_canonical_reading_hex"])
    good = h(GOLDEN["reading"]["reading_hex"])
    assert bad != good
    with pytest.raises(MalformedError):
        decode(bad)
    # wrapped in a transaction, the whole transaction is refused
    raw = b"\x87" + encode(["crev/tx/1", CHAIN_ID, "submit_readings", "", 0])[1:] + b"\x81" + bad + b"\x40"
    with pytest.raises(MalformedError):
        decode_tx(raw, CHAIN_ID, Params())


# --- (d) submit_readings -------------------------------------------------------------------------


def test_submit_readings_tx() -> None:
    vec = GOLDEN["submit_readings_tx"]
    raw = h(vec["tx_hex"])
    value = from_json(vec["tx"])
    assert encode(value) == raw
    assert ref_encode(value) == raw
    readings = value[5]
    assert [encode(r).hex() for r in readings] == [GOLDEN["reading"]["reading_hex"],
                                                   vec["second_reading"]["reading_hex"]]
    msg = REGISTRY["submit_readings"](readings, Params())
    assert build_tx(CHAIN_ID, msg) == raw
    tx = decode_tx(raw, CHAIN_ID, Params())
    assert tx.kind == "submit_readings"
    assert (tx.signer, tx.nonce, tx.signature, tx.signed_bytes) == ("", 0, b"", b"")
    assert tx.hash.hex() == vec["tx_hash"]
    assert [r.hash.hex() for r in tx.message.readings] == vec["reading_hashes"]
    assert vec["reading_hashes"] == [GOLDEN["reading"]["reading_hash"], vec["second_reading"]["reading_hash"]]
    assert same(decode(raw), value)


def test_submit_readings_with_a_forged_reading_still_parses_but_does_not_verify() -> None:
    # the signature check is stateful (the device key is in the ledger): check it by hand here
    vec = GOLDEN["reading"]
    reading = from_json(vec["reading"])
    reading[6] += 1  # claim 1 Wh more generation
    r = parse_reading(reading, "reading")
    assert not verify(h(vec["public_key"]), r.signed_bytes, r.signature)


# --- (e) transfer --------------------------------------------------------------------------------


def test_transfer_tx() -> None:
    vec = GOLDEN["transfer_tx"]
    items = tuple((lot, q) for lot, q in vec["items"])
    msg = Transfer(vec["recipient"], items, vec["memo"])
    assert same(msg.to_body(), from_json(vec["body"]))
    unsigned = ["crev/tx/1", CHAIN_ID, "transfer", vec["signer"], vec["nonce"], msg.to_body()]
    assert same(unsigned, from_json(vec["signed_elements"]))
    signed = h(vec["signed_hex"])
    assert encode(unsigned) == signed
    assert ref_encode(unsigned) == signed
    key = Signer(SEEDS[vec["signer_key"]])
    assert key.public_key.hex() == vec["public_key"]
    sig = h(vec["signature"])
    assert key.sign(signed) == sig
    assert verify(key.public_key, signed, sig)
    raw = h(vec["tx_hex"])
    assert encode([*unsigned, sig]) == raw
    assert build_tx(CHAIN_ID, msg, vec["signer"], vec["nonce"], key) == raw
    assert sha256(raw).hex() == vec["tx_hash"]
    tx = decode_tx(raw, CHAIN_ID, Params())
    assert (tx.kind, tx.signer, tx.nonce) == ("transfer", vec["signer"], vec["nonce"])
    assert tx.signed_bytes == signed
    assert tx.signature == sig
    assert tx.hash.hex() == vec["tx_hash"]
    assert tx.message == msg
    # another nonce or another chain is another message: the signature no longer verifies
    for i, other in ((4, vec["nonce"] + 1), (1, CHAIN_ID + "x")):
        changed = list(unsigned)
        changed[i] = other
        assert not verify(key.public_key, encode(changed), sig)


# --- (f) Merkle ----------------------------------------------------------------------------------


def ref_mth(leaf_hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle Tree Hash over leaf hashes (recursive split at the largest power of 2 < n)."""
    n = len(leaf_hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaf_hashes[:k]) + ref_mth(leaf_hashes[k:])).digest()


def ref_verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """Inclusion check as written in docs/wire-format.md."""
    if not 0 <= index < size:
        return False
    node, i, n, rest = leaf, index, size, list(path)
    while n > 1:
        if i % 2 == 1:
            if not rest:
                return False
            node = hashlib.sha256(b"\x01" + rest.pop(0) + node).digest()
        elif i + 1 < n:
            if not rest:
                return False
            node = hashlib.sha256(b"\x01" + node + rest.pop(0)).digest()
        i, n = i // 2, (n + 1) // 2
    return not rest and node == root


def test_merkle_leaves_and_roots() -> None:
    vec = GOLDEN["merkle"]
    leaves = [h(x) for x in vec["leaves"]]
    hashes = [h(x) for x in vec["leaf_hashes"]]
    assert [merkle.leaf_hash(x) for x in leaves] == hashes
    assert [hashlib.sha256(b"\x00" + x).digest() for x in leaves] == hashes
    sizes = [r["size"] for r in vec["roots"]]
    assert sizes == [0, 1, 2, 3, 5, 7]
    for r in vec["roots"]:
        n = r["size"]
        assert merkle.root(leaves[:n]).hex() == r["root"]
        assert merkle.root_of_leaf_hashes(hashes[:n]).hex() == r["root"]
        assert ref_mth(hashes[:n]).hex() == r["root"]
    assert vec["roots"][0]["root"] == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("p", GOLDEN["merkle"]["proofs"], ids=lambda p: f"{p['index']}of{p['size']}")
def test_merkle_proofs(p: dict[str, Any]) -> None:
    hashes = [h(x) for x in GOLDEN["merkle"]["leaf_hashes"]][: p["size"]]
    path = [h(x) for x in p["path"]]
    root, leaf, index, size = h(p["root"]), h(p["leaf_hash"]), p["index"], p["size"]
    assert hashes[index] == leaf
    assert merkle.proof(hashes, index) == path
    assert merkle.verify_proof(leaf, index, size, path, root)
    assert ref_verify_inclusion(leaf, index, size, path, root)
    # wrong leaf, wrong position, shortened or lengthened path: all refused
    assert not merkle.verify_proof(hashes[index - 1] if size > 1 else b"\x00" * 32, index, size, path, root)
    assert not merkle.verify_proof(leaf, index, size - 1, path, root)
    assert not merkle.verify_proof(leaf, index, size, [*path, b"\x00" * 32], root)
    if path:
        assert not merkle.verify_proof(leaf, index, size, path[:-1], root)
        assert not merkle.verify_proof(leaf, index ^ 1, size, path, root)


def test_merkle_proof_4_of_7_is_present() -> None:
    assert any(p["index"] == 4 and p["size"] == 7 for p in GOLDEN["merkle"]["proofs"])


# --- (g) state tree ------------------------------------------------------------------------------


def ref_verify_state_proof(key: str, value: bytes | None, depth: int, entries: list[tuple[str, bytes]],
                           siblings: list[bytes], root: bytes) -> bool:
    """State proof check as written in docs/wire-format.md."""
    k = key.encode("utf-8")
    bucket = int.from_bytes(hashlib.sha256(k).digest()[:4], "big") >> (32 - depth)
    keys = [e[0].encode("utf-8") for e in entries]
    if keys != sorted(set(keys)) or len(siblings) != depth:
        return False
    found = dict(entries).get(key)
    if value is None:
        if found is not None:
            return False
    elif found != hashlib.sha256(b"\x00" + struct.pack(">H", len(k)) + k + value).digest():
        return False
    node = hashlib.sha256(b"\x02" + b"".join(lh for _, lh in entries)).digest()
    for sib in siblings:
        pair = sib + node if bucket & 1 else node + sib
        node = hashlib.sha256(b"\x01" + pair).digest()
        bucket >>= 1
    return node == root


def state_tree() -> tuple[StateTree, dict[str, bytes]]:
    vec = GOLDEN["state_tree"]
    tree = StateTree(vec["depth"])
    values = {}
    for e in vec["entries"]:
        tree.set(e["key"], h(e["value"]))
        values[e["key"]] = h(e["value"])
    return tree, values


def test_state_tree_root() -> None:
    vec = GOLDEN["state_tree"]
    depth = vec["depth"]
    assert depth == 16
    assert StateTree(depth).root().hex() == vec["empty_root"]
    empty = hashlib.sha256(b"\x02").digest()
    for _ in range(depth):
        empty = hashlib.sha256(b"\x01" + empty + empty).digest()
    assert empty.hex() == vec["empty_root"]
    for e in vec["entries"]:
        k, v = e["key"], h(e["value"])
        assert entry_leaf_hash(k, v).hex() == e["leaf_hash"]
        kb = k.encode()
        assert hashlib.sha256(b"\x00" + len(kb).to_bytes(2, "big") + kb + v).hexdigest() == e["leaf_hash"]
        assert bucket_index(k, depth) == e["bucket"]
        assert int.from_bytes(hashlib.sha256(kb).digest()[:2], "big") == e["bucket"]  # depth 16: first 2 bytes
    tree, _ = state_tree()
    assert tree.root().hex() == vec["root"]
    # insertion order does not matter
    again = StateTree(depth)
    for e in reversed(vec["entries"]):
        again.set(e["key"], h(e["value"]))
    assert again.root().hex() == vec["root"]


@pytest.mark.parametrize("name", ["presence_proof", "absence_proof"])
def test_state_proofs(name: str) -> None:
    vec = GOLDEN["state_tree"]
    p = vec[name]
    root = h(vec["root"])
    value = None if p["value"] is None else h(p["value"])
    entries = [(e["key"], h(e["leaf_hash"])) for e in p["bucket_entries"]]
    siblings = [h(s) for s in p["siblings"]]
    proof = StateProof(p["key"], value, vec["depth"], p["bucket"], tuple(entries), tuple(siblings))
    assert proof.verify(root)
    assert ref_verify_state_proof(p["key"], value, vec["depth"], entries, siblings, root)
    tree, values = state_tree()
    assert tree.prove(p["key"], values.get(p["key"])) == proof
    assert len(entries) >= 1  # both vectors use a non-empty bucket
    # the opposite claim, a wrong value, a wrong root or a dropped sibling: all refused
    flipped = None if value is not None else b"\x00"
    assert not StateProof(p["key"], flipped, vec["depth"], p["bucket"], tuple(entries), tuple(siblings)).verify(root)
    if value is not None:
        assert not StateProof(p["key"], value + b"\x00", vec["depth"], p["bucket"], tuple(entries),
                              tuple(siblings)).verify(root)
    assert not proof.verify(bytes(32))
    assert not StateProof(p["key"], value, vec["depth"], p["bucket"], tuple(entries), tuple(siblings[:-1])).verify(root)
    if value is None:
        # hiding the bucket's other entries does not make an absence proof verify
        assert not StateProof(p["key"], None, vec["depth"], p["bucket"], (), tuple(siblings)).verify(root)


def test_state_presence_proof_has_two_entries() -> None:
    p = GOLDEN["state_tree"]["presence_proof"]
    assert len(p["bucket_entries"]) == 2
    assert p["key"] in [e["key"] for e in p["bucket_entries"]]
    assert GOLDEN["state_tree"]["absence_proof"]["value"] is None


# --- (h) block header ----------------------------------------------------------------------------


def test_block_header() -> None:
    vec = GOLDEN["block_header"]
    f = vec["fields"]
    header = Header(f["chain_id"], f["height"], f["time"], h(f["prev_hash"]), h(f["tx_root"]),
                    h(f["results_root"]), h(f["state_root"]), f["tx_count"])
    assert f["version"] == header.to_value()[0] == "crev/block/1"
    raw = h(vec["header_hex"])
    assert header.encode() == raw
    assert ref_encode(header.to_value()) == raw
    assert header.hash.hex() == vec["block_hash"]
    assert sha256(raw).hex() == vec["block_hash"]
    assert Header.decode(raw) == header
    txs = [h(GOLDEN["submit_readings_tx"]["tx_hex"]), h(GOLDEN["transfer_tx"]["tx_hex"])]
    assert merkle.root(txs).hex() == f["tx_root"]
    assert f["tx_count"] == len(txs)
    assert f["state_root"] == GOLDEN["state_tree"]["root"]
    seq = Signer(SEEDS["sequencer"])
    assert seq.public_key.hex() == vec["sequencer_public_key"]
    sig = h(vec["signature"])
    assert seq.sign(raw) == sig
    assert verify(seq.public_key, raw, sig)
    block = h(vec["block_hex"])
    assert Block(header, sig, tuple(txs)).encode() == block
    assert Block.decode(block) == Block(header, sig, tuple(txs))


def test_place_order_tx() -> None:
    from crev.ledger.messages.place_order import PlaceOrder
    from crev.ledger.params import Params
    from crev.ledger.records import Filter, RetireSpec
    from crev.ledger.tx import decode_tx

    vec = GOLDEN["place_order_tx"]
    f = vec["filter"]
    msg = PlaceOrder(vec["market_id"], vec["side"], vec["price"], vec["quantity_g"], vec["tif"], vec["expires_at"],
                     Filter(tuple(f[0]), tuple(f[1]), f[2], tuple(f[3]), f[4], f[5]), (), RetireSpec(*vec["retire"]))
    assert same(msg.to_body(), from_json(vec["body"]))
    unsigned = ["crev/tx/1", CHAIN_ID, "place_order", vec["signer"], vec["nonce"], msg.to_body()]
    signed = h(vec["signed_hex"])
    assert encode(unsigned) == signed == ref_encode(unsigned)
    key = Signer(SEEDS[vec["signer_key"]])
    assert key.sign(signed) == h(vec["signature"])
    raw = h(vec["tx_hex"])
    assert encode([*unsigned, h(vec["signature"])]) == raw
    assert sha256(raw).hex() == vec["tx_hash"]
    tx = decode_tx(raw, CHAIN_ID, Params())  # the ledger's own decoder reads it back to the same message
    assert tx.message == msg and tx.kind == "place_order" and tx.nonce == 3


# --- (i) fiscal-year periods -----------------------------------------------------------------------


def test_fiscal_year_2026_in_the_vectors_starts_and_ends_at_jst_midnight() -> None:
    fy2026 = list(fiscal_year_bounds(2026))
    assert fy2026 == [1_774_969_200, 1_806_505_200]  # 2026-04-01 and 2027-04-01, 00:00 JST
    order = GOLDEN["place_order_tx"]
    assert order["retire"][2:4] == fy2026
    assert order["filter"][4] == fy2026[0]
    for block in GOLDEN["chain"]["blocks"]:
        for raw in block["txs"]:
            tx = decode(h(raw))
            if tx[2] == "retire":
                assert tx[5][3:5] == fy2026
            if tx[2] == "place_order" and tx[5][8]:
                assert tx[5][8][2:4] == fy2026


# --- (j) a real chain: genesis, blocks and every transaction's result --------------------------------

CHAIN = GOLDEN["chain"]


def chain_genesis_value() -> list[Any]:
    """The genesis array as section 5 lists it: [chain_id, genesis_time, operator_id, operator_name,
    operator_public_key, sequencer_public_key, params, factor_rows]."""
    v = from_json(CHAIN["genesis"]["value"])
    assert len(v) == 8 and len(v[6]) == len(wft.layout("params"))
    return v


def test_chain_genesis_hash() -> None:
    v = chain_genesis_value()
    raw = h(CHAIN["genesis"]["hex"])
    assert encode(v) == raw == ref_encode(v)
    assert hashlib.sha256(raw).hexdigest() == CHAIN["genesis"]["hash"]
    params = Params(**dict(zip([n for n, _ in wft.layout("params")], v[6], strict=True)))
    g = Genesis(v[0], v[1], v[2], v[3], v[4], v[5], params, tuple(FactorRow(*r) for r in v[7]))
    assert g.hash.hex() == CHAIN["genesis"]["hash"]
    seeds = {name: h(s) for name, s in CHAIN["seeds"].items()}
    assert v[4] == public_key_from_seed(seeds["operator"])
    assert v[5] == public_key_from_seed(seeds["sequencer"])


def replay_chain() -> tuple[State, list[BlockOutcome]]:
    v = chain_genesis_value()
    params = Params(**dict(zip([n for n, _ in wft.layout("params")], v[6], strict=True)))
    state = state_from_genesis(Genesis(v[0], v[1], v[2], v[3], v[4], v[5], params,
                                       tuple(FactorRow(*r) for r in v[7])))
    outcomes = [apply_block(state, Block.decode(h(b["block_hex"]))) for b in CHAIN["blocks"]]
    return state, outcomes


def doc_event(e: Event) -> list[Any]:
    """An event's array built from the table in section 5, not from ``Event.to_value``."""
    fields = wft.events()[e.type]
    out: list[Any] = [e.type]
    for name, typ in fields:
        value = getattr(e, name)
        if typ == "array of text":
            assert all(type(x) is str for x in value)
            value = list(value)
        elif typ == "array of ranges":
            assert all(type(a) is str and type(b) is int and type(c) is int and b < c for a, b, c in value)
            value = [[a, b, c] for a, b, c in value]
        else:
            assert type(value) is {"text": str, "bytes": bytes, "uint": int, "bool": bool}[typ], (e.type, name)
            assert typ != "uint" or value >= 0
        out.append(value)
    return out


class Money:
    """Each account's available JPY, followed through the events alone."""

    def __init__(self, operator: str) -> None:
        self.jpy: dict[str, int] = {}
        self.operator = operator

    def add(self, account: str, amount: int) -> None:
        self.jpy[account] = self.jpy.get(account, 0) + amount

    def follow(self, e: Event) -> None:
        if isinstance(e, JpyDeposited):
            self.add(e.account, e.amount_jpy)
        elif isinstance(e, JpyWithdrawn):
            self.add(e.account, -e.amount_jpy)
        elif isinstance(e, OrderPlaced):
            self.add(e.account, -e.escrow_jpy)
        elif isinstance(e, OrderClosed):
            self.add(e.account, e.released_jpy)
        elif isinstance(e, Traded):
            self.add(e.seller, e.value_jpy - e.fee_seller_jpy)
            self.add(self.operator, e.fee_buyer_jpy + e.fee_seller_jpy)


def doc_detail(kind: str, tx: list[Any], events: list[Event], ledger_detail: Any, money: Money,
               accepted: dict[bytes, list[Any]]) -> Any:
    """A successful transaction's detail, built from its body and events as section 5 describes it."""
    def of(cls: type[Event]) -> list[Any]:
        return [e for e in events if isinstance(e, cls)]

    def size(es: list[Any]) -> int:
        return sum(e.end_unit - e.start_unit for e in es)

    if kind == "submit_readings":
        issued = {e.lot_id: e.quantity_g for e in of(Issued)}
        new = {e.reading_hash: e for e in of(ReadingAccepted)}
        out: list[Any] = []
        for i, r in enumerate(tx[5]):
            rh = sha256(encode(r)) if isinstance(r, list) and len(r) == 13 else b""
            if rh in accepted:
                out.append(["duplicate", *accepted[rh]])
            elif rh in new:
                lot = new[rh].lot_id
                accepted[rh] = [lot, issued[lot] if lot else 0]
                out.append(["accepted", *accepted[rh]])
            else:  # why it was refused comes from the ledger; where, and which code, are checked
                refused = ledger_detail[i]
                assert refused[0] == "refused" and refused[1] in wft.error_codes()
                assert refused[2] == f"readings[{i}]" or refused[2].startswith(f"readings[{i}].")
                out.append(["refused", *refused[1:]])
        return out
    if kind == "submit_meter_values":  # every item of the golden batch is new: its slot's status after
        status = {e.slot_id: e.status for e in of(SlotReconciled)}
        return [["accepted", status.get(e.slot_id, "provisional")] for e in of(MeterValuesRecorded)]
    if kind == "submit_controls":
        return [["accepted", e.seq] for e in of(ControlRecorded)]
    if kind == "authorize_delegate":
        return [tx[5][1]]
    if kind in ("register_participant", "rotate_key", "reset_participant_key"):
        return [events[0].account_id]  # type: ignore[attr-defined]
    if kind == "set_offer_policy":
        return [of(OfferPolicySet)[0].account]
    if kind in ("register_device", "update_device", "revoke_device"):
        return [events[0].device_id]  # type: ignore[attr-defined]
    if kind == "transfer":
        return [size(of(Transferred))]
    if kind == "retire":
        return [of(Retired)[0].retirement_id, size(of(Retired))]
    if kind == "correct":
        if tx[5][0] == "cancel":
            return [tx[5][1], size(of(Cancelled))]
        return [of(Issued)[0].lot_id, of(Issued)[0].quantity_g]
    if kind == "set_emission_factors":
        (e,) = of(EmissionFactorsSet)
        assert e.table_hash == sha256(encode(tx[5]))
        return [e.rows]
    if kind in ("deposit_jpy", "withdraw_jpy"):
        return [tx[5][0], money.jpy[tx[5][0]]]
    if kind == "list_market":
        return [of(MarketListed)[0].market_id]
    if kind == "place_order":
        oid = of(OrderPlaced)[0].order_id
        fills = [t for t in of(Traded) if oid in (t.bid_order, t.ask_order)]
        closed = [c.reason for c in of(OrderClosed) if c.order_id == oid]
        return [oid, closed[0] if closed else "open", sum(t.quantity_g for t in fills), len(fills)]
    if kind == "cancel_order":
        (c,) = of(OrderClosed)
        return [c.order_id, c.remaining_g]
    if kind == "set_standing_bid":
        (sb,) = of(StandingBidSet)
        placed = [o.order_id for o in of(OrderPlaced) if o.origin == "standing_bid"]
        return [sb.account, placed[0] if placed and sb.monthly_g else ""]
    if kind == "market_tick":
        return [sum(1 for c in of(OrderClosed) if c.reason == "expired"),
                sum(1 for o in of(OrderPlaced) if o.origin == "standing_bid"),
                [[a.market_id, a.price, a.volume_g] for a in of(AuctionCleared)]]
    raise AssertionError(f"no documented detail for {kind}")


def test_chain_results_and_results_root_from_the_documented_layout() -> None:
    _, outcomes = replay_chain()
    money = Money(chain_genesis_value()[2])
    accepted: dict[bytes, list[Any]] = {}
    seen_types: set[str] = set()
    for block, out in zip(CHAIN["blocks"], outcomes, strict=True):
        header = Header.decode(h(block["header_hex"]))
        assert out.header == header and header.results_root.hex() == block["results_root"]
        assert [r["hex"] for r in block["results"]] == [b.hex() for b in out.encoded_results]
        leaves = []
        for raw_hex, vec, res in zip(block["txs"], block["results"], out.results, strict=True):
            raw = h(raw_hex)
            tx = decode(raw)
            events = list(res.events)
            for e in events:
                money.follow(e)
                seen_types.add(e.type)
            if res.ok:
                error: list[Any] = []
                detail = doc_detail(tx[2], tx, events, res.detail, money, accepted)
                names = wft.details()[tx[2]]
                assert names is None or len(names) == len(detail), tx[2]
            else:
                assert res.error is not None and not events
                assert res.error.code in wft.error_codes()
                error, detail = [res.error.code, res.error.field, res.error.reason], []
            value = [hashlib.sha256(raw).digest(), tx[2], res.ok, error, [doc_event(e) for e in events], detail]
            leaf = ref_encode_result(value)
            assert leaf == encode(value)
            assert leaf.hex() == vec["hex"], f"block {block['height']}: {tx[2]} drifted from the document"
            assert same(from_json(vec["value"]), value)
            assert hashlib.sha256(b"\x00" + leaf).hexdigest() == vec["leaf_hash"]
            leaves.append(hashlib.sha256(b"\x00" + leaf).digest())
        assert ref_mth(leaves).hex() == block["results_root"]
    # (debt and drift need several slots of one device: tests/ledger/test_reconcile.py pins them)
    assert seen_types == set(wft.events()) - {"debt_recorded", "debt_repaid", "calibration_drift"}, \
        "the chain vector should emit every documented event"


def ref_encode_result(value: list[Any]) -> bytes:
    """The independent encoder: a result stays inside the subset of section 1 (no null)."""
    return ref_encode(value)


def test_chain_shows_every_reading_outcome_and_a_failed_transaction() -> None:
    block1, block2 = CHAIN["blocks"]
    batch = next(r for r in block1["results"] if r["kind"] == "submit_readings")
    outcomes = [d[0] for d in batch["value"][5]]
    assert outcomes == ["accepted", "accepted", "accepted", "accepted", "duplicate", "refused"]
    assert ["accepted", "", 0] in batch["value"][5]
    assert batch["value"][5][5][1:3] == ["malformed", "readings[5].export_wh"]
    assert batch["value"][5][4][1:] == batch["value"][5][0][1:]  # a duplicate repeats the first result
    failed = [r for r in block2["results"] if not r["ok"]]
    assert len(failed) == 1 and failed[0]["value"][3][:2] == ["bad_nonce", "tx.nonce"]
    assert failed[0]["hex"].endswith("8080")  # no events, detail []


def test_chain_headers_link_and_are_signed() -> None:
    seq = public_key_from_seed(h(CHAIN["seeds"]["sequencer"]))
    prev = h(CHAIN["genesis"]["hash"])
    for block in CHAIN["blocks"]:
        raw = h(block["header_hex"])
        header = Header.decode(raw)
        assert header.prev_hash == prev and header.height == block["height"]
        assert merkle.root([h(t) for t in block["txs"]]).hex() == block["tx_root"] == header.tx_root.hex()
        assert header.state_root.hex() == block["state_root"]
        assert verify(seq, raw, h(block["signature"]))
        prev = sha256(raw)
        assert prev.hex() == block["block_hash"]


def test_the_documented_result_example_is_in_the_vectors() -> None:
    text = wft.section("Transaction results")
    example = text.split("```", 4)[3]  # the second code block: the annotated result
    hex_bytes = "".join(re.findall(r"^\s*((?:[0-9a-f]{2})+(?: [0-9a-f]+)*)\s", example + "\n", re.M))
    hex_bytes = hex_bytes.replace(" ", "")
    transfer = next(r for r in CHAIN["blocks"][0]["results"] if r["kind"] == "transfer")
    assert hex_bytes == transfer["hex"]
    assert f"{len(hex_bytes) // 2} bytes" in text
