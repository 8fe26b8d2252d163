"""Genesis: the chain id, the operator (registry / issuer), the sequencer key, the parameters and
the initial emission factor table. Its hash is the ``prev_hash`` of block 1."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from crev.core.encoding import encode
from crev.core.factors import FactorRow
from crev.core.hashing import sha256
from crev.errors import MalformedError
from crev.ledger.params import Params
from crev.ledger.records import OPERATOR, Account
from crev.ledger.shape import need_id, need_int, need_public_key, need_text
from crev.ledger.state import State


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time: int
    operator_id: str
    operator_name: str
    operator_public_key: bytes
    sequencer_public_key: bytes
    params: Params = field(default_factory=Params)
    emission_factors: tuple[FactorRow, ...] = ()

    def to_value(self) -> list[Any]:
        return [self.chain_id, self.genesis_time, self.operator_id, self.operator_name,
                self.operator_public_key, self.sequencer_public_key, self.params.to_value(),
                [r.as_list() for r in self.emission_factors]]

    @property
    def hash(self) -> bytes:
        return sha256(encode(self.to_value()))

    def to_json(self) -> str:
        return json.dumps({
            "chain_id": self.chain_id,
            "genesis_time": self.genesis_time,
            "operator": {"account_id": self.operator_id, "name": self.operator_name,
                         "public_key": self.operator_public_key.hex()},
            "sequencer_public_key": self.sequencer_public_key.hex(),
            "params": {k: getattr(self.params, k) for k in Params.__dataclass_fields__},
            "emission_factors": [r.as_list() for r in self.emission_factors],
        }, indent=1, ensure_ascii=False)

    @staticmethod
    def from_json(text: str) -> Genesis:
        try:
            d = json.loads(text)
            op = d["operator"]
            g = Genesis(
                chain_id=need_text(d["chain_id"], "genesis.chain_id", 64),
                genesis_time=need_int(d["genesis_time"], "genesis.genesis_time"),
                operator_id=need_id(op["account_id"], "genesis.operator.account_id"),
                operator_name=need_text(op["name"], "genesis.operator.name"),
                operator_public_key=bytes.fromhex(op["public_key"]),
                sequencer_public_key=bytes.fromhex(d["sequencer_public_key"]),
                params=Params.from_dict(d.get("params", {})),
                emission_factors=tuple(FactorRow.from_list(r, f"genesis.emission_factors[{i}]")
                                       for i, r in enumerate(d.get("emission_factors", []))),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise MalformedError("genesis", f"invalid genesis file: {exc}") from None
        if len(g.operator_public_key) != 32 or len(g.sequencer_public_key) != 32:
            raise MalformedError("genesis", "public keys must be 32 bytes (64 hex digits)")
        for name, pk in (("operator.public_key", g.operator_public_key),
                         ("sequencer_public_key", g.sequencer_public_key)):
            need_public_key(pk, f"genesis.{name}")
        return g


def state_from_genesis(g: Genesis) -> State:
    st = State(g.chain_id, g.params, g.hash)
    st.operator_id = g.operator_id
    st.sequencer_key = g.sequencer_public_key
    st.accounts[g.operator_id] = Account(g.operator_id, g.operator_name, OPERATOR, g.operator_public_key)
    st.mark(f"a/{g.operator_id}")
    st.mark("s")
    st.set_factor_rows(list(g.emission_factors))
    st.last_block_hash = g.hash
    st.last_time = g.genesis_time
    st.seal()
    return st
