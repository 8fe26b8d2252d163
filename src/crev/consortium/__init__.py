"""Consortium mode: crev's state machine behind CometBFT v0.38 (ABCI 2.0).

* ``protogen``: builds the protobuf descriptor set of CometBFT's ABCI types from CometBFT's own
  .proto files (fetched with ``go mod download``), into ``_gen/`` (never committed).
* ``proto``: loads it and frames messages as CometBFT's socket client does (uvarint length).
* ``app``: ``CrevApp``, the ABCI methods in plain Python over crev's BlockBuilder and Store.
* ``server``: the ABCI socket server (``crev abci``).
* ``cometbft``: finding the cometbft binary, writing homes, genesis and config.
* ``localnet``: ``crev consortium init`` / ``up``.
"""
