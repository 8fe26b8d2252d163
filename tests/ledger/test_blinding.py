"""Blinding values in private records (ledger/blinding.py, docs/wire-format.md §7 "Blinding values").

A leaf hash of the state tree is SHA-256(0x00 ‖ u16 len(key) ‖ key ‖ value), and public state
proofs list the leaf hashes of a whole bucket. These tests pin what the blinding values change and,
as much, what they leave exactly as it was: a record without one keeps its old bytes, so a chain
made before blinds replays to the same roots (tests/core/test_golden_vectors.py replays one).
"""

from __future__ import annotations

from typing import Any

import pytest

from crev.core.encoding import decode, encode
from crev.core.hashing import sha256
from crev.ledger.blinding import BLIND_LEN, next_supply_blind
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.reset_participant_key import ResetParticipantKey
from crev.ledger.messages.rotate_key import RotateKey
from crev.ledger.messages.submit_controls import control_payload
from crev.ledger.messages.withdraw_jpy import WithdrawJpy
from crev.ledger.records import Account, ControlRecord, Supply
from tests.ledger.meter_kit import control, submit_controls
from tests.ledger.test_bad_input_holdings import reject
from tests.ledger_kit import CHAIN, T0, Kit, key

BLIND = bytes(range(0xA0, 0xB0))  # 16 bytes a0 a1 … af
SALT1 = bytes([0x11]) * 16
SALT2 = bytes([0x22]) * 16
SLOT = T0 + 12 * 3600  # 2026-06-01 12:00 JST


def signed(kit: Kit, signer: str, kind: str, body: list[Any]) -> bytes:
    """A signed transaction with an arbitrary body (the message classes would not build a bad one)."""
    unsigned = ["crev/tx/1", CHAIN, kind, signer, kit.nonces[signer], body]
    return encode([*unsigned, key(signer).sign(encode(unsigned))])


# --- the bytes of records without a blind are what they always were --------------------------------


def test_an_account_without_a_blind_encodes_its_eleven_elements_as_before() -> None:
    a = Account("a", "A", "buyer", bytes(32), jpy=12_345)
    assert encode(a.to_value()).hex() == ("8b" "6161" "6141" "656275796572" "5820" + "00" * 32
                                          + "00" "00" "00" "00" "00" "193039" "00")
    # with a blind: a 12th element, the 16 bytes, and nothing else moves
    a.blind = BLIND
    assert encode(a.to_value()).hex() == ("8c" "6161" "6141" "656275796572" "5820" + "00" * 32
                                          + "00" "00" "00" "00" "00" "193039" "00" "50" + BLIND.hex())
    assert Account.from_value(decode(encode(a.to_value()))) == a


def test_supply_and_control_records_grow_by_one_element_only_with_their_blind() -> None:
    s = Supply(jpy=7)
    assert encode(s.to_value()).hex() == "8a" "01" "00" "00" "00" "00" "00" "00" "07" "00" "00"
    s.jpy_blind = SALT1
    assert encode(s.to_value()).hex() == "8b" "01" "00" "00" "00" "00" "00" "00" "07" "00" "00" "50" + SALT1.hex()
    assert Supply.from_value(decode(encode(s.to_value()))) == s
    c = ControlRecord(1800, 1860, 0, -1, "zero_export", 0, 0, 5_000, 1_000, -1, bytes(32), 3)
    plain = encode(c.to_value())
    assert plain.hex() == ("8c" "190708" "190744" "00" "20" "6b7a65726f5f6578706f7274" "00" "00" "191388"
                           "1903e8" "20" "5820" + "00" * 32 + "03")
    c.salt = SALT2
    assert encode(c.to_value()) == bytes([0x8d]) + plain[1:] + bytes([0x50]) + SALT2
    assert ControlRecord.from_value(decode(encode(c.to_value()))) == c


def test_a_registration_without_a_blind_keeps_the_four_element_body(kit: Kit) -> None:
    msg = RegisterParticipant("new-co", "New Co", "buyer", key("new-co").public_key)
    assert decode(kit.tx("operator", msg))[5] == ["new-co", "New Co", "buyer", key("new-co").public_key]
    assert kit.one(kit.tx("operator", msg)).ok
    assert kit.state.accounts["new-co"].blind == b""
    assert len(decode(kit.state.value_of("a/new-co") or b"")) == 11


# --- accounts ---------------------------------------------------------------------------------


def test_register_participant_stores_the_blind_and_never_emits_it(kit: Kit) -> None:
    res = kit.one(kit.tx("operator", RegisterParticipant("new-co", "New Co", "buyer", key("new-co").public_key,
                                                         BLIND)))
    assert res.ok and res.detail == ["new-co"]
    assert [e.to_dict() for e in res.events] == [{"type": "participant_registered", "account_id": "new-co",
                                                  "name": "New Co", "role": "buyer",
                                                  "public_key": key("new-co").public_key.hex()}]
    value = kit.state.value_of("a/new-co")
    assert value is not None and decode(value)[11] == BLIND and value.endswith(bytes([0x50]) + BLIND)
    # the blind is not in the result (events, detail) that the results root commits to
    assert BLIND not in encode([[e.to_value() for e in res.events], res.detail])


def test_the_leaf_hash_of_a_blinded_account_changes_with_the_blind_alone(kit: Kit) -> None:
    """Two accounts alike in every public field and balance: different leaves, so a searcher who
    knows every field but the blind learns nothing from the one it sees."""
    a = Account("x-co", "X", "buyer", key("x").public_key, jpy=12_345, registered_height=2, blind=BLIND)
    b = Account("x-co", "X", "buyer", key("x").public_key, jpy=12_345, registered_height=2, blind=SALT1)
    assert encode(a.to_value()) != encode(b.to_value())


def test_rotate_key_may_set_a_blind_and_may_then_keep_the_key(kit: Kit) -> None:
    pk = key("sun-co").public_key
    refused = kit.one(kit.tx("sun-co", RotateKey(pk)))
    assert refused.error is not None and (refused.error.code, refused.error.field) == ("conflict", "body.public_key")
    res = kit.one(kit.tx("sun-co", RotateKey(pk, BLIND)))
    assert res.ok, res.error
    acct = kit.state.accounts["sun-co"]
    assert (acct.public_key, acct.blind) == (pk, BLIND)
    new = key("sun-co/2").public_key
    assert kit.one(kit.tx("sun-co", RotateKey(new))).ok  # no blind: the one it has stays
    assert (kit.state.accounts["sun-co"].public_key, kit.state.accounts["sun-co"].blind) == (new, BLIND)


def test_the_operator_blinds_an_account_registered_before_blinds(kit: Kit) -> None:
    pk = key("buyer-co").public_key
    assert kit.state.accounts["buyer-co"].blind == b""
    res = kit.one(kit.tx("operator", ResetParticipantKey("buyer-co", pk, "blind the record", SALT2)))
    assert res.ok, res.error
    assert (kit.state.accounts["buyer-co"].public_key, kit.state.accounts["buyer-co"].blind) == (pk, SALT2)
    assert kit.one(kit.tx("buyer-co", RotateKey(key("buyer-co/2").public_key))).ok  # its key still signs


# --- bad blinds: refused, naming the field, changing nothing -------------------------------------


BAD = {"15 bytes": b"\x01" * 15, "17 bytes": b"\x01" * 17, "text": "0123456789abcdef", "integer": 7,
       "empty": b""}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_a_bad_blind_or_salt_is_refused_with_its_field_and_changes_nothing(kit: Kit, bad: Any) -> None:
    pk = key("new-co").public_key
    phrase = "found" if isinstance(bad, bytes) else "must be a byte string"
    cases = [
        ("operator", "register_participant", ["new-co", "New Co", "buyer", pk, bad], "body.blind"),
        ("sun-co", "rotate_key", [key("sun-co/2").public_key, bad], "body.blind"),
        ("operator", "reset_participant_key", ["sun-co", key("sun-co/3").public_key, "lost", bad], "body.blind"),
        ("operator", "deposit_jpy", ["buyer-co", 1_000, "BANK-1", bad], "body.salt"),
        ("operator", "withdraw_jpy", ["buyer-co", 1, "BANK-2", bad], "body.salt"),
    ]
    for signer, kind, body, field in cases:
        reject(kit, signed(kit, signer, kind, body), "malformed", field, phrase)
    assert "new-co" not in kit.state.accounts
    assert kit.state.accounts["sun-co"].public_key == key("sun-co").public_key


def test_a_body_one_element_too_long_is_refused_at_body(kit: Kit) -> None:
    pk = key("new-co").public_key
    reject(kit, signed(kit, "operator", "register_participant", ["new-co", "New Co", "buyer", pk, BLIND, BLIND]),
           "malformed", "body", "4 elements, or 5 with a blind")
    reject(kit, signed(kit, "operator", "deposit_jpy", ["buyer-co", 5, "B", SALT1, SALT1]), "malformed", "body",
           "3 elements, or 4 with a salt")


# --- the supply's JPY total --------------------------------------------------------------------


def test_deposits_and_withdrawals_with_a_salt_chain_the_supply_blind(kit: Kit) -> None:
    assert kit.one(kit.tx("operator", DepositJpy("buyer-co", 5_000, "BANK-1"))).ok  # no salt: none yet
    assert kit.state.supply.jpy_blind == b"" and len(decode(kit.state.value_of("s") or b"")) == 10
    assert kit.one(kit.tx("operator", DepositJpy("buyer-co", 7_000, "BANK-2", SALT1))).ok
    first = sha256(SALT1)[:16]
    assert kit.state.supply.jpy_blind == first == next_supply_blind(b"", SALT1)
    assert kit.one(kit.tx("operator", WithdrawJpy("buyer-co", 2_000, "BANK-3", SALT2))).ok
    second = sha256(first + SALT2)[:16]
    assert kit.state.supply.jpy_blind == second and len(second) == BLIND_LEN
    assert kit.one(kit.tx("operator", DepositJpy("buyer-co", 1, "BANK-4"))).ok  # unsalted: the blind stays
    s = decode(kit.state.value_of("s") or b"")
    assert (s[7], s[10]) == (5_000 + 7_000 - 2_000 + 1, second)
    # the salt of the last one alone does not give the blind: the chain does
    assert second != sha256(SALT2)[:16]


# --- control records ---------------------------------------------------------------------------


def salted(seq: int, start: int, salt: Any) -> list[Any]:
    """dgc-1's zero-export record of the slot at ``start`` with ``salt`` before its signature."""
    fields = control_payload(CHAIN, "dgc-1", seq, start, start + 60, 0, -1, "zero_export", 0, 0, 5_000, 1_000, -1)
    fields.append(salt)
    return [*fields, key("dev/dgc-1").sign(encode(fields))]


def test_a_control_item_with_a_salt_is_signed_over_it_and_the_record_keeps_it(kit: Kit) -> None:
    kit.time = SLOT + 3600
    item = salted(1, SLOT, SALT1)
    assert len(item) == 16 and item[14] == SALT1
    res = kit.one(submit_controls(item, control(2, SLOT + 1800, applied_at=SLOT + 1800)))
    assert res.ok and res.detail == [["accepted", 1], ["accepted", 2]], res.detail
    rec1, rec2 = kit.state.controls[("dgc-1", 1)], kit.state.controls[("dgc-1", 2)]
    assert rec1.salt == SALT1 and rec1.control_hash == sha256(encode(item))
    assert rec2.salt == b"" and len(decode(kit.state.value_of("c/dgc-1/2") or b"")) == 12
    v1 = decode(kit.state.value_of("c/dgc-1/1") or b"")
    assert len(v1) == 13 and v1[12] == SALT1
    # the event carries the hash, never the salt
    assert all(SALT1 not in encode(e.to_value()) for e in res.events)


def test_a_salt_changed_after_signing_breaks_the_signature(kit: Kit) -> None:
    kit.time = SLOT + 600
    item = salted(1, SLOT, SALT1)
    item[14] = SALT2
    res = kit.one(submit_controls(item))
    assert res.error is not None and (res.error.code, res.error.field) == ("bad_signature", "items[0].signature")
    assert ("dgc-1", 1) not in kit.state.controls


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_a_bad_control_salt_refuses_the_item_at_its_salt(kit: Kit, bad: Any) -> None:
    kit.time = SLOT + 600
    root = kit.root()
    res = kit.one(submit_controls(salted(1, SLOT, bad)))
    assert res.error is not None and (res.error.code, res.error.field) == ("malformed", "items[0].salt")
    assert kit.root() == root and ("dgc-1", 1) not in kit.state.controls


def test_a_control_item_of_seventeen_elements_is_refused_at_the_item(kit: Kit) -> None:
    kit.time = SLOT + 600
    item = salted(1, SLOT, SALT1)
    res = kit.one(submit_controls([*item[:15], SALT2, item[15]]))
    assert res.error is not None and (res.error.code, res.error.field) == ("malformed", "items[0]")
    assert "15 elements, or 16 with a salt" in res.error.reason
