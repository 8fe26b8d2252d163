"""The connection guard: what a client may hold open, and for how long, before the app sees it.

uvicorn's HTTP/1.1 protocol (h11) waits forever for a request's headers and body, and accepts
every connection the kernel hands it. A client trickling bytes (slowloris) or opening idle
connections could therefore hold every file descriptor of the process. ``guarded_protocol`` wraps
the protocol with four rules, all measured from the server's clock:

* **Connections per address** (``max_per_address``) and **in total** (``max_connections``, by
  default below the process's open-file limit): a connection past either cap is answered
  ``503 too_many_connections`` and closed at once.
* **Headers in time:** a request's headers must be complete ``header_timeout_s`` after the
  connection opens or after the first byte of a later request on a kept-alive connection;
  else ``408`` and close. (An idle kept-alive connection is closed by uvicorn's own
  ``timeout_keep_alive``.)
* **Prompt ACKs:** while a request is incomplete, each read is acknowledged at once
  (TCP_QUICKACK), so a client whose Nagle holds back a body until its head is acknowledged is
  not made to wait for the delayed-ACK timer (44 ms a request on a kept-alive connection).
* **Body in time:** the body must arrive within ``body_timeout_s`` plus one second per
  ``min_body_rate`` bytes received so far; a trickle falls behind and is answered ``408`` (or
  cut, if the app has already answered).

The answers are in the API's one JSON error shape. ``ConnectionGuard.stats()`` counts what was
refused, for tests and the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import get_remote_addr

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def default_max_connections(reserve: int = 128, ceiling: int = 4096) -> int:
    """Connections the process can hold and still open its database, worker pipes and files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return ceiling
    return max(16, min(ceiling, soft - reserve))


@dataclass
class ConnectionGuard:
    max_connections: int = field(default_factory=default_max_connections)
    max_per_address: int = 64
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    min_body_rate: float = 64 * 1024  # bytes per second a body must average after the grace time
    _open: Counter[str] = field(default_factory=Counter)
    _refused: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, address: str) -> str:
        """Count a new connection from ``address``; "" if admitted, else why not."""
        with self._lock:
            if sum(self._open.values()) >= self.max_connections:
                self._refused["total"] += 1
                return f"the server holds its maximum of {self.max_connections} connections"
            if self._open[address] >= self.max_per_address:
                self._refused["per_address"] += 1
                return f"this address holds its maximum of {self.max_per_address} connections"
            self._open[address] += 1
            return ""

    def release(self, address: str) -> None:
        with self._lock:
            self._open[address] -= 1
            if self._open[address] <= 0:
                del self._open[address]

    def timed_out(self, what: str) -> None:
        with self._lock:
            self._refused[what] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"open": sum(self._open.values()), **self._refused}


def _raw_error(status: int, phrase: str, code: str, field_: str, reason: str) -> bytes:
    body = json.dumps({"error": {"code": code, "field": field_, "reason": reason}}).encode()
    return (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


def guarded_protocol(guard: ConnectionGuard) -> type[H11Protocol]:
    """uvicorn's h11 protocol with ``guard``'s caps and timeouts (pass as ``Config(http=...)``)."""

    class GuardedH11Protocol(H11Protocol):
        _address: str | None = None
        _timer: asyncio.TimerHandle | None = None
        _phase = ""  # "headers" | "body" | "" (the app has the request, or nothing arrived yet)
        _body_started = 0.0
        _body_bytes = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = get_remote_addr(transport)  # type: ignore[arg-type]
            address = peer[0] if peer else "?"
            why = guard.admit(address)
            if why:
                transport.write(_raw_error(503, "Service Unavailable", "too_many_connections", "connection",  # type: ignore[attr-defined]
                                           f"{why}; close idle connections or retry later"))
                transport.close()
                return
            self._address = address
            super().connection_made(transport)  # type: ignore[arg-type]
            self._expect_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._address is None:  # refused in connection_made: nothing was set up
                return
            guard.release(self._address)
            self._address = None
            self._cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._phase == "" and self.conn.their_state is h11.IDLE:
                self._expect_headers()  # the first byte of a request on a kept-alive connection
            super().data_received(data)
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                if self._phase != "body":
                    self._phase = "body"
                    self._body_started = self.loop.time()
                    self._body_bytes = 0
                self._body_bytes += len(data)
                self._arm(self._body_started + guard.body_timeout_s + self._body_bytes / guard.min_body_rate
                          - self.loop.time())
            elif state is not h11.IDLE:  # the request is whole: the app has it now
                self._phase = ""
                self._cancel()
            if self._phase:  # more of the request is due: acknowledge what came at once
                self._quickack()

        def on_response_complete(self) -> None:
            self._phase = ""
            self._cancel()
            super().on_response_complete()

        def _quickack(self) -> None:
            """ACK now, not after the kernel's delayed-ACK timer (~40 ms): a client without
            TCP_NODELAY that writes a request's head and body apart (http.client does for a
            streamed body, many gateways do) holds the body back until its head is
            acknowledged (Nagle), and a kept-alive connection's ACKs are delayed. Linux only;
            the kernel clears the flag again by itself, so it is set after every read."""
            sock = self.transport.get_extra_info("socket")
            if sock is not None and _QUICKACK is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

        # --- timers ----------------------------------------------------------------------------

        def _expect_headers(self) -> None:
            self._phase = "headers"
            self._arm(guard.header_timeout_s)

        def _arm(self, seconds: float) -> None:
            self._cancel()
            self._timer = self.loop.call_later(max(0.0, seconds), self._expire)

        def _cancel(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expire(self) -> None:
            self._timer = None
            if self.transport.is_closing() or self._phase == "":
                return
            what = self._phase
            guard.timed_out(f"{what}_timeout")
            started = self.cycle is not None and self.cycle.response_started
            if not started and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                limit = (f"{guard.header_timeout_s:g} s" if what == "headers" else
                         f"{guard.body_timeout_s:g} s plus 1 s per {guard.min_body_rate:,.0f} bytes")
                self.transport.write(_raw_error(408, "Request Timeout", "timeout", what,
                                                f"the request's {what} did not arrive within {limit}"))
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True  # the app's receive() answers http.disconnect
                self.cycle.message_event.set()
            self.transport.close()

    return GuardedH11Protocol

