"""Checking crev blocks against the consortium: for each crev block, a CometBFT header signed by
more than 2/3 of the genesis validators' power carries its app hash (``audit/cometbft.py`` holds
the byte-level checks; this module fetches what they need and links it to crev).

For crev block n, made from CometBFT block C (meta ``cmt/<n>`` of a member's data directory):

1. header C+1 and its commit (``/commit?height=C+1``) verify against the genesis validator set
   (``verify_signed_header``), and its ``app_hash`` is SHA-256 of crev header n;
2. header C (``/header?height=C``) hashes to header C+1's ``last_block_id``; its ``data_hash`` is
   CometBFT's root over crev block n's transactions (the block CometBFT decided is the block crev
   stored); its ``app_hash`` is crev block n-1's hash (the crev genesis hash for n = 1: nothing
   changed the app between two crev blocks); and crev's block time is header C's time in unix
   seconds (or the previous crev block's time if later).

The genesis validator set comes from CometBFT's genesis.json (a member's own file, or the node's
``/genesis``), whose ``app_state`` must be this ledger's crev genesis and whose chain id its chain id.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from crev.audit.cometbft import (
    CmtHeader,
    Commit,
    Tally,
    ValidatorSet,
    check_app_hash,
    commit_to_json,
    data_hash,
    verify_signed_header,
)
from crev.errors import InvalidBlock
from crev.ledger.block import Block
from crev.ledger.genesis import Genesis
from crev.node.store import Store

ENGINE_META = "engine"
CACHE_HEIGHTS = 4096  # verified signed headers kept (a few kB each)


class Source(Protocol):
    """Where CometBFT's headers and commits come from (its RPC; a test's recorded answers)."""

    def signed_header(self, height: int) -> Mapping[str, Any]:
        """``{"header": …, "commit": …}`` for ``height``, as ``/commit`` answers."""
        ...

    def header(self, height: int) -> Mapping[str, Any]:
        ...


class RpcSource:
    """CometBFT's JSON-RPC over HTTP (GET ``/commit?height=``, ``/header?height=``, ``/genesis``)."""

    def __init__(self, url: str, timeout: float = 30.0, wait_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.wait_s = wait_s  # how long to wait for a height not yet committed (the tip's H+1)

    def call(self, method: str, **params: Any) -> Any:
        q = urllib.parse.urlencode(params)
        url = f"{self.url}/{method}" + (f"?{q}" if q else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                out = json.loads(r.read())
        except urllib.error.HTTPError as err:
            try:
                out = json.loads(err.read())
            except ValueError:
                raise InvalidBlock("cometbft.rpc", f"{url}: HTTP {err.code}") from None
        except (OSError, ValueError) as err:
            raise InvalidBlock("cometbft.rpc", f"{url}: {err}") from None
        if "error" in out:
            raise InvalidBlock("cometbft.rpc", f"{method} {params}: {out['error'].get('data') or out['error']}")
        return out["result"]

    def _at(self, method: str, height: int) -> Any:
        end = time.monotonic() + self.wait_s
        while True:
            try:
                return self.call(method, height=height)
            except InvalidBlock as err:
                if "must be less than or equal to the current blockchain height" not in err.reason \
                        or time.monotonic() > end:
                    raise
                time.sleep(0.2)

    def signed_header(self, height: int) -> Mapping[str, Any]:
        return dict(self._at("commit", height)["signed_header"])

    def header(self, height: int) -> Mapping[str, Any]:
        return dict(self._at("header", height)["header"])

    def genesis(self) -> dict[str, Any]:
        return dict(self.call("genesis")["genesis"])


def home_settings(home: Path) -> tuple[dict[str, Any], str]:
    """A CometBFT home: its genesis.json and its RPC address (config.toml's ``[rpc] laddr``)."""
    gen = home / "config" / "genesis.json"
    if not gen.exists():
        raise FileNotFoundError(f"{gen} not found: {home} is not a CometBFT home")
    doc = json.loads(gen.read_text("utf-8"))
    section, laddr = "", ""
    for line in (home / "config" / "config.toml").read_text("utf-8").splitlines():
        m = re.match(r"^\[([\w.]+)\]\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r'^laddr\s*=\s*"([^"]*)"', line)
        if m and section == "rpc":
            laddr = m.group(1)
    return doc, laddr.replace("tcp://", "http://", 1)


def member_home(data_dir: Path) -> Path | None:
    """The CometBFT home beside a member's crev data directory (``crev consortium init``'s layout:
    ``<member>/crev`` and ``<member>/cometbft``), if there is one."""
    home = data_dir.resolve().parent / "cometbft"
    return home if (home / "config" / "genesis.json").exists() else None


class Consortium:
    """The genesis validator set and a source of headers and commits; checks crev blocks."""

    def __init__(self, genesis_doc: Mapping[str, Any], source: Source, crev_genesis: Genesis) -> None:
        self.chain_id = str(genesis_doc.get("chain_id", ""))
        if self.chain_id != crev_genesis.chain_id:
            raise InvalidBlock("cometbft.genesis", f"chain id {self.chain_id!r} is not the ledger's "
                                                   f"{crev_genesis.chain_id!r}")
        app_state = genesis_doc.get("app_state")
        try:
            theirs = Genesis.from_json(json.dumps(app_state)).hash if app_state is not None else None
        except Exception:
            theirs = None
        if theirs != crev_genesis.hash:
            raise InvalidBlock("cometbft.genesis", "its app_state is not this ledger's crev genesis")
        self.vals = ValidatorSet.from_genesis(genesis_doc)
        self.source = source
        self.crev_genesis = crev_genesis
        self._signed: OrderedDict[int, tuple[CmtHeader, Commit, Tally]] = OrderedDict()
        self._lock = threading.Lock()

    def signed(self, height: int) -> tuple[CmtHeader, Commit, Tally]:
        """CometBFT header ``height`` with its commit, verified (cached)."""
        with self._lock:
            got = self._signed.get(height)
            if got is not None:
                self._signed.move_to_end(height)
                return got
        sh = self.source.signed_header(height)
        header, commit = CmtHeader.from_json(sh["header"]), Commit.from_json(sh["commit"])
        if header.height != height:
            raise InvalidBlock(f"cometbft.header@{height}", f"the source answered height {header.height}")
        got = (header, commit, verify_signed_header(self.chain_id, self.vals, header, commit))
        with self._lock:  # an API calls from many threads
            self._signed[height] = got
            if len(self._signed) > CACHE_HEIGHTS:  # a long-running API: the most recently used only
                self._signed.popitem(last=False)
        return got

    def check_block(self, block: Block, cmt_height: int, prev_hash: bytes, prev_time: int) -> tuple[CmtHeader,
                                                                                                      Commit, Tally]:
        """Crev block ``block`` (made from CometBFT block ``cmt_height``) against the consortium;
        returns the signed header at ``cmt_height + 1`` that carries its app hash."""
        h = block.header
        nxt, commit, tally = self.signed(cmt_height + 1)
        check_app_hash(nxt, h.encode(), h.height)
        this = CmtHeader.from_json(self.source.header(cmt_height))
        where = f"crev block {h.height}"
        if this.height != cmt_height or this.hash() != nxt.last_block_id.hash:
            raise InvalidBlock(where, f"CometBFT header {cmt_height} does not hash to header {cmt_height + 1}'s "
                                      f"last_block_id")
        if this.data_hash != data_hash(block.txs):
            raise InvalidBlock(where, f"its transactions are not the ones CometBFT block {cmt_height} holds "
                                      f"(data_hash {this.data_hash.hex()})")
        if this.app_hash != prev_hash:
            raise InvalidBlock(where, f"CometBFT block {cmt_height} was executed on app hash {this.app_hash.hex()}, "
                                      f"not on crev block {h.height - 1}'s hash {prev_hash.hex()}")
        want_time = max(this.time.seconds, prev_time)
        if h.time != want_time:
            raise InvalidBlock(where, f"time {h.time} is not CometBFT block {cmt_height}'s time {want_time}")
        return nxt, commit, tally

    def proof(self, crev_height: int, crev_header: bytes, cmt_height: int) -> dict[str, Any]:
        """What a browser needs to check crev block ``crev_height`` against the validators: the
        CometBFT header at ``cmt_height + 1`` (fields, the 14 leaves, hash), its commit (each
        signature with the bytes signed) and the signed power. The validator set is sent once
        (``to_json``)."""
        nxt, commit, tally = self.signed(cmt_height + 1)
        check_app_hash(nxt, crev_header, crev_height)
        return {"crev_height": crev_height, "cometbft_height": cmt_height, "header": nxt.to_json(),
                "commit": commit_to_json(self.chain_id, self.vals, commit), "signed_power": tally.signed_power,
                "total_power": tally.total_power, "verified": True}

    def to_json(self) -> dict[str, Any]:
        return {"engine": "cometbft-v0.38", "chain_id": self.chain_id, "validator_set": self.vals.to_json()}


def cmt_height(store: Store, crev_height: int) -> int:
    raw = store.get_meta(f"cmt/{crev_height}")
    if raw is None:
        raise InvalidBlock(f"crev block {crev_height}", "the data directory does not say which CometBFT block it "
                                                        f"was (no meta cmt/{crev_height})")
    return int(raw)


def is_member(store: Store) -> bool:
    """A consortium member's data directory (its blocks' authority is CometBFT's commit)."""
    return store.get_meta(ENGINE_META) is not None
