"""reset_participant_key: the operator replaces a participant's key (lost or stolen) or revokes it.

body = [account_id, public_key or b"" to revoke, reason]

A participant rotates its own key with ``rotate_key``; this is the registry's path for when the
participant no longer controls its key. After a revocation nothing signed by the account is
accepted (its holdings stay where they are) until the operator sets a new key. The operator cannot
revoke its own key: the registry would have no one left to sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.core.signing import PUBLIC_KEY_LEN
from crev.errors import ConflictError, MalformedError, RuleError
from crev.ledger.events import ParticipantKeyReset
from crev.ledger.messages.common import existing_account, require_operator
from crev.ledger.params import Params
from crev.ledger.shape import need_id, need_list, need_public_key, need_text
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class ResetParticipantKey:
    kind: ClassVar[str] = "reset_participant_key"
    account_id: str
    public_key: bytes
    reason: str

    def to_body(self) -> list[Any]:
        return [self.account_id, self.public_key, self.reason]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        acct = existing_account(ctx, self.account_id)
        if not self.public_key and acct.account_id == ctx.signer.account_id:
            raise RuleError("body.public_key", "the operator cannot revoke its own key")
        if acct.public_key == self.public_key:
            what = "already revoked" if not self.public_key else "already this participant's key"
            raise ConflictError("body.public_key", f"is {what}")
        acct.public_key = self.public_key
        st.mark(f"a/{acct.account_id}")
        ctx.emit(ParticipantKeyReset(acct.account_id, self.public_key, self.reason))
        return [acct.account_id]


@register(ResetParticipantKey.kind)
def from_body(body: Any, params: Params) -> ResetParticipantKey:
    b = need_list(body, "body", 3)
    pk = b[1]
    if not isinstance(pk, bytes) or len(pk) not in (0, PUBLIC_KEY_LEN):
        raise MalformedError("body.public_key", f"must be a {PUBLIC_KEY_LEN}-byte key, or empty to revoke")
    if pk:
        need_public_key(pk, "body.public_key")
    return ResetParticipantKey(need_id(b[0], "body.account_id"), pk,
                               need_text(b[2], "body.reason", params.max_text_len))
