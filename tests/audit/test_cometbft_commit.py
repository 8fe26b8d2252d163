"""crev.audit.cometbft's commit rules on commits signed here (four validators with known keys, so
nil and absent votes, unequal power and a wrong slot order can be made): only votes for the
block count, every present signature must verify, more than ⌊2/3 × total⌋ must sign; and the
command line's choices for a consortium member's ledger and an embedded one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from crev.audit.cometbft import (
    FLAG_ABSENT,
    FLAG_COMMIT,
    BlockID,
    CmtHeader,
    Commit,
    CommitSig,
    Timestamp,
    Validator,
    ValidatorSet,
    verify_signed_header,
    vote_sign_bytes,
)
from crev.cli.commands import main
from crev.consortium.app import CrevApp
from crev.core.hashing import sha256
from crev.core.signing import Signer
from crev.errors import InvalidBlock
from crev.ledger.messages.register_participant import RegisterParticipant
from tests.node import nodekit as k

CHAIN = "commit-test"
KEYS = [Signer(sha256(f"validator/{i}".encode())) for i in range(4)]


def valset(powers: tuple[int, ...] = (10, 10, 10, 10)) -> ValidatorSet:
    return ValidatorSet(Validator(s.public_key, p, f"v{i}") for i, (s, p) in enumerate(zip(KEYS, powers, strict=True)))


def header(vals: ValidatorSet) -> CmtHeader:
    h32 = bytes(range(32))
    return CmtHeader(11, 1, CHAIN, 7, Timestamp(1_800_000_000, 5), BlockID(h32, 1, h32), h32, h32, vals.hash,
                     vals.hash, h32, sha256(b"crev header"), h32, h32, vals.validators[0].address)


def commit(vals: ValidatorSet, flags: list[int], head: CmtHeader | None = None) -> Commit:
    head = head or header(vals)
    bid = BlockID(head.hash(), 1, sha256(b"parts"))
    sigs = []
    key_of = {s.public_key: s for s in KEYS}
    for i, (v, flag) in enumerate(zip(vals.validators, flags, strict=True)):
        if flag == FLAG_ABSENT:
            sigs.append(CommitSig(FLAG_ABSENT, b"", Timestamp(-62135596800), b""))
            continue
        ts = Timestamp(1_800_000_001, 1000 * i)
        msg = vote_sign_bytes(CHAIN, head.height, 0, bid if flag == FLAG_COMMIT else None, ts)
        sigs.append(CommitSig(flag, v.address, ts, key_of[v.pub_key].sign(msg)))
    return Commit(head.height, 0, bid, tuple(sigs))


def test_only_votes_for_the_block_count() -> None:
    vals = valset()
    head = header(vals)
    t = verify_signed_header(CHAIN, vals, head, commit(vals, [2, 2, 2, 3]))
    assert t.signed_power == 30 and t.needed == 26 and len(t.signers) == 3
    with pytest.raises(InvalidBlock, match="signed by 20 of 40 voting power at height 7"):
        verify_signed_header(CHAIN, vals, head, commit(vals, [2, 3, 2, 1]))


def test_a_nil_vote_is_signed_without_the_block_id() -> None:
    vals = valset()
    c = commit(vals, [2, 2, 2, 3])
    nil = c.sign_bytes(CHAIN, 3)
    assert b"\x22" + bytes([len(c.block_id.encode())]) + c.block_id.encode() not in nil
    assert b"\x22" + bytes([len(c.block_id.encode())]) + c.block_id.encode() in c.sign_bytes(CHAIN, 0)
    # a nil vote's bad signature refuses the commit too (CometBFT verifies every present vote)
    bad = list(c.signatures)
    bad[3] = replace(bad[3], signature=bytes(64))
    with pytest.raises(InvalidBlock, match="bad Ed25519 signature by validator v"):
        verify_signed_header(CHAIN, vals, header(vals), replace(c, signatures=tuple(bad)))


def test_power_and_order() -> None:
    vals = valset((40, 10, 10, 10))  # total 70, more than 46 needed
    assert vals.validators[0].power == 40 and vals.needed == 46
    head = header(vals)
    assert verify_signed_header(CHAIN, vals, head, commit(vals, [2, 1, 1, 2])).signed_power == 50
    with pytest.raises(InvalidBlock, match="signed by 30 of 70"):
        verify_signed_header(CHAIN, vals, head, commit(vals, [1, 2, 2, 2]))
    # slots out of the set's order: the address of slot 0 is not validator 0's
    c = commit(vals, [2, 2, 2, 2])
    swapped = (c.signatures[1], c.signatures[0], *c.signatures[2:])
    with pytest.raises(InvalidBlock, match="but slot 0 is validator"):
        verify_signed_header(CHAIN, vals, head, replace(c, signatures=swapped))
    with pytest.raises(InvalidBlock, match="3 signature slots for 4 validators"):
        verify_signed_header(CHAIN, vals, head, replace(c, signatures=c.signatures[:3]))


def test_a_commit_for_another_block_or_chain_is_refused() -> None:
    vals = valset()
    head = header(vals)
    c = commit(vals, [2, 2, 2, 2])
    with pytest.raises(InvalidBlock, match="the header hashes to"):
        verify_signed_header(CHAIN, vals, replace(head, app_hash=bytes(32)), c)
    with pytest.raises(InvalidBlock, match="chain id"):
        verify_signed_header("other", vals, head, c)
    with pytest.raises(InvalidBlock, match="validator set changed"):
        verify_signed_header(CHAIN, valset((10, 10, 10, 11)), head, c)


def member_dir(d: Path) -> Path:
    """A consortium member's data directory with one crev block and no checkpoint yet."""
    app = CrevApp(d, checkpoint_s=3600)
    app.init_chain(k.CHAIN, k.T0, k.genesis().to_json().encode(), [])
    app.finalize_block([k.Signers().tx(k.OPERATOR, RegisterParticipant(k.OWNER, "Sun Co", "prosumer",
                                                                      k.key(k.OWNER).public_key))], 1, k.T0 + 1)
    app.commit()
    assert app.store is not None
    app.store.close()  # no checkpoint: the replay is the whole check
    app.store = None
    return d


def test_the_command_line_asks_a_members_ledger_for_cometbft(tmp_path: Path) -> None:
    d = member_dir(tmp_path / "member")
    out = CliRunner().invoke(main, ["verify", str(d)])
    assert out.exit_code == 2 and "Give --cometbft-rpc URL" in " ".join(out.output.split())
    out = CliRunner().invoke(main, ["verify", str(d), "--replay-only", "--threads", "1"])
    text = " ".join(out.output.split())
    assert out.exit_code == 0 and "OK 1 blocks" in text and "CometBFT's commits were NOT checked" in text
    out = CliRunner().invoke(main, ["trace", str(d), "x"])
    assert out.exit_code == 2 and "Give --cometbft-rpc URL" in " ".join(out.output.split())
    # nothing listens there: a clear failure, not a traceback
    out = CliRunner().invoke(main, ["verify", str(d), "--cometbft-rpc", "http://127.0.0.1:9"])
    assert out.exit_code == 2 and "cometbft.rpc" in out.output and "Traceback" not in out.output


def test_an_embedded_ledger_refuses_the_cometbft_options(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "embedded")
    out = CliRunner().invoke(main, ["verify", str(d), "--cometbft-rpc", "http://127.0.0.1:9"])
    assert out.exit_code == 2 and "embedded node's ledger" in " ".join(out.output.split())
    out = CliRunner().invoke(main, ["verify", str(d), "--threads", "1"])
    assert out.exit_code == 0 and "consortium" not in out.output
