"""``CrevApp``: crev's state machine as an ABCI 2.0 application, in plain Python (the socket
server in ``server.py`` only translates protobuf to these calls, so tests can drive it directly).

One state-transition path: ``finalize_block`` applies a decided block's transactions one by one
through ``BlockBuilder.add(keep_failed=True)`` — the same builder the embedded node, a restarting
node and the auditor use — so a failed transaction stays in the block with its error.

**Heights.** A CometBFT block with no transaction changes nothing in crev: it becomes no crev block
and leaves the app hash as it was (CometBFT makes empty blocks every ``timeout_commit`` to keep its
clock; the embedded node never seals an empty block either). Every other CometBFT block becomes
the next crev block, so crev heights count non-empty blocks; ``cmt/<crev height>`` in the store's
meta table maps each back to its CometBFT height.

**App hash** = SHA-256 of the crev header of the last crev block (``Header.hash``: chain id,
height, CometBFT's block time in unix seconds, previous crev header hash, tx_root, results_root,
state_root, tx_count), or the crev genesis hash before the first. CometBFT's header at height H+1
carries the app hash after H and is signed by more than 2/3 of the voting power through its
commit, so: validators' signatures → CometBFT header → app_hash → crev header → state_root →
a record's state proof (``query("/state/<key>")``), and → results_root → each result.

**Durability.** ``commit`` stores the crev block with its transactions and results through crev's
``Store.commit_block`` (SQLite WAL, ``synchronous=FULL``; the chain's file) and the CometBFT height
in the state file's meta, each committed before the next; the state snapshot and index follow as a
checkpoint every ``checkpoint_s`` seconds. After kill -9 the app loads the checkpoint, replays the
later crev blocks through ``apply_block`` (without the sequencer signature: in consortium mode a
block's authority is CometBFT's commit), and ``info`` returns the last committed CometBFT height and
app hash, so CometBFT's handshake replays exactly the blocks the app lacks.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crev.core.encoding import encode
from crev.core.hashing import sha256
from crev.core.signing import verify_many
from crev.core.statetree import pack_bucket_hashes
from crev.errors import ConflictError, CrevError, InvalidBlock, NonceError, RuleError
from crev.ledger.apply import BlockBuilder, BlockOutcome, SigCache, TxResult, apply_block, signing_key
from crev.ledger.block import Block, Header
from crev.ledger.events import Event
from crev.ledger.genesis import Genesis
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.market_tick import MarketTick
from crev.ledger.messages.submit_readings import SubmitReadings
from crev.ledger.params import Params
from crev.ledger.state import State
from crev.ledger.trading import tick_due
from crev.ledger.tx import Tx, build_tx, decode_tx
from crev.node.node import checkpoint_state, readings_in, signature_triples
from crev.node.store import Store

log = logging.getLogger("crev.abci")
GENESIS_FILE = "genesis.json"  # the same names as the embedded node's data directory
DB_FILE = "ledger.sqlite"
APP_VERSION = 1
ENGINE = b"cometbft-v0.38"

# ABCI result codes (0 is success); codespace "crev". The same code on every validator: it is part
# of CometBFT's LastResultsHash, with ``data`` (the result's canonical bytes).
CODES: dict[str, int] = {"malformed": 1, "bad_signature": 2, "not_found": 3, "forbidden": 4, "conflict": 5,
                         "bad_nonce": 6, "rule_violation": 7, "invalid_block": 8, "error": 9}
CODESPACE = "crev"
SIG_CACHE_MAX = 500_000  # verified signatures kept for blocks to come (~200 MB at most)
# decoded transactions kept from CheckTx for Recheck, the proposals and FinalizeBlock, counted in
# readings (a 500-reading batch decodes in ~16 ms, a third of verifying its signatures; ~0.5 kB a reading)
DECODED_MAX_READINGS = 200_000


class AppError(RuntimeError):
    """A request the app cannot serve without breaking its state (wrong order, wrong genesis):
    the server answers it with ResponseException and CometBFT stops, rather than diverge."""


def code_of(err: CrevError) -> int:
    return CODES.get(err.code, CODES["error"])


@dataclass(frozen=True)
class Check:
    """CheckTx's answer: code 0 (kept in the mempool) or a refusal with its field and reason."""

    code: int
    field: str = ""
    reason: str = ""
    kind: str = ""

    @staticmethod
    def refuse(err: CrevError, kind: str = "") -> Check:
        return Check(code_of(err), err.field, err.reason, kind)


@dataclass
class Finalized:
    """What ``finalize_block`` decided, held until ``commit``."""

    cometbft_height: int
    outcome: BlockOutcome | None  # None: an empty CometBFT block (no crev block)
    app_hash: bytes


@dataclass(frozen=True)
class QueryAnswer:
    code: int
    value: bytes = b""
    key: bytes = b""
    log: str = ""
    info: str = ""
    height: int = 0  # the CometBFT height the answer is at
    proof_ops: tuple[tuple[str, bytes, bytes], ...] = ()  # (type, key, data)


@dataclass
class Validator:
    pub_key_type: str
    pub_key: bytes
    power: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.pub_key_type, "pub_key": self.pub_key.hex(), "power": self.power}


def event_attributes(e: Event) -> list[tuple[str, str]]:
    """A crev event's fields as ABCI attribute strings (JSON for lists, hex for bytes)."""
    out = []
    for k, v in e.to_dict().items():
        if k == "type":
            continue
        if isinstance(v, bool):
            s = "true" if v else "false"
        elif isinstance(v, str | int):
            s = str(v)
        else:
            s = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        out.append((k, s))
    return out


def proof_bytes(state: State, key: str) -> bytes:
    """``crev/state-proof/1``: CBOR [key, present, value, depth, bucket, [[key, leaf hash]…],
    [sibling…]]; recomputes the state root with ``crev.core.statetree`` (StateProof.verify)."""
    p = state.prove(key)
    return encode([key, p.value is not None, p.value or b"", p.depth, p.bucket,
                   [[k, h] for k, h in p.bucket_entries], list(p.siblings)])


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclass
class _Since:
    """State changes and block results since the last checkpoint."""

    changes: dict[str, bytes | None] = field(default_factory=dict)
    outcomes: list[tuple[int, list[TxResult]]] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)


class CrevApp:
    """The ABCI application over one crev data directory. Thread-safe: CometBFT's four
    connections call it from four server threads; one lock orders them."""

    def __init__(self, data_dir: Path | str, *, checkpoint_s: float = 2.0) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_s = checkpoint_s
        self.cond = threading.Condition(threading.RLock())
        self.sigs = SigCache()
        self.genesis: Genesis | None = None
        self.store: Store | None = None
        self.state: State | None = None
        self.cometbft_height = 0
        self.cometbft_chain_id = ""
        self.validators: list[Validator] = []
        self._pending: Finalized | None = None
        self._since = _Since()
        self._committed_app_hash = b""
        self._decoded: OrderedDict[bytes, Tx] = OrderedDict()  # sha256(raw) → decode_tx(raw)
        self._decoded_weight = 0
        self._decoded_params: Params | None = None
        self._decoded_lock = threading.Lock()
        if (self.data_dir / GENESIS_FILE).exists():
            self._open(Genesis.from_json((self.data_dir / GENESIS_FILE).read_text("utf-8")))

    # --- loading -------------------------------------------------------------------------------

    def _open(self, g: Genesis) -> None:
        self.genesis = g
        store = Store(self.data_dir / DB_FILE)
        self.store = store
        engine = store.get_meta("engine")
        if engine is None:
            if store.height() > 0:
                raise AppError(f"{self.data_dir} holds an embedded node's ledger, not a consortium member's")
            store.set_meta("engine", ENGINE)
        elif engine != ENGINE:
            raise AppError(f"{self.data_dir} was written by engine {engine!r}, not {ENGINE!r}")
        cp = store.checkpoint_height()
        try:
            st = checkpoint_state(store, g)
        except InvalidBlock as err:
            raise AppError(f"{self.data_dir} is damaged: {err}") from err
        for block in store.blocks(cp + 1):
            out = apply_block(st, block, check_signature=False)
            self._since.changes.update(out.changed)
            self._since.outcomes.append((block.header.height, out.results))
        check_invariants(st)
        self.state = st
        self._committed_app_hash = st.last_block_hash
        h = int(store.get_meta("cometbft_height") or b"0")
        tip = store.get_meta(f"cmt/{st.height}") if st.height else None
        # the crev block may be stored while the CometBFT height written after it is not (kill -9
        # between the two): its own record, written before it, says which CometBFT height it was
        self.cometbft_height = max(h, int(tip)) if tip else h
        self.cometbft_chain_id = (store.get_meta("cometbft_chain_id") or b"").decode()
        vals = json.loads(store.get_meta("cometbft_validators") or b"[]")
        self.validators = [Validator(v["type"], bytes.fromhex(v["pub_key"]), v["power"]) for v in vals]

    def _ready(self) -> tuple[State, Store]:
        if self.state is None or self.store is None:
            raise AppError("InitChain has not run: no crev genesis in this data directory")
        return self.state, self.store

    @property
    def app_hash(self) -> bytes:
        """The app hash after the last committed block (a finalized block waiting for Commit
        does not count)."""
        return self._committed_app_hash

    def _drop_uncommitted(self) -> None:
        """A block was finalized but never committed, and the consensus connection has moved on
        (its CometBFT died and a new one is replaying): reload the committed state from disk."""
        if self._pending is None or self.genesis is None:
            return
        self._pending = None
        if self.store is not None:
            self.store.close()
        self.store = None
        self.state = None
        self.sigs = SigCache()
        self._since = _Since()
        self._open(self.genesis)

    def close(self) -> None:
        with self.cond:
            if self.store is not None:
                if self._pending is None:
                    self._checkpoint()
                self.store.close()
                self.store = None

    # --- Info / InitChain ----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        with self.cond:
            st = self.state
            return {"last_block_height": self.cometbft_height, "last_block_app_hash": self.app_hash,
                    "crev_height": 0 if st is None else st.height, "chain_id": "" if st is None else st.chain_id,
                    "app_version": APP_VERSION}

    def init_chain(self, chain_id: str, genesis_time: int, app_state_bytes: bytes,
                   validators: Sequence[Validator], initial_height: int = 1) -> bytes:
        """Take the crev genesis from CometBFT's ``app_state`` (crev's genesis JSON) and the
        validator set; returns the initial app hash (the crev genesis hash). A second InitChain
        (CometBFT repeats it after a crash before block 1) must carry the same genesis."""
        with self.cond:
            if initial_height not in (0, 1):
                raise AppError(f"initial_height {initial_height}: crev chains start at height 1")
            try:
                g = Genesis.from_json(app_state_bytes.decode("utf-8"))
            except (UnicodeDecodeError, CrevError) as err:
                raise AppError(f"app_state is not a crev genesis: {err}") from None
            if g.chain_id != chain_id:
                raise AppError(f"CometBFT chain id {chain_id!r} differs from the crev genesis chain id {g.chain_id!r}")
            if genesis_time < g.genesis_time:
                raise AppError(f"CometBFT genesis time {genesis_time} is before the crev genesis time {g.genesis_time}")
            if self.genesis is not None:
                if self.genesis.hash != g.hash:
                    raise AppError(f"{self.data_dir} holds another crev genesis ({self.genesis.hash.hex()[:16]}…, "
                                   f"app_state has {g.hash.hex()[:16]}…)")
                if self.cometbft_height > 0:
                    raise AppError(f"InitChain at CometBFT height {self.cometbft_height}: already initialised")
            else:
                _write_atomic(self.data_dir / GENESIS_FILE, g.to_json().encode("utf-8"))
                self._open(g)
            st, store = self._ready()
            if store.checkpoint_height() == 0 and st.height == 0:
                # the genesis state as checkpoint 0, as the embedded node's `crev init` stores it:
                # later checkpoints hold only what blocks changed, and a stored snapshot must be
                # the whole state (crev verify recomputes its root)
                store.write_checkpoint(0, {key: st.value_of(key) for key in st.all_keys()}, [],
                                       pack_bucket_hashes(st.params.state_tree_depth, st.tree.bucket_hashes()))
            self.cometbft_chain_id = chain_id
            self.validators = list(validators)
            store.set_meta("cometbft_chain_id", chain_id.encode())
            store.set_meta("cometbft_validators", json.dumps([v.to_dict() for v in validators]).encode())
            return g.hash

    # --- decoding once ------------------------------------------------------------------------

    def _decode(self, raw: bytes, st: State) -> Tx:
        """``decode_tx`` (raises as it does), remembered by the bytes' hash: a transaction is
        decoded once per node, at CheckTx, and Recheck, PrepareProposal, ProcessProposal and
        FinalizeBlock take the same ``Tx``. Decoding is a pure function of the bytes, the chain id
        and the parameters, so the cache changes speed only (cleared if the parameters change)."""
        h = sha256(raw)
        with self._decoded_lock:
            if st.params != self._decoded_params:
                self._decoded.clear()
                self._decoded_weight = 0
                self._decoded_params = st.params
            tx = self._decoded.get(h)
            if tx is not None:
                self._decoded.move_to_end(h)
                return tx
        tx = decode_tx(raw, st.chain_id, st.params)
        with self._decoded_lock:
            if h not in self._decoded and st.params == self._decoded_params:
                self._decoded[h] = tx
                self._decoded_weight += readings_in(tx)
                while self._decoded_weight > DECODED_MAX_READINGS and len(self._decoded) > 1:
                    _, old = self._decoded.popitem(last=False)
                    self._decoded_weight -= readings_in(old)
        return tx

    def _take(self, raw: bytes, st: State) -> Tx | bytes:
        """For FinalizeBlock: the decoded transaction (and forget it), or the bytes for
        BlockBuilder to decode and judge."""
        with self._decoded_lock:
            if st.params != self._decoded_params:
                return raw
            tx = self._decoded.pop(sha256(raw), None)
            if tx is None:
                return raw
            self._decoded_weight -= readings_in(tx)
            return tx

    # --- mempool -------------------------------------------------------------------------------

    def check_tx(self, raw: bytes, recheck: bool = False) -> Check:
        """The stateless checks (``decode_tx``: size, canonical CBOR, chain id, kind, shape), then
        what committed state already rules out: a transaction already committed, a nonce already
        used, a batch whose every reading is already on the ledger, a ``market_tick`` (only a
        proposer adds it). Recheck (after each commit) runs the same checks, so what a committed
        block made invalid leaves the mempool.

        A new transaction's signatures (its signer's, each reading's device's) are then verified
        outside the lock, while consensus goes on, and the good ones go to the SigCache that
        FinalizeBlock's BlockBuilder reads: so each signature is verified once per node, and not
        on the block's critical path. A bad signature is not refused here (it is judged in the
        block, with its result); the cache changes speed only, never results."""
        with self.cond:
            st, store = self._ready()
        try:
            tx = self._decode(raw, st)  # stateless: no lock
        except CrevError as err:
            return Check.refuse(err)
        except Exception as exc:  # hostile bytes never stop the app
            return Check(CODES["malformed"], "tx", f"cannot be decoded ({type(exc).__name__})")
        with self.cond:
            st, store = self._ready()  # the committed state now (it may have been reloaded)
            try:
                self._stateful_check(st, store, tx)
            except CrevError as err:
                return Check.refuse(err, tx.kind)
            triples = [] if recheck else signature_triples(st, tx)
        if triples:
            good = verify_many(triples)  # libsodium releases the GIL: this runs beside FinalizeBlock
            with self.cond:
                if len(self.sigs) > SIG_CACHE_MAX:  # signatures of transactions never included
                    self.sigs = SigCache()
                for t, ok in zip(triples, good, strict=True):
                    if ok:
                        self.sigs.add(*t)
        return Check(0, kind=tx.kind)

    @staticmethod
    def _stateful_check(st: State, store: Store, tx: Tx) -> None:
        if tx.kind == MarketTick.kind:
            raise RuleError("tx.kind", "market_tick is added by the block proposer, never submitted")
        row = store.tx(tx.hash)
        if row is not None:
            raise ConflictError("tx", f"already committed in crev block {row[0]} (index {row[1]})")
        if tx.signer:
            signing = signing_key(st, tx.signer)  # an account, or a delegate with its own nonce
            if signing is not None and tx.nonce < signing[1]:
                raise NonceError("tx.nonce", f"is {tx.nonce}, {tx.signer}'s next nonce is {signing[1]}: already used")
        if isinstance(tx.message, SubmitReadings) and all(
                (r.device_id, r.seq) in st.readings for r in tx.message.readings):
            raise ConflictError("readings", "every reading of this batch is already on the ledger")

    # --- proposals -----------------------------------------------------------------------------

    def _block_time(self, st: State, time_s: int) -> int:
        return max(time_s, st.last_time)

    def tick_tx(self, time_s: int) -> bytes | None:
        """The market clock's transaction for a block at ``time_s``, if anything is due."""
        with self.cond:
            st, _ = self._ready()
            t = self._block_time(st, time_s)
            return build_tx(st.chain_id, MarketTick(t)) if tick_due(st, t) else None

    def prepare_proposal(self, txs: Iterable[bytes], max_tx_bytes: int, time_s: int) -> list[bytes]:
        """The proposer's block: the market clock first when something is due (as the embedded
        node's sealer does), then the mempool's transactions in order, leaving out what does not
        decode, a submitted market_tick, a repeat, and what would pass ``max_tx_bytes``."""
        with self.cond:
            self._drop_uncommitted()
            st, _ = self._ready()
            limit = max_tx_bytes if max_tx_bytes > 0 else 1 << 62
            out: list[bytes] = []
            size = 0
            tick = self.tick_tx(time_s)
            if tick is not None and len(tick) <= limit:
                out.append(tick)
                size += len(tick)
            seen: set[bytes] = set()
            for raw in txs:
                if size + len(raw) > limit:
                    continue
                try:
                    tx = self._decode(raw, st)
                except Exception:
                    continue
                if tx.kind == MarketTick.kind or tx.hash in seen:
                    continue
                seen.add(tx.hash)
                out.append(raw)
                size += len(raw)
            return out

    def process_proposal(self, txs: Sequence[bytes], height: int, time_s: int) -> str | None:
        """None to accept, else why the proposal is refused: a transaction that does not decode
        (garbage, another chain id, oversized), a market_tick anywhere but first or not exactly the
        one due at the block's time, or a due market clock left out."""
        with self.cond:
            self._drop_uncommitted()
            st, _ = self._ready()
            if height != self.cometbft_height + 1:
                return f"height {height}, the app is at {self.cometbft_height}"
            tick = self.tick_tx(time_s)
            for i, raw in enumerate(txs):
                try:
                    tx = self._decode(raw, st)
                except CrevError as err:
                    return f"txs[{i}]: {err.code} {err.field}: {err.reason}"
                except Exception as exc:
                    return f"txs[{i}]: cannot be decoded ({type(exc).__name__})"
                if tx.kind == MarketTick.kind and (i != 0 or raw != tick):
                    return f"txs[{i}]: a market_tick that is not the block's due market clock"
            if tick is not None and (not txs or txs[0] != tick):
                return "the market clock is due at this block's time but the proposal leaves it out"
            return None

    # --- blocks --------------------------------------------------------------------------------

    def finalize_block(self, txs: Sequence[bytes], height: int, time_s: int) -> Finalized:
        """Apply a decided block: every transaction through BlockBuilder (failed ones kept with
        their error). Block time is CometBFT's header time. Nothing is stored until ``commit``."""
        with self.cond:
            self._drop_uncommitted()
            st, _ = self._ready()
            if height != self.cometbft_height + 1:
                raise AppError(f"FinalizeBlock at height {height}, the app's last committed height is "
                               f"{self.cometbft_height}")
            if not txs:
                self._pending = Finalized(height, None, self.app_hash)
                return self._pending
            b = BlockBuilder(st, st.height + 1, self._block_time(st, time_s), self.sigs)
            cached = len(self.sigs)  # a signature found there is taken out: the drop is what CheckTx saved
            readings = 0
            for raw in txs:
                tx = self._take(raw, st)
                readings += readings_in(tx) if isinstance(tx, Tx) else 0
                b.add(tx, keep_failed=True)
            out = b.finish()
            log.info("crev block %d (CometBFT %d): %d txs, %d readings, %d signatures verified by CheckTx before",
                     out.header.height, height, len(txs), readings, cached - len(self.sigs))
            self._pending = Finalized(height, out, out.header.hash)
            return self._pending

    def commit(self) -> int:
        """Persist what ``finalize_block`` decided; returns the CometBFT height committed."""
        with self.cond:
            _, store = self._ready()
            p = self._pending
            if p is None:
                raise AppError("Commit without FinalizeBlock")
            if p.outcome is not None:
                h = p.outcome.header
                store.set_meta(f"cmt/{h.height}", str(p.cometbft_height).encode())
                store.commit_block(Block(h, b"", tuple(p.outcome.txs)), p.outcome)
                self._since.changes.update(p.outcome.changed)
                self._since.outcomes.append((h.height, p.outcome.results))
            store.set_meta("cometbft_height", str(p.cometbft_height).encode())
            self.cometbft_height = p.cometbft_height
            self._committed_app_hash = p.app_hash
            self._pending = None
            if time.monotonic() - self._since.at >= self.checkpoint_s:
                self._checkpoint()
            self.cond.notify_all()
            return p.cometbft_height

    def _checkpoint(self) -> None:
        st, store = self._ready()
        since = self._since
        if since.changes or since.outcomes:
            store.write_checkpoint(st.height, since.changes, since.outcomes,
                                   pack_bucket_hashes(st.params.state_tree_depth, st.tree.bucket_hashes()))
        self._since = _Since()

    # --- reading -------------------------------------------------------------------------------

    def _committed(self, timeout: float = 30.0) -> None:
        """Wait until no finalized block is waiting for Commit (reads see committed state only)."""
        if not self.cond.wait_for(lambda: self._pending is None, timeout):
            raise AppError("a finalized block has not been committed")

    def query(self, path: str, data: bytes = b"") -> QueryAnswer:
        """``/state/<key>`` (e.g. ``/state/l/<lot id>``, ``/state/a/<account>``): the record's
        canonical bytes with two proof ops, ``crev/state`` (its state proof) and ``crev/header``
        (the crev header bytes whose SHA-256 is the app hash and whose state_root the proof
        recomputes). ``/tx/<hex hash>``: the stored result bytes, where and in which crev block.
        ``/info``: heights and app hash as JSON."""
        with self.cond:
            self._committed()
            st, store = self._ready()
            h = self.cometbft_height
            if path == "/info":
                info = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in self.info().items()}
                return QueryAnswer(0, json.dumps(info).encode(), height=h)
            if path.startswith("/state/"):
                key = path[len("/state/"):]
                try:
                    value = st.value_of(key)
                except (KeyError, ValueError):
                    return QueryAnswer(CODES["malformed"], log=f"{key!r} is not a state key (a/<account>, "
                                       f"d/<device>, l/<lot>, r/<device>/<seq>, t/<retirement>, m/<market>, "
                                       f"o/<order>, p/…, b/…, f/…, s, g)", height=h)
                ops = [("crev/state", key.encode(), proof_bytes(st, key))]
                head = store.block(st.height) if st.height else None
                if head is not None:
                    ops.append(("crev/header", str(st.height).encode(), head.header.encode()))
                if value is None:
                    return QueryAnswer(CODES["not_found"], b"", key.encode(), f"no record {key!r} (proof of "
                                       f"absence attached)", str(st.height), h, tuple(ops))
                return QueryAnswer(0, value, key.encode(), "", str(st.height), h, tuple(ops))
            if path.startswith("/tx/"):
                try:
                    tx_hash = bytes.fromhex(path[len("/tx/"):])
                except ValueError:
                    return QueryAnswer(CODES["malformed"], log=f"{path!r}: the hash must be hex")
                row = store.tx(tx_hash)
                if row is None:
                    return QueryAnswer(CODES["not_found"], log=f"no committed transaction {tx_hash.hex()}", height=h)
                crev_h, idx, kind, ok, _raw, result = row
                cmt = store.get_meta(f"cmt/{crev_h}")
                where = json.dumps({"crev_height": crev_h, "index": idx, "kind": kind, "ok": ok,
                                   "cometbft_height": int(cmt) if cmt else None})
                return QueryAnswer(0, result, tx_hash, "", where, h)
            return QueryAnswer(CODES["not_found"], log=f"unknown query path {path!r} (/state/<key>, /tx/<hash>, /info)",
                               height=h)

    def header(self, crev_height: int) -> Header | None:
        with self.cond:
            _, store = self._ready()
            b = store.block(crev_height)
            return None if b is None else b.header

