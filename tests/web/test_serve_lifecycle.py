"""``crev serve`` — what hosts the dashboard — stops cleanly when a service manager sends SIGTERM:
it exits 0 and leaves none of its worker processes behind (needs no browser)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.web.webkit import crev, start_serve, stop_serve


def test_serve_exits_cleanly_on_sigterm_leaving_no_process(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    made = crev("demo", "--data-dir", str(data), "--sites", "1", "--days", "1", "--no-serve")
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    s = start_serve(data, tmp_path / "serve.log")
    height = s.height()
    rc, left = stop_serve(s.proc)
    log = s.server_log()
    assert rc == 0, f"crev serve ended with {rc} on SIGTERM:\n{log}"
    assert not left, f"processes of crev serve still running after it exited: {left}\n{log}"
    assert "Traceback" not in log, log
    v = crev("verify", str(data))
    # every block it acknowledged is there (it may have sealed a market tick after we asked)
    m = re.search(r"OK (\d+) blocks", v.stdout)
    assert v.returncode == 0 and m is not None and int(m.group(1)) >= height, v.stdout + v.stderr
