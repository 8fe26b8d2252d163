"""Shared set-up for the benchmarks: machine details and a ledger with many devices."""

from __future__ import annotations

import gc
import os
import platform
import resource
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from crev.core.encoding import encode
from crev.core.factors import FactorRow
from crev.core.hashing import sha256
from crev.core.signing import Signer
from crev.core.units import parse_time
from crev.ledger.genesis import Genesis
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.submit_readings import SubmitReadings, parse_reading, reading_payload
from crev.ledger.params import Params
from crev.ledger.tx import build_tx
from crev.node.node import Node

CHAIN = "bench"
T0 = parse_time("2026-06-01T00:00")


def rss_mb() -> float:
    """This process's resident set now [MB] (its peak where /proc is absent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CpuByThread:
    """CPU time [s] each thread of this process spends between ``start()`` and ``stop()``, by
    thread name (each thread's CPU clock, ``pthread_getcpuclockid``; a thread that ends in between
    is not counted), and the cyclic collector's CPU time in that span (``gc.callbacks``, timed on
    the collecting thread)."""

    def __init__(self) -> None:
        self.gc_s = 0.0
        self.collections = 0
        self._gc_t0 = 0.0
        self._before: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    @staticmethod
    def now() -> dict[str, float]:
        """Each live thread's CPU time so far [s], by name (the threads of a pool added up)."""
        out: dict[str, float] = {}
        for t in threading.enumerate():
            if t.ident is None:
                continue
            try:
                cpu = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
            except (OSError, AttributeError):  # ended meanwhile, or no per-thread clocks here
                continue
            out[t.name] = out.get(t.name, 0.0) + cpu
        return out

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.thread_time()
        else:
            self.gc_s += time.thread_time() - self._gc_t0
            self.collections += 1

    def start(self) -> None:
        self._before = self.now()
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)
        after = self.now()
        self.spent = {k: v - self._before.get(k, 0.0) for k, v in after.items()}

    def line(self, per: int) -> str:
        """``seal 138, checkpoint 76, ...`` in µs per ``per`` (crev- prefixes and pool suffixes
        dropped, the threads of a pool added up), busiest first, and the collector's share."""
        total: dict[str, float] = {}
        for name, s in self.spent.items():
            short = name.removeprefix("crev-").rsplit("_", 1)[0]
            total[short] = total.get(short, 0.0) + s
        parts = [f"{k} {v / per * 1e6:,.0f}" for k, v in sorted(total.items(), key=lambda kv: -kv[1])
                 if v / per * 1e6 >= 0.5]
        return (", ".join(parts) + f"; cyclic GC {self.gc_s / per * 1e6:,.0f} of them "
                f"({self.collections} collections)")


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.node()} | {cpu} | {os.cpu_count()} cores | Python {platform.python_version()} | "
            f"{platform.system()} {platform.release()}")


def key(name: str) -> Signer:
    return Signer(sha256(f"bench/{name}".encode()))


def make_ledger(devices: int, *, block_ms: int = 100, data_dir: Path | None = None,
                clock_start: int | None = None, owners: Sequence[tuple[str, str, Signer]] | None = None,
                owner_of: Callable[[int], str] = lambda i: "owner",
                verify_processes: bool | None = None, params: Params | None = None,
                checkpoint_s: float = 2.0) -> tuple[Node, Path, list[float]]:
    """A fresh embedded node with ``owners`` (account id, name, key; by default one prosumer
    "owner") owning ``devices`` DGCs d0, d1, … (device i owned by ``owner_of(i)``), all registered
    through the node itself (``verify_processes``, ``checkpoint_s``: as ``Node``'s; ``params``: the
    genesis parameters, default ``Params()``). Returns the started node, its directory and the
    mutable clock."""
    d = data_dir or Path(tempfile.mkdtemp(prefix="crev-bench-"))
    op = key("operator")
    g = Genesis(CHAIN, T0 - 86400, "operator", "Bench Operator", op.public_key, key("seq").public_key,
                params=params or Params(),
                emission_factors=(FactorRow("national", 2025, "national_average", 430, "bench"),))
    Node.init(d, g, key("seq").seed)
    clock = [float(clock_start if clock_start is not None else T0 + 10 * 86400)]
    node = Node(d, block_interval_ms=block_ms, clock=lambda: clock[0], verify_processes=verify_processes,
                checkpoint_s=checkpoint_s).start()
    nonce = 0

    def tx(msg: object) -> bytes:
        nonlocal nonce
        raw = build_tx(CHAIN, msg, "operator", nonce, op)  # type: ignore[arg-type]
        nonce += 1
        return raw

    # participants before their devices: the node seals submissions in order
    futs = [node.submit(tx(RegisterParticipant(acct, name, "prosumer", signer.public_key, os.urandom(16))))
            for acct, name, signer in (owners or [("owner", "Owner", key("owner"))])]
    for i in range(devices):
        futs.append(node.submit(tx(RegisterDevice(f"d{i}", owner_of(i), key(f"d{i}").public_key, 100_000,
                                                  T0 - 86400, 35_000_000, 139_000_000, "tokyo", f"SN{i}",
                                                  T0 + 10 * 365 * 86400, False, "solar_pv"))))
    for f in futs:
        r = f.result(900)
        assert r.ok, r.error
    return node, d, clock


def signed_readings(devices: int, per_device: int, interval_s: int = 60) -> list[list[object]]:
    """``devices × per_device`` signed readings, interval by interval (devices interleaved)."""
    keys = [key(f"d{i}") for i in range(devices)]
    regs = [[0, 0, 0] for _ in range(devices)]
    out: list[list[object]] = []
    for k in range(per_device):
        start = T0 + 9 * 3600 + k * interval_s
        for i in range(devices):
            g, imp, exp = 800 + (i % 200), 300, 100 + (i % 50)
            r = regs[i]
            r[0] += g
            r[1] += imp
            r[2] += exp
            p = reading_payload(CHAIN, f"d{i}", k + 1, start, interval_s, g, imp, exp, r[0], r[1], r[2])
            out.append([*p, keys[i].sign(encode(p))])
    return out


def batch_tx(readings: list[list[object]]) -> bytes:
    msg = SubmitReadings(tuple(parse_reading(r, "r") for r in readings))
    return build_tx(CHAIN, msg)


def now() -> float:
    return time.perf_counter()
