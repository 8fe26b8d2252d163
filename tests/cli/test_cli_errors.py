"""The crev command never answers a user's mistake with a traceback: one line naming the problem,
exit status 2."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crev.cli import main
from crev.core.signing import Signer
from crev.node.node import DB_FILE
from crev.service.server import serve_in_thread
from tests.node import nodekit as k


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def failed(res: Result, phrase: str) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    assert phrase in " ".join(res.output.split()), res.output


@pytest.mark.parametrize("cmd", [["report", "empty", "sun-co"], ["trace", "empty", "x"], ["export", "empty", "lots"],
                                 ["verify", "empty"], ["statement", "monthly", "empty", "sun-co", "2026-06"]])
def test_a_directory_without_a_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cmd: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    failed(run(*cmd), "empty/genesis.json not found: empty holds no ledger (run `crev init`)")


def test_node_on_a_directory_without_a_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    failed(run("node", "empty"), "empty/genesis.json not found: run `crev init` first")


@pytest.fixture
def opkey(tmp_path: Path) -> str:
    p = tmp_path / "op.key"
    assert run("keys", "new", str(p)).exit_code == 0
    return str(p)


@pytest.mark.parametrize(("args", "phrase"), [
    (["--chain-id", "c", "--operator-id", "Bad Id!"],
     "--operator-id: must be 1-64 of a-z 0-9 . _ - starting with a letter or digit"),
    (["--chain-id", "c", "--operator-id", "-op"], "--operator-id: must be 1-64 of a-z"),
    (["--chain-id", "c", "--operator-id", "o" * 65], "--operator-id: must be 1-64 of a-z"),
    (["--chain-id", "", "--operator-id", "op"], "--chain-id: must not be empty"),
    (["--chain-id", "  ", "--operator-id", "op"], "--chain-id: must not be empty"),
    (["--chain-id", "c", "--operator-id", "op", "--genesis-time", "yesterday"],
     "--genesis-time: 'yesterday' is not an ISO date or date-time"),
    (["--chain-id", "c", "--operator-id", "op", "--state-tree-depth", "25"], "--state-tree-depth: 25 is not 1..24"),
    (["--chain-id", "c", "--operator-id", "op", "--state-tree-depth", "0"], "--state-tree-depth: 0 is not 1..24"),
], ids=["operator-id-chars", "operator-id-start", "operator-id-length", "chain-id-empty", "chain-id-blank",
        "genesis-time", "depth-too-deep", "depth-zero"])
def test_init_refuses_bad_input(tmp_path: Path, opkey: str, args: list[str], phrase: str) -> None:
    failed(run("init", str(tmp_path / "l"), "--operator-name", "Op", "--operator-key", opkey, *args), phrase)
    assert not (tmp_path / "l" / "genesis.json").exists()


def test_demo_refuses_a_bad_start(tmp_path: Path) -> None:
    failed(run("demo", "--data-dir", str(tmp_path / "d"), "--start", "June"), "--start: 'June' is not an ISO date")


def test_submit_when_the_node_is_down(tmp_path: Path, opkey: str) -> None:
    f = tmp_path / "t.json"
    f.write_text('{"kind": "rotate_key", "body": ["hex:' + Signer(b"\x07" * 32).public_key.hex() + '"]}')
    failed(run("submit", str(f), "--node", "http://127.0.0.1:9", "--signer", "op", "--key", opkey),
           "cannot reach node at http://127.0.0.1:9")
    raw = tmp_path / "t.cbor"
    raw.write_bytes(b"\x80")
    failed(run("submit", str(raw), "--node", "http://127.0.0.1:9"), "cannot reach node at http://127.0.0.1:9")


def test_submit_of_a_file_that_is_not_json(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text("{kind: oops")
    failed(run("submit", str(f), "--node", "http://127.0.0.1:9"), "not valid JSON")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[str]:
    """A real node behind its HTTP front on a free port; yields its URL."""
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    server = serve_in_thread(node, "127.0.0.1", 0, rate=0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        node.close()


def test_submit_when_the_node_answers_an_error(tmp_path: Path, live: str) -> None:
    raw = tmp_path / "t.cbor"
    raw.write_bytes(b"\x80")  # an empty CBOR array: not a transaction
    res = run("submit", str(raw), "--node", live)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert json.loads(res.stdout)["error"] == {"code": "malformed", "field": "tx",
                                               "reason": "must have 7 elements, found 0"}
    assert res.stderr == "error: the node refused the transaction (malformed: tx: must have 7 elements, found 0)\n"


def test_submit_signed_by_an_account_the_node_does_not_know(tmp_path: Path, opkey: str, live: str) -> None:
    f = tmp_path / "t.json"
    f.write_text('{"kind": "rotate_key", "body": ["hex:' + Signer(b"\x07" * 32).public_key.hex() + '"]}')
    failed(run("submit", str(f), "--node", live, "--signer", "nobody", "--key", opkey),
           "account nobody: no participant 'nobody'")


def test_submit_to_something_that_is_not_a_node(tmp_path: Path) -> None:
    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>Bad Gateway</html>")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        raw = tmp_path / "t.cbor"
        raw.write_bytes(b"\x80")
        url = f"http://127.0.0.1:{server.server_address[1]}"
        failed(run("submit", str(raw), "--node", url), f"the node at {url} answered with something that is not JSON")
    finally:
        server.server_close()


def test_submit_of_a_json_file_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text("[1, 2,")
    failed(run("submit", str(f), "--node", "http://127.0.0.1:9"), f"{f.name}: not valid JSON (Expecting value")


def test_node_on_a_port_already_taken(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        failed(run("node", str(d), "--port", str(port)), f"cannot listen on 127.0.0.1:{port}: Address already in use")
    node = k.open_node(d)  # the node it had started was closed again
    node.close()


def test_a_ledger_file_that_is_not_a_database(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    (d / DB_FILE).write_bytes(b"this is not sqlite" * 100)
    failed(run("export", str(d), "lots"), "cannot read the ledger database: file is not a database")
