"""The transaction envelope and the message registry.

Wire form (canonical CBOR, see docs/wire-format.md)::

    [ "crev/tx/1", chain_id, kind, signer, nonce, body, signature ]

``signature`` is the signer's Ed25519 signature over the canonical encoding of the first six
elements. ``submit_readings``, ``submit_meter_values`` and ``submit_controls`` are unsigned (signer
"", nonce 0, signature b""): each item inside carries its device's signature, so any gateway may
forward it; so is ``market_tick``, which carries nothing to sign. The transaction hash is
SHA-256 of the whole canonical encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.core.signing import SIGNATURE_LEN, Signer
from crev.errors import MalformedError
from crev.ledger.params import Params
from crev.ledger.shape import need_bytes, need_id, need_int, need_list, need_text

TX_VERSION = "crev/tx/1"
UNSIGNED_KINDS = frozenset({"submit_readings", "submit_meter_values", "submit_controls", "market_tick"})


class Message(Protocol):
    kind: ClassVar[str]

    def to_body(self) -> list[Any]: ...

    def handle(self, ctx: Any) -> Any: ...


#: kind → function(body, params) → Message. Filled by crev.ledger.messages.
REGISTRY: dict[str, Callable[[Any, Params], Message]] = {}

#: Compiled decoders of whole unsigned transactions (the kernel's; submit_readings.py registers
#: one): each returns the message of a transaction it checked completely (the same message the
#: reference builds) or None, and the reference path of ``decode_tx`` then decides, naming the
#: malformed field. They make decoding faster, never different (tests/native/).
FAST_DECODERS: list[Callable[[bytes, str, Params], Message | None]] = []


def register(kind: str) -> Callable[[Callable[[Any, Params], Message]], Callable[[Any, Params], Message]]:
    def deco(fn: Callable[[Any, Params], Message]) -> Callable[[Any, Params], Message]:
        REGISTRY[kind] = fn
        return fn

    return deco


@dataclass(frozen=True, slots=True)
class Tx:
    kind: str
    signer: str
    nonce: int
    message: Message
    signature: bytes
    signed_bytes: bytes
    raw: bytes
    hash: bytes


def decode_tx(raw: bytes, chain_id: str, params: Params) -> Tx:
    """Stateless decoding and shape check of a transaction. Raises MalformedError."""
    if type(raw) is bytes and type(chain_id) is str:
        for fast in FAST_DECODERS:
            msg = fast(raw, chain_id, params)
            if msg is not None:  # an unsigned kind, checked as below
                return Tx(msg.kind, "", 0, msg, b"", b"", raw, sha256(raw))
    if len(raw) > params.max_tx_bytes:
        raise MalformedError("tx", f"{len(raw)} bytes exceeds the limit of {params.max_tx_bytes}")
    v = need_list(decode(raw, "tx"), "tx", 7)
    version, cid, kind, signer, nonce, body, sig = v
    if version != TX_VERSION:
        raise MalformedError("tx.version", f"must be {TX_VERSION!r}")
    if cid != chain_id:
        raise MalformedError("tx.chain_id", f"is {cid!r}, this ledger is {chain_id!r}")
    need_text(kind, "tx.kind", 64)
    factory = REGISTRY.get(kind)
    if factory is None:
        raise MalformedError("tx.kind", f"unknown transaction kind {kind!r}")
    if kind in UNSIGNED_KINDS:
        if signer != "":
            raise MalformedError("tx.signer", f"{kind} is unsigned: signer must be ''")
        if type(nonce) is not int or nonce != 0:
            raise MalformedError("tx.nonce", f"{kind} is unsigned: nonce must be the integer 0")
        if sig != b"":
            raise MalformedError("tx.signature", f"{kind} is unsigned: signature must be empty bytes")
    else:
        need_id(signer, "tx.signer")
        need_int(nonce, "tx.nonce")
        need_bytes(sig, "tx.signature", SIGNATURE_LEN)
    message = factory(body, params)
    signed = b"" if kind in UNSIGNED_KINDS else encode(v[:6])
    return Tx(kind, signer, nonce, message, sig, signed, raw, sha256(raw))


def build_tx(chain_id: str, message: Message, signer_id: str = "", nonce: int = 0,
             key: Signer | None = None) -> bytes:
    """Encode and (unless unsigned) sign a transaction."""
    unsigned = [TX_VERSION, chain_id, message.kind, signer_id, nonce, message.to_body()]
    if message.kind in UNSIGNED_KINDS:
        return encode([*unsigned, b""])
    if key is None:
        raise ValueError(f"{message.kind} must be signed")
    return encode([*unsigned, key.sign(encode(unsigned))])
