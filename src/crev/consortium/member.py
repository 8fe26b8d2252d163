"""One consortium member's ledger as the HTTP API sees it: reads from the member's crev data
directory (written by its crev app, opened here read-only), submissions through its CometBFT.

``MemberLedger`` offers what the service needs of a running ledger (``crev.service.live.Ledger``:
``state``, ``lock``, ``listeners``, ``flush``, ``check_tx``, ``submit``), as the embedded ``Node``
does, so the API and the dashboard run unchanged on either.

**Reads.** The app commits each crev block to its SQLite store; the state snapshot and the index
follow every few seconds. A follower thread notices new blocks (a cheap ``MAX(height)`` every
``poll_s``), and applies them to an in-memory ``State`` through ``apply_block`` (no sequencer
signature: in consortium mode a block's authority is CometBFT's commit). Every root is checked
against the stored header, so the state is the app's, byte for byte. Signatures are not verified
a second time in this process when the stored result of a transaction shows none was refused (its
app verified them, and a different verdict would change the results root, which is checked); a
block that does not replay so is reloaded with every signature verified. ``index_tail`` makes a
reader's read-only store consistent with the state: the blocks after the file's checkpoint are
indexed on that connection only (``Store.index_in_memory``).

**Submissions.** ``submit`` registers the transaction's hash, then a broadcaster thread sends it
with ``broadcast_tx_sync`` (in the order submitted, so one signer's nonces stay in order) over a
kept-alive connection. A refusal by CheckTx answers at once (the crev error from its code, field
and reason); otherwise the future resolves when the follower applies the block holding it, with
the embedded node's receipt: crev height, index in the block, ok, error, detail and events.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import queue
import sqlite3
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crev.consortium.app import CODES
from crev.consortium.localnet import MemberSpec
from crev.core.encoding import decode
from crev.errors import ConflictError, CrevError, InvalidBlock, MalformedError
from crev.ledger.apply import BlockOutcome, SigCache, TxResult, apply_block
from crev.ledger.block import Block
from crev.ledger.events import event_from_value
from crev.ledger.genesis import Genesis
from crev.ledger.state import State
from crev.ledger.tx import Tx, decode_tx
from crev.node.node import DB_FILE, GENESIS_FILE, Receipt, checkpoint_state, settle, signature_triples
from crev.node.store import Store, chain_file

log = logging.getLogger("crev.member")

def _error_classes() -> dict[int, type[CrevError]]:
    out: dict[int, type[CrevError]] = {}
    todo: list[type[CrevError]] = list(CrevError.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if cls.code in CODES:
            out.setdefault(CODES[cls.code], cls)
        todo += cls.__subclasses__()
    return out


ERRORS = _error_classes()  # ABCI code → the crev error class that answers it
COMMIT_FLAG = 2  # CometBFT's BlockIDFlagCommit: the validator signed this block
WAIT_S = 120.0  # a submission not committed after this long is answered (the API itself waits 60 s)


class RpcClient:
    """CometBFT's JSON-RPC over one kept-alive HTTP connection (reconnects once on error)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        u = urllib.parse.urlsplit(url)
        self.url = url
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 26657
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def call(self, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._conn is None:
                        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                    self._conn.request("POST", "/", body, {"Content-Type": "application/json"})
                    out = json.loads(self._conn.getresponse().read())
                    break
                except (OSError, http.client.HTTPException, ValueError):
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt:
                        raise
        if "error" in out:
            err = out["error"]
            raise RpcError(f"{method}: {err.get('message', '')} {err.get('data', '')}".strip())
        return out["result"]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class RpcError(RuntimeError):
    pass


class TrustedSigs(SigCache):
    """The signatures a transaction's stored result shows its app accepted: not verified again."""


def _trusted_cache(st: State, decoded: list[Tx | bytes], results: list[bytes]) -> SigCache:
    cache = TrustedSigs()
    for tx, res in zip(decoded, results, strict=False):
        if isinstance(tx, Tx) and b"bad_signature" not in res:
            for t in signature_triples(st, tx):
                cache.add(*t)
    return cache


def _decoded(st: State, block: Block) -> list[Tx | bytes]:
    out: list[Tx | bytes] = []
    for raw in block.txs:
        try:
            out.append(decode_tx(raw, st.chain_id, st.params))
        except Exception:  # apply_block names what does not decode
            out.append(raw)
    return out


def receipt_of(tx_hash: bytes, height: int, idx: int, res: TxResult) -> Receipt:
    return Receipt(tx_hash.hex(), True, height, idx, res.ok, None if res.error is None else res.error.to_dict(),
                   res.detail, of_events=res.events)


def stored_receipt(row: tuple[int, int, str, bool, bytes, bytes], tx_hash: bytes) -> Receipt:
    height, idx, _kind, ok, _raw, result = row
    v = decode(result)
    err = None if not v[3] else {"code": v[3][0], "field": v[3][1], "reason": v[3][2]}
    return Receipt(tx_hash.hex(), True, height, idx, ok, err, v[5], [event_from_value(e).to_dict() for e in v[4]])


def refusal(code: int, log_text: str, info: str = "") -> CrevError:
    """CheckTx's refusal as the crev error: its code, ``log`` = "field: reason" (``info`` = the
    field, where the answer carries it: broadcast_tx_sync's does not)."""
    cls = ERRORS.get(code, MalformedError)
    if info and log_text.startswith(info + ": "):
        return cls(info, log_text[len(info) + 2:])
    field, sep, reason = log_text.partition(": ")
    return cls(field, reason) if sep and " " not in field else cls("tx", log_text)


class MemberLedger:
    """A consortium member's ledger for the API: see the module doc."""

    def __init__(self, data_dir: Path | str, rpc_url: str, *, poll_s: float = 0.02,
                 consortium: Consortium | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_FILE
        gpath = self.data_dir / GENESIS_FILE
        if not gpath.exists():
            raise FileNotFoundError(f"{gpath} not found: {self.data_dir} is not a member's crev data directory")
        self.genesis = Genesis.from_json(gpath.read_text("utf-8"))
        self.rpc = RpcClient(rpc_url)
        self.consortium = consortium
        self.poll_s = poll_s
        self.lock = threading.RLock()
        self.listeners: list[Callable[[Block, BlockOutcome], None]] = []
        self.fatal: BaseException | None = None
        self._recent: OrderedDict[int, list[TxResult]] = OrderedDict()  # results of blocks after the checkpoint
        self._waiting: dict[bytes, list[Future[Receipt]]] = {}
        self._since: dict[bytes, float] = {}  # when each waiting hash was first submitted
        self._outbox: queue.Queue[tuple[bytes, bytes] | None] = queue.Queue()
        self._stop = threading.Event()
        self.state = self._load(verify=False)
        self._threads = [threading.Thread(target=self._follow, name="crev-follow", daemon=True),
                         threading.Thread(target=self._broadcast, name="crev-broadcast", daemon=True)]
        for t in self._threads:
            t.start()

    # --- following the data directory ------------------------------------------------------------

    def _load(self, verify: bool) -> State:
        """The state at the file's last block: its checkpoint, then the blocks after it."""
        store = Store(self.db_path, readonly=True)
        try:
            st = checkpoint_state(store, self.genesis)
            self._recent.clear()
            self._apply_from(store, st, verify, notify=False)
            return st
        finally:
            store.close()

    def _apply_from(self, store: Store, st: State, verify: bool, notify: bool = True) -> None:
        """Apply ``store``'s blocks after ``st.height`` to ``st`` (the lock held, or not yet shared)."""
        cp = store.checkpoint_height()
        for h in [h for h in self._recent if h <= cp]:
            del self._recent[h]
        for block in store.blocks(st.height + 1):
            h = block.header.height
            decoded = _decoded(st, block)
            if verify:
                cache = SigCache()
            else:
                results = [bytes(r[0]) for r in store.db.execute(
                    "SELECT result FROM txs WHERE height = ? ORDER BY idx", (h,))]
                cache = _trusted_cache(st, decoded, results)
            out = apply_block(st, block, cache, check_signature=False, decoded=decoded)
            if h > cp:
                self._recent[h] = out.results
            if notify:
                self._committed(block, out)

    def _committed(self, block: Block, out: BlockOutcome) -> None:
        h = block.header.height
        for idx, res in enumerate(out.results):
            self._since.pop(res.tx_hash, None)
            futs = self._waiting.pop(res.tx_hash, None)
            for fut in futs or ():
                settle(fut, receipt_of(res.tx_hash, h, idx, res))
        for listener in self.listeners:
            try:
                listener(block, out)
            except Exception:  # a listener never stops the follower
                log.exception("block listener failed")

    def _catch_up(self, store: Store) -> None:
        """Bring the state to ``store``'s last block (the lock held)."""
        if store.height() <= self.state.height:
            return
        try:
            self._apply_from(store, self.state, verify=False)
        except InvalidBlock as err:
            # a verdict the stored results did not show (or a damaged file): everything again,
            # every signature verified
            log.warning("replay with trusted signatures disagreed (%s): reloading with every signature verified", err)
            self.state = self._load(verify=True)
            self._apply_from(store, self.state, verify=True)

    def _follow(self) -> None:
        head_db: sqlite3.Connection | None = None
        last = -1
        while not self._stop.is_set():
            try:
                if head_db is None:
                    chain = chain_file(self.db_path)  # the app's blocks (there once it has opened its store)
                    if not chain.exists():
                        self._stop.wait(self.poll_s)
                        continue
                    head_db = sqlite3.connect(f"file:{chain}?mode=ro", uri=True, isolation_level=None,
                                              check_same_thread=False, timeout=30)
                top = int(head_db.execute("SELECT MAX(height) FROM blocks").fetchone()[0] or 0)
                if top != last:
                    self.flush()
                    last = top
                self._expire()
            except Exception as exc:  # the API must report it, not die silently
                if self.fatal is None:
                    log.exception("following %s failed", self.data_dir)
                self.fatal = exc
                self._stop.wait(1.0)
                continue
            self._stop.wait(self.poll_s)
        if head_db is not None:
            head_db.close()

    def flush(self) -> None:
        """Apply what the member's app committed since the last look."""
        with self.lock:
            store = Store(self.db_path, readonly=True)
            try:
                self._catch_up(store)
            finally:
                store.close()

    def index_tail(self, store: Store) -> None:
        """Make ``store`` (a reader's read-only snapshot, the lock held) show exactly ``state``:
        the state is brought to the snapshot's last block and the blocks after the snapshot's
        checkpoint are indexed on its connection."""
        self._catch_up(store)
        cp = store.checkpoint_height()
        tail = [(h, res) for h, res in self._recent.items() if h > cp]
        if tail:
            store.index_in_memory(tail)

    # --- submitting ----------------------------------------------------------------------------

    def check_tx(self, raw: bytes) -> Tx:
        """The stateless check (as the embedded node's): size, canonical CBOR, chain id, kind, shape."""
        return decode_tx(raw, self.genesis.chain_id, self.state.params)

    def submit(self, raw: bytes | Tx) -> Future[Receipt]:
        fut: Future[Receipt] = Future()
        if self._stop.is_set():
            fut.set_exception(RuntimeError("the member's API is stopping"))
            return fut
        if isinstance(raw, Tx):
            tx = raw
        else:
            try:
                tx = self.check_tx(raw)
            except CrevError as err:
                fut.set_result(Receipt(_hash(raw), False, 0, -1, False, err.to_dict(), None, []))
                return fut
        with self.lock:
            store = Store(self.db_path, readonly=True)
            try:
                row = store.tx(tx.hash)
                if row is not None and row[0] <= self.state.height:
                    fut.set_result(stored_receipt(row, tx.hash))
                    return fut
            finally:
                store.close()
            self._waiting.setdefault(tx.hash, []).append(fut)
            self._since.setdefault(tx.hash, time.monotonic())
        self._outbox.put((tx.hash, tx.raw))
        return fut

    def submit_wait(self, raw: bytes, timeout: float = 60.0) -> Receipt:
        return self.submit(raw).result(timeout)

    def _broadcast(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            tx_hash, raw = item
            try:
                r = self.rpc.call("broadcast_tx_sync", tx=base64.b64encode(raw).decode())
            except RpcError as err:
                if "already exists in cache" in str(err):
                    continue  # in the mempool already: its block will answer
                self._fail(tx_hash, RuntimeError(f"CometBFT refused the transaction: {err}"))
                continue
            except Exception as exc:  # the node is down: the submitter is told
                self._fail(tx_hash, RuntimeError(f"CometBFT at {self.rpc.url} is unreachable: {exc}"))
                continue
            code = int(r.get("code", 0))
            if code == 0:
                continue
            refused = refusal(code, str(r.get("log", "")), str(r.get("info", "")))
            if isinstance(refused, ConflictError) and refused.field == "tx":
                continue  # committed meanwhile: the follower answers with its receipt
            with self.lock:
                self._since.pop(tx_hash, None)
                futs = self._waiting.pop(tx_hash, [])
            for fut in futs:
                settle(fut, Receipt(tx_hash.hex(), False, 0, -1, False, refused.to_dict(), None, []))

    def _expire(self) -> None:
        """Forget what waited longer than ``WAIT_S`` (the mempool dropped it, e.g. Recheck found its
        nonce used): its submitter is told it may resubmit."""
        now = time.monotonic()
        with self.lock:
            old = [h for h, t in self._since.items() if now - t > WAIT_S]
        for h in old:
            self._fail(h, RuntimeError(f"not committed within {WAIT_S:.0f} s (the mempool may have dropped it): "
                                       f"check GET /v1/tx/{h.hex()} or resubmit the same bytes"))

    def _fail(self, tx_hash: bytes, exc: BaseException) -> None:
        with self.lock:
            self._since.pop(tx_hash, None)
            futs = self._waiting.pop(tx_hash, [])
        for fut in futs:
            settle(fut, exc=exc)

    def close(self) -> None:
        self._stop.set()
        self._outbox.put(None)
        for t in self._threads:
            t.join(timeout=5)
        with self.lock:
            waiting = [f for fs in self._waiting.values() for f in fs]
            self._waiting.clear()
        for fut in waiting:
            settle(fut, exc=RuntimeError("the member's API stopped"))
        self.rpc.close()
        if self.consortium is not None:
            self.consortium.close()

    # the embedded node's name for it
    stop = close


def _hash(raw: bytes) -> str:
    from crev.core.hashing import sha256

    return sha256(raw).hex()


class Consortium:
    """The consortium as CometBFT's RPC shows it: members (``/status`` of each), validators and
    their voting power, and who signed each block (``/commit``)."""

    def __init__(self, members: list[MemberSpec], api_member: str, timeout: float = 2.0) -> None:
        self.members = members
        self.api_member = api_member
        me = next((m for m in members if m.name == api_member), None)
        if me is None:
            raise ValueError(f"no member {api_member!r} (members: {', '.join(m.name for m in members)})")
        self.rpc = RpcClient(me.rpc_url, timeout=timeout)
        self._clients = {m.name: RpcClient(m.rpc_url, timeout=timeout) for m in members}
        self._pool = ThreadPoolExecutor(max(1, len(members)), thread_name_prefix="crev-status")
        self._commits: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for c in self._clients.values():
            c.close()
        self.rpc.close()

    def names(self) -> dict[str, str]:
        """Validator address → its name in the genesis."""
        if not self._names:
            g = self.rpc.call("genesis")["genesis"]
            self._names = {v["address"].upper(): v.get("name", "") for v in g["validators"]}
        return self._names

    def validators(self, height: int | None = None) -> list[dict[str, Any]]:
        args = {"per_page": "100"} if height is None else {"height": str(height), "per_page": "100"}
        vals = self.rpc.call("validators", **args)["validators"]
        names = self.names()
        return [{"name": names.get(v["address"].upper(), ""), "address": v["address"].upper(),
                 "pub_key": base64.b64decode(v["pub_key"]["value"]).hex(), "power": int(v["voting_power"])}
                for v in vals]

    def _status(self, m: MemberSpec) -> dict[str, Any]:
        row: dict[str, Any] = {"name": m.name, "rpc": m.rpc_url, "validator": m.validator}
        try:
            s = self._clients[m.name].call("status")
        except Exception as exc:  # a member down is shown as down
            return {**row, "up": False, "error": str(exc) or type(exc).__name__}
        si, ni, vi = s["sync_info"], s["node_info"], s["validator_info"]
        return {**row, "up": True, "moniker": ni["moniker"], "node_id": ni["id"],
                "address": vi["address"].upper(), "power": int(vi["voting_power"]),
                "height": int(si["latest_block_height"]), "app_hash": si["latest_app_hash"].lower(),
                "block_time": si["latest_block_time"], "catching_up": bool(si["catching_up"])}

    def overview(self) -> dict[str, Any]:
        statuses = list(self._pool.map(self._status, self.members))
        vals = self.validators()
        return {"api_member": self.api_member, "validators": vals, "total_power": sum(v["power"] for v in vals),
                "members": statuses}

    def signers(self, cometbft_height: int) -> dict[str, Any]:
        """Who signed CometBFT block ``cometbft_height`` (its commit) with their voting power."""
        with self._lock:
            hit = self._commits.get(cometbft_height)
        if hit is not None:
            return hit
        commit = self.rpc.call("commit", height=str(cometbft_height))["signed_header"]["commit"]
        vals = {v["address"]: v for v in self.validators(cometbft_height)}
        signed, absent = [], []
        for sig in commit["signatures"]:
            addr = (sig.get("validator_address") or "").upper()
            if sig["block_id_flag"] == COMMIT_FLAG and addr in vals:
                v = vals[addr]
                signed.append({"name": v["name"], "address": addr, "power": v["power"], "time": sig["timestamp"]})
        got = {s["address"] for s in signed}
        absent = [{"name": v["name"], "address": a, "power": v["power"]} for a, v in vals.items() if a not in got]
        out = {"cometbft_height": cometbft_height, "block_hash": commit["block_id"]["hash"].lower(),
               "signers": signed, "absent": absent, "signed_power": sum(s["power"] for s in signed),
               "total_power": sum(v["power"] for v in vals.values())}
        with self._lock:
            self._commits[cometbft_height] = out
            while len(self._commits) > 4096:
                self._commits.popitem(last=False)
        return out


@contextmanager
def member_ledger(root: Path, member: str | None = None) -> Iterator[MemberLedger]:
    """The API's ledger for ``member`` (default: the first) of the localnet at ``root``."""
    from crev.consortium.localnet import load

    _, members = load(root)
    m = members[0] if member is None else next((x for x in members if x.name == member), None)
    if m is None:
        raise ValueError(f"no member {member!r} in {root} (members: {', '.join(x.name for x in members)})")
    ledger = MemberLedger(m.data, m.rpc_url, consortium=Consortium(members, m.name))
    try:
        yield ledger
    finally:
        ledger.close()

