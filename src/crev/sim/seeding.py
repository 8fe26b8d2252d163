"""Independent, order-free random streams derived from one integer seed.

Every random draw in the simulator comes from a :class:`numpy.random.Generator` built from a
:class:`numpy.random.SeedSequence` whose entropy is ``(seed, purpose, *keys)``. Because a stream
depends only on *what* it is for (e.g. "weather of site-007 on JST day 20 500") and never on how
many draws happened before, the simulator can compute days in any order, drop them from its
cache and recompute them later with byte-identical results.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np

# Purpose tags [-]: distinct small integers so that streams never collide.
FLEET: Final = 1
AREA_WEATHER: Final = 2
SITE_WEATHER: Final = 3
SITE_LOAD: Final = 4


def check_seed(seed: object) -> int:
    """``seed`` as a plain non-negative int, or ValueError naming the parameter."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    value = int(seed)
    if value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {value}")
    return value


def text_key(text: str) -> int:
    """A stable 64-bit integer for ``text`` (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def day_key(day: int) -> int:
    """Map any integer day number [d] onto a non-negative int (zig-zag), as SeedSequence needs."""
    return 2 * day if day >= 0 else -2 * day - 1


def stream(seed: int, purpose: int, *keys: int) -> np.random.Generator:
    """The generator for ``purpose`` and ``keys`` (all non-negative ints) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, purpose, *keys]))
