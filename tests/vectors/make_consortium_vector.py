"""Regenerate tests/vectors/consortium.json: one crev block of a real 4-validator CometBFT v0.38
localnet, with everything needed to check it against the validators offline.

Run from the repository root (needs the cometbft binary, `make consortium`; about 30 s)::

    PYTHONPATH=. .venv/bin/python tests/vectors/make_consortium_vector.py

Unlike golden.json this is not reproducible byte for byte: the validators' keys and the block
times are new each run. What is recorded is CometBFT's own answers, untouched:

* ``cometbft_genesis``: the localnet's genesis.json (validators; crev's genesis as ``app_state``);
* ``crev``: crev block n (a reading batch) — its header bytes and transactions, the CometBFT height
  C it was made from (meta ``cmt/<n>``), the hash and time of crev block n-1;
* ``rpc``: ``/commit?height=C+1`` (``signed_header``: the header carrying crev block n's app hash and
  the commit of > 2/3 of the power) and ``/header?height=C`` (the block holding the transactions).

tests/audit/test_cometbft_vector.py re-checks it with crev.audit.cometbft alone, without CometBFT;
docs/wire-format.md §10 walks through the same bytes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.consortium.netkit import committed, make_net, register
from tests.node import nodekit as k

from crev.node.store import Store

OUT = Path(__file__).with_name("consortium.json")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        net = make_net(root, 4)
        try:
            net.start()
            rpc = net.rpc()
            rpc.wait_height(1, 60)
            register(rpc, 2)
            r = committed(rpc, k.readings_tx([k.reading(d, 0) for d in range(2)]))
            assert r["code"] == 0, r
            c = r["height"]
            rpc.wait_height(c + 2, 60)
            signed = rpc.call("commit", height=str(c + 1))["signed_header"]
            header = rpc.call("header", height=str(c))["header"]
        finally:
            net.stop()
        m = net.members[0]
        store = Store(m.data / "ledger.sqlite", readonly=True)
        try:
            n = next(h for h in range(1, store.height() + 1) if store.get_meta(f"cmt/{h}") == str(c).encode())
            block, prev = store.block(n), store.block(n - 1)
            assert block is not None and prev is not None
        finally:
            store.close()
        genesis = json.loads((m.home / "config" / "genesis.json").read_text("utf-8"))
    doc = {
        "about": "One crev block of a real 4-validator CometBFT v0.38.26 localnet; see make_consortium_vector.py",
        "cometbft_genesis": genesis,
        "crev": {"height": n, "cometbft_height": c, "header": block.header.encode().hex(),
                 "header_hash": block.header.hash.hex(), "txs": [t.hex() for t in block.txs],
                 "prev_hash": prev.header.hash.hex(), "prev_time": prev.header.time},
        "rpc": {"commit": signed, "header": header},
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    print(f"wrote {OUT}: crev block {n} from CometBFT block {c}", file=sys.stderr)


if __name__ == "__main__":
    main()
