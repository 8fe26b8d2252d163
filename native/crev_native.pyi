"""crev's compiled kernel: Ed25519 verification with libsodium's exact acceptance rules, off the GIL."""

from collections.abc import Iterable

LIBSODIUM_RULES: str
__version__: str

def verify(public_key: bytes, message: bytes, signature: bytes, /) -> bool: ...
def verify_many(items: Iterable[tuple[bytes, bytes, bytes]], /) -> list[bool]: ...
def verify_batch(items: Iterable[tuple[bytes, bytes, bytes]], /) -> list[bool]: ...
