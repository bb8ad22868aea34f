"""Outbound sends through the Cloud API: ``POST /{phone-number-id}/messages``, guarded.

:func:`send` sends one text or template message for an onboarding and records it as an
outbound message with source ``api`` (billed, unlike what the business sends from the app), so
``show --json`` counts it under ``messages_api``. On its way it:

1. validates the payload (:mod:`onboarding.outbound.payload`): ``to`` as digits and/or
   ``recipient`` as a business-scoped user id (BSUID), ``type`` ``text`` with a ``body`` or
   ``template`` with a ``name`` and ``language.code``; then addresses the person
   (:func:`address`): by phone number where known, else by BSUID;
2. checks the onboarding can send (:data:`SENDING_STATES`):

   * ``reconnecting`` (Meta offboarded the companion and is reconnecting it, docs/meta.md
     §5.4), paused (a ban, violation or deletion) or restricted for this kind of message
     (:func:`onboarding.pauses.stopped`: an ``ACCOUNT_RESTRICTION`` until its expiry) →
     :class:`RetryLater` with a growing wait, never past the restriction's expiry: the send
     waits for the account, bounded by the task's ``max_retries``;
   * ``disconnected`` → refused for good. The state is terminal: Meta removed the business
     (``PARTNER_REMOVED``), nothing can be sent until it onboards again, and waiting would only
     deliver a stale message hours later, if ever;
   * any other state (signup not finished, failed, ineligible) → refused;

3. claims the optional ``idempotency_key`` in the ledger (:mod:`onboarding.outbound.ledger`,
   below);
4. takes a token from the number's bucket (:mod:`onboarding.outbound.throttle`), waiting at most
   ``token_wait`` seconds, else :class:`RetryLater` (a worker is not held for long);
5. calls Graph once, never retried inside the client (a send is not idempotent):

   * ``130429`` (throughput) and ``131056`` (pair rate) and other rate limits → ``RetryLater``
     with backoff and jitter (nothing was sent);
   * other transient errors that certainly did not apply (no connection) → ``RetryLater``;
   * a permanent error (bad parameter, dead token, policy) → refused with Meta's code;
     ``131062`` (Meta sends this message to phone numbers only) is refused with a reason
     saying to send it by phone number;

6. on success records the row and commits, then applies the statuses Meta sent for it
   meanwhile (:mod:`onboarding.ingest.statuses`).

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
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from sqlalchemy.orm import Session

from config.logging import bind, register_secret
from models import Direction, MediaState, MessageSource, Onboarding, OnboardingState
from models.crypto import TokenCipher
from onboarding import metrics
from onboarding.feed.bodies import messages_stored
from onboarding.ingest import statuses
from onboarding.ingest.address import peer_address, sent_to
from onboarding.ingest.rows import Tally
from onboarding.meta.errors import (
    BsuidRecipientError,
    GraphError,
    RateLimitedError,
    TokenInvalidError,
    TransientGraphError,
)
from onboarding.meta.graph import GraphClient
from onboarding.outbound.ledger import Claim, ClaimState, SendLedger
from onboarding.outbound.payload import (
    InvalidMessageError,
    OutboundMessage,
    is_phone_digits,
    validate_payload,
)
from onboarding.outbound.throttle import Throttle
from onboarding.outcomes import RetryLater
from onboarding.pauses import stopped
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

THROUGHPUT_LIMIT: Final = 130429
PAIR_RATE_LIMIT: Final = 131056
MAX_BACKOFF: Final = 600.0
THREAD_LENGTH: Final = 64
"""Characters the ``messages.thread`` column holds (a BSUID may have up to 131)."""
DEFAULT_TOKEN_WAIT: Final = 2.0
DEFAULT_INTENT_LEASE: Final = 60.0


class SendStatus(enum.StrEnum):
    """What became of one :func:`send` (``RetryLater`` aside)."""

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
class _Sender:
    """An onboarding that may send now: its number, its token and the validated message."""

    onboarding: Onboarding
    phone_number_id: str
    token: str
    message: OutboundMessage


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


# -- the address ---------------------------------------------------------------------------


def address(session: Session, onboarding: Onboarding, message: OutboundMessage) -> OutboundMessage:
    """The message addressed by the person's phone number where coexist knows it, else by BSUID.

    Meta prefers the number when both are known (``to`` wins over ``recipient``): a payload
    naming only a BSUID is sent to the number its peer is known by, if any
    (docs/meta.md#business-scoped-user-ids).
    """
    if message.to is not None or message.recipient is None:
        return message
    number, _ = peer_address(session, onboarding.id, message.recipient)
    return message.with_phone(number if number is not None and is_phone_digits(number) else None)


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
    sender = _sender(session, cipher, onboarding_id, payload, attempt)
    if isinstance(sender, SendOutcome):
        return sender
    onboarding, message = sender.onboarding, sender.message
    key = message.idempotency_key
    owner: str | None = None
    if key is not None:
        claim = ledger.claim(onboarding.id, key)
        if claim.state is not ClaimState.NEW:
            return _settled_claim(session, ledger, onboarding, message, claim, intent_lease)
        owner = claim.owner

    def release() -> None:
        if key is not None and owner is not None:
            ledger.release(onboarding.id, key, owner)

    _take_token(throttle, sender.phone_number_id, token_wait, attempt, release)
    try:
        wamid = send_message(graph, sender.phone_number_id, sender.token, message.graph_body())
    except GraphError as exc:
        return _graph_failed(session, ledger, onboarding, key, exc, attempt, release)
    sent_at = time.time()
    if key is not None:
        ledger.mark_sent(
            onboarding.id, key, wamid, sent_at, address=(message.address_field, message.address)
        )
    _record(session, onboarding, message, wamid, sent_at)
    log.info("message_sent", wamid=wamid, message_type=message.type, address=message.address_field)
    return SendOutcome(SendStatus.SENT, wamid=wamid)


def _sender(
    session: Session,
    cipher: TokenCipher,
    onboarding_id: int,
    payload: Mapping[str, Any],
    attempt: int,
) -> _Sender | SendOutcome:
    """The validated message and the onboarding that sends it, or why it cannot (refused)."""
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
    if onboarding.erased_at is not None:
        return _refused(f"onboarding {onboarding.id} was erased")
    refusal = _refusal(onboarding, message.type, attempt)
    if refusal is not None:
        return _refused(refusal)
    phone_number_id = onboarding.phone_number_id
    if not phone_number_id or onboarding.token_ciphertext is None:
        return _refused("the onboarding has no phone number or no business token")
    token = cipher.decrypt(onboarding.token_ciphertext)
    register_secret(token)
    return _Sender(onboarding, phone_number_id, token, address(session, onboarding, message))


def _take_token(
    throttle: Throttle,
    phone_number_id: str,
    token_wait: float,
    attempt: int,
    release: Callable[[], None],
) -> None:
    """Take a token from the number's bucket, or release the key and raise ``RetryLater``."""
    try:
        acquired = throttle.acquire(phone_number_id, token_wait)
    except BaseException:
        release()  # nothing was sent (Redis down, time limit while waiting)
        raise
    if not acquired:
        release()
        metrics.GUARD_WAITS.labels("throughput").inc()
        wait = _jitter(min(token_wait * 2 ** min(attempt, 5), 30.0))
        log.info("message_send_throttled", wait_seconds=round(wait, 2), attempt=attempt)
        raise RetryLater("send: no throughput token within the wait budget", wait)


def _graph_failed(
    session: Session,
    ledger: SendLedger,
    onboarding: Onboarding,
    key: str | None,
    exc: GraphError,
    attempt: int,
    release: Callable[[], None],
) -> SendOutcome:
    """Meta did not take the message: wait (``RetryLater``), call it unknown, or refuse."""
    if isinstance(exc, RateLimitedError):
        release()
        metrics.GUARD_WAITS.labels(f"rate_limited_{exc.code}").inc()
        wait = _rate_limit_backoff(exc, attempt)
        log.info("message_send_rate_limited", wait_seconds=round(wait, 2), **exc.log_fields())
        raise RetryLater(f"send: {exc.message}", wait) from exc
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
    if isinstance(exc, BsuidRecipientError):
        reason = (
            f"Meta does not deliver this message to a business-scoped user id ({exc.code}): "
            "send it by phone number (to) instead"
        )
    return _refused(reason, code=exc.code, fbtrace_id=exc.fbtrace_id)


def _refusal(onboarding: Onboarding, message_type: str, attempt: int) -> str | None:
    """Why the onboarding cannot send (None if it can); ``RetryLater`` while it waits."""
    state = OnboardingState(onboarding.state)
    stop = stopped(onboarding, message_type) if state in SENDING_STATES else None
    if state in WAITING_STATES or stop is not None:
        why, until = stop if stop is not None else (state.value, None)
        wait = min(30.0 * 2**attempt, MAX_BACKOFF)
        if until is not None:
            wait = min(wait, max(until, 0.0) + 1.0)
        wait = _jitter(wait)
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
    """Store the send as an outbound ``api`` message (idempotent on the wamid) and commit;
    then apply the statuses Meta sent for it while it was committing (kept until now by
    :mod:`onboarding.ingest.statuses`).

    The thread is the address used; a BSUID is also kept whole in ``raw["recipient"]``, as
    it may be longer than the thread column holds.
    """
    raw: dict[str, Any] = {} if message.type == "text" else {message.type: message.content}
    if message.to is None:
        raw["recipient"] = message.address
    row: dict[str, Any] = {
        "onboarding_id": onboarding.id,
        "wamid": wamid,
        "thread": message.address[:THREAD_LENGTH],
        "direction": Direction.OUTBOUND.value,
        "source": MessageSource.API.value,
        "sent_at": datetime.fromtimestamp(at, tz=UTC),
        "type": message.type,
        "text_body": message.text_body,
        "status": "accepted",
        "raw": raw or None,
        "media_state": MediaState.NONE.value,
        "media_id": None,
        "media_mime": None,
        "media_sha256": None,
        "media_id_at": None,
        "peer_id": sent_to(session, onboarding.id, to=message.to, recipient=message.recipient),
    }
    new = upsert_messages(session, [row])
    messages_stored(session, onboarding, MessageSource.API.value, new)
    session.commit()
    statuses.apply_pending(session, onboarding, [wamid], Tally())


def _rate_limit_backoff(exc: RateLimitedError, attempt: int) -> float:
    """Seconds before retrying a rate-limited send (docs/meta.md#82-error-codes)."""
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
