"""Running the API: ``serve`` blocks (``crev serve``); ``serve_in_thread`` runs it beside other
work (``crev demo`` keeps simulating while it serves)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from crev.node.node import Node
from crev.service.app import create_app


def _server(node: Node, host: str, port: int, **kw: Any) -> uvicorn.Server:
    if not kw.get("public_url") and port:
        # QR codes and certificates link here, never to whatever Host header a client sent
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        kw["public_url"] = f"http://{shown}:{port}"
    config = uvicorn.Config(create_app(node, **kw), host=host, port=port, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts (raises OSError: port in use)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve(node: Node, sock: socket.socket, **kw: Any) -> None:
    """Serve on ``sock`` (from ``bind``) until interrupted (Ctrl-C or SIGTERM)."""
    host, port = sock.getsockname()[:2]
    _server(node, host, port, **kw).run(sockets=[sock])


class Background:
    """The API on a daemon thread; ``stop()`` shuts it down gracefully."""

    def __init__(self, node: Node, host: str, port: int, **kw: Any) -> None:
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


def serve_in_thread(node: Node, host: str = "127.0.0.1", port: int = 8000, **kw: Any) -> Background:
    return Background(node, host, port, **kw).start()
