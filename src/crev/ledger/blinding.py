"""Blinding values: secret bytes in private records, so that their leaf hashes cannot be guessed.

Every state proof lists the (key, leaf hash) pairs of its whole bucket, and a leaf hash is
SHA-256(0x00 ‖ u16 len(key) ‖ key ‖ canonical value) (docs/wire-format.md §7). A record whose
value is public data except a small secret — an account's JPY, a control record's prices, the
supply's JPY total — can then be read back by anyone who tries the secret's likely values and
compares leaf hashes. A *blinding value* (ブラインド値) is 16 random bytes stored in such a record:
without it, a guess costs 2^128 tries, whatever the secret.

The ledger never draws randomness (it is a pure state machine replayed by every member): the party
that signs the transaction chooses the value and the transaction carries it — the operator for an
account's ``blind`` (``register_participant``, ``reset_participant_key``) or the account itself
(``rotate_key``), the DGC for a control record's ``salt``, the operator for the ``salt`` of a
deposit or withdrawal, which re-blinds the supply's JPY total (:func:`next_supply_blind`).
Each is optional on the wire and encoded only when present, so records and transactions without
one keep their exact bytes and old chains replay to the same roots.
"""

from __future__ import annotations

from typing import Any

from crev.core.hashing import sha256
from crev.errors import MalformedError

BLIND_LEN = 16  # bytes: 128 bits, beyond any search


def need_blind(v: Any, field: str) -> bytes:
    """A blinding value: exactly :data:`BLIND_LEN` bytes. MalformedError naming ``field``."""
    if type(v) is not bytes:
        raise MalformedError(field, f"must be a byte string of {BLIND_LEN} random bytes")
    if len(v) != BLIND_LEN:
        raise MalformedError(field, f"must be {BLIND_LEN} bytes, found {len(v)}")
    return v


def next_supply_blind(previous: bytes, salt: bytes) -> bytes:
    """The supply record's new blind after a deposit or withdrawal carrying ``salt``:
    the first 16 bytes of SHA-256(previous blind ‖ salt) (previous = b"" before the first).

    Chained rather than the salt itself: the account a deposit is for reads that deposit's bytes
    (its salt) through the API, but not the earlier salts, so it cannot unblind the ledger's JPY
    total — except after the very first salted deposit or withdrawal, whose previous blind is
    empty (docs/api.md, "What is public")."""
    return sha256(previous + salt)[:BLIND_LEN]
