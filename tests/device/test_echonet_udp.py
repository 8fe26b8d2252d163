"""The ECHONET Lite clients against the simulated node over real loopback UDP sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from crev.device.echonet import EOJ, ESV, EchonetSmartMeter, EchonetSolar, MeterScale, Property, decode_frame
from crev.device.ports import FixedValue, MeterRegisters
from crev.errors import DeviceError, MalformedError
from crev.sim.echonet import SimulatedEchonetNode
from crev.sim.fleet import FleetSimulator, make_fleet
from crev.sim.site import FleetPhysics, ManualClock, SitePhysics

T0 = 1_767_225_600 + 1 * 3600  # 2026-01-01 10:00 JST
FLEET = FleetPhysics(FleetSimulator(make_fleet(2, 1), 1))


def make_physics(site: int) -> SitePhysics:
    clock = ManualClock(T0)
    ph = SitePhysics(FLEET, FLEET.sim.sites[site].site_id, clock)
    clock.advance(3 * 3600 + 600)  # 13:10 JST: registers, a fixed value at 13:00, sun on the panels
    ph.advance()
    return ph


@pytest.fixture
def physics() -> SitePhysics:
    return make_physics(0)  # exports at midday (site-002 imports)


@pytest.fixture
def node(physics: SitePhysics) -> Iterator[SimulatedEchonetNode]:
    with SimulatedEchonetNode(physics, solar=True) as n:
        yield n


@pytest.fixture
def meter(node: SimulatedEchonetNode) -> Iterator[EchonetSmartMeter]:
    m = EchonetSmartMeter("127.0.0.1", node.port, timeout_s=0.3, retries=1)
    yield m
    m.close()


@pytest.mark.parametrize("site", [0, 1], ids=["exporting site", "importing site"])
def test_registers_are_the_physics_in_the_meter_unit(site: int) -> None:
    physics = make_physics(site)
    imp, exp = physics.smart_meter_wh()
    assert imp + exp > 10_000
    with SimulatedEchonetNode(physics) as node:
        meter = EchonetSmartMeter("127.0.0.1", node.port, timeout_s=0.3, retries=1)
        # default: E1 0x01 (0.1 kWh = 100 Wh a step), D7 6 digits, no D3 (Get_SNA → coefficient 1)
        assert meter.registers() == MeterRegisters(imp // 100 * 100, exp // 100 * 100, 100, 100_000_000)
        assert meter.scale == MeterScale(0x01, 1, 6)
        assert meter.name == f"smart-meter 127.0.0.1:{node.port}"
        meter.close()


def test_scale_is_read_once(meter: EchonetSmartMeter, node: SimulatedEchonetNode) -> None:
    meter.registers()
    assert node.requests == 3  # D7+E1, D3, E0+E3
    meter.registers()
    assert node.requests == 4


def test_instant_power_and_fixed_values(meter: EchonetSmartMeter, physics: SitePhysics) -> None:
    assert meter.instant_power_w() == physics.net_power_w()
    at = physics.last_fixed_at
    assert at == T0 + 3 * 3600
    imp, exp = physics.fixed[at]
    assert meter.fixed_values() == (FixedValue(at, imp // 100 * 100), FixedValue(at, exp // 100 * 100))


@pytest.mark.parametrize("scale", [MeterScale(0x02, 10, 6), MeterScale(0x04, 1, 8), MeterScale(0x03, 1, 3)],
                         ids=["coefficient 10 × 0.01 kWh", "0.1 Wh steps", "3 digits of 1 Wh wrap"])
def test_other_units_convert_exactly(physics: SitePhysics, scale: MeterScale) -> None:
    with SimulatedEchonetNode(physics, scale=scale) as n:
        m = EchonetSmartMeter("127.0.0.1", n.port, timeout_s=0.3, retries=1)
        try:
            imp, exp = physics.smart_meter_wh()
            regs = m.registers()
            assert m.scale == scale
            assert regs.import_wh == scale.to_wh(scale.to_count(imp))
            assert regs.export_wh == scale.to_wh(scale.to_count(exp))
            assert (regs.resolution_wh, regs.modulus_wh) == (scale.resolution_wh, scale.modulus_wh)
            if scale.unit_code == 0x04:
                assert regs.import_wh == imp  # 0.1 Wh steps lose nothing of whole Wh
            if scale.digits == 3:
                assert regs.import_wh == imp % 1000 and regs.modulus_wh == 1000
        finally:
            m.close()


def test_silence_times_out_after_the_retries(meter: EchonetSmartMeter, node: SimulatedEchonetNode) -> None:
    meter.registers()
    node.faults.silent = True
    before = node.requests
    with pytest.raises(DeviceError) as e:
        meter.instant_power_w()
    assert node.requests - before == 2  # the request and one retry
    assert e.value.field == f"{meter.name}.GET" and "no answer" in e.value.reason
    node.faults.silent = False
    assert isinstance(meter.instant_power_w(), int)  # and the link recovers


def test_a_stale_tid_or_foreign_object_is_ignored_and_counted(meter: EchonetSmartMeter,
                                                              node: SimulatedEchonetNode,
                                                              physics: SitePhysics) -> None:
    node.faults.stale_tid = 1
    node.faults.foreign_eoj = 1
    assert meter.instant_power_w() == physics.net_power_w()
    assert meter.link.stray == 2


def test_a_datagram_from_another_address_is_ignored(meter: EchonetSmartMeter, node: SimulatedEchonetNode) -> None:
    meter.registers()
    port = meter.link.sock.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.sendto(bytes.fromhex("1081000102880105FF017201E70400000001"), ("127.0.0.1", port))
        assert isinstance(meter.instant_power_w(), int)
    assert meter.link.stray == 1


def test_a_malformed_answer_is_retried_then_named(meter: EchonetSmartMeter, node: SimulatedEchonetNode,
                                                  physics: SitePhysics) -> None:
    node.faults.malformed = 1
    assert meter.instant_power_w() == physics.net_power_w()  # the retry's answer
    assert meter.link.malformed == 1
    node.faults.malformed = 2
    with pytest.raises(DeviceError) as e:
        meter.instant_power_w()
    assert e.value.field == f"{meter.name}.props[0].PDC"


def test_no_data_for_fixed_values_names_ea(meter: EchonetSmartMeter, node: SimulatedEchonetNode) -> None:
    node.faults.no_fixed_data = True
    with pytest.raises(DeviceError) as e:
        meter.fixed_values()
    assert e.value.field == f"{meter.name}.EA" and "no data" in e.value.reason


def test_no_fixed_value_before_the_first_boundary() -> None:
    clock = ManualClock(T0 + 60)
    ph = SitePhysics(FLEET, FLEET.sim.sites[1].site_id, clock)
    clock.advance(600)
    with SimulatedEchonetNode(ph) as n:
        m = EchonetSmartMeter("127.0.0.1", n.port, timeout_s=0.3, retries=0, name="sm")
        with pytest.raises(DeviceError) as e:
            m.fixed_values()
        m.close()
    assert e.value.field == "sm.EA"


def test_get_sna_names_the_refused_property(meter: EchonetSmartMeter) -> None:
    with pytest.raises(DeviceError) as e:
        meter.link.get(meter.eoj, (0xE7, 0xC0))
    assert e.value.field == f"{meter.name}.C0" and "Get_SNA" in e.value.reason
    with pytest.raises(DeviceError) as e:
        meter.link.set(meter.eoj, (Property(0xE1, b"\x02"),))  # a meter's unit cannot be set
    assert e.value.field == f"{meter.name}.E1" and "SetC_SNA" in e.value.reason


def test_a_meter_not_at_that_instance_does_not_answer(node: SimulatedEchonetNode) -> None:
    m = EchonetSmartMeter("127.0.0.1", node.port, timeout_s=0.1, retries=0, instance=2)
    with pytest.raises(DeviceError):
        m.instant_power_w()
    m.close()


def test_solar_reads_and_limits_through_a0(node: SimulatedEchonetNode, physics: SitePhysics) -> None:
    rated = physics.rated_w
    pv = EchonetSolar("127.0.0.1", node.port, rated_w=rated, timeout_s=0.3, retries=1)
    try:
        with pytest.raises(DeviceError) as e:  # ~92 kW of a 187.5 kW business PV: past 0x0279's 65,533 W
            pv.power_w()
        assert e.value.field == f"{pv.name}.E0" and "overflow" in e.value.reason
        assert pv.energy_wh() == physics.generation_wh()
        assert pv.limit_pct() == 100
        assert pv.set_limit_pct(20) == 20
        assert physics.limit_w == rated * 20 // 100
        assert pv.power_w() == physics.pv_power_w() == rated * 20 // 100
        applied = pv.set_limit_w(rated // 3)  # floored to a whole %, never above what was asked
        assert applied == rated * (rated // 3 * 100 // rated) // 100 <= rated // 3
        status = pv.status()
        assert (status.limit_w, status.power_w) == (applied, physics.pv_power_w())
        assert status.power_w <= applied
        assert pv.set_limit_w(rated) == rated  # released
        ident = pv.identity()
        assert (ident.manufacturer, ident.rated_w) == ("0x000000", rated)
        with pytest.raises(MalformedError):
            pv.set_limit_pct(101)
    finally:
        pv.close()


def test_seti_and_inf_req_are_answered_as_the_spec_says(node: SimulatedEchonetNode) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.sendto(bytes.fromhex("1081000705FF0102880163 01 EA00".replace(" ", "")), ("127.0.0.1", node.port))
        inf = decode_frame(s.recv(2048))
        assert (inf.esv, inf.tid, inf.seoj, inf.props[0].epc) == (ESV.INF, 7, EOJ(0x0288, 1), 0xEA)
        s.sendto(bytes.fromhex("1081000805FF0102790160 01 A00165".replace(" ", "")), ("127.0.0.1", node.port))
        sna = decode_frame(s.recv(2048))  # 101 %: refused, the refused value echoed
        assert (sna.esv, sna.props) == (ESV.SETI_SNA, (Property(0xA0, b"\x65"),))


def test_history_is_the_physics_fixed_values_of_that_day(meter: EchonetSmartMeter, node: SimulatedEchonetNode,
                                                         physics: SitePhysics) -> None:
    imp, exp = meter.history(0)  # today (2026-01-01 JST): the physics started at 10:00, it is 13:10
    ends = [T0 + 1800 * k for k in range(1, 7)]  # 10:30 .. 13:00
    assert sorted(physics.fixed) == ends
    assert imp == [FixedValue(t, physics.fixed[t][0] // 100 * 100) for t in ends]  # E1 0.1 kWh, floored
    assert exp == [FixedValue(t, physics.fixed[t][1] // 100 * 100) for t in ends]
    assert imp[-1] == meter.fixed_values()[0]  # the history agrees with EA
    assert node.history_day == 0
    assert meter.history(1) == ([], [])  # yesterday: the meter holds nothing
    assert node.history_day == 1


def test_history_errors_name_the_property(meter: EchonetSmartMeter, node: SimulatedEchonetNode) -> None:
    with pytest.raises(MalformedError) as m:
        meter.history(100)
    assert m.value.field == f"{meter.name}.E5"
    node.faults.no_history = True  # a meter without history refuses E5
    with pytest.raises(DeviceError) as e:
        meter.history(0)
    assert e.value.field == f"{meter.name}.E5" and "SetC_SNA" in e.value.reason
