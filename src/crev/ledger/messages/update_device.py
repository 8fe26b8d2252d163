"""update_device: the operator changes a device's registration; history stays in the chain.

body = [device_id, [[field, value], ...]] with fields among ``public_key`` (key rotation),
``rated_capacity_w``, ``meter_serial``, ``certified_until``, ``fit`` and ``owner``.

A rotated-out key stays valid for readings of intervals that ended by the rotation's block time
(so readings queued in a gateway are not lost); it signs nothing newer. To refuse everything a key
ever signed, revoke it (revoke_device).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError, MalformedError, NotFoundError, RuleError
from crev.ledger.events import DeviceUpdated
from crev.ledger.messages.common import active_device, refuse_delegate_key, require_operator
from crev.ledger.messages.register_device import MAX_CAPACITY_W
from crev.ledger.params import Params
from crev.ledger.records import PROSUMER, DeviceKey
from crev.ledger.shape import need_bool, need_id, need_int, need_list, need_public_key, need_text, need_time
from crev.ledger.tx import register

FIELDS = ("public_key", "rated_capacity_w", "meter_serial", "certified_until", "fit", "owner")


@dataclass(frozen=True, slots=True)
class UpdateDevice:
    kind: ClassVar[str] = "update_device"
    device_id: str
    changes: tuple[tuple[str, Any], ...]

    def to_body(self) -> list[Any]:
        return [self.device_id, [[f, v] for f, v in self.changes]]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        dev = active_device(ctx, self.device_id)
        ch = dict(self.changes)
        if "public_key" in ch and any(k.public_key == ch["public_key"] for k in dev.keys):
            raise ConflictError("body.changes.public_key", "this key was already used by the device")
        if "public_key" in ch:
            refuse_delegate_key(ctx, ch["public_key"], "body.changes.public_key")
        if "owner" in ch:
            owner = st.accounts.get(ch["owner"])
            if owner is None:
                raise NotFoundError("body.changes.owner", f"no participant {ch['owner']!r}")
            if owner.role != PROSUMER:
                raise RuleError("body.changes.owner", "devices belong to prosumers")
        if "meter_serial" in ch:
            other = st.meter_serials.get(ch["meter_serial"])
            if other is not None and other != dev.device_id:
                raise ConflictError("body.changes.meter_serial", f"used by {other!r}")
        for f, v in self.changes:
            if f == "meter_serial":
                st.meter_serials.pop(dev.meter_serial, None)
                st.meter_serials[v] = dev.device_id
            if f == "public_key":
                # the old key signs intervals ending up to the rotation; the new one those after
                dev.keys[-1].valid_until = max(ctx.time, 1)
                dev.keys.append(DeviceKey(v, max(ctx.time, 1) + 1, 0))
            else:
                setattr(dev, f, v)
        st.mark(f"d/{dev.device_id}")
        ctx.emit(DeviceUpdated(dev.device_id, tuple(f for f, _ in self.changes)))
        return [dev.device_id]


@register(UpdateDevice.kind)
def from_body(body: Any, params: Params) -> UpdateDevice:
    b = need_list(body, "body", 2)
    device_id = need_id(b[0], "body.device_id")
    items = need_list(b[1], "body.changes")
    if not items:
        raise MalformedError("body.changes", "must list at least one change")
    seen: set[str] = set()
    out: list[tuple[str, Any]] = []
    for i, item in enumerate(items):
        where = f"body.changes[{i}]"
        f, v = need_list(item, where, 2)
        if f not in FIELDS:
            raise MalformedError(f"{where}.field", f"must be one of {', '.join(FIELDS)}")
        if f in seen:
            raise MalformedError(f"{where}.field", f"{f} listed twice")
        seen.add(f)
        if f == "public_key":
            v = need_public_key(v, f"{where}.value")
        elif f == "rated_capacity_w":
            v = need_int(v, f"{where}.value", 1, MAX_CAPACITY_W)
        elif f in ("meter_serial",):
            v = need_text(v, f"{where}.value", 64)
        elif f == "certified_until":
            v = need_time(v, f"{where}.value")
        elif f == "fit":
            v = need_bool(v, f"{where}.value")
        elif f == "owner":
            v = need_id(v, f"{where}.value")
        out.append((f, v))
    return UpdateDevice(device_id, tuple(out))
