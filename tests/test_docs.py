"""Docs and code must not drift: every transaction kind, event and figure name is documented."""

from __future__ import annotations

import re
from pathlib import Path

from crev import errors
from crev.core.figures import Figures
from crev.ledger import events
from crev.ledger.tx import REGISTRY

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_transaction_kind_is_in_the_wire_format_and_architecture() -> None:
    wire = (DOCS / "wire-format.md").read_text("utf-8")
    arch = (DOCS / "architecture.md").read_text("utf-8")
    for kind in REGISTRY:
        assert kind in wire, f"{kind} missing from docs/wire-format.md"
        assert kind in arch, f"{kind} missing from docs/architecture.md"


def test_every_figure_is_in_the_glossary() -> None:
    glossary = (DOCS / "glossary.md").read_text("utf-8")
    names = set(Figures.__slots__) | {"market_based_g", "onsite_share_bp", "renewable_share_bp",
                                      "average_factor_g_per_kwh"}
    for name in names - {"gross_g", "generation_wh", "import_wh", "export_wh"}:
        assert name in glossary, f"{name} missing from docs/glossary.md"


def test_every_event_type_is_named_in_the_architecture() -> None:
    arch = (DOCS / "architecture.md").read_text("utf-8")
    for name in ("ReadingAccepted", "ReadingGap", "Issued", "Transferred", "Retired", "Cancelled"):
        assert hasattr(events, name)
        assert name in arch


def test_readme_opens_with_the_two_quick_start_commands() -> None:
    text = README.read_text("utf-8")
    quick = text.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in quick.splitlines() if line.strip() and line.strip() != "sh"]
    assert commands == ["make demo", "make test"]
    makefile = (README.parent / "Makefile").read_text("utf-8")
    assert "\ndemo:" in makefile and "\ntest:" in makefile


def _error_table(text: str) -> dict[str, int]:
    return {code: int(status) for code, status in re.findall(r"^\| `(\w+)` \| (\d{3}) \|", text, re.M)}


def test_every_ledger_error_code_is_documented_with_its_http_status() -> None:
    wire = (DOCS / "wire-format.md").read_text("utf-8")
    errors_section = wire.split("### Errors", 1)[1].split("\n### ", 1)[0]
    wire_codes = _error_table(errors_section)
    api_codes = _error_table((DOCS / "api.md").read_text("utf-8"))
    # invalid_block is the auditor's; device_error the DGC's own (a device answered wrongly): neither is an answer
    ledger_codes = {c.code for c in _subclasses(errors.CrevError)} - {"invalid_block", "device_error"}
    assert set(wire_codes) == ledger_codes, "docs/wire-format.md section 4, Errors"
    for code, status in wire_codes.items():
        assert api_codes.get(code) == status, f"{code}: docs/api.md and docs/wire-format.md disagree"
    assert issubclass(errors.NonceError, errors.ConflictError) and errors.NonceError.code == "bad_nonce"
    assert wire_codes["bad_nonce"] == 409


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_unit_range_convention_is_stated_with_the_same_example_everywhere() -> None:
    example = "units 1000..1099 inclusive = [1000, 1100) = 100 g"
    for name in ("wire-format.md", "api.md", "glossary.md"):
        text = (DOCS / name).read_text("utf-8")
        assert example.lower() in text.lower(), f"{name} should state the unit-range convention"
        assert "half-open" in text and "inclusive" in text, name
