"""The DGC salts every control record it builds (docs/wire-format.md, submit_controls): a fresh 16
random bytes before the signature, kept with the item in the outbox, stored by the ledger in the
record, so the record's leaf hash does not tell the owner's prices."""

from __future__ import annotations

from pathlib import Path

from crev.core.encoding import encode
from crev.core.hashing import sha256
from tests.device.test_agent import DAY, ledger_kit, make_site, submit


def test_each_control_item_carries_its_own_salt_and_the_record_keeps_it(tmp_path: Path) -> None:
    sched = tmp_path / "sched.csv"
    sched.write_text("2026-06-01T11:00,2026-06-01T11:30,30\n")
    s = make_site(tmp_path, DAY + 10 * 3600 + 1790, schedule_file=str(sched), tick_s=30)
    s.run(DAY + 12 * 3600)
    items = s.items("submit_controls")
    assert [i[8] for i in items] == ["released", "grid_operator", "released"]
    salts = [i[14] for i in items]
    assert all(len(i) == 16 and type(x) is bytes and len(x) == 16 for i, x in zip(items, salts, strict=True))
    assert len(set(salts)) == 3  # drawn for each record, never reused
    # a restart resends what is in the outbox: the same items, salts included
    s.restart()
    assert s.items("submit_controls") == items
    kit = ledger_kit()
    assert submit(kit, "submit_controls", items) == [["accepted", 1], ["accepted", 2], ["accepted", 3]]
    for n, item in enumerate(items, start=1):
        rec = kit.state.controls[("dgc-1", n)]
        assert rec.salt == item[14] and rec.control_hash == sha256(encode(item))
