"""rotate_key: a participant replaces its own key (signed with the current key).

body = [new_public_key] or [new_public_key, blind]

With ``blind`` (16 bytes, ledger/blinding.py) the account's record takes that blinding value
(a new one, or its first: an account registered before blinds blinds itself this way). Only then
may the key stay the same: a rotation to the current key without a blind changes nothing and is
refused. The transaction's bytes hold the blind, so the public API withholds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError, MalformedError
from crev.ledger.blinding import need_blind
from crev.ledger.events import KeyRotated
from crev.ledger.params import Params
from crev.ledger.shape import need_list, need_public_key
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class RotateKey:
    kind: ClassVar[str] = "rotate_key"
    public_key: bytes
    blind: bytes = b""  # 16 random bytes: the account's new blinding value; b"" keeps the one it has

    def to_body(self) -> list[Any]:
        return [self.public_key, self.blind] if self.blind else [self.public_key]

    def handle(self, ctx: Any) -> Any:
        acct = ctx.signer
        if acct.public_key == self.public_key and not self.blind:
            raise ConflictError("body.public_key", "is already this participant's key")
        acct.public_key = self.public_key
        if self.blind:
            acct.blind = self.blind
        ctx.state.mark(f"a/{acct.account_id}")
        ctx.emit(KeyRotated(acct.account_id, self.public_key))
        return [acct.account_id]


@register(RotateKey.kind)
def from_body(body: Any, params: Params) -> RotateKey:
    b = need_list(body, "body")
    if len(b) not in (1, 2):
        raise MalformedError("body", f"must have 1 element, or 2 with a blind last; found {len(b)}")
    return RotateKey(need_public_key(b[0], "body.public_key"),
                     need_blind(b[1], "body.blind") if len(b) == 2 else b"")
