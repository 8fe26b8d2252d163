"""The one canonical encoding: deterministic CBOR (RFC 8949 §4.2.1).

Every message is a CBOR *array* (positional fields, no maps), of unsigned/negative integers,
text strings, byte strings, booleans and nested arrays. The canonical form uses the shortest
integer and length heads and definite lengths. Decoding rejects anything that does not re-encode
to the identical bytes, so each value has exactly one byte string and therefore one hash.

Decoding also refuses tagged items (dates, big integers, decimals ...: major type 6) and integers
outside 64 bits, which no crev message uses. Floats, maps and null still decode, so that the
message's own shape check can name the field that holds them ("must be an integer, found a
fraction").
"""

from __future__ import annotations

from typing import Any

import cbor2

from crev.errors import MalformedError

MAX_INT = 2**63 - 1
_PLAIN = (int, str, bytes, bool, float, type(None))
_INT_MIN, _INT_MAX = -(2**64), 2**64 - 1


def encode(value: Any) -> bytes:
    """Canonical bytes of ``value`` (ints, str, bytes, bool, lists/tuples thereof)."""
    return cbor2.dumps(value, canonical=True)


def decode(data: bytes, what: str = "message") -> Any:
    """Decode canonical CBOR. Raises MalformedError (naming ``what``) on bad or non-canonical bytes."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(what, "expected bytes")
    try:
        value = cbor2.loads(bytes(data))
    except Exception as exc:  # cbor2 raises several types; all mean "not CBOR"
        raise MalformedError(what, f"not valid CBOR ({exc.__class__.__name__}: {exc})") from None
    try:
        again = cbor2.dumps(value, canonical=True)
    except Exception as exc:
        raise MalformedError(what, f"unsupported CBOR content ({exc})") from None
    if again != bytes(data):
        raise MalformedError(what, "not in canonical CBOR form (RFC 8949 §4.2.1)")
    _check_plain(value, what)
    return value


def _check_plain(value: Any, what: str) -> None:
    """Refuse what cbor2 turned a tag into (datetime, Decimal, CBORTag ...) and big integers."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        v = pop()
        t = type(v)
        if t is list:
            extend(v)
        elif t is int:
            if not _INT_MIN <= v <= _INT_MAX:
                raise MalformedError(what, "holds an integer outside 64 bits (a CBOR bignum tag)")
        elif t is dict:
            extend(v.keys())
            extend(v.values())
        elif t not in _PLAIN:
            raise MalformedError(what, f"holds a CBOR tag or special value ({t.__name__}); only "
                                       "integers, text, bytes, booleans and arrays are used")
