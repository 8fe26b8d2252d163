"""The auditor's full replay: trust nothing the node says, recompute everything.

From the genesis file and the stored blocks alone, ``verify_chain`` checks for every block the
sequencer's signature, the link to the previous block, every transaction and reading signature,
the transaction, results and state roots, and at the end (and every ``invariant_every`` blocks)
the conserved quantities; finally that the node's stored state snapshot has the replayed root.
Signatures of block N+1 are verified on a thread pool while block N is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from crev.core.signing import verify_many
from crev.core.statetree import StateTree
from crev.errors import CrevError, InvalidBlock
from crev.ledger.apply import SigCache, apply_block
from crev.ledger.block import Block
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.submit_readings import SubmitReadings
from crev.ledger.state import State
from crev.ledger.tx import decode_tx
from crev.node.node import DB_FILE, GENESIS_FILE, Triple
from crev.node.store import Store


@dataclass
class VerifyReport:
    ok: bool
    blocks: int
    txs: int
    readings: int
    state_root: str
    first_bad_height: int | None = None
    error: str = ""


def _triples(state: State, block: Block) -> list[Triple]:
    out: list[Triple] = []
    for raw in block.txs:
        try:
            tx = decode_tx(raw, state.chain_id, state.params)
        except CrevError:
            continue  # apply_block reports it
        if tx.signer and tx.signer in state.accounts:
            out.append((state.accounts[tx.signer].public_key, tx.signed_bytes, tx.signature))
        if isinstance(tx.message, SubmitReadings):
            for r in tx.message.readings:
                dev = state.devices.get(r.device_id)
                key = dev.key_for(r.interval_start + r.interval_s) if dev else None
                if key is not None:
                    out.append((key.public_key, r.signed_bytes, r.signature))
    return out


def verify_chain(data_dir: Path | str, threads: int = 2, invariant_every: int = 1000,
                 progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    d = Path(data_dir)
    genesis = Genesis.from_json((d / GENESIS_FILE).read_text("utf-8"))
    store = Store(d / DB_FILE)
    state = state_from_genesis(genesis)
    total = store.height()
    pool = ThreadPoolExecutor(threads)
    ahead = ThreadPoolExecutor(1)
    txs = readings = 0
    height = 0

    def fill(block: Block) -> SigCache:
        cache = SigCache()
        triples = _triples(state, block)
        step = max(1, -(-len(triples) // threads))
        parts = [triples[i:i + step] for i in range(0, len(triples), step)]
        for part, oks in zip(parts, pool.map(verify_many, parts), strict=True):
            for t, ok in zip(part, oks, strict=True):
                if ok:
                    cache.add(*t)
        return cache

    try:
        blocks = store.blocks()
        pending: tuple[Block, Future[SigCache]] | None = None
        nxt = next(blocks, None)
        if nxt is not None:
            pending = (nxt, ahead.submit(fill, nxt))
        while pending is not None:
            block, fut = pending
            height = block.header.height
            if height != state.height + 1:
                raise InvalidBlock("header.height", f"is {height}, expected {state.height + 1}")
            cache = fut.result()
            nxt = next(blocks, None)
            # Verify the next block's signatures while this one is applied. Keys are looked up in
            # the state before this block; a key changed by this block only costs a cache miss
            # (the signature is then verified inline), never a different result.
            pending = (nxt, ahead.submit(fill, nxt)) if nxt is not None else None
            out = apply_block(state, block, cache)
            txs += len(block.txs)
            for res in out.results:
                if isinstance(res.detail, list) and res.kind == "submit_readings":
                    readings += len(res.detail)
            if invariant_every and height % invariant_every == 0:
                check_invariants(state)
            if progress:
                progress(height, total)
        check_invariants(state)
        root = state.tree.root()
        cp = store.checkpoint_height()
        if cp:
            # the node's stored snapshot must commit to exactly the state root of its block
            snap = StateTree(genesis.params.state_tree_depth)
            for k, v in store.state_items():
                snap.set(k, v)
            cp_block = store.block(cp)
            if cp_block is None or snap.root() != cp_block.header.state_root:
                raise InvalidBlock("state snapshot", f"the node's stored state (checkpoint at block {cp}) "
                                                     "differs from the state the chain commits to")
    except CrevError as err:
        return VerifyReport(False, height - 1 if height else 0, txs, readings, state.tree.root().hex(),
                            height or 1, f"{err.field}: {err.reason}")
    finally:
        ahead.shutdown()
        pool.shutdown()
        store.close()
    return VerifyReport(True, height, txs, readings, root.hex())
