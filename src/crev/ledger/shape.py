"""Stateless field checks shared by every message. Each names the field and the reason."""

from __future__ import annotations

import re
from typing import Any

from crev.core.signing import PUBLIC_KEY_LEN, usable_public_key
from crev.errors import MalformedError

MAX_U63 = 2**63 - 1
MAX_TIME = 2**40  # unix seconds, about the year 36812: bounds every time a message carries
ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # always used with fullmatch


def need_list(v: Any, field: str, n: int | None = None) -> list[Any]:
    if not isinstance(v, list):
        raise MalformedError(field, "must be an array")
    if n is not None and len(v) != n:
        raise MalformedError(field, f"must have {n} elements, found {len(v)}")
    return v


def need_int(v: Any, field: str, lo: int = 0, hi: int = MAX_U63) -> int:
    """An integer in [lo, hi]. Rejects bool, float (including NaN) and anything else by name."""
    if type(v) is not int:
        kind = "a fraction or NaN" if isinstance(v, float) else type(v).__name__
        raise MalformedError(field, f"must be an integer, found {kind}")
    if v < lo:
        raise MalformedError(field, f"must be ≥ {lo}, found {v}" if lo else f"must not be negative, found {v}")
    if v > hi:
        raise MalformedError(field, f"must be ≤ {hi}, found {v}")
    return v


def need_time(v: Any, field: str) -> int:
    """A unix time in seconds, 0 .. 2^40 (so a date can always be shown)."""
    return need_int(v, field, 0, MAX_TIME)


def need_text(v: Any, field: str, max_len: int = 256, empty: bool = False) -> str:
    if not isinstance(v, str):
        raise MalformedError(field, "must be text")
    if not empty and not v.strip():
        raise MalformedError(field, "must not be empty")
    if len(v) > max_len:
        raise MalformedError(field, f"must be at most {max_len} characters")
    return v


def need_id(v: Any, field: str) -> str:
    if not isinstance(v, str) or not ID_RE.fullmatch(v):
        raise MalformedError(field, "must be 1-64 of a-z 0-9 . _ - starting with a letter or digit")
    return v


def need_bytes(v: Any, field: str, n: int) -> bytes:
    if not isinstance(v, bytes):
        raise MalformedError(field, "must be a byte string")
    if len(v) != n:
        raise MalformedError(field, f"must be {n} bytes, found {len(v)}")
    return v


def need_public_key(v: Any, field: str) -> bytes:
    """An Ed25519 public key that can verify signatures (``core.signing.usable_public_key``)."""
    pk = need_bytes(v, field, PUBLIC_KEY_LEN)
    if not usable_public_key(pk):
        raise MalformedError(field, "is not a usable Ed25519 public key: the identity, the all-zero key and other "
                                    "small-order points, and non-canonical encodings, are refused")
    return pk


def need_bool(v: Any, field: str) -> bool:
    if type(v) is not bool:
        raise MalformedError(field, "must be true or false")
    return v


def need_choice(v: Any, field: str, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise MalformedError(field, f"must be one of {', '.join(choices)}")
    return str(v)
