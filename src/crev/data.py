"""Reading the data files shipped with the package (the one place that touches them, so the core
stays free of I/O)."""

from __future__ import annotations

from importlib import resources

from crev.core.factors import FactorRow, parse_csv


def shipped_rows() -> list[FactorRow]:
    """The shipped emission factor table, ``crev/core/data/emission_factors.csv``."""
    text = resources.files("crev.core").joinpath("data/emission_factors.csv").read_text("utf-8")
    return parse_csv(text, "emission_factors.csv")
