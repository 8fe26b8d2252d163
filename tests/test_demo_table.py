"""The demo's progress table: the drift-alert row counts repeated alerts of one device."""

from __future__ import annotations

from rich.console import Console

from crev.demo import DemoStats, _progress_table


def rendered(stats: DemoStats) -> str:
    console = Console(width=200, record=True)
    console.print(_progress_table(stats, 1_796_300_000.0, 100, 50))
    return console.export_text()


def test_a_device_alerting_twice_is_listed_once_with_its_count() -> None:
    s = DemoStats()
    s.device_sites = ["site-028 (DGC export +4 %)"]
    s.drift_alerts = ["site-028 export", "site-019 export", "site-028 export"]
    row = next(line for line in rendered(s).splitlines() if "calibration drift alerts" in line)
    assert "site-019 export, site-028 export ×2" in row
    assert row.count("site-028") == 1


def test_no_alert_reads_none() -> None:
    s = DemoStats()
    s.device_sites = ["site-024 (agrees)"]
    row = next(line for line in rendered(s).splitlines() if "calibration drift alerts" in line)
    assert "none" in row
