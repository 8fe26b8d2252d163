"""CometBFT homes: the binary, ``cometbft init``, the shared genesis (crev's genesis JSON as
``app_state``), config.toml settings, and its JSON-RPC (``broadcast_tx_commit``, ``status``, …)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crev.consortium.protogen import COMETBFT_VERSION
from crev.ledger.genesis import Genesis

REPO = Path(__file__).resolve().parents[3]
BUILT = REPO / "build" / f"cometbft-{COMETBFT_VERSION}" / "cometbft"  # where `make consortium` puts it


class CometError(RuntimeError):
    pass


def find_binary() -> Path:
    """$CREV_COMETBFT, else the binary `make consortium` builds, else `cometbft` on PATH."""
    env = os.environ.get("CREV_COMETBFT")
    if env:
        return Path(env)
    if BUILT.exists():
        return BUILT
    onpath = shutil.which("cometbft")
    if onpath:
        return Path(onpath)
    raise CometError(f"no cometbft binary: run `make consortium` (go install github.com/cometbft/cometbft/cmd/"
                     f"cometbft@{COMETBFT_VERSION}) or set CREV_COMETBFT")


def run(binary: Path, *args: str) -> str:
    out = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise CometError(f"cometbft {' '.join(args)} failed: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout.strip()


@dataclass(frozen=True)
class Member:
    """One CometBFT home: its validator key and node id."""

    home: Path
    name: str
    address: str  # validator address, hex
    pub_key: dict[str, str]  # {"type": "tendermint/PubKeyEd25519", "value": base64}
    node_id: str


def init_home(binary: Path, home: Path, name: str) -> Member:
    """``cometbft init`` (validator key, node key, a default genesis and config)."""
    run(binary, "init", "--home", str(home))
    key = json.loads((home / "config" / "priv_validator_key.json").read_text())
    node_id = run(binary, "show-node-id", "--home", str(home)).splitlines()[-1].strip()
    return Member(home, name, key["address"], key["pub_key"], node_id)


def rfc3339(unix_s: float) -> str:
    t = dt.datetime.fromtimestamp(unix_s, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def write_genesis(members: list[Member], crev_genesis: Genesis, genesis_time: float, power: int = 10,
                  validators: int | None = None) -> dict[str, Any]:
    """One genesis for every member: chain id = the crev chain id, the first ``validators``
    members (all by default) as validators of equal power, crev's genesis JSON as ``app_state``,
    consensus params as ``cometbft init`` wrote."""
    if genesis_time < crev_genesis.genesis_time:
        raise CometError("the CometBFT genesis time must not be before the crev genesis time")
    base = json.loads((members[0].home / "config" / "genesis.json").read_text())
    doc = {
        "genesis_time": rfc3339(genesis_time),
        "chain_id": crev_genesis.chain_id,
        "initial_height": "1",
        "consensus_params": base["consensus_params"],
        "validators": [{"address": m.address, "pub_key": m.pub_key, "power": str(power), "name": m.name}
                       for m in members[:validators]],
        "app_hash": "",
        "app_state": json.loads(crev_genesis.to_json()),
    }
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    for m in members:
        (m.home / "config" / "genesis.json").write_text(text, "utf-8")
    return doc


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))


def set_config(home: Path, settings: dict[str, dict[str, object]]) -> None:
    """Set keys of config.toml, by section ("" for the top level). Every key must exist."""
    path = home / "config" / "config.toml"
    lines = path.read_text().splitlines()
    section = ""
    left = {(s, k) for s, kv in settings.items() for k in kv}
    for i, line in enumerate(lines):
        m = re.match(r"^\[([\w.]+)\]\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^([\w-]+)\s*=", line)
        if m and section in settings and m.group(1) in settings[section]:
            lines[i] = f"{m.group(1)} = {_toml(settings[section][m.group(1)])}"
            left.discard((section, m.group(1)))
    if left:
        raise CometError(f"{path}: no such settings {sorted(left)}")
    path.write_text("\n".join(lines) + "\n")


def local_config(home: Path, *, moniker: str, abci: str, rpc: int, p2p: int, peers: str = "",
                 timeout_commit: str = "500ms") -> None:
    """Loopback ports, the crev app over a socket, peers, short timeouts for a local net."""
    set_config(home, {
        "": {"moniker": moniker, "proxy_app": abci, "abci": "socket", "log_level": "info"},
        "rpc": {"laddr": f"tcp://127.0.0.1:{rpc}", "max_body_bytes": 8_000_000},
        "p2p": {"laddr": f"tcp://127.0.0.1:{p2p}", "persistent_peers": peers, "addr_book_strict": False,
                "allow_duplicate_ip": True, "pex": False},
        "mempool": {"max_tx_bytes": 4_194_304},
        "consensus": {"timeout_commit": timeout_commit, "timeout_propose": "1s", "create_empty_blocks": True,
                      "create_empty_blocks_interval": "0s"},
    })


class Rpc:
    """CometBFT's JSON-RPC over HTTP."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            out = json.loads(r.read())
        if "error" in out:
            raise CometError(f"{method}: {out['error']}")
        return out["result"]

    def broadcast_commit(self, tx: bytes) -> dict[str, Any]:
        return dict(self.call("broadcast_tx_commit", tx=base64.b64encode(tx).decode()))

    def broadcast_sync(self, tx: bytes) -> dict[str, Any]:
        return dict(self.call("broadcast_tx_sync", tx=base64.b64encode(tx).decode()))

    def height(self) -> int:
        return int(self.call("status")["sync_info"]["latest_block_height"])

    def app_hash_at(self, height: int) -> bytes:
        """The app hash after block ``height``, as block ``height + 1``'s header (signed by the
        validators through that block's commit) carries it."""
        h = self.call("header", height=str(height + 1))["header"]
        return bytes.fromhex(h["app_hash"])

    def wait_height(self, height: int, timeout: float = 60.0) -> int:
        end = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < end:
            try:
                h = self.height()
                if h >= height:
                    return h
            except (OSError, urllib.error.URLError, CometError, KeyError) as exc:
                last = exc
            time.sleep(0.1)
        raise CometError(f"{self.url} did not reach height {height} in {timeout} s (last error: {last})")
