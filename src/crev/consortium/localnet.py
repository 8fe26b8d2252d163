"""A local consortium: ``crev consortium init DIR --validators 4`` and ``crev consortium up DIR``.

``init`` writes, per member, a CometBFT home (validator and node keys, config with loopback ports
and the other members as persistent peers) and a crev data directory; one shared genesis names
every member a validator of equal power and carries crev's genesis (operator = the first member,
the registry) as ``app_state``. ``DIR/consortium.json`` lists the members and their ports;
``DIR/operator.key`` is the operator's Ed25519 seed (0600), the key that registers participants.

``up`` starts each member's crev app (``crev abci``) and then its CometBFT node, waits until every
member has committed blocks, then serves the HTTP API and the dashboard over one member's node
(``api_member``, default the first: its own process, ``python -m crev.service.server``, reading
that member's crev data directory read-only and submitting through its CometBFT), and stops them
all (the API, CometBFT, then the apps) on SIGTERM or Ctrl-C. Logs go to each member's directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

from crev.consortium.cometbft import CometError, Member, Rpc, find_binary, init_home, local_config, write_genesis
from crev.core.factors import parse_csv
from crev.core.signing import Signer
from crev.ledger.genesis import Genesis

NAMES = ("registry", "utility", "retailer", "auditor")
MANIFEST = "consortium.json"
OPERATOR_KEY = "operator.key"


@dataclass(frozen=True)
class MemberSpec:
    name: str
    dir: Path
    rpc: int
    p2p: int
    abci: int
    validator: bool = True  # False: a full node that only follows (an auditor's replica)

    @property
    def home(self) -> Path:
        return self.dir / "cometbft"

    @property
    def data(self) -> Path:
        return self.dir / "crev"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc}"


def shipped_factors() -> list[Any]:
    text = resources.files("crev.core").joinpath("data/emission_factors.csv").read_text("utf-8")
    return parse_csv(text, "emission_factors.csv")


def init(root: Path, validators: int = 4, *, chain_id: str = "crev-consortium", base_port: int = 26600,
         timeout_commit: str = "500ms", genesis: Genesis | None = None, operator_seed: bytes | None = None,
         binary: Path | None = None, events: str = "all", observers: int = 0) -> list[MemberSpec]:
    """Write the localnet. ``genesis`` (with its operator's seed) replaces the generated one.
    ``observers``: full nodes beside the validators (not in the validator set), each with its own
    crev app: they replay every block from genesis and must reach the same app hash."""
    if validators < 1:
        raise CometError("--validators must be at least 1")
    if (root / MANIFEST).exists():
        raise FileExistsError(f"{root / MANIFEST} exists: {root} already holds a consortium")
    binary = binary or find_binary()
    root.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    if genesis is None:
        operator_seed = os.urandom(32)
        op = Signer(operator_seed)
        # the sequencer key is unused in consortium mode (CometBFT's commit is a block's authority);
        # genesis still names one, so it is the operator's
        genesis = Genesis(chain_id, now, NAMES[0], "Registry operator", op.public_key, op.public_key,
                          emission_factors=tuple(shipped_factors()))
    if operator_seed is not None:
        fd = os.open(root / OPERATOR_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(operator_seed.hex() + "\n")
    names = [NAMES[i] if i < len(NAMES) else f"member-{i}" for i in range(validators)]
    names += [f"observer-{j}" for j in range(observers)]
    specs = [MemberSpec(n, root / f"{i}-{n}", base_port + 10 * i, base_port + 10 * i + 1, base_port + 10 * i + 2,
                        i < validators) for i, n in enumerate(names)]
    members: list[Member] = []
    for s in specs:
        s.data.mkdir(parents=True, exist_ok=True)
        (s.data / "genesis.json").write_text(genesis.to_json(), "utf-8")
        members.append(init_home(binary, s.home, s.name))
    write_genesis(members, genesis, max(now, genesis.genesis_time), validators=validators)
    for s, m in zip(specs, members, strict=True):
        peers = ",".join(f"{o.node_id}@127.0.0.1:{sp.p2p}" for o, sp in zip(members, specs, strict=True) if o is not m)
        local_config(s.home, moniker=s.name, abci=f"tcp://127.0.0.1:{s.abci}", rpc=s.rpc, p2p=s.p2p, peers=peers,
                     timeout_commit=timeout_commit)
    manifest = {"chain_id": genesis.chain_id, "cometbft": str(binary), "events": events,
                "members": [{"name": s.name, "dir": s.dir.name, "rpc": s.rpc, "p2p": s.p2p, "abci": s.abci,
                             "validator": s.validator}
                            for s in specs]}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return specs


def load(root: Path) -> tuple[dict[str, Any], list[MemberSpec]]:
    path = root / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `crev consortium init {root}` first")
    m = json.loads(path.read_text())
    return m, [MemberSpec(x["name"], root / x["dir"], x["rpc"], x["p2p"], x["abci"], x.get("validator", True))
               for x in m["members"]]


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0,
              host: str = "127.0.0.1") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise CometError(f"{what} exited with {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection((host if host not in ("0.0.0.0", "::", "") else "127.0.0.1", port),
                                          timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise CometError(f"{what} is not listening on port {port} after {timeout} s")


class Localnet:
    """The running processes of a localnet (or of some of its members)."""

    def __init__(self, root: Path, binary: Path | None = None) -> None:
        self.root = root
        manifest, self.members = load(root)
        self.events = str(manifest.get("events", "all"))
        self.binary = binary or (Path(manifest["cometbft"]) if Path(manifest["cometbft"]).exists() else find_binary())
        self.apps: dict[str, subprocess.Popen[bytes]] = {}
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.api: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []

    def member(self, name: str) -> MemberSpec:
        return next(m for m in self.members if m.name == name)

    def start_app(self, m: MemberSpec) -> None:
        log = open(m.dir / "abci.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.apps[m.name] = subprocess.Popen(
            [sys.executable, "-m", "crev.consortium.cli", "abci", str(m.data), "--addr", f"tcp://127.0.0.1:{m.abci}",
             "--events", self.events],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(m.abci, self.apps[m.name], f"{m.name}'s crev app")

    def start_node(self, m: MemberSpec) -> None:
        log = open(m.dir / "cometbft.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.nodes[m.name] = subprocess.Popen([str(self.binary), "node", "--home", str(m.home)],
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(m.rpc, self.nodes[m.name], f"{m.name}'s cometbft")

    def start(self) -> Localnet:
        for m in self.members:
            self.start_app(m)
        for m in self.members:
            self.start_node(m)
        return self

    def start_api(self, member: str | None = None, host: str = "127.0.0.1", port: int = 8000,
                  timeout: float = 60.0) -> str:
        """The HTTP API and dashboard over ``member``'s node, as its own process; returns its URL."""
        m = self.member(member) if member else self.members[0]
        log = open(m.dir / "api.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.api = subprocess.Popen(
            [sys.executable, "-m", "crev.service.server", str(self.root), "--member", m.name, "--host", host,
             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(port, self.api, f"the API over {m.name}'s node", timeout, host)
        return f"http://{host}:{port}"

    def rpc(self, name: str | None = None) -> Rpc:
        return Rpc((self.member(name) if name else self.members[0]).rpc_url)

    def wait_blocks(self, height: int = 2, timeout: float = 60.0) -> None:
        for m in self.members:
            if m.name in self.nodes:
                Rpc(m.rpc_url).wait_height(height, timeout)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def stop_member(self, name: str, sig: int = signal.SIGTERM) -> None:
        if name in self.nodes:
            self._end(self.nodes.pop(name), sig)
        if name in self.apps:
            self._end(self.apps.pop(name), sig)

    def stop(self) -> None:
        """The API first, then the CometBFT nodes (they stop calling the apps), then the apps
        (which checkpoint)."""
        if self.api is not None:
            self._end(self.api)
            self.api = None
        for p in list(self.nodes.values()):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in list(self.nodes.values()):
            self._end(p)
        for p in list(self.apps.values()):
            self._end(p)
        self.nodes.clear()
        self.apps.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()


def up(root: Path, *, out: IO[str] = sys.stdout, stop: threading.Event | None = None, api: bool = True,
       api_member: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start every member, wait for committed blocks, serve the API over ``api_member``'s node
    (unless not ``api``), run until SIGTERM / Ctrl-C (or ``stop``)."""
    stop = stop or threading.Event()
    net = Localnet(root)

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    if api_member is not None and api_member not in {m.name for m in net.members}:
        raise CometError(f"--api-member {api_member}: no such member ({', '.join(m.name for m in net.members)})")
    try:
        net.start()
        net.wait_blocks(2)
        for m in net.members:
            print(f"{m.name:10} rpc {m.rpc_url}  height {Rpc(m.rpc_url).height()}  logs {m.dir}", file=out)
        n = sum(m.validator for m in net.members)
        extra = f" and {len(net.members) - n} full nodes" if len(net.members) > n else ""
        if api:
            url = net.start_api(api_member, host, port)
            print(f"API and dashboard: {url}  (over {api_member or net.members[0].name}'s node)", file=out, flush=True)
        print(f"consortium up: {n} validators{extra} committing blocks; Ctrl-C or SIGTERM stops them",
              file=out, flush=True)
        while not stop.is_set():
            procs = [*net.nodes.items(), *net.apps.items(), *((("api", net.api),) if net.api is not None else ())]
            dead = [n for n, p in procs if p.poll() is not None]
            if dead:
                raise CometError(f"{', '.join(dead)} exited: see the logs in {root}")
            stop.wait(0.5)
    finally:
        net.stop()
        for s, h in old.items():
            signal.signal(s, h)
        print("consortium stopped", file=out, flush=True)
