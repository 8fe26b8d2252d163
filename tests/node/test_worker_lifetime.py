"""A node's signature workers die with it, even when it is killed outright (kill -9).

Before, each kill -9 of ``crev serve`` left its two verify workers running (12 after 6 cycles).
The workers now ask the kernel for SIGKILL when their parent dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crev.service.server import bind
from tests.node import nodekit as k
from tests.prockit import PPID, alive, live_processes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_the_node_takes_its_verify_workers_with_it(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    # worker processes are what PyNaCl verifies on; with the kernel (crev_native) the node uses threads
    env = {**os.environ, "CREV_NATIVE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "crev.cli", "serve", str(d), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True,
                            env=env)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while len(workers) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "crev serve did not start its workers"
            time.sleep(0.2)
            workers = [c for c in live_processes(PPID, proc.pid)
                       if "python" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers):
            assert time.monotonic() < deadline, f"workers {[w for w in workers if alive(w)]} outlived their node"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in live_processes(PPID, proc.pid):
            os.kill(w, signal.SIGKILL)
