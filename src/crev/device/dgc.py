"""A DGC's signing agent: cumulative registers in, signed readings out.

The agent owns the device key and three registers (generation, import, export) [Wh]. Each
metering interval it adds the interval's energy to the registers (wrapping at
``REGISTER_MODULUS_WH``), assigns the next sequence number and signs the canonical payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crev.core.encoding import encode
from crev.core.metering import REGISTER_MODULUS_WH
from crev.core.signing import Signer
from crev.ledger.messages.submit_readings import reading_payload


@dataclass
class DgcAgent:
    chain_id: str
    device_id: str
    key: Signer
    seq: int = 0
    generation_register_wh: int = 0
    import_register_wh: int = 0
    export_register_wh: int = 0

    def reading(self, interval_start: int, interval_s: int, generation_wh: int, import_wh: int,
                export_wh: int) -> list[Any]:
        """Advance the registers by one interval and return the signed 13-element reading."""
        self.seq += 1
        self.generation_register_wh = (self.generation_register_wh + generation_wh) % REGISTER_MODULUS_WH
        self.import_register_wh = (self.import_register_wh + import_wh) % REGISTER_MODULUS_WH
        self.export_register_wh = (self.export_register_wh + export_wh) % REGISTER_MODULUS_WH
        payload = reading_payload(self.chain_id, self.device_id, self.seq, interval_start, interval_s,
                                  generation_wh, import_wh, export_wh, self.generation_register_wh,
                                  self.import_register_wh, self.export_register_wh)
        return [*payload, self.key.sign(encode(payload))]
