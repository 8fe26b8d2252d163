"""Request size and rate limits, as one ASGI middleware in front of the app, so one client cannot
starve the rest.

* **Size:** a body over the limit for its path (``/v1/tx``: 8 MiB, which holds a batch of the
  ledger's largest transaction with room; elsewhere 64 KiB) gets 413 before the app reads it,
  whether it announces its length or streams it in chunks.
* **Rate:** a token bucket per client address: ``rate`` requests per second sustained, ``burst``
  at once. An empty bucket answers 429 with ``Retry-After``.
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
