"""Outbound sends through the Cloud API: ``POST /{phone-number-id}/messages``, guarded.

:func:`send` sends one text or template message for an onboarding and records it as an
outbound message with source ``api`` (billed, unlike what the business sends from the app), so
``show --json`` counts it under ``messages_api``. On its way it:

1. validates the payload (:func:`validate_payload`): ``to`` as digits, ``type`` ``text`` with a
   ``body`` or ``template`` with a ``name`` and ``language.code``;
2. checks the onboarding can send (:data:`SENDING_STATES`):

   * ``reconnecting`` (Meta offboarded the companion and is reconnecting it, §7) or paused
     (``paused_reason``: restriction, violation) → :class:`RetryLater` with a growing wait: the
     send waits for the account, bounded by the task's ``max_retries``;
   * ``disconnected`` → refused for good. The state is terminal: Meta removed the business
     (``PARTNER_REMOVED``), nothing can be sent until it onboards again, and waiting would only
     deliver a stale message hours later, if ever;
   * any other state (signup not finished, failed, ineligible) → refused;

3. claims the optional ``idempotency_key`` in a :class:`SendLedger` (below);
4. takes a token from the number's bucket (:mod:`onboarding.outbound.throttle`), waiting at most
   ``token_wait`` seconds, else :class:`RetryLater` (a worker is not held for long);
5. calls Graph once, never retried inside the client (a send is not idempotent):

   * ``130429`` (throughput) and ``131056`` (pair rate) and other rate limits → ``RetryLater``
     with backoff and jitter (nothing was sent);
   * other transient errors that certainly did not apply (no connection) → ``RetryLater``;
   * a permanent error (bad parameter, dead token, policy) → refused with Meta's code;

6. on success records the row and commits.

Idempotency: what a redelivered task may do
-------------------------------------------
Celery may run a send twice (``acks_late``: a worker lost mid-task is redelivered), and Meta has
no idempotency key. Without ``idempotency_key`` a send is *at least once*: an ambiguous failure
(the answer was lost after the request left: a dropped connection, a 5xx) is retried and may
deliver twice. With ``idempotency_key`` it is *at most once*: the key is claimed in the ledger
(Redis ``SET NX`` with a TTL, on ``(onboarding_id, key)``) as an ``intent`` before the call and
overwritten with the ``wamid`` after it, so a redelivery finds the wamid and sends nothing (and
re-records the row, in case the first run died between the call and its commit). The ambiguity
window is honest: if the answer is lost, or the worker dies between the call and writing the
wamid, the key stays ``intent``/``unknown`` and is never re-sent; the outcome is
:attr:`SendStatus.UNKNOWN` and an operator alert says so (Meta's status webhooks would tell).
An ``intent`` younger than ``intent_lease`` may belong to a worker still sending: the caller is
told to retry after it. A failure that certainly did not send releases the key.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import redis
import structlog
from sqlalchemy.orm import Session

from config.logging import bind, register_secret
from models import Direction, MediaState, MessageSource, Onboarding, OnboardingState
from models.crypto import TokenCipher
from onboarding.meta.errors import (
    GraphError,
    RateLimitedError,
    TokenInvalidError,
    TransientGraphError,
)
from onboarding.meta.graph import GraphClient
from onboarding.outbound.throttle import LocalTokenBucket, Throttle, TokenBucket
from onboarding.outcomes import RetryLater
from onboarding.runtime import Runtime
from onboarding.states import raise_alert
from onboarding.store import upsert_messages

log = structlog.get_logger(__name__)

S = OnboardingState
#: States whose number is on the Cloud API with a business token: sends go out.
SENDING_STATES: Final = frozenset(
    {S.SUBSCRIBED, S.SYNCING, S.SYNCED, S.HISTORY_DECLINED, S.SYNC_WINDOW_MISSED}
)
#: States in which sends wait (``RetryLater``) for Meta to reconnect the account.
WAITING_STATES: Final = frozenset({S.RECONNECTING})

MESSAGE_TYPES: Final = ("text", "template")
MAX_TEXT_BODY: Final = 4096
MAX_KEY_LENGTH: Final = 128
PAYLOAD_KEYS: Final = frozenset({"to", "type", "text", "template", "idempotency_key"})

THROUGHPUT_LIMIT: Final = 130429
PAIR_RATE_LIMIT: Final = 131056
MAX_BACKOFF: Final = 600.0
DEFAULT_TOKEN_WAIT: Final = 2.0
DEFAULT_INTENT_LEASE: Final = 60.0
DEFAULT_LEDGER_TTL: Final = 2 * 24 * 3600.0
LEDGER_PREFIX: Final = "coexist:send"


class InvalidMessageError(ValueError):
    """The payload is not a message coexist can send; the message says why."""


class SendStatus(enum.StrEnum):
    SENT = "sent"  # Meta accepted it now
    ALREADY_SENT = "already_sent"  # the idempotency key was sent before: nothing sent now
    UNKNOWN = "unknown"  # the key's earlier send may or may not have gone out: not re-sent
    REFUSED = "refused"  # not sent, and retrying cannot help


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What :func:`send` did. ``code`` is Meta's error code when Meta refused."""

    status: SendStatus
    wamid: str | None = None
    reason: str | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A validated payload: the Graph body to send and what to record."""

    to: str
    type: str
    content: dict[str, Any]
    idempotency_key: str | None = None

    @property
    def text_body(self) -> str | None:
        """The text of a text message (None for a template)."""
        body = self.content.get("body") if self.type == "text" else None
        return body if isinstance(body, str) else None

    def graph_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /{phone-number-id}/messages``."""
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": self.to,
            "type": self.type,
            self.type: self.content,
        }


def validate_payload(payload: Mapping[str, Any]) -> OutboundMessage:
    """Check a send payload and return it as an :class:`OutboundMessage`.

    ``{"to": "16505551234", "type": "text", "text": {"body": "...", "preview_url"?: bool},
    "idempotency_key"?: "..."}`` or ``{"to": ..., "type": "template", "template": {"name": ...,
    "language": {"code": "en_US"}, "components"?: [...]}}``. Raises
    :class:`InvalidMessageError`.
    """
    if not isinstance(payload, Mapping):
        raise InvalidMessageError("payload must be an object")
    unknown = set(payload) - PAYLOAD_KEYS
    if unknown:
        raise InvalidMessageError(f"unknown payload keys: {sorted(unknown)}")
    to = payload.get("to")
    if not isinstance(to, str) or not to.isdigit() or not 6 <= len(to) <= 15:
        raise InvalidMessageError("to must be the recipient's number as 6 to 15 digits, no +")
    kind = payload.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise InvalidMessageError(f"type must be one of {list(MESSAGE_TYPES)}, got {kind!r}")
    content = payload.get(kind)
    if not isinstance(content, Mapping):
        raise InvalidMessageError(f"a {kind} message needs a {kind!r} object")
    content = dict(content)
    if kind == "text":
        _check_text(content)
    else:
        _check_template(content)
    key = payload.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH):
        raise InvalidMessageError(
            f"idempotency_key must be a string of 1 to {MAX_KEY_LENGTH} characters"
        )
    return OutboundMessage(to=to, type=kind, content=content, idempotency_key=key)


def _check_text(content: dict[str, Any]) -> None:
    unknown = set(content) - {"body", "preview_url"}
    if unknown:
        raise InvalidMessageError(f"unknown text keys: {sorted(unknown)}")
    body = content.get("body")
    if not isinstance(body, str) or not body.strip():
        raise InvalidMessageError("text.body must be a non-empty string")
    if len(body) > MAX_TEXT_BODY:
        raise InvalidMessageError(f"text.body is over {MAX_TEXT_BODY} characters")
    if not isinstance(content.get("preview_url", False), bool):
        raise InvalidMessageError("text.preview_url must be true or false")


def _check_template(content: dict[str, Any]) -> None:
    unknown = set(content) - {"name", "language", "components"}
    if unknown:
        raise InvalidMessageError(f"unknown template keys: {sorted(unknown)}")
    name = content.get("name")
    if not isinstance(name, str) or not name or len(name) > 512:
        raise InvalidMessageError("template.name must be a non-empty string")
    language = content.get("language")
    code = language.get("code") if isinstance(language, Mapping) else None
    if not isinstance(code, str) or not code:
        raise InvalidMessageError("template.language.code is required (e.g. en_US)")
    if not isinstance(content.get("components", []), list):
        raise InvalidMessageError("template.components must be a list")


# -- the Graph call ------------------------------------------------------------------------


def send_message(
    graph: GraphClient, phone_number_id: str, token: str, body: Mapping[str, Any]
) -> str:
    """``POST /{phone-number-id}/messages``: send one message; return Meta's ``wamid``.

    Sent once, never retried inside the client: a lost answer may mean Meta delivered it.
    A 2xx without a message id raises :class:`MalformedResponseError` with ``maybe_applied``.
    """
    if not phone_number_id.isdigit():
        raise ValueError(f"not a phone number id: {phone_number_id[:32]!r}")
    return graph.send_message(phone_number_id, token, dict(body))


# -- the idempotency ledger ----------------------------------------------------------------


class ClaimState(enum.StrEnum):
    NEW = "new"  # the caller now holds the key and may send
    INTENT = "intent"  # someone claimed it and has not finished (or died)
    SENT = "sent"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Claim:
    """The ledger's answer: who holds the key, and what is known of its send."""

    state: ClaimState
    at: float
    owner: str | None = None
    wamid: str | None = None


class SendLedger(Protocol):
    """Remembers each idempotency key's send: intent, then wamid (or unknown)."""

    def claim(self, onboarding_id: int, key: str) -> Claim:
        """Record an intent if the key is free (``NEW``, with ``owner``), else what it holds."""
        ...

    def mark_sent(self, onboarding_id: int, key: str, wamid: str, at: float) -> None:
        """The key's message went out as ``wamid`` at ``at`` (Unix seconds)."""
        ...

    def mark_unknown(self, onboarding_id: int, key: str) -> None:
        """The key's send may have gone out: it is never sent again."""
        ...

    def release(self, onboarding_id: int, key: str, owner: str) -> None:
        """Nothing was sent: free the key, if ``owner`` still holds it."""
        ...


def _entry(state: ClaimState, at: float, **extra: str) -> str:
    return json.dumps({"state": state.value, "at": at, **extra}, separators=(",", ":"))


def _parse(raw: str | bytes) -> Claim:
    data = json.loads(raw)
    return Claim(
        state=ClaimState(data["state"]),
        at=float(data["at"]),
        owner=data.get("owner"),
        wamid=data.get("wamid"),
    )


_RELEASE_LUA: Final = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['owner'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisSendLedger:
    """The ledger in Redis: one string per ``(onboarding_id, key)``, JSON, expiring after
    ``ttl`` seconds (longer than any retry or redelivery of the task)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = LEDGER_PREFIX,
        ttl: float = DEFAULT_LEDGER_TTL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.ttl_ms = math.ceil(ttl * 1000)
        self._clock = clock or time.time
        self._release = client.register_script(_RELEASE_LUA)

    def key(self, onboarding_id: int, key: str) -> str:
        """The Redis key: the client's key is hashed (any length or character is safe)."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return f"{self.prefix}:{onboarding_id}:{digest}"

    def claim(self, onboarding_id: int, key: str) -> Claim:
        """``SET NX`` an intent; if the key is taken, return what it holds."""
        name = self.key(onboarding_id, key)
        for _ in range(3):
            owner = secrets.token_hex(8)
            at = self._clock()
            if self._client.set(
                name, _entry(ClaimState.INTENT, at, owner=owner), nx=True, px=self.ttl_ms
            ):
                return Claim(ClaimState.NEW, at, owner=owner)
            raw: Any = self._client.get(name)
            if raw is not None:
                return _parse(raw)
            # It expired between SET and GET: try again.
        raise RuntimeError(f"could not claim idempotency key {name}")

    def mark_sent(self, onboarding_id: int, key: str, wamid: str, at: float) -> None:
        """Overwrite the entry with the wamid."""
        entry = _entry(ClaimState.SENT, at, wamid=wamid)
        self._client.set(self.key(onboarding_id, key), entry, px=self.ttl_ms)

    def mark_unknown(self, onboarding_id: int, key: str) -> None:
        """Overwrite the entry with ``unknown``."""
        entry = _entry(ClaimState.UNKNOWN, self._clock())
        self._client.set(self.key(onboarding_id, key), entry, px=self.ttl_ms)

    def release(self, onboarding_id: int, key: str, owner: str) -> None:
        """Delete the entry if it is still ``owner``'s intent (compare and delete, atomic)."""
        self._release(keys=[self.key(onboarding_id, key)], args=[owner])


class LocalSendLedger:
    """The ledger in this process's memory (embedded demo, unit tests)."""

    def __init__(
        self, *, ttl: float = DEFAULT_LEDGER_TTL, clock: Callable[[], float] | None = None
    ) -> None:
        self.ttl = ttl
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, str], tuple[float, Claim]] = {}

    def _get(self, name: tuple[int, str]) -> Claim | None:
        found = self._entries.get(name)
        if found is None or found[0] <= self._clock():
            self._entries.pop(name, None)
            return None
        return found[1]

    def _put(self, name: tuple[int, str], claim: Claim) -> None:
        self._entries[name] = (self._clock() + self.ttl, claim)

    def claim(self, onboarding_id: int, key: str) -> Claim:
        """Record an intent if the key is free, else return what it holds."""
        name = (onboarding_id, key)
        with self._lock:
            existing = self._get(name)
            if existing is not None:
                return existing
            claim = Claim(ClaimState.NEW, self._clock(), owner=secrets.token_hex(8))
            self._put(name, Claim(ClaimState.INTENT, claim.at, owner=claim.owner))
            return claim

    def mark_sent(self, onboarding_id: int, key: str, wamid: str, at: float) -> None:
        """Remember the wamid."""
        with self._lock:
            self._put((onboarding_id, key), Claim(ClaimState.SENT, at, wamid=wamid))

    def mark_unknown(self, onboarding_id: int, key: str) -> None:
        """Remember that the send may have gone out."""
        with self._lock:
            self._put((onboarding_id, key), Claim(ClaimState.UNKNOWN, self._clock()))

    def release(self, onboarding_id: int, key: str, owner: str) -> None:
        """Forget the key if ``owner`` still holds it."""
        with self._lock:
            existing = self._get((onboarding_id, key))
            if existing is not None and existing.owner == owner:
                del self._entries[(onboarding_id, key)]


# -- wiring --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendGuard:
    """The throughput guard and the idempotency ledger a process sends with."""

    throttle: Throttle
    ledger: SendLedger


GUARD_KEY: Final = "send_guard"
"""Where :func:`guard_for` keeps the guard in ``Runtime.extras`` (tests put their own there)."""


def guard_for(runtime: Runtime) -> SendGuard:
    """The process's guard, built once per runtime: on the broker's Redis when the broker is
    Redis (shared by every worker), else in memory (embedded demo, eager tests)."""
    guard = runtime.extras.get(GUARD_KEY)
    if isinstance(guard, SendGuard):
        return guard
    settings = runtime.settings
    rate = float(settings.throughput_per_number)
    if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        client = redis.Redis.from_url(
            settings.broker_url, socket_connect_timeout=5, socket_timeout=5
        )
        guard = SendGuard(TokenBucket(client, default_rate=rate), RedisSendLedger(client))
    else:
        guard = SendGuard(LocalTokenBucket(default_rate=rate), LocalSendLedger())
    runtime.extras[GUARD_KEY] = guard
    return guard


# -- the domain step -----------------------------------------------------------------------


def send(
    session: Session,
    graph: GraphClient,
    throttle: Throttle,
    *,
    ledger: SendLedger,
    cipher: TokenCipher,
    onboarding_id: int,
    payload: Mapping[str, Any],
    attempt: int = 0,
    token_wait: float = DEFAULT_TOKEN_WAIT,
    intent_lease: float = DEFAULT_INTENT_LEASE,
) -> SendOutcome:
    """Send one message for an onboarding, throttled per number; record it; commit.

    Returns the outcome (see :class:`SendStatus`); raises :class:`RetryLater` when the send
    must wait (account reconnecting or paused, no token soon enough, rate limited, no answer
    that certainly did not apply). ``attempt`` (the task's retry count) grows the backoffs.
    """
    try:
        message = validate_payload(payload)
    except InvalidMessageError as exc:
        return _refused(f"invalid payload: {exc}")
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        log.warning("onboarding_missing", onboarding_id=onboarding_id, step="send")
        return _refused("no such onboarding")
    bind(
        onboarding_id=onboarding.id,
        waba_id=onboarding.waba_id,
        phone_number_id=onboarding.phone_number_id,
    )
    refusal = _refusal(onboarding, attempt)
    if refusal is not None:
        return _refused(refusal)
    phone_number_id = onboarding.phone_number_id
    if not phone_number_id or onboarding.token_ciphertext is None:
        return _refused("the onboarding has no phone number or no business token")
    token = cipher.decrypt(onboarding.token_ciphertext)
    register_secret(token)

    key = message.idempotency_key
    owner: str | None = None
    if key is not None:
        claim = ledger.claim(onboarding.id, key)
        if claim.state is ClaimState.NEW:
            owner = claim.owner
        else:
            return _settled_claim(session, ledger, onboarding, message, claim, intent_lease)

    def release() -> None:
        if key is not None and owner is not None:
            ledger.release(onboarding.id, key, owner)

    try:
        acquired = throttle.acquire(phone_number_id, token_wait)
    except BaseException:
        release()  # nothing was sent (Redis down, time limit while waiting)
        raise
    if not acquired:
        release()
        wait = _jitter(min(token_wait * 2 ** min(attempt, 5), 30.0))
        log.info("message_send_throttled", wait_seconds=round(wait, 2), attempt=attempt)
        raise RetryLater("send: no throughput token within the wait budget", wait)

    try:
        wamid = send_message(graph, phone_number_id, token, message.graph_body())
    except RateLimitedError as exc:
        release()
        wait = _rate_limit_backoff(exc, attempt)
        log.info("message_send_rate_limited", wait_seconds=round(wait, 2), **exc.log_fields())
        raise RetryLater(f"send: {exc.message}", wait) from exc
    except GraphError as exc:
        if exc.maybe_applied:
            return _ambiguous(session, ledger, onboarding, key, exc, attempt)
        release()
        if isinstance(exc, TransientGraphError):
            wait = _jitter(min(2.0 ** (attempt + 1), MAX_BACKOFF))
            log.info("message_send_deferred", wait_seconds=round(wait, 2), **exc.log_fields())
            raise RetryLater(f"send: {exc.message}", wait) from exc
        if isinstance(exc, TokenInvalidError):
            raise_alert(
                session,
                onboarding.id,
                "send_token_invalid",
                f"onboarding {onboarding.id}: Meta refused the business token (190); "
                "the business must redo Embedded Signup before anything can be sent",
                severity="error",
            )
            session.commit()
        reason = f"Meta refused the message: {exc.message}"
        return _refused(reason, code=exc.code, fbtrace_id=exc.fbtrace_id)

    sent_at = time.time()
    if key is not None:
        ledger.mark_sent(onboarding.id, key, wamid, sent_at)
    _record(session, onboarding, message, wamid, sent_at)
    session.commit()
    log.info("message_sent", wamid=wamid, message_type=message.type)
    return SendOutcome(SendStatus.SENT, wamid=wamid)


def _refusal(onboarding: Onboarding, attempt: int) -> str | None:
    """Why the onboarding cannot send (None if it can); ``RetryLater`` while it waits."""
    state = OnboardingState(onboarding.state)
    if state in WAITING_STATES or (state in SENDING_STATES and onboarding.paused_reason):
        why = onboarding.paused_reason if state in SENDING_STATES else state.value
        wait = _jitter(min(30.0 * 2**attempt, MAX_BACKOFF))
        log.info("message_send_paused", why=why, wait_seconds=round(wait, 2), attempt=attempt)
        raise RetryLater(f"send: sends are paused ({why})", wait)
    if state is S.DISCONNECTED:
        return (
            "the business disconnected its account from the Cloud API (disconnected): "
            "nothing can be sent until it onboards again"
        )
    if state not in SENDING_STATES:
        return f"the onboarding is {state.value}: its number cannot send yet or any more"
    return None


def _settled_claim(
    session: Session,
    ledger: SendLedger,
    onboarding: Onboarding,
    message: OutboundMessage,
    claim: Claim,
    intent_lease: float,
) -> SendOutcome:
    """The key was claimed before: report (and re-record) a send, or wait for its owner."""
    key = message.idempotency_key
    assert key is not None
    if claim.state is ClaimState.SENT and claim.wamid:
        _record(session, onboarding, message, claim.wamid, claim.at)
        session.commit()
        log.info("message_send_duplicate", wamid=claim.wamid)
        return SendOutcome(SendStatus.ALREADY_SENT, wamid=claim.wamid)
    age = time.time() - claim.at
    if claim.state is ClaimState.INTENT and age < intent_lease:
        wait = _jitter(max(1.0, intent_lease - age))
        log.info("message_send_in_flight_elsewhere", wait_seconds=round(wait, 2))
        raise RetryLater("send: another worker is sending this idempotency key", wait)
    if claim.state is ClaimState.INTENT:
        ledger.mark_unknown(onboarding.id, key)  # its worker died mid-call
    return _unknown(session, onboarding, "an earlier attempt with this key may have been sent")


def _ambiguous(
    session: Session,
    ledger: SendLedger,
    onboarding: Onboarding,
    key: str | None,
    exc: GraphError,
    attempt: int,
) -> SendOutcome:
    """The request left and its answer was lost: at most once with a key, else retry."""
    if key is None:
        wait = _jitter(min(2.0 ** (attempt + 1), MAX_BACKOFF))
        log.warning("message_send_may_duplicate", wait_seconds=round(wait, 2), **exc.log_fields())
        raise RetryLater(f"send: {exc.message} (may have been sent; retrying)", wait) from exc
    ledger.mark_unknown(onboarding.id, key)
    return _unknown(session, onboarding, f"the answer was lost: {exc.message}", code=exc.code)


def _unknown(
    session: Session, onboarding: Onboarding, reason: str, *, code: int | None = None
) -> SendOutcome:
    raise_alert(
        session,
        onboarding.id,
        "send_outcome_unknown",
        f"onboarding {onboarding.id}: a message may or may not have been sent ({reason}); "
        "it is not retried",
    )
    session.commit()
    log.warning("message_send_unknown", reason=reason)
    return SendOutcome(SendStatus.UNKNOWN, reason=reason, code=code)


def _refused(reason: str, *, code: int | None = None, **fields: Any) -> SendOutcome:
    log.warning("message_send_refused", reason=reason, graph_code=code, **fields)
    return SendOutcome(SendStatus.REFUSED, reason=reason, code=code)


def _record(
    session: Session, onboarding: Onboarding, message: OutboundMessage, wamid: str, at: float
) -> None:
    """Store the send as an outbound ``api`` message (idempotent on the wamid)."""
    row: dict[str, Any] = {
        "onboarding_id": onboarding.id,
        "wamid": wamid,
        "thread": message.to,
        "direction": Direction.OUTBOUND.value,
        "source": MessageSource.API.value,
        "sent_at": datetime.fromtimestamp(at, tz=UTC),
        "type": message.type,
        "text_body": message.text_body,
        "status": "accepted",
        "raw": None if message.type == "text" else {message.type: message.content},
        "media_state": MediaState.NONE.value,
        "media_id": None,
        "media_mime": None,
        "media_sha256": None,
        "media_id_at": None,
    }
    upsert_messages(session, [row])


def _rate_limit_backoff(exc: RateLimitedError, attempt: int) -> float:
    """Seconds before retrying a rate-limited send (meta-platform.md §6.2)."""
    step = min(attempt, 4)
    if exc.code == THROUGHPUT_LIMIT:
        wait = random.uniform(1.0, 5.0) * 2**step  # "retry in 1-5 s with jitter"
    elif exc.code == PAIR_RATE_LIMIT:
        wait = 6.0 * 4**step  # one message per 6 s per pair, 4^x backoff
    elif exc.retry_after:
        wait = exc.retry_after
    else:
        wait = 60.0 * 2**step
    return _jitter(min(wait, MAX_BACKOFF))


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(1.0, 1.25)
