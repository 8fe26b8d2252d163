"""One hash function: SHA-256 (FIPS 180-4), chosen because device firmware, browsers (WebCrypto)
and every language have it. Domain separation is by prefix byte, as in RFC 6962 Merkle trees."""

from __future__ import annotations

import hashlib

HASH_LEN = 32


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hex_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
