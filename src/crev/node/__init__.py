"""What runs the state machine: the embedded node with its check, seal and checkpoint pipeline
and the read-only ``LedgerView`` (``node.py``), and SQLite storage (``store.py``). A second engine
(the CometBFT application) will sit beside it, driving the same ``apply_block``."""
