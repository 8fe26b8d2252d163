"""The ledger's fixed vocabularies, shared by the messages that carry them and the checks that
read them (a device's grid area and technology, a retirement's purpose). Changing one changes
what the ledger accepts: add, never rename.
"""

from __future__ import annotations

from typing import Final

#: Japan's ten general transmission and distribution areas (一般送配電事業者の供給区域).
GRID_AREAS: Final[tuple[str, ...]] = ("hokkaido", "tohoku", "tokyo", "chubu", "hokuriku", "kansai", "chugoku",
                                      "shikoku", "kyushu", "okinawa")
#: Generation technologies a device may register with.
TECHNOLOGIES: Final[tuple[str, ...]] = ("solar_pv",)
#: What a retirement is claimed for.
PURPOSES: Final[tuple[str, ...]] = ("statutory_report", "re100", "cdp", "sbti", "voluntary", "other")
#: Why a DGC limited its inverter's output (a control record's reason).
CONTROL_REASONS: Final[tuple[str, ...]] = (
    "released",  # no limit: the inverter runs at its rated capacity
    "zero_export",  # a site without reverse power flow (逆潮流なし)
    "export_cap",  # a contracted cap on export at the grid point
    "export_unpaid",  # export worth less than the owner's threshold
    "grid_operator",  # the grid operator's output-control schedule (出力制御)
)
