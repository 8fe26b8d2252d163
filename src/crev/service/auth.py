"""Signed requests for an account's private data (docs/api.md, "Private endpoints").

The service stores no passwords: a request proves it comes from an account by an Ed25519
signature with the account's current ledger key over

    crev-request/1 \\n METHOD \\n path-and-query \\n time \\n nonce \\n hex SHA-256(body)

The time must be within ``MAX_SKEW`` seconds of the server's clock and a nonce is accepted once
while that time is within the window, so a captured request cannot be replayed: the used nonces
are kept on disk (``Nonces``, ``api-nonces.sqlite`` in the node's data directory), so not after a
restart either. ``check`` (private endpoints) and ``reader`` (public endpoints whose answers
hold private fields, docs/api.md "What is public") are pure apart from the nonces they are
given; ``sign_request`` builds the headers for clients and tests.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crev.core.hashing import sha256
from crev.core.signing import Signer, verify
from crev.errors import ConflictError, PermissionError_, SignatureError
from crev.ledger.state import State

VERSION = "crev-request/1"
MAX_SKEW = 300
NONCE_FILE = "api-nonces.sqlite"  # in the node's data directory
NONCE_RE = re.compile(r"[0-9a-f]{16,64}")  # always used with fullmatch (no "\n" before "$")
HEADERS = ("X-Crev-Account", "X-Crev-Time", "X-Crev-Nonce", "X-Crev-Signature")


def request_bytes(method: str, target: str, time: int, nonce: str, body: bytes) -> bytes:
    return f"{VERSION}\n{method.upper()}\n{target}\n{time}\n{nonce}\n{sha256(body).hex()}".encode()


def sign_request(signer: Signer, account: str, method: str, target: str, now: int, body: bytes = b"",
                 nonce: str | None = None) -> dict[str, str]:
    """The four headers that make a request to ``target`` (path and query, as sent) private to
    ``account``."""
    nonce = nonce or secrets.token_hex(16)
    sig = signer.sign(request_bytes(method, target, now, nonce, body))
    return {"X-Crev-Account": account, "X-Crev-Time": str(now), "X-Crev-Nonce": nonce,
            "X-Crev-Signature": sig.hex()}


class Nonces:
    """The request nonces used within their time window, kept in SQLite so that a restart of the
    service forgets none of them (a captured request could otherwise be replayed after
    ``crev serve`` restarts, as long as its time is within ``MAX_SKEW``).

    One table ``used (account, nonce, expires_at)``, primary key (account, nonce): claiming is an
    INSERT, and one that conflicts is a replay. A row lives until ``expires_at`` = the request's
    own time + ``MAX_SKEW``, the last second at which the time check still lets that request in;
    rows past it are deleted in the same transaction as each claim, so the file holds at most a
    window's worth of requests (only requests whose signature verified get this far).

    **Durability.** ``journal_mode=WAL`` with ``synchronous=FULL``: the WAL is fsynced at every
    commit, so a claim is on disk before the answer is sent and survives a crash of the process,
    of the operating system and a power cut. ``NORMAL`` would survive a crash of the process only
    (WAL mode then fsyncs at checkpoints, not commits): a machine that loses power and comes back
    within ``MAX_SKEW`` could forget the last claims and accept their replays. One fsync per signed
    request is cheap next to the Ed25519 check, and signed requests are a small share of the
    traffic; the node's own blocks are written the same way (node/store.py).

    **Threads.** Routes run in a thread pool: one connection, used under a lock, so claims are
    serialised (SQLite's busy timeout covers another process on the same file).

    ``path`` None keeps the table in memory (tests, tools that never restart).
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:" if self.path is None else str(self.path), isolation_level=None,
                                   check_same_thread=False, timeout=30)
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS used (account TEXT NOT NULL, nonce TEXT NOT NULL, "
                         "expires_at INTEGER NOT NULL, PRIMARY KEY (account, nonce)) WITHOUT ROWID")
        self._db.execute("CREATE INDEX IF NOT EXISTS used_by_expiry ON used (expires_at)")

    def claim(self, account: str, nonce: str, expires_at: int, now: int) -> bool:
        """Record ``account``'s ``nonce`` until ``expires_at`` (unix s, inclusive); False if it is
        already recorded and not yet expired: a replay. Durable when it returns True."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM used WHERE expires_at < ?", (now,))
                self._db.execute("INSERT INTO used (account, nonce, expires_at) VALUES (?, ?, ?)",
                                 (account, nonce, expires_at))
            except sqlite3.IntegrityError:
                self._db.execute("COMMIT")  # the pruning stands; the nonce was taken
                return False
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return True

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM used").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(frozen=True)
class Signed:
    """A request whose signature, time and nonce were checked: signed by ``account`` (the
    operator if ``operator``) at ``time``, with ``nonce`` (not yet claimed)."""

    account: str
    operator: bool
    time: int
    nonce: str

    def may_read(self, account_id: str) -> bool:
        """Whether this request may see ``account_id``'s private data."""
        return self.operator or self.account == account_id


def verify_request(state: State, headers: Mapping[str, str], method: str, target: str, body: bytes,
                   now: int) -> Signed:
    """Check the four headers (present, a participant with a current key, time within
    ``MAX_SKEW``, nonce shape, signature) and say who signed; the nonce is not claimed here."""
    missing = [h for h in HEADERS if not headers.get(h)]
    if missing:
        raise SignatureError(missing[0], f"private data: sign the request (headers {', '.join(HEADERS)}; "
                                         f"docs/api.md)")
    who = headers["X-Crev-Account"]
    acct = state.accounts.get(who)
    if acct is None:
        raise SignatureError("X-Crev-Account", f"no participant {who!r}")
    try:
        t = int(headers["X-Crev-Time"])
    except ValueError:
        raise SignatureError("X-Crev-Time", "must be unix seconds") from None
    if abs(t - now) > MAX_SKEW:
        raise SignatureError("X-Crev-Time", f"{t} is more than {MAX_SKEW} s from the server's clock ({now})")
    nonce = headers["X-Crev-Nonce"]
    if not NONCE_RE.fullmatch(nonce):
        raise SignatureError("X-Crev-Nonce", "must be 16-64 lowercase hex characters")
    try:
        sig = bytes.fromhex(headers["X-Crev-Signature"])
    except ValueError:
        raise SignatureError("X-Crev-Signature", "must be hex") from None
    if not acct.public_key or not verify(acct.public_key, request_bytes(method, target, t, nonce, body), sig):
        raise SignatureError("X-Crev-Signature", f"does not verify with {who!r}'s current key")
    return Signed(who, who == state.operator_id, t, nonce)


def claim(signed: Signed, nonces: Nonces, now: int) -> None:
    """Use up the request's nonce (durably) or raise ``ConflictError``: a replay."""
    if not nonces.claim(signed.account, signed.nonce, signed.time + MAX_SKEW, now):
        raise ConflictError("X-Crev-Nonce", "this nonce was already used: a replayed request")


def permitted(state: State, headers: Mapping[str, str], method: str, target: str, body: bytes, now: int,
              account_id: str) -> Signed:
    """The checked signer, if the request is signed by ``account_id``'s current key (or the
    operator's); raises otherwise. The nonce is not claimed: do that with ``claim`` after letting
    go of the state (the claim waits for an fsync). ``headers`` are looked up case-insensitively by
    the caller (keys as in ``HEADERS``)."""
    who = headers.get("X-Crev-Account")
    if who and all(headers.get(h) for h in HEADERS) and who != account_id and who != state.operator_id:
        raise PermissionError_("X-Crev-Account", f"{who!r} may not read {account_id!r}'s private data")
    return verify_request(state, headers, method, target, body, now)


def check(state: State, headers: Mapping[str, str], method: str, target: str, body: bytes, now: int,
          nonces: Nonces, account_id: str) -> None:
    """``permitted``, then the nonce claimed: raise unless the request may read ``account_id``'s data."""
    claim(permitted(state, headers, method, target, body, now, account_id), nonces, now)


def request_target(scope: Mapping[str, Any]) -> str:
    """The path and query as the client sent them (what it signed), from an ASGI scope."""
    target = bytes(scope.get("raw_path") or str(scope.get("path", "")).encode()).decode("latin-1")
    if scope.get("query_string"):
        target += "?" + bytes(scope["query_string"]).decode("latin-1")
    return target


def reader(state: Callable[[], AbstractContextManager[State]], headers: Mapping[str, str], method: str,
           target: str, now: int, nonces: Nonces) -> Signed | None:
    """Who reads, for a public endpoint whose answer holds private fields (docs/api.md, "What is
    public"): None for an unsigned request (none of the four headers); else the checked signer,
    its nonce claimed, or the error of a private endpoint (401, or 409 for a replay). ``state``
    is entered only for the check, so the nonce's fsync does not hold the node's lock."""
    if not any(headers.get(h) for h in HEADERS):
        return None
    with state() as st:
        signed = verify_request(st, headers, method, target, b"", now)
    claim(signed, nonces, now)
    return signed
