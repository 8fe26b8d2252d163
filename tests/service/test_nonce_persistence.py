"""Signed private requests cannot be replayed after the service restarts (docs/api.md, "Private
endpoints"): the used nonces live in ``api-nonces.sqlite`` in the node's data directory for their
time window, written durably before the answer is sent.

Over a real socket: a signed balance read gets 200; the service and its node are stopped and
started again over the same data directory (a new ``create_app``, a new ``Nonces``) and the very
same headers get 409. With the clock moved past the request's window, its row is pruned and the
same headers are refused by the time check (401), never accepted.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crev.node.node import Node
from crev.service import auth
from crev.service.auth import MAX_SKEW, NONCE_FILE, Nonces, sign_request
from crev.service.server import Background, serve_in_thread
from tests.node import nodekit as k
from tests.service.apikit import get_json

PATH = f"/v1/accounts/{k.OWNER}"


def get(server: Background, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    return get_json(server.port, path, headers)


class Service:
    """A node and its API over ``d``, with the API's clock in ``now`` (stop and start again at will)."""

    def __init__(self, d: Path, now: list[float]) -> None:
        self.d, self.now = d, now
        self.node: Node | None = None
        self.server: Background | None = None

    def start(self) -> Background:
        self.node = k.open_node(self.d)
        self.server = serve_in_thread(self.node, "127.0.0.1", 0, rate=0, clock=lambda: self.now[0])
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.node is not None:
            self.node.close()
        self.server = self.node = None


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Path]:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    try:
        k.register_fleet(node, 1)
    finally:
        node.close()
    yield d


def test_a_signed_request_replayed_after_a_restart_is_409(ledger: Path) -> None:
    now = [float(int(time.time()))]
    svc = Service(ledger, now)
    headers = sign_request(k.key(k.OWNER), k.OWNER, "GET", PATH, int(now[0]), nonce="cd" * 16)
    try:
        status, acct = get(svc.start(), PATH, headers)
        assert status == 200 and acct["account_id"] == k.OWNER
    finally:
        svc.stop()
    now[0] += 60  # still inside the request's window
    try:
        server = svc.start()
        status, payload = get(server, PATH, headers)
        assert status == 409, payload
        assert payload["error"]["code"] == "conflict" and payload["error"]["field"] == "X-Crev-Nonce"
        # a fresh request of the same account is answered as before
        fresh = sign_request(k.key(k.OWNER), k.OWNER, "GET", PATH, int(now[0]))
        assert get(server, PATH, fresh)[0] == 200
    finally:
        svc.stop()
    assert (ledger / NONCE_FILE).exists()


def test_an_expired_nonce_is_pruned_and_its_request_refused_by_the_time_check(ledger: Path) -> None:
    t0 = int(time.time())
    now = [float(t0)]
    svc = Service(ledger, now)
    old = sign_request(k.key(k.OWNER), k.OWNER, "GET", PATH, t0, nonce="ef" * 16)
    try:
        server = svc.start()
        assert get(server, PATH, old)[0] == 200
        now[0] = t0 + MAX_SKEW  # the last second of its window: still a replay
        assert get(server, PATH, old)[0] == 409
    finally:
        svc.stop()
    now[0] = t0 + MAX_SKEW + 1  # past the window, and restarted
    try:
        server = svc.start()
        fresh = sign_request(k.key(k.OWNER), k.OWNER, "GET", PATH, int(now[0]))
        assert get(server, PATH, fresh)[0] == 200  # a claim prunes what expired
        with sqlite3.connect(ledger / NONCE_FILE) as db:
            rows = db.execute("SELECT account, nonce, expires_at FROM used ORDER BY expires_at").fetchall()
        assert rows == [(k.OWNER, fresh["X-Crev-Nonce"], int(now[0]) + MAX_SKEW)]
        status, payload = get(server, PATH, old)
        assert status == 401 and payload["error"]["field"] == "X-Crev-Time", payload
    finally:
        svc.stop()


def test_the_nonce_file_is_wal_with_full_sync(tmp_path: Path) -> None:
    n = Nonces(tmp_path / NONCE_FILE)
    try:
        assert n.claim("a", "00" * 8, 100, 0)
        assert n._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert n._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        n.close()


def test_one_nonce_is_claimed_once_whatever_the_threads(tmp_path: Path) -> None:
    n = Nonces(tmp_path / NONCE_FILE)
    other = Nonces(tmp_path / NONCE_FILE)  # a second app over the same data directory
    won: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def run(i: int) -> None:
        start.wait()
        got = [(n if i % 2 else other).claim("acct", "ab" * 8, 1_000, 10), n.claim("acct", f"{i:016x}", 1_000, 10)]
        with lock:
            won.extend(got[:1])
            assert got[1]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert won.count(True) == 1 and len(won) == 32
        assert len(n) == 33
        # the same nonce of another account is another nonce
        assert n.claim("other", "ab" * 8, 1_000, 10)
        # after expires_at (inclusive) the row is pruned and the nonce may be claimed again
        assert not n.claim("acct", "ab" * 8, 2_000, 1_000)
        assert n.claim("acct", "ab" * 8, 2_000, 1_001)
        assert len(n) == 1
    finally:
        n.close()
        other.close()


def test_a_claim_survives_the_process_being_killed_right_after(tmp_path: Path) -> None:
    path = tmp_path / NONCE_FILE
    code = ("import os, signal, sys\n"
            "from crev.service.auth import Nonces\n"
            f"n = Nonces({str(path)!r})\n"
            "assert n.claim('acct', '12' * 8, 10**12, 0)\n"
            "sys.stdout.write('claimed'); sys.stdout.flush()\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout == "claimed" and res.returncode == -9, (res.returncode, res.stderr)
    n = Nonces(path)
    try:
        assert not n.claim("acct", "12" * 8, 10**12, 1)
    finally:
        n.close()


def test_check_claims_only_a_verified_request(tmp_path: Path) -> None:
    node = k.open_node(k.init_dir(tmp_path / "ledger"))
    n = Nonces(tmp_path / NONCE_FILE)
    try:
        k.register_fleet(node, 1)
        t = int(time.time())
        forged = sign_request(k.key("mallory"), k.OWNER, "GET", PATH, t)
        with pytest.raises(auth.SignatureError):
            auth.check(node.state, forged, "GET", PATH, b"", t, n, k.OWNER)
        assert len(n) == 0  # a forged request leaves nothing behind
        good = sign_request(k.key(k.OWNER), k.OWNER, "GET", PATH, t)
        auth.check(node.state, good, "GET", PATH, b"", t, n, k.OWNER)
        with pytest.raises(auth.ConflictError):
            auth.check(node.state, good, "GET", PATH, b"", t, n, k.OWNER)
        assert len(n) == 1
    finally:
        n.close()
        node.close()


def open_fds_to(path: Path) -> int:
    """How many of this process's file descriptors point at ``path``."""
    n = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            n += Path(fd).readlink() == path
        except OSError:
            continue
    return n


def test_stopping_the_service_closes_the_nonce_database(tmp_path: Path) -> None:
    """The API holds the nonce database open while it serves and closes it when it stops, so a
    long-lived process that starts and stops the API (tests, the demo) does not leak it."""
    d = k.init_dir(tmp_path / "ledger")
    svc = Service(d, [time.time()])
    svc.start()
    db = (d / NONCE_FILE).resolve()
    try:
        assert open_fds_to(db) == 1
    finally:
        svc.stop()
    assert open_fds_to(db) == 0
