"""The consortium's commands: ``crev abci DATA_DIR`` and ``crev consortium init|up DIR``.

Registered in the ``crev`` group by src/crev/cli/commands.py; also runnable on their own as
``python -m crev.consortium.cli abci …`` (how ``consortium up`` starts each member's app).
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from crev.consortium.app import AppError, CrevApp
from crev.consortium.cometbft import CometError


@click.command("abci")
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--addr", default="tcp://127.0.0.1:26658", show_default=True,
              help="where CometBFT connects (proxy_app): tcp://host:port or unix:///path")
@click.option("--checkpoint-s", default=2.0, show_default=True, help="seconds between state checkpoints")
@click.option("--events", type=click.Choice(["all", "summary"]), default="all", show_default=True,
              help="ABCI events: every crev event, or a readings batch's per-reading events as one count event")
def abci(data_dir: Path, addr: str, checkpoint_s: float, events: str) -> None:
    """Serve the ledger's state machine to CometBFT over the ABCI socket protocol."""
    from crev.consortium.server import AbciServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        app = CrevApp(data_dir, checkpoint_s=checkpoint_s)
        srv = AbciServer(app, addr, events)
    except (AppError, OSError) as err:
        raise click.ClickException(str(err)) from None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    info = app.info()
    app_hash = info["last_block_app_hash"].hex() or "(none: waiting for InitChain)"
    click.echo(f"crev abci: {data_dir} on {srv.address}: CometBFT height {info['last_block_height']}, crev height "
               f"{info['crev_height']}, app hash {app_hash}", err=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server.server_close()
        app.close()
        click.echo("crev abci: stopped", err=True)


@click.group("consortium")
def consortium() -> None:
    """A consortium of validators running the ledger on CometBFT."""


@consortium.command("init")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--validators", default=4, show_default=True, help="how many members (each a validator)")
@click.option("--observers", default=0, show_default=True,
              help="full nodes beside them (an auditor's replica: follows, never votes)")
@click.option("--chain-id", default="crev-consortium", show_default=True)
@click.option("--base-port", default=26600, show_default=True,
              help="member i listens on base+10i (rpc), +1 (p2p), +2 (its crev app)")
@click.option("--timeout-commit", default="500ms", show_default=True)
@click.option("--events", type=click.Choice(["all", "summary"]), default="all", show_default=True,
              help="what each member's app emits as ABCI events (see crev abci --help)")
def init_cmd(root: Path, validators: int, observers: int, chain_id: str, base_port: int, timeout_commit: str,
             events: str) -> None:
    """Write a localnet: per member a CometBFT home and a crev data dir, one shared genesis."""
    from crev.consortium import localnet

    try:
        specs = localnet.init(root, validators, chain_id=chain_id, base_port=base_port, timeout_commit=timeout_commit,
                              events=events, observers=observers)
    except (CometError, FileExistsError) as err:
        raise click.ClickException(str(err)) from None
    for s in specs:
        role = "validator" if s.validator else "full node"
        click.echo(f"{s.name:10} {role:9} {s.dir}  rpc {s.rpc_url}  p2p {s.p2p}  app {s.abci}")
    click.echo(f"operator key: {root / localnet.OPERATOR_KEY}; start with `crev consortium up {root}`")


@consortium.command("up")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--api-member", default=None, help="serve the API and dashboard over this member's node "
                                                 "(default: the first)")
@click.option("--host", default="127.0.0.1", show_default=True, help="the API's address")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="the API's port")
@click.option("--api/--no-api", default=True, show_default=True, help="serve the HTTP API and the dashboard")
def up_cmd(root: Path, api_member: str | None, host: str, port: int, api: bool) -> None:
    """Start every member's CometBFT and crev app, and serve the API and dashboard over one
    member's node; stop them all on Ctrl-C or SIGTERM."""
    from crev.consortium import localnet

    try:
        localnet.up(root, api=api, api_member=api_member, host=host, port=port)
    except (CometError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None


@click.group()
def main() -> None:
    """crev's consortium commands on their own (``crev abci`` and ``crev consortium`` in the crev command)."""


main.add_command(abci)
main.add_command(consortium)

if __name__ == "__main__":
    main()
