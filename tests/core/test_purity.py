"""The core and the ledger are pure: no disk, network, clock, randomness or threads.

Their modules may import only the standard library's pure parts, each other (ledger → core, never
core → ledger) and the codec/crypto libraries. A new import of I/O shows up here first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "crev"
FORBIDDEN_MODULES = {"os", "sys", "io_uring", "socket", "sqlite3", "subprocess", "threading", "multiprocessing",
                     "asyncio", "random", "secrets", "time", "urllib", "http", "pathlib", "shutil", "tempfile",
                     "importlib", "crev.node", "crev.sim", "crev.demo", "crev.cli", "crev.data", "rich", "click"}
FORBIDDEN_CALLS = {"now", "today", "utcnow", "open", "urandom"}


def modules(pkg: str) -> list[Path]:
    return sorted((SRC / pkg).rglob("*.py"))


def imported(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", modules("core") + modules("ledger"), ids=lambda p: str(p.relative_to(SRC)))
def test_core_and_ledger_import_nothing_that_does_io(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    bad = {m for m in imported(tree) if m in FORBIDDEN_MODULES or m.split(".")[0] in FORBIDDEN_MODULES
           or any(m.startswith(f + ".") for f in FORBIDDEN_MODULES)}
    assert not bad, f"{path.name} imports {sorted(bad)}"
    calls = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
             for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not (calls & FORBIDDEN_CALLS), f"{path.name} calls {sorted(calls & FORBIDDEN_CALLS)}"


@pytest.mark.parametrize("path", modules("core"), ids=lambda p: str(p.relative_to(SRC)))
def test_core_does_not_depend_on_the_ledger(path: Path) -> None:
    bad = {m for m in imported(ast.parse(path.read_text("utf-8"))) if m.startswith("crev.ledger")}
    assert not bad, f"{path.name} imports {sorted(bad)}"
