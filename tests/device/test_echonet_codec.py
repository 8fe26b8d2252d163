"""ECHONET Lite codec: frames written out byte by byte from the spec, and the property codecs.

Frame format: ECHONET Lite Specification Ver.1.14, Part II §3.2 (EHD1 EHD2 TID SEOJ DEOJ ESV OPC
then OPC × EPC PDC EDT). Properties: APPENDIX Detailed Requirements for ECHONET Device Objects,
Release N, low-voltage smart electric energy meter (0x0288) and household solar power generation
(0x0279). Times: 2026-01-01 00:00 UTC is unix 1767225600.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crev.device.echonet import (
    CONTROLLER,
    EOJ,
    ESV,
    UNIT_WH,
    Frame,
    MeterScale,
    Property,
    decode_frame,
    encode_frame,
    fixed_value_edt,
    history_edt,
    jst_date_bytes,
    jst_datetime_bytes,
    jst_day_start,
    parse_coefficient,
    parse_cumulative,
    parse_digits,
    parse_fixed_value,
    parse_history,
    parse_instant_power,
    parse_jst_date,
    parse_jst_datetime,
    parse_percent,
    parse_solar_energy,
    parse_solar_power,
    parse_unit,
)
from crev.device.ports import FixedValue, MeterRegisters
from crev.errors import DeviceError, MalformedError

METER = EOJ(0x0288, 0x01)
SOLAR = EOJ(0x0279, 0x01)


def h(text: str) -> bytes:
    """Hex with spaces and # comments, one field per line in the tests below."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


# --- frames ------------------------------------------------------------------------------------

GET_E0_E1_E3 = h("""
    10 81        # EHD1 ECHONET Lite, EHD2 format 1
    00 01        # TID 1
    05 FF 01     # SEOJ controller, instance 1
    02 88 01     # DEOJ low-voltage smart meter, instance 1
    62           # ESV Get
    03           # OPC 3
    E0 00        # normal direction cumulative, PDC 0
    E1 00        # unit
    E3 00        # reverse direction cumulative
""")

GET_RES_E0_E1_E3 = h("""
    10 81 00 01
    02 88 01     # SEOJ the meter
    05 FF 01     # DEOJ us
    72           # Get_Res
    03
    E0 04 00 01 E2 40   # 123456 steps
    E1 01 01            # 0x01: 0.1 kWh
    E3 04 00 00 30 39   # 12345 steps
""")

GET_RES_EA = h("""
    10 81 00 02 02 88 01 05 FF 01 72 01
    EA 0B               # fixed normal-direction cumulative, 11 bytes
    07 EA 01 0F         # 2026-01-15
    0C 1E 00            # 12:30:00 JST = 03:30:00 UTC
    00 01 E2 40         # 123456 steps
""")

GET_SNA_D3 = h("""
    10 81 00 03 02 88 01 05 FF 01
    52                  # Get_SNA
    01 D3 00            # D3 (coefficient) not available: PDC 0
""")

INF_EB = h("""
    10 81 00 00 02 88 01
    0E F0 01            # DEOJ node profile (an announcement)
    73                  # INF
    01 EB 0B 07 EA 01 0F 0C 1E 00 00 00 00 64
""")

SETC_A0_50 = h("""
    10 81 00 04 05 FF 01
    02 79 01            # DEOJ household solar power generation
    61                  # SetC
    01 A0 01 32         # output power control setting 1 = 50 %
""")

SET_RES_A0 = h("10 81 00 04 02 79 01 05 FF 01 71 01 A0 00")  # Set_Res: accepted, PDC 0


def test_get_request_encodes_byte_for_byte() -> None:
    frame = Frame(1, CONTROLLER, METER, ESV.GET, (Property(0xE0), Property(0xE1), Property(0xE3)))
    assert encode_frame(frame) == GET_E0_E1_E3
    assert decode_frame(GET_E0_E1_E3) == frame


def test_get_res_decodes_into_registers() -> None:
    f = decode_frame(GET_RES_E0_E1_E3)
    assert (f.tid, f.seoj, f.deoj, f.esv) == (1, METER, CONTROLLER, ESV.GET_RES)
    scale = MeterScale(parse_unit(f.props[1].edt), 1, 6)
    regs = scale.registers(parse_cumulative(0xE0, f.props[0].edt), parse_cumulative(0xE3, f.props[2].edt))
    assert regs == MeterRegisters(12_345_600, 1_234_500, 100, 100_000_000)
    assert encode_frame(f) == GET_RES_E0_E1_E3


def test_ea_response_carries_its_jst_timestamp_as_utc() -> None:
    f = decode_frame(GET_RES_EA)
    value = parse_fixed_value(0xEA, f.props[0].edt, MeterScale(0x01, 1, 6))
    assert value == FixedValue(1_767_225_600 + 14 * 86_400 + 3 * 3600 + 1800, 12_345_600)
    assert fixed_value_edt(value.at, 123_456) == f.props[0].edt


def test_get_sna_and_inf_decode() -> None:
    sna = decode_frame(GET_SNA_D3)
    assert sna.esv == ESV.GET_SNA and sna.props == (Property(0xD3),)
    inf = decode_frame(INF_EB)
    assert (inf.esv, inf.tid, inf.deoj) == (ESV.INF, 0, EOJ(0x0EF0, 0x01))
    assert parse_fixed_value(0xEB, inf.props[0].edt, MeterScale(0x03)).wh == 100  # 1 Wh steps


def test_setc_a0_and_its_set_res() -> None:
    frame = Frame(4, CONTROLLER, SOLAR, ESV.SETC, (Property(0xA0, b"\x32"),))
    assert encode_frame(frame) == SETC_A0_50
    assert parse_percent(decode_frame(SETC_A0_50).props[0].edt) == 50
    res = decode_frame(SET_RES_A0)
    assert (res.esv, res.seoj, res.props) == (ESV.SET_RES, SOLAR, (Property(0xA0),))


def test_seti_and_its_sna_codes() -> None:
    assert decode_frame(h("10 81 00 09 05 FF 01 02 79 01 60 01 A0 01 64")).esv == ESV.SETI
    assert decode_frame(h("10 81 00 09 02 79 01 05 FF 01 50 01 A0 01 FF")).esv == ESV.SETI_SNA
    assert decode_frame(h("10 81 00 09 05 FF 01 02 88 01 63 01 EA 00")).esv == ESV.INF_REQ


# --- bad frames name their field ---------------------------------------------------------------

BAD_FRAMES = [
    ("wrong EHD1", "11 81 00 01 02 88 01 05 FF 01 72 01 E1 01 01", "EHD1"),
    ("wrong EHD2 (format 2)", "10 82 00 01 02 88 01 05 FF 01 72 01 E1 01 01", "EHD2"),
    ("one byte", "10", "EHD1"),
    ("header cut short", "10 81 00 01 02 88 01 05 FF", "header"),
    ("PDC past the end", "10 81 00 01 02 88 01 05 FF 01 72 01 E0 04 00 01 E2", "props[0].PDC"),
    ("trailing bytes", "10 81 00 01 02 88 01 05 FF 01 72 01 E1 01 01 00", "OPC"),
    ("OPC says 3, two follow", "10 81 00 01 02 88 01 05 FF 01 72 03 E1 01 01 E7 04 00 00 00 01", "props[2]"),
    ("OPC 0", "10 81 00 01 02 88 01 05 FF 01 72 00", "OPC"),
    ("SetGet is not supported", "10 81 00 01 05 FF 01 02 88 01 6E 01 E1 00", "ESV"),
    ("unknown ESV", "10 81 00 01 05 FF 01 02 88 01 99 01 E1 00", "ESV"),
]


@pytest.mark.parametrize(("what", "hexframe", "field"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_a_malformed_or_foreign_frame_names_its_field(what: str, hexframe: str, field: str) -> None:
    with pytest.raises(DeviceError) as e:
        decode_frame(h(hexframe))
    assert e.value.field == field, what


def test_encoding_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(MalformedError) as e:
        encode_frame(Frame(0x1_0000, CONTROLLER, METER, ESV.GET, (Property(0xE0),)))
    assert e.value.field == "TID"
    with pytest.raises(MalformedError) as e:
        encode_frame(Frame(1, CONTROLLER, METER, ESV.GET, ()))
    assert e.value.field == "OPC"
    with pytest.raises(MalformedError) as e:
        encode_frame(Frame(1, CONTROLLER, METER, ESV.SETC, (Property(0xE0), Property(0xA0, bytes(256)))))
    assert e.value.field == "props[1].PDC"


# --- smart meter properties --------------------------------------------------------------------


@pytest.mark.parametrize(("code", "wh_per_1000_steps"), [
    (0x00, 1_000_000), (0x01, 100_000), (0x02, 10_000), (0x03, 1_000), (0x04, 100),
    (0x0A, 10_000_000), (0x0B, 100_000_000), (0x0C, 1_000_000_000), (0x0D, 10_000_000_000),
])
def test_every_unit_code_converts_exactly(code: int, wh_per_1000_steps: int) -> None:
    assert parse_unit(bytes([code])) == code
    assert MeterScale(code).to_wh(1000) == wh_per_1000_steps
    assert set(UNIT_WH) == {0x00, 0x01, 0x02, 0x03, 0x04, 0x0A, 0x0B, 0x0C, 0x0D}


def test_sub_wh_unit_is_floored_to_whole_wh() -> None:
    scale = MeterScale(0x04, 1, 8)  # 0.0001 kWh = 0.1 Wh a step
    assert scale.to_wh(12_345) == 1_234  # 1234.5 Wh floored: never more than measured
    assert scale.to_wh(12_349) == 1_234
    assert scale.resolution_wh == 1  # 0.1 Wh steps report at least 1
    assert scale.modulus_wh == 10_000_000  # 10^8 steps × 0.1 Wh
    assert scale.to_count(1_234) == 12_340


def test_coefficient_and_digits_scale_and_wrap() -> None:
    scale = MeterScale(parse_unit(b"\x02"), parse_coefficient(h("00 00 00 0A")), parse_digits(b"\x06"))
    assert scale.to_wh(5) == 500  # 5 × 10 × 0.01 kWh
    assert (scale.resolution_wh, scale.modulus_wh) == (100, 100_000_000)
    assert scale.to_count(100_000_000 + 300) == 3  # the register wraps at 10^6 steps


def test_property_shapes_and_ranges_name_the_property() -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: parse_unit(b"\x05"), "E1"),
        (lambda: parse_unit(b""), "E1"),
        (lambda: parse_digits(b"\x09"), "D7"),
        (lambda: parse_coefficient(h("00 0F 42 40")), "D3"),  # 1,000,000 > 999,999
        (lambda: parse_cumulative(0xE0, h("FF FF FF FE")), "E0"),  # no data
        (lambda: parse_cumulative(0xE3, h("05 F5 E1 00")), "E3"),  # 100,000,000 > 8 digits
        (lambda: parse_cumulative(0xE0, h("00 01")), "E0"),
        (lambda: parse_instant_power(h("7F FF FF FE")), "E7"),
        (lambda: parse_fixed_value(0xEA, fixed_value_edt(1_767_225_600, 0xFFFF_FFFE), MeterScale(1)), "EA"),
        (lambda: parse_fixed_value(0xEB, fixed_value_edt(1_767_225_660, 1), MeterScale(1)), "EB"),
        (lambda: parse_jst_datetime("EA", h("07 EA 02 1E 00 00 00")), "EA"),  # 30 February
        (lambda: parse_solar_power(h("FF FE")), "E0"),
        (lambda: parse_solar_energy(h("FF FF FF FE")), "E1"),
        (lambda: parse_percent(b"\x65"), "A0"),
    ]
    for fn, field in cases:
        with pytest.raises(DeviceError) as e:
            fn()
        assert e.value.field == field


def test_instant_power_is_signed_watts() -> None:
    assert parse_instant_power(h("FF FF FA 24")) == -1500  # exporting 1.5 kW
    assert parse_instant_power(h("00 00 02 EE")) == 750


def test_jst_datetime_round_trips() -> None:
    at = 1_767_225_600 - 9 * 3600  # 2026-01-01 00:00 JST
    assert jst_datetime_bytes(at) == h("07 EA 01 01 00 00 00")
    assert parse_jst_datetime("EA", jst_datetime_bytes(at)) == at


def test_solar_properties() -> None:
    assert parse_solar_power(h("0F A0")) == 4000
    assert parse_solar_energy(h("00 01 E2 40")) == 123_456  # 0.001 kWh = 1 Wh
    assert parse_percent(b"\x00") == 0


# --- 30-minute history: E5, E2/E4 --------------------------------------------------------------

# Yesterday's (E5 = 1) normal-direction history of a meter whose unit is 0.1 kWh (E1 0x01), as a
# Get_Res to "Get E2, 0x98". Value i is fixed at 00:00 + 30 min × i JST of that day.
NO = "FF FF FF FE"
GET_RES_E2 = h(f"""
    10 81 00 07
    02 88 01 05 FF 01
    72 02               # Get_Res, OPC 2
    E2 C2               # E2, PDC 194 = 2 + 48 × 4
    00 01               # day 1 (yesterday)
    00 00 03 E8         # [0] 00:00  1000 steps = 100.0 kWh
    {NO}                # [1] 00:30  no data
    00 00 03 EA         # [2] 01:00  1002 steps
    00 00 03 EB         # [3] 01:30  1003 steps
    {(NO + " ") * 43}   # [4..46] no data
    00 00 04 00         # [47] 23:30 1024 steps
    98 04 07 EA 01 02   # current date 2026-01-02 (the meter's today)
""")


def test_e2_history_decodes_with_no_data_left_out() -> None:
    f = decode_frame(GET_RES_E2)
    assert f.esv == ESV.GET_RES and [p.epc for p in f.props] == [0xE2, 0x98]
    e2, date = f.props[0].edt, f.props[1].edt
    assert len(e2) == 194
    today = parse_jst_date("98", date)
    assert today == 1_767_225_600 + 86_400 - 9 * 3600  # 2026-01-02 00:00 JST
    yesterday = today - 86_400  # 2026-01-01 00:00 JST = 2025-12-31 15:00 UTC
    day, values = parse_history(0xE2, e2, MeterScale(0x01), yesterday)
    assert day == 1
    assert values == [FixedValue(yesterday, 100_000), FixedValue(yesterday + 3600, 100_200),
                      FixedValue(yesterday + 5400, 100_300), FixedValue(yesterday + 47 * 1800, 102_400)]
    # the simulator's encoder writes the same bytes
    counts: list[int | None] = [None] * 48
    counts[0], counts[2], counts[3], counts[47] = 1000, 1002, 1003, 1024
    assert history_edt(1, counts) == e2
    assert jst_date_bytes(today + 86_399) == date and jst_day_start(today + 86_399) == today


def test_history_shapes_and_ranges_name_the_property() -> None:
    scale = MeterScale(0x03)
    good = history_edt(0, [0] * 48)
    with pytest.raises(DeviceError) as e:
        parse_history(0xE2, good[:-1], scale, 0)
    assert e.value.field == "E2" and "194" in e.value.reason
    with pytest.raises(DeviceError) as e:
        parse_history(0xE4, b"\x00\x64" + good[2:], scale, 0)
    assert e.value.field == "E4" and "day 100" in e.value.reason
    over = bytearray(good)
    over[2 + 4 * 3:6 + 4 * 3] = (100_000_000).to_bytes(4, "big")
    with pytest.raises(DeviceError) as e:
        parse_history(0xE4, bytes(over), scale, 0)
    assert e.value.field == "E4[3]"
    with pytest.raises(DeviceError) as e:
        parse_jst_date("98", bytes.fromhex("07EA0230"))  # 48 February
    assert e.value.field == "98"
    with pytest.raises(MalformedError):
        history_edt(100, [None] * 48)
    with pytest.raises(MalformedError):
        history_edt(0, [None] * 47)
