"""What runs the state machine on one machine: the embedded node with its check, seal and
checkpoint pipeline and the read-only ``LedgerView`` (``node.py``, ``lazystate.py``), and SQLite
storage (``store.py``). The consortium engine (``crev.consortium``) drives the same ``apply_block``
behind CometBFT and stores its blocks through the same ``Store``."""
