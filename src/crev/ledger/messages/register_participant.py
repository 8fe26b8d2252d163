"""register_participant: the operator admits a participant with a role and an Ed25519 key.

body = [account_id, name, role, public_key] or [account_id, name, role, public_key, blind]

``blind`` (16 bytes, ledger/blinding.py) is the account record's blinding value: the operator's
tooling draws it at random for every new participant, so that the record's leaf hash, which any
public state proof of its bucket lists, cannot be searched for the account's JPY. It is stored in
the record and never emitted (the event and the detail stay public); the transaction's bytes hold
it, so the public API withholds them (docs/api.md, "What is public"). A body without it (the
4-element form every chain before blinds used) registers an unblinded account, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError, MalformedError
from crev.ledger.blinding import need_blind
from crev.ledger.events import ParticipantRegistered
from crev.ledger.messages.common import require_operator
from crev.ledger.params import Params
from crev.ledger.records import ROLES, Account
from crev.ledger.shape import need_choice, need_id, need_list, need_public_key, need_text
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class RegisterParticipant:
    kind: ClassVar[str] = "register_participant"
    account_id: str
    name: str
    role: str
    public_key: bytes
    blind: bytes = b""  # 16 random bytes, or b"" for none (the 4-element body)

    def to_body(self) -> list[Any]:
        body = [self.account_id, self.name, self.role, self.public_key]
        return [*body, self.blind] if self.blind else body

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        if self.account_id in st.accounts:
            raise ConflictError("body.account_id", f"participant {self.account_id!r} already exists")
        dlg = st.delegates.get(self.account_id)
        if dlg is not None:
            raise ConflictError("body.account_id", f"{self.account_id!r} is a delegate of {dlg.owner}: "
                                                   "account ids and delegate ids share one namespace")
        st.accounts[self.account_id] = Account(self.account_id, self.name, self.role, self.public_key,
                                               registered_height=ctx.height, blind=self.blind)
        st.mark(f"a/{self.account_id}")
        ctx.emit(ParticipantRegistered(self.account_id, self.name, self.role, self.public_key))
        return [self.account_id]


@register(RegisterParticipant.kind)
def from_body(body: Any, params: Params) -> RegisterParticipant:
    b = need_list(body, "body")
    if len(b) not in (4, 5):
        raise MalformedError("body", f"must have 4 elements, or 5 with a blind last; found {len(b)}")
    return RegisterParticipant(
        need_id(b[0], "body.account_id"),
        need_text(b[1], "body.name", params.max_text_len),
        need_choice(b[2], "body.role", ROLES),
        need_public_key(b[3], "body.public_key"),
        need_blind(b[4], "body.blind") if len(b) == 5 else b"",
    )
