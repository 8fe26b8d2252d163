"""rotate_key: a participant replaces its own key (signed with the current key).

body = [new_public_key]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError
from crev.ledger.events import KeyRotated
from crev.ledger.params import Params
from crev.ledger.shape import need_list, need_public_key
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class RotateKey:
    kind: ClassVar[str] = "rotate_key"
    public_key: bytes

    def to_body(self) -> list[Any]:
        return [self.public_key]

    def handle(self, ctx: Any) -> Any:
        acct = ctx.signer
        if acct.public_key == self.public_key:
            raise ConflictError("body.public_key", "is already this participant's key")
        acct.public_key = self.public_key
        ctx.state.mark(f"a/{acct.account_id}")
        ctx.emit(KeyRotated(acct.account_id, self.public_key))
        return [acct.account_id]


@register(RotateKey.kind)
def from_body(body: Any, params: Params) -> RotateKey:
    b = need_list(body, "body", 1)
    return RotateKey(need_public_key(b[0], "body.public_key"))
