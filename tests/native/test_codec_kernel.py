"""The kernel's codec (``crev_native.encode``, ``crev_native.parse_readings_tx``) changes speed,
never bytes or verdicts.

``crev.core.encoding`` (cbor2) and the reference path of ``crev.ledger.tx.decode_tx`` are the
specification. The kernel must either produce exactly what they produce or decline (None), so that
the reference decides; these tests compare the two value by value and reading by reading: on the
golden vectors, on random values and batches, and on hostile encodings, which must be refused with
the same field and reason whether the kernel is installed or not. They also pin that the kernel
does *not* decline the ordinary case, which would make it useless without making it wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crev.ledger.messages  # noqa: F401  (registers every transaction kind)
from crev.core.encoding import encode, encode_reference, use_codec_kernel
from crev.core.hashing import sha256
from crev.core.metering import MAX_WH
from crev.core.signing import Signer
from crev.core.units import ALLOWED_INTERVAL_SECONDS
from crev.errors import CrevError
from crev.ledger.messages.submit_readings import reading_payload
from crev.ledger.params import Params
from crev.ledger.shape import ID_RE
from crev.ledger.tx import decode_tx

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")
if not hasattr(crev_native, "parse_readings_tx"):
    pytest.skip("the installed crev_native predates the codec: pip install ./native", allow_module_level=True)

GOLDEN = json.loads((Path(__file__).parents[1] / "vectors" / "golden.json").read_text(encoding="utf-8"))
CHAIN = "test-chain"
KEY = Signer(sha256(b"test/native/device"))
PARAMS = Params()


@pytest.fixture
def reference() -> Iterator[None]:
    """The reference codec for the duration of a test."""
    use_codec_kernel(False)
    try:
        yield
    finally:
        use_codec_kernel(True)


def outcome(raw: bytes, chain_id: str = CHAIN, params: Params = PARAMS) -> Any:
    """``decode_tx``'s verdict: the transaction (with each malformed item's index, bytes and
    refusal, since errors compare by identity), or the refusal's (error class, field, reason)."""
    try:
        tx = decode_tx(raw, chain_id, params)
    except CrevError as err:
        return (type(err).__name__, err.field, err.reason)
    bad = getattr(tx.message, "malformed", ())
    return (tx.kind, tx.signer, tx.nonce, tx.signature, tx.signed_bytes, tx.raw, tx.hash,
            getattr(tx.message, "readings", None),
            [(b.index, cbor2.dumps(b.value, canonical=True), type(b.error), b.error.field, b.error.reason)
             for b in bad])


def both(raw: bytes, chain_id: str = CHAIN, params: Params = PARAMS) -> tuple[Any, Any]:
    """(the reference's verdict, the verdict with the kernel)."""
    use_codec_kernel(False)
    try:
        ref = outcome(raw, chain_id, params)
    finally:
        use_codec_kernel(True)
    return ref, outcome(raw, chain_id, params)


def tx_bytes(body: list[Any], *, chain_id: str = CHAIN, kind: str = "submit_readings") -> bytes:
    return cbor2.dumps(["crev/tx/1", chain_id, kind, "", 0, body, b""], canonical=True)


def reading(seq: int = 1, start: int = 1_780_272_000, interval_s: int = 60, g: int = 800, i: int = 300,
            e: int = 100, regs: tuple[int, int, int] = (10_800, 20_300, 3_100), device: str = "dgc-1",
            chain_id: str = CHAIN) -> list[Any]:
    p = reading_payload(chain_id, device, seq, start, interval_s, g, i, e, *regs)
    return [*p, KEY.sign(encode_reference(p))]


# --- encode ---------------------------------------------------------------------------------------


def test_encode_hand_computed() -> None:
    # 86: array(6); 01; 61 61: "a"; 41 78: b"x"; f5: true; f6: null; 82 02 22: [2, -3] (−1 − 2)
    assert crev_native.encode([1, "a", b"x", True, None, (2, -3)]) == bytes.fromhex("860161614178f5f6820222")


@pytest.mark.parametrize(("n", "hex_"), [
    (0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"), (65_535, "19ffff"),
    (65_536, "1a00010000"), (2**32 - 1, "1affffffff"), (2**32, "1b0000000100000000"),
    (2**64 - 1, "1bffffffffffffffff"), (-1, "20"), (-24, "37"), (-25, "3818"), (-(2**63), "3b7fffffffffffffff"),
])
def test_encode_integer_heads_are_shortest(n: int, hex_: str) -> None:
    assert crev_native.encode(n).hex() == hex_ == cbor2.dumps(n, canonical=True).hex()


DEEP: list[Any] = [0]
for _ in range(40):
    DEEP = [DEEP]


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, -(2**64) - 1, 1.5, float("nan"), {"a": 1}, bytearray(b"x"),
                                   [1, [2, 1.0]], "\ud800", DEEP])
def test_encode_declines_what_it_does_not_handle(value: Any) -> None:
    """Big integers (bignum tags), floats, maps, other types, lone surrogates and very deep
    nesting are cbor2's: the kernel returns None and ``encode`` gives cbor2's bytes (or error)."""
    assert crev_native.encode(value) is None
    try:
        want: bytes | type[Exception] = cbor2.dumps(value, canonical=True)
    except Exception as exc:  # the reference's error is the answer
        want = type(exc)
    try:
        got: bytes | type[Exception] = encode(value)
    except Exception as exc:
        got = type(exc)
    assert got == want


def test_encode_declines_subclasses() -> None:
    class Text(str):
        pass

    class Number(int):
        pass

    assert crev_native.encode(Text("a")) is None
    assert crev_native.encode([Number(1)]) is None


SCALARS = (st.integers(min_value=-(2**64) - 2, max_value=2**64 + 2) | st.booleans() | st.none() | st.text()
           | st.binary() | st.floats(allow_nan=False))
VALUES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=6) | st.tuples(kids, kids), max_leaves=40)


@given(VALUES)
@settings(max_examples=400, deadline=None)
def test_encode_equals_cbor2_or_declines(value: Any) -> None:
    got = crev_native.encode(value)
    assert got is None or got == cbor2.dumps(value, canonical=True)


CREV_SCALARS = (st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.booleans() | st.text() | st.binary())
CREV_VALUES = st.recursive(CREV_SCALARS, lambda kids: st.lists(kids, max_size=6), max_leaves=40)


@given(CREV_VALUES)
@settings(max_examples=300, deadline=None)
def test_encode_handles_every_value_crev_builds(value: Any) -> None:
    assert crev_native.encode(value) == cbor2.dumps(value, canonical=True)


@pytest.mark.parametrize("case", GOLDEN["cbor"], ids=[c["name"] for c in GOLDEN["cbor"]])
def test_encode_golden_cbor(case: dict[str, Any]) -> None:
    value = cbor2.loads(bytes.fromhex(case["hex"]))
    got = crev_native.encode(value)
    assert got is None or got.hex() == case["hex"]


# --- parse_readings_tx ----------------------------------------------------------------------------


def test_golden_submit_readings_tx_is_decoded_by_the_kernel_as_by_the_reference() -> None:
    vec = GOLDEN["submit_readings_tx"]
    raw = bytes.fromhex(vec["tx_hex"])
    items = crev_native.parse_readings_tx(raw, GOLDEN["chain_id"], PARAMS.max_tx_bytes, PARAMS.max_batch_readings)
    assert items is not None and [t[13].hex() for t in items] == vec["reading_hashes"]
    assert items[0][12].hex() == GOLDEN["reading"]["signed_hex"]
    ref, fast = both(raw, GOLDEN["chain_id"])
    assert len(ref) == 9 and fast == ref
    assert ref[6].hex() == vec["tx_hash"]


def test_a_well_formed_batch_is_the_kernels() -> None:
    raw = tx_bytes([reading(s, 1_780_272_000 + 60 * s) for s in range(1, 40)])
    items = crev_native.parse_readings_tx(raw, CHAIN, PARAMS.max_tx_bytes, PARAMS.max_batch_readings)
    assert items is not None and len(items) == 39
    r = items[0]
    assert r[:11] == (CHAIN, "dgc-1", 1, 1_780_272_060, 60, 800, 300, 100, 10_800, 20_300, 3_100)
    assert r[12] == encode_reference(reading(1, 1_780_272_060)[:12])
    assert r[13] == sha256(encode_reference(reading(1, 1_780_272_060)))
    ref, fast = both(raw)
    assert len(ref) == 9 and not ref[8] and fast == ref


def good_tx() -> bytes:
    return tx_bytes([reading(1), reading(2, 1_780_272_060)])


def splice(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert raw.count(old) >= 1, old
    return raw.replace(old, new, 1)


G = good_tx()
SIG = G[G.index(b"\x58\x40"):][:66]  # the first reading's signature item
HOSTILE = {
    "trailing byte": G + b"\x00",
    "truncated": G[:-1],
    "tx array with a 1-byte length head": b"\x98\x07" + G[1:],
    "indefinite body": splice(G, b"\x82\x8d", b"\x9f\x8d")[:-1] + b"\xff\x40",
    "seq with a long head": splice(G, b"dgc-1\x01", b"dgc-1\x18\x01"),
    "tagged seq": splice(G, b"dgc-1\x01", b"dgc-1\xc2\x41\x01"),
    "seq as a float": splice(G, b"dgc-1\x01", b"dgc-1\xf9\x3c\x00"),
    "seq as true": splice(G, b"dgc-1\x01", b"dgc-1\xf5"),
    "seq 0": splice(G, b"dgc-1\x01", b"dgc-1\x00"),
    "negative seq": splice(G, b"dgc-1\x01", b"dgc-1\x20"),
    "device id not utf-8": splice(G, b"\x65dgc-1", b"\x65dgc-\xff"),
    "device id upper case": splice(G, b"\x65dgc-1", b"\x65DGC-1"),
    "reading of 14 elements": splice(G, b"\x8d", b"\x8e")[:-1] + b"\x00\x40",
    "short signature": splice(G, SIG, b"\x58\x3f" + SIG[2:-1]),
    "signature as text": splice(G, SIG, b"\x78\x40" + SIG[2:]),
    "signed transaction envelope": splice(G, b"\x40", b"\x41\x00"),
    "nonce 1": splice(G, b"\x60\x00\x82", b"\x60\x01\x82"),
    "signer set": splice(G, b"\x60\x00\x82", b"\x61a\x00\x82"),
    "empty body": tx_bytes([]),
    "body not an array": tx_bytes(b"x"),  # type: ignore[arg-type]
    "another kind": tx_bytes([reading()], kind="submit_meter_values"),
    "another chain": tx_bytes([reading()], chain_id="other"),
    "export above generation": tx_bytes([reading(e=900)]),
    "interval not dividing 30 min": tx_bytes([reading(interval_s=420, start=1_780_272_000 - 1_780_272_000 % 420)]),
    "interval not aligned": tx_bytes([reading(start=1_780_272_030)]),
    "interval_start beyond 2^40": tx_bytes([reading(start=2**40 + 60)]),
    "register above MAX_WH": tx_bytes([reading(regs=(10**10, 0, 0))]),
    "generation above MAX_WH": tx_bytes([reading(g=10**10, e=0)]),
    "seq above 2^63-1": tx_bytes([reading(seq=2**63)]),
    "one good, one malformed": tx_bytes([reading(1), ["crev/reading/1"]]),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_encodings_are_refused_with_the_same_field_and_reason(name: str) -> None:
    raw = HOSTILE[name]
    assert crev_native.parse_readings_tx(raw, CHAIN, PARAMS.max_tx_bytes, PARAMS.max_batch_readings) is None
    ref, fast = both(raw)
    assert fast == ref


def test_a_reading_of_another_chain_is_decoded_alike_for_the_handler_to_refuse() -> None:
    raw = tx_bytes([reading(chain_id="other")])
    items = crev_native.parse_readings_tx(raw, CHAIN, PARAMS.max_tx_bytes, PARAMS.max_batch_readings)
    assert items is not None and items[0][0] == "other"
    ref, fast = both(raw)
    assert fast == ref


def test_the_limits_are_the_reference_limits() -> None:
    raw = tx_bytes([reading(s, 1_780_272_000 + 60 * s) for s in range(1, 4)])
    tight = Params(max_batch_readings=2)
    assert crev_native.parse_readings_tx(raw, CHAIN, PARAMS.max_tx_bytes, 2) is None
    assert crev_native.parse_readings_tx(raw, CHAIN, len(raw) - 1, 20_000) is None
    assert crev_native.parse_readings_tx(raw, CHAIN, len(raw), 3) is not None
    ref, fast = both(raw, params=tight)
    assert fast == ref and isinstance(ref, tuple) and ref[1] == "body"
    small = Params(max_tx_bytes=len(raw) - 1)
    ref, fast = both(raw, params=small)
    assert fast == ref and isinstance(ref, tuple) and ref[1] == "tx"


U64 = st.integers(min_value=0, max_value=2**64 - 1)
EDGES = st.sampled_from([0, 1, 60, 300, 1800, 2**40, 2**63 - 1, 10**10 - 1, 10**10])
FIELD = st.one_of(U64, st.integers(min_value=0, max_value=3_000), EDGES,
                  st.integers(max_value=-1), st.booleans(), st.floats(), st.text(max_size=3), st.binary(max_size=3))


@st.composite
def random_reading(draw: st.DrawFn) -> list[Any]:
    start = draw(st.sampled_from([1_780_272_000, 1_780_272_060, 1_780_272_030, 0, 2**40]))
    interval_s = draw(st.sampled_from([60, 300, 1800, 420, 0, 59]))
    g = draw(st.integers(min_value=0, max_value=2_000))
    device = draw(st.sampled_from(["dgc-1", "a", "x" * 64, "x" * 65, "-a", "é"]))
    v = reading(draw(st.integers(min_value=1, max_value=9)), start, interval_s, g, draw(st.integers(0, 500)),
                draw(st.integers(0, 2_100)), device=device,
                chain_id=draw(st.sampled_from([CHAIN, "other", ""])))
    if draw(st.booleans()):
        v[12] = draw(st.sampled_from([v[12], v[12][:63], v[12] + b"\x00", b"", "sig"]))
    for _ in range(draw(st.integers(0, 2))):  # now and then, a field replaced by anything
        v[draw(st.integers(0, 12))] = draw(FIELD)
    return v


@given(st.lists(random_reading(), min_size=1, max_size=5))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_batches_decode_alike(body: list[Any]) -> None:
    raw = tx_bytes(body)
    ref, fast = both(raw)
    assert fast == ref
    items = crev_native.parse_readings_tx(raw, CHAIN, PARAMS.max_tx_bytes, PARAMS.max_batch_readings)
    if len(ref) == 9 and not ref[8]:
        assert items is not None, "a batch of well-formed readings must be decoded by the kernel"
    else:
        assert items is None


@given(st.binary(min_size=1, max_size=8), st.integers(min_value=0), st.sampled_from(["flip", "insert", "delete"]))
@settings(max_examples=300, deadline=None)
def test_mutated_bytes_decode_alike(noise: bytes, where: int, how: str) -> None:
    raw = bytearray(G)
    i = where % len(raw)
    if how == "flip":
        raw[i] ^= noise[0] or 1
    elif how == "insert":
        raw[i:i] = noise
    else:
        del raw[i:i + len(noise)]
    ref, fast = both(bytes(raw))
    assert fast == ref


def test_the_golden_chain_replays_alike_without_the_kernel(reference: None) -> None:
    """Every root of the golden chain (checked against its blocks by ``apply_block``) with the
    reference codec; tests/core/test_golden_vectors.py replays it with the kernel."""
    from tests.core.test_golden_vectors import replay_chain

    _, outcomes = replay_chain()
    assert [o.header.hash.hex() for o in outcomes] == [b["block_hash"] for b in GOLDEN["chain"]["blocks"]]
    use_codec_kernel(True)
    _, outcomes2 = replay_chain()
    assert [o.encoded_results for o in outcomes2] == [o.encoded_results for o in outcomes]
    assert [o.changed for o in outcomes2] == [o.changed for o in outcomes]


@st.composite
def well_formed_reading(draw: st.DrawFn) -> list[Any]:
    interval_s = draw(st.sampled_from(sorted(ALLOWED_INTERVAL_SECONDS)))
    start = interval_s * draw(st.integers(min_value=0, max_value=2**40 // interval_s))
    g = draw(st.integers(min_value=0, max_value=MAX_WH))
    p = reading_payload(draw(st.text(max_size=8)), draw(st.from_regex(ID_RE, fullmatch=True)),
                        draw(st.integers(min_value=1, max_value=2**63 - 1)), start, interval_s, g,
                        draw(st.integers(min_value=0, max_value=MAX_WH)), draw(st.integers(min_value=0, max_value=g)),
                        *draw(st.tuples(*[st.integers(min_value=0, max_value=MAX_WH)] * 3)))
    return [*p, draw(st.binary(min_size=64, max_size=64))]


@given(st.lists(well_formed_reading(), min_size=1, max_size=6))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_well_formed_batches_are_decoded_by_the_kernel_reading_by_reading(body: list[Any]) -> None:
    raw = tx_bytes(body)
    items = crev_native.parse_readings_tx(raw, CHAIN, PARAMS.max_tx_bytes, PARAMS.max_batch_readings)
    assert items is not None
    use_codec_kernel(False)
    try:
        ref = decode_tx(raw, CHAIN, PARAMS)
    finally:
        use_codec_kernel(True)
    readings = ref.message.readings  # type: ignore[attr-defined]
    assert len(items) == len(readings) == len(body)
    for got, want in zip(items, readings, strict=True):
        assert got == (want.chain_id, want.device_id, want.seq, want.interval_start, want.interval_s,
                       want.generation_wh, want.import_wh, want.export_wh, want.generation_register_wh,
                       want.import_register_wh, want.export_register_wh, want.signature, want.signed_bytes,
                       want.hash)
