"""Read the layout tables of docs/wire-format.md, so tests can build values from the document.

A layout table follows an HTML comment ``<!-- layout: NAME -->`` (invisible when the page is
rendered). Three shapes are used:

* records and nested arrays: ``| # | Name | Type | Unit | Meaning |``, one element per row;
* ``events``: ``| Event (element 0) | Elements 1 … n, in order |``, one event per row, the cell
  listing ```name` type`` items separated by commas;
* ``details``: ``| Kind | `detail` | Meaning |``, the kinds in backticks and the detail as a code
  span ``[a, b, …]``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

WIRE_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"
MARKER = re.compile(r"<!-- layout: ([a-z ]+) -->")
ITEM = re.compile(r"^`(\w+)` ([a-z ]+)$")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@cache
def tables() -> dict[str, list[list[str]]]:
    """Layout name → the table's body rows (header and rule rows dropped), as cells."""
    lines = WIRE_FORMAT.read_text("utf-8").splitlines()
    out: dict[str, list[list[str]]] = {}
    for n, line in enumerate(lines):
        m = MARKER.fullmatch(line.strip())
        if not m:
            continue
        name = m.group(1)
        assert name not in out, f"layout {name!r} appears twice in {WIRE_FORMAT.name}"
        rows: list[list[str]] = []
        i = n + 1
        while i < len(lines) and lines[i].startswith("|"):
            rows.append(_cells(lines[i]))
            i += 1
        assert len(rows) > 2, f"layout {name!r}: no table right after its marker"
        out[name] = rows[2:]
    return out


@cache
def layout(name: str) -> tuple[tuple[str, str], ...]:
    """A record or nested array: ((element name, type), …) in element order."""
    out = []
    for i, row in enumerate(tables()[name]):
        index, elem, typ = row[0], row[1], row[2]
        assert index == str(i), f"layout {name!r}: row {i} is numbered {index}"
        m = re.fullmatch(r"`(\w+)`", elem)
        assert m, f"layout {name!r}: element {i} name {elem!r} is not in backticks"
        out.append((m.group(1), typ))
    return tuple(out)


@cache
def events() -> dict[str, tuple[tuple[str, str], ...]]:
    """Event type → ((field name, type), …) of elements 1 … n."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for row in tables()["events"]:
        m = re.fullmatch(r"`(\w+)`", row[0])
        assert m, f"event type {row[0]!r} is not in backticks"
        items = []
        for item in row[1].split(", "):
            im = ITEM.fullmatch(item.strip())
            assert im, f"event {m.group(1)}: cannot read {item!r} (expected `name` type)"
            items.append((im.group(1), im.group(2)))
        out[m.group(1)] = tuple(items)
    return out


@cache
def details() -> dict[str, tuple[str, ...] | None]:
    """Transaction kind → the documented detail's element names (None: not a fixed array)."""
    out: dict[str, tuple[str, ...] | None] = {}
    for row in tables()["details"]:
        kinds = re.findall(r"`(\w+)`", row[0])
        assert kinds, f"no kind in {row[0]!r}"
        m = re.fullmatch(r"`\[([\w, ]*)\]`", row[1])
        names = tuple(x.strip() for x in m.group(1).split(",")) if m else None
        for k in kinds:
            out[k] = names
    return out


def section(title: str) -> str:
    """The text of the section or subsection whose heading is ``title`` (without the #s)."""
    text = WIRE_FORMAT.read_text("utf-8")
    m = re.search(rf"^(#+) {re.escape(title)}\n", text, re.M)
    assert m, f"no heading {title!r}"
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def error_codes() -> dict[str, int]:
    """Error code → HTTP status, from the table in section 4, *Errors*."""
    rows = re.findall(r"^\| `(\w+)` \| (\d{3}) \|", section("Errors"), re.M)
    return {code: int(status) for code, status in rows}
