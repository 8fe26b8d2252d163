"""authorize_delegate and delegate-signed transactions: a site's DGC places its owner's offers with a
key of its own, never with the owner's key and never with the device key.

The market kit: sun-co owns dgc-1 and holds lot L1 (4,500 g); buyer-co has 10,000 JPY; market
``spot`` takes 1,000 … 200,000 JPY/t, at least 100 g, 100 bp fee per side.
"""

from __future__ import annotations

from typing import Any

import pytest

from crev.core.encoding import decode
from crev.ledger.apply import TxResult
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.authorize_delegate import AuthorizeDelegate
from crev.ledger.messages.cancel_order import CancelOrder
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.set_offer_policy import SetOfferPolicy
from crev.ledger.messages.transfer import Transfer
from crev.ledger.records import Delegate
from crev.ledger.snapshot import decode_entry
from crev.ledger.tx import Message
from tests.ledger.market_kit import L1, make_market_kit, ok, order
from tests.ledger_kit import Kit, key

SITE = "sun-co.site-1"  # the delegate id a site's DGC signs as
ALL = ("set_offer_policy", "place_order", "cancel_order")


def grant(delegate_id: str = SITE, public_key: bytes | None = None, kinds: tuple[str, ...] = ALL,
          valid_until: int = 0) -> AuthorizeDelegate:
    pk = key(f"delegate/{delegate_id}").public_key if public_key is None else public_key
    return AuthorizeDelegate("grant", delegate_id, pk, kinds, valid_until)


def revoke(delegate_id: str = SITE) -> AuthorizeDelegate:
    return AuthorizeDelegate("revoke", delegate_id, b"", (), 0)


def as_delegate(kit: Kit, msg: Message, delegate_id: str = SITE, nonce: int | None = None,
                dt: int = 10) -> TxResult:
    """``msg`` signed by the delegate's key with its own next nonce."""
    n = kit.state.delegates[delegate_id].nonce if nonce is None else nonce
    res = kit.one(kit.tx(delegate_id, msg, n, signing_key=key(f"delegate/{delegate_id}")), dt=dt)
    check_invariants(kit.state)
    return res


def err(res: TxResult) -> tuple[str, str]:
    assert not res.ok and res.error is not None
    assert not res.events and res.detail is None
    return res.error.code, res.error.field


@pytest.fixture
def mkit() -> Kit:
    kit = make_market_kit()
    assert ok(kit, "sun-co", grant()) == [SITE]
    return kit


def test_a_grant_records_the_delegate_and_emits_delegate_granted() -> None:
    kit = make_market_kit()
    pk = key(f"delegate/{SITE}").public_key
    until = kit.time + 86_400
    res = kit.one(kit.tx("sun-co", grant(kinds=("place_order", "cancel_order"), valid_until=until)))
    assert res.ok, res.error
    assert [e.to_dict() for e in res.events] == [{
        "type": "delegate_granted", "delegate_id": SITE, "owner": "sun-co", "public_key": pk.hex(),
        "kinds": ["place_order", "cancel_order"], "valid_until": until}]
    d = kit.state.delegates[SITE]
    assert (d.owner, d.public_key, d.kinds, d.revoked, d.nonce, d.granted_height) == \
        ("sun-co", pk, ["place_order", "cancel_order"], False, 0, kit.state.height)
    value = kit.state.value_of(f"k/{SITE}")
    assert value is not None and decode_entry(f"k/{SITE}", value) == d
    assert decode(value)[:2] == [SITE, "sun-co"]
    assert f"k/{SITE}" in kit.state.all_keys()


def test_a_delegate_sets_the_offer_policy_and_offers_as_its_owner(mkit: Kit) -> None:
    kit = mkit
    owner_nonce = kit.state.accounts["sun-co"].nonce
    res = as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000))
    assert res.ok, res.error
    assert res.detail == ["sun-co"] and res.events[0].to_dict()["account"] == "sun-co"
    assert kit.state.offer_policies["sun-co"].price == 3_000
    # an ask: escrowed from the owner's holdings, the order is the owner's
    res = as_delegate(kit, order("ask", 4_000, 1_000, lots=((L1, 1_000),)))
    assert res.ok, res.error
    oid = res.detail[0]
    o = kit.state.orders[oid]
    assert (o.account, o.side, o.remaining_g) == ("sun-co", "ask", 1_000)
    assert kit.state.accounts["sun-co"].escrowed_g == 1_000
    assert kit.state.accounts["sun-co"].tradable_g == 3_500
    placed = res.events[0].to_dict()
    assert (placed["type"], placed["account"], placed["escrow_g"]) == ("order_placed", "sun-co", 1_000)
    # the owner's nonce is untouched; the delegate's advanced once per applied transaction
    assert kit.state.accounts["sun-co"].nonce == owner_nonce
    assert kit.state.delegates[SITE].nonce == 2
    # and it cancels its owner's order
    res = as_delegate(kit, CancelOrder(oid))
    assert res.ok and res.detail == [oid, 1_000]
    assert kit.state.accounts["sun-co"].escrowed_g == 0
    assert kit.state.delegates[SITE].nonce == 3
    # a buyer fills an offer the delegate placed: the money goes to the owner
    assert as_delegate(kit, order("ask", 4_000, 1_000, lots=((L1, 1_000),))).ok
    ok(kit, "buyer-co", order("bid", 4_000, 1_000))
    assert kit.state.accounts["sun-co"].jpy == 4  # ⌊1,000 g × 4,000 / 10⁶⌋ = 4 JPY, fee ⌊0.04⌋ = 0
    # the owner signs with its own nonce as before
    ok(kit, "sun-co", Transfer("buyer-co", ((L1, 10),), ""))
    assert kit.state.accounts["sun-co"].nonce == owner_nonce + 1


def test_a_delegate_never_bids(mkit: Kit) -> None:
    kit = mkit
    kit.state.accounts["sun-co"].jpy = 0  # (no JPY needed: the refusal comes first)
    root = kit.root()
    assert err(as_delegate(kit, order("bid", 4_000, 1_000))) == ("forbidden", "body.side")
    assert kit.root() == root and kit.state.delegates[SITE].nonce == 0


def test_a_kind_not_granted_is_refused(mkit: Kit) -> None:
    kit = mkit
    assert ok(kit, "sun-co", grant("sun-co.site-2", kinds=("place_order",))) == ["sun-co.site-2"]
    root = kit.root()
    res = as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000), "sun-co.site-2")
    assert err(res) == ("forbidden", "tx.kind")
    assert "set_offer_policy" in res.error.reason  # type: ignore[union-attr]
    # never a kind outside the delegable ones, whatever was granted
    assert err(as_delegate(kit, Transfer("buyer-co", ((L1, 1),), ""))) == ("forbidden", "tx.kind")
    assert err(as_delegate(kit, grant("sun-co.site-3"))) == ("forbidden", "tx.kind")
    assert kit.root() == root


def test_an_expired_delegate_signs_nothing(mkit: Kit) -> None:
    kit = mkit
    until = kit.time + 100
    ok(kit, "sun-co", grant(valid_until=until))
    assert as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000), dt=10).ok  # before valid_until
    kit.time = until - 10
    root = kit.root()
    res = as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_100), dt=10)  # block time = valid_until
    assert err(res) == ("bad_signature", "tx.signer") and "expired" in res.error.reason  # type: ignore[union-attr]
    assert kit.root() == root


def test_a_revoked_delegate_signs_nothing_until_granted_again(mkit: Kit) -> None:
    kit = mkit
    assert as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000)).ok
    res = kit.one(kit.tx("sun-co", revoke()))
    assert res.ok and res.detail == [SITE]
    assert [e.to_dict() for e in res.events] == [{"type": "delegate_revoked", "delegate_id": SITE,
                                                  "owner": "sun-co"}]
    root = kit.root()
    res = as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_100))
    assert err(res) == ("bad_signature", "tx.signer") and "revoked" in res.error.reason  # type: ignore[union-attr]
    assert kit.root() == root
    assert err(kit.one(kit.tx("sun-co", revoke()))) == ("conflict", "body.delegate_id")
    # granted again (a new key): it signs again, its nonce goes on
    new = key("delegate/new-key")
    ok(kit, "sun-co", grant(public_key=new.public_key, kinds=("set_offer_policy",)))
    d = kit.state.delegates[SITE]
    assert (d.revoked, d.nonce, d.kinds, d.public_key) == (False, 1, ["set_offer_policy"], new.public_key)
    assert err(as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_100))) == ("bad_signature", "tx.signature")
    res = kit.one(kit.tx(SITE, SetOfferPolicy("spot", 5_000, 3_100), 1, signing_key=new))
    assert res.ok, res.error
    assert kit.state.delegates[SITE].nonce == 2


def test_a_delegate_needs_its_own_nonce_and_its_own_key(mkit: Kit) -> None:
    kit = mkit
    root = kit.root()
    owner_nonce = kit.state.accounts["sun-co"].nonce
    assert err(as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000), nonce=owner_nonce)) == \
        ("bad_nonce", "tx.nonce")
    wrong = kit.one(kit.tx(SITE, SetOfferPolicy("spot", 5_000, 3_000), 0, signing_key=key("sun-co")))
    assert err(wrong) == ("bad_signature", "tx.signature")
    assert kit.root() == root
    assert as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000)).ok
    replay = as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000), nonce=0)
    assert err(replay) == ("bad_nonce", "tx.nonce")


def test_a_delegate_of_an_owner_whose_key_the_operator_revoked_signs_nothing(mkit: Kit) -> None:
    from crev.ledger.messages.reset_participant_key import ResetParticipantKey

    kit = mkit
    ok(kit, "operator", ResetParticipantKey("sun-co", b"", "laptop stolen"))
    root = kit.root()
    assert err(as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000))) == ("bad_signature", "tx.signer")
    assert kit.root() == root


def test_a_delegate_key_is_never_the_device_key_nor_the_owners() -> None:
    kit = make_market_kit()
    root = kit.root()
    cases: list[tuple[str, Any, tuple[str, str]]] = [
        ("sun-co", grant(public_key=key("dev/dgc-1").public_key), ("rule_violation", "body.public_key")),
        ("sun-co", grant(public_key=key("dev/dgc-2").public_key), ("rule_violation", "body.public_key")),
        ("sun-co", grant(public_key=key("sun-co").public_key), ("rule_violation", "body.public_key")),
        ("sun-co", grant(public_key=b"\x00" * 32), ("malformed", "body.public_key")),
        ("sun-co", grant(kinds=("place_order", "transfer")), ("malformed", "body.kinds[1]")),
        ("sun-co", grant(kinds=("retire",)), ("malformed", "body.kinds[0]")),
        ("sun-co", grant(kinds=("place_order", "place_order")), ("malformed", "body.kinds[1]")),
        ("sun-co", grant(kinds=()), ("malformed", "body.kinds")),
        ("sun-co", grant(valid_until=kit.time), ("rule_violation", "body.valid_until")),
        ("sun-co", AuthorizeDelegate("revoke", SITE, key("x").public_key, (), 0), ("malformed", "body.public_key")),
        ("sun-co", AuthorizeDelegate("revoke", SITE, b"", ("place_order",), 0), ("malformed", "body.kinds")),
        ("sun-co", revoke(), ("not_found", "body.delegate_id")),
        # a delegate id may not be an account id
        ("sun-co", grant("buyer-co"), ("conflict", "body.delegate_id")),
        ("sun-co", grant("sun-co"), ("conflict", "body.delegate_id")),
    ]
    for signer, msg, expected in cases:
        res = kit.one(kit.tx(signer, msg))
        assert err(res) == expected, (msg, res.error)
    assert kit.root() == root and not kit.state.delegates


def test_the_device_key_is_checked_after_a_rotation_too() -> None:
    from crev.ledger.messages.update_device import UpdateDevice

    kit = make_market_kit()
    ok(kit, "operator", UpdateDevice("dgc-1", (("public_key", key("dev/dgc-1/2").public_key),)))
    for old_or_new in ("dev/dgc-1", "dev/dgc-1/2"):
        res = kit.one(kit.tx("sun-co", grant(public_key=key(old_or_new).public_key)))
        assert err(res) == ("rule_violation", "body.public_key")


def test_delegate_ids_and_account_ids_share_one_namespace(mkit: Kit) -> None:
    kit = mkit
    root = kit.root()
    res = kit.one(kit.tx("operator", RegisterParticipant(SITE, "Site One", "prosumer", key("z").public_key)))
    assert err(res) == ("conflict", "body.account_id")
    assert kit.root() == root


def test_another_owners_delegate_id_is_a_conflict(mkit: Kit) -> None:
    kit = mkit
    root = kit.root()
    assert err(kit.one(kit.tx("other-co", grant()))) == ("conflict", "body.delegate_id")
    assert err(kit.one(kit.tx("other-co", revoke()))) == ("forbidden", "body.delegate_id")
    assert kit.root() == root
    assert kit.state.delegates[SITE].owner == "sun-co"


def test_an_unknown_signer_is_neither_an_account_nor_a_delegate(mkit: Kit) -> None:
    kit = mkit
    res = kit.one(kit.tx("nobody", SetOfferPolicy("spot", 5_000, 3_000), 0))
    assert err(res) == ("not_found", "tx.signer")


def test_the_block_keeps_the_delegate_as_the_signer(mkit: Kit) -> None:
    kit = mkit
    before = kit.state.height
    res = as_delegate(kit, order("ask", 4_000, 1_000, lots=((L1, 1_000),)))
    assert res.ok and kit.state.height == before + 1
    raw = kit.tx(SITE, order("ask", 4_000, 500, lots=((L1, 500),)), 1, signing_key=key(f"delegate/{SITE}"))
    assert decode(raw)[3] == SITE  # the envelope's signer: who signed; the events name the owner


def test_a_delegate_survives_a_snapshot_reload(mkit: Kit) -> None:
    kit = mkit
    assert as_delegate(kit, SetOfferPolicy("spot", 5_000, 3_000)).ok
    d = kit.state.delegates[SITE]
    value = kit.state.value_of(f"k/{SITE}")
    assert value is not None
    back = decode_entry(f"k/{SITE}", value)
    assert isinstance(back, Delegate) and back == d and back.nonce == 1


def test_no_device_is_registered_or_rotated_to_a_delegated_key(mkit: Kit) -> None:
    from crev.ledger.messages.register_device import RegisterDevice
    from crev.ledger.messages.update_device import UpdateDevice
    from tests.ledger_kit import CAPACITY_W, T0

    kit = mkit
    site_pk = key(f"delegate/{SITE}").public_key
    root = kit.root()
    res = kit.one(kit.tx("operator", RegisterDevice("dgc-9", "sun-co", site_pk, CAPACITY_W, T0 - 86400, 35_000_000,
                                                    139_000_000, "tokyo", "SN-0009", T0 + 86400 * 365, False,
                                                    "solar_pv")))
    assert err(res) == ("rule_violation", "body.public_key")
    res = kit.one(kit.tx("operator", UpdateDevice("dgc-1", (("public_key", site_pk),))))
    assert err(res) == ("rule_violation", "body.changes.public_key")
    assert kit.root() == root
