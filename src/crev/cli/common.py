"""What the ``crev`` command's modules share: the console, clear failures, keys, talking to a
node, and opening a ledger read-only."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape

from crev.core.signing import Signer
from crev.errors import CrevError

T = TypeVar("T")
console = Console()
DEFAULT_DIR = "crev-data"
DEFAULT_NODE = "http://127.0.0.1:8000"


def _fail(msg: str) -> None:
    console.print(f"[red]error:[/red] {escape(msg)}", soft_wrap=True)  # paths are never folded mid-word
    sys.exit(2)


def _load_key(path: str) -> Signer:
    try:
        text = Path(path).read_text().strip()
        return Signer(bytes.fromhex(text))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read key file {path}: {exc}")
        raise


def _when(text: str, option: str) -> int:
    """An ISO date or date-time option (JST if no offset) → unix s, or a clear error."""
    from crev.core.units import parse_time

    try:
        return parse_time(text)
    except ValueError:
        _fail(f"{option}: {text!r} is not an ISO date or date-time (e.g. 2026-06-01 or 2026-06-01T09:00)")
        raise


def _post(node_url: str, raw: bytes) -> dict[str, Any]:
    req = urllib.request.Request(f"{node_url}/v1/tx", data=raw, method="POST",
                                 headers={"Content-Type": "application/cbor"})
    try:
        with urllib.request.urlopen(req, timeout=90) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out
    except urllib.error.HTTPError as err:
        out = json.loads(err.read() or b"{}")
        return out
    except urllib.error.URLError as err:
        _fail(f"cannot reach node at {node_url}: {err.reason}")
        raise


def _info(node_url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{node_url}/v1/info", timeout=10) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out
    except urllib.error.URLError as err:
        _fail(f"cannot reach node at {node_url}: {err.reason}")
        raise


def _nonce(node_url: str, account: str) -> int:
    try:
        with urllib.request.urlopen(f"{node_url}/v1/participants/{account}", timeout=10) as resp:
            return int(json.loads(resp.read())["nonce"])
    except urllib.error.HTTPError as err:
        try:
            reason = json.loads(err.read())["error"]["reason"]
        except (ValueError, KeyError, TypeError):
            reason = f"the node answered HTTP {err.code} without a JSON error"
        _fail(f"account {account}: {reason}")
    except urllib.error.URLError as err:
        _fail(f"cannot reach node at {node_url}: {err.reason}")
    raise AssertionError


def _read(data_dir: str, fn: Callable[[Any], T]) -> T:
    """Open the ledger in DATA_DIR read-only (safe beside a running node: nothing is written), run
    ``fn(view)``, close it; a CrevError becomes a clear exit."""
    from crev.node.node import LedgerView

    n = LedgerView(data_dir)
    try:
        return fn(n)
    except CrevError as err:
        _fail(f"{err.field}: {err.reason}")
        raise
    finally:
        n.close()
