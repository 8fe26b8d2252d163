"""reset_participant_key: the operator replaces a participant's key (lost or stolen) or revokes it.

body = [account_id, public_key or b"" to revoke, reason] or [account_id, public_key or b"", reason, blind]

A participant rotates its own key with ``rotate_key``; this is the registry's path for when the
participant no longer controls its key. After a revocation nothing signed by the account is
accepted (its holdings stay where they are) until the operator sets a new key. The operator cannot
revoke its own key: the registry would have no one left to sign.

With ``blind`` (16 bytes, ledger/blinding.py) the account's record takes that blinding value, and
the key may then stay the same: this is how the operator blinds an account registered before
blinds without touching its key. The transaction's bytes hold the blind, so the public API
withholds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.core.signing import PUBLIC_KEY_LEN
from crev.errors import ConflictError, MalformedError, RuleError
from crev.ledger.blinding import need_blind
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
    blind: bytes = b""  # 16 random bytes: the account's new blinding value; b"" keeps the one it has

    def to_body(self) -> list[Any]:
        body = [self.account_id, self.public_key, self.reason]
        return [*body, self.blind] if self.blind else body

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        acct = existing_account(ctx, self.account_id)
        if not self.public_key and acct.account_id == ctx.signer.account_id:
            raise RuleError("body.public_key", "the operator cannot revoke its own key")
        if acct.public_key == self.public_key and not self.blind:
            what = "already revoked" if not self.public_key else "already this participant's key"
            raise ConflictError("body.public_key", f"is {what}")
        acct.public_key = self.public_key
        if self.blind:
            acct.blind = self.blind
        st.mark(f"a/{acct.account_id}")
        ctx.emit(ParticipantKeyReset(acct.account_id, self.public_key, self.reason))
        return [acct.account_id]


@register(ResetParticipantKey.kind)
def from_body(body: Any, params: Params) -> ResetParticipantKey:
    b = need_list(body, "body")
    if len(b) not in (3, 4):
        raise MalformedError("body", f"must have 3 elements, or 4 with a blind last; found {len(b)}")
    pk = b[1]
    if not isinstance(pk, bytes) or len(pk) not in (0, PUBLIC_KEY_LEN):
        raise MalformedError("body.public_key", f"must be a {PUBLIC_KEY_LEN}-byte key, or empty to revoke")
    if pk:
        need_public_key(pk, "body.public_key")
    return ResetParticipantKey(need_id(b[0], "body.account_id"), pk,
                               need_text(b[2], "body.reason", params.max_text_len),
                               need_blind(b[3], "body.blind") if len(b) == 4 else b"")
