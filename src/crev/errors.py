"""The one error tree. Every refusal names the offending field (a path such as
``readings[3].export_wh``) and says why; the API maps each class to one HTTP status in one place.

CrevError
├── MalformedError      bytes or shape are wrong (stateless checks)      → 400
├── SignatureError      a signature is missing, forged or by the wrong key → 401
├── NotFoundError       an id that does not exist                        → 404
├── PermissionError_    the signer may not do this                        → 403
├── ConflictError       contradicts what the ledger already holds         → 409
│   └── NonceError      a transaction's nonce is not the signer's next one → 409
├── RuleError           a metering or business rule is broken             → 422
├── InvalidBlock        a block fails validation (auditor, replay)        → 500 internally
└── DeviceError         a site device (smart meter, inverter) answered wrongly or not at all;
                        raised on the DGC, never by the ledger; ``field`` is ``<device>.<field>``
"""

from __future__ import annotations


class CrevError(Exception):
    """Root of all crev errors. ``field`` is a dotted/indexed path, ``reason`` is plain words."""

    code = "error"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def at(self, prefix: str) -> CrevError:
        """The same error with its field nested under ``prefix`` (e.g. ``readings[3]``)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return type(self)(field, self.reason)

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "reason": self.reason}


class MalformedError(CrevError):
    code = "malformed"


class SignatureError(CrevError):
    code = "bad_signature"


class NotFoundError(CrevError):
    code = "not_found"


class PermissionError_(CrevError):
    code = "forbidden"


class ConflictError(CrevError):
    code = "conflict"


class NonceError(ConflictError):
    """A signed transaction whose nonce is not the signer's next one: replayed, sent twice, or sent
    out of order. A sequencing problem, not a forged signature: fetch the account's nonce and
    sign again."""

    code = "bad_nonce"


class RuleError(CrevError):
    code = "rule_violation"


class InvalidBlock(CrevError):
    code = "invalid_block"


class DeviceError(CrevError):
    """A device on the DGC's side failed: a malformed or foreign frame, no answer, "no data", a
    refused setpoint, a register that went backwards. ``field`` names the device and its field
    (``smart-meter 192.0.2.7.EA``); nothing signed is lost by it."""

    code = "device_error"
