"""The folders tell the story of a reading, and imports only flow down it.

core → ledger → node (what runs the state machine) → audit and reports (the read side) → service,
cli, demo (the faces). A module may import its own folder and the folders allowed below; nothing
imports upwards, and no two modules import each other, directly or round a longer circle
(function-level imports included: a circle hidden inside a function is still a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "crev"

#: folder (or top-level module) → the crev folders it may import, besides itself.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "core": {"errors"},
    "ledger": {"core", "errors"},
    "device": {"core", "ledger", "errors"},
    "sim": {"core", "ledger", "device", "errors"},  # simulated devices speak the adapters' codecs
    "node": {"core", "ledger", "errors"},
    "audit": {"core", "ledger", "node", "errors"},
    "reports": {"core", "ledger", "node", "errors"},
    "data": {"core", "errors"},
    "consortium": {"core", "ledger", "node", "errors"},
    "service": {"core", "ledger", "node", "audit", "reports", "consortium", "errors"},
    "demo": {"core", "ledger", "node", "device", "sim", "service", "consortium", "data", "errors"},
    "cli": {"core", "ledger", "node", "audit", "reports", "service", "consortium", "device", "sim", "data", "demo",
            "errors"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def crev_imports(path: Path) -> set[str]:
    """Every crev module ``path`` imports, anywhere in the file (``from crev.x import y`` counts as
    crev.x.y when that is a module, else crev.x)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "crev"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "crev":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in MODULES else node.module)
    return {m for m in out if m != "crev"}


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def folder(module: str) -> str:
    return module.split(".")[1]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "crev"))
def test_imports_flow_down_the_layers(module: str) -> None:
    mine = folder(module)
    assert mine in ALLOWED, f"{module}: a new top-level folder or module; give it a place in ALLOWED"
    bad = sorted(m for m in crev_imports(MODULES[module]) if folder(m) != mine and folder(m) not in ALLOWED[mine])
    assert not bad, f"{module} ({mine}/) may import only {sorted(ALLOWED[mine])}, but imports {bad}"


def test_no_import_circles() -> None:
    graph = {m: {i for i in crev_imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                circles.append([*stack[stack.index(n):], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not circles, "import circles: " + "; ".join(" → ".join(c) for c in circles)


def test_the_rules_themselves_point_down() -> None:
    """ALLOWED is itself acyclic, so the layers have an order."""
    order: list[str] = []
    left = dict(ALLOWED)
    while left:
        ready = [f for f, deps in left.items() if deps <= set(order)]
        assert ready, f"the allowed imports form a circle among {sorted(left)}"
        order += sorted(ready)
        for f in ready:
            del left[f]
