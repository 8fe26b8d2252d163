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
from crev.audit.resume import (
    Audited,
    AuditRecord,
    HistoryError,
    ResumePoint,
    read_record,
    resume_point,
    update_record,
    write_record,
)
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
    blocks_replayed: int = 0  # through apply_block in this run (``blocks`` less the block resumed from)
    resumed_from: int = 0  # --resume: the verified height the replay started after (0: from genesis)
    resumed_with: str = ""  # … its state: "node checkpoint" or "auditor snapshot"
    resume_check: str = ""  # … and how that state was checked against the auditor's record
    full_replay_reason: str = ""  # --resume that found no usable starting state: why it replayed from genesis
    record: str = ""  # the audit record written or updated
    seen: _Seen | None = field(default=None, repr=False, compare=False)  # for the record; not reported

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
                 consortium: Consortium | None = None, *, record: Path | str | None = None,
                 resume: Path | str | None = None) -> VerifyReport:
    """Replay the chain in ``data_dir`` and report what was found (never raises for a bad chain: the
    report says where and why).

    ``resume``: an auditor's record (audit/resume.py) to start from a state it already verified
    instead of genesis; it is refused (report not ok) if it is of another chain, if audited history
    was rewritten or if the starting state's root is not the one recorded; without a usable starting
    state the replay starts from genesis and ``full_replay_reason`` says why. ``record``: after a
    successful replay, write the record there (default with ``resume``: update that file).
    Raises FileNotFoundError / ValueError for a missing data directory or record file."""
    d = Path(data_dir)
    if not (d / GENESIS_FILE).exists():
        raise FileNotFoundError(f"{d / GENESIS_FILE} not found: {d} holds no ledger")
    audit = read_record(resume) if resume is not None else None
    genesis = Genesis.from_json((d / GENESIS_FILE).read_text("utf-8"))
    store = Store(d / DB_FILE, readonly=True)  # the auditor reads; it never writes
    try:
        member = is_member(store)
        engine = (store.get_meta("engine") or b"").decode() if member else ""
        if consortium is not None and not member:
            raise ValueError(f"{d} is an embedded node's ledger (sequencer-signed blocks), not a consortium member's")
        point: ResumePoint | None = None
        why = ""
        if audit is not None:
            try:
                point, why = resume_point(store, genesis, audit)
            except CrevError as err:
                bad = err.height if isinstance(err, HistoryError) else None
                return VerifyReport(False, (bad or 1) - 1, 0, 0, "", bad, f"{err.field}: {err.reason}",
                                    engine=engine, full_replay_reason="")
        state = point.state if point is not None else state_from_genesis(genesis)
        rep = _replay(store, genesis, state, threads, invariant_every, progress, consortium, member, engine,
                      keep_changes=audit is not None and point is not None and record is None
                      and point.height == audit.snapshot_height)
    finally:
        store.close()
    if point is not None:
        rep.resumed_from, rep.resumed_with, rep.resume_check = point.height, point.source, point.checked
    rep.full_replay_reason = why
    if rep.ok and (record is not None or audit is not None):
        _save(rep, genesis, state, audit, point, record)
    rep.seen = None
    return rep


@dataclass
class _Seen:
    """What a replay keeps for the auditor's record: the heights it recomputed worth keeping and the
    state entries it changed (only when the record's snapshot is updated in place)."""

    points: list[Audited] = field(default_factory=list)
    changed: dict[str, bytes | None] | None = None


def _save(rep: VerifyReport, genesis: Genesis, state: State, audit: AuditRecord | None,
          point: ResumePoint | None, record: Path | str | None) -> None:
    seen = rep.seen
    assert seen is not None
    if audit is not None and record is None and point is not None and seen.changed is not None:
        update_record(audit, seen.points, state.height, seen.changed)
        rep.record = str(audit.path)
        return
    out = Path(record) if record is not None else audit.path if audit is not None else None
    assert out is not None
    kept = list(audit.points.values()) if audit is not None and point is not None else []
    write_record(out, genesis, [*kept, *seen.points], state)
    rep.record = str(out)


def _replay(store: Store, genesis: Genesis, state: State, threads: int, invariant_every: int,
            progress: Callable[[int, int], None] | None, consortium: Consortium | None, member: bool,
            engine: str, keep_changes: bool) -> VerifyReport:
    """Every stored block after ``state.height`` through apply_block on ``state`` (verified: from
    genesis, or a state the auditor's record vouches for), the invariants, and the node's stored
    snapshot against the replayed chain."""
    start = state.height
    total = store.height()
    cp = store.checkpoint_height()
    verifier = ParallelVerifier(threads)
    txs = readings = refused = duplicate = 0
    meter = VerifyReport(True, 0, 0, 0, "")  # collects the smart-meter counts
    seen = _Seen(changed={} if keep_changes else None)
    height = 0
    checked = 0
    least = 0

    def start_block(block: Block) -> tuple[Block, list[Tx | bytes], list[Triple], list[Future[list[bool]]]]:
        """Decode a block and send its signatures to the workers without waiting."""
        decoded = _decode_all(state, block)
        triples = [t for tx in decoded if isinstance(tx, Tx) for t in signature_triples(state, tx)]
        return (block, decoded, triples, verifier.submit(triples))

    blocks = store.blocks(start + 1)
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
        pending = start_block(nxt) if nxt is not None else None
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
            pending = start_block(nxt) if nxt is not None else None
            prev_hash, prev_time = state.last_block_hash, state.last_time
            out = apply_block(state, block, cache, check_signature=not member, decoded=decoded)
            if seen.changed is not None:
                seen.changed.update(out.changed)
            if height == cp and height != total:
                seen.points.append(Audited(height, block.header.hash, state.tree.root(), "checkpoint"))
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
        if state.height > 0:
            seen.points.append(Audited(state.height, state.last_block_hash, root, "head"))
        if cp and cp != start:  # resumed from the node's checkpoint: it was checked when loaded
            # the node's stored snapshot must commit to exactly the state root of its block
            snap = StateTree(genesis.params.state_tree_depth)
            for k, v in store.state_items():
                snap.set(k, v)
            cp_head = store.header(cp)
            if cp_head is None or snap.root() != cp_head.state_root:
                raise InvalidBlock("state snapshot", f"the node's stored state (checkpoint at block {cp}) "
                                                     "differs from the state the chain commits to")
    except CrevError as err:
        bad = height or state.height + 1
        return _with_meter(VerifyReport(False, bad - 1, txs, readings, state.tree.root().hex(), bad,
                                        f"{err.field}: {err.reason}", refused, duplicate, engine, checked,
                                        *_power(consortium, least)), meter)
    finally:
        verifier.close()
    return _with_meter(VerifyReport(True, state.height, txs, readings, root.hex(), readings_refused=refused,
                                    readings_duplicate=duplicate, engine=engine, commits_checked=checked,
                                    validators=_power(consortium, least)[0], signed_power_min=least,
                                    total_power=_power(consortium, least)[2], blocks_replayed=state.height - start,
                                    seen=seen), meter)


def _with_meter(rep: VerifyReport, meter: VerifyReport) -> VerifyReport:
    for name in ("meter_items", "slots_reconciled", "reconcile_cancelled_g", "reconcile_debt_g",
                 "reconcile_topup_g", "drift_alerts", "control_records"):
        setattr(rep, name, getattr(meter, name))
    return rep


def _power(consortium: Consortium | None, least: int) -> tuple[int, int, int]:
    if consortium is None:
        return 0, 0, 0
    return len(consortium.vals.validators), least, consortium.vals.total_power
