"""A block's state-tree buckets read from the state file in one call of the compiled kernel.

A node's state is read lazily: a record or a tree bucket the last checkpoint evicted is read back
from SQLite when a block needs it (``node/lazystate.py``), one query a bucket. Python's ``sqlite3``
hands the interpreter lock back at every row of a query, and with other threads busy (the check
stage, the checkpoint writer) each row then waits to take it back, up to the switch interval: with
devices reporting less often than the checkpoint interval, every reading's buckets are read back
this way, and that wait was most of the sealer's time (docs/benchmarks.md, "Where the latency
goes").

Where the kernel is installed, ``crev_native.SpanReader`` (native/src/spans.rs) opens the state
file read-only with the SQLite library Python's own ``_sqlite3`` links (found in the process, never
a second copy), and reads every bucket a block needs in one read transaction with the lock
released: the rows of each bucket are hashed and packed into the tree's held form there. A reader
thread calls it for each batch the check stage passed (``Node._read_early``, its own connection),
and the sealer before applying a block (``Checkpoint.prefetch``) for what is still missing, with
the keys the block's readings will touch. The tree checks each
bucket's hash against the one it holds, as for a bucket it reads itself; a bucket the kernel cannot
judge, or whose hash differs, is read again by the reference path (``LazyStateTree.load``), which
refuses it naming its keys.

The connection sees what other connections have committed, not the writer's open transaction; a
bucket the tree does not hold has had no change since the last checkpoint written (a changed bucket
is loaded first, and eviction keeps every bucket changed since), so the committed rows are the ones
its hash commits to.
"""

from __future__ import annotations

import _sqlite3
from pathlib import Path
from typing import Protocol, cast


class SpanReader(Protocol):
    """``crev_native.SpanReader`` (native/crev_native.pyi)."""

    def read(self, keys: list[str], shift: int, held: dict[int, bytes], reads: list[str], /) -> tuple[
            list[int], list[tuple[bytes, bytes] | None], dict[str, bytes]]: ...


class SpanKernel(Protocol):
    def open(self, path: str, sqlite_module_file: str, /) -> SpanReader | None: ...


def _installed() -> SpanKernel | None:
    try:
        import crev_native  # the compiled kernel, where `pip install ./native` built it
    except ImportError:
        return None
    reader = getattr(crev_native, "SpanReader", None)
    return cast(SpanKernel, reader) if reader is not None else None


SPAN_KERNEL = _installed()
_kernel = SPAN_KERNEL


def use_span_kernel(enabled: bool) -> bool:
    """Read a block's buckets with the kernel (True, where installed) or one query a bucket with
    the reference (False) from stores opened from now on. Returns whether the kernel is in use."""
    global _kernel
    _kernel = SPAN_KERNEL if enabled else None
    return _kernel is not None


def open_span_reader(path: Path) -> SpanReader | None:
    """A kernel reader of the state file at ``path``, or None: the kernel is absent or not in use,
    or the process's SQLite is not one it can share (``_sqlite3`` built with its own copy)."""
    k = _kernel
    if k is None or _sqlite3.__file__ is None:
        return None
    return k.open(str(path), _sqlite3.__file__)
