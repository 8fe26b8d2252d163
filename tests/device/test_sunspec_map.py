"""SunSpec register maps written out by hand → the values crev reads from them.

Each image is the words of a small but complete map; comments give each point's offset from the
model's ID register as the SunSpec model definitions (github.com/sunspec/models, model_<id>.json)
lay them out. The adapter's parsing runs against an in-memory register image, the real fake for
the Modbus unit (tests/device/test_sunspec_tcp.py runs it over sockets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from crev.device import sunspec as ss
from crev.errors import DeviceError


class RegisterImage:
    """Holding registers in memory: unmapped addresses answer "illegal data address"."""

    def __init__(self, name: str, blocks: dict[int, list[int]]) -> None:
        self.name = name
        self.words = {base + i: w for base, block in blocks.items() for i, w in enumerate(block)}
        self.writes: list[tuple[int, int]] = []
        self.on_write: Callable[[int, int], None] | None = None  # tests make the device misbehave here

    def read(self, address: int, count: int, field: str) -> list[int]:
        if any(a not in self.words for a in range(address, address + count)):
            raise ss.IllegalAddress(f"{self.name}.{field}", f"exception response 2 at {address}")
        return [self.words[a] for a in range(address, address + count)]

    def write(self, address: int, value: int, field: str) -> None:
        if address not in self.words:
            raise DeviceError(f"{self.name}.{field}", "refused: exception response 2")
        self.writes.append((address, value))
        if self.on_write is not None:
            self.on_write(address, value)
        else:
            self.words[address] = value


def s16(v: int) -> int:
    return v & 0xFFFF


SUNS = [0x5375, 0x6E53]  # 'S' 'u' 'n' 'S'

COMMON = [
    1, 66,                                    # 0 ID, 1 L
    0x4163, 0x6D65, *[0] * 14,                # 2..17  Mn "Acme", NUL-padded
    0x5056, 0x2D31, 0x304B, *[0] * 13,        # 18..33 Md "PV-10K"
    *[0] * 8,                                 # 34..41 Opt
    0x312E, 0x3200, *[0] * 6,                 # 42..49 Vr "1.2"
    0x4131, 0x4232, 0x2020, *[0] * 13,        # 50..65 SN "A1B2" + two spaces
    1,                                        # 66 DA
    0x8000,                                   # 67 Pad
]
NAMEPLATE = [
    120, 26,                                  # 0 ID, 1 L
    4,                                        # 2 DERTyp: PV
    1000, 1,                                  # 3 WRtg, 4 WRtg_SF = +1 → 10,000 W
    *[0] * 23,                                # 5..27 VARtg .. Pad
]
INVERTER_103 = [
    103, 50,                                  # 0 ID, 1 L
    *[0] * 12,                                # 2..13 A .. V_SF
    12345, s16(-1),                           # 14 W, 15 W_SF = −1 → 1234.5 W, floored 1234
    500, s16(-1), *[0] * 6,                   # 16 Hz, 17 Hz_SF, 18..23 VA .. PF_SF
    0x0001, 0x86A0,                           # 24..25 WH (acc32, high word first) = 100,000
    1,                                        # 26 WH_SF = +1 → 1,000,000 Wh
    *[0] * 11, 4, 0, *[0] * 12,               # 27..37 DC and temperatures, 38 St (MPPT), 39 StVnd, 40..51 Evt
]
CONTROLS_123 = [
    123, 24,                                  # 0 ID, 1 L
    0, 0, 1,                                  # 2 Conn_WinTms, 3 Conn_RvrtTms, 4 Conn
    500,                                      # 5 WMaxLimPct = 500 × 10^−1 = 50.0 %
    0, 0, 0,                                  # 6..8 WMaxLimPct_WinTms, _RvrtTms, _RmpTms
    1,                                        # 9 WMaxLim_Ena: enabled
    *[0] * 13,                                # 10..22 OutPFSet .. VArPct_Ena
    s16(-1), 0, 0,                            # 23 WMaxLimPct_SF = −1, 24 OutPFSet_SF, 25 VArPct_SF
]
METER_203 = [
    203, 105,                                 # 0 ID, 1 L
    *[0] * 16,                                # 2..17 A .. Hz_SF
    s16(-2500),                               # 18 W = −2,500 (exporting)
    0, 0, 0,                                  # 19..21 WphA, WphB, WphC
    0,                                        # 22 W_SF = 0
    *[0] * 15,                                # 23..37 VA .. PF_SF
    0x0000, 0x3039,                           # 38..39 TotWhExp = 12,345
    *[0] * 6,                                 # 40..45 TotWhExpPhA..C
    0x0001, 0x0000,                           # 46..47 TotWhImp = 65,536
    *[0] * 6,                                 # 48..53 TotWhImpPhA..C
    2,                                        # 54 TotWh_SF = +2 → ×100
    *[0] * 52,                                # 55..106 VAh, varh, Evt
]
END = [0xFFFF, 0]

# Model addresses in the map at 40000: 40002 + 68 = 40070, + 28 = 40098, + 52 = 40150, + 26 = 40176.
AT_1, AT_120, AT_103, AT_123, AT_203 = 40002, 40070, 40098, 40150, 40176


def image(*models: list[int], base: int = 40000, marker: Sequence[int] = SUNS) -> RegisterImage:
    return RegisterImage("inverter test", {base: [*marker, *(w for m in models for w in m), *END]})


def full() -> RegisterImage:
    return image(COMMON, NAMEPLATE, INVERTER_103, CONTROLS_123, METER_203)


def test_hand_written_models_have_their_declared_lengths() -> None:
    for words in (COMMON, NAMEPLATE, INVERTER_103, CONTROLS_123, METER_203):
        assert len(words) == 2 + words[1], words[0]


# --- discovery ------------------------------------------------------------------------------------

def test_discovery_walks_the_model_headers_to_the_end_marker() -> None:
    smap = ss.discover(full())
    assert smap.base == 40000
    assert smap.models == {1: (AT_1, 66), 120: (AT_120, 26), 103: (AT_103, 50), 123: (AT_123, 24),
                           203: (AT_203, 105)}


@pytest.mark.parametrize("base", [0, 50000])
def test_discovery_tries_0_then_50000_when_40000_is_not_mapped(base: int) -> None:
    smap = ss.discover(image(COMMON, INVERTER_103, base=base))
    assert smap.base == base
    assert smap.models == {1: (base + 2, 66), 103: (base + 70, 50)}


def test_a_map_without_suns_names_the_device_and_the_addresses_tried() -> None:
    with pytest.raises(DeviceError) as e:
        ss.discover(image(COMMON, INVERTER_103, marker=[0x5375, 0x6E54]))
    assert e.value.field == "inverter test.SunS"
    assert "40000, 0, 50000" in e.value.reason


def test_a_map_without_an_end_marker_is_refused() -> None:
    regs = RegisterImage("inverter test", {40000: [*SUNS, *COMMON]})
    with pytest.raises(DeviceError) as e:
        ss.discover(regs)
    assert e.value.field.startswith("inverter test.model@40070")


def test_the_first_instance_of_a_repeated_model_is_read() -> None:
    second = [103, 50, *INVERTER_103[2:14], 9, 0, *INVERTER_103[16:]]
    regs = image(COMMON, INVERTER_103, second)
    smap = ss.discover(regs)
    assert smap.models[103] == (40070, 50)
    assert ss.read_inverter(regs, smap)[1] == 1234


# --- values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "sf", "value"), [
    (12345, 0, 12345),
    (12345, 2, 1_234_500),
    (12345, -1, 1234),  # 1234.5 floored
    (12345, -3, 12),
    (-12345, -1, -1235),  # floored towards −∞, not truncated
    (-2500, 1, -25_000),
    (0, -10, 0),
])
def test_scale_factors_are_integer_and_floored(raw: int, sf: int, value: int) -> None:
    assert ss.scaled(raw, sf) == value


def test_identity_points_are_strings_and_the_rating_uses_a_positive_scale_factor() -> None:
    regs = full()
    smap = ss.discover(regs)
    assert ss.read_common(regs, smap) == ss.Common("Acme", "PV-10K", "A1B2")
    assert ss.read_rated_w(regs, smap) == 10_000


def test_no_nameplate_model_gives_no_rating() -> None:
    regs = image(COMMON, INVERTER_103, CONTROLS_123)
    assert ss.read_rated_w(regs, ss.discover(regs)) is None


def test_inverter_energy_and_power() -> None:
    regs = full()
    assert ss.read_inverter(regs, ss.discover(regs)) == (1_000_000, 1234)


def test_the_limit_read_from_model_123() -> None:
    regs = full()
    ctl = ss.read_controls(regs, ss.discover(regs))
    assert (ctl.model, ctl.pct_raw, ctl.enabled, ctl.sf) == (123, 500, True, -1)
    assert (ctl.pct_address, ctl.ena_address) == (AT_123 + 5, AT_123 + 9)
    assert ctl.limit_w(10_000) == 5_000
    disabled = ss.Controls(123, ss.C123_PCT, ss.C123_ENA, 0, 0, 500, False, -1)
    assert disabled.limit_w(10_000) == 10_000  # released: the rating


def test_meter_energies_with_a_positive_scale_factor_and_power_in_crev_sign() -> None:
    regs = full()
    smap = ss.discover(regs)
    m = ss.read_meter(regs, smap)
    assert (m.import_wh, m.export_wh, m.power_w) == (6_553_600, 1_234_500, -2500)  # W < 0: exporting
    assert ss.read_meter(regs, smap, export_positive=True).power_w == 2500


def test_single_phase_meter_201_has_the_same_points() -> None:
    regs = image(COMMON, [201, *METER_203[1:]])
    assert ss.read_meter(regs, ss.discover(regs)).import_wh == 6_553_600


def test_strings_stop_at_the_first_nul_and_lose_padding_spaces() -> None:
    assert ss.string([0x4142, 0x4300, 0x4445], "x") == "ABC"
    assert ss.string([0x2041, 0x2020], "x") == "A"
    assert ss.string([0, 0], "x") == ""
    with pytest.raises(DeviceError):
        ss.string([0xFFFE], "x")


# --- "not implemented" ----------------------------------------------------------------------------

def _with(model: list[int], offset: int, *words: int) -> list[int]:
    out = list(model)
    out[offset:offset + len(words)] = words
    return out


@pytest.mark.parametrize(("models", "read", "field"), [
    ((_with(INVERTER_103, 14, 0x8000),), "inverter", "W"),  # int16
    ((_with(INVERTER_103, 15, 0x8000),), "inverter", "W_SF"),  # sunssf
    ((_with(INVERTER_103, 24, 0xFFFF, 0xFFFF),), "inverter", "WH"),  # acc32
    ((_with(INVERTER_103, 26, 0x8000),), "inverter", "WH_SF"),
    ((_with(NAMEPLATE, 3, 0xFFFF),), "rated", "WRtg"),  # uint16
    ((_with(CONTROLS_123, 5, 0xFFFF),), "controls", "WMaxLimPct"),
    ((_with(METER_203, 18, 0x8000),), "meter", "W"),
    ((_with(METER_203, 46, 0xFFFF, 0xFFFF),), "meter", "TotWhImp"),
    ((_with(METER_203, 54, 0x8000),), "meter", "TotWh_SF"),
])
def test_not_implemented_sentinels_are_device_errors_naming_the_point(
        models: tuple[list[int]], read: str, field: str) -> None:
    regs = image(COMMON, *models)
    smap = ss.discover(regs)
    readers: dict[str, Callable[[], object]] = {
        "inverter": lambda: ss.read_inverter(regs, smap), "rated": lambda: ss.read_rated_w(regs, smap),
        "controls": lambda: ss.read_controls(regs, smap), "meter": lambda: ss.read_meter(regs, smap)}
    with pytest.raises(DeviceError) as e:
        readers[read]()
    assert e.value.field == f"inverter test.{field}"
    assert "not implemented" in e.value.reason


def test_a_scale_factor_outside_plus_minus_10_is_refused() -> None:
    regs = image(COMMON, _with(INVERTER_103, 15, 11))
    with pytest.raises(DeviceError, match="W_SF: scale factor 11"):
        ss.read_inverter(regs, ss.discover(regs))


def test_a_map_without_an_inverter_model_says_which_it_looked_for() -> None:
    regs = image(COMMON, METER_203)
    with pytest.raises(DeviceError) as e:
        ss.read_inverter(regs, ss.discover(regs))
    assert e.value.field == "inverter test.models" and "101/102/103" in e.value.reason


# --- the limit ------------------------------------------------------------------------------------

def test_a_limit_is_floored_to_a_step_written_then_enabled_and_read_back() -> None:
    regs = full()
    smap = ss.discover(regs)
    # 10,000 W rated, 0.1 % steps = 10 W: 3,005 W → 300 (30.0 %), never 301 (above the request)
    assert ss.apply_limit(regs, smap, 10_000, 3_005) == 3_000
    assert regs.writes == [(AT_123 + 5, 300), (AT_123 + 9, 1)]


def test_the_rating_or_more_releases_the_limit() -> None:
    regs = full()
    assert ss.apply_limit(regs, ss.discover(regs), 10_000, 12_000) == 10_000
    assert regs.writes == [(AT_123 + 5, 1000), (AT_123 + 9, 0)]


def test_zero_and_negative_limits_write_zero_percent() -> None:
    regs = full()
    assert ss.apply_limit(regs, ss.discover(regs), 10_000, -5) == 0
    assert regs.writes[0] == (AT_123 + 5, 0)


def test_model_704_is_used_when_the_map_has_no_123() -> None:
    c704 = [704, 65, *[0] * 12, 0, 10000, *[0] * 38, s16(-2), *[0] * 12]  # 14 WMaxLimPctEna, 15 WMaxLimPct, 54 _SF
    assert len(c704) == 67 and c704[15] == 10000 and c704[54] == s16(-2)
    regs = image(COMMON, NAMEPLATE, INVERTER_103, c704)
    smap = ss.discover(regs)
    ctl = ss.read_controls(regs, smap)
    assert (ctl.model, ctl.pct.name, ctl.ena.name) == (704, "WMaxLimPct", "WMaxLimPctEna")
    assert (ctl.sf, ctl.enabled, ctl.limit_w(10_000)) == (-2, False, 10_000)
    at = smap.models[704][0]
    assert ss.apply_limit(regs, smap, 10_000, 2_500) == 2_500
    assert regs.writes == [(at + 15, 2500), (at + 14, 1)]


def test_123_is_preferred_when_the_map_has_both() -> None:
    c704 = [704, 65, *[0] * 65]
    regs = image(COMMON, c704, CONTROLS_123)
    assert ss.read_controls(regs, ss.discover(regs)).model == 123


def test_a_refused_write_names_the_register() -> None:
    regs = full()

    def refuse(address: int, value: int) -> None:
        raise DeviceError("inverter test.WMaxLimPct", "refused: exception response 3")

    regs.on_write = refuse
    with pytest.raises(DeviceError) as e:
        ss.apply_limit(regs, ss.discover(regs), 10_000, 3_000)
    assert e.value.field == "inverter test.WMaxLimPct"


def test_a_read_back_more_than_one_step_away_is_refused() -> None:
    regs = full()

    def clamp(address: int, value: int) -> None:  # an inverter that silently applies at least 40 %
        regs.words[address] = max(value, 400) if address == AT_123 + 5 else value

    regs.on_write = clamp
    smap = ss.discover(regs)
    with pytest.raises(DeviceError) as e:
        ss.apply_limit(regs, smap, 10_000, 3_000)
    assert e.value.field == "inverter test.WMaxLimPct" and "wrote 300, reads back 400" in e.value.reason


def test_a_read_back_one_step_away_is_accepted_and_reported() -> None:
    regs = full()

    def round_up(address: int, value: int) -> None:
        regs.words[address] = value + 1 if address == AT_123 + 5 else value

    regs.on_write = round_up
    assert ss.apply_limit(regs, ss.discover(regs), 10_000, 3_000) == 3_010


def test_an_enable_that_does_not_stick_is_refused() -> None:
    regs = full()

    def ignore_enable(address: int, value: int) -> None:
        if address != AT_123 + 9:
            regs.words[address] = value
        else:
            regs.words[address] = 0

    regs.on_write = ignore_enable
    with pytest.raises(DeviceError) as e:
        ss.apply_limit(regs, ss.discover(regs), 10_000, 3_000)
    assert e.value.field == "inverter test.WMaxLim_Ena"
