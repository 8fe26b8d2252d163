"""register_device: the operator registers a DGC meter controller and its signing key.

body = [device_id, owner, public_key, rated_capacity_w, commissioned, latitude_e6, longitude_e6,
        grid_area, meter_serial, certified_until, fit, technology]

``commissioned`` and ``certified_until`` are unix seconds: readings for intervals before
commissioning or ending after the meter's certification expiry are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError, MalformedError, NotFoundError, RuleError
from crev.ledger.events import DeviceRegistered
from crev.ledger.messages.common import refuse_delegate_key, require_operator
from crev.ledger.params import Params
from crev.ledger.records import PROSUMER, Device, DeviceKey
from crev.ledger.shape import need_bool, need_id, need_int, need_list, need_public_key, need_text, need_time
from crev.ledger.tx import register
from crev.ledger.vocab import GRID_AREAS, TECHNOLOGIES

MAX_CAPACITY_W = 2_000_000_000  # 2 GW: beyond any single site


@dataclass(frozen=True, slots=True)
class RegisterDevice:
    kind: ClassVar[str] = "register_device"
    device_id: str
    owner: str
    public_key: bytes
    rated_capacity_w: int
    commissioned: int
    latitude_e6: int
    longitude_e6: int
    grid_area: str
    meter_serial: str
    certified_until: int
    fit: bool
    technology: str

    def to_body(self) -> list[Any]:
        return [self.device_id, self.owner, self.public_key, self.rated_capacity_w, self.commissioned,
                self.latitude_e6, self.longitude_e6, self.grid_area, self.meter_serial,
                self.certified_until, self.fit, self.technology]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        if self.device_id in st.devices:
            raise ConflictError("body.device_id", f"device {self.device_id!r} already exists")
        owner = st.accounts.get(self.owner)
        if owner is None:
            raise NotFoundError("body.owner", f"no participant {self.owner!r}")
        if owner.role != PROSUMER:
            raise RuleError("body.owner", f"{self.owner!r} is a {owner.role}; devices belong to prosumers")
        other = st.meter_serials.get(self.meter_serial)
        if other is not None:
            raise ConflictError("body.meter_serial", f"meter already registered as {other!r}")
        refuse_delegate_key(ctx, self.public_key, "body.public_key")
        st.devices[self.device_id] = Device(
            self.device_id, self.owner, self.rated_capacity_w, self.commissioned, self.latitude_e6,
            self.longitude_e6, self.grid_area, self.meter_serial, self.certified_until, self.fit,
            self.technology, keys=[DeviceKey(self.public_key, 0, 0)],
        )
        st.meter_serials[self.meter_serial] = self.device_id
        st.mark(f"d/{self.device_id}")
        ctx.emit(DeviceRegistered(self.device_id, self.owner, self.rated_capacity_w, self.grid_area,
                                  self.fit, self.public_key))
        return [self.device_id]


@register(RegisterDevice.kind)
def from_body(body: Any, params: Params) -> RegisterDevice:
    b = need_list(body, "body", 12)
    msg = RegisterDevice(
        need_id(b[0], "body.device_id"),
        need_id(b[1], "body.owner"),
        need_public_key(b[2], "body.public_key"),
        need_int(b[3], "body.rated_capacity_w", 1, MAX_CAPACITY_W),
        need_time(b[4], "body.commissioned"),
        need_int(b[5], "body.latitude_e6", -90_000_000, 90_000_000),
        need_int(b[6], "body.longitude_e6", -180_000_000, 180_000_000),
        need_text(b[7], "body.grid_area", 32),
        need_text(b[8], "body.meter_serial", 64),
        need_time(b[9], "body.certified_until"),
        need_bool(b[10], "body.fit"),
        need_text(b[11], "body.technology", 32),
    )
    if msg.grid_area not in GRID_AREAS:
        raise MalformedError("body.grid_area", f"must be one of {', '.join(GRID_AREAS)}")
    if msg.technology not in TECHNOLOGIES:
        raise MalformedError("body.technology", f"must be one of {', '.join(TECHNOLOGIES)}")
    if msg.certified_until <= msg.commissioned:
        raise MalformedError("body.certified_until", "must be after the commissioning date")
    return msg
