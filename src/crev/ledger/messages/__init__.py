"""One module per transaction kind. Each defines a frozen message dataclass with a stateless
``from_body`` (shape: types, ranges, lengths) and a stateful ``handle`` (checks against state,
then changes it). Importing this package registers every kind."""

from crev.ledger.messages import (  # noqa: F401
    authorize_delegate,
    cancel_order,
    correct,
    deposit_jpy,
    list_market,
    market_tick,
    place_order,
    register_device,
    register_participant,
    reset_participant_key,
    retire,
    revoke_device,
    rotate_key,
    set_emission_factors,
    set_offer_policy,
    set_standing_bid,
    submit_controls,
    submit_meter_values,
    submit_readings,
    transfer,
    update_device,
    withdraw_jpy,
)
