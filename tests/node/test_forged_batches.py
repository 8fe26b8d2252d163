"""Forged signatures cost their sender, not the node: a failure the workers found is not verified
again by the sealer, and a big batch whose first signatures are mostly forged is refused before
the rest are checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import crev.ledger.apply as apply_mod
from crev.core.signing import Signer
from crev.ledger.apply import SigCache
from crev.node.node import FORGED_SAMPLE, Node
from tests.node import nodekit as k

FORGER = Signer(b"\x66" * 32)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = k.open_node(k.init_dir(tmp_path / "ledger"))
    k.register_fleet(n, 4)
    try:
        yield n
    finally:
        n.close()


def test_a_known_failure_is_answered_from_the_cache_without_verifying(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(apply_mod, "verify", lambda *t: calls.append(t) or True)
    cache = SigCache()
    cache.add_bad(b"k", b"m", b"s")
    assert cache.verify(b"k", b"m", b"s") is False and calls == []
    assert cache.verify(b"k", b"m", b"s") is True and len(calls) == 1  # used once, then verified afresh
    cache.add(b"k", b"m2", b"s2")
    assert cache.verify(b"k", b"m2", b"s2") is True and len(calls) == 1


def test_a_big_mostly_forged_batch_is_refused_before_the_rest_is_checked(node: Node) -> None:
    readings = [k.reading(d, j, signer=FORGER if j < 20 else None) for j in range(80) for d in range(4)]
    assert len(readings) > 4 * FORGED_SAMPLE  # the first 64 (j < 16 for 4 devices) are all forged
    r = node.submit_wait(k.readings_tx(readings))
    assert not r.committed and r.error is not None
    assert (r.error["code"], r.error["field"]) == ("bad_signature", "readings")
    assert r.error["reason"] == (f"64 of the first 64 device signatures do not verify: the batch of "
                                 f"{len(readings)} signed items is refused without checking the rest")
    assert node.state.devices["dgc-0"].readings == 0


def test_a_gateway_with_a_few_bad_meters_is_not_refused_whole(node: Node) -> None:
    readings = [k.reading(d, j, signer=FORGER if (d == 3 and j >= 70) else None) for j in range(80) for d in range(4)]
    r = node.submit_wait(k.readings_tx(readings))
    assert r.committed and r.ok
    refused = [x for x in r.detail if x[0] == "refused"]
    assert len(refused) == 10 and all(x[1:3] == ["bad_signature", f"readings[{i}].signature"]
                                      for x, i in zip(refused, [j * 4 + 3 for j in range(70, 80)], strict=True))
    assert sum(1 for x in r.detail if x[0] == "accepted") == 310
