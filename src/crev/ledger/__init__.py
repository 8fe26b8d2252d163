"""The C-REV ledger: a deterministic state machine. ``apply.apply_block`` is the only path that
changes state; ``messages/`` holds one file per transaction kind (its stateless shape check and its
stateful handler)."""
