"""The crev command never answers a user's mistake with a traceback: one line naming the problem,
exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crev.cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def failed(res: Result, phrase: str) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    assert phrase in " ".join(res.output.split()), res.output


@pytest.mark.parametrize("cmd", [["report", "{d}", "sun-co"], ["trace", "{d}", "x"], ["export", "{d}", "lots"],
                                 ["verify", "{d}"], ["statement", "monthly", "{d}", "sun-co", "2026-06"]])
def test_a_directory_without_a_ledger(tmp_path: Path, cmd: list[str]) -> None:
    failed(run(*[c.format(d=tmp_path) for c in cmd]), "not found")


def test_node_on_a_directory_without_a_ledger(tmp_path: Path) -> None:
    failed(run("node", str(tmp_path)), "genesis.json not found")


@pytest.fixture
def opkey(tmp_path: Path) -> str:
    p = tmp_path / "op.key"
    assert run("keys", "new", str(p)).exit_code == 0
    return str(p)


def test_init_refuses_a_bad_operator_id_or_empty_chain_id_or_bad_time(tmp_path: Path, opkey: str) -> None:
    base = ["init", str(tmp_path / "l"), "--operator-name", "Op", "--operator-key", opkey]
    failed(run(*base, "--chain-id", "c", "--operator-id", "Bad Id!"), "--operator-id: must be 1-64 of a-z")
    failed(run(*base, "--chain-id", "  ", "--operator-id", "op"), "--chain-id: must not be empty")
    failed(run(*base, "--chain-id", "c", "--operator-id", "op", "--genesis-time", "yesterday"),
           "--genesis-time: 'yesterday' is not an ISO date")
    assert not (tmp_path / "l" / "genesis.json").exists()


def test_demo_refuses_a_bad_start(tmp_path: Path) -> None:
    failed(run("demo", "--data-dir", str(tmp_path / "d"), "--start", "June"), "--start: 'June' is not an ISO date")


def test_submit_when_the_node_is_down(tmp_path: Path, opkey: str) -> None:
    f = tmp_path / "t.json"
    f.write_text('{"kind": "rotate_key", "body": ["hex:' + "00" * 32 + '"]}')
    failed(run("submit", str(f), "--node", "http://127.0.0.1:9", "--signer", "op", "--key", opkey),
           "cannot reach node at http://127.0.0.1:9")
    raw = tmp_path / "t.cbor"
    raw.write_bytes(b"\x80")
    failed(run("submit", str(raw), "--node", "http://127.0.0.1:9"), "cannot reach node at http://127.0.0.1:9")


def test_submit_of_a_file_that_is_not_json(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text("{kind: oops")
    failed(run("submit", str(f), "--node", "http://127.0.0.1:9"), "not valid JSON")
