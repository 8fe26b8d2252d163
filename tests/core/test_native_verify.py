"""The compiled kernel (``crev_native``) accepts exactly the signatures libsodium accepts.

A node with the kernel and a node without it must never disagree about a reading, so every case
here compares the kernel's answer with PyNaCl's (``crypto_sign_open``, libsodium's
``crypto_sign_verify_detached``) rather than with an expected True/False of our own: RFC 8032's
vectors, random valid and corrupted triples, and the hostile encodings behind the "many EdDSAs"
divergences (non-canonical S, small-order and mixed-order A and R, y ≥ p, the identity, flipped
bits). Points for the hostile cases come from a small affine Edwards implementation below.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crev.core import signing
from crev.core.signing import Signer, verify_reference

crev_native = pytest.importorskip(
    "crev_native", reason="crev_native (native/, Rust) is not installed: `pip install ./native` needs cargo")

Triple = tuple[bytes, bytes, bytes]
Check = Callable[[bytes, bytes, bytes], bool]

# --- the kernel's entry points, each as a one-triple check -----------------------------------------


def _one(pk: bytes, msg: bytes, sig: bytes) -> bool:
    return bool(crev_native.verify(pk, msg, sig))


def _many(pk: bytes, msg: bytes, sig: bytes) -> bool:
    return bool(crev_native.verify_many([(pk, msg, sig)])[0])


def _batch(pk: bytes, msg: bytes, sig: bytes) -> bool:
    # in a batch of honest signatures, so the batch equation (not only its fallback) decides it
    items = [*HONEST[:4], (pk, msg, sig), *HONEST[4:8]]
    out = crev_native.verify_batch(items)
    assert out[:4] + out[5:] == [True] * 8
    return bool(out[4])


KERNELS: dict[str, Check] = {"verify": _one, "verify_many": _many, "verify_batch": _batch}


def assert_same(pk: bytes, msg: bytes, sig: bytes) -> bool:
    """Every kernel entry point answers as libsodium does; returns libsodium's answer."""
    want = verify_reference(pk, msg, sig)
    for name, check in KERNELS.items():
        assert check(pk, msg, sig) is want, f"{name} disagrees with libsodium on pk={pk.hex()} sig={sig.hex()}"
    return want


# --- Ed25519 arithmetic (affine, for building hostile points) ----------------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
Point = tuple[int, int]
IDENTITY: Point = (0, 1)


def add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + y1 * x2) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)


def neg(a: Point) -> Point:
    return (-a[0] % P, a[1])


def mul(k: int, a: Point) -> Point:
    out, k = IDENTITY, k
    while k:
        if k & 1:
            out = add(out, a)
        a, k = add(a, a), k >> 1
    return out


def x_for(y: int, sign: int) -> int | None:
    """The x with parity ``sign`` on the curve at ``y`` (mod p), or None."""
    y %= P
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if x * x % P != x2:
        x = x * SQRT_M1 % P
    if x * x % P != x2:
        return None
    return P - x if (x & 1) != sign and x else x


def decode(s: bytes) -> Point:
    y = int.from_bytes(s, "little") & (2**255 - 1)
    x = x_for(y, s[31] >> 7)
    assert x is not None
    return (x, y % P)


def encode(a: Point, y_plus_p: bool = False, sign: int | None = None) -> bytes:
    x, y = a
    y = y + P if y_plus_p else y
    return (y | ((x & 1 if sign is None else sign) << 255)).to_bytes(32, "little")


B = (x_for(4 * pow(5, P - 2, P), 0), 4 * pow(5, P - 2, P) % P)
T8 = decode(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))  # order 8
TORSION = [mul(k, T8) for k in range(8)]  # every point of small order


def h_of(r: bytes, pk: bytes, msg: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + pk + msg).digest(), "little") % L


def sig_of(r_enc: bytes, s: int) -> bytes:
    return r_enc + s.to_bytes(32, "little")


def hostile_signer(seed: int) -> tuple[int, Point, bytes]:
    a = random.Random(seed).randrange(1, L)
    big_a = mul(a, B)
    return a, big_a, encode(big_a)


HONEST: list[Triple] = []
for _i in range(80):
    _k = Signer(hashlib.sha256(b"honest %d" % _i).digest())
    _m = b"reading %d" % _i
    HONEST.append((_k.public_key, _m, _k.sign(_m)))


# --- sanity of the arithmetic above -------------------------------------------------------------------


def test_the_test_arithmetic_agrees_with_libsodium() -> None:
    k = Signer(b"\x11" * 32)
    a = int.from_bytes(hashlib.sha512(b"\x11" * 32).digest()[:32], "little")
    a = (a & ~7 & ((1 << 254) - 1)) | (1 << 254)
    assert encode(mul(a, B)) == k.public_key
    assert mul(L, B) == IDENTITY
    assert len({encode(t) for t in TORSION}) == 8
    assert all(mul(8, t) == IDENTITY for t in TORSION)


# --- RFC 8032 §7.1 -----------------------------------------------------------------------------------

RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
     "d25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
     "387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc659"
     "4a7c15e9716ed28dc027beceea1ec40a"),
    ("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf", hashlib.sha512(b"abc").hexdigest(),
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e030"
     "3dca179c138ac17ad9bef1177331a704"),
]


@pytest.mark.parametrize(("seed", "pk", "msg", "sig"), RFC8032, ids=["test1", "test2", "test3", "sha_abc"])
def test_rfc8032_vectors_verify_as_libsodium(seed: str, pk: str, msg: str, sig: str) -> None:
    k = Signer(bytes.fromhex(seed))
    assert k.public_key.hex() == pk and k.sign(bytes.fromhex(msg)).hex() == sig
    assert assert_same(bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig)) is True
    assert assert_same(bytes.fromhex(pk), bytes.fromhex(msg) + b"\x00", bytes.fromhex(sig)) is False


# --- random triples ------------------------------------------------------------------------------------

MUTATIONS = ["none", "sig_bit", "pk_bit", "msg_bit", "msg_extend", "random_sig", "random_pk", "other_key",
             "short_sig", "long_pk"]


@settings(max_examples=300, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), msg=st.binary(max_size=300),
       mutation=st.sampled_from(MUTATIONS), where=st.integers(0, 10**6), noise=st.binary(min_size=64, max_size=64))
def test_random_triples_verify_as_libsodium(seed: bytes, msg: bytes, mutation: str, where: int, noise: bytes) -> None:
    k = Signer(seed)
    pk, sig = k.public_key, k.sign(msg)
    original = (pk, msg, sig)
    if mutation == "sig_bit":
        sig = flip(sig, where % 512)
    elif mutation == "pk_bit":
        pk = flip(pk, where % 256)
    elif mutation == "msg_bit" and msg:
        msg = flip(msg, where % (8 * len(msg)))
    elif mutation == "msg_extend":
        msg += noise[:1 + where % 8]
    elif mutation == "random_sig":
        sig = noise
    elif mutation == "random_pk":
        pk = noise[:32]
    elif mutation == "other_key":
        pk = Signer(noise[:32]).public_key
    elif mutation == "short_sig":
        sig = sig[:where % 64]
    elif mutation == "long_pk":
        pk += b"\x00"
    assert assert_same(pk, msg, sig) is ((pk, msg, sig) == original)


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_every_single_bit_flip_of_a_signature_and_key_is_judged_as_libsodium() -> None:
    pk, msg, sig = HONEST[0]
    for bit in range(512):
        assert assert_same(pk, msg, flip(sig, bit)) is False
    for bit in range(256):
        assert_same(flip(pk, bit), msg, sig)


# --- hostile encodings ------------------------------------------------------------------------------------

MSG = b"crev hostile encodings"


def small_order_encodings() -> list[bytes]:
    """Every encoding of a point of small order: each point with both sign bits (x = 0 included,
    whose sign bit 1 is a second encoding), and y + p wherever it still fits in 255 bits."""
    out: set[bytes] = set()
    for t in TORSION:
        for sign in (0, 1):
            out.add(encode(t, sign=sign))
            if t[1] + P < 2**255:
                out.add(encode(t, y_plus_p=True, sign=sign))
    return sorted(out)


def test_small_order_public_keys_are_refused_as_libsodium() -> None:
    encs = small_order_encodings()
    assert len(encs) >= 8 + 2
    for enc in encs:
        # a "signature" that satisfies the equation for A of small order: R = [S]B − [h]A with h·A
        # computed on the real point; libsodium refuses A before the equation anyway
        s = 12345
        for t_r in TORSION:
            r_pt = add(mul(s, B), t_r)
            r = encode(r_pt)
            if add(mul(s, B), neg(mul(h_of(r, enc, MSG), decode_any(enc)))) == r_pt:
                assert assert_same(enc, MSG, sig_of(r, s)) is False
        assert assert_same(enc, MSG, sig_of(encode(B), 1)) is False
        assert assert_same(enc, MSG, HONEST[0][2]) is False


def decode_any(enc: bytes) -> Point:
    y = (int.from_bytes(enc, "little") & (2**255 - 1)) % P
    x = x_for(y, enc[31] >> 7)
    assert x is not None
    return (x, y)


def test_small_order_r_is_refused_as_libsodium() -> None:
    """R of small order with S = h·a, so [S]B − [h]A = O: the equation would hold for R = O."""
    a, _, pk = hostile_signer(1)
    for enc in small_order_encodings():
        s = h_of(enc, pk, MSG) * a % L
        assert assert_same(pk, MSG, sig_of(enc, s)) is False


def test_mixed_order_r_with_a_cofactored_equation_is_refused_as_libsodium() -> None:
    """R = [r]B + T with S = r + h·a: [8]([S]B − [h]A − R) = O holds (a cofactored or batch check
    may accept it), [S]B − [h]A = R does not; libsodium refuses it, so must the kernel."""
    a, _, pk = hostile_signer(2)
    for i, t in enumerate(TORSION[1:]):
        r = 1000 + i
        r_enc = encode(add(mul(r, B), t))
        s = (r + h_of(r_enc, pk, MSG) * a) % L
        assert assert_same(pk, MSG, sig_of(r_enc, s)) is False
        # the same construction without T is a good signature
        r_enc = encode(mul(r, B))
        assert assert_same(pk, MSG, sig_of(r_enc, (r + h_of(r_enc, pk, MSG) * a) % L)) is True


def test_mixed_order_public_keys_are_judged_by_the_cofactorless_equation() -> None:
    """A = [a]B + T is not refused by libsodium: a signature whose R carries exactly the torsion
    −[h]T the equation needs is accepted, one whose R does not is refused. The batch path must
    send these to single verification (a random combination would accept wrongly 1 time in 8)."""
    rng = random.Random(3)
    for k in range(1, 8):  # A's torsion part is [k]T8
        a = rng.randrange(1, L)
        pk = encode(add(mul(a, B), TORSION[k]))
        accepted = refused = 0
        while not (accepted and refused):
            r = rng.randrange(1, L)
            r_b = mul(r, B)
            for j in range(8):  # R's torsion part [j]T8; the equation needs j + h·k ≡ 0 (mod 8)
                r_enc = encode(add(r_b, TORSION[j]))
                h = h_of(r_enc, pk, MSG)
                ok = assert_same(pk, MSG, sig_of(r_enc, (r + h * a) % L))
                assert ok is ((j + h * k) % 8 == 0)
                accepted += ok
                refused += not ok


def test_non_canonical_s_is_refused_as_libsodium() -> None:
    pk, msg, sig = HONEST[1]
    s = int.from_bytes(sig[32:], "little")
    assert assert_same(pk, msg, sig) is True
    for bad in (s + L, s + 2 * L, s | (1 << 253), s | (1 << 254), s | (1 << 255), L, 2**256 - 1):
        if bad < 2**256:
            assert assert_same(pk, msg, sig[:32] + bad.to_bytes(32, "little")) is False
    # S = L − 1 and S = 0 are canonical: the equation decides
    for edge in (0, L - 1):
        assert_same(pk, msg, sig[:32] + edge.to_bytes(32, "little"))


def non_canonical_points() -> list[bytes]:
    """Encodings with y ≥ p (y + p for y = 0 … 18) on the curve, with either sign bit."""
    out = []
    for y in range(19):
        for sign in (0, 1):
            if x_for(y, sign) is not None:
                out.append(((y + P) | (sign << 255)).to_bytes(32, "little"))
    return out


def test_non_canonical_a_and_r_are_refused_as_libsodium() -> None:
    encs = non_canonical_points()
    assert len(encs) >= 4
    a, _, pk = hostile_signer(4)
    for enc in encs:
        # as A (no discrete log of these points is known, so no signature can be made valid for
        # them; libsodium refuses them before the equation)
        assert assert_same(enc, MSG, sig_of(encode(mul(77, B)), 77)) is False
        # as R, with S = h·a (the equation's right side is then the identity's encoding)
        assert assert_same(pk, MSG, sig_of(enc, h_of(enc, pk, MSG) * a % L)) is False
    # the sign bit of a good signature's R flipped: the same y, the other x
    pk1, msg1, sig1 = HONEST[2]
    assert assert_same(pk1, msg1, bytes([*sig1[:31], sig1[31] ^ 0x80]) + sig1[32:]) is False


def test_the_identity_and_zero_as_key_and_as_r_are_refused_as_libsodium() -> None:
    ident = encode(IDENTITY)
    zero = bytes(32)
    for pk in (ident, zero, bytes([1, *bytes(30), 0x80])):
        assert assert_same(pk, MSG, ident + bytes(32)) is False
        assert assert_same(pk, MSG, zero + bytes(32)) is False
    a, _, pk = hostile_signer(5)
    assert assert_same(pk, MSG, sig_of(ident, h_of(ident, pk, MSG) * a % L)) is False


def test_points_off_the_curve_are_refused_as_libsodium() -> None:
    off = [y.to_bytes(32, "little") for y in range(2, 200) if x_for(y, 0) is None][:10]
    assert off
    pk, msg, sig = HONEST[3]
    for enc in off:
        assert assert_same(enc, msg, sig) is False
        assert assert_same(pk, msg, enc + sig[32:]) is False


# --- the list entry points ------------------------------------------------------------------------------


def test_a_batch_with_one_bad_signature_names_exactly_that_one() -> None:
    items = list(HONEST) * 3
    bad = 137
    pk, msg, sig = items[bad]
    items[bad] = (pk, msg + b"!", sig)
    want = [i != bad for i in range(len(items))]
    assert crev_native.verify_batch(items) == want
    assert crev_native.verify_many(items) == want
    assert signing.verify_many(items) == want


def test_a_batch_of_hostile_triples_is_judged_item_by_item_as_libsodium() -> None:
    a, _, pk = hostile_signer(6)
    items: list[Triple] = list(HONEST[:10])
    for t in TORSION[1:]:
        r_enc = encode(add(mul(500, B), t))
        items.append((pk, MSG, sig_of(r_enc, (500 + h_of(r_enc, pk, MSG) * a) % L)))
    items += [(enc, MSG, HONEST[0][2]) for enc in small_order_encodings()]
    items += [(HONEST[0][0], b"x", b"\x00" * 64), (b"short", b"x", HONEST[0][2])]
    want = [verify_reference(*t) for t in items]
    assert want[:10] == [True] * 10 and not any(want[10:])
    assert crev_native.verify_batch(items) == want
    assert crev_native.verify_many(items) == want


def test_a_key_is_judged_alike_on_its_first_use_and_every_later_one() -> None:
    """The kernel keeps each public key it has decoded, by its 32 bytes, on each verifying thread
    (a device signs with one key every minute). Fresh keys, each judged many times in one list,
    in reverse and one by one:
    every answer is libsodium's, for a good key and its encoding with the sign bit flipped (the
    same y, the opposite point: a signature by either must not pass for the other), a
    mixed-order key, and a y that is on no point (never kept)."""
    rng = random.Random(11)
    a = rng.randrange(1, L)
    pk = encode(mul(a, B))
    flipped = bytes([*pk[:31], pk[31] ^ 0x80])
    mixed = encode(add(mul(a, B), TORSION[3]))
    off = next(y.to_bytes(32, "little") for y in range(1_000, 2_000) if x_for(y, 0) is None)

    def signed(key: bytes, secret: int, msg: bytes) -> bytes:
        r = rng.randrange(1, L)
        r_enc = encode(mul(r, B))
        return sig_of(r_enc, (r + h_of(r_enc, key, msg) * secret) % L)

    items: list[Triple] = []
    for i in range(6):
        msg = b"reading %d" % i
        items += [(pk, msg, signed(pk, a, msg)), (flipped, msg, signed(flipped, L - a, msg)),
                  (pk, msg, signed(flipped, L - a, msg)), (flipped, msg, signed(pk, a, msg)),
                  (mixed, msg, signed(mixed, a, msg)), (off, msg, signed(pk, a, msg))]
    want = [verify_reference(*t) for t in items]
    assert want[:4] == [True, True, False, False] and want[5] is False
    assert crev_native.verify_many(items) == want
    assert crev_native.verify_many(items[::-1]) == want[::-1]
    assert [crev_native.verify(*t) for t in items] == want


def test_empty_lists() -> None:
    assert crev_native.verify_many([]) == []
    assert crev_native.verify_batch([]) == []


# --- crev.core.signing uses the kernel, and can be told not to --------------------------------------------


def test_signing_uses_the_kernel_unless_told_not_to() -> None:
    was = signing.kernel_in_use()
    assert signing.use_kernel(True) is True
    assert signing.kernel_in_use()
    try:
        assert signing.use_kernel(False) is False
        assert not signing.kernel_in_use()
        pk, msg, sig = HONEST[0]
        assert signing.verify(pk, msg, sig) and not signing.verify(pk, msg + b"x", sig)
        assert signing.verify_many(HONEST[:3]) == [True] * 3
    finally:
        signing.use_kernel(was)


def test_the_environment_switch_is_read_at_the_edge() -> None:
    """CREV_NATIVE=0 makes a process verify with PyNaCl (crev.node.node reads it on import)."""
    code = ("import crev.node.node; from crev.core import signing; "
            "print(signing.KERNEL is not None, signing.kernel_in_use())")
    for env, want in (("0", "True False"), ("1", "True True")):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "CREV_NATIVE": env},
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == want


def test_non_bytes_arguments_are_judged_by_the_reference() -> None:
    pk, msg, sig = HONEST[0]
    assert signing.verify(pk, bytearray(msg), sig) is verify_reference(pk, bytes(msg), sig)
    assert signing.verify_many([(pk, bytearray(msg), sig), HONEST[1]]) == [True, True]  # type: ignore[list-item]
