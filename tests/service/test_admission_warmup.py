"""Admission before the node's service rate is known (issue 13, item 4): a server started into
an overload must not let in more than its budget's worth before its first answer."""

from __future__ import annotations

import math

import pytest

from crev.service.limits import Admission

BATCH = 30_000  # bytes of a batch of ~240 readings


def test_while_warming_up_the_prediction_uses_the_initial_rate_or_more_if_measured() -> None:
    """Nothing answered yet: the rate is taken as 100,000 bytes/s, so 0.4 s holds 40,000 bytes.
    The first 30,000-byte batch is admitted (alone); a second would make 60,000 bytes, 0.6 s: it
    is turned away, Retry-After 0.2 s (before, with no rate only the 1 s queue-age rule applied,
    and the first second of an overload was let in: 19 batches of 500 readings in the bench,
    answered after 3.1–3.9 s). Small submissions still get in up to the 40,000 bytes. Once those
    are answered, the prediction uses what was measured, being more: 40,000 bytes over the 0.3 s
    the queue was busy (decayed with τ = 10 s: τ(1 − e^(−0.03)) = 0.29554 s), though the warm-up
    (1 s busy) is not over and ``rate()`` still says 0."""
    t = [0.0]
    a = Admission(budget_s=0.4, max_wait_s=1.0, clock=lambda: t[0])
    first, retry = a.admit(BATCH)
    assert first > 0 and retry == 0.0
    t[0] = 0.1
    ticket, retry = a.admit(BATCH)
    assert ticket == -1 and retry == pytest.approx(0.2)
    small = [a.admit(1_000)[0] for _ in range(11)]  # 30,000 + 10 × 1,000 = 40,000 bytes: 10 get in
    assert all(s > 0 for s in small[:10]) and small[10] == -1
    assert a.rate() == 0.0 and a.waiting() == 11
    t[0] = 0.3
    a.release(first)
    for s in small[:10]:
        a.release(s)
    busy = 10 * (1 - math.exp(-0.03))  # 135,344 bytes/s measured
    assert a.rate() == 0.0
    second, _ = a.admit(BATCH)  # alone again
    third, retry = a.admit(BATCH)  # 60,000 bytes ahead: 0.44 s at that rate > 0.4 s
    assert second > 0 and third == -1
    assert retry == pytest.approx((2 * BATCH - 0.4 * 40_000 / busy) / (40_000 / busy))


def test_the_initial_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="initial_rate"):
        Admission(initial_rate=0)
