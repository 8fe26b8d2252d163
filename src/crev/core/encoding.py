"""The one canonical encoding: deterministic CBOR (RFC 8949 §4.2.1).

Every message is a CBOR *array* (positional fields, no maps), of unsigned/negative integers,
text strings, byte strings, booleans and nested arrays. The canonical form uses the shortest
integer and length heads and definite lengths. Decoding rejects anything that does not re-encode
to the identical bytes, so each value has exactly one byte string and therefore one hash.
"""

from __future__ import annotations

from typing import Any

import cbor2

from crev.errors import MalformedError

MAX_INT = 2**63 - 1


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
    return value
