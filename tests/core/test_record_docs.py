"""docs/wire-format.md lays out every state record and every event; the code must match it.

Each record of the state after the golden chain (tests/vectors/golden.json, ``chain``) is rebuilt
element by element from the tables in section 7 (names, order, types, nested layouts) and must
encode to the very bytes the state tree commits to. The event table of section 5 must list every
event class with its fields in order and with their types. Change a record's ``to_value`` or an
event's fields and these tests fail until the document says the same.
"""

from __future__ import annotations

import re
import typing
from types import SimpleNamespace
from typing import Any

import pytest

from crev.core.encoding import decode, encode
from crev.ledger.events import Event
from crev.ledger.state import State
from tests.core import wire_format_tables as wft
from tests.core.test_golden_vectors import replay_chain

LAYOUT_OF_PREFIX = {"a": "account", "d": "device", "l": "lot", "r": "reading", "t": "retirement",
                    "f": "factor row", "m": "market", "o": "order", "p": "offer policy", "b": "standing bid",
                    "s": "supply", "g": "chain", "v": "slot tally", "c": "control record",
                    "k": "delegate"}
SCALARS: dict[str, type] = {"text": str, "bytes": bytes, "uint": int, "int": int, "bool": bool}


@pytest.fixture(scope="module")
def state() -> State:
    return replay_chain()[0]


def record_of(state: State, key: str) -> Any:
    prefix, _, rest = key.partition("/")
    if prefix == "r":
        device, _, seq = rest.rpartition("/")
        return state.readings[(device, int(seq))]
    if prefix in ("v", "c"):
        device, _, n = rest.rpartition("/")
        return (state.tallies if prefix == "v" else state.controls)[(device, int(n))]
    if prefix == "b":
        account, _, market = rest.partition("/")
        return state.standing_bids[(account, market)]
    if prefix == "s":
        return state.supply
    if prefix == "g":
        return SimpleNamespace(chain_id=state.chain_id, genesis_hash=state.genesis_hash, params=state.params,
                               operator_id=state.operator_id, sequencer_public_key=state.sequencer_key)
    table = {"a": state.accounts, "d": state.devices, "l": state.lots, "t": state.retirements,
             "f": state.factor_rows, "m": state.markets, "o": state.orders, "p": state.offer_policies,
             "k": state.delegates}
    return table[prefix][rest]


def build(obj: Any, layout: str, used: set[str]) -> list[Any]:
    """``obj`` as the array the document's ``layout`` describes. Named objects are read by element
    name; plain tuples and lists (ranges, ask lots) by position."""
    used.add(layout)
    out = []
    for i, (name, typ) in enumerate(wft.layout(layout)):
        value = obj[i] if isinstance(obj, tuple | list) else getattr(obj, name)
        out.append(element(value, typ, f"{layout}.{name}", used))
    if isinstance(obj, tuple | list):
        assert len(obj) == len(out), f"{layout}: {len(obj)} elements, the document lists {len(out)}"
    return out


def element(value: Any, typ: str, where: str, used: set[str]) -> Any:
    if typ == "array of text":
        assert all(type(x) is str for x in value), where
        return list(value)
    if typ.startswith("array of "):
        return [build(x, typ.removeprefix("array of "), used) for x in value]
    if typ == "retire spec":
        return [] if value is None else build(value, typ, used)
    if typ in ("filter", "params"):
        return build(value, typ, used)
    assert typ in SCALARS, f"{where}: unknown type {typ!r} in the document"
    assert type(value) is SCALARS[typ], f"{where}: documented as {typ}, is {type(value).__name__}"
    assert typ != "uint" or value >= 0, f"{where}: documented as uint, is {value}"
    return value


def test_the_key_table_lists_every_prefix_the_state_uses(state: State) -> None:
    keys = re.findall(r"^\| `([a-z])(?:/[^`]*)?` \|", wft.section("Keys and values"), re.M)
    assert sorted(keys) == sorted(LAYOUT_OF_PREFIX)
    assert {k.partition("/")[0] for k in state.all_keys()} == set(LAYOUT_OF_PREFIX), \
        "the golden chain should leave a record under every key prefix"


def test_every_record_is_laid_out_as_documented(state: State) -> None:
    used: set[str] = set()
    for key in state.all_keys():
        layout = LAYOUT_OF_PREFIX[key.partition("/")[0]]
        committed = state.value_of(key)
        assert committed is not None
        built = build(record_of(state, key), layout, used)
        assert len(decode(committed)) == len(wft.layout(layout)), f"{key}: length differs from the document"
        assert encode(built) == committed, f"{key}: element order or types differ from the {layout!r} table"
    assert used == set(wft.tables()) - {"events", "details"}, "every documented layout should be exercised"


def test_every_event_is_documented_with_its_fields_in_order() -> None:
    classes = {c.type: c for c in Event.__subclasses__()}
    documented = wft.events()
    assert set(documented) == set(classes)
    types = {str: "text", bytes: "bytes", int: "uint", bool: "bool", tuple[str, ...]: "array of text",
             tuple[tuple[str, int, int], ...]: "array of ranges"}
    for name, cls in classes.items():
        hints = typing.get_type_hints(cls)
        fields = [(f, types[hints[f]]) for f in cls.__slots__]
        assert list(documented[name]) == fields, f"event {name}: the table in section 5 differs"
    # the prose names them too
    for name in documented:
        assert f"`{name}`" in wft.section("Events")


def test_every_kind_has_a_documented_detail() -> None:
    from crev.ledger.tx import REGISTRY

    assert set(wft.details()) == set(REGISTRY)
