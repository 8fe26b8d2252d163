"""Ed25519 keys and signatures (RFC 8032) through PyNaCl / libsodium.

Keys are 32-byte seeds (private) and 32-byte public keys; signatures are 64 bytes over the exact
canonical bytes of a message. libsodium rejects non-canonical signatures, so a (key, message) has
one valid signature.

Verification has one acceptance rule and two implementations of it: libsodium's
``crypto_sign_verify_detached`` through PyNaCl (``verify_reference``, the reference, always
present) and the compiled kernel ``crev_native`` (``native/``, Rust: the same rules on
curve25519-dalek, off the GIL), used by ``verify`` and ``verify_many`` when it is installed.
``use_kernel(False)`` forces the reference; the environment's ``CREV_NATIVE=0`` does the same
from the edge (``crev.node.node`` reads it: the core reads no environment). Nodes with and without
the kernel accept exactly the same signatures (tests/core/test_native_verify.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, cast

from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64
SEED_LEN = 32


class Signer:
    """A private key that signs bytes."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_LEN:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)

    @property
    def seed(self) -> bytes:
        return bytes(self._key)


def public_key_from_seed(seed: bytes) -> bytes:
    pk, _ = crypto_sign_seed_keypair(seed)
    return bytes(pk)


def usable_public_key(public_key: bytes) -> bool:
    """True if ``public_key`` can ever verify a signature: 32 bytes that canonically encode a point
    of Ed25519's prime-order subgroup (libsodium's ``crypto_core_ed25519_is_valid_point``). Refused:
    the identity (01 00…), the all-zero key and every other small-order or mixed-order point, and
    non-canonical encodings (y ≥ 2^255 − 19). A key made from a seed always passes."""
    return len(public_key) == PUBLIC_KEY_LEN and bool(crypto_core_ed25519_is_valid_point(public_key))


Triple = tuple[bytes, bytes, bytes]  # (public key, message, signature)


class Kernel(Protocol):
    """What ``crev_native`` offers (native/crev_native.pyi)."""

    def verify(self, public_key: bytes, message: bytes, signature: bytes, /) -> bool: ...

    def verify_many(self, items: Iterable[Triple], /) -> list[bool]: ...

    def verify_batch(self, items: Iterable[Triple], /) -> list[bool]: ...


def _installed_kernel() -> Kernel | None:
    try:
        import crev_native  # the compiled kernel, where `pip install ./native` built it
    except ImportError:
        return None
    return cast(Kernel, crev_native)


KERNEL: Kernel | None = _installed_kernel()  # installed, whether in use or not
_kernel: Kernel | None = KERNEL


def use_kernel(enabled: bool) -> bool:
    """Verify with the kernel (True, where installed) or with the reference (False) from now on.
    Returns whether the kernel is in use. Worker processes forked later inherit the choice."""
    global _kernel
    _kernel = KERNEL if enabled else None
    return _kernel is not None


def kernel_in_use() -> bool:
    return _kernel is not None


def verify_reference(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s signature of ``message``, by libsodium itself."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s signature of ``message`` (libsodium's rules: by
    the kernel where installed, else by libsodium)."""
    k = _kernel
    if k is None or type(public_key) is not bytes or type(message) is not bytes or type(signature) is not bytes:
        return verify_reference(public_key, message, signature)
    return k.verify(public_key, message, signature)


def verify_many(items: Sequence[Triple]) -> list[bool]:
    """Verify (public_key, message, signature) triples, in order; used by the verify workers. The
    kernel checks the whole list with the GIL released."""
    k = _kernel
    if k is not None:
        try:
            return k.verify_many(items)
        except TypeError:  # an item that is not three bytes objects: one by one, as the reference
            pass
    return [verify(pk, msg, sig) for pk, msg, sig in items]
