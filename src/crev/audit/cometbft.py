"""CometBFT v0.38 light-client checks for one height, in plain Python (no I/O, no protobuf runtime):
what a consortium member needs to check a crev block against the validators, not one key.

A consortium block is final when validators holding more than 2/3 of the voting power signed its
commit. For CometBFT height H:

* **header hash** (``CmtHeader.hash``): the RFC 6962 Merkle root (``crev.core.merkle``: CometBFT's
  ``merkle.HashFromByteSlices`` is the same tree) of the header's 14 fields, each protobuf-encoded
  as CometBFT's ``Header.Hash`` does: the version as ``Consensus{block, app}``, the time as a
  ``google.protobuf.Timestamp``, the last block id as ``BlockID``, every other field wrapped in a
  ``StringValue`` / ``Int64Value`` / ``BytesValue`` (field 1; an empty value is the empty byte
  string).
* **vote sign bytes** (``vote_sign_bytes``): the length-prefixed (uvarint) protobuf
  ``CanonicalVote{type = 2 (precommit), height sfixed64, round sfixed64, block_id, timestamp,
  chain_id}`` of each commit signature, zero values left out as proto3 does.
* **commit** (``verify_commit``): one signature slot per validator, in the validator set's order;
  ``BlockIDFlagCommit`` (2) slots count their validator's power, ``BlockIDFlagNil`` (3) slots are
  verified but do not count, ``BlockIDFlagAbsent`` (1) slots are empty. As CometBFT's
  ``VerifyCommit``: a bad signature or a wrong validator address refuses the commit, and the power
  that signed the block must exceed ⌊2/3 × total⌋.
* **validator set** (``ValidatorSet``): ordered by power (descending), then address; address =
  SHA-256(Ed25519 public key)[:20]; its hash is the Merkle root of each validator's
  ``SimpleValidator{pub_key, voting_power}``. Only a set that never changes is supported: a header
  whose ``validators_hash`` or ``next_validators_hash`` is not the genesis set's is refused (a
  validator-set change would need CometBFT's skipping verification, which this module does not
  implement), never verified against the wrong set.

The link to crev (``check_app_hash``): CometBFT's header at H+1 carries the app hash after block H,
which is SHA-256 of the crev header of the last crev block at or before H; that header holds
``state_root``, ``tx_root`` and ``results_root``. docs/wire-format.md §10 documents every byte.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crev.core import merkle
from crev.core.hashing import sha256
from crev.core.signing import verify
from crev.core.varint import uvarint
from crev.errors import InvalidBlock

PRECOMMIT = 2  # SignedMsgType
FLAG_ABSENT, FLAG_COMMIT, FLAG_NIL = 1, 2, 3  # BlockIDFlag
ED25519 = "tendermint/PubKeyEd25519"
ADDRESS_SIZE = 20


# --- protobuf, the few shapes needed ---------------------------------------------------------

def pb_varint(num: int, value: int) -> bytes:
    """A varint field (int64, uint32, enum); left out when 0."""
    return uvarint(num << 3) + uvarint(value) if value else b""


def pb_bytes(num: int, value: bytes) -> bytes:
    """A bytes or string field; left out when empty."""
    return uvarint(num << 3 | 2) + uvarint(len(value)) + value if value else b""


def pb_message(num: int, body: bytes) -> bytes:
    """A non-nullable embedded message: always present, even when its body is empty."""
    return uvarint(num << 3 | 2) + uvarint(len(body)) + body


def pb_sfixed64(num: int, value: int) -> bytes:
    return uvarint(num << 3 | 1) + (value & ((1 << 64) - 1)).to_bytes(8, "little") if value else b""


# --- values ----------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$")


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@dataclass(frozen=True)
class Timestamp:
    """``google.protobuf.Timestamp``: unix seconds and nanoseconds (CometBFT's times are UTC)."""

    seconds: int
    nanos: int = 0

    @staticmethod
    def parse(text: str) -> Timestamp:
        """RFC 3339 in UTC as CometBFT's JSON writes it (``2026-12-03T08:39:46.318241847Z``)."""
        m = _RFC3339.match(text)
        if m is None:
            raise InvalidBlock("cometbft.time", f"{text!r} is not an RFC 3339 UTC time")
        y, mo, d, hh, mi, ss = (int(x) for x in m.groups()[:6])
        frac = m.group(7) or ""
        days = _days_from_civil(y, mo, d)
        return Timestamp(days * 86400 + hh * 3600 + mi * 60 + ss, int(frac.ljust(9, "0")) if frac else 0)

    def encode(self) -> bytes:
        return pb_varint(1, self.seconds) + pb_varint(2, self.nanos)

    def text(self) -> str:
        days, rest = divmod(self.seconds, 86400)
        z = days + 719468
        era = z // 146097
        doe = z - era * 146097
        yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        d = doy - (153 * mp + 2) // 5 + 1
        m = mp + 3 if mp < 10 else mp - 9
        y = yoe + era * 400 + (m <= 2)
        frac = f".{self.nanos:09d}".rstrip("0") if self.nanos else ""
        return f"{y:04d}-{m:02d}-{d:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}{frac}Z"


@dataclass(frozen=True)
class BlockID:
    hash: bytes
    parts_total: int
    parts_hash: bytes

    def encode(self) -> bytes:
        """``BlockID`` (and ``CanonicalBlockID``: the same bytes): hash = 1, part_set_header = 2
        (always present) {total = 1, hash = 2}."""
        return pb_bytes(1, self.hash) + pb_message(2, pb_varint(1, self.parts_total) + pb_bytes(2, self.parts_hash))

    @property
    def is_zero(self) -> bool:
        return not self.hash and not self.parts_total and not self.parts_hash

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> BlockID:
        parts = d.get("parts") or d.get("part_set_header") or {}
        return BlockID(_hex(d.get("hash", "")), int(parts.get("total", 0)), _hex(parts.get("hash", "")))

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.hash.hex(), "parts": {"total": self.parts_total, "hash": self.parts_hash.hex()}}


def _hex(s: str) -> bytes:
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise InvalidBlock("cometbft", f"{s[:80]!r} is not hex") from None


def _b64(s: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except ValueError:
        raise InvalidBlock("cometbft", f"{s[:80]!r} is not base64") from None


def address_of(pub_key: bytes) -> bytes:
    """A validator's address: the first 20 bytes of SHA-256(its Ed25519 public key)."""
    return hashlib.sha256(pub_key).digest()[:ADDRESS_SIZE]


@dataclass(frozen=True)
class Validator:
    pub_key: bytes  # Ed25519, 32 bytes
    power: int
    name: str = ""

    @property
    def address(self) -> bytes:
        return address_of(self.pub_key)

    def encode(self) -> bytes:
        """``SimpleValidator{pub_key = 1: PublicKey{ed25519 = 1}, voting_power = 2}``."""
        return pb_message(1, pb_bytes(1, self.pub_key)) + pb_varint(2, self.power)

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address.hex(), "pub_key": self.pub_key.hex(), "power": self.power,
                "name": self.name, "leaf": self.encode().hex()}


class ValidatorSet:
    """A fixed validator set in CometBFT's order: power descending, then address ascending."""

    def __init__(self, validators: Iterable[Validator]) -> None:
        self.validators = sorted(validators, key=lambda v: (-v.power, v.address))
        if not self.validators:
            raise InvalidBlock("cometbft.validators", "the validator set is empty")
        if len({v.address for v in self.validators}) != len(self.validators):
            raise InvalidBlock("cometbft.validators", "a validator appears twice")
        if any(v.power <= 0 for v in self.validators):
            raise InvalidBlock("cometbft.validators", "every validator's power must be positive")
        self.total_power = sum(v.power for v in self.validators)
        self.hash = merkle.root([v.encode() for v in self.validators])

    @property
    def needed(self) -> int:
        """The signed power must be greater than this: ⌊2/3 × total⌋ (CometBFT's integer rule)."""
        return self.total_power * 2 // 3

    @staticmethod
    def from_genesis(doc: Mapping[str, Any]) -> ValidatorSet:
        """The validators of a CometBFT genesis.json (``validators``: address, pub_key, power)."""
        out = []
        for i, v in enumerate(doc.get("validators") or []):
            pk = v.get("pub_key") or {}
            if pk.get("type") != ED25519:
                raise InvalidBlock(f"genesis.validators[{i}]", f"key type {pk.get('type')!r}: only Ed25519 is "
                                                                f"supported")
            val = Validator(_b64(pk.get("value", "")), int(v.get("power", v.get("voting_power", 0))),
                            str(v.get("name", "")))
            if len(val.pub_key) != 32:
                raise InvalidBlock(f"genesis.validators[{i}]", "an Ed25519 public key has 32 bytes")
            if v.get("address") and _hex(v["address"]) != val.address:
                raise InvalidBlock(f"genesis.validators[{i}]", "address is not SHA-256(pub_key)[:20]")
            out.append(val)
        return ValidatorSet(out)

    def to_json(self) -> dict[str, Any]:
        return {"validators": [v.to_json() for v in self.validators], "total_power": self.total_power,
                "needed_more_than": self.needed, "hash": self.hash.hex()}


@dataclass(frozen=True)
class CmtHeader:
    """A CometBFT v0.38 block header (``types.Header``)."""

    version_block: int
    version_app: int
    chain_id: str
    height: int
    time: Timestamp
    last_block_id: BlockID
    last_commit_hash: bytes
    data_hash: bytes
    validators_hash: bytes
    next_validators_hash: bytes
    consensus_hash: bytes
    app_hash: bytes
    last_results_hash: bytes
    evidence_hash: bytes
    proposer_address: bytes

    FIELDS = ("version", "chain_id", "height", "time", "last_block_id", "last_commit_hash", "data_hash",
              "validators_hash", "next_validators_hash", "consensus_hash", "app_hash", "last_results_hash",
              "evidence_hash", "proposer_address")

    def leaves(self) -> list[bytes]:
        """The 14 byte strings CometBFT's ``Header.Hash`` puts in its Merkle tree, in order."""
        wrap = pb_bytes  # StringValue / BytesValue {value = 1}; empty → b""
        return [
            pb_varint(1, self.version_block) + pb_varint(2, self.version_app),
            wrap(1, self.chain_id.encode()),
            pb_varint(1, self.height),  # Int64Value
            self.time.encode(),
            self.last_block_id.encode(),
            wrap(1, self.last_commit_hash), wrap(1, self.data_hash), wrap(1, self.validators_hash),
            wrap(1, self.next_validators_hash), wrap(1, self.consensus_hash), wrap(1, self.app_hash),
            wrap(1, self.last_results_hash), wrap(1, self.evidence_hash), wrap(1, self.proposer_address),
        ]

    def hash(self) -> bytes:
        return merkle.root(self.leaves())

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> CmtHeader:
        """From CometBFT's RPC JSON (``/header``, ``/commit``'s ``signed_header.header``)."""
        try:
            v = d["version"]
            return CmtHeader(int(v.get("block", 0)), int(v.get("app", 0)), str(d["chain_id"]), int(d["height"]),
                             Timestamp.parse(d["time"]), BlockID.from_json(d["last_block_id"]),
                             *(_hex(d[f]) for f in CmtHeader.FIELDS[5:]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidBlock("cometbft.header", f"not a CometBFT header: {exc!r}") from None

    def to_json(self) -> dict[str, Any]:
        """The fields (hex for bytes, the time as text and as seconds + nanos) and the 14 leaves."""
        out: dict[str, Any] = {"version": {"block": self.version_block, "app": self.version_app},
                               "chain_id": self.chain_id, "height": self.height, "time": self.time.text(),
                               "time_seconds": self.time.seconds, "time_nanos": self.time.nanos,
                               "last_block_id": self.last_block_id.to_json()}
        for f in CmtHeader.FIELDS[5:]:
            out[f] = getattr(self, f).hex()
        out["leaves"] = [x.hex() for x in self.leaves()]
        out["hash"] = self.hash().hex()
        return out


@dataclass(frozen=True)
class CommitSig:
    flag: int
    validator_address: bytes
    timestamp: Timestamp
    signature: bytes

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> CommitSig:
        ts = d.get("timestamp") or "0001-01-01T00:00:00Z"
        return CommitSig(int(d["block_id_flag"]), _hex(d.get("validator_address") or ""), Timestamp.parse(ts),
                         _b64(d.get("signature") or ""))


@dataclass(frozen=True)
class Commit:
    height: int
    round: int
    block_id: BlockID
    signatures: tuple[CommitSig, ...]

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Commit:
        try:
            return Commit(int(d["height"]), int(d["round"]), BlockID.from_json(d["block_id"]),
                          tuple(CommitSig.from_json(s) for s in d["signatures"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidBlock("cometbft.commit", f"not a CometBFT commit: {exc!r}") from None

    def sign_bytes(self, chain_id: str, index: int) -> bytes:
        s = self.signatures[index]
        return vote_sign_bytes(chain_id, self.height, self.round,
                               self.block_id if s.flag == FLAG_COMMIT else None, s.timestamp)


def vote_sign_bytes(chain_id: str, height: int, round_: int, block_id: BlockID | None, ts: Timestamp) -> bytes:
    """What a validator signs for a precommit: uvarint(length) ‖ ``CanonicalVote`` (type = 1 varint,
    height = 2 sfixed64, round = 3 sfixed64, block_id = 4 (left out for a nil vote), timestamp = 5
    (always present), chain_id = 6)."""
    body = (pb_varint(1, PRECOMMIT) + pb_sfixed64(2, height) + pb_sfixed64(3, round_)
            + (pb_message(4, block_id.encode()) if block_id is not None and not block_id.is_zero else b"")
            + pb_message(5, ts.encode()) + pb_bytes(6, chain_id.encode()))
    return uvarint(len(body)) + body


@dataclass
class Tally:
    """A verified commit: who signed it, with what power."""

    height: int
    signed_power: int
    total_power: int
    signers: list[str] = field(default_factory=list)  # hex addresses whose commit votes counted

    @property
    def needed(self) -> int:
        return self.total_power * 2 // 3


def _who(v: Validator) -> str:
    return f"{v.name} ({v.address.hex()})" if v.name else v.address.hex()


def verify_commit(chain_id: str, vals: ValidatorSet, block_id: BlockID, height: int, commit: Commit) -> Tally:
    """CometBFT's ``VerifyCommit``: the commit is for ``height`` and ``block_id``, has one slot per
    validator, every non-absent slot is signed by that slot's validator over its vote sign bytes,
    and the validators whose precommit is for the block hold more than 2/3 of the power."""
    where = f"cometbft.commit@{height}"
    if commit.height != height:
        raise InvalidBlock(where, f"the commit is for height {commit.height}, not {height}")
    if commit.block_id != block_id:
        raise InvalidBlock(where, f"the commit is for block {commit.block_id.hash.hex()}, not for the header's "
                                  f"hash {block_id.hash.hex()}")
    if len(commit.signatures) != len(vals.validators):
        raise InvalidBlock(where, f"{len(commit.signatures)} signature slots for {len(vals.validators)} validators")
    tally = Tally(height, 0, vals.total_power)
    for i, (s, v) in enumerate(zip(commit.signatures, vals.validators, strict=True)):
        if s.flag == FLAG_ABSENT:
            if s.validator_address or s.signature:
                raise InvalidBlock(f"{where}.signatures[{i}]", "an absent vote carries an address or a signature")
            continue
        if s.flag not in (FLAG_COMMIT, FLAG_NIL):
            raise InvalidBlock(f"{where}.signatures[{i}]", f"unknown block_id_flag {s.flag}")
        if s.validator_address != v.address:
            raise InvalidBlock(f"{where}.signatures[{i}]", f"signed by {s.validator_address.hex()}, but slot {i} "
                                                            f"is validator {_who(v)}")
        if not 0 < len(s.signature) <= 64 or not verify(v.pub_key, commit.sign_bytes(chain_id, i), s.signature):
            raise InvalidBlock(f"{where}.signatures[{i}]", f"bad Ed25519 signature by validator {_who(v)} on "
                                                            f"the commit of height {height}")
        if s.flag == FLAG_COMMIT:
            tally.signed_power += v.power
            tally.signers.append(v.address.hex())
    if tally.signed_power <= vals.needed:
        raise InvalidBlock(where, f"signed by {tally.signed_power} of {vals.total_power} voting power at height "
                                  f"{height}: not more than 2/3 (needs more than {vals.needed})")
    return tally


def verify_signed_header(chain_id: str, vals: ValidatorSet, header: CmtHeader, commit: Commit) -> Tally:
    """A header and its commit against the fixed (genesis) validator set: chain id, the set's hash
    in the header (a set change is refused), the header's hash in the commit, and the commit."""
    where = f"cometbft.header@{header.height}"
    if header.chain_id != chain_id:
        raise InvalidBlock(where, f"chain id {header.chain_id!r}, expected {chain_id!r}")
    for name in ("validators_hash", "next_validators_hash"):
        got = getattr(header, name)
        if got != vals.hash:
            raise InvalidBlock(where, f"{name} {got.hex()} is not the genesis validator set's {vals.hash.hex()}: the "
                                      f"validator set changed, and verifying across a change is not supported")
    h = header.hash()
    if h != commit.block_id.hash:
        raise InvalidBlock(where, f"the header hashes to {h.hex()}, the commit signs {commit.block_id.hash.hex()}")
    return verify_commit(chain_id, vals, commit.block_id, header.height, commit)


def data_hash(txs: Sequence[bytes]) -> bytes:
    """CometBFT's ``Data.Hash``: the Merkle root over SHA-256 of each transaction."""
    return merkle.root([sha256(t) for t in txs])


def check_app_hash(header: CmtHeader, crev_header_bytes: bytes, crev_height: int) -> None:
    """CometBFT's header (at H+1) carries SHA-256 of the crev header (of block H's last crev block)."""
    want = sha256(crev_header_bytes)
    if header.app_hash != want:
        raise InvalidBlock(f"crev block {crev_height}", f"CometBFT height {header.height}'s app_hash "
                                                       f"{header.app_hash.hex()} is not SHA-256 of the crev header "
                                                       f"{want.hex()}")


def commit_to_json(chain_id: str, vals: ValidatorSet, commit: Commit) -> dict[str, Any]:
    """A commit for a browser: each slot with its validator, timestamp (text and seconds + nanos),
    signature and the exact bytes signed."""
    sigs = []
    for i, s in enumerate(commit.signatures):
        v = vals.validators[i] if i < len(vals.validators) else None
        sigs.append({"flag": s.flag, "validator_address": s.validator_address.hex(),
                     "pub_key": v.pub_key.hex() if v is not None else "", "power": v.power if v is not None else 0,
                     "name": v.name if v is not None else "", "timestamp": s.timestamp.text(),
                     "timestamp_seconds": s.timestamp.seconds, "timestamp_nanos": s.timestamp.nanos,
                     "signature": s.signature.hex(),
                     "sign_bytes": commit.sign_bytes(chain_id, i).hex() if s.flag != FLAG_ABSENT else ""})
    return {"height": commit.height, "round": commit.round, "block_id": commit.block_id.to_json(),
            "signatures": sigs}
