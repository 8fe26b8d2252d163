"""The ABCI socket server: ``crev abci DATA_DIR --addr tcp://127.0.0.1:26658``.

CometBFT opens four connections (consensus, mempool, query, snapshot). Each is served by its own
thread, reading length-delimited ``tendermint.abci.Request`` messages (uvarint length, then the
protobuf bytes) and writing one ``Response`` per request, in order. Like CometBFT's own Go server,
responses are buffered and written out when a ``Flush`` request arrives. The four threads share
one ``CrevApp`` whose lock orders them.

Bad input: a frame longer than ``MAX_FRAME``, bytes that are not a Request, or an empty Request
are answered with ``ResponseException`` naming what was wrong and the connection is closed; the
app's state is untouched. A request the app must not serve (FinalizeBlock out of order, InitChain
with another genesis) is answered with ``ResponseException`` too: CometBFT stops rather than let
the validator diverge.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crev.consortium.app import CODES, CODESPACE, AppError, CrevApp, Validator, code_of, event_attributes
from crev.consortium.proto import MAX_FRAME, Abci, DecodeError, FrameError, classes, frame, read_uvarint

log = logging.getLogger("crev.abci")
VERSION = "crev/0.1.0"


class Handlers:
    """Request (protobuf) → CrevApp call → Response (protobuf)."""

    def __init__(self, app: CrevApp, pb: Abci, events: str = "all") -> None:
        if events not in EVENT_MODES:
            raise ValueError(f"events must be one of {EVENT_MODES}")
        self.app = app
        self.pb = pb
        self.summary = events == "summary"
        self.table: dict[str, Callable[[Any, Any], None]] = {
            "echo": self.echo, "flush": self.flush, "info": self.info, "init_chain": self.init_chain,
            "query": self.query, "check_tx": self.check_tx, "commit": self.commit,
            "list_snapshots": self.list_snapshots, "offer_snapshot": self.offer_snapshot,
            "load_snapshot_chunk": self.load_snapshot_chunk, "apply_snapshot_chunk": self.apply_snapshot_chunk,
            "prepare_proposal": self.prepare_proposal, "process_proposal": self.process_proposal,
            "extend_vote": self.extend_vote, "verify_vote_extension": self.verify_vote_extension,
            "finalize_block": self.finalize_block,
        }

    def handle(self, req: Any) -> Any:
        which = req.WhichOneof("value")
        resp = self.pb.Response()
        if which is None:
            resp.exception.error = "empty request: no method set"
            return resp
        try:
            self.table[which](getattr(req, which), resp)
        except Exception as exc:
            resp.Clear()
            if which in SOFT:
                # a ResponseException stops CometBFT: a bad query or transaction must not, so
                # these answer with an error code instead
                log.warning("%s failed: %s: %s", which, type(exc).__name__, exc)
                r = getattr(resp, which)
                r.code, r.codespace, r.log = CODES["error"], CODESPACE, f"{type(exc).__name__}: {exc}"
            elif isinstance(exc, AppError):
                log.error("%s refused: %s", which, exc)
                resp.exception.error = f"{which}: {exc}"
            else:  # a bug: say so loudly, never answer as if it had worked
                log.error("%s failed:\n%s", which, traceback.format_exc())
                resp.exception.error = f"{which}: internal error {type(exc).__name__}: {exc}"
        return resp

    def echo(self, req: Any, resp: Any) -> None:
        resp.echo.message = req.message

    def flush(self, req: Any, resp: Any) -> None:
        resp.flush.SetInParent()

    def info(self, req: Any, resp: Any) -> None:
        i = self.app.info()
        r = resp.info
        r.data = f"crev chain {i['chain_id']!r} at crev height {i['crev_height']}"
        r.version = VERSION
        r.app_version = i["app_version"]
        r.last_block_height = i["last_block_height"]
        r.last_block_app_hash = i["last_block_app_hash"]

    def init_chain(self, req: Any, resp: Any) -> None:
        vals = []
        for v in req.validators:
            kind = v.pub_key.WhichOneof("sum")
            if kind is None:
                raise AppError("a validator without a public key")
            vals.append(Validator(kind, getattr(v.pub_key, kind), v.power))
        app_hash = self.app.init_chain(req.chain_id, req.time.seconds, req.app_state_bytes, vals,
                                       req.initial_height)
        resp.init_chain.app_hash = app_hash

    def query(self, req: Any, resp: Any) -> None:
        a = self.app.query(req.path, req.data)
        r = resp.query
        r.code, r.value, r.key, r.log, r.info, r.height = a.code, a.value, a.key, a.log, a.info, a.height
        if a.code:
            r.codespace = CODESPACE
        for typ, key, data in a.proof_ops:
            r.proof_ops.ops.add(type=typ, key=key, data=data)

    def check_tx(self, req: Any, resp: Any) -> None:
        c = self.app.check_tx(req.tx, recheck=req.type == self.pb.CHECK_TX_RECHECK)
        r = resp.check_tx
        r.code = c.code
        if c.code:
            r.codespace = CODESPACE
            r.log = f"{c.field}: {c.reason}"
            r.info = c.field
        else:
            r.SetInParent()

    def commit(self, req: Any, resp: Any) -> None:
        self.app.commit()
        resp.commit.retain_height = 0  # keep every block: auditors replay from genesis

    # state sync is not offered yet: a new member replays from genesis
    def list_snapshots(self, req: Any, resp: Any) -> None:
        resp.list_snapshots.SetInParent()

    def offer_snapshot(self, req: Any, resp: Any) -> None:
        resp.offer_snapshot.result = self.pb.SNAPSHOT_REJECT

    def load_snapshot_chunk(self, req: Any, resp: Any) -> None:
        resp.load_snapshot_chunk.SetInParent()

    def apply_snapshot_chunk(self, req: Any, resp: Any) -> None:
        resp.apply_snapshot_chunk.result = self.pb.CHUNK_ABORT

    def prepare_proposal(self, req: Any, resp: Any) -> None:
        txs = self.app.prepare_proposal(req.txs, req.max_tx_bytes, req.time.seconds)
        r = resp.prepare_proposal
        r.SetInParent()
        r.txs.extend(txs)

    def process_proposal(self, req: Any, resp: Any) -> None:
        why = self.app.process_proposal(list(req.txs), req.height, req.time.seconds)
        if why is not None:
            log.warning("refused the proposal at height %d: %s", req.height, why)
        resp.process_proposal.status = self.pb.PROPOSAL_ACCEPT if why is None else self.pb.PROPOSAL_REJECT

    def extend_vote(self, req: Any, resp: Any) -> None:
        resp.extend_vote.SetInParent()  # crev uses no vote extensions

    def verify_vote_extension(self, req: Any, resp: Any) -> None:
        ok = not req.vote_extension
        resp.verify_vote_extension.status = self.pb.VOTE_ACCEPT if ok else self.pb.VOTE_REJECT

    def finalize_block(self, req: Any, resp: Any) -> None:
        f = self.app.finalize_block(list(req.txs), req.height, req.time.seconds)
        r = resp.finalize_block
        r.SetInParent()
        r.app_hash = f.app_hash
        if f.outcome is None:
            return
        h = f.outcome.header
        ev = r.events.add(type="crev_block")
        for k, v in (("crev_height", str(h.height)), ("app_hash", h.hash.hex()),
                     ("state_root", h.state_root.hex()), ("results_root", h.results_root.hex())):
            ev.attributes.add(key=k, value=v, index=k == "crev_height")
        for res, enc in zip(f.outcome.results, f.outcome.encoded_results, strict=True):
            t = r.tx_results.add()
            t.data = enc  # the result's canonical bytes: CometBFT's LastResultsHash commits to them
            tev = t.events.add(type="crev_tx")
            tev.attributes.add(key="kind", value=res.kind, index=True)
            tev.attributes.add(key="tx_hash", value=res.tx_hash.hex(), index=True)
            if res.error is not None:
                t.code = code_of(res.error)
                t.codespace = CODESPACE
                t.log = f"{res.error.field}: {res.error.reason}"
                t.info = res.error.field
                tev.attributes.add(key="error", value=res.error.code, index=True)
                tev.attributes.add(key="field", value=res.error.field)
                continue
            if self.summary and res.kind == "submit_readings":
                self._readings_summary(t, res.detail, res.events)
                continue
            for e in res.events:
                self._event(t, e)

    @staticmethod
    def _event(t: Any, e: Any) -> None:
        pe = t.events.add(type=e.type)
        for k, v in event_attributes(e):
            pe.attributes.add(key=k, value=v, index=k in INDEXED)

    def _readings_summary(self, t: Any, detail: Any, events: Any) -> None:
        """``--events summary``: a readings batch's per-reading events (reading_accepted, issued,
        reading_gap) become one ``crev_readings`` event with the counts; every other event of the
        batch (an offer policy's orders and trades) is mapped in full. The per-reading outcomes
        stay in the result bytes (``data``) and in crev's own store and index."""
        counts = {"accepted": 0, "duplicate": 0, "refused": 0}
        for d in detail:
            counts[d[0]] += 1
        issued = [e for e in events if e.type == "issued"]
        ev = t.events.add(type="crev_readings")
        for k, n in (*counts.items(), ("lots", len(issued)), ("issued_g", sum(e.quantity_g for e in issued))):
            ev.attributes.add(key=k, value=str(n))
        for e in events:
            if e.type not in PER_READING:
                self._event(t, e)


EVENT_MODES = ("all", "summary")
PER_READING = frozenset({"reading_accepted", "issued", "reading_gap"})
SOFT = frozenset({"query", "check_tx"})  # answered with an error code, never an exception
INDEXED = frozenset({"lot_id", "device_id", "account", "account_id", "owner", "order_id", "retirement_id",
                     "market_id", "buyer", "seller", "sender", "recipient", "trade_id"})


class _Conn(socketserver.StreamRequestHandler):
    rbufsize = 1 << 16
    wbufsize = 1 << 16

    def handle(self) -> None:
        handlers: Handlers = getattr(self.server, "handlers")  # noqa: B009 - set by AbciServer
        pb = handlers.pb
        rf, wf = self.rfile, self.wfile
        peer = self.client_address
        log.info("connection from %s", peer)
        try:
            while True:
                try:
                    n = read_uvarint(lambda: rf.read(1))
                    if n is None:
                        return
                    if n > MAX_FRAME:
                        raise FrameError(f"a {n}-byte message exceeds the limit of {MAX_FRAME} bytes")
                    body = rf.read(n)
                    if len(body) < n:
                        raise FrameError(f"connection closed after {len(body)} of {n} bytes")
                    req = pb.Request.FromString(body)
                except (FrameError, DecodeError) as err:
                    what = err if isinstance(err, FrameError) else f"not a tendermint.abci.Request ({err})"
                    log.error("closing %s: %s", peer, what)
                    resp = pb.Response()
                    resp.exception.error = f"malformed ABCI message: {what}"
                    wf.write(frame(resp))
                    wf.flush()
                    return
                resp = handlers.handle(req)
                wf.write(frame(resp))
                if resp.WhichOneof("value") in ("flush", "exception"):
                    wf.flush()
                if resp.WhichOneof("value") == "exception" and req.WhichOneof("value") is None:
                    return
        except (ConnectionError, OSError) as err:
            log.info("connection %s ended: %s", peer, err)


class _TCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


class _Unix(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class AbciServer:
    """Serves ``app`` on ``addr`` (``tcp://host:port`` or ``unix:///path``)."""

    def __init__(self, app: CrevApp, addr: str, events: str = "all") -> None:
        self.app = app
        self.handlers = Handlers(app, classes(), events)
        self.server: socketserver.BaseServer
        if addr.startswith("unix://"):
            path = Path(addr[len("unix://"):])
            path.unlink(missing_ok=True)
            self.server = _Unix(str(path), _Conn)
        else:
            hostport = addr.removeprefix("tcp://")
            host, _, port = hostport.rpartition(":")
            self.server = _TCP((host or "127.0.0.1", int(port)), _Conn)
        setattr(self.server, "handlers", self.handlers)  # noqa: B010 - read by each connection
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        a = self.server.server_address
        return f"tcp://{a[0]}:{a[1]}" if isinstance(a, tuple) else f"unix://{a!s}"

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> AbciServer:
        self._thread = threading.Thread(target=self.serve_forever, name="crev-abci", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)
