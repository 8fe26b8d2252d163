"""Ed25519 keys and signatures (RFC 8032) through PyNaCl / libsodium.

Keys are 32-byte seeds (private) and 32-byte public keys; signatures are 64 bytes over the exact
canonical bytes of a message. libsodium rejects non-canonical signatures, so a (key, message) has
one valid signature.
"""

from __future__ import annotations

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


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s signature of ``message``."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def verify_many(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """Verify (public_key, message, signature) triples; used by worker processes."""
    return [verify(pk, msg, sig) for pk, msg, sig in items]
