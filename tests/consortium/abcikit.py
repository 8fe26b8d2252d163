"""Helpers for the consortium tests: the ABCI protobuf classes (skipping without them), a minimal
ABCI socket client speaking CometBFT's framing, and finding the cometbft binary."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from crev.consortium import protogen
from crev.consortium.proto import Abci, classes, frame, read_uvarint

ROOT = Path(__file__).resolve().parents[2]


def pb() -> Abci:
    """The ABCI classes; skips the test where they cannot be built (no Go)."""
    if not protogen.DESCRIPTOR_FILE.exists() and shutil.which("go") is None:
        pytest.skip("Go is not installed: CometBFT's ABCI .proto files come through `go mod download` "
                    "(install Go, then `make consortium`)")
    return classes()


def cometbft_binary() -> Path:
    """$CREV_COMETBFT, else what `make consortium` builds; skips the test where neither exists."""
    env = os.environ.get("CREV_COMETBFT")
    if env:
        return Path(env)
    built = ROOT / "build" / f"cometbft-{protogen.COMETBFT_VERSION}" / "cometbft"
    if built.exists():
        return built
    if shutil.which("go") is None:
        pytest.skip("Go is not installed, so cometbft cannot be built: install Go and run `make consortium` "
                    "(or set CREV_COMETBFT to a cometbft v0.38 binary)")
    pytest.fail(f"Go is installed but {built} is missing: run `make consortium` (or set CREV_COMETBFT)")


class Client:
    """One ABCI connection, as CometBFT's socket client makes it."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.pb = pb()
        self.sock = socket.create_connection(addr, timeout=30)
        self.rf = self.sock.makefile("rb")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Any:
        n = read_uvarint(lambda: self.rf.read(1))
        if n is None:
            return None
        return self.pb.Response.FromString(self.rf.read(n))

    def call(self, **kw: Any) -> Any:
        """Send one request (method=fields) and a Flush; return the method's response."""
        (method, fields), = kw.items()
        req = self.pb.Request()
        getattr(req, method).SetInParent()
        for k, v in fields.items():
            f = getattr(getattr(req, method), k)
            if hasattr(f, "extend"):
                f.extend(v)
            elif hasattr(f, "CopyFrom"):
                f.CopyFrom(v)
            else:
                setattr(getattr(req, method), k, v)
        flush = self.pb.Request()
        flush.flush.SetInParent()
        self.sock.sendall(frame(req) + frame(flush))
        resp = self.read()
        assert self.read().WhichOneof("value") == "flush"
        return resp

    def close(self) -> None:
        self.rf.close()
        self.sock.close()
