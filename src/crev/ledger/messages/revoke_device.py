"""revoke_device: the operator revokes one device key (compromised: every reading it signs is
refused from now on, whatever its interval) or the whole device (decommissioned).

body = [device_id, public_key or b"" for the whole device, reason]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import MalformedError, NotFoundError, RuleError
from crev.ledger.events import DeviceKeyRevoked, DeviceRevoked
from crev.ledger.messages.common import active_device, require_operator
from crev.ledger.params import Params
from crev.ledger.shape import need_id, need_list, need_text
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class RevokeDevice:
    kind: ClassVar[str] = "revoke_device"
    device_id: str
    public_key: bytes
    reason: str

    def to_body(self) -> list[Any]:
        return [self.device_id, self.public_key, self.reason]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        dev = active_device(ctx, self.device_id)
        if self.public_key:
            key = next((k for k in dev.keys if k.public_key == self.public_key), None)
            if key is None:
                raise NotFoundError("body.public_key", "not a key of this device")
            if key.revoked:
                raise RuleError("body.public_key", "key is already revoked")
            key.revoked = True
            ctx.emit(DeviceKeyRevoked(dev.device_id, self.public_key))
        else:
            dev.active = False
            ctx.emit(DeviceRevoked(dev.device_id, self.reason))
        st.mark(f"d/{dev.device_id}")
        return [dev.device_id]


@register(RevokeDevice.kind)
def from_body(body: Any, params: Params) -> RevokeDevice:
    b = need_list(body, "body", 3)
    pk = b[1]
    if not isinstance(pk, bytes) or len(pk) not in (0, 32):
        raise MalformedError("body.public_key", "must be a 32-byte key, or empty to revoke the device")
    return RevokeDevice(need_id(b[0], "body.device_id"), pk, need_text(b[2], "body.reason",
                                                                       params.max_text_len))
