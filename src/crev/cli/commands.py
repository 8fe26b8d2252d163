"""The ``crev`` command."""

from __future__ import annotations

import http.client
import importlib
import json
import os
import signal
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from crev.cli.common import (
    DEFAULT_DIR,
    DEFAULT_NODE,
    _fail,
    _info,
    _load_key,
    _nonce,
    _post,
    _read,
    _when,
    console,
)
from crev.core.factors import parse_csv
from crev.core.signing import Signer
from crev.data import shipped_rows
from crev.errors import CrevError

# Command groups defined in modules of their own, imported only when one of them runs (or when
# ``crev --help`` lists them): ``crev report`` does not load the DGC agent, the consortium's
# gRPC server or the simulator (~0.2 s of the CLI's start-up).
LAZY_COMMANDS = {
    "jpy": "crev.cli.market", "market": "crev.cli.market", "order": "crev.cli.market",
    "delegate": "crev.cli.market", "statement": "crev.cli.market",
    "abci": "crev.consortium.cli", "consortium": "crev.consortium.cli",
    "dgc": "crev.cli.dgc", "sim": "crev.cli.sim", "device": "crev.cli.device",
}


class CrevGroup(click.Group):
    """Turns the errors a user can cause (a missing ledger, bad input, a node that is down) into
    one clear line and exit status 2, never a traceback. Commands that know more (which file,
    which node) fail with their own message first; this is the net under them. The groups of
    ``LAZY_COMMANDS`` are imported when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in LAZY_COMMANDS:
            cmd = getattr(importlib.import_module(LAZY_COMMANDS[cmd_name]), cmd_name)
            if not isinstance(cmd, click.Command):
                raise TypeError(f"{LAZY_COMMANDS[cmd_name]}.{cmd_name} is not a click command")
            self.add_command(cmd, cmd_name)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrevError as err:
            _fail(f"{err.field}: {err.reason}")
        except (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
                NotADirectoryError) as err:
            _fail(str(err))
        except json.JSONDecodeError as err:
            _fail(f"not valid JSON: {err}")
        except urllib.error.URLError as err:
            _fail(f"cannot reach the node: {err.reason}")
        except (http.client.HTTPException, ConnectionError, TimeoutError) as err:
            _fail(f"lost the connection to the node: {err or type(err).__name__}")
        except sqlite3.DatabaseError as err:
            _fail(f"cannot read the ledger database: {err}")


@click.group(cls=CrevGroup)
@click.version_option(package_name="crev")
def main() -> None:
    """crev: self-consumed solar → signed DGC readings → C-REV on an auditable ledger."""


# --- keys -----------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Ed25519 key files."""


@keys.command("new")
@click.argument("path", type=click.Path(dir_okay=False))
def keys_new(path: str) -> None:
    """Write a new private key (hex seed, mode 600) to PATH and print its public key."""
    p = Path(path)
    if p.exists():
        _fail(f"{path} exists; refusing to overwrite a key")
    seed = os.urandom(32)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
    click.echo(Signer(seed).public_key.hex())


# --- init / node ------------------------------------------------------------------------------


@main.command()
@click.argument("data_dir", type=click.Path(file_okay=False), default=DEFAULT_DIR)
@click.option("--chain-id", required=True, help="Name of this ledger, e.g. crev-kanto-2027.")
@click.option("--operator-id", required=True, help="Account id of the registry operator.")
@click.option("--operator-name", required=True)
@click.option("--operator-key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The operator's key file (crev keys new).")
@click.option("--factors", type=click.Path(exists=True, dir_okay=False),
              help="Emission factor CSV to start with (default: the shipped table).")
@click.option("--genesis-time", default=None, help="ISO time (JST if no offset); default now.")
@click.option("--state-tree-depth", default=16, show_default=True, type=int,
              help="The state tree's depth, fixed for the chain's life: 2^depth buckets. Choose it so a "
                   "bucket holds a few dozen entries at the history you plan for (about 2.5 entries a "
                   "reading): 16 up to ~1M readings, 20 up to ~25M, 22 up to ~100M (docs/architecture.md, "
                   "State on disk).")
def init(data_dir: str, chain_id: str, operator_id: str, operator_name: str, operator_key: str,
         factors: str | None, genesis_time: str | None, state_tree_depth: int) -> None:
    """Create a new ledger in DATA_DIR (genesis file, sequencer key, empty database)."""
    from crev.ledger.genesis import Genesis
    from crev.ledger.params import Params
    from crev.ledger.shape import need_id, need_text
    from crev.node.node import Node

    need_text(chain_id, "--chain-id", 64)
    need_id(operator_id, "--operator-id")
    need_text(operator_name, "--operator-name")
    if not 1 <= state_tree_depth <= 24:
        _fail(f"--state-tree-depth: {state_tree_depth} is not 1..24")
    rows = parse_csv(Path(factors).read_text("utf-8"), factors) if factors else shipped_rows()
    seq_seed = os.urandom(32)
    g = Genesis(chain_id, _when(genesis_time, "--genesis-time") if genesis_time else int(time.time()), operator_id,
                operator_name, _load_key(operator_key).public_key, Signer(seq_seed).public_key,
                emission_factors=tuple(rows), params=Params(state_tree_depth=state_tree_depth))
    try:
        Node.init(data_dir, g, seq_seed)
    except FileExistsError as exc:
        _fail(str(exc))
    console.print(f"initialised [bold]{escape(chain_id)}[/bold] in {escape(data_dir)} "
                  f"(genesis {g.hash.hex()[:16]}…, {len(rows)} emission factor rows, state tree depth "
                  f"{state_tree_depth})")


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False), default=DEFAULT_DIR)
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
@click.option("--block-ms", default=200, type=click.IntRange(1, 3_600_000),
              help="Seal a block at least this often [ms].")
@click.option("--max-txs", default=10_000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="...or as soon as this many submitted transactions wait (a block holds at most "
                   "this many; a due market_tick rides along at its head).")
@click.option("--rate", default=50.0, show_default=True, type=float,
              help="Requests per second each client address may sustain (0: no limit).")
@click.option("--burst", default=200, show_default=True, type=click.IntRange(1), help="...and at once.")
@click.option("--public-url", default=None,
              help="Where users reach this node (behind a proxy); certificates' QR codes link there. "
                   "Default: http://HOST:PORT.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDRESS",
              help="A reverse proxy whose X-Forwarded-For the limits may believe (repeatable; an IP or "
                   "CIDR). Default: none, so every limit keys on the TCP peer's address.")
@click.option("--max-connections", default=None, type=click.IntRange(16),
              help="Connections held at once (default: the open-file limit less 128, at most 4096).")
@click.option("--max-per-address", default=64, show_default=True, type=click.IntRange(1),
              help="Connections one address may hold at once.")
def node(data_dir: str, host: str, port: int, block_ms: int, max_txs: int, rate: float, burst: int,
         public_url: str | None, trusted_proxies: tuple[str, ...], max_connections: int | None,
         max_per_address: int) -> None:
    """Run the embedded node with the HTTP API and the dashboard (docs/api.md) until interrupted."""
    from crev.node.node import Node
    from crev.service.guard import ConnectionGuard
    from crev.service.server import bind, serve

    guard = ConnectionGuard(max_per_address=max_per_address)
    if max_connections is not None:
        guard.max_connections = max_connections
    n = Node(data_dir, block_interval_ms=block_ms, max_block_txs=max_txs).start()
    try:
        sock = bind(host, port)
    except OSError as err:
        n.close()
        _fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
        raise
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it with the previous handler in
    # place: make that a clean exit, so the finally below closes the node and its worker processes
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    console.print(f"node {escape(n.state.chain_id)} at height {n.state.height}: API and dashboard on "
                  f"http://{escape(host)}:{port}  (API docs /docs; Ctrl-C stops)")
    try:
        serve(n, sock, rate=rate, burst=burst, public_url=public_url, guard=guard,
              trusted_proxies=trusted_proxies)
    finally:
        n.close()


main.add_command(node, name="serve")


# --- submitting -------------------------------------------------------------------------------


def _json_to_cbor(v: Any) -> Any:
    if isinstance(v, str) and v.startswith("hex:"):
        return bytes.fromhex(v[4:])
    if isinstance(v, list):
        return [_json_to_cbor(x) for x in v]
    return v


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--node", "node_url", default=DEFAULT_NODE, show_default=True)
@click.option("--signer", help="Account id that signs (JSON input only).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Signer's key file.")
def submit(file: str, node_url: str, signer: str | None, key: str | None) -> None:
    """Submit a transaction to a running node and print its receipt.

    FILE is either canonical CBOR bytes of a signed transaction (*.cbor, e.g. a gateway's
    reading batch), or JSON {"kind": ..., "body": [...]} that is signed here with --signer and
    --key (byte strings written as "hex:…"). See docs/wire-format.md.
    """
    import crev.ledger.messages  # noqa: F401 - registers every transaction kind
    from crev.ledger.tx import REGISTRY, build_tx

    data = Path(file).read_bytes()
    if file.endswith(".json"):
        try:
            spec = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            _fail(f"{file}: not valid JSON ({err})")
            raise
        if not isinstance(spec, dict):
            _fail(f"{file}: expected a JSON object {{\"kind\": ..., \"body\": [...]}}")
        info = _info(node_url)
        kind = spec.get("kind")
        if kind not in REGISTRY:
            _fail(f"kind: unknown transaction kind {kind!r}")
        try:
            from crev.ledger.params import Params

            msg = REGISTRY[kind](_json_to_cbor(spec.get("body")), Params())
        except CrevError as err:
            _fail(str(err))
            raise
        if kind == "submit_readings":
            raw = build_tx(info["chain_id"], msg)
        else:
            if not signer or not key:
                _fail("--signer and --key are required to sign a JSON transaction")
                raise AssertionError
            raw = build_tx(info["chain_id"], msg, signer, _nonce(node_url, signer), _load_key(key))
    else:
        raw = data
    _print_receipt(_post_json(node_url, raw))


def _post_json(node_url: str, raw: bytes) -> dict[str, Any]:
    """POST /tx; an answer that is not the node's JSON (a proxy's error page) is a clear failure."""
    try:
        return _post(node_url, raw)
    except json.JSONDecodeError:
        _fail(f"the node at {node_url} answered with something that is not JSON: is it a crev node?")
        raise


def _print_receipt(out: dict[str, Any]) -> None:
    """The receipt as JSON on stdout; a refusal also as one line on stderr, and exit status 1."""
    click.echo(json.dumps(out, indent=1, ensure_ascii=False))
    err = out.get("error")
    if err:
        if isinstance(err, dict):
            why = f"{err.get('code', 'error')}: {err.get('field', '')}: {err.get('reason', '')}"
        else:
            why = str(err)
        click.echo(f"error: the node refused the transaction ({why})", err=True)
        sys.exit(1)
    if not out.get("ok", False):
        click.echo("error: the transaction was not applied", err=True)
        sys.exit(1)


@main.group()
def factors() -> None:
    """Emission factor tables."""


@factors.command("show")
def factors_show() -> None:
    """Print the shipped emission factor table."""
    t = Table("key", "FY", "kind", "g/kWh", "source")
    for r in shipped_rows():
        t.add_row(escape(r.key), str(r.fiscal_year), escape(r.kind), str(r.g_per_kwh), escape(r.source[:60]))
    console.print(t)


@factors.command("load")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--node", "node_url", default=DEFAULT_NODE, show_default=True)
@click.option("--signer", required=True, help="The operator's account id.")
@click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False))
def factors_load(csv_file: str, node_url: str, signer: str, key: str) -> None:
    """Record emission factor rows from CSV_FILE on the ledger (operator only)."""
    from crev.ledger.messages.set_emission_factors import SetEmissionFactors
    from crev.ledger.tx import build_tx

    try:
        rows = parse_csv(Path(csv_file).read_text("utf-8"), csv_file)
    except CrevError as err:
        _fail(str(err))
        raise
    info = _info(node_url)
    raw = build_tx(info["chain_id"], SetEmissionFactors(tuple(rows)), signer, _nonce(node_url, signer),
                   _load_key(key))
    _print_receipt(_post_json(node_url, raw))


# --- demo -------------------------------------------------------------------------------------


@main.command()
@click.option("--data-dir", default=DEFAULT_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option("--sites", default=40, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--days", default=3, show_default=True, type=click.IntRange(1, 366))
@click.option("--interval", "interval_s", default=1800, show_default=True,
              type=click.Choice(["60", "120", "180", "300", "360", "600", "900", "1800"]),
              help="Metering interval [s].")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--start", default=None, help="First simulated day (ISO date, JST); default: DAYS ago.")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Afterwards keep the fleet running live and serve the API and dashboard.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--pace", default=2.0, show_default=True, type=click.FloatRange(0.05, 3600),
              help="Live phase: wall-clock seconds per simulated metering interval.")
@click.option("--consortium", "validators", default=0, show_default=True, type=click.IntRange(0, 16),
              help="Run on a localnet of this many CometBFT validators in DATA_DIR (0: the embedded node).")
@click.option("--base-port", default=26600, show_default=True, type=click.IntRange(1024, 65000),
              help="With --consortium: member i listens on base+10i (rpc), +1 (p2p), +2 (its crev app).")
@click.option("--device-sites", default=6, show_default=True, type=click.IntRange(0, 100),
              help="How many sites run through simulated ECHONET Lite / SunSpec devices and real DGC agents "
                   "over loopback sockets (embedded node only; 0: none).")
def demo(data_dir: str, sites: int, days: int, interval_s: str, seed: int, start: str | None, serve: bool,
         host: str, port: int, pace: float, validators: int, base_port: int, device_sites: int) -> None:
    """Simulate a fleet of sites on a fresh embedded ledger (or, with --consortium N, a localnet of
    N CometBFT validators) with a live market, then (by default) serve the dashboard at
    http://127.0.0.1:8000 while the fleet keeps reporting; DATA_DIR is left to explore."""
    from crev.demo import Serve, run_demo
    from crev.service.server import bind

    if start is not None:
        _when(start, "--start")
    live = None
    if serve:
        try:  # fail before simulating anything if the port is taken
            bind(host, port).close()
        except OSError as err:
            _fail(f"cannot listen on {host}:{port}: {err.strerror or err} (choose --port or --no-serve)")
        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # SIGTERM ends the live phase as Ctrl-C does: cleanly

        signal.signal(signal.SIGTERM, stop)
        live = Serve(host, port, pace, on_ready=lambda url: console.print(
            f"\n[bold green]dashboard / ダッシュボード: {url}[/]  API: {url}/docs  — Ctrl-C stops\n"))
    try:
        s = run_demo(Path(data_dir), sites=sites, days=days, interval_s=int(interval_s), seed=seed,
                     start=start, console=console, serve=live, consortium=validators, base_port=base_port,
                     device_sites=device_sites)
    except FileExistsError as exc:
        _fail(str(exc))
        raise
    except RuntimeError as exc:  # the localnet could not start (no cometbft binary, a port in use)
        if not validators:
            raise
        _fail(str(exc))
        raise
    console.print(f"\n[bold green]done[/bold green]: {s.readings:,} signed readings → "
                  f"{s.issued_g / 1000:,.1f} kg-CO2e of C-REV in {s.blocks:,} blocks, {s.seconds:.1f} s.")
    console.print("Explore it / 次のコマンドで確認できます:")
    d = escape(data_dir)
    if validators:  # the first member's crev data directory (consortium init's layout)
        d = escape(str(Path(data_dir) / "0-registry" / "crev"))
        console.print(f"  crev consortium up {escape(data_dir)}")
    console.print(f"  crev verify {d}")
    if s.sample_lot:
        console.print(f"  crev trace {d} {escape(s.sample_lot)}")
    if s.sample_retirement:
        console.print(f"  crev trace {d} {escape(s.sample_retirement)}")
    if s.owners:
        console.print(f"  crev report {d} {escape(s.owners[0])}")
    console.print(f"  crev export {d} lots --format csv")


# --- auditing and reporting --------------------------------------------------------------------


def _cometbft_options(fn: Any) -> Any:
    """--cometbft-rpc / --cometbft-home / --cometbft-genesis: where a consortium member's blocks are
    proven (CometBFT's headers and commits, the genesis validator set)."""
    fn = click.option("--cometbft-genesis", type=click.Path(exists=True, dir_okay=False),
                      help="Consortium: CometBFT's genesis.json (the validator set to trust). Default: the "
                           "home's, else the node's /genesis.")(fn)
    fn = click.option("--cometbft-home", type=click.Path(exists=True, file_okay=False),
                      help="Consortium: a CometBFT home (its genesis.json and RPC address). Default: the "
                           "`cometbft` directory beside DATA_DIR, if any.")(fn)
    return click.option("--cometbft-rpc", metavar="URL",
                        help="Consortium: a CometBFT node's RPC, e.g. http://127.0.0.1:26657.")(fn)


def _consortium(data_dir: str, rpc: str | None, home: str | None, genesis_file: str | None) -> Any:
    """The Consortium to check a member's blocks against, or None for an embedded node's ledger
    (options given for one are refused); fails clearly when a member's ledger has no source."""
    from crev.audit.consortium import Consortium, RpcSource, home_settings, is_member, member_home
    from crev.ledger.genesis import Genesis
    from crev.node.node import DB_FILE, GENESIS_FILE
    from crev.node.store import Store

    d = Path(data_dir)
    if not (d / GENESIS_FILE).exists():
        _fail(f"{d / GENESIS_FILE} not found: {data_dir} holds no ledger (run `crev init`)")
    store = Store(d / DB_FILE, readonly=True)
    try:
        member = is_member(store)
    finally:
        store.close()
    if not member:
        if rpc or home or genesis_file:
            _fail(f"{data_dir} is an embedded node's ledger (blocks signed by the sequencer key): the "
                  f"--cometbft-* options are for a consortium member's")
        return None
    doc: dict[str, Any] | None = None
    home_path = Path(home) if home else member_home(d)
    try:
        if home_path is not None:
            doc, laddr = home_settings(home_path)
            rpc = rpc or laddr
        if genesis_file:
            doc = json.loads(Path(genesis_file).read_text("utf-8"))
        if not rpc:
            _fail(f"{data_dir} is a consortium member's ledger: its blocks are proven by CometBFT's commits. "
                  f"Give --cometbft-rpc URL (and --cometbft-genesis FILE) or --cometbft-home DIR")
        source = RpcSource(str(rpc))
        if doc is None:
            doc = source.genesis()
            console.print("[yellow]note:[/yellow] the validator set comes from the node's own /genesis; give "
                          "--cometbft-genesis to check against a genesis.json you trust")
        return Consortium(doc, source, Genesis.from_json((d / GENESIS_FILE).read_text("utf-8")))
    except (OSError, ValueError) as err:
        _fail(f"cannot read CometBFT's settings: {err}")
    except CrevError as err:
        _fail(f"{err.field}: {err.reason}")
    return None


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False), default=DEFAULT_DIR)
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@_cometbft_options
@click.option("--replay-only", is_flag=True,
              help="Consortium: replay without checking CometBFT's commits (says so in the verdict).")
@click.option("--record", "record", type=click.Path(dir_okay=False), default=None, metavar="AUDIT_FILE",
              help="After a successful replay, write the auditor's own record there (the chain, the block hash "
                   "and state root recomputed at the node's checkpoint and the head, the state at the head).")
@click.option("--resume", "resume", type=click.Path(dir_okay=False), default=None, metavar="AUDIT_FILE",
              help="Start from a height this record vouches for instead of genesis (checked against it; refused "
                   "if anything audited differs), replay the blocks after it, then update the record.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(data_dir: str, threads: int, cometbft_rpc: str | None, cometbft_home: str | None,
           cometbft_genesis: str | None, replay_only: bool, record: str | None, resume: str | None,
           as_json: bool) -> None:
    """Replay the whole chain from genesis and check every signature, hash, root and invariant.

    On a consortium member's ledger, each block is checked against a CometBFT header signed by
    more than 2/3 of the genesis validators' power that carries its app hash. With --resume, the
    replay starts after the last height an earlier run recorded (--record) instead."""
    from crev.audit.replay import verify_chain
    from crev.cli.render import print_verify, verify_dict
    from crev.node.node import GENESIS_FILE

    if not (Path(data_dir) / GENESIS_FILE).exists():  # before the progress bar draws
        _fail(f"{Path(data_dir) / GENESIS_FILE} not found: {data_dir} holds no ledger (run `crev init`)")
    if resume is not None and not Path(resume).is_file():
        _fail(f"{resume}: no such audit record (write one with `crev verify {data_dir} --record {resume}`)")
    consortium = None if replay_only else _consortium(data_dir, cometbft_rpc, cometbft_home, cometbft_genesis)
    t0 = time.perf_counter()
    with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
                  TimeRemainingColumn(), console=console, disable=as_json) as prog:
        task = prog.add_task("verify", total=None)

        def tick(h: int, total: int) -> None:
            prog.update(task, completed=h, total=total)

        try:
            rep = verify_chain(data_dir, threads=threads, progress=tick, consortium=consortium, record=record,
                               resume=resume)
        except (OSError, ValueError) as err:
            _fail(str(err))
    dt = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps(verify_dict(rep, dt), indent=1, ensure_ascii=False))
        if not rep.ok:
            sys.exit(1)
        return
    dt = time.perf_counter() - t0
    print_verify(console, rep, dt)
    if rep.engine:
        if consortium is None:
            console.print(f"[yellow]consortium ({escape(rep.engine)}): blocks replayed only; CometBFT's commits "
                          f"were NOT checked (--replay-only)[/yellow]")
        elif rep.ok:
            console.print(f"consortium ({escape(rep.engine)}): all {rep.commits_checked:,} blocks proven by CometBFT "
                          f"commits of the {rep.validators} genesis validators (at least {rep.signed_power_min} of "
                          f"{rep.total_power} voting power signed each, more than 2/3 needed); validator set hash "
                          f"{consortium.vals.hash.hex()}")
    if not rep.ok:
        sys.exit(1)


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a timeline.")
@_cometbft_options
def trace(data_dir: str, ident: str, as_json: bool, cometbft_rpc: str | None, cometbft_home: str | None,
          cometbft_genesis: str | None) -> None:
    """Provenance of a lot, unit id or retirement: signed reading → issuance → transfers → retirement.

    On a consortium member's ledger every block named is proven by a CometBFT commit (in the JSON:
    ``consortium``, with the headers, signatures and validator set)."""
    from crev.audit.trace import trace as do_trace
    from crev.cli.render import print_trace

    consortium = _consortium(data_dir, cometbft_rpc, cometbft_home, cometbft_genesis)
    out = _read(data_dir, lambda n: do_trace(n.store, n.state, ident, consortium))
    if as_json:
        click.echo(json.dumps(out, indent=1, ensure_ascii=False))
        return
    print_trace(console, out)
    c = out.get("consortium")
    if c:
        vs = c["validator_set"]
        for h, p in c["blocks"].items():
            console.print(f"block {h}: app hash {p['crev_header_hash'][:16]}… in CometBFT header "
                          f"{p['header']['height']}, signed by {p['signed_power']} of {p['total_power']} voting "
                          f"power (> {vs['needed_more_than']} needed)")


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("participant")
@click.option("--slots", "slots_day", default=None, help="Also list every slot of this JST day (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True)
def report(data_dir: str, participant: str, slots_day: str | None, as_json: bool) -> None:
    """Renewable share, emissions and average emission factor for a participant and its sites."""
    from crev.cli.render import print_report
    from crev.reports.report import participant_report, report_dict

    rep, now = _read(data_dir, lambda n: (participant_report(n.state, n.store, participant), n.state.last_time))
    if as_json:
        click.echo(json.dumps(report_dict(rep, now), indent=1, ensure_ascii=False))
        return
    print_report(console, rep, now, slots_day)


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("what", type=click.Choice(["lots", "retirements"]))
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="File to write (default: standard output).")
def export(data_dir: str, what: str, fmt: str, out: str | None) -> None:
    """Export certificates (lots) or retirements as CSV or JSON."""
    from crev.reports.export import lot_rows, retirement_rows, rows_csv

    rows = _read(data_dir, lambda n: lot_rows(n.state) if what == "lots" else retirement_rows(n.state))
    # CSV cells are neutralised for spreadsheets (participant text starting with = + - @ ...)
    text = json.dumps(rows, indent=1, ensure_ascii=False) if fmt == "json" else rows_csv(rows)
    if out:
        Path(out).write_text(text, "utf-8")
        console.print(f"wrote {len(rows):,} {what} to {escape(out)}")
    else:
        click.echo(text, nl=False)


