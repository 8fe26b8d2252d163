"""The SunSpec adapter over real loopback sockets against the simulated inverter and grid meter.

The simulated server (crev.sim.sunspec) computes its registers from a SitePhysics on every read,
so what the adapter returns is compared with the physics itself, at a sunny JST noon where the
site exports (site-001 of a two-site fleet: 187.5 kW of PV, a factory load).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from crev.device.ports import GridMeter, Inverter
from crev.device.sunspec import POW10, SunSpecGridMeter, SunSpecInverter
from crev.errors import DeviceError
from crev.sim.fleet import FleetSimulator, make_fleet
from crev.sim.site import FleetPhysics, ManualClock, SitePhysics
from crev.sim.sunspec import SunSpecServer

NOON = int(datetime(2024, 5, 15, 12, 0, tzinfo=timezone(timedelta(hours=9))).timestamp())


@pytest.fixture(scope="module")
def fleet() -> FleetPhysics:
    return FleetPhysics(FleetSimulator(make_fleet(2, 1), 1))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOON - 3600)


@pytest.fixture
def physics(fleet: FleetPhysics, clock: ManualClock) -> SitePhysics:
    site = SitePhysics(fleet, "site-001", clock)
    clock.t = NOON  # an hour of generation and export behind it
    return site


@pytest.fixture
def server(physics: SitePhysics) -> Iterator[SunSpecServer]:
    with SunSpecServer(physics) as srv:
        yield srv


@pytest.fixture
def inverter(server: SunSpecServer) -> Iterator[SunSpecInverter]:
    inv = SunSpecInverter("127.0.0.1", server.port, 1, "pcs site-001", 2.0)
    yield inv
    inv.close()


def floor_to(value: int, sf: int) -> int:
    """What a register with scale factor 10^sf shows of ``value`` [W]."""
    step: int = POW10[sf]
    return value // step * step


def test_the_adapters_are_the_agent_s_ports(inverter: SunSpecInverter, server: SunSpecServer) -> None:
    pcs: Inverter = inverter  # checked by mypy
    meter: GridMeter = SunSpecGridMeter("127.0.0.1", server.port, link=inverter.link)
    assert pcs.name == "pcs site-001"
    assert meter.name == f"grid-meter 127.0.0.1:{server.port}#1"


def test_identity(inverter: SunSpecInverter, physics: SitePhysics) -> None:
    ident = inverter.identity()
    assert (ident.manufacturer, ident.model, ident.serial) == ("crev-sim", "PCS-3P", "SIM-site-001")
    assert ident.rated_w == physics.rated_w == 187_500
    assert inverter.sunspec_map().base == 40000


def test_energy_and_power_are_the_physics(inverter: SunSpecInverter, server: SunSpecServer,
                                          physics: SitePhysics, clock: ManualClock) -> None:
    status = inverter.status()
    assert status.energy_wh == physics.generation_wh() > 0
    assert status.power_w == floor_to(physics.pv_power_w(), server.inverter_w_sf) > 0
    assert status.limit_w == physics.rated_w
    clock.advance(600)
    assert inverter.status().energy_wh == physics.generation_wh() > status.energy_wh


def test_grid_meter_is_the_physics_in_crev_sign(server: SunSpecServer, inverter: SunSpecInverter,
                                                physics: SitePhysics) -> None:
    meter = SunSpecGridMeter("127.0.0.1", server.port, 1, "dgc-meter site-001", link=inverter.link)
    regs = meter.registers()
    assert (regs.import_wh, regs.export_wh) == physics.dgc_meter_wh()
    assert regs.export_wh > 0
    assert regs.power_w == floor_to(physics.net_power_w(), server.meter_w_sf) < 0  # exporting at noon


def test_a_30_percent_limit_curtails_the_physics_and_reads_back(
        inverter: SunSpecInverter, server: SunSpecServer, physics: SitePhysics, clock: ManualClock) -> None:
    meter = SunSpecGridMeter("127.0.0.1", server.port, link=inverter.link)
    before = meter.registers().power_w
    limit = physics.rated_w * 30 // 100  # 56,250 W
    assert inverter.set_limit_w(limit) == limit
    assert physics.limit_w == limit
    clock.advance(300)
    assert 0 < physics.pv_power_w() <= limit
    status = inverter.status()
    assert status.limit_w == limit
    assert status.power_w <= limit
    assert meter.registers().power_w > before  # less PV: less export (or import now)
    assert inverter.set_limit_w(physics.rated_w) == physics.rated_w  # released
    assert physics.limit_w == physics.rated_w


def test_a_refused_setpoint_names_the_register(physics: SitePhysics) -> None:
    with SunSpecServer(physics, refuse_setpoints=True) as srv:
        inv = SunSpecInverter("127.0.0.1", srv.port, name="pcs refusing", timeout_s=2.0)
        with pytest.raises(DeviceError) as e:
            inv.set_limit_w(10_000)
        inv.close()
    assert e.value.field == "pcs refusing.WMaxLimPct"
    assert "exception response 3" in e.value.reason
    assert physics.limit_w == physics.rated_w


def test_a_map_without_suns_is_a_device_error(physics: SitePhysics) -> None:
    with SunSpecServer(physics, without_suns=True) as srv:
        inv = SunSpecInverter("127.0.0.1", srv.port, name="pcs foreign", timeout_s=2.0)
        with pytest.raises(DeviceError) as e:
            inv.identity()
        inv.close()
    assert e.value.field == "pcs foreign.SunS"
    assert "40000, 0, 50000" in e.value.reason


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_server_that_is_down_is_a_connection_error_within_the_timeout() -> None:
    inv = SunSpecInverter("127.0.0.1", _closed_port(), name="pcs down", timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(DeviceError) as e:
        inv.status()
    assert time.monotonic() - t0 < 2.0
    assert e.value.field == "pcs down.connection"


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts (the kernel's backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        inv = SunSpecInverter("127.0.0.1", int(listener.getsockname()[1]), name="pcs mute", timeout_s=0.5)
        t0 = time.monotonic()
        with pytest.raises(DeviceError) as e:
            inv.status()
        elapsed = time.monotonic() - t0
        inv.close()
    assert elapsed < 2.0
    assert e.value.field == "pcs mute.connection"


def test_the_server_stops_cleanly_and_frees_its_port(physics: SitePhysics) -> None:
    srv = SunSpecServer(physics).start()
    port = srv.port
    srv.stop()
    inv = SunSpecInverter("127.0.0.1", port, name="pcs stopped", timeout_s=1.0)
    with pytest.raises(DeviceError):
        inv.status()
    with SunSpecServer(physics, port=port) as again:  # the same port binds again
        assert again.port == port
