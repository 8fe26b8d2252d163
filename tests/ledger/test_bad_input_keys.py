"""Unusable public keys are refused wherever a key enters the ledger.

A key that can never verify a signature (the identity point, the all-zero bytes, any other point
of small order, a point with a small-order component, or a non-canonical encoding) would register
a device or participant nobody can speak for, or worse, one whose "signatures" verify for many
messages under lax verifiers. Every message that carries a key refuses it at its shape check,
naming the field, and the state stays byte-for-byte as it was.
"""

from __future__ import annotations

import pytest
from nacl.bindings import crypto_core_ed25519_add

from crev.core.signing import Signer, usable_public_key
from crev.errors import MalformedError
from crev.ledger.genesis import Genesis
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.reset_participant_key import ResetParticipantKey
from crev.ledger.messages.rotate_key import RotateKey
from crev.ledger.messages.update_device import UpdateDevice
from tests.ledger.test_bad_input_holdings import reject
from tests.ledger_kit import CHAIN, T0, Kit, key

P = 2**255 - 19
IDENTITY = (1).to_bytes(32, "little")  # y = 1: the neutral element
ZERO = bytes(32)  # y = 0: a point of order 4
MINUS_ONE = (P - 1).to_bytes(32, "little")  # y = −1: the point of order 2
NON_CANONICAL = (P + 1).to_bytes(32, "little")  # y = p + 1, i.e. 1 written with y ≥ p
GOOD = key("anyone").public_key
MIXED = crypto_core_ed25519_add(GOOD, MINUS_ONE)  # a real key plus a point of order 2

BAD_KEYS = {"identity": IDENTITY, "all-zero": ZERO, "order-2": MINUS_ONE, "non-canonical": NON_CANONICAL,
            "mixed-order": MIXED}
PHRASE = "is not a usable Ed25519 public key"


def test_keys_made_from_seeds_are_usable_and_the_bad_ones_are_not() -> None:
    assert all(usable_public_key(Signer(bytes([i]) * 32).public_key) for i in range(200))
    assert not any(usable_public_key(pk) for pk in BAD_KEYS.values())
    assert not usable_public_key(GOOD[:31])


@pytest.mark.parametrize("bad", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_register_device_refuses_an_unusable_key(kit: Kit, bad: bytes) -> None:
    msg = RegisterDevice("dgc-9", "sun-co", bad, 10_000, T0 - 86400, 35_000_000, 139_000_000, "tokyo", "SN-9",
                         T0 + 86400 * 365, False, "solar_pv")
    reject(kit, kit.tx("operator", msg), "malformed", "body.public_key", PHRASE)
    assert "dgc-9" not in kit.state.devices


@pytest.mark.parametrize("bad", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_update_device_refuses_an_unusable_new_key(kit: Kit, bad: bytes) -> None:
    msg = UpdateDevice("dgc-1", (("public_key", bad),))
    reject(kit, kit.tx("operator", msg), "malformed", "body.changes[0].value", PHRASE)


@pytest.mark.parametrize("bad", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_register_participant_refuses_an_unusable_key(kit: Kit, bad: bytes) -> None:
    reject(kit, kit.tx("operator", RegisterParticipant("new-co", "New Co", "buyer", bad)), "malformed",
           "body.public_key", PHRASE)


@pytest.mark.parametrize("bad", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_rotate_key_refuses_an_unusable_key(kit: Kit, bad: bytes) -> None:
    reject(kit, kit.tx("sun-co", RotateKey(bad)), "malformed", "body.public_key", PHRASE)


@pytest.mark.parametrize("bad", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_reset_participant_key_refuses_an_unusable_key_but_empty_still_revokes(kit: Kit, bad: bytes) -> None:
    reject(kit, kit.tx("operator", ResetParticipantKey("sun-co", bad, "lost")), "malformed", "body.public_key",
           PHRASE)
    res = kit.one(kit.tx("operator", ResetParticipantKey("sun-co", b"", "lost")))
    assert res.ok and kit.state.accounts["sun-co"].public_key == b""


@pytest.mark.parametrize("which", ["operator", "sequencer"])
def test_a_genesis_with_an_unusable_key_does_not_load(which: str) -> None:
    good = Genesis(CHAIN, T0, "operator", "Operator", key("operator").public_key, key("sequencer").public_key)
    text = good.to_json().replace((key(which).public_key).hex(), IDENTITY.hex())
    with pytest.raises(MalformedError) as err:
        Genesis.from_json(text)
    assert err.value.field == ("genesis.operator.public_key" if which == "operator" else "genesis.sequencer_public_key")
    assert PHRASE in err.value.reason
