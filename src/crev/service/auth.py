"""Signed requests for an account's private data (docs/api.md, "Private endpoints").

The service stores no passwords: a request proves it comes from an account by an Ed25519
signature with the account's current ledger key over

    crev-request/1 \\n METHOD \\n path-and-query \\n time \\n nonce \\n hex SHA-256(body)

The time must be within ``MAX_SKEW`` seconds of the server's clock and a nonce is accepted once
within ``NONCE_TTL`` seconds, so a captured request cannot be replayed. ``check`` is pure apart
from the nonce memory it is given; ``sign_request`` builds the headers for clients and tests.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict

from crev.core.hashing import sha256
from crev.core.signing import Signer, verify
from crev.errors import ConflictError, PermissionError_, SignatureError
from crev.ledger.state import State

VERSION = "crev-request/1"
MAX_SKEW = 300
NONCE_TTL = 600
NONCE_RE = re.compile(r"^[0-9a-f]{16,64}$")
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
    """Nonces seen in the last ``NONCE_TTL`` seconds (bounded; oldest forgotten first)."""

    def __init__(self, limit: int = 200_000) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self.limit = limit

    def claim(self, key: str, now: int) -> bool:
        """False if ``key`` was claimed within the TTL."""
        with self._lock:
            while self._seen:
                _, t = next(iter(self._seen.items()))
                if t > now - NONCE_TTL and len(self._seen) < self.limit:
                    break
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


def check(state: State, headers: dict[str, str], method: str, target: str, body: bytes, now: int,
          nonces: Nonces, account_id: str) -> None:
    """Raise unless the request is signed by ``account_id``'s current key (or the operator's).
    ``headers`` are looked up case-insensitively by the caller (keys as in ``HEADERS``)."""
    missing = [h for h in HEADERS if not headers.get(h)]
    if missing:
        raise SignatureError(missing[0], f"private data: sign the request (headers {', '.join(HEADERS)}; "
                                         f"docs/api.md)")
    who = headers["X-Crev-Account"]
    if who != account_id and who != state.operator_id:
        raise PermissionError_("X-Crev-Account", f"{who!r} may not read {account_id!r}'s private data")
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
    if not NONCE_RE.match(nonce):
        raise SignatureError("X-Crev-Nonce", "must be 16-64 lowercase hex characters")
    try:
        sig = bytes.fromhex(headers["X-Crev-Signature"])
    except ValueError:
        raise SignatureError("X-Crev-Signature", "must be hex") from None
    if not acct.public_key or not verify(acct.public_key, request_bytes(method, target, t, nonce, body), sig):
        raise SignatureError("X-Crev-Signature", f"does not verify with {who!r}'s current key")
    if not nonces.claim(f"{who}/{nonce}", now):
        raise ConflictError("X-Crev-Nonce", "this nonce was already used: a replayed request")
