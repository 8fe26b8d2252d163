"""The one state-transition path.

``BlockBuilder`` applies transactions one at a time to a state; ``apply_block`` checks a sealed
block's header, replays its transactions through a builder and compares every root. The embedded
sequencer builds blocks with the same builder (dropping transactions that fail, so its blocks hold
only transactions that succeeded); the auditor and every restarted node call ``apply_block``.

Each handler checks everything before it changes anything, so a refused transaction (or a
refused reading inside a batch) leaves the state exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crev.core import merkle
from crev.core.encoding import encode
from crev.core.hashing import sha256
from crev.core.signing import verify
from crev.errors import CrevError, InvalidBlock, NonceError, NotFoundError, PermissionError_, SignatureError
from crev.ledger import messages  # noqa: F401 - fills the registry
from crev.ledger.block import Block, Header
from crev.ledger.events import Event
from crev.ledger.record_codec import record_codec
from crev.ledger.records import Account, Delegate
from crev.ledger.state import State
from crev.ledger.tx import Tx, decode_tx


class SigCache:
    """Signatures already verified (for example in parallel before the block was built).

    Holding only triples that truly verified (``add``) or truly failed (``add_bad``), it changes
    speed, never results: a triple in neither set is verified on the spot. Knowing the failures
    matters as much as the successes: a forged batch must not be verified a second time, alone,
    by the thread that builds the block.
    """

    def __init__(self) -> None:
        self._ok: set[tuple[bytes, bytes, bytes]] = set()
        self._bad: set[tuple[bytes, bytes, bytes]] = set()

    def add(self, public_key: bytes, message: bytes, signature: bytes) -> None:
        self._ok.add((public_key, message, signature))

    def add_bad(self, public_key: bytes, message: bytes, signature: bytes) -> None:
        self._bad.add((public_key, message, signature))

    def discard(self, triple: tuple[bytes, bytes, bytes]) -> None:
        self._ok.discard(triple)
        self._bad.discard(triple)

    def __len__(self) -> int:
        return len(self._ok) + len(self._bad)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        t = (public_key, message, signature)
        if t in self._ok:
            self._ok.discard(t)
            return True
        if t in self._bad:
            self._bad.discard(t)
            return False
        return verify(public_key, message, signature)


@dataclass
class Ctx:
    """What a handler sees: the state, the block's height and time, and where to put events.
    ``signer`` is the account the transaction acts for; ``delegate`` the delegate that signed it
    for that account, if one did (``authenticate``)."""

    state: State
    height: int
    time: int
    sigs: SigCache
    tx_hash: bytes = b""
    signer: Account | None = None
    delegate: Delegate | None = None
    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)


@dataclass(frozen=True, slots=True)
class TxResult:
    tx_hash: bytes
    kind: str
    ok: bool
    error: CrevError | None
    events: tuple[Event, ...]
    detail: Any

    def to_value(self, events_as_records: bool = False) -> list[Any]:
        """The canonical list hashed into the results root; with ``events_as_records``, the events
        left as they are, for the kernel's record codec, which encodes each as its ``to_value``."""
        err = [] if self.error is None else [self.error.code, self.error.field, self.error.reason]
        # a failed transaction did nothing: its detail is the empty array, so results hold no null
        detail = [] if self.detail is None else self.detail
        events = self.events if events_as_records else [e.to_value() for e in self.events]
        return [self.tx_hash, self.kind, self.ok, err, events, detail]

    def encode(self) -> bytes:
        """``encode(self.to_value())``, by the kernel's record codec where it can."""
        codec = record_codec()
        if codec is not None:
            out = codec.encode_value(self.to_value(events_as_records=True))
            if out is not None:
                return out
        return encode(self.to_value())

    def to_dict(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash.hex(),
            "kind": self.kind,
            "ok": self.ok,
            "error": None if self.error is None else self.error.to_dict(),
            "events": [e.to_dict() for e in self.events],
            "detail": self.detail,
        }


@dataclass
class BlockOutcome:
    header: Header
    results: list[TxResult]
    txs: list[bytes]
    changed: list[tuple[str, bytes | None]]
    encoded_results: list[bytes]  # canonical bytes of each result (the results-root leaves)


def authenticate(ctx: Ctx, tx: Tx) -> Account | None:
    """Check a signed transaction's signer, nonce and signature against state; return the account
    it acts for (None for an unsigned kind).

    The signer is an account, or a delegate (``k/<id>``, messages/authorize_delegate.py), which acts
    for its owner: ``ctx.delegate`` is set and the owner's account returned, so handlers and events
    see the owner, while the transaction's envelope (in the block) keeps the delegate's id as its
    signer. A delegate's transaction carries the delegate's own nonce; the owner's is not used.
    """
    if not tx.signer:
        return None
    acct = ctx.state.accounts.get(tx.signer)
    if acct is None:
        dlg = ctx.state.delegates.get(tx.signer)
        if dlg is None:
            raise NotFoundError("tx.signer", f"no participant {tx.signer!r}, nor a delegate of that id")
        return authenticate_delegate(ctx, tx, dlg)
    if not acct.public_key:
        raise SignatureError("tx.signer", f"{tx.signer}'s key was revoked by the operator")
    if tx.nonce != acct.nonce:
        raise NonceError("tx.nonce", f"is {tx.nonce}, expected {acct.nonce} (replayed, sent twice or out of "
                                     "order: sign again with the account's current nonce)")
    if not ctx.sigs.verify(acct.public_key, tx.signed_bytes, tx.signature):
        raise SignatureError("tx.signature", f"not a valid signature by {tx.signer}'s key")
    return acct


def authenticate_delegate(ctx: Ctx, tx: Tx, dlg: Delegate) -> Account:
    """A delegate's transaction: the delegate is neither revoked nor expired, its owner's own key
    is not revoked, it was granted this kind, the nonce is its own next one and its key signed.
    Sets ``ctx.delegate``; returns the owner's account."""
    who = f"delegate {dlg.delegate_id} of {dlg.owner}"
    if dlg.revoked:
        raise SignatureError("tx.signer", f"{who} was revoked by its owner")
    if dlg.valid_until and ctx.time >= dlg.valid_until:
        raise SignatureError("tx.signer", f"{who} expired at {dlg.valid_until} (block time {ctx.time})")
    owner: Account = ctx.state.accounts[dlg.owner]
    if not owner.public_key:
        raise SignatureError("tx.signer", f"{dlg.owner}'s key was revoked by the operator: its delegates "
                                          "sign nothing either")
    if tx.kind not in dlg.kinds:
        raise PermissionError_("tx.kind", f"{who} may sign only {', '.join(dlg.kinds)}, not {tx.kind}")
    if tx.nonce != dlg.nonce:
        raise NonceError("tx.nonce", f"is {tx.nonce}, expected {dlg.nonce} (replayed, sent twice or out of "
                                     "order: sign again with the delegate's current nonce)")
    if not ctx.sigs.verify(dlg.public_key, tx.signed_bytes, tx.signature):
        raise SignatureError("tx.signature", f"not a valid signature by {who}'s key")
    ctx.delegate = dlg
    return owner


def signing_key(state: State, signer: str) -> tuple[bytes, int] | None:
    """The public key and next nonce of ``signer``, an account or a delegate (None if neither):
    what a node needs to pre-verify a transaction before it is applied."""
    acct = state.accounts.get(signer)
    if acct is not None:
        return acct.public_key, acct.nonce
    dlg = state.delegates.get(signer)
    return None if dlg is None else (dlg.public_key, dlg.nonce)


class BlockBuilder:
    def __init__(self, state: State, height: int, time: int, sigs: SigCache | None = None) -> None:
        if height != state.height + 1:
            raise InvalidBlock("header.height", f"is {height}, expected {state.height + 1}")
        if time < state.last_time:
            raise InvalidBlock("header.time", f"{time} is before the previous block's {state.last_time}")
        self.state = state
        self.height = height
        self.time = time
        self.sigs = sigs or SigCache()
        self.txs: list[bytes] = []
        self.results: list[TxResult] = []

    def add(self, tx: Tx | bytes, keep_failed: bool = True) -> TxResult:
        """Apply one transaction. A failed one changes nothing; it joins the block only if
        ``keep_failed`` (replay of a block keeps whatever the block holds)."""
        state = self.state
        ctx = Ctx(state, self.height, self.time, self.sigs)
        kind = "?"
        try:
            if isinstance(tx, bytes):
                ctx.tx_hash = sha256(tx)
                tx = decode_tx(tx, state.chain_id, state.params)
            ctx.tx_hash = tx.hash
            kind = tx.kind
            ctx.signer = authenticate(ctx, tx)
            detail = tx.message.handle(ctx)
            if ctx.delegate is not None:  # the delegate's nonce, not its owner's
                ctx.delegate.nonce += 1
                state.mark(f"k/{ctx.delegate.delegate_id}")
            elif ctx.signer is not None:
                ctx.signer.nonce += 1
                state.mark(f"a/{ctx.signer.account_id}")
            result = TxResult(tx.hash, kind, True, None, tuple(ctx.events), detail)
            raw = tx.raw
        except CrevError as err:
            result = TxResult(ctx.tx_hash, kind, False, err, (), None)
            if not keep_failed:
                return result
            raw = tx.raw if isinstance(tx, Tx) else tx
        self.txs.append(raw)
        self.results.append(result)
        return result

    def finish(self) -> BlockOutcome:
        state = self.state
        state_root, changed = state.seal()
        encoded = [r.encode() for r in self.results]
        header = Header(
            chain_id=state.chain_id,
            height=self.height,
            time=self.time,
            prev_hash=state.last_block_hash,
            tx_root=merkle.root(self.txs),
            results_root=merkle.root(encoded),
            state_root=state_root,
            tx_count=len(self.txs),
        )
        state.height = self.height
        state.last_time = self.time
        state.last_block_hash = header.hash
        return BlockOutcome(header, self.results, self.txs, changed, encoded)


def apply_block(state: State, block: Block, sigs: SigCache | None = None,
                check_signature: bool = True, decoded: list[Tx | bytes] | None = None) -> BlockOutcome:
    """Validate and apply a sealed block; raise InvalidBlock naming the first disagreement.

    ``decoded`` may hold the block's transactions already decoded (``decode_tx`` of each raw
    transaction, or the raw bytes where decoding failed), to save decoding twice."""
    h = block.header
    if h.chain_id != state.chain_id:
        raise InvalidBlock("header.chain_id", f"is {h.chain_id!r}, expected {state.chain_id!r}")
    if h.prev_hash != state.last_block_hash:
        raise InvalidBlock("header.prev_hash", "does not match the previous block's hash")
    if h.tx_count != len(block.txs):
        raise InvalidBlock("header.tx_count", f"is {h.tx_count}, block holds {len(block.txs)}")
    if check_signature and not verify(state.sequencer_key, h.encode(), block.signature):
        raise InvalidBlock("block.signature", "not signed by the genesis sequencer key")
    builder = BlockBuilder(state, h.height, h.time, sigs)
    if decoded is not None and len(decoded) != len(block.txs):
        raise ValueError("decoded must match the block's transactions")
    for item in decoded if decoded is not None else block.txs:
        builder.add(item)
    out = builder.finish()
    for name in ("tx_root", "results_root", "state_root"):
        if getattr(out.header, name) != getattr(h, name):
            raise InvalidBlock(f"header.{name}", f"recomputed {getattr(out.header, name).hex()} "
                                                 f"but the block says {getattr(h, name).hex()}")
    return out
