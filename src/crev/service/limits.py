"""Request size and rate limits, as one ASGI middleware in front of the app, so one client cannot
starve the rest.

* **Size:** a body over the limit for its path (``/v1/tx``: 8 MiB, which holds a batch of the
  ledger's largest transaction with room; elsewhere 64 KiB) gets 413 before the app reads it,
  whether it announces its length or streams it in chunks.
* **Rate:** a token bucket per client address: ``rate`` requests per second sustained, ``burst``
  at once. An empty bucket answers 429 with ``Retry-After``. The address is the TCP peer's; the
  server rewrites it from ``X-Forwarded-For`` only for the proxies it was told to trust
  (``crev serve --trusted-proxy``), so a client cannot pick its own bucket.

Two more limits are applied by the ``POST /v1/tx`` route with the objects below:

* **Back-pressure** (``Admission``): a transaction the node is predicted not to answer within
  ``budget_s`` (the bytes waiting ahead of it and its own, at the node's measured rate) gets 503
  with ``Retry-After``, so what is admitted keeps its latency instead of everyone queueing; so
  does any while the oldest one waiting has waited past ``max_wait_s``, or past ``max_bytes``
  waiting.
* **Refused work is charged to its sender** (``TokenBuckets`` of refused readings per address):
  each reading the ledger refuses (a bad signature, a rule) costs its sender a token; an address
  whose bucket is empty gets 429 on ``POST /v1/tx`` until it refills, so one client's forged
  batches cannot take the node's verification time from honest gateways.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TX_BODY_LIMIT = 8 * 1024 * 1024
BODY_LIMIT = 64 * 1024


def body_limit(path: str) -> int:
    return TX_BODY_LIMIT if path == "/v1/tx" else BODY_LIMIT


class TokenBuckets:
    """Per-key token buckets; ``clock`` is injectable for tests."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst ≥ 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._b: dict[str, tuple[float, float]] = {}  # key → (tokens, time)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token; returns 0 if granted, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._b.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                if len(self._b) >= self.max_keys and key not in self._b:
                    self._b.clear()  # forget idle clients rather than grow without bound
                self._b[key] = (tokens - 1, now)
                return 0.0
            self._b[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def debit(self, key: str, cost: float) -> None:
        """Take ``cost`` tokens after the fact (work already done); the bucket may go as far as
        ``burst`` below zero, which its owner then waits off."""
        if cost <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, last = self._b.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if len(self._b) >= self.max_keys and key not in self._b:
                self._b.clear()
            self._b[key] = (max(-float(self.burst), tokens - cost), now)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token again (0 if it has one), taking nothing."""
        now = self.clock()
        with self._lock:
            tokens, last = self._b.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate


class Admission:
    """Back-pressure for submissions: a new transaction is admitted only if the node is predicted
    to answer it within ``budget_s``. The prediction is the bytes already waiting plus its own,
    divided by the node's measured service rate (bytes of transactions answered per second of
    time the node had work; transactions are priced by their size, which is what a batch's
    verification and apply time follow). Past it, 503 with ``Retry-After`` (the seconds until the
    queue has drained enough). So what is admitted keeps its latency, and the queue still holds
    ``budget_s`` of work, so the node never idles while clients are being turned away.

    Two rules back it up: while the oldest transaction waiting has waited longer than
    ``max_wait_s`` (the node slowed down more than the rate says: a checkpoint, another process),
    new ones are turned away too (as CoDel does for packets); and the bytes waiting never pass
    ``max_bytes``. A transaction alone in the queue is always admitted (a batch bigger than the
    budget must still be able to get in). Until the node has been busy for ``warmup_s`` its
    measured rate rests on too few answers (a few tiny refused bodies would make it near 0), and
    the prediction uses that rate but no less than ``initial_rate`` [bytes/s], about a quarter of
    what a node on a 2-core machine answers at. (With the two rules alone during the warm-up, a
    server started into an overload let in a whole second of it before its first answer —
    measured: 19 batches of 500 readings, answered after 3.1–3.9 s, the p99 of everything
    admitted; docs/benchmarks.md.) The first answers' rate is an underestimate (their wait for a
    block counts as busy time), which errs on the side of latency.

    ``clock`` is injectable for tests."""

    def __init__(self, budget_s: float = 0.4, max_wait_s: float = 1.0, max_bytes: int = 64 * 1024 * 1024,
                 clock: Callable[[], float] = time.monotonic, window_s: float = 10.0,
                 warmup_s: float = 1.0, initial_rate: float = 100_000.0) -> None:
        if budget_s <= 0 or max_wait_s <= 0 or window_s <= 0 or initial_rate <= 0:
            raise ValueError("budget_s, max_wait_s, window_s and initial_rate must be > 0")
        self.budget_s = budget_s
        self.max_wait_s = max_wait_s
        self.max_bytes = max_bytes
        self.clock = clock
        self.window_s = window_s
        self.warmup_s = warmup_s
        self.initial_rate = initial_rate
        self.pending_bytes = 0
        self.refused = 0
        self._pending: dict[int, tuple[float, int]] = {}  # ticket → (admitted at, bytes); oldest first
        self._next = 0
        self._lock = threading.Lock()
        # the service rate: bytes answered and busy seconds, both decayed with time constant window_s
        self._done_bytes = 0.0
        self._busy_s = 0.0
        self._seen_busy_s = 0.0  # busy seconds ever (not decayed): the warm-up
        self._last = clock()

    def _advance(self, now: float) -> None:
        """Account the time since the last event (caller holds the lock): busy if work waited."""
        dt = max(0.0, now - self._last)
        self._last = now
        if dt == 0.0:
            return
        keep = math.exp(-dt / self.window_s)
        self._done_bytes *= keep
        self._busy_s *= keep
        if self._pending:
            # busy time decays over the interval too: ∫ e^{-(dt-t)/τ} dt = τ (1 - e^{-dt/τ})
            self._busy_s += self.window_s * (1 - keep)
            self._seen_busy_s += dt

    def rate(self) -> float:
        """The node's measured service rate [bytes/s]; 0 while warming up."""
        with self._lock:
            return self._rate()

    def _rate(self) -> float:
        if self._seen_busy_s < self.warmup_s or self._busy_s <= 0:
            return 0.0
        return self._done_bytes / self._busy_s

    def admit(self, nbytes: int) -> tuple[int, float]:
        """(ticket, 0.0) if admitted — hand the ticket to ``release`` when it is answered — else
        (-1, seconds to wait before retrying)."""
        now = self.clock()
        with self._lock:
            self._advance(now)
            if self._pending:
                oldest = now - next(iter(self._pending.values()))[0]
                rate = self._rate()
                ahead = self.pending_bytes + nbytes
                retry = 0.0
                if rate <= 0:  # warming up: what was measured so far, but no less than initial_rate
                    rate = max(self.initial_rate, self._done_bytes / self._busy_s if self._busy_s > 0 else 0.0)
                if oldest > self.max_wait_s:
                    retry = max(oldest, self.max_wait_s)
                elif ahead > self.max_bytes:
                    retry = self.max_wait_s
                elif ahead / rate > self.budget_s:
                    retry = (ahead - rate * self.budget_s) / rate
                if retry > 0:
                    self.refused += 1
                    return -1, retry
            self._next += 1
            self._pending[self._next] = (now, nbytes)
            self.pending_bytes += nbytes
            return self._next, 0.0

    def release(self, ticket: int) -> None:
        with self._lock:
            self._advance(self.clock())
            item = self._pending.pop(ticket, None)
            if item is not None:
                self.pending_bytes -= item[1]
                self._done_bytes += item[1]

    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)


async def _error(send: Send, status: int, code: str, field: str, reason: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": {"code": code, "field": field, "reason": reason}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class HeadDone(Exception):
    """A HEAD request's answer is complete: stop the streaming GET behind it."""


class TooLarge(Exception):
    """Raised to the app when it reads a body past the limit. The app answers it with 413 (an
    exception that reached Starlette's error middleware would be answered 500 first)."""

    def __init__(self, limit: int, path: str) -> None:
        super().__init__(f"more than {limit} bytes for {path}")


class Limits:
    def __init__(self, app: ASGIApp, buckets: TokenBuckets | None) -> None:
        self.app = app
        self.buckets = buckets
        self.begin_shutdown: Callable[[], None] = lambda: None  # set by create_app: ends the streams
        self.release: Callable[[], None] = lambda: None  # set by create_app: closes what the app holds open
        self.admission: Admission | None = None  # set by create_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":  # a GET whose body is not sent (RFC 9110 §9.3.2)
            scope = {**scope, "method": "GET"}
            inner = send

            async def send(msg: Message) -> None:
                if msg["type"] == "http.response.body":
                    await inner({"type": "http.response.body", "body": b""})
                    if msg.get("more_body"):
                        raise HeadDone  # a stream (SSE): the headers were the answer
                    return
                await inner(msg)
        if self.buckets is not None:
            client = scope.get("client")
            wait = self.buckets.take(client[0] if client else "?")
            if wait > 0:
                await _error(send, 429, "rate_limited", "client",
                             f"too many requests from this address; retry in {wait:.2f} s",
                             [(b"retry-after", str(max(1, math.ceil(wait))).encode())])
                return
        limit = body_limit(scope["path"])
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    await _error(send, 400, "malformed", "Content-Length", "not an integer")
                    return
                if n > limit:
                    await _error(send, 413, "too_large", "body", f"{n} bytes exceeds the limit of {limit} "
                                                                 f"for {scope['path']}")
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise TooLarge(limit, scope["path"])
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, tracking_send)
        except HeadDone:
            pass
        except TooLarge as exc:
            if not started:
                await _error(send, 413, "too_large", "body", str(exc))
