"""reset_participant_key: the operator replaces or revokes a participant's key."""

from __future__ import annotations

from crev.ledger.messages.reset_participant_key import ResetParticipantKey
from crev.ledger.messages.rotate_key import RotateKey
from crev.ledger.messages.transfer import Transfer
from tests.ledger_kit import NOON, Kit, key

LOT = "dgc-1:20260601T1200"


def test_a_revoked_participant_can_sign_nothing_until_the_operator_sets_a_new_key(kit: Kit) -> None:
    res = kit.one(kit.tx("operator", ResetParticipantKey("sun-co", b"", "laptop stolen, ticket 88")))
    assert res.ok and res.detail == ["sun-co"]
    assert [e.to_dict() for e in res.events] == [{"type": "participant_key_reset", "account_id": "sun-co",
                                                  "public_key": "", "reason": "laptop stolen, ticket 88"}]
    assert kit.state.accounts["sun-co"].public_key == b""
    # the old key no longer signs anything, not even a key rotation
    root = kit.root()
    refused = kit.one(kit.tx("sun-co", RotateKey(key("sun-co/new").public_key)))
    assert not refused.ok and refused.error is not None
    assert refused.error.to_dict() == {"code": "bad_signature", "field": "tx.signer",
                                       "reason": "sun-co's key was revoked by the operator"}
    assert kit.root() == root
    # the operator sets a new key; it signs, the old one does not
    new = key("sun-co/new")
    assert kit.one(kit.tx("operator", ResetParticipantKey("sun-co", new.public_key, "new laptop"))).ok
    ok = kit.one(kit.tx("sun-co", RotateKey(key("sun-co/newer").public_key), signing_key=new))
    assert ok.ok, ok.error


def test_reset_key_bad_input_is_refused_and_changes_nothing(kit: Kit) -> None:
    root = kit.root()
    cases = [
        ("operator", ResetParticipantKey("nobody", b"", "x"), "not_found", "body.account_id"),
        ("sun-co", ResetParticipantKey("buyer-co", b"", "x"), "forbidden", "tx.signer"),
        ("operator", ResetParticipantKey("operator", b"", "x"), "rule_violation", "body.public_key"),
        ("operator", ResetParticipantKey("sun-co", key("sun-co").public_key, "x"), "conflict",
         "body.public_key"),
        ("operator", ResetParticipantKey("sun-co", b"\x01" * 31, "x"), "malformed", "body.public_key"),
        ("operator", ResetParticipantKey("sun-co", b"", " "), "malformed", "body.reason"),
    ]
    for signer, msg, code, field in cases:
        res = kit.one(kit.tx(signer, msg))
        assert not res.ok and res.error is not None, msg
        assert (res.error.code, res.error.field) == (code, field), (msg, res.error.to_dict())
    assert kit.root() == root


def test_a_revoked_participant_keeps_its_holdings_and_can_still_receive(kit: Kit) -> None:
    kit.time = NOON + 3600
    assert kit.one(kit.submit(kit.reading(NOON, 10_000, 0, 0))).detail == [["accepted", LOT, 4_500]]
    assert kit.one(kit.tx("sun-co", Transfer("buyer-co", ((LOT, 300),), ""))).ok
    assert kit.one(kit.tx("operator", ResetParticipantKey("buyer-co", b"", "left the consortium"))).ok
    assert kit.one(kit.tx("sun-co", Transfer("buyer-co", ((LOT, 200),), ""))).ok
    assert kit.state.accounts["buyer-co"].tradable_g == 500
    refused = kit.one(kit.tx("buyer-co", Transfer("sun-co", ((LOT, 1),), "")))
    assert refused.error is not None and refused.error.field == "tx.signer"
    assert kit.state.accounts["buyer-co"].tradable_g == 500
