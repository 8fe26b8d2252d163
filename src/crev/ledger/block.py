"""Blocks: a header committing to the transactions, their results and the state after them.

Header (canonical CBOR array)::

    [ "crev/block/1", chain_id, height, time, prev_hash, tx_root, results_root, state_root, tx_count ]

``block_hash = SHA-256(header bytes)``. The sequencer signs the header bytes with its Ed25519 key
(named in genesis). ``tx_root`` is the RFC 6962 Merkle root over the raw transactions;
``results_root`` over the canonical results; ``state_root`` is the state tree root after the block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.core.signing import SIGNATURE_LEN
from crev.errors import MalformedError
from crev.ledger.shape import need_bytes, need_int, need_list, need_text

BLOCK_VERSION = "crev/block/1"


@dataclass(frozen=True, slots=True)
class Header:
    chain_id: str
    height: int
    time: int
    prev_hash: bytes
    tx_root: bytes
    results_root: bytes
    state_root: bytes
    tx_count: int

    def to_value(self) -> list[Any]:
        return [BLOCK_VERSION, self.chain_id, self.height, self.time, self.prev_hash, self.tx_root,
                self.results_root, self.state_root, self.tx_count]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @property
    def hash(self) -> bytes:
        return sha256(self.encode())

    @staticmethod
    def decode(data: bytes) -> Header:
        v = need_list(decode(data, "header"), "header", 9)
        if v[0] != BLOCK_VERSION:
            raise MalformedError("header.version", f"must be {BLOCK_VERSION!r}")
        need_text(v[1], "header.chain_id", 64)
        need_int(v[2], "header.height", 1)
        need_int(v[3], "header.time")
        for i, name in ((4, "prev_hash"), (5, "tx_root"), (6, "results_root"), (7, "state_root")):
            need_bytes(v[i], f"header.{name}", 32)
        need_int(v[8], "header.tx_count")
        return Header(*v[1:])


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    signature: bytes
    txs: tuple[bytes, ...]

    def encode(self) -> bytes:
        return encode([self.header.to_value(), self.signature, list(self.txs)])

    @staticmethod
    def decode(data: bytes) -> Block:
        v = need_list(decode(data, "block"), "block", 3)
        header = Header.decode(encode(v[0]))
        need_bytes(v[1], "block.signature", SIGNATURE_LEN)
        txs = need_list(v[2], "block.txs")
        for i, t in enumerate(txs):
            if not isinstance(t, bytes):
                raise MalformedError(f"block.txs[{i}]", "must be a byte string")
        return Block(header, v[1], tuple(txs))
