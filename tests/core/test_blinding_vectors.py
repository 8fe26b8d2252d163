"""tests/vectors/golden.json ``blinding``: every optional blinding value on the wire, reproduced.

The block is replayed on the genesis of the golden ``chain`` from the transactions' bytes; the
records it leaves must be the vector's bytes, with their leaf hashes, and each record must be its
documented layout (docs/wire-format.md §7) plus exactly one trailing element: the blind.
"""

from __future__ import annotations

import hashlib
from typing import Any

from crev.core.encoding import decode, encode
from crev.core.factors import FactorRow
from crev.core.signing import public_key_from_seed, verify
from crev.core.statetree import entry_leaf_hash
from crev.ledger.apply import BlockBuilder
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.params import Params
from tests.core import wire_format_tables as wft
from tests.core.test_golden_vectors import GOLDEN, chain_genesis_value, from_json, h

V = GOLDEN["blinding"]
LAYOUTS = {"a": "account", "s": "supply", "c": "control record"}


def replay() -> Any:
    v = chain_genesis_value()
    params = Params(**dict(zip([n for n, _ in wft.layout("params")], v[6], strict=True)))
    state = state_from_genesis(Genesis(v[0], v[1], v[2], v[3], v[4], v[5], params,
                                       tuple(FactorRow(*r) for r in v[7])))
    b = BlockBuilder(state, V["height"], V["time"])
    results = [b.add(h(t["hex"])) for t in V["txs"]]
    return state, results, b.finish()


def test_the_blinded_block_replays_to_the_vector_root() -> None:
    state, results, out = replay()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert out.header.encode().hex() == V["header_hex"]
    assert out.header.state_root.hex() == V["state_root"]
    for t in V["txs"]:
        assert hashlib.sha256(h(t["hex"])).hexdigest() == t["tx_hash"]
    for key, rec in V["records"].items():
        value = state.value_of(key)
        assert value is not None and value.hex() == rec["hex"], key
        assert encode(from_json(rec["value"])) == value
        # the leaf hash as §7 defines it, by hand
        kb = key.encode()
        assert hashlib.sha256(b"\x00" + len(kb).to_bytes(2, "big") + kb + value).hexdigest() == rec["leaf_hash"]
        assert entry_leaf_hash(key, value).hex() == rec["leaf_hash"]


def test_each_blinded_record_is_its_layout_plus_the_blind_last() -> None:
    blinds = {k: h(x) for k, x in V["blinds"].items()}
    expect = {"a/tokyo-factory": blinds["tokyo-factory/rotated"], "a/osaka-buyer": blinds["osaka-buyer"],
              "s": h(V["supply_blind"]["after_withdrawal"]), "c/dgc-0101/1": blinds["control"]}
    for key, rec in V["records"].items():
        value = decode(h(rec["hex"]))
        assert len(value) == len(wft.layout(LAYOUTS[key[0]])) + 1, key
        assert value[-1] == expect[key] and len(value[-1]) == 16


def test_the_supply_blind_chains_the_salts() -> None:
    blinds = {k: h(x) for k, x in V["blinds"].items()}
    first = hashlib.sha256(blinds["deposit"]).digest()[:16]
    assert first.hex() == V["supply_blind"]["after_deposit"]
    assert hashlib.sha256(first + blinds["withdrawal"]).digest()[:16].hex() == V["supply_blind"]["after_withdrawal"]


def test_the_salted_control_item_is_signed_over_its_salt() -> None:
    ci = V["control_item"]
    item = decode(h(ci["item_hex"]))
    assert len(item) == 16 and item[14] == h(V["blinds"]["control"])
    assert encode(item[:15]).hex() == ci["signed_hex"] and ci["signed_hex"].startswith("8f")
    device = public_key_from_seed(h(GOLDEN["chain"]["seeds"]["device"]))
    assert verify(device, h(ci["signed_hex"]), item[15])
    assert hashlib.sha256(h(ci["item_hex"])).hexdigest() == ci["item_hash"]


def test_blinded_bodies_carry_the_blind_last() -> None:
    blinds = {k: h(x) for k, x in V["blinds"].items()}
    bodies = {t["kind"]: decode(h(t["hex"]))[5] for t in V["txs"]}
    assert bodies["register_participant"] != [] and len(decode(h(V["txs"][1]["hex"]))[5]) == 4  # one without
    assert decode(h(V["txs"][0]["hex"]))[5][4] == blinds["tokyo-factory"]
    assert bodies["deposit_jpy"][3] == blinds["deposit"] and bodies["withdraw_jpy"][3] == blinds["withdrawal"]
    assert bodies["reset_participant_key"][3] == blinds["osaka-buyer"]
    assert bodies["rotate_key"] == [public_key_from_seed(h(GOLDEN["chain"]["seeds"]["prosumer"])),
                                    blinds["tokyo-factory/rotated"]]
