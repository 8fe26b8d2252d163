"""The consortium golden vector (tests/vectors/consortium.json: CometBFT's own answers for one crev
block of a real 4-validator localnet) re-checked offline with crev.audit.cometbft alone: the header
hash CometBFT computed, the commit's Ed25519 signatures over the canonical vote bytes, > 2/3 of the
genesis power, the app hash link to the crev header; and what must be refused when a byte changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from crev.audit.cometbft import (
    FLAG_ABSENT,
    BlockID,
    CmtHeader,
    Commit,
    Timestamp,
    ValidatorSet,
    check_app_hash,
    data_hash,
    pb_message,
    uvarint,
    verify_signed_header,
    vote_sign_bytes,
)
from crev.audit.consortium import Consortium
from crev.core.encoding import decode
from crev.core.hashing import sha256
from crev.errors import InvalidBlock
from crev.ledger.block import Block, Header
from crev.ledger.genesis import Genesis

VECTOR = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "consortium.json").read_text("utf-8"))
CHAIN = VECTOR["cometbft_genesis"]["chain_id"]


def vals() -> ValidatorSet:
    return ValidatorSet.from_genesis(VECTOR["cometbft_genesis"])


def signed(doc: dict[str, Any] | None = None) -> tuple[CmtHeader, Commit]:
    sh = (doc or VECTOR["rpc"])["commit"]
    return CmtHeader.from_json(sh["header"]), Commit.from_json(sh["commit"])


def test_the_header_hashes_to_the_block_id_cometbft_signed() -> None:
    header, _commit = signed()
    assert header.hash().hex().upper() == VECTOR["rpc"]["commit"]["commit"]["block_id"]["hash"]
    # the block before: its hash is the next header's last_block_id (computed by CometBFT)
    before = CmtHeader.from_json(VECTOR["rpc"]["header"])
    assert before.hash() == header.last_block_id.hash
    assert before.height == VECTOR["crev"]["cometbft_height"] == header.height - 1
    # the leaves by hand: Int64Value{1: height} is 0x08 ‖ varint; BytesValue{1: app_hash} 0x0a 0x20 ‖ 32 bytes
    leaves = header.leaves()
    assert len(leaves) == 14
    assert leaves[2] == b"\x08" + uvarint(header.height)
    assert leaves[1] == b"\x0a" + bytes([len(CHAIN)]) + CHAIN.encode()
    assert leaves[10] == b"\x0a\x20" + header.app_hash
    assert leaves[0] == b"\x08\x0b\x10\x01"  # Consensus{block: 11, app: 1}
    assert header.time.text() == VECTOR["rpc"]["commit"]["header"]["time"]


def test_validator_set_hash_and_order() -> None:
    v = vals()
    header, _ = signed()
    assert v.hash == header.validators_hash == header.next_validators_hash
    assert [x.power for x in v.validators] == [10] * 4 and v.total_power == 40 and v.needed == 26
    addrs = [x.address for x in v.validators]
    assert addrs == sorted(addrs)  # equal power: by address
    # SimpleValidator bytes: 0x0a 0x22 (PublicKey) 0x0a 0x20 key, 0x10 0x0a (power 10)
    assert v.validators[0].encode() == b"\x0a\x22\x0a\x20" + v.validators[0].pub_key + b"\x10\x0a"
    # the addresses the genesis names are SHA-256(key)[:20]
    named = {bytes.fromhex(g["address"]) for g in VECTOR["cometbft_genesis"]["validators"]}
    assert named == set(addrs)


def test_commit_verifies_with_more_than_two_thirds() -> None:
    header, commit = signed()
    tally = verify_signed_header(CHAIN, vals(), header, commit)
    flags = [s.flag for s in commit.signatures]
    assert tally.signed_power == 10 * flags.count(2) and tally.signed_power > 26
    assert tally.height == header.height


def test_vote_sign_bytes_by_hand() -> None:
    _header, commit = signed()
    s = commit.signatures[0]
    got = commit.sign_bytes(CHAIN, 0)
    ts = pb_message(5, b"\x08" + uvarint(s.timestamp.seconds) + (b"\x10" + uvarint(s.timestamp.nanos)
                                                                  if s.timestamp.nanos else b""))
    bid = commit.block_id
    canonical_block_id = (b"\x0a\x20" + bid.hash + b"\x12\x24\x08" + uvarint(bid.parts_total) + b"\x12\x20"
                          + bid.parts_hash)
    body = (b"\x08\x02" + b"\x11" + commit.height.to_bytes(8, "little")  # type precommit, height sfixed64
            + (b"\x19" + commit.round.to_bytes(8, "little") if commit.round else b"")  # round 0 left out
            + b"\x22" + bytes([len(canonical_block_id)]) + canonical_block_id + ts
            + b"\x32" + bytes([len(CHAIN)]) + CHAIN.encode())
    assert got == bytes([len(body)]) + body
    assert got == vote_sign_bytes(CHAIN, commit.height, commit.round, commit.block_id, s.timestamp)


def test_app_hash_links_the_crev_header_and_its_roots() -> None:
    header, _ = signed()
    crev = VECTOR["crev"]
    raw = bytes.fromhex(crev["header"])
    check_app_hash(header, raw, crev["height"])
    assert header.app_hash == sha256(raw) == bytes.fromhex(crev["header_hash"])
    h = Header.decode(raw)
    txs = [bytes.fromhex(t) for t in crev["txs"]]
    assert h.height == crev["height"] and h.tx_count == len(txs)
    # CometBFT's data_hash in block C is its root over SHA-256 of crev block n's transactions
    before = CmtHeader.from_json(VECTOR["rpc"]["header"])
    assert before.data_hash == data_hash(txs)
    assert before.app_hash == bytes.fromhex(crev["prev_hash"]) == h.prev_hash
    assert h.time == max(before.time.seconds, crev["prev_time"])
    assert decode(txs[0])[0] == "crev/tx/1"


class Recorded:
    """The vector's RPC answers as a Source."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def signed_header(self, height: int) -> dict[str, Any]:
        assert height == self.doc["crev"]["cometbft_height"] + 1
        return dict(self.doc["rpc"]["commit"])

    def header(self, height: int) -> dict[str, Any]:
        assert height == self.doc["crev"]["cometbft_height"]
        return dict(self.doc["rpc"]["header"])


def check(doc: dict[str, Any]) -> None:
    gen = Genesis.from_json(json.dumps(doc["cometbft_genesis"]["app_state"]))
    c = Consortium(doc["cometbft_genesis"], Recorded(doc), gen)
    crev = doc["crev"]
    block = Block(Header.decode(bytes.fromhex(crev["header"])), b"", tuple(bytes.fromhex(t) for t in crev["txs"]))
    c.check_block(block, crev["cometbft_height"], bytes.fromhex(crev["prev_hash"]), crev["prev_time"])
    proof = c.proof(crev["height"], bytes.fromhex(crev["header"]), crev["cometbft_height"])
    assert proof["header"]["hash"] == proof["commit"]["block_id"]["hash"]


def test_the_whole_link_through_consortium_check_block() -> None:
    check(VECTOR)


def tampered(edit: Any) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(VECTOR)
    edit(doc)
    return doc


def flip_b64(s: str) -> str:
    import base64
    b = bytearray(base64.b64decode(s))
    b[5] ^= 1
    return base64.b64encode(bytes(b)).decode()


def test_a_tampered_signature_is_refused_naming_height_and_validator() -> None:
    def edit(d: dict[str, Any]) -> None:
        sigs = d["rpc"]["commit"]["commit"]["signatures"]
        sigs[1]["signature"] = flip_b64(sigs[1]["signature"])
    doc = tampered(edit)
    with pytest.raises(InvalidBlock) as e:
        check(doc)
    height = VECTOR["crev"]["cometbft_height"] + 1
    addr = doc["rpc"]["commit"]["commit"]["signatures"][1]["validator_address"].lower()
    assert f"height {height}" in e.value.reason and addr in e.value.reason and "bad Ed25519" in e.value.reason


def test_too_little_power_is_refused() -> None:
    def absent(n: int) -> Any:
        def edit(d: dict[str, Any]) -> None:
            for s in d["rpc"]["commit"]["commit"]["signatures"][:n]:
                s.update(block_id_flag=FLAG_ABSENT, validator_address="", timestamp="0001-01-01T00:00:00Z",
                         signature=None)
        return edit
    check(tampered(absent(1)))  # 30 of 40 > 26: still final
    with pytest.raises(InvalidBlock) as e:
        check(tampered(absent(2)))  # 20 of 40
    assert "signed by 20 of 40 voting power" in e.value.reason and "needs more than 26" in e.value.reason


@pytest.mark.parametrize("what, edit, words", [
    ("app hash", lambda d: d["crev"].update(header=d["crev"]["header"][:-2] + "07"), "app_hash"),
    ("a header field", lambda d: d["rpc"]["commit"]["header"].update(
        last_results_hash="00" * 32), "the header hashes to"),
    ("the validator set", lambda d: d["rpc"]["commit"]["header"].update(
        next_validators_hash="11" * 32), "validator set changed"),
    ("the block's transactions", lambda d: d["crev"]["txs"].pop(), "not the ones CometBFT block"),
    ("the genesis validators", lambda d: d["cometbft_genesis"]["validators"].pop(), "validators_hash"),
    ("the chain id", lambda d: d["rpc"]["commit"]["header"].update(chain_id="other"), "chain id"),
    ("the vote timestamp", lambda d: d["rpc"]["commit"]["commit"]["signatures"][0].update(
        timestamp="2030-01-01T00:00:00Z"), "bad Ed25519"),
])
def test_any_changed_byte_is_refused(what: str, edit: Any, words: str) -> None:
    with pytest.raises(InvalidBlock) as e:
        check(tampered(edit))
    assert words in e.value.reason, (what, e.value.reason)


def test_timestamp_round_trip() -> None:
    for text in ("2026-12-03T08:39:46.318241847Z", "1970-01-01T00:00:00Z", "2000-02-29T23:59:59.5Z"):
        assert Timestamp.parse(text).text() == text
    assert Timestamp.parse("1970-01-02T00:00:01.000000002Z") == Timestamp(86401, 2)
    assert BlockID(b"", 0, b"").is_zero


def test_the_bytes_quoted_in_the_docs_are_the_vectors() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "wire-format.md").read_text("utf-8")
    section = doc[doc.index("## 10. Consortium blocks"):]
    flat = " ".join(section.split())
    header, commit = signed()
    assert header.hash().hex() in section
    leaves = header.leaves()
    assert leaves[0].hex() in section and leaves[3].hex()[:12] in section and leaves[2].hex() in section
    sb = commit.sign_bytes(CHAIN, 0).hex()
    assert f"{sb[:2]}  " in section and "11 0600000000000000" in section and sb.endswith("32096e6f64652d74657374")
    assert vals().hash.hex()[:8] in section and vals().validators[0].encode().hex()[:12] in section
    assert header.app_hash.hex()[:8] in section and f"CometBFT block C = {VECTOR['crev']['cometbft_height']}" in flat
