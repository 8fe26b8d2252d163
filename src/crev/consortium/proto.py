"""CometBFT's ABCI messages, from the descriptor set ``protogen`` builds, in Google's protobuf
runtime (upb), and the socket framing CometBFT's client speaks: each message preceded by its
length as an unsigned varint (Go's ``binary.PutUvarint``, libs/protoio).

``classes()`` loads the descriptor set once (building it first if it is missing and Go is there).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from crev.consortium import protogen
from crev.core.varint import uvarint

__all__ = ["MAX_FRAME", "Abci", "DecodeError", "FrameError", "Message", "classes", "frame", "read_uvarint"]

# The largest request we read. CometBFT allows up to 2 GB; a block here is bounded by its
# consensus params (block.max_bytes, 4 MB by default, 100 MB at most): 128 MB leaves room for it.
MAX_FRAME = 128 << 20


class FrameError(ValueError):
    pass


@dataclass(frozen=True)
class Abci:
    """The message classes the app uses (``tendermint.abci.*`` and friends)."""

    Request: Any
    Response: Any
    ExecTxResult: Any
    Event: Any
    ValidatorUpdate: Any
    ProofOp: Any
    CHECK_TX_RECHECK: int
    PROPOSAL_ACCEPT: int
    PROPOSAL_REJECT: int
    VOTE_ACCEPT: int
    VOTE_REJECT: int
    SNAPSHOT_REJECT: int
    CHUNK_ABORT: int


@functools.cache
def classes() -> Abci:
    path = protogen.build()  # no-op when built (make does it); raises ProtoBuildError without Go
    fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)

    def cls(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    def enum(name: str, value: str) -> int:
        return int(pool.FindEnumTypeByName(name).values_by_name[value].number)

    return Abci(
        Request=cls("tendermint.abci.Request"),
        Response=cls("tendermint.abci.Response"),
        ExecTxResult=cls("tendermint.abci.ExecTxResult"),
        Event=cls("tendermint.abci.Event"),
        ValidatorUpdate=cls("tendermint.abci.ValidatorUpdate"),
        ProofOp=cls("tendermint.crypto.ProofOp"),
        CHECK_TX_RECHECK=enum("tendermint.abci.CheckTxType", "RECHECK"),
        PROPOSAL_ACCEPT=enum("tendermint.abci.ResponseProcessProposal.ProposalStatus", "ACCEPT"),
        PROPOSAL_REJECT=enum("tendermint.abci.ResponseProcessProposal.ProposalStatus", "REJECT"),
        VOTE_ACCEPT=enum("tendermint.abci.ResponseVerifyVoteExtension.VerifyStatus", "ACCEPT"),
        VOTE_REJECT=enum("tendermint.abci.ResponseVerifyVoteExtension.VerifyStatus", "REJECT"),
        SNAPSHOT_REJECT=enum("tendermint.abci.ResponseOfferSnapshot.Result", "REJECT"),
        CHUNK_ABORT=enum("tendermint.abci.ResponseApplySnapshotChunk.Result", "ABORT"),
    )


def frame(msg: Message) -> bytes:
    body: bytes = msg.SerializeToString()
    return uvarint(len(body)) + body


def read_uvarint(read_byte: Callable[[], bytes]) -> int | None:
    """An unsigned varint from ``read_byte()`` (returns b"" at end of stream). None at a clean end
    of stream before the first byte; FrameError for a varint longer than 64 bits or cut short."""
    shift = 0
    n = 0
    for i in range(10):
        b = read_byte()
        if not b:
            if i == 0:
                return None
            raise FrameError("connection closed inside a length prefix")
        n |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return n
        shift += 7
    raise FrameError("length prefix longer than 10 bytes")
