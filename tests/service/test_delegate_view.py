"""``GET /v1/delegates/{id}`` (docs/api.md): what a site's DGC needs to sign with a delegated key —
whom it acts for, what it may sign, until when, and its own next nonce — and the delegate's record
proven like any public record (``k/<id>``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from crev.core.encoding import decode
from crev.ledger.messages.authorize_delegate import AuthorizeDelegate
from crev.node.node import Node
from crev.service.app import create_app
from tests.node import nodekit as k

DELEGATE = "sun-co.dgc-0"
UNTIL = k.T0 + 90 * 86400  # 2026-08-30 00:00 JST


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Node]:
    node = k.open_node(k.init_dir(tmp_path / "ledger"))
    signers = k.register_fleet(node, 1)
    r = node.submit_wait(signers.tx(k.OWNER, AuthorizeDelegate("grant", DELEGATE, k.key("delegate").public_key,
                                                               ("set_offer_policy", "place_order"), UNTIL)))
    assert r.ok, r.error
    try:
        yield node
    finally:
        node.close()


def get(client: TestClient, path: str, status: int = 200) -> Any:
    r = client.get(path)
    assert r.status_code == status, (path, r.status_code, r.text)
    return r.json()


def test_a_delegate_shows_its_owner_kinds_validity_and_own_nonce(ledger: Node) -> None:
    with TestClient(create_app(ledger, rate=0)) as c:
        d = get(c, f"/v1/delegates/{DELEGATE}")
        assert d == {"delegate_id": DELEGATE, "owner": k.OWNER, "public_key": k.key("delegate").public_key.hex(),
                     "kinds": ["set_offer_policy", "place_order"], "valid_until": UNTIL,
                     "valid_until_jst": "2026-08-30T00:00:00+09:00", "revoked": False, "nonce": 0,
                     "granted_height": ledger.state.height, "state_key": f"k/{DELEGATE}"}
        # the owner's own nonce moved (it signed the grant); the delegate's starts at 0
        assert get(c, f"/v1/participants/{k.OWNER}")["nonce"] == 1


def test_a_delegate_is_not_a_participant_and_an_unknown_one_is_not_found(ledger: Node) -> None:
    with TestClient(create_app(ledger, rate=0)) as c:
        assert get(c, f"/v1/participants/{DELEGATE}", 404)["error"]["field"] == "account_id"
        err = get(c, "/v1/delegates/no-such-delegate", 404)["error"]
        assert (err["code"], err["field"]) == ("not_found", "delegate_id")


def test_a_delegates_record_is_proven_against_the_head(ledger: Node) -> None:
    with TestClient(create_app(ledger, rate=0)) as c:
        p = get(c, f"/v1/proofs/state/k/{DELEGATE}")
        assert (p["key"], p["verified"]) == (f"k/{DELEGATE}", True)
        assert p["state_root"] == ledger.state.tree.root().hex()
        value = decode(bytes.fromhex(p["value"]), "value")
        assert value[:2] == [DELEGATE, k.OWNER] and value[3] == ["set_offer_policy", "place_order"]
