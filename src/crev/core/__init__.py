"""Pure domain rules: units and slots, the metering rule, emission factors, canonical bytes,
hashing, signatures and Merkle trees. Nothing in this package touches disk, network, clock or
randomness (a test enforces the imports)."""
