"""The auditor's full replay: trust nothing the node says, recompute everything.

From the genesis file and the stored blocks alone, ``verify_chain`` checks for every block the
sequencer's signature, the link to the previous block, every transaction and reading signature,
the transaction, results and state roots, and at the end (and every ``invariant_every`` blocks)
the conserved quantities; finally that the node's stored state snapshot has the replayed root.
Signatures of block N+1 are verified on worker processes while block N is applied.

A consortium member's data directory (meta ``engine`` set) holds blocks without a sequencer
signature: their authority is CometBFT's commit. They are replayed with ``check_signature=False``
and, given a ``Consortium`` (audit/consortium.py: the genesis validator set and CometBFT's RPC),
each is checked against a CometBFT header signed by more than 2/3 of the validators' power that
carries its app hash. Without one, only the replay is done and the report says so
(``commits_checked`` = 0 of ``blocks``).

Every reading in every stored transaction is replayed, but only the newly accepted ones issued
C-REV: the report counts accepted, refused (inside an accepted batch, or the whole of a refused
batch, which a CometBFT-style block keeps) and duplicate readings apart.

The smart meter's part is counted from the replayed events, so an auditor sees it: smart-meter
items recorded (``meter_items``), slots reconciled by status (``slots_reconciled``: final,
corrected, late), the grams reconciliation cancelled, recorded as debt and topped up, calibration
drift alerts, and control records (``control_records``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from crev.audit.consortium import Consortium, cmt_height, is_member
from crev.core.statetree import StateTree
from crev.errors import CrevError, InvalidBlock
from crev.ledger.apply import SigCache, TxResult, apply_block
from crev.ledger.block import Block
from crev.ledger.events import CalibrationDrift, ControlRecorded, MeterValuesRecorded, ReadingAccepted, SlotReconciled
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.submit_readings import SubmitReadings
from crev.ledger.state import State
from crev.ledger.tx import Tx, decode_tx
from crev.node.node import DB_FILE, GENESIS_FILE, ParallelVerifier, Triple, signature_triples
from crev.node.store import Store


@dataclass
class VerifyReport:
    """What the replay found. ``blocks`` replayed without fault (all of them if ``ok``)."""

    ok: bool
    blocks: int
    txs: int
    readings: int  # readings newly accepted (each issued its C-REV); the same as readings_accepted
    state_root: str
    first_bad_height: int | None = None
    error: str = ""
    readings_refused: int = 0  # refused inside an accepted batch, or in a refused transaction
    readings_duplicate: int = 0  # resubmissions of a reading already accepted (they change nothing)
    engine: str = ""  # "" (embedded: sequencer-signed blocks) or a consortium member's engine
    commits_checked: int = 0  # consortium: crev blocks proven by a CometBFT commit of > 2/3 of the power
    validators: int = 0  # consortium: the genesis validator set's size
    signed_power_min: int = 0  # consortium: the least power that signed any of those commits …
    total_power: int = 0  # … of this total
    meter_items: int = 0  # smart-meter items recorded (MeterValuesRecorded)
    slots_reconciled: dict[str, int] = field(default_factory=dict)  # status → slots (SlotReconciled)
    reconcile_cancelled_g: int = 0  # units reconciliation cancelled …
    reconcile_debt_g: int = 0  # … recorded as debt on devices …
    reconcile_topup_g: int = 0  # … and issued as top-ups
    drift_alerts: int = 0  # CalibrationDrift events
    control_records: int = 0  # control records (ControlRecorded)

    @property
    def readings_accepted(self) -> int:
        return self.readings


def count_readings(tx: Tx | bytes, res: TxResult) -> tuple[int, int, int]:
    """(accepted, refused, duplicate) readings of one replayed transaction.

    Accepted = new readings (a ReadingAccepted event each). In an accepted batch every reading's
    result says which: ``["accepted", ...]``, ``["duplicate", ...]`` or ``["refused", ...]``.
    A refused batch accepted nothing: all its readings count as refused (0 if the transaction
    could not even be decoded, as its readings are unknown)."""
    if res.kind != "submit_readings":
        return 0, 0, 0
    if not res.ok:
        msg = tx.message if isinstance(tx, Tx) else None
        return 0, len(msg.readings) + len(msg.malformed) if isinstance(msg, SubmitReadings) else 0, 0
    new = sum(1 for e in res.events if type(e) is ReadingAccepted)
    detail = res.detail if isinstance(res.detail, list) else []
    refused = sum(1 for d in detail if isinstance(d, list) and d and d[0] == "refused")
    duplicate = sum(1 for d in detail if isinstance(d, list) and d and d[0] == "duplicate")
    return new, refused, duplicate


METER_KINDS = ("submit_meter_values", "submit_readings", "submit_controls")


def count_meter(res: TxResult, rep: VerifyReport) -> None:
    """Add one replayed transaction's smart-meter items, reconciled slots and control records to
    ``rep`` (readings can complete a slot whose smart-meter values came first)."""
    if res.kind not in METER_KINDS or not res.ok:
        return
    for e in res.events:
        t = type(e)
        if t is MeterValuesRecorded:
            rep.meter_items += 1
        elif isinstance(e, SlotReconciled):
            rep.slots_reconciled[e.status] = rep.slots_reconciled.get(e.status, 0) + 1
            rep.reconcile_cancelled_g += e.cancelled_g
            rep.reconcile_debt_g += e.debt_g
            rep.reconcile_topup_g += e.topup_g
        elif t is CalibrationDrift:
            rep.drift_alerts += 1
        elif t is ControlRecorded:
            rep.control_records += 1


def _decode_all(state: State, block: Block) -> list[Tx | bytes]:
    out: list[Tx | bytes] = []
    for raw in block.txs:
        try:
            out.append(decode_tx(raw, state.chain_id, state.params))
        except CrevError:
            out.append(raw)  # apply_block reports it
    return out


def verify_chain(data_dir: Path | str, threads: int = 2, invariant_every: int = 1000,
                 progress: Callable[[int, int], None] | None = None,
                 consortium: Consortium | None = None) -> VerifyReport:
    d = Path(data_dir)
    if not (d / GENESIS_FILE).exists():
        raise FileNotFoundError(f"{d / GENESIS_FILE} not found: {d} holds no ledger")
    genesis = Genesis.from_json((d / GENESIS_FILE).read_text("utf-8"))
    store = Store(d / DB_FILE, readonly=True)  # the auditor reads; it never writes
    state = state_from_genesis(genesis)
    total = store.height()
    member = is_member(store)
    engine = (store.get_meta("engine") or b"").decode() if member else ""
    if consortium is not None and not member:
        store.close()
        raise ValueError(f"{d} is an embedded node's ledger (sequencer-signed blocks), not a consortium member's")
    verifier = ParallelVerifier(threads)
    txs = readings = refused = duplicate = 0
    meter = VerifyReport(True, 0, 0, 0, "")  # collects the smart-meter counts
    height = 0
    checked = 0
    least = 0

    def start(block: Block) -> tuple[Block, list[Tx | bytes], list[Triple], list[Future[list[bool]]]]:
        """Decode a block and send its signatures to the workers without waiting."""
        decoded = _decode_all(state, block)
        triples = [t for tx in decoded if isinstance(tx, Tx) for t in signature_triples(state, tx)]
        return (block, decoded, triples, verifier.submit(triples))

    blocks = store.blocks()
    deferred: list[CrevError] = []

    def next_block() -> Block | None:
        """The next stored block; an undecodable one is reported when its turn comes."""
        try:
            return next(blocks, None)
        except CrevError as err:
            deferred.append(err)
            return None

    try:
        nxt = next_block()
        pending = start(nxt) if nxt is not None else None
        while pending is not None:
            block, decoded, triples, futs = pending
            height = state.height + 1  # the block we expect; errors are reported at this height
            if block.header.height != height:
                raise InvalidBlock("header.height", f"block {height} is missing: found {block.header.height}")
            cache = SigCache()
            verifier.collect(cache, triples, futs)
            # Decode and verify the next block while this one is applied. Its keys are looked up
            # in the state before this block; a key changed by this block only costs a cache miss
            # (the signature is then verified inline), never a different result.
            nxt = next_block()
            pending = start(nxt) if nxt is not None else None
            prev_hash, prev_time = state.last_block_hash, state.last_time
            out = apply_block(state, block, cache, check_signature=not member, decoded=decoded)
            if consortium is not None:
                _, _, tally = consortium.check_block(block, cmt_height(store, height), prev_hash, prev_time)
                checked += 1
                least = tally.signed_power if checked == 1 else min(least, tally.signed_power)
            txs += len(block.txs)
            for tx, res in zip(decoded, out.results, strict=True):
                a, r, d_ = count_readings(tx, res)
                readings += a
                refused += r
                duplicate += d_
                count_meter(res, meter)
            if invariant_every and height % invariant_every == 0:
                check_invariants(state)
            if progress:
                progress(height, total)
        if deferred:
            height = state.height + 1
            raise deferred[0]
        if state.height != total:
            height = state.height + 1
            raise InvalidBlock("header.height", f"block {height} is missing")
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
        bad = height or state.height + 1
        return _with_meter(VerifyReport(False, bad - 1, txs, readings, state.tree.root().hex(), bad,
                                        f"{err.field}: {err.reason}", refused, duplicate, engine, checked,
                                        *_power(consortium, least)), meter)
    finally:
        verifier.close()
        store.close()
    return _with_meter(VerifyReport(True, height, txs, readings, root.hex(), readings_refused=refused,
                                    readings_duplicate=duplicate, engine=engine, commits_checked=checked,
                                    validators=_power(consortium, least)[0], signed_power_min=least,
                                    total_power=_power(consortium, least)[2]), meter)


def _with_meter(rep: VerifyReport, meter: VerifyReport) -> VerifyReport:
    for name in ("meter_items", "slots_reconciled", "reconcile_cancelled_g", "reconcile_debt_g",
                 "reconcile_topup_g", "drift_alerts", "control_records"):
        setattr(rep, name, getattr(meter, name))
    return rep


def _power(consortium: Consortium | None, least: int) -> tuple[int, int, int]:
    if consortium is None:
        return 0, 0, 0
    return len(consortium.vals.validators), least, consortium.vals.total_power
