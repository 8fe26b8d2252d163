"""Schemathesis fuzzes every operation of the app's own OpenAPI document (loaded from the ASGI
app) over the ledger of tests/service/apikit.py: no response is 5xx, every 4xx has the one error
shape ``{"error": {"code", "field", "reason"}}`` with the status of its code (docs/api.md), and
every status and body conforms to what the document declares.

Path parameters are drawn half the time from the ledger's real ids, so the fuzzer gets past the
404s into the code behind them (figures, traces, proofs, statements); private endpoints are signed
with the operator's key by a thin ASGI wrapper, so their parsing is fuzzed too. ``/v1/stream``
never ends and is left to tests/service/test_api_stream.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CheckContext
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from crev.ledger.messages.authorize_delegate import AuthorizeDelegate
from crev.service.app import STATUS, create_app
from crev.service.auth import sign_request
from tests.node import nodekit as k
from tests.service import apikit as a

MAX_EXAMPLES = 12  # per operation and generation mode; the whole run stays well under a minute
CODES = {**STATUS, "method_not_allowed": 405, "too_large": 413, "unsupported_media_type": 415,
         "rate_limited": 429, "unavailable": 503}

schemathesis.serializer.alias("application/cbor", "application/octet-stream")


def signing(app: Any) -> Any:
    """Sign every request to /v1/accounts/… with the operator's key (which may read any account),
    over the path and query exactly as they arrive."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/accounts/"):
            target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            headers = sign_request(k.key(k.OPERATOR), k.OPERATOR, scope["method"], target, int(time.time()))
            scope = {**scope, "headers": [*scope["headers"],
                                          *((n.lower().encode(), v.encode()) for n, v in headers.items())]}
        await app(scope, receive, send)

    return wrapped


DELEGATE = "sun-co.dgc-0"  # granted by the fuzzed world's owner, so /v1/delegates/{id} has a real id


def real_ids(w: a.World) -> dict[str, list[Any]]:
    txs = [w.ids[n] for n in ("readings_tx", "transfer_tx", "trade_tx", "retire_tx")]
    return {
        "height": [1, 2, w.node.state.height], "tx_hash": txs,
        "key": [f"l/{a.LOT_A}", f"t/{a.RETIREMENT}", "d/dgc-0", "l/nothing"],
        "account_id": [k.OWNER, k.BUYER, k.OPERATOR], "participant_id": [k.OWNER, k.BUYER, k.OPERATOR],
        "device_id": ["dgc-0", "dgc-1"], "lot_id": [a.LOT_A, a.LOT_B, a.LOT_C, a.LOT_D],
        "unit_id": [1, 50, 900, 1_001, 1_980], "retirement_id": [a.RETIREMENT],
        "ident": [a.RETIREMENT, a.LOT_A, "1001", txs[0]], "market_id": ["spot", "call"],
        "month": ["2026-07", "2026-07.csv", "2026-06", "2026-07.pdf"],
        "delegate_id": [DELEGATE, "no-such-delegate"],
    }


def load(w: a.World) -> Any:
    app = signing(create_app(w.node, rate=0))
    config = schemathesis.Config.from_dict({"seed": 20261128})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config).exclude(path="/v1/stream")
    ids = real_ids(w)

    @schema.hook
    def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
        names = [p.name for p in context.operation.path_parameters]
        if not names or not all(n in ids for n in names):
            return strategy
        return st.one_of(strategy, st.fixed_dictionaries({n: st.sampled_from(ids[n]) for n in names}))

    return schema


def one_error_shape(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx: exactly ``{"error": {code, field, reason}}`` (``/v1/tx`` may add
    ``tx_hash``), strings, a non-empty reason, and the status docs/api.md gives its code."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise Failure(operation=case.operation.label, title="error body is not JSON",
                      message=repr(response.content[:200])) from None
    extra = {"tx_hash"} if case.operation.path == "/v1/tx" else set()
    err = body.get("error") if isinstance(body, dict) else None
    ok = (isinstance(err, dict) and set(body) - {"error"} <= extra and set(err) == {"code", "field", "reason"}
          and all(isinstance(v, str) for v in err.values()) and bool(err["reason"])
          and CODES.get(err["code"]) == response.status_code)
    if not ok:
        raise Failure(operation=case.operation.label, title="not the one error shape",
                      message=f"{response.status_code}: {body!r}")
    return True


def no_server_error(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    if response.status_code >= 500:
        raise Failure(operation=case.operation.label, title=f"server error {response.status_code}",
                      message=response.content[:500].decode("utf-8", "replace"))
    return True


SEEN: dict[str, set[int]] = {}  # operation → statuses answered


def record(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    SEEN.setdefault(case.operation.label, set()).add(response.status_code)
    return True


CHECKS = [record, no_server_error, one_error_shape, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]


def fuzz(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


def test_every_operation_fuzzed(tmp_path: Path) -> None:
    w = a.build(tmp_path / "ledger")
    try:
        w.tx(k.OWNER, AuthorizeDelegate("grant", DELEGATE, k.key("delegate").public_key, ("place_order",), 0))
        schema = load(w)
        operations = [op.ok() for op in schema.get_all_operations()]
        labels = {op.label for op in operations}
        assert len(labels) == 29 and "GET /v1/stream" not in labels and "POST /v1/tx" in labels
        SEEN.clear()
        failures: list[str] = []
        unsatisfiable: list[str] = []
        calls = 0
        for op in operations:
            # the coverage phase: boundary values of every parameter, valid and invalid
            for case in schema.iter_coverage_cases(op, generation_modes=list(GenerationMode),
                                                   generation_config=schema.config.generation_for(operation=op)):
                calls += 1
                try:
                    case.call_and_validate(checks=CHECKS)
                except (Exception, FailureGroup) as exc:  # collect them all, then fail once
                    failures.append(f"{op.label} (coverage): {exc}")
            for mode in GenerationMode:
                try:
                    fuzz(op, mode)
                except Unsatisfiable:
                    # nothing to make invalid: only free-form string path parameters, no query
                    assert mode is GenerationMode.NEGATIVE, op.label
                    unsatisfiable.append(op.label)
                except (Exception, FailureGroup) as exc:
                    failures.append(f"{op.label} ({mode.value}): {exc}")
        assert not failures, "\n\n".join(failures)
        # not vacuous: every operation was called, answered 200 with the real ids and refused bad input
        assert calls > 200 and set(SEEN) == labels
        assert {op for op, codes in SEEN.items() if 200 not in codes} == {"POST /v1/tx"}, SEEN
        assert {op for op, codes in SEEN.items() if not codes & {400, 404}} == {"GET /v1/info"}
        assert SEEN["POST /v1/tx"] >= {400, 415}
        assert SEEN["GET /v1/accounts/{account_id}/statements/{month}"] >= {200, 400, 405}
        # only operations with nothing a fuzzer can make invalid are left without negative cases
        assert "GET /v1/blocks" not in unsatisfiable and "GET /v1/figures/{participant_id}" not in unsatisfiable
    finally:
        w.node.close()
