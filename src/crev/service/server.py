"""Running the API: ``serve`` blocks (``crev serve``); ``serve_in_thread`` runs it beside other
work (``crev demo`` keeps simulating while it serves); ``serve_member`` serves one consortium
member's ledger (``crev consortium up`` runs it as its own process:
``python -m crev.service.server ROOT --member NAME --port 8000``).

The server is uvicorn with the connection guard of ``guard.py`` (caps per address and in total,
header and body timeouts), forwarded headers trusted only from ``trusted_proxies`` (none by
default: the rate limits key on the TCP peer), TCP_NODELAY on the listening socket, and a
graceful shutdown that first ends the live streams, then lets requests in flight finish for up to
``GRACEFUL_S`` (a transaction being committed gets its receipt; one still waiting after that gets
503 ``shutting_down`` naming where to check it).
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from crev.audit.consortium import Consortium as AuditConsortium
from crev.audit.consortium import RpcSource, home_settings, member_home
from crev.consortium.member import MemberLedger, member_ledger
from crev.service.app import create_app
from crev.service.guard import ConnectionGuard, guarded_protocol
from crev.service.live import Ledger

GRACEFUL_S = 30  # how long a shutdown waits for requests in flight (a 20,000-reading batch takes ~3 s)
KEEP_ALIVE_S = 5  # an idle kept-alive connection is closed after this long


class CrevServer(uvicorn.Server):
    """uvicorn's server, telling the app when a shutdown begins so open streams end at once."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        begin = getattr(app, "begin_shutdown", None)
        if callable(begin):
            begin()
        await super().shutdown(sockets)
        release = getattr(app, "release", None)
        if callable(release):
            release()


def _server(node: Ledger, host: str, port: int, *, guard: ConnectionGuard | None = None,
            trusted_proxies: Sequence[str] = (), **kw: Any) -> uvicorn.Server:
    if not kw.get("public_url") and port:
        # QR codes and certificates link here, never to whatever Host header a client sent
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        kw["public_url"] = f"http://{shown}:{port}"
    config = uvicorn.Config(create_app(node, **kw), host=host, port=port, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=GRACEFUL_S,
                            timeout_keep_alive=KEEP_ALIVE_S, http=guarded_protocol(guard or ConnectionGuard()),
                            proxy_headers=bool(trusted_proxies),
                            forwarded_allow_ips=list(trusted_proxies) if trusted_proxies else None)
    return CrevServer(config)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts (raises OSError: port in use)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # answers leave at once, never held back for a delayed ACK (accepted sockets inherit it)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve(node: Ledger, sock: socket.socket, **kw: Any) -> None:
    """Serve on ``sock`` (from ``bind``) until interrupted (Ctrl-C or SIGTERM)."""
    host, port = sock.getsockname()[:2]
    _server(node, host, port, **kw).run(sockets=[sock])


class Background:
    """The API on a daemon thread; ``stop()`` shuts it down gracefully."""

    def __init__(self, node: Ledger, host: str, port: int, **kw: Any) -> None:
        self.server = _server(node, host, port, **kw)
        self.thread = threading.Thread(target=self.server.run, name="crev-api", daemon=True)

    def start(self, timeout: float = 15.0) -> Background:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError("the API server did not start (is the port in use?)")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(node: Ledger, host: str = "127.0.0.1", port: int = 8000, **kw: Any) -> Background:
    return Background(node, host, port, **kw).start()


def serve_member(root: Path, member: str | None, sock: socket.socket, **kw: Any) -> None:
    """Serve the API and dashboard over consortium member ``member`` (default: the first) of the
    localnet at ``root``: reads from its crev data directory, submissions through its CometBFT,
    ``/v1/consortium`` from every member's RPC. Runs until SIGTERM or Ctrl-C."""
    with member_ledger(root, member) as ledger:
        serve(ledger, sock, **member_kw(ledger), **kw)


def member_kw(ledger: MemberLedger) -> dict[str, Any]:
    """``create_app``'s settings for a member's ledger: the consortium's view, the CometBFT proofs
    ``/v1/trace`` carries (from the member's CometBFT home and RPC), request nonces beside its
    data directory (never in it: its crev app owns that)."""
    api_dir = ledger.data_dir.parent / "api"
    api_dir.mkdir(exist_ok=True)
    home = member_home(ledger.data_dir)
    proofs = None
    if home is not None:
        doc, _ = home_settings(home)
        proofs = AuditConsortium(doc, RpcSource(ledger.rpc.url), ledger.genesis)
    return {"consortium": ledger.consortium, "proofs": proofs, "nonce_file": api_dir / "nonces.sqlite"}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Serve the API and dashboard over one consortium member's ledger.")
    ap.add_argument("root", type=Path, help="the localnet (crev consortium init ROOT)")
    ap.add_argument("--member", default=None, help="whose node (default: the first member)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    a = ap.parse_args(argv)
    try:
        sock = bind(a.host, a.port)
    except OSError as err:
        sys.exit(f"cannot listen on {a.host}:{a.port}: {err.strerror or err}")

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        serve_member(a.root, a.member, sock)
    except KeyboardInterrupt:
        pass
    except (ValueError, FileNotFoundError) as err:
        sys.exit(str(err))


if __name__ == "__main__":
    main()
