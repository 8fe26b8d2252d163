"""submit_meter_values: a batch of the utility smart meter's 30-minute values, each signed by the
device (DGC) that read them.

body = [item, ...]; an item is the 11-element array

    [ "crev/meter/1", chain_id, device_id, slot_start, import_wh, export_wh,
      import_register_wh, export_register_wh, resolution_wh, meter_id, signature ]

The device signs the canonical encoding of the first ten elements. The item hash is SHA-256 of all
eleven.
"""

from __future__ import annotations

from typing import Any

METER_VERSION = "crev/meter/1"


def meter_values_payload(chain_id: str, device_id: str, slot_start: int, import_wh: int, export_wh: int,
                         import_register_wh: int, export_register_wh: int, resolution_wh: int,
                         meter_id: str) -> list[Any]:
    """The ten signed elements of a smart-meter item, in order (sign ``encode(payload)`` and append
    the signature to send it)."""
    return [METER_VERSION, chain_id, device_id, slot_start, import_wh, export_wh, import_register_wh,
            export_register_wh, resolution_wh, meter_id]
