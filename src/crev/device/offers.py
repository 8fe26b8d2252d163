"""The site's offers: asks placed by the DGC with a key its owner delegated on the ledger.

Keys: the device key signs readings (and smart-meter values, control records) only; a ledger
transaction is signed by the owner's key or by a *delegate* the owner granted with
``authorize_delegate`` (ledger/messages/authorize_delegate.py), which the ledger authenticates
with the delegate's own key and nonce and runs as the owner (``ledger.apply.authenticate_delegate``).
A delegate places asks only, so the DGC can offer the owner's C-REV but never spend its JPY.

What the agent does (docs/dgc.md, "Offers with a delegated key"): when a receipt says one of the
site's readings was accepted with a lot (detail ``["accepted", lot_id, quantity_g]``), it signs a
``place_order`` ask for :func:`offer_quantity_g` of that lot on ``market_id`` at
``price_jpy_per_t``, good till cancelled, with the delegate's next nonce, writes the signed
transaction into the outbox (kind ``offer``) and sends it. The owner's ``set_offer_policy`` (the
ledger's auto-offer in the issuing block) acts first; the agent's ask takes what is left.

The delegate's nonce is read from ``GET /v1/delegates/{id}`` at start and after a ``bad_nonce``,
and counted locally in between (saved with each offer). A refused transaction uses no nonce, so the
offers still waiting are signed again from the refused one's nonce. Outcomes:

* placed: the offer leaves the outbox, logged ``placed <order_id> in tx <tx_hash>``;
* the units are no longer there (the owner's auto-offer or a transfer took them) or below the
  market's minimum: logged ``refused ...``, not retried, no alert;
* ``bad_nonce``: if the very transaction is on the ledger (a lost receipt) it was placed; else the
  nonce is read again and the offers are signed again and retried;
* the delegate revoked, expired, not granted (or not for ``place_order``, or for another key): an
  alert naming ``sites[i].market.delegate_id`` with the ledger's reason; offers are paused (the
  waiting ones move to the dead letters, new lots are logged ``skipped``) until the delegate's
  record says it may sign again (read every ``recheck_s``);
* any other refusal: a dead letter and an alert (``ledger.offer``), like a device item's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from crev.core.encoding import encode
from crev.core.hashing import sha256
from crev.core.signing import Signer
from crev.device.config import MarketConfig, SenderConfig, read_seed
from crev.device.outbox import OFFER, Outbox, Pending
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.records import ANY, ASK
from crev.ledger.tx import TX_VERSION

log = logging.getLogger("crev.dgc.offers")

BP = 10_000  # basis points in one
RECHECK_S = 60.0  # how often a paused (or not yet read) delegate is read again [s, wall]
_TRANSIENT = {"unavailable", "overloaded", "rate_limited", "shutting_down", "too_many_connections", "timeout"}
#: the delegate itself cannot sign (ledger.apply.authenticate_delegate): offers pause
_DELEGATE_REFUSALS = {("not_found", "tx.signer"), ("bad_signature", "tx.signer"), ("forbidden", "tx.kind"),
                      ("bad_signature", "tx.signature")}


def offer_quantity_g(quantity_g: int, share_bp: int) -> int:
    """The grams of a lot of ``quantity_g`` [g-CO2e] the agent offers at ``share_bp`` [basis
    points]: ⌊quantity_g × share_bp / 10000⌋, rounded down (never more than the share)."""
    return quantity_g * share_bp // BP


def ask_for(market: MarketConfig, lot_id: str, quantity_g: int) -> PlaceOrder:
    """The ask for ``quantity_g`` [g] of lot ``lot_id``: the configured market and limit price, gtc."""
    return PlaceOrder(market.market_id, ASK, market.price_jpy_per_t, quantity_g, "gtc", 0, ANY,
                      ((lot_id, quantity_g),), None)


def sign_offer(chain_id: str, delegate_id: str, nonce: int, order: PlaceOrder, key: Signer) -> list[Any]:
    """The whole transaction, signed by the delegate with its ``nonce`` (docs/wire-format.md section 4)."""
    unsigned: list[Any] = [TX_VERSION, chain_id, order.kind, delegate_id, nonce, order.to_body()]
    return [*unsigned, key.sign(encode(unsigned))]


def units_gone(code: str, field: str) -> bool:
    """A refusal because the lot's units are no longer tradable for the owner, or because the ask is
    below the market's minimum: not retried, not an alert (messages/place_order.py, common.check_holdings)."""
    return (code, field) in {("rule_violation", "body.lots[0].quantity_g"), ("forbidden", "body.lots[0].lot_id"),
                             ("not_found", "body.lots[0].lot_id"), ("rule_violation", "body.quantity_g")}


def delegate_problem(record: dict[str, Any], public_key: bytes, now: float) -> str:
    """Why the delegate of ``record`` (``GET /v1/delegates/{id}``) cannot sign an ask with
    ``public_key`` at wall time ``now`` [unix s]; "" if it can."""
    who = f"delegate {record.get('delegate_id')} of {record.get('owner')}"
    if record.get("revoked"):
        return f"{who} was revoked by its owner"
    until = int(record.get("valid_until") or 0)
    if until and now >= until:
        return f"{who} expired at {record.get('valid_until_jst') or until}"
    if "place_order" not in record.get("kinds", []):
        return f"{who} is not granted place_order (only {', '.join(record.get('kinds', [])) or 'nothing'})"
    if str(record.get("public_key", "")) != public_key.hex():
        return f"{who} is granted another key than the one in delegate_key_file"
    return ""


class Offerer:
    """One site's offers (see the module docstring). ``lots_issued`` and ``pump`` are called by the
    site's :class:`crev.device.agent.Sender`, on its thread."""

    def __init__(self, market: MarketConfig, chain_id: str, key: Signer, outbox: Outbox, url: str,
                 client: httpx.Client, cfg: SenderConfig, *, alert: Callable[[str, str], None],
                 recheck_s: float = RECHECK_S) -> None:
        self.market = market
        self.chain_id = chain_id
        self.key = key
        self.outbox = outbox
        self.url = url.rstrip("/")
        self.client = client
        self.cfg = cfg
        self.alert = alert
        self.recheck_s = recheck_s
        saved = outbox.state().get("offers", {})
        self.nonce: int = saved.get("nonce", 0)  # the delegate's next nonce, as far as the agent knows
        self.paused: str | None = saved.get("paused")  # why offers are paused (None: they are not)
        self.known = False  # the nonce was read from the ledger since the start (or the last bad_nonce)
        self.check_at = 0.0  # wall monotonic time of the next read of the delegate's record
        self.retry_at = 0.0
        self.failures = 0
        self.placed = self.refused = self.resigned = 0

    @classmethod
    def for_site(cls, market: MarketConfig, chain_id: str, outbox: Outbox, url: str, client: httpx.Client,
                 cfg: SenderConfig, alert: Callable[[str, str], None]) -> Offerer:
        """An offerer with the delegate key read from ``market.delegate_key_file`` (the config
        already checked it is readable and is not the device key)."""
        return cls(market, chain_id, Signer(read_seed(market.delegate_key_file)), outbox, url, client, cfg,
                   alert=alert)

    def pending(self) -> int:
        """Signed offers waiting to be sent."""
        return len(self.outbox.pending(OFFER, 1_000_000))

    # --- signing ---------------------------------------------------------------------------

    def lots_issued(self, lots: list[tuple[str, int]]) -> None:
        """The site's readings were accepted with these lots ([(lot_id, quantity_g)]): sign an ask for
        each (once per lot: a lot already in the log is not offered again)."""
        if not lots:
            return
        at = int(time.time())
        seen = {r["ref"] for r in self.outbox.log(OFFER, 1_000)}
        m = self.market
        for lot_id, lot_g in lots:
            ref = f"lot {lot_id}"
            if not lot_id or ref in seen:
                continue
            seen.add(ref)
            q = offer_quantity_g(lot_g, m.offer_share_bp)
            summary = {"lot_id": lot_id, "lot_g": lot_g, "quantity_g": q, "price_jpy_per_t": m.price_jpy_per_t,
                       "market_id": m.market_id, "delegate_id": m.delegate_id}
            if self.paused is not None:
                self.outbox.note(OFFER, ref, summary, f"skipped: offers paused: {self.paused}", at)
            elif q < m.min_offer_g:
                self.outbox.note(OFFER, ref, summary, f"skipped: {q} g is below min_offer_g {m.min_offer_g} g", at)
            else:
                item = sign_offer(self.chain_id, m.delegate_id, self.nonce, ask_for(m, lot_id, q), self.key)
                self.nonce += 1
                self.outbox.put(OFFER, ref, item, summary, at, {"offers": self._state()})

    def _state(self) -> dict[str, Any]:
        return {"nonce": self.nonce, "paused": self.paused}

    def _resign(self, nonce: int) -> None:
        """Sign the waiting offers again, in order, from ``nonce`` on."""
        n = nonce
        for p in self.outbox.pending(OFFER, 1_000_000):
            if p.item[4] != n:
                self.outbox.replace(p, [*p.item[:4], n, p.item[5], self.key.sign(encode([*p.item[:4], n, p.item[5]]))])
                self.resigned += 1
            n += 1
        self.nonce = n
        self.outbox.save({"offers": self._state()})

    # --- the delegate's record -------------------------------------------------------------

    def _read_delegate(self) -> None:
        """Read the delegate's record: its nonce (the waiting offers signed again from it), or why it
        cannot sign (offers paused). Nothing changes if the ledger does not answer."""
        self.check_at = time.monotonic() + self.recheck_s
        m = self.market
        try:
            r = self.client.get(f"{self.url}/v1/delegates/{m.delegate_id}")
            record = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return
        if r.status_code == 404:
            self._pause(f"delegate {m.delegate_id} is not granted on the ledger (GET /v1/delegates/"
                        f"{m.delegate_id}: not found)")
            return
        if not isinstance(record, dict):
            return
        why = delegate_problem(record, self.key.public_key, time.time())
        if why:
            self._pause(why)
            return
        if self.paused is not None:
            log.info("%s: delegate %s may sign again: offers resumed", self.outbox.path.stem, m.delegate_id)
        self.paused, self.known = None, True
        self._resign(int(record["nonce"]))

    def _pause(self, why: str) -> None:
        if self.paused != why:
            self.alert(f"{self.market.at}.delegate_id", f"{why}: offers paused")
        self.paused, self.known = why, False
        for p in self.outbox.pending(OFFER, 1_000_000):
            self.outbox.dead(p, "paused", f"{self.market.at}.delegate_id", why)
        self.outbox.save({"offers": self._state()})

    # --- sending ---------------------------------------------------------------------------

    def pump(self) -> None:
        """Send the waiting offers one transaction at a time, in nonce order, until one cannot go."""
        now = time.monotonic()
        if now < self.retry_at:
            return
        if not self.known:
            if now < self.check_at:
                return
            self._read_delegate()
            if not self.known:
                return
        for _ in range(50):  # one at a time: a refusal or a bad_nonce signs the rest again
            waiting = self.outbox.pending(OFFER, 1)
            if not waiting or not self._send(waiting[0]):
                return

    def _backoff(self, retry_after: float | None = None) -> None:
        self.failures += 1
        wait = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2.0 ** min(self.failures - 1, 30))
        self.retry_at = time.monotonic() + max(wait, retry_after or 0.0)

    def _send(self, p: Pending) -> bool:
        """One offer; True if the next may be sent now."""
        raw = encode(p.item)
        try:
            resp = self.client.post(f"{self.url}/v1/tx", params={"wait": "true", "events": "false"}, content=raw,
                                    headers={"Content-Type": "application/cbor"})
            body: Any = resp.json()
        except httpx.HTTPError as err:
            self.outbox.failed([p], f"{type(err).__name__}: {err}")
            self._backoff()
            return False
        except ValueError:
            body = {}
        if resp.status_code == 200 and isinstance(body, dict) and body.get("ok"):
            self.failures = 0
            self._placed(p, body.get("detail"))
            return True
        refusal = body.get("error") if isinstance(body, dict) else None
        if resp.status_code in (429, 503) or resp.status_code >= 500 or not isinstance(refusal, dict):
            self.outbox.failed([p], f"HTTP {resp.status_code}")
            ra = resp.headers.get("Retry-After")
            self._backoff(float(ra) if ra and ra.replace(".", "", 1).isdigit() else None)
            return False
        self.failures = 0
        code, fld, reason = (str(refusal.get(k, "")) for k in ("code", "field", "reason"))
        if code == "bad_nonce":
            if self._on_ledger(raw):  # sent before, its receipt lost
                self._placed(p, None)
                return True
            self.known = False
            self._read_delegate()
            return self.known
        if (code, fld) in _DELEGATE_REFUSALS:
            self._pause(reason)  # the ledger's words, as GET /v1/delegates/{id} would give them
            return False
        if code in _TRANSIENT:
            self.outbox.failed([p], f"{code}: {fld}: {reason}")
            self._backoff()
            return False
        if units_gone(code, fld):
            self.refused += 1
            self.outbox.done([(p, f"refused ({code}) at {fld}: {reason}")])
            log.info("%s: %s not offered: %s", self.outbox.path.stem, p.ref, reason)
        else:
            self.outbox.dead(p, code, fld, reason)
            self.alert("ledger.offer", f"{p.ref} refused ({code}) at {fld}: {reason}: moved to dead letters")
        self._resign(int(p.item[4]))  # a refused transaction used no nonce
        return True

    def _placed(self, p: Pending, detail: Any) -> None:
        order = str(detail[0]) if isinstance(detail, list) and detail else "(receipt lost)"
        self.placed += 1
        self.outbox.done([(p, f"placed {order} in tx {sha256(encode(p.item)).hex()}")])

    def _on_ledger(self, raw: bytes) -> bool:
        """Whether exactly this transaction is committed (GET /v1/tx/{hash})."""
        try:
            r = self.client.get(f"{self.url}/v1/tx/{sha256(raw).hex()}")
            return r.status_code == 200 and r.json().get("ok", True) is not False
        except (httpx.HTTPError, ValueError, AttributeError):
            return False
