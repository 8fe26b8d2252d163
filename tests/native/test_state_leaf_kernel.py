"""``crev_native.state_leaf`` places and hashes a state entry exactly as crev.core.statetree does
(offered to the state tree; the tree itself is the reference)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crev.core.statetree import bucket_index, entry_leaf_hash, key_hash32

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")
if not hasattr(crev_native, "state_leaf"):
    pytest.skip("the installed crev_native predates state_leaf: pip install ./native", allow_module_level=True)


def test_state_leaf_by_hand() -> None:
    key, value = "s", b"\x80"
    kh, leaf = crev_native.state_leaf(key, value)
    assert leaf == hashlib.sha256(b"\x00\x00\x01s\x80").digest()
    assert kh == int.from_bytes(hashlib.sha256(b"s").digest()[:4], "big")
    assert kh >> 16 == bucket_index(key, 16)


@given(st.text(max_size=80), st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_state_leaf_equals_the_tree(key: str, value: bytes) -> None:
    assert crev_native.state_leaf(key, value) == (key_hash32(key), entry_leaf_hash(key, value))


def test_a_key_too_long_for_its_length_prefix_is_refused_by_both() -> None:
    key = "k" * 65_536
    with pytest.raises(ValueError, match="65,535"):
        crev_native.state_leaf(key, b"")
    with pytest.raises(struct.error):
        entry_leaf_hash(key, b"")
    assert crev_native.state_leaf(key[:-1], b"")[1] == entry_leaf_hash(key[:-1], b"")
