"""The HTTP API and the dashboard, on one FastAPI app over a running ledger (docs/api.md): the
embedded node, or one member of a consortium (``live.Ledger``; ``consortium`` adds
``/v1/consortium`` and each block's signers).

Routes are thin: each parses its parameters, takes a consistent read (``Live``) and returns what
``queries`` builds. Every error, whatever raised it, leaves as ``{"error": {code, field,
reason}}`` with the status of its class in ``crev.errors`` (one table, ``STATUS``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import FastAPI, Query, Request
from fastapi import Path as P
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import crev
from crev.audit.consortium import Consortium as AuditConsortium
from crev.core.hashing import sha256
from crev.errors import CrevError, MalformedError, NotFoundError
from crev.node.node import Receipt, readings_in
from crev.reports.marketdata import book_levels, market_rows
from crev.reports.statements import (
    monthly_statement,
    qr_drawing,
    retirement_pdf,
    retirement_statement,
    statement_csv,
    statement_pdf,
    verification_url,
)
from crev.service import auth, queries
from crev.service.limits import Admission, Limits, TokenBuckets, TooLarge
from crev.service.live import SHUTDOWN, STREAMS_PER_CLIENT, Ledger, Live, StreamLimit

STATUS = {"malformed": 400, "bad_signature": 401, "forbidden": 403, "not_found": 404, "conflict": 409,
          "bad_nonce": 409, "rule_violation": 422, "invalid_block": 500}
WEB = Path(crev.__file__).parent / "web"
CBOR_TYPES = ("application/cbor", "application/octet-stream")

Offset = Annotated[int, Query(ge=0, le=10**9, description="items to skip")]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
DateFrom = Annotated[str | None, Query(alias="from", max_length=10, description="first JST day, YYYY-MM-DD")]
DateTo = Annotated[str | None, Query(alias="to", max_length=10, description="last JST day, YYYY-MM-DD")]
FinalityQ = Annotated[Literal["provisional", "final", "corrected", "late"] | None,
                      Query(description="only lots (slots) of this finality")]


class ErrorDetail(BaseModel):
    code: str
    field: str
    reason: str


class ErrorBody(BaseModel):
    """The one error shape (docs/api.md); ``/v1/tx`` errors also carry ``tx_hash``."""

    error: ErrorDetail


# Documented on every operation, in place of FastAPI's default 422 HTTPValidationError, which this
# app never answers (a bad parameter is 400 ``malformed``).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "error (code, field, reason; docs/api.md)"},
    "5XX": {"model": ErrorBody, "description": "unavailable: the node stopped or could not commit in time"},
}


def error(status: int, code: str, field: str, reason: str, headers: dict[str, str] | None = None,
          **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "field": field, "reason": reason}, **extra}, status_code=status,
                        headers=headers)


def _charger(buckets: TokenBuckets | None, sender: str, readings: int) -> Callable[[Future[Receipt]], None]:
    """A callback for a submission's future: charge ``sender`` for the device items (readings,
    smart-meter values, control records) the ledger refused
    (all of them if the whole transaction was refused, at least 1 for a refused transaction).
    Duplicates are not charged: a gateway retrying what it is not sure arrived does no harm."""

    def charge(fut: Future[Receipt]) -> None:
        if buckets is None or fut.cancelled() or fut.exception() is not None:
            return
        r = fut.result()
        if r.error is not None and (r.error["code"], r.error["field"]) in (("conflict", "readings"),
                                                                         ("conflict", "items")):
            return  # a gateway's retry of device items already on the ledger: not refused work
        if not r.committed and r.error is not None:
            buckets.debit(sender, max(1, readings))
        elif isinstance(r.detail, list) and readings > 1:
            buckets.debit(sender, sum(1 for d in r.detail if isinstance(d, list) and d and d[0] == "refused"))

    return charge


def crev_error(err: CrevError, **extra: Any) -> JSONResponse:
    return error(STATUS.get(err.code, 400), err.code, err.field, err.reason, **extra)


class Consortium(Protocol):
    """What the API shows of a consortium (``crev.consortium.member.Consortium``)."""

    @property
    def api_member(self) -> str:
        """The member whose node this API reads."""

    def overview(self) -> dict[str, Any]:
        """Members (each one's CometBFT status), validators and their voting power."""

    def signers(self, cometbft_height: int) -> dict[str, Any]:
        """Who signed CometBFT block ``cometbft_height``, with their voting power."""


def create_app(node: Ledger, *, rate: float = 50.0, burst: int = 200, clock: Callable[[], float] = time.time,
               public_url: str | None = None, admission: Admission | None = None,
               refused_rate: float = 500.0, refused_burst: int = 20_000, consortium: Consortium | None = None,
               proofs: AuditConsortium | None = None, nonce_file: Path | None = None) -> Any:
    """The ASGI app: FastAPI routes behind the size and rate limits (``rate`` ≤ 0: no rate limit).

    ``admission`` bounds the transactions waiting for the node (503 past it; default
    ``Admission()``); each address may have ``refused_rate`` readings per second refused by the
    ledger, ``refused_burst`` at once, before its submissions get 429 (``refused_rate`` ≤ 0: no
    such limit). ``app.state.begin_shutdown()`` ends the live streams, so a graceful shutdown waits
    only for the requests in flight. ``consortium``: the ledger is a consortium member's (adds
    ``/v1/consortium`` and each block's signers); ``proofs``: the consortium's CometBFT headers and
    commits, which ``/v1/trace`` then carries for every block it names (the dashboard's Verify
    checks them); ``nonce_file``: where used request nonces are kept (default: in the ledger's data
    directory)."""
    live = Live(node)
    queue = admission if admission is not None else Admission()
    refused_work = TokenBuckets(refused_rate, refused_burst) if refused_rate > 0 else None
    nonces = auth.Nonces(nonce_file or node.data_dir / auth.NONCE_FILE)  # used request nonces survive a restart
    app = FastAPI(title="crev API", version=crev.__version__ if hasattr(crev, "__version__") else "0.1.0",
                  summary="C-REV ledger, market and consumer figures / C-REV台帳・市場・需要家指標",
                  description="Signed readings → C-REV → trading → retirement. See docs/api.md.",
                  responses=ERROR_RESPONSES)

    # --- errors -----------------------------------------------------------------------------

    @app.exception_handler(CrevError)
    async def _crev(_: Request, exc: CrevError) -> JSONResponse:
        return crev_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("request",), "msg": "invalid"}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return error(400, "malformed", field, str(first.get("msg", "invalid")))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(404, "not_found", "path", f"no such endpoint {request.url.path!r}")
        if exc.status_code == 405:
            return error(405, "method_not_allowed", "method", f"{request.method} is not allowed on "
                                                               f"{request.url.path!r}")
        return error(exc.status_code, "malformed" if exc.status_code < 500 else "unavailable", "request",
                     str(exc.detail))

    @app.exception_handler(TooLarge)
    async def _too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return error(413, "too_large", "body", str(exc))

    @app.exception_handler(ValueError)
    async def _value(_: Request, exc: ValueError) -> JSONResponse:
        return error(400, "malformed", "request", str(exc))

    # --- submitting -------------------------------------------------------------------------

    @app.post("/v1/tx", tags=["ledger"], summary="Submit one signed transaction (canonical CBOR bytes)",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/cbor": {"schema": {"type": "string", "format": "binary"}}}}},
              responses={202: {"description": "wait=false: passed the stateless check, not yet committed"}})
    async def submit(request: Request, wait: bool = True,
                     events: Annotated[bool, Query(description="include the events in the receipt")] = True
                     ) -> JSONResponse:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in CBOR_TYPES:
            return error(415, "unsupported_media_type", "Content-Type",
                         f"send the transaction's bytes as application/cbor, not {ctype or 'nothing'!r}")
        sender = request.client.host if request.client else "?"
        if refused_work is not None and (owed := refused_work.wait(sender)) > 0:
            return error(429, "rate_limited", "client",
                         f"this address sent transactions and readings the ledger refused, more than "
                         f"{refused_rate:g} a second allows; retry in {owed:.1f} s",
                         headers={"Retry-After": str(max(1, math.ceil(owed)))})
        raw = await request.body()
        if not raw:
            return error(400, "malformed", "body", "empty: send one transaction's canonical CBOR bytes",
                         tx_hash=sha256(raw).hex())
        ticket, retry = queue.admit(len(raw))
        if ticket < 0:
            return error(503, "overloaded", "node",
                         f"the node is behind: this transaction would not be answered in time; retry in "
                         f"{retry:.1f} s (Retry-After)",
                         tx_hash=sha256(raw).hex(), headers={"Retry-After": str(max(1, math.ceil(retry)))})
        released = False
        try:
            try:  # the stateless check, off the event loop; the node then takes the decoded transaction
                tx = await run_in_threadpool(node.check_tx, raw)
            except CrevError as err:
                if refused_work is not None:
                    refused_work.debit(sender, 1)
                return crev_error(err, tx_hash=sha256(raw).hex())
            except Exception as exc:  # hostile bytes are malformed, never a 500
                if refused_work is not None:
                    refused_work.debit(sender, 1)
                return error(400, "malformed", "tx", f"cannot be decoded ({type(exc).__name__})",
                             tx_hash=sha256(raw).hex())
            submitted = node.submit(tx)
            charge = _charger(refused_work, sender, readings_in(tx))
            submitted.add_done_callback(charge)
            if not wait:
                submitted.add_done_callback(lambda _f: queue.release(ticket))
                released = True
                return JSONResponse({"tx_hash": tx.hash.hex(), "committed": False}, status_code=202)
            fut = asyncio.wrap_future(submitted)
            try:
                receipt = await asyncio.wait_for(asyncio.shield(fut), 60)  # giving up must not cancel the node's future
            except TimeoutError:
                return error(503, "unavailable", "node", "not committed within 60 s; it may still be: "
                                                         "resubmit the same bytes", tx_hash=tx.hash.hex())
            except RuntimeError as exc:
                return error(503, "unavailable", "node", str(exc), tx_hash=tx.hash.hex())
            except asyncio.CancelledError:  # the server is shutting down and stopped waiting for us
                return error(503, "shutting_down", "node",
                             f"the server is shutting down; the transaction may still be committed: "
                             f"check GET /v1/tx/{tx.hash.hex()} or resubmit the same bytes",
                             tx_hash=tx.hash.hex(), headers={"Retry-After": "5"})
        finally:
            if not released:
                queue.release(ticket)
        if receipt.error is not None and not receipt.ok:
            e = receipt.error
            # a consortium keeps a failed transaction in its block (committed, changing nothing):
            # answered as the embedded node answers a refused one, saying where it is
            where: dict[str, Any] = ({"committed": True, "height": receipt.height, "index": receipt.index}
                                     if receipt.committed else {})
            return error(STATUS.get(e["code"], 400), e["code"], e["field"], e["reason"], None,
                         tx_hash=receipt.tx_hash, **where)
        return JSONResponse(receipt.to_dict(events))

    # --- chain ------------------------------------------------------------------------------

    @app.get("/v1/info", tags=["ledger"])
    def info() -> Any:
        with live.state() as st:
            out = queries.info(st)
        if consortium is not None:
            out["consortium"] = {"api_member": consortium.api_member}
            if proofs is not None:
                out["consortium"]["validators_hash"] = proofs.vals.hash.hex()
        return out

    @app.get("/v1/blocks", tags=["ledger"])
    def blocks(offset: Offset = 0, limit: Limit = 50) -> Any:
        with live.store() as s:
            out = queries.blocks(s, offset, limit)
            cmts = {r["height"]: s.get_meta(f"cmt/{r['height']}") for r in out["items"]}
        if consortium is not None:
            for r in out["items"]:
                cmt = cmts[r["height"]]
                if cmt is not None:
                    c = signed_by(int(cmt))
                    r.update(cometbft_height=c["cometbft_height"], signed_power=c.get("signed_power"),
                             total_power=c.get("total_power"),
                             signers=None if c["signers"] is None else [x["name"] for x in c["signers"]])
        return out

    @app.get("/v1/blocks/{height}", tags=["ledger"],
             summary="One block; in consortium mode also its CometBFT height and who signed it")
    def block(height: Annotated[int, P(ge=1, le=2**62)]) -> Any:
        with live.store() as s:
            out = queries.block(s, height)
            cmt = s.get_meta(f"cmt/{height}")
            if proofs is not None and cmt is not None:
                from crev.audit.trace import consortium_proofs

                try:  # the CometBFT header and commit proving it, for the dashboard to check
                    out["consortium"] = consortium_proofs(s, proofs, [height])
                except Exception as exc:  # CometBFT unreachable: the block is still answered
                    out["consortium_error"] = str(exc)
        if consortium is not None and cmt is not None:
            out.update(signed_by(int(cmt)))
        return out

    def signed_by(cometbft_height: int) -> dict[str, Any]:
        try:
            c = consortium.signers(cometbft_height) if consortium is not None else {}
        except Exception as exc:  # CometBFT unreachable: the block is still answered
            return {"cometbft_height": cometbft_height, "signers": None, "signers_error": str(exc)}
        return {k: c[k] for k in ("cometbft_height", "signers", "absent", "signed_power", "total_power")}

    if consortium is not None:  # an embedded node answers 404 here, as for any unknown path

        @app.get("/v1/consortium", tags=["ledger"],
                 summary="Consortium mode: the members (CometBFT status of each), validators and voting power")
        def consortium_info() -> Any:
            assert consortium is not None
            out = consortium.overview()
            with live.state() as st:
                out["crev_height"] = st.height
            return out

    @app.get("/v1/tx/{tx_hash}", tags=["ledger"])
    def get_tx(tx_hash: str, request: Request) -> Any:
        """A deposit or withdrawal of JPY shows its amount, bank reference, bytes and proof only to a
        request signed by its account or the operator (docs/api.md, "What is public")."""
        who = auth.reader(live.state, request.headers, request.method, auth.request_target(request.scope),
                          int(clock()), nonces)
        def owner_of(device_id: str) -> str | None:
            with live.state() as st:
                return queries.device_owner(st, device_id)

        with live.store() as s:
            return queries.tx(s, tx_hash, who, owner_of)

    @app.get("/v1/proofs/state/{key:path}", tags=["ledger"])
    def state_proof(key: str, request: Request) -> Any:
        """Public records (lots, devices, readings, slot tallies, delegates, retirements, factors, markets,
        genesis) for anyone; an account's own records (a/, o/, p/, b/: balances, orders, policies,
        standing bids; c/: its devices' control records) only for a request signed by that account,
        as for ``/v1/accounts/{id}``; the supply totals (``s``, which hold the JPY deposited) only
        for the operator."""
        from crev.audit.trace import state_proof as prove

        if not key or len(key) > 300 or not (key in ("s", "g") or re.match(r"^[adlrtfmopbvck]/.", key)):
            raise MalformedError("key", "a state key: l/<lot_id>, d/<device_id>, r/<device_id>/<seq>, "
                                        "v/<device_id>/<slot_id>, k/<delegate_id>, t/<retirement_id>, f/…, m/… or g; "
                                        "with a "
                                        "signed request also a/<account_id>, o/<order_id>, p/…, b/…, "
                                        "c/<device_id>/<seq> (its owner's), and s for the operator "
                                        "(1-300 characters)")
        if key[0] == "c":  # a control record holds its owner's money inputs
            with live.state() as st:
                owner = queries.device_owner(st, key[2:].rpartition("/")[0]) or ""
            authorise(request, owner)
        elif key[0] in "aopb":
            ident = key[2:]
            if key[0] == "o":
                with live.state() as st:
                    order = st.orders.get(ident)
                owner = order.account if order is not None else ""
            else:
                owner = ident.split("/")[0]
            authorise(request, owner)
        elif key == "s":  # the supply totals hold all JPY deposited: one block's change shows a deposit
            with live.state() as st:
                operator = st.operator_id
            authorise(request, operator)
        with live.read() as r:
            try:
                p = prove(r.store, r.state, key)
            except KeyError:  # State.value_of: a key of no record kind
                raise MalformedError("key", f"{key!r} is not a state key such as l/<lot_id>, a/<account_id>, "
                                            f"d/<device_id>, t/<retirement_id>") from None
            head = r.store.block(r.state.height)
            return {**p, "block": queries.block_wire(head) if head else None}

    # --- registry ---------------------------------------------------------------------------

    @app.get("/v1/participants", tags=["registry"])
    def participants(role: str | None = None, offset: Offset = 0, limit: Limit = 50) -> Any:
        with live.state() as st:
            return queries.participants(st, role, offset, limit)

    @app.get("/v1/participants/{account_id}", tags=["registry"])
    def participant(account_id: str) -> Any:
        with live.state() as st:
            return queries.participant(st, queries.account(st, account_id))

    @app.get("/v1/delegates/{delegate_id}", tags=["registry"])
    def delegate(delegate_id: str) -> Any:
        """A delegated key: its owner, the kinds it may sign, its validity and its next nonce."""
        with live.state() as st:
            return queries.delegate(st, delegate_id)

    @app.get("/v1/devices", tags=["registry"])
    def devices(owner: str | None = None, grid_area: str | None = None, offset: Offset = 0,
                limit: Limit = 50) -> Any:
        with live.read() as r:
            return queries.devices(r.state, r.store, owner, grid_area, offset, limit)

    @app.get("/v1/devices/{device_id}", tags=["registry"])
    def device(device_id: str) -> Any:
        with live.read() as r:
            return queries.device_detail(r.state, r.store, device_id)

    @app.get("/v1/devices/{device_id}/slots", tags=["registry"],
             summary="A device's 30-minute slots: readings' sums, C-REV issued, the smart meter's values, "
                     "reconciliation and finality")
    def device_slots(device_id: str, date_from: DateFrom = None, date_to: DateTo = None,
                     finality: FinalityQ = None,
                     order: Annotated[Literal["desc", "asc"], Query(description="desc: newest first")] = "desc",
                     offset: Offset = 0, limit: Limit = 50) -> Any:
        with live.state() as st:
            return queries.device_slots(st, device_id, date_from, date_to, finality, order, offset, limit)

    @app.get("/v1/devices/{device_id}/controls", tags=["registry"],
             summary="A device's control records (PCS limit, export cap, reason, inputs); the money "
                     "inputs only for the owner's or the operator's signed request")
    def device_controls(device_id: str, request: Request, date_from: DateFrom = None, date_to: DateTo = None,
                        offset: Offset = 0, limit: Limit = 50) -> Any:
        who = auth.reader(live.state, request.headers, request.method, auth.request_target(request.scope),
                          int(clock()), nonces)
        with live.state() as st:
            return queries.device_controls(st, device_id, date_from, date_to, who, offset, limit)

    # --- C-REV ------------------------------------------------------------------------------

    @app.get("/v1/lots", tags=["C-REV"])
    def lots(device_id: str | None = None, owner: str | None = None, finality: FinalityQ = None,
             offset: Offset = 0, limit: Limit = 50) -> Any:
        with live.read() as r:
            return queries.lots(r.state, r.store, device_id, owner, offset, limit, finality)

    @app.get("/v1/lots/{lot_id}", tags=["C-REV"])
    def lot(lot_id: str) -> Any:
        with live.read() as r:
            return queries.lot(r.state, r.store, lot_id)

    @app.get("/v1/units/{unit_id}", tags=["C-REV"])
    def unit(unit_id: Annotated[int, P(ge=1, le=2**62)]) -> Any:
        with live.read() as r:
            return queries.unit(r.state, r.store, unit_id)

    @app.get("/v1/retirements", tags=["C-REV"])
    def retirements(account: str | None = None, offset: Offset = 0, limit: Limit = 50) -> Any:
        with live.read() as r:
            return queries.retirements(r.state, r.store, account, offset, limit)

    @app.get("/v1/retirements/{retirement_id}", tags=["C-REV"])
    def retirement(retirement_id: str) -> Any:
        with live.read() as r:
            return queries.retirement(r.state, r.store, retirement_id)

    def verify_url(request: Request, rid: str) -> str:
        return verification_url(public_url or str(request.base_url), rid)

    @app.get("/v1/retirements/{retirement_id}/certificate.pdf", tags=["C-REV"],
             response_class=Response, responses={200: {"content": {"application/pdf": {}}}})
    def certificate(retirement_id: str, request: Request) -> Response:
        with live.state() as st:
            cert = retirement_statement(st, retirement_id)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "certificate.pdf"
            retirement_pdf(cert, path, verify_url(request, retirement_id))
            data = path.read_bytes()
        return Response(data, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="{retirement_id}.pdf"'})

    @app.get("/v1/retirements/{retirement_id}/qr.svg", tags=["C-REV"], response_class=Response,
             responses={200: {"content": {"image/svg+xml": {}}}})
    def qr(retirement_id: str, request: Request) -> Response:
        from reportlab.graphics import renderSVG

        with live.state() as st:
            if retirement_id not in st.retirements:
                raise NotFoundError("retirement_id", f"no retirement {retirement_id!r}")
        svg = renderSVG.drawToString(qr_drawing(verify_url(request, retirement_id), 160))
        return Response(svg, media_type="image/svg+xml")

    @app.get("/v1/trace/{ident}", tags=["C-REV"],
             summary="Provenance of a lot, unit, retirement or transaction, with what a browser needs to "
                     "check every proof")
    def trace(ident: str, request: Request) -> Any:
        if not ident or len(ident) > 200:
            raise MalformedError("ident", "a lot id, unit id, retirement id or transaction hash")
        who = auth.reader(live.state, request.headers, request.method, auth.request_target(request.scope),
                          int(clock()), nonces)
        with live.read() as r:
            page = queries.browser_trace(r.state, r.store, ident, who)
            if proofs is not None:  # consortium blocks: each proven by its CometBFT commit, not a key
                from crev.audit.trace import consortium_proofs

                page["consortium"] = consortium_proofs(r.store, proofs, sorted(int(h) for h in page["blocks"]))
            return page

    # --- consumer figures -------------------------------------------------------------------

    @app.get("/v1/figures/{participant_id}", tags=["figures"])
    def figures(participant_id: str, site: str | None = None,
                date_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
                date_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
                slots: Annotated[bool, Query(description="include every slot (false: totals and days only)")] = True
                ) -> Any:
        with live.read() as r:
            return queries.figures(r.state, r.store, participant_id, site, date_from, date_to, slots)

    # --- market -----------------------------------------------------------------------------

    @app.get("/v1/markets", tags=["market"])
    def markets(offset: Offset = 0, limit: Limit = 50) -> Any:
        with live.state() as st:
            rows = market_rows(st)
        return queries.page(rows[offset:offset + limit], len(rows), offset, limit)

    @app.get("/v1/markets/{market_id}/book", tags=["market"])
    def book(market_id: str, depth: Annotated[int, Query(ge=1, le=500)] = 20) -> Any:
        with live.state() as st:
            if market_id not in st.markets:
                raise NotFoundError("market_id", f"no market {market_id!r}")
            lv = book_levels(st, market_id)
        bids = [{"price": p, "quantity_g": q, "orders": n} for p, q, n in lv["bids"][:depth]]
        asks = [{"price": p, "quantity_g": q, "orders": n} for p, q, n in lv["asks"][:depth]]
        spread = asks[0]["price"] - bids[0]["price"] if bids and asks else None
        return {"market_id": market_id, "bids": bids, "asks": asks, "spread": spread}

    def _history(rows: Any, market_id: str, offset: int, limit: int) -> Any:
        with live.state() as st:
            if market_id not in st.markets:
                raise NotFoundError("market_id", f"no market {market_id!r}")
        picked = [t for t in reversed(rows) if t["market_id"] == market_id]
        return queries.page(picked[offset:offset + limit], len(picked), offset, limit)

    @app.get("/v1/markets/{market_id}/trades", tags=["market"])
    def trades(market_id: str, offset: Offset = 0, limit: Limit = 50) -> Any:
        return _history(list(live.trades), market_id, offset, limit)

    @app.get("/v1/markets/{market_id}/auctions", tags=["market"])
    def auctions(market_id: str, offset: Offset = 0, limit: Limit = 50) -> Any:
        return _history(list(live.auctions), market_id, offset, limit)

    # --- private ----------------------------------------------------------------------------

    def authorise(request: Request, account_id: str, body: bytes = b"") -> None:
        target = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        if request.scope.get("query_string"):
            target += "?" + request.scope["query_string"].decode("latin-1")
        headers = {h: request.headers.get(h, "") for h in auth.HEADERS}
        now = int(clock())
        with live.state() as st:  # the node's lock: checks only, no fsync under it
            signed = auth.permitted(st, headers, request.method, target, body, now, account_id)
        auth.claim(signed, nonces, now)

    @app.get("/v1/accounts/{account_id}", tags=["private"], summary="Balances (signed request)")
    def balances(account_id: str, request: Request) -> Any:
        authorise(request, account_id)
        with live.state() as st:
            a = queries.account(st, account_id)
            return {"account_id": a.account_id, "name": a.name, "role": a.role, "nonce": a.nonce,
                    "tradable_g": a.tradable_g, "escrowed_g": a.escrowed_g, "retired_g": a.retired_g,
                    "jpy": a.jpy, "jpy_escrowed": a.jpy_escrowed}

    @app.get("/v1/accounts/{account_id}/orders", tags=["private"],
             summary="Orders, open and closed, newest first (signed request)")
    def orders(account_id: str, request: Request, offset: Offset = 0, limit: Limit = 50,
               side: Annotated[Literal["bid", "ask"] | None, Query(description="bid or ask")] = None,
               market_id: str | None = None) -> Any:
        authorise(request, account_id)
        with live.read() as r:
            queries.account(r.state, account_id)
            return queries.account_orders(r.state, r.store, account_id, side, market_id, offset, limit)

    @app.get("/v1/accounts/{account_id}/statements/{month}", tags=["private"],
             summary="Monthly statement YYYY-MM, YYYY-MM.csv or YYYY-MM.pdf (signed request)",
             responses={200: {"content": {"application/json": {}, "text/csv": {}, "application/pdf": {}}}})
    def statement(account_id: str, month: str, request: Request) -> Any:
        authorise(request, account_id)
        stem, _, ext = month.partition(".")
        if ext not in ("", "csv", "pdf"):
            raise MalformedError("month", f"format {ext!r}: use YYYY-MM, YYYY-MM.csv or YYYY-MM.pdf")
        try:
            y, m = (int(x) for x in stem.split("-"))
        except ValueError:
            raise MalformedError("month", f"{stem!r} is not YYYY-MM") from None
        if not (2000 <= y <= 2200 and 1 <= m <= 12):
            raise MalformedError("month", f"{stem!r} is not a month YYYY-MM")
        with live.read() as r:
            stmt = monthly_statement(r.state, r.store, account_id, y * 100 + m)
        if ext == "csv":
            return Response(statement_csv(stmt), media_type="text/csv; charset=utf-8")
        if ext == "pdf":
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / "s.pdf"
                statement_pdf(stmt, path)
                return Response(path.read_bytes(), media_type="application/pdf")
        return {"account_id": stmt.account_id, "name": stmt.name, "month": stem,
                "opening_jpy": stmt.opening_jpy, "closing_jpy": stmt.closing_jpy, "bought_g": stmt.bought_g,
                "sold_g": stmt.sold_g, "retired_g": stmt.retired_g, "fees_paid_jpy": stmt.fees_paid_jpy,
                "trading_net_jpy": stmt.trading_net_jpy,
                "lines": [{"time_jst": x.when, "kind": x.kind, "ref": x.ref, "market_id": x.market_id,
                           "counterparty": x.counterparty, "quantity_g": x.quantity_g, "price": x.price,
                           "value_jpy": x.value_jpy, "fee_jpy": x.fee_jpy, "net_jpy": x.net_jpy,
                           "height": x.height, "tx_hash": x.tx_hash} for x in stmt.lines]}

    # --- live stream ------------------------------------------------------------------------

    @app.get("/v1/stream", tags=["ledger"], response_class=StreamingResponse,
             summary="Server-Sent Events: block, issued, trade, retired, reconciled, drift, debt, control",
             responses={200: {"content": {"text/event-stream": {}}}})
    async def stream(request: Request) -> Response:
        try:
            sub = live.subscribe(request.client.host if request.client else "?")
        except StreamLimit:
            return error(429, "rate_limited", "stream", f"at most {STREAMS_PER_CLIENT} open streams per "
                                                        f"address: close one first")
        with live.state() as st:
            hello = {"height": st.height, "time_jst": queries.when(st.last_time) if st.last_time else None}

        async def events() -> AsyncIterator[bytes]:
            try:
                yield f"event: hello\ndata: {json.dumps(hello)}\n\n".encode()
                while True:
                    try:
                        item = await asyncio.wait_for(sub.queue.get(), 15)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keep-alive\n\n"
                        continue
                    if item is None:
                        yield b'event: dropped\ndata: {"reason": "too slow: reconnect"}\n\n'
                        return
                    if item is SHUTDOWN:
                        yield b'event: shutdown\ndata: {"reason": "the server is shutting down: reconnect later"}\n\n'
                        return
                    # every subscriber is handed the same dict: read it, never change it
                    data = {k: v for k, v in item.items() if k != "event"}
                    yield f"event: {item['event']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
            finally:
                live.unsubscribe(sub)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # --- dashboard --------------------------------------------------------------------------

    static = WEB / "static"
    if static.is_dir():
        app.mount("/static", StaticFiles(directory=static), name="static")
    vendor = WEB / "node_modules"
    if vendor.is_dir():
        app.mount("/vendor", StaticFiles(directory=vendor), name="vendor")

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        page = static / "index.html"
        if not page.exists():
            return error(404, "not_found", "dashboard", "the dashboard's files are not installed")
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    outer = Limits(app, TokenBuckets(rate, burst) if rate > 0 else None)
    outer.begin_shutdown = live.end_streams
    outer.release = nonces.close  # after the last request: the nonce database's connection
    outer.admission = queue
    return outer
