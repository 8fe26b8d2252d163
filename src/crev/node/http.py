"""A minimal HTTP front for the embedded node (standard library only), so that devices, gateways
and ``crev submit`` reach a running node over a real socket. The full API and dashboard are the
service's job; this serves what the ledger needs:

* ``POST /tx``            body = canonical CBOR transaction → JSON receipt once committed
* ``GET /info``           chain id, height, app hash
* ``GET /account/<id>``   a participant's record (nonce, balances)

Errors are one JSON shape: ``{"error": {"code", "field", "reason"}}``; a node that stopped or
could not commit in time answers 503 with code ``unavailable``.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from crev.node.node import Node

MAX_BODY = 8 * 1024 * 1024

STATUS = {"malformed": 400, "bad_signature": 401, "forbidden": 403, "not_found": 404,
          "conflict": 409, "rule_violation": 422}


def make_server(node: Node, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "crev-node"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: Any) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, field: str, reason: str) -> None:
            self._send(status, {"error": {"code": code, "field": field, "reason": reason}})

        def do_GET(self) -> None:
            parts = [p for p in self.path.split("/") if p]
            if parts == ["info"]:
                self._send(200, node.info())
            elif len(parts) == 2 and parts[0] == "account":
                acct = node.state.accounts.get(parts[1])
                if acct is None:
                    self._error(404, "not_found", "account", f"no participant {parts[1]!r}")
                else:
                    self._send(200, {"account_id": acct.account_id, "name": acct.name, "role": acct.role,
                                     "nonce": acct.nonce, "tradable_g": acct.tradable_g,
                                     "escrowed_g": acct.escrowed_g, "retired_g": acct.retired_g})
            else:
                self._error(404, "not_found", "path", f"no such endpoint {self.path!r}")

        def do_POST(self) -> None:
            if self.path != "/tx":
                self._error(404, "not_found", "path", f"no such endpoint {self.path!r}")
                return
            try:
                length = int(self.headers.get("Content-Length", "-1"))
            except ValueError:
                length = -1
            if length < 0:
                self._error(411, "malformed", "Content-Length", "required")
                return
            if length > MAX_BODY:
                self._error(413, "malformed", "body", f"{length} bytes exceeds {MAX_BODY}")
                return
            raw = self.rfile.read(length)
            try:
                receipt = node.submit_wait(raw, timeout=60)
            except TimeoutError:
                self._error(503, "unavailable", "node", "no block committed the transaction within 60 s; "
                                                        "it may still be committed: resubmit the same bytes")
                return
            except RuntimeError as exc:  # the node stopped (or failed) before committing it
                self._error(503, "unavailable", "node", str(exc))
                return
            if receipt.error is not None and not receipt.committed:
                self._send(STATUS.get(receipt.error["code"], 400), {"error": receipt.error,
                                                                      "tx_hash": receipt.tx_hash})
            else:
                self._send(200, receipt.to_dict())

    return ThreadingHTTPServer((host, port), Handler)
