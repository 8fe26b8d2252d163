"""Bad holdings transactions (transfer, retire, correct, register): every refusal names the field
and the reason, and changes nothing.

A refused signed transaction is kept in its block with its error and changes nothing, not even the
signer's nonce. Each refusal test applies a block holding only the bad transaction and compares the
state root, the supply and every account (balances and nonce), device, lot and retirement before
and after it.

Hand-computed figures: the ``held`` kit's noon reading (G 20,000, I 0, E 5,000 Wh) issued lot
``dgc-1:20260601T1200`` of 15,000 Wh x 450 g/kWh = 6,750 g to sun-co, units 1..6,750 (stored as
the half-open range [1, 6,751)).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from crev.core.units import fiscal_year_bounds
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.correct import Correct
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.register_participant import RegisterParticipant
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.revoke_device import RevokeDevice
from crev.ledger.messages.transfer import Transfer
from crev.ledger.messages.update_device import UpdateDevice
from crev.ledger.tx import Message
from tests.ledger_kit import NOON, T0, Kit, key, make_kit

LATER = NOON + 6 * 3600
LOT = "dgc-1:20260601T1200"
LOT_1230 = "dgc-1:20260601T1230"
FY_START, FY_END = fiscal_year_bounds(2026)


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    root: bytes
    supply: list[Any]
    accounts: dict[str, list[Any]]
    devices: dict[str, list[Any]]
    lots: dict[str, list[Any]]
    retirements: dict[str, list[Any]]


def snapshot(kit: Kit) -> Snapshot:
    st = kit.state
    return Snapshot(
        kit.root(),
        st.supply.to_value(),
        {k: a.to_value() for k, a in st.accounts.items()},
        {k: d.to_value() for k, d in st.devices.items()},
        {k: lot.to_value() for k, lot in st.lots.items()},
        {k: r.to_value() for k, r in st.retirements.items()},
    )


def reject(kit: Kit, raw: bytes, code: str, field: str, phrase: str) -> str:
    """Apply ``raw`` alone in a block: it must fail with ``code`` at ``field`` and change nothing."""
    before = snapshot(kit)
    meters = dict(kit.state.meter_serials)
    res = kit.one(raw)
    assert not res.ok
    assert res.error is not None
    assert (res.error.code, res.error.field) == (code, field), res.error.to_dict()
    assert phrase in res.error.reason, res.error.reason
    assert res.detail is None and res.events == ()
    after = snapshot(kit)
    assert after.root == before.root, "state root changed"
    assert after.supply == before.supply, "supply changed"
    assert after.accounts == before.accounts, "an account (balance or nonce) changed"
    assert after.devices == before.devices, "a device changed"
    assert after.lots == before.lots, "a lot changed"
    assert after.retirements == before.retirements, "a retirement changed"
    assert kit.state.meter_serials == meters, "the meter serial index changed"
    check_invariants(kit.state)
    return res.error.reason


def ok(kit: Kit, signer: str, msg: Message) -> Any:
    res = kit.one(kit.tx(signer, msg))
    assert res.ok, res.error
    check_invariants(kit.state)
    return res.detail


def transfer(to: str, *items: tuple[str, Any], memo: str = "") -> Transfer:
    return Transfer(to, tuple(items), memo)


def retire(*items: tuple[str, Any], purpose: str = "statutory_report", start: int = FY_START,
           end: int = FY_END) -> Retire:
    return Retire(tuple(items), "Buyer Co", purpose, start, end, "JP", "")


def cancel(lot: str, q: int, holder: str = "sun-co") -> Correct:
    return Correct("cancel", lot, q, 0, "meter fault", "TICKET-7", holder)


def topup(lot: str, q: int, wh: int) -> Correct:
    return Correct("topup", lot, q, wh, "smart-meter reconciliation", "TEPCO-2026-06")


def device(device_id: str = "dgc-2", owner: str = "other-co", serial: str = "SN-0002") -> RegisterDevice:
    return RegisterDevice(device_id, owner, key(f"dev/{device_id}").public_key, 10_000, T0 - 86400, 35_000_000,
                          139_000_000, "tokyo", serial, T0 + 86400 * 365, False, "solar_pv")


def segments(kit: Kit, lot: str) -> list[list[Any]]:
    return [s.to_value() for s in kit.state.lots[lot].segments]


def balances(kit: Kit, acct: str) -> tuple[int, int]:
    a = kit.state.accounts[acct]
    return a.tradable_g, a.retired_g


@pytest.fixture
def kit() -> Iterator[Kit]:
    k = make_kit()
    yield k
    check_invariants(k.state)


@pytest.fixture
def held(kit: Kit) -> Kit:
    """sun-co holds lot dgc-1:20260601T1200 of 6,750 g (units 1..6,750); block time is 18:00."""
    kit.time = LATER
    res = kit.one(kit.submit(kit.reading(NOON, 20_000, 0, 5_000)))
    assert res.detail == [["accepted", LOT, 6_750]]
    assert kit.state.lots[LOT].first_unit == 1
    return kit


# --- positive, hand-computed -----------------------------------------------------------------


def test_a_partial_transfer_splits_the_lot_lowest_units_first(held: Kit) -> None:
    assert ok(held, "sun-co", transfer("buyer-co", (LOT, 1_000))) == [1_000]
    # units 1..1,000 to the buyer, 1,001..6,750 stay with the seller
    assert segments(held, LOT) == [[1, 1_001, "buyer-co", "tradable", ""],
                                   [1_001, 6_751, "sun-co", "tradable", ""]]
    assert balances(held, "buyer-co") == (1_000, 0)
    assert balances(held, "sun-co") == (5_750, 0)
    assert held.state.supply.tradable_g == 6_750
    assert held.state.accounts["sun-co"].nonce == 1


def test_a_cancellation_takes_the_holders_lowest_tradable_units(held: Kit) -> None:
    ok(held, "sun-co", transfer("buyer-co", (LOT, 1_000)))
    assert ok(held, "operator", cancel(LOT, 1_500)) == [LOT, 1_500]
    # sun-co's 1,001..2,500 are cancelled; the buyer's 1..1,000 are untouched
    assert balances(held, "buyer-co") == (1_000, 0)
    assert balances(held, "sun-co") == (4_250, 0)
    sup = held.state.supply
    assert (sup.issued_g, sup.tradable_g, sup.cancelled_g) == (6_750, 5_250, 1_500)


# --- transfer and retire: amounts --------------------------------------------------------------


def test_transfer_of_more_than_tradable_is_refused(held: Kit) -> None:
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, 6_751))), "rule_violation",
           "body.items[0].quantity_g", f"6751 g exceeds the 6750 g sun-co holds tradable in {LOT}")
    assert balances(held, "sun-co") == (6_750, 0)


def test_transfer_of_more_than_the_remainder_after_a_partial_transfer_is_refused(held: Kit) -> None:
    ok(held, "sun-co", transfer("buyer-co", (LOT, 1_000)))
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, 5_751))), "rule_violation",
           "body.items[0].quantity_g", "5751 g exceeds the 5750 g sun-co holds tradable")
    reject(held, held.tx("buyer-co", transfer("sun-co", (LOT, 1_001))), "rule_violation",
           "body.items[0].quantity_g", "1001 g exceeds the 1000 g buyer-co holds tradable")
    assert balances(held, "sun-co") == (5_750, 0)
    assert balances(held, "buyer-co") == (1_000, 0)


def test_retirement_of_more_than_tradable_is_refused(held: Kit) -> None:
    ok(held, "sun-co", transfer("buyer-co", (LOT, 1_000)))
    reject(held, held.tx("buyer-co", retire((LOT, 1_001))), "rule_violation",
           "body.items[0].quantity_g", "1001 g exceeds the 1000 g buyer-co holds tradable")
    assert held.state.supply.retired_g == 0


def test_retired_units_cannot_be_transferred_or_retired_again(held: Kit) -> None:
    assert ok(held, "sun-co", retire((LOT, 6_000))) == ["ret-00000001", 6_000]
    assert balances(held, "sun-co") == (750, 6_000)
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, 751))), "rule_violation",
           "body.items[0].quantity_g", "751 g exceeds the 750 g sun-co holds tradable")
    ok(held, "sun-co", retire((LOT, 750)))
    for msg in (transfer("buyer-co", (LOT, 1)), retire((LOT, 1))):
        reject(held, held.tx("sun-co", msg), "rule_violation", "body.items[0].quantity_g",
               "1 g exceeds the 0 g sun-co holds tradable")
    assert held.state.supply.retired_g == 6_750


def test_a_transfer_with_one_bad_item_moves_nothing(held: Kit) -> None:
    # a second lot: 12:30, G 10,000 - E 2,000 = 8,000 Wh x 450 g/kWh = 3,600 g
    assert held.one(held.submit(held.reading(NOON + 1800, 10_000, 0, 2_000))).detail[0][2] == 3_600
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, 100), (LOT_1230, 3_601))), "rule_violation",
           "body.items[1].quantity_g", "3601 g exceeds the 3600 g")
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, 100), ("dgc-1:19990101T0000", 1))), "not_found",
           "body.items[1].lot_id", "no lot 'dgc-1:19990101T0000'")
    assert balances(held, "buyer-co") == (0, 0)
    assert balances(held, "sun-co") == (10_350, 0)


# --- transfer and retire: who and what ---------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: transfer("buyer-co", (LOT, 1)), lambda: retire((LOT, 1))],
                         ids=["transfer", "retire"])
def test_moving_someone_elses_units_is_forbidden(held: Kit, make: Any) -> None:
    reject(held, held.tx("other-co", make()), "forbidden", "body.items[0].lot_id",
           f"other-co holds no units of {LOT}")
    assert balances(held, "sun-co") == (6_750, 0)


def test_transfer_to_an_unknown_account_is_refused(held: Kit) -> None:
    reject(held, held.tx("sun-co", transfer("ghost-co", (LOT, 1))), "not_found", "body.recipient",
           "no participant 'ghost-co'")


def test_transfer_to_yourself_is_refused(held: Kit) -> None:
    reject(held, held.tx("sun-co", transfer("sun-co", (LOT, 1))), "rule_violation", "body.recipient",
           "cannot transfer to yourself")


@pytest.mark.parametrize("make", [lambda lot: transfer("buyer-co", (lot, 1)), lambda lot: retire((lot, 1))],
                         ids=["transfer", "retire"])
def test_an_unknown_lot_is_refused(held: Kit, make: Any) -> None:
    reject(held, held.tx("sun-co", make("dgc-1:20260601T1230")), "not_found", "body.items[0].lot_id",
           "no lot 'dgc-1:20260601T1230'")


@pytest.mark.parametrize("q", [0, -1, -6_750])
def test_a_zero_or_negative_quantity_is_malformed(held: Kit, q: int) -> None:
    for msg in (transfer("buyer-co", (LOT, q)), retire((LOT, q))):
        reject(held, held.tx("sun-co", msg), "malformed", "body.items[0].quantity_g", f"must be ≥ 1, found {q}")


@pytest.mark.parametrize(("q", "kind"), [(1.5, "a fraction or NaN"), (float("nan"), "a fraction or NaN"),
                                         (True, "bool"), ("100", "str")])
def test_a_quantity_that_is_not_an_integer_is_malformed(held: Kit, q: Any, kind: str) -> None:
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, q))), "malformed", "body.items[0].quantity_g",
           f"must be an integer, found {kind}")


def test_a_quantity_above_2_63_is_malformed(held: Kit) -> None:
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, 2**63))), "malformed", "body.items[0].quantity_g",
           f"must be ≤ {2**63 - 1}")


def test_a_quantity_beyond_64_bits_is_refused_when_decoding(held: Kit) -> None:
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, 2**64))), "malformed", "tx",
           "holds CBOR tag 2: tags")  # a bignum


def test_the_same_lot_twice_in_one_tx_is_malformed(held: Kit) -> None:
    for msg in (transfer("buyer-co", (LOT, 1), (LOT, 2)), retire((LOT, 1), (LOT, 2))):
        reject(held, held.tx("sun-co", msg), "malformed", "body.items[1].lot_id", f"{LOT} is listed twice")


def test_an_empty_item_list_is_malformed(held: Kit) -> None:
    reject(held, held.tx("sun-co", transfer("buyer-co")), "malformed", "body.items", "must list at least one lot")


@pytest.mark.parametrize(("start", "end"), [(FY_START, FY_START), (FY_END, FY_START)])
def test_a_retirement_period_that_does_not_end_after_it_starts_is_malformed(held: Kit, start: int, end: int) -> None:
    reject(held, held.tx("sun-co", retire((LOT, 1), start=start, end=end)), "malformed", "body.period_end",
           "must be after period_start")


@pytest.mark.parametrize(("start", "end", "field"), [(FY_START, 2**40 + 1, "body.period_end"),
                                                     (2**63 - 2, 2**63 - 1, "body.period_start")])
def test_a_retirement_period_beyond_2_40_seconds_is_malformed(held: Kit, start: int, end: int, field: str) -> None:
    reject(held, held.tx("sun-co", retire((LOT, 1), start=start, end=end)), "malformed", field,
           "must be ≤ 1099511627776")


@pytest.mark.parametrize("purpose", ["marketing", "RE100", ""])
def test_an_unknown_retirement_purpose_is_malformed(held: Kit, purpose: str) -> None:
    reject(held, held.tx("sun-co", retire((LOT, 1), purpose=purpose)), "malformed", "body.purpose",
           "must be one of statutory_report, re100, cdp, sbti, voluntary, other")


# --- signer, nonce, signature ------------------------------------------------------------------


def test_a_replayed_signed_tx_is_refused_by_its_nonce(held: Kit) -> None:
    raw = held.tx("sun-co", transfer("buyer-co", (LOT, 1_000)))
    assert held.one(raw).ok
    reject(held, raw, "bad_nonce", "tx.nonce", "is 0, expected 1 (replayed, sent twice or out of order")
    assert balances(held, "buyer-co") == (1_000, 0)  # moved once, not twice
    assert balances(held, "sun-co") == (5_750, 0)


def test_a_nonce_from_the_future_is_refused(held: Kit) -> None:
    reject(held, held.tx("sun-co", transfer("buyer-co", (LOT, 1)), nonce=5), "bad_nonce", "tx.nonce",
           "is 5, expected 0")


def test_a_tx_signed_by_a_key_that_is_not_the_signers_is_refused(held: Kit) -> None:
    raw = held.tx("sun-co", transfer("buyer-co", (LOT, 1)), signing_key=key("other-co"))
    reject(held, raw, "bad_signature", "tx.signature", "not a valid signature by sun-co's key")


def test_a_tx_with_a_tampered_body_is_refused(held: Kit) -> None:
    raw = held.tx("sun-co", transfer("buyer-co", (LOT, 1_000)))
    tampered = raw.replace(b"buyer-co", b"other-co")
    assert tampered != raw
    reject(held, tampered, "bad_signature", "tx.signature", "not a valid signature by sun-co's key")


def test_a_tx_from_an_unknown_signer_is_refused(held: Kit) -> None:
    raw = held.tx("ghost-co", transfer("buyer-co", (LOT, 1)), signing_key=key("ghost-co"))
    reject(held, raw, "not_found", "tx.signer", "no participant 'ghost-co'")


def test_a_signed_tx_above_the_byte_limit_is_malformed(held: Kit) -> None:
    limit = held.state.params.max_tx_bytes
    raw = held.tx("sun-co", transfer("buyer-co", (LOT, 1), memo="x" * limit))
    reject(held, raw, "malformed", "tx", f"{len(raw)} bytes exceeds the limit of {limit}")


# --- operator-only messages --------------------------------------------------------------------

OPERATOR_ONLY = {
    "register_participant": lambda: RegisterParticipant("new-co", "New Co", "buyer", key("new-co").public_key),
    "register_device": lambda: device("dgc-2", "sun-co"),
    "cancel": lambda: cancel(LOT, 1),
    "topup": lambda: topup(LOT, 1, 1_000),
    "revoke_device": lambda: RevokeDevice("dgc-1", b"", "not mine to revoke"),
    "update_device": lambda: UpdateDevice("dgc-1", (("rated_capacity_w", 500_000),)),
}


@pytest.mark.parametrize("signer", ["sun-co", "buyer-co"])
@pytest.mark.parametrize("name", list(OPERATOR_ONLY))
def test_operator_only_messages_from_a_participant_are_forbidden(held: Kit, name: str, signer: str) -> None:
    reject(held, held.tx(signer, OPERATOR_ONLY[name]()), "forbidden", "tx.signer",
           "only the registry operator may do this")


def test_a_device_for_a_buyer_is_refused(held: Kit) -> None:
    reject(held, held.tx("operator", device("dgc-2", "buyer-co")), "rule_violation", "body.owner",
           "'buyer-co' is a buyer; devices belong to prosumers")


def test_a_device_for_an_unknown_owner_is_refused(held: Kit) -> None:
    reject(held, held.tx("operator", device("dgc-2", "ghost-co")), "not_found", "body.owner",
           "no participant 'ghost-co'")


def test_a_duplicate_participant_id_is_refused(held: Kit) -> None:
    msg = RegisterParticipant("sun-co", "Sun Co again", "buyer", key("sun-co-2").public_key)
    reject(held, held.tx("operator", msg), "conflict", "body.account_id", "participant 'sun-co' already exists")
    assert held.state.accounts["sun-co"].role == "prosumer"


@pytest.mark.parametrize(("make", "field"), [
    (lambda: RegisterParticipant("sun-co\n", "Sun Co", "prosumer", key("mallory").public_key), "body.account_id"),
    (lambda: RegisterParticipant("a" * 64 + "\n", "Long", "buyer", key("long").public_key), "body.account_id"),
    (lambda: device("dgc-1\n", "other-co", "SN-0099"), "body.device_id"),
], ids=["participant", "65-chars", "device"])
def test_an_id_with_a_trailing_newline_is_malformed(held: Kit, make: Any, field: str) -> None:
    reject(held, held.tx("operator", make()), "malformed", field, "must be 1-64 of a-z 0-9 . _ -")


def test_a_duplicate_device_id_is_refused(held: Kit) -> None:
    reject(held, held.tx("operator", device("dgc-1", "other-co", "SN-0099")), "conflict", "body.device_id",
           "device 'dgc-1' already exists")


def test_a_duplicate_meter_serial_is_refused(held: Kit) -> None:
    reject(held, held.tx("operator", device("dgc-2", "other-co", "SN-0001")), "conflict", "body.meter_serial",
           "meter already registered as 'dgc-1'")


def test_a_meter_serial_follows_its_device_through_an_update(held: Kit) -> None:
    ok(held, "operator", UpdateDevice("dgc-1", (("meter_serial", "SN-0009"),)))
    reject(held, held.tx("operator", device("dgc-2", "other-co", "SN-0009")), "conflict", "body.meter_serial",
           "meter already registered as 'dgc-1'")
    assert ok(held, "operator", device("dgc-2", "other-co", "SN-0001")) == ["dgc-2"]  # the old serial is free


# --- correct -----------------------------------------------------------------------------------


def test_cancelling_more_than_is_tradable_is_refused(held: Kit) -> None:
    ok(held, "sun-co", retire((LOT, 1_000)))  # retired units cannot be cancelled: 5,750 g remain
    reject(held, held.tx("operator", cancel(LOT, 5_751)), "rule_violation", "body.quantity_g",
           f"5751 g exceeds the 5750 g of {LOT} that sun-co holds tradable")
    assert ok(held, "operator", cancel(LOT, 5_750)) == [LOT, 5_750]
    assert segments(held, LOT) == [[1, 1_001, "sun-co", "retired", "ret-00000001"],
                                   [1_001, 6_751, "sun-co", "cancelled", "meter fault [TICKET-7]"]]
    sup = held.state.supply
    assert (sup.tradable_g, sup.retired_g, sup.cancelled_g) == (0, 1_000, 5_750)


def test_a_cancel_takes_only_the_named_holders_units(held: Kit) -> None:
    ok(held, "sun-co", transfer("buyer-co", (LOT, 1_000)))  # units 1-1,000 now buyer-co's
    reject(held, held.tx("operator", cancel(LOT, 1_001, "buyer-co")), "rule_violation", "body.quantity_g",
           f"1001 g exceeds the 1000 g of {LOT} that buyer-co holds tradable")
    assert ok(held, "operator", cancel(LOT, 300)) == [LOT, 300]  # sun-co's lowest: 1,001-1,300
    assert segments(held, LOT) == [[1, 1_001, "buyer-co", "tradable", ""],
                                   [1_001, 1_301, "sun-co", "cancelled", "meter fault [TICKET-7]"],
                                   [1_301, 6_751, "sun-co", "tradable", ""]]
    assert balances(held, "buyer-co") == (1_000, 0)
    assert balances(held, "sun-co") == (5_450, 0)


def test_a_cancel_for_an_unknown_holder_is_refused(held: Kit) -> None:
    reject(held, held.tx("operator", cancel(LOT, 1, "nobody")), "not_found", "body.holder", "no participant 'nobody'")
    reject(held, held.tx("operator", Correct("cancel", LOT, 1, 0, "r", "ref", "")), "malformed", "body.holder",
           "must be 1-64 of a-z 0-9")
    reject(held, held.tx("operator", Correct("topup", LOT, 1, 1_000, "r", "ref", "sun-co")), "malformed",
           "body.holder", "must be empty for a top-up")


def test_a_topup_beyond_the_devices_capacity_for_the_interval_is_refused(held: Kit) -> None:
    # the lot holds 15,000 Wh; a 50 kW device makes at most 26,250 Wh in 30 min (5 % tolerance)
    reject(held, held.tx("operator", topup(LOT, 1, 11_251)), "rule_violation", "body.self_consumed_wh",
           "the lot's 15000 Wh plus 11251 Wh exceed the 26250 Wh device dgc-1 can generate in the interval")
    assert ok(held, "operator", topup(LOT, 450, 1_000)) == [f"{LOT}+1", 450]
    reject(held, held.tx("operator", topup(LOT, 1, 10_251)), "rule_violation", "body.self_consumed_wh",
           "the lot's 16000 Wh plus 10251 Wh exceed the 26250 Wh")
    assert ok(held, "operator", topup(LOT, 4_612, 10_250)) == [f"{LOT}+2", 4_612]


def test_correcting_an_unknown_lot_is_refused(held: Kit) -> None:
    for msg in (cancel("dgc-1:20260601T1230", 1), topup("dgc-1:20260601T1230", 1, 1_000)):
        reject(held, held.tx("operator", msg), "not_found", "body.lot_id", "no lot 'dgc-1:20260601T1230'")


def test_a_topup_above_what_the_wh_give_at_the_lots_factor_is_refused(held: Kit) -> None:
    # 1,000 Wh x 450 g/kWh = 450 g
    reject(held, held.tx("operator", topup(LOT, 451, 1_000)), "rule_violation", "body.quantity_g",
           "451 g exceeds 450 g, what 1000 Wh gives at 450 g/kWh")
    # 999 Wh x 450 g/kWh = 449.55 g, rounded down to 449
    reject(held, held.tx("operator", topup(LOT, 450, 999)), "rule_violation", "body.quantity_g",
           "450 g exceeds 449 g")
    assert ok(held, "operator", topup(LOT, 450, 1_000)) == [f"{LOT}+1", 450]
    assert held.state.supply.issued_g == 6_750 + 450
    assert balances(held, "sun-co") == (7_200, 0)


def test_a_topup_of_a_topup_is_refused(held: Kit) -> None:
    ok(held, "operator", topup(LOT, 450, 1_000))
    reject(held, held.tx("operator", topup(f"{LOT}+1", 1, 1_000)), "rule_violation", "body.lot_id",
           "top up the original lot")


def test_a_correction_with_inconsistent_wh_is_malformed(held: Kit) -> None:
    reject(held, held.tx("operator", Correct("cancel", LOT, 1, 1_000, "r", "ref", "sun-co")), "malformed",
           "body.self_consumed_wh", "must be 0 for a cancellation")
    reject(held, held.tx("operator", Correct("topup", LOT, 1, 0, "r", "ref")), "malformed",
           "body.self_consumed_wh", "a top-up must state the extra Wh")
    reject(held, held.tx("operator", Correct("reissue", LOT, 1, 0, "r", "ref")), "malformed",
           "body.action", "must be one of cancel, topup")
