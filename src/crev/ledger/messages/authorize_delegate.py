"""authorize_delegate: an account authorises another key to sign some of its transactions on the
ledger, or withdraws that authority. Signed by the owner account itself.

body = [action, delegate_id, public_key, kinds, valid_until]

* ``grant``: ``delegate_id`` (an id no account holds) may sign ``kinds`` (one or more of
  ``set_offer_policy``, ``place_order``, ``cancel_order``; no kind twice) with ``public_key`` until
  ``valid_until`` (unix s, after the block time; 0 = open). Granting an id the same owner granted
  before replaces its key, kinds and validity and lifts a revocation; its nonce goes on.
* ``revoke``: ``delegate_id`` signs nothing from now on; ``public_key`` b"", ``kinds`` [] and
  ``valid_until`` 0. The record stays (its id stays taken, its nonce is kept).

A site's DGC holds such a key to place its site's offers without the owner's key, and never with
its device key: the delegate's key may not be the owner's key nor any key of any device. A
delegate places asks only (messages/place_order.py), so it can never spend the owner's JPY.
How a delegate's transaction is authenticated: ``ledger.apply.authenticate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError, MalformedError, NotFoundError, PermissionError_, RuleError
from crev.ledger.events import DelegateGranted, DelegateRevoked
from crev.ledger.params import Params
from crev.ledger.records import DELEGABLE_KINDS, Account, Delegate
from crev.ledger.shape import need_choice, need_id, need_list, need_public_key, need_time
from crev.ledger.state import State
from crev.ledger.tx import register

GRANT = "grant"
REVOKE = "revoke"


@dataclass(frozen=True, slots=True)
class AuthorizeDelegate:
    kind: ClassVar[str] = "authorize_delegate"
    action: str
    delegate_id: str
    public_key: bytes
    kinds: tuple[str, ...]
    valid_until: int

    def to_body(self) -> list[Any]:
        return [self.action, self.delegate_id, self.public_key, list(self.kinds), self.valid_until]

    def handle(self, ctx: Any) -> Any:
        st: State = ctx.state
        owner: Account = ctx.signer
        if self.delegate_id in st.accounts:
            raise ConflictError("body.delegate_id", f"{self.delegate_id!r} is a participant's account id: "
                                                    "delegate ids and account ids share one namespace")
        dlg = st.delegates.get(self.delegate_id)
        if self.action == REVOKE:
            return self._revoke(ctx, owner, dlg)
        if dlg is not None and dlg.owner != owner.account_id:
            raise ConflictError("body.delegate_id", f"{self.delegate_id!r} is a delegate of {dlg.owner}, "
                                                    "not of the signer")
        if self.valid_until and self.valid_until <= ctx.time:
            raise RuleError("body.valid_until", f"{self.valid_until} is not after the block time {ctx.time}")
        if self.public_key == owner.public_key:
            raise RuleError("body.public_key", f"is {owner.account_id}'s own key: a delegate needs a key of "
                                               "its own, so that it can be revoked alone")
        for dev in st.devices.values():
            if any(k.public_key == self.public_key for k in dev.keys):
                raise RuleError("body.public_key", f"is a key of device {dev.device_id}: a device key signs "
                                                   "its readings only, never a ledger transaction")
        if dlg is None:
            dlg = Delegate(self.delegate_id, owner.account_id, self.public_key, list(self.kinds),
                           self.valid_until, granted_height=ctx.height)
            st.delegates[self.delegate_id] = dlg
        else:
            dlg.public_key, dlg.kinds, dlg.valid_until = self.public_key, list(self.kinds), self.valid_until
            dlg.revoked, dlg.granted_height = False, ctx.height
        st.mark(f"k/{self.delegate_id}")
        ctx.emit(DelegateGranted(self.delegate_id, owner.account_id, self.public_key, self.kinds,
                                 self.valid_until))
        return [self.delegate_id]

    def _revoke(self, ctx: Any, owner: Account, dlg: Delegate | None) -> Any:
        if dlg is None:
            raise NotFoundError("body.delegate_id", f"no delegate {self.delegate_id!r}")
        if dlg.owner != owner.account_id:
            raise PermissionError_("body.delegate_id", f"{self.delegate_id} is a delegate of {dlg.owner}: "
                                                       "only its owner can revoke it")
        if dlg.revoked:
            raise ConflictError("body.delegate_id", f"{self.delegate_id} is already revoked")
        dlg.revoked = True
        ctx.state.mark(f"k/{self.delegate_id}")
        ctx.emit(DelegateRevoked(self.delegate_id, owner.account_id))
        return [self.delegate_id]


@register(AuthorizeDelegate.kind)
def from_body(body: Any, params: Params) -> AuthorizeDelegate:
    b = need_list(body, "body", 5)
    action = need_choice(b[0], "body.action", (GRANT, REVOKE))
    delegate_id = need_id(b[1], "body.delegate_id")
    kinds_v = need_list(b[3], "body.kinds")
    if action == REVOKE:
        if b[2] != b"":
            raise MalformedError("body.public_key", "a revoke names no key: must be the empty byte string")
        if kinds_v:
            raise MalformedError("body.kinds", "a revoke names no kinds: must be []")
        if type(b[4]) is not int or b[4] != 0:
            raise MalformedError("body.valid_until", "a revoke has no validity: must be 0")
        return AuthorizeDelegate(REVOKE, delegate_id, b"", (), 0)
    public_key = need_public_key(b[2], "body.public_key")
    if not kinds_v:
        raise MalformedError("body.kinds", f"must name at least one of {', '.join(DELEGABLE_KINDS)}")
    kinds: list[str] = []
    for i, k in enumerate(kinds_v):
        if k not in DELEGABLE_KINDS:
            raise MalformedError(f"body.kinds[{i}]", f"a delegate may sign only {', '.join(DELEGABLE_KINDS)}"
                                                     f" (found {k!r})")
        if k in kinds:
            raise MalformedError(f"body.kinds[{i}]", f"{k} is listed twice")
        kinds.append(k)
    return AuthorizeDelegate(GRANT, delegate_id, public_key, tuple(kinds), need_time(b[4], "body.valid_until"))
