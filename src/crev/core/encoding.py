"""The one canonical encoding: deterministic CBOR (RFC 8949 §4.2.1).

Every message is a CBOR *array* (positional fields, no maps), of unsigned/negative integers,
text strings, byte strings, booleans and nested arrays. The canonical form uses the shortest
integer and length heads and definite lengths. Decoding rejects anything that does not re-encode
to the identical bytes, so each value has exactly one byte string and therefore one hash.

Decoding refuses, *before* building the tagged value, every tagged item (major type 6: shared
values 28/29, string references, dates, big integers, decimals, rationals ...), which no crev
message uses: the decoder hands each tag to a refusal before any of the tag's own semantics (a
shared-value DAG, a rational's gcd, a bigfloat's power) can run, so hostile bytes cost time and
memory linear in their length. Indefinite lengths and nesting deeper than ``MAX_DEPTH`` are refused
by the decoder itself. Floats, maps and null still decode, so that the message's own shape check
can name the field that holds them ("must be an integer, found a fraction").

The compiled kernel ``crev_native`` (``native/src/codec.rs``), where it is installed, encodes the
values crev builds (ints, bool, None, text, bytes, lists and tuples of them) and decodes whole
``submit_readings`` batches; it returns nothing where it would differ in any way from this module
(a float, a big integer, a hostile or non-canonical byte string ...), and this module then decides:
a ledger with and without the kernel is byte for byte the same (tests/native/).
``use_codec_kernel(False)`` forces the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn, Protocol, cast

import cbor2

from crev.errors import MalformedError

MAX_INT = 2**63 - 1
_PLAIN = (int, str, bytes, bool, float, type(None))
MAX_DEPTH = 16  # crev's deepest message nests 5 arrays; anything deeper is not crev's


class _TagRefused(Exception):
    def __init__(self, tag: int) -> None:
        super().__init__(tag)
        self.tag = tag


class _RefuseEveryTag(Mapping[int, Callable[[Any, Any], Any]]):
    """The decoder's table of tag handlers: every tag number maps to a refusal, so no tag's meaning
    is ever applied (cbor2 asks this table before its own built-in tag decoders)."""

    def __getitem__(self, tag: int) -> Callable[[Any, Any], Any]:
        def refuse(_decoder: Any, _value: Any) -> NoReturn:
            raise _TagRefused(tag)

        return refuse

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _refuse_unknown_tag(_decoder: Any, tag: Any) -> NoReturn:
    raise _TagRefused(int(tag.tag))


_REFUSE_TAGS = _RefuseEveryTag()

#: A reading as the kernel hands it over: chain_id, device_id, the nine integers from seq to
#: export_register_wh, signature, signed bytes, reading hash (``submit_readings.Reading``'s fields).
ReadingFields = tuple[str, str, int, int, int, int, int, int, int, int, int, bytes, bytes, bytes]


class CodecKernel(Protocol):
    """What ``crev_native`` offers for the codec (native/crev_native.pyi)."""

    def encode(self, value: Any, /) -> bytes | None: ...

    def parse_readings_tx(self, raw: bytes, chain_id: str, max_tx_bytes: int, max_batch: int,
                          /) -> list[ReadingFields] | None: ...

    def new_slotted(self, cls: type, names: tuple[str, ...], values: tuple[Any, ...], /) -> Any: ...

    def event_dict(self, event: Any, type_: str, names: tuple[str, ...], /) -> dict[str, Any]: ...


def _installed_kernel() -> CodecKernel | None:
    try:
        import crev_native  # the compiled kernel, where `pip install ./native` built it
    except ImportError:
        return None
    # a kernel built before the codec existed verifies signatures only
    return cast(CodecKernel, crev_native) if hasattr(crev_native, "event_dict") else None


KERNEL = _installed_kernel()
_kernel = KERNEL
_kernel_encode = None if KERNEL is None else KERNEL.encode


def use_codec_kernel(enabled: bool) -> bool:
    """Encode and decode with the kernel (True, where installed) or with the reference (False)
    from now on. Returns whether the kernel is in use."""
    global _kernel, _kernel_encode
    _kernel = KERNEL if enabled else None
    _kernel_encode = None if _kernel is None else _kernel.encode
    return _kernel is not None


def codec_kernel() -> CodecKernel | None:
    """The kernel's codec, if it is installed and in use."""
    return _kernel


def encode(value: Any) -> bytes:
    """Canonical bytes of ``value`` (ints, str, bytes, bool, lists/tuples thereof)."""
    k = _kernel_encode
    if k is not None:
        out = k(value)
        if out is not None:
            return out
    return cbor2.dumps(value, canonical=True)


def encode_reference(value: Any) -> bytes:
    """``encode`` by cbor2 alone, whatever the kernel: the reference the kernel is tested against."""
    return cbor2.dumps(value, canonical=True)


def decode(data: bytes, what: str = "message") -> Any:
    """Decode canonical CBOR. Raises MalformedError (naming ``what``) on bad or non-canonical bytes."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(what, "expected bytes")
    try:
        value = cbor2.loads(bytes(data), semantic_decoders=_REFUSE_TAGS, tag_hook=_refuse_unknown_tag,
                            max_depth=MAX_DEPTH, allow_indefinite=False)
    except Exception as exc:  # cbor2 raises several types; all mean "not CBOR"
        cause = exc if isinstance(exc, _TagRefused) else exc.__cause__ or exc.__context__
        if isinstance(cause, _TagRefused):
            raise MalformedError(what, f"holds CBOR tag {cause.tag}: tags (shared values, dates, big numbers "
                                       "...) are not used by crev") from None
        text = str(exc)
        if "indefinite length" in text:
            raise MalformedError(what, "not in canonical CBOR form (RFC 8949 §4.2.1): an indefinite length") from None
        if "nesting depth" in text:
            raise MalformedError(what, f"nests arrays deeper than {MAX_DEPTH} levels") from None
        raise MalformedError(what, f"not valid CBOR ({exc.__class__.__name__}: {exc})") from None
    try:
        again = cbor2.dumps(value, canonical=True)
    except Exception as exc:
        raise MalformedError(what, f"unsupported CBOR content ({exc})") from None
    if again != bytes(data):
        raise MalformedError(what, "not in canonical CBOR form (RFC 8949 §4.2.1)")
    _check_plain(value, what)
    return value


def decode_committed(data: bytes, what: str) -> Any:
    """Decode bytes a signed state root has already vouched for: a stored state entry whose whole
    bucket was just hashed and matched the bucket hash the checkpoint's signed root commits to.
    Those bytes are what ``encode`` wrote when the entry changed, so the round trip by which
    ``decode`` refuses non-canonical input (re-encode and compare) and its check for special
    values are skipped: 1.7–2.7 µs a record instead of 6.1–7.4 (measured here on a slot tally and a
    lot), paid for every record a node reads back after an eviction. Tags, indefinite lengths and
    depth are refused while parsing, as by ``decode``; anything else it cannot parse goes to
    ``decode`` for its error."""
    try:
        return cbor2.loads(data, semantic_decoders=_REFUSE_TAGS, tag_hook=_refuse_unknown_tag,
                           max_depth=MAX_DEPTH, allow_indefinite=False)
    except Exception:  # decode names what is wrong with it (or decodes it)
        return decode(data, what)


def _check_plain(value: Any, what: str) -> None:
    """Refuse CBOR's special values other than false, true and null (``undefined``, simple values).
    Integers need no check: without tags (bignums) CBOR's own integers fit in 64 bits."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        v = pop()
        t = type(v)
        if t is list:
            extend(v)
        elif t is dict:
            extend(v.keys())
            extend(v.values())
        elif t not in _PLAIN:
            raise MalformedError(what, f"holds a CBOR special value ({t.__name__}); only integers, text, "
                                       "bytes, booleans and arrays are used")
