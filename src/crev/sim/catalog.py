"""Static reference data for the fleet generator: grid areas, cities, company names.

Coordinates are city-centre values [deg] (WGS84, rounded to 3 decimals). Each city is tagged with
the general-electricity-utility service area it lies in and with a coarse climate class that
drives the cloudiness climatology in :mod:`crev.sim.weather`:

``pacific``
    Pacific-side Japan: sunny, dry winters; cloudy rainy season (tsuyu) in June–July.
``japan_sea``
    Sea-of-Japan side and northern interior: overcast, snowy winters.
``subtropical``
    Okinawa: cloudy winters and an early (May–June) rainy season, sunny midsummer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from crev.ledger.vocab import GRID_AREAS as GRID_AREAS  # the areas the ledger accepts

LOAD_KINDS: Final[tuple[str, ...]] = ("office", "factory", "retail", "warehouse")

CLIMATES: Final[tuple[str, ...]] = ("pacific", "japan_sea", "subtropical")

# Relative share of simulated sites per grid area [-], roughly proportional to each area's
# electricity demand. Normalised by the caller.
AREA_WEIGHTS: Final[dict[str, float]] = {
    "hokkaido": 3.5,
    "tohoku": 9.0,
    "tokyo": 30.0,
    "chubu": 14.0,
    "hokuriku": 3.0,
    "kansai": 16.0,
    "chugoku": 6.5,
    "shikoku": 3.0,
    "kyushu": 9.5,
    "okinawa": 1.0,
}


@dataclass(frozen=True)
class City:
    """A city a simulated site can be placed in."""

    name: str  # English name
    name_ja: str  # Japanese name
    grid_area: str  # one of GRID_AREAS
    latitude: float  # [deg], north positive
    longitude: float  # [deg], east positive
    climate: str  # one of CLIMATES


CITIES: Final[tuple[City, ...]] = (
    City("Sapporo", "札幌", "hokkaido", 43.062, 141.354, "japan_sea"),
    City("Asahikawa", "旭川", "hokkaido", 43.771, 142.365, "japan_sea"),
    City("Tomakomai", "苫小牧", "hokkaido", 42.634, 141.605, "pacific"),
    City("Sendai", "仙台", "tohoku", 38.268, 140.870, "pacific"),
    City("Koriyama", "郡山", "tohoku", 37.400, 140.360, "pacific"),
    City("Morioka", "盛岡", "tohoku", 39.702, 141.154, "pacific"),
    City("Akita", "秋田", "tohoku", 39.720, 140.103, "japan_sea"),
    City("Niigata", "新潟", "tohoku", 37.916, 139.036, "japan_sea"),
    City("Tokyo", "東京", "tokyo", 35.690, 139.692, "pacific"),
    City("Saitama", "さいたま", "tokyo", 35.861, 139.645, "pacific"),
    City("Yokohama", "横浜", "tokyo", 35.444, 139.638, "pacific"),
    City("Kawasaki", "川崎", "tokyo", 35.531, 139.703, "pacific"),
    City("Chiba", "千葉", "tokyo", 35.607, 140.106, "pacific"),
    City("Utsunomiya", "宇都宮", "tokyo", 36.555, 139.883, "pacific"),
    City("Nagoya", "名古屋", "chubu", 35.181, 136.906, "pacific"),
    City("Toyota", "豊田", "chubu", 35.083, 137.156, "pacific"),
    City("Hamamatsu", "浜松", "chubu", 34.711, 137.726, "pacific"),
    City("Shizuoka", "静岡", "chubu", 34.976, 138.383, "pacific"),
    City("Gifu", "岐阜", "chubu", 35.423, 136.761, "pacific"),
    City("Nagano", "長野", "chubu", 36.648, 138.194, "pacific"),
    City("Kanazawa", "金沢", "hokuriku", 36.561, 136.656, "japan_sea"),
    City("Toyama", "富山", "hokuriku", 36.695, 137.211, "japan_sea"),
    City("Fukui", "福井", "hokuriku", 36.064, 136.219, "japan_sea"),
    City("Osaka", "大阪", "kansai", 34.694, 135.502, "pacific"),
    City("Kobe", "神戸", "kansai", 34.690, 135.196, "pacific"),
    City("Kyoto", "京都", "kansai", 35.012, 135.768, "pacific"),
    City("Sakai", "堺", "kansai", 34.573, 135.483, "pacific"),
    City("Himeji", "姫路", "kansai", 34.816, 134.686, "pacific"),
    City("Hiroshima", "広島", "chugoku", 34.385, 132.455, "pacific"),
    City("Okayama", "岡山", "chugoku", 34.655, 133.919, "pacific"),
    City("Kurashiki", "倉敷", "chugoku", 34.585, 133.772, "pacific"),
    City("Matsue", "松江", "chugoku", 35.468, 133.048, "japan_sea"),
    City("Takamatsu", "高松", "shikoku", 34.340, 134.043, "pacific"),
    City("Matsuyama", "松山", "shikoku", 33.839, 132.766, "pacific"),
    City("Kochi", "高知", "shikoku", 33.559, 133.531, "pacific"),
    City("Tokushima", "徳島", "shikoku", 34.070, 134.555, "pacific"),
    City("Fukuoka", "福岡", "kyushu", 33.590, 130.402, "pacific"),
    City("Kitakyushu", "北九州", "kyushu", 33.883, 130.875, "pacific"),
    City("Kumamoto", "熊本", "kyushu", 32.803, 130.708, "pacific"),
    City("Kagoshima", "鹿児島", "kyushu", 31.597, 130.557, "pacific"),
    City("Oita", "大分", "kyushu", 33.238, 131.613, "pacific"),
    City("Naha", "那覇", "okinawa", 26.212, 127.681, "subtropical"),
    City("Okinawa", "沖縄", "okinawa", 26.334, 127.806, "subtropical"),
    City("Urasoe", "浦添", "okinawa", 26.246, 127.722, "subtropical"),
)


@dataclass(frozen=True)
class Industry:
    """A line of business: the second half of an owner's name and the kinds of site it runs."""

    name: str  # English, e.g. "Foods"
    name_ja: str  # Japanese, e.g. "フーズ"
    kinds: tuple[tuple[str, float], ...]  # (load_kind, relative weight [-])


INDUSTRIES: Final[tuple[Industry, ...]] = (
    Industry("Foods", "フーズ", (("factory", 0.6), ("warehouse", 0.25), ("retail", 0.15))),
    Industry("Metal Works", "金属工業", (("factory", 0.9), ("office", 0.1))),
    Industry("Electronics", "電子", (("factory", 0.7), ("office", 0.3))),
    Industry("Chemical", "化学", (("factory", 0.8), ("warehouse", 0.2))),
    Industry("Plastics", "樹脂工業", (("factory", 1.0),)),
    Industry("Logistics", "ロジスティクス", (("warehouse", 0.85), ("office", 0.15))),
    Industry("Trading", "商事", (("office", 0.6), ("warehouse", 0.4))),
    Industry("Systems", "システムズ", (("office", 1.0),)),
    Industry("Mart", "マート", (("retail", 0.9), ("warehouse", 0.1))),
    Industry("Home Center", "ホームセンター", (("retail", 1.0),)),
    Industry("Drugstores", "ドラッグ", (("retail", 1.0),)),
)

# Invented brand words for owners not named after their home city: (English, Japanese).
BRANDS: Final[tuple[tuple[str, str], ...]] = (
    ("Sakura", "さくら"),
    ("Aozora", "あおぞら"),
    ("Hikari", "ひかり"),
    ("Midori", "みどり"),
    ("Kaede", "かえで"),
    ("Tsubasa", "つばさ"),
    ("Hinode", "日の出"),
    ("Minato", "みなと"),
    ("Wakaba", "わかば"),
    ("Takumi", "匠"),
    ("Seiryu", "清流"),
    ("Hoshizora", "星空"),
)

# Facility words per load kind: (English, Japanese).
FACILITY: Final[dict[str, tuple[str, str]]] = {
    "office": ("Office", "事業所"),
    "factory": ("Plant", "工場"),
    "retail": ("Store", "店"),
    "warehouse": ("Distribution Center", "物流センター"),
}
