"""A checkpoint's bulk rows handed to SQLite in one piece per table, built by the compiled kernel.

The reference (``store.prepare_checkpoint`` and ``store.insert_rows``) builds a Python tuple per
row and binds every cell; beside the sealer, that was a fifth of the interpreter lock's time
(docs/benchmarks.md). Where the kernel is installed, the state rows and the two indexes written
per reading (``ix_readings`` and ``ix_lots``) are instead built by ``crev_native.pack_state_rows``
and ``pack_event_rows`` (native/src/rows.rs) as one JSON array of rows and one blob per table,
hashed, sorted and rendered with the lock released; ``insert_packed`` binds the two and SQLite
expands them with ``json_each`` in one ``INSERT … SELECT``, also with the lock released. An
integer cell is a JSON number, a text a JSON string, a blob two numbers (its 1-based offset and
length in the blob, read back with ``substr``). The stored rows are exactly the reference's
(tests/native/test_packed_rows.py compares the two databases); where the kernel cannot render a
value exactly it returns None and the reference builds the rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Protocol, cast

from crev.ledger.events import Issued, ReadingAccepted

# ``->>`` (SQLite 3.38, which also builds the JSON functions in by default)
SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38, 0)

# Each packed table's row: the event class, where each cell comes from (an attribute of the event,
# or ``@height`` / ``@tx``: the block's height, the transaction's hash) and each cell's kind
# (``i`` integer, ``t`` text, ``b`` blob). The same columns, in the same order, as
# ``store.index_event`` writes.
READING_ROWS = (ReadingAccepted, ("device_id", "seq", "interval_start", "interval_s", "generation_wh",
                                  "import_wh", "export_wh", "lot_id", "reading_hash", "@height", "@tx", "owner"),
                "tiiiiiitbibt")
LOT_ROWS = (Issued, ("lot_id", "first_unit", "quantity_g", "device_id", "owner", "slot_id", "self_consumed_wh",
                     "factor_g_per_kwh", "origin", "@height", "@tx"), "tiittiiitib")
STATE_KINDS = "itb"  # kh, key, value


@dataclass(frozen=True)
class PackedRows:
    """One table's rows for ``json_each``: the JSON array of rows, the blob its blob cells point
    into, and how many rows there are."""

    json: str
    blob: bytes
    count: int


class RowsKernel(Protocol):
    """What ``crev_native`` offers for checkpoint rows (native/crev_native.pyi)."""

    def pack_state_rows(self, changes: dict[str, bytes | None], /) -> tuple[
            tuple[str, bytes, int], list[tuple[int, str]], list[int], list[tuple[str, bytes]]] | None: ...

    def pack_event_rows(self, outcomes: list[Any], tables: list[tuple[type, tuple[str, ...], str]], /) -> tuple[
            list[tuple[str, bytes, int]], list[tuple[int, bytes, Any]]] | None: ...


def _installed() -> RowsKernel | None:
    try:
        import crev_native  # the compiled kernel, where `pip install ./native` built it
    except ImportError:
        return None
    ok = SQLITE_JSON and hasattr(crev_native, "pack_state_rows") and hasattr(crev_native, "pack_event_rows")
    return cast(RowsKernel, crev_native) if ok else None


ROWS_KERNEL = _installed()
_kernel = ROWS_KERNEL


def use_rows_kernel(enabled: bool) -> bool:
    """Build checkpoint rows with the kernel (True, where installed and SQLite has ``->>``) or with
    the reference (False) from now on. Returns whether the kernel is in use."""
    global _kernel
    _kernel = ROWS_KERNEL if enabled else None
    return _kernel is not None


def rows_kernel() -> RowsKernel | None:
    return _kernel


def packed(part: tuple[str, bytes, int]) -> PackedRows:
    return PackedRows(*part)


def insert_packed(db: sqlite3.Connection, head: str, kinds: str, rows: PackedRows, tail: str = "") -> None:
    """``head SELECT … FROM json_each(rows) tail``: the rows ``rows`` packs, in order, with the
    cells of ``kinds`` (``WHERE true`` keeps an ``ON CONFLICT`` tail from reading as a join's)."""
    if not rows.count:
        return
    cells: list[str] = []
    j = 0
    for kind in kinds:
        if kind == "b":
            cells.append(f"substr(?2, value->>{j}, value->>{j + 1})")
            j += 2
        else:
            cells.append(f"value->>{j}")
            j += 1
    sql = f"{head} SELECT {', '.join(cells)} FROM json_each(?1) WHERE true{tail}"
    db.execute(sql, (rows.json, rows.blob))
    # SQLite keeps a statement's bound values (its copies of them) until they are bound again, and
    # the connection keeps the statement in its cache: a checkpoint's arrays (tens of MB at full
    # load) would stay allocated until the next checkpoint. Bound again to empty ones (no row).
    db.execute(sql, ("[]", b""))
