"""The notifier: follow-ups go out on the channels the provider chose, each exactly once.

Channels (``COEX_NOTIFY_CHANNELS``, a comma list, default ``log``):

* ``log`` — one structured event, ``follow_up_notification``, with the facts.
* ``webhook`` — ``POST`` of signed JSON to the provider's URL: ``X-Coexist-Signature:
  sha256=<hex HMAC-SHA256 of the raw body, keyed with COEX_NOTIFY_WEBHOOK_SECRET>`` and
  ``X-Coexist-Delivery: <idempotency key>``. Connection errors, 5xx and 429 get a few quick
  retries; any other 4xx is permanent.
* ``whatsapp_template`` — a template message through the Cloud API, from the provider's own
  number to the business's number (``POST /{phone-number-id}/messages``). Business-facing
  follow-ups only: operator alerts never go to the business.

Every notification is recorded before it is sent, one :class:`~models.Notification` row per
(follow-up, channel), committed before the channel is called::

    (none) ──record──▶ sending ──ok──────────────▶ sent        (never sent again)
                          │ ────permanent / out of attempts──▶ failed
                          │ ────transient, surely not sent──▶ pending ──▶ sending …
                          │ ────transient, maybe sent───────▶ unknown ──▶ (by channel, below)
                          └──── worker died: stays sending ─▶ (by channel, below)

A row found in ``sending`` or ``unknown`` by a later run is an attempt whose outcome was lost.
What happens next depends on what a duplicate costs on that channel:

* ``log``: sent again; a second log line harms nobody.
* ``webhook``: sent again with the *same* ``X-Coexist-Delivery`` key (and body ``id``), so the
  provider drops the copy it already has. Receivers must deduplicate on that key.
* ``whatsapp_template``: never sent again blindly. The row becomes ``unknown``, the follow-up
  ``failed``, and an operator alert (``notification_unknown``) says to check the business's chat
  and settle it with :func:`resolve`: a duplicated WhatsApp message to a business is worse than
  a missed reminder.

Taking a row to send it again is a compare-and-set on (status, attempts): of two workers racing
on one row, one sends and the other reports ``in_flight``. A row has no lease, so a run cannot
tell a live attempt from a dead one; the task's ``acks_late`` redelivery only comes after the
broker's visibility timeout, long after any live attempt has ended.

Retries are bounded twice, one layer per concern: quick retries inside the webhook channel
(tenacity), and :class:`Notifier`'s ``max_attempts`` across runs, after which the row is
``failed`` with the reason. A transient error with attempts left raises
:class:`~onboarding.outcomes.RetryLater` once the state is committed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import httpx
import structlog
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from config.logging import register_secret
from models import Alert, FollowUp, FollowUpKind, FollowUpStatus, Notification, Onboarding, utcnow
from onboarding.meta.errors import (
    GraphError,
    MalformedResponseError,
    RateLimitedError,
    TransientGraphError,
)
from onboarding.meta.graph import GraphClient
from onboarding.meta.signatures import sign
from onboarding.outcomes import RetryLater
from onboarding.states import raise_alert
from onboarding.store import insert_for

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Coexist-Signature"
DELIVERY_HEADER = "X-Coexist-Delivery"
#: Meta caps a template's body at 1,024 characters; a parameter is kept well inside it.
MAX_TEMPLATE_PARAMETER = 900
#: Follow-ups meant for the business itself (operator alerts are not).
BUSINESS_KINDS = frozenset({FollowUpKind.COMPANION_RELINK.value, FollowUpKind.APP_OPEN.value})
INACTIVITY_DISCONNECT_DAYS = 14
SUPPORTED_COMPANIONS = (
    "WhatsApp Web",
    "WhatsApp for Mac",
    "WhatsApp on a second phone",
    "WhatsApp on iPad",
)
UNSUPPORTED_COMPANIONS = ("WhatsApp for Windows", "WearOS")
CHANNEL_NAMES = ("log", "webhook", "whatsapp_template")


class NotificationStatus(StrEnum):
    """``Notification.status`` values (see the module docstring for the transitions)."""

    PENDING = "pending"  # recorded; the last attempt surely did not reach the channel
    SENDING = "sending"  # an attempt is in flight, or its worker died
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the attempt's answer was lost: it may have been delivered


N = NotificationStatus


# -- errors and results ------------------------------------------------------------------


class NotifyError(Exception):
    """A channel could not deliver a message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientNotifyError(NotifyError):
    """Worth trying again later. ``maybe_sent``: the message may have been delivered anyway."""

    def __init__(self, message: str, *, maybe_sent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after


class PermanentNotifyError(NotifyError):
    """Trying again cannot help: a URL, a template, a setting or the recipient must change."""


@dataclass(frozen=True)
class Delivery:
    """A channel's proof of delivery: an HTTP status, Meta's message id, ``logged``."""

    reference: str


class Result(StrEnum):
    """What one channel did with one follow-up in one :meth:`Notifier.deliver` run."""

    SENT = "sent"  # delivered now
    ALREADY_SENT = "already_sent"  # delivered by an earlier run: nothing sent
    RETRY = "retry"  # transient error, attempts left: RetryLater is raised
    FAILED = "failed"  # permanent error or attempts exhausted
    UNKNOWN = "unknown"  # may have been delivered; not resent; an operator must check
    IN_FLIGHT = "in_flight"  # another worker claimed it a moment ago


@dataclass(frozen=True)
class Outcome:
    """One channel's result for one follow-up."""

    channel: str
    result: Result
    attempts: int
    reference: str | None = None
    error: str | None = None
    #: Whether the channel was called in this run.
    attempted: bool = False
    retry_after: float | None = None

    @property
    def needs_attention(self) -> bool:
        """An operator must look: the notification failed or its outcome is unknown."""
        return self.result in (Result.FAILED, Result.UNKNOWN)


# -- what a follow-up says ---------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A follow-up rendered once for every channel."""

    follow_up_id: int
    kind: str
    subject: str
    text: str
    facts: dict[str, Any]
    #: The business's number, digits only (the WhatsApp recipient); None when unknown.
    recipient: str | None
    #: The idempotency key of this (follow-up, channel) notification, set by the notifier.
    key: str = ""


def render(
    follow_up: FollowUp,
    onboarding: Onboarding,
    *,
    alert: Alert | None = None,
    now: datetime | None = None,
) -> Message:
    """The subject, text and facts of ``follow_up``.

    ``content["subject"]`` and ``content["text"]`` win when the scheduler wrote them; other
    content keys join the facts.
    """
    now = now or utcnow()
    content = dict(follow_up.content or {})
    facts: dict[str, Any] = {
        k: v for k, v in content.items() if k not in ("subject", "text", "facts")
    }
    if isinstance(content.get("facts"), Mapping):
        facts.update(content["facts"])
    facts.update(
        {
            "follow_up_id": follow_up.id,
            "kind": follow_up.kind,
            "series": follow_up.series,
            "step": follow_up.step,
            "due_at": follow_up.due_at.isoformat(),
            "onboarding_id": onboarding.id,
            "waba_id": onboarding.waba_id,
            "phone_number_id": onboarding.phone_number_id,
            "display_phone_number": onboarding.display_phone_number,
            "verified_name": onboarding.verified_name,
        }
    )
    number = onboarding.display_phone_number or "your number"
    if follow_up.kind == FollowUpKind.COMPANION_RELINK:
        subject, text = _relink_text(number, content)
    elif follow_up.kind == FollowUpKind.APP_OPEN:
        days = _days_without_activity(onboarding, content, now)
        left = max(0, INACTIVITY_DISCONNECT_DAYS - days)
        facts.update(days_without_activity=days, days_until_disconnect=left)
        subject, text = _heartbeat_text(number, days, left)
    elif follow_up.kind == FollowUpKind.ALERT:
        alert_kind = str(content.get("alert_kind") or (alert.kind if alert else "alert"))
        message = str(content.get("message") or (alert.message if alert else "") or alert_kind)
        severity = str(content.get("severity") or (alert.severity if alert else "warning"))
        facts.update(alert_id=follow_up.series, alert_kind=alert_kind, severity=severity)
        subject = f"coexist {severity}: {alert_kind} (onboarding {onboarding.id}, {number})"
        text = message
    else:
        subject, text = f"coexist follow-up: {follow_up.kind}", str(content)
    digits = re.sub(r"\D", "", onboarding.display_phone_number or "")
    return Message(
        follow_up_id=follow_up.id,
        kind=follow_up.kind,
        subject=str(content.get("subject") or subject),
        text=str(content.get("text") or text),
        facts=facts,
        recipient=digits or None,
    )


def _relink_text(number: str, content: Mapping[str, Any]) -> tuple[str, str]:
    supported = _names(content.get("supported"), SUPPORTED_COMPANIONS)
    unsupported = _names(content.get("unsupported"), UNSUPPORTED_COMPANIONS)
    why = (
        "was reconnected to the WhatsApp Business Platform"
        if content.get("reason") == "reconnected"
        else "is now connected to the WhatsApp Business Platform"
    )
    text = (
        f"Your WhatsApp Business number {number} {why}. Connecting it logged out your linked "
        "devices (WhatsApp Web and the desktop apps). "
        "To link a device again, open the WhatsApp Business app on your phone, tap "
        "Settings > Linked devices > Link a device, and scan the QR code the device shows. "
        f"These work alongside the platform: {', '.join(supported)}. "
        f"These do not: {', '.join(unsupported)} (chats there show placeholders instead of "
        "messages). You can link up to 4 devices."
    )
    return "Link your WhatsApp devices again", text


def _heartbeat_text(number: str, days: int, left: int) -> tuple[str, str]:
    if left > 0:
        risk = (
            f"Meta disconnects the number from the WhatsApp Business Platform after about "
            f"{INACTIVITY_DISCONNECT_DAYS} days without the app being opened: about {left} "
            f"day{'s' if left != 1 else ''} left."
        )
    else:
        risk = (
            f"Meta disconnects the number from the WhatsApp Business Platform after about "
            f"{INACTIVITY_DISCONNECT_DAYS} days without the app being opened: it may be "
            "disconnected at any moment."
        )
    text = (
        f"The WhatsApp Business app for {number} has not been opened for {days} "
        f"day{'s' if days != 1 else ''}. {risk} Open the WhatsApp Business app on your phone "
        "now, and keep opening it regularly, to stay connected."
    )
    return "Open the WhatsApp Business app to stay connected", text


def _names(value: Any, default: Sequence[str]) -> list[str]:
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return list(default)


def _days_without_activity(
    onboarding: Onboarding, content: Mapping[str, Any], now: datetime
) -> int:
    basis = onboarding.last_app_activity_at
    if basis is None and isinstance(content.get("last_activity_at"), str):
        try:
            basis = datetime.fromisoformat(content["last_activity_at"])
        except ValueError:
            basis = None
    if basis is not None and basis.tzinfo is not None:
        return max(0, (now - basis) // timedelta(days=1))
    days = content.get("days_without_activity")
    return int(days) if isinstance(days, int | float) else 0


# -- channels ----------------------------------------------------------------------------


class Channel(Protocol):
    """Where a message goes. ``send`` raises :class:`NotifyError` subclasses only."""

    #: The ``Notification.channel`` value.
    name: str
    #: Whether an attempt whose outcome was lost may be sent again (see the module docstring).
    resend_when_unknown: bool

    def carries(self, kind: str) -> bool:
        """Whether this channel sends follow-ups of ``kind``."""
        ...

    def send(self, message: Message) -> Delivery:
        """Deliver ``message`` once; raise TransientNotifyError or PermanentNotifyError."""
        ...

    def close(self) -> None:
        """Release what the channel holds (HTTP connections)."""
        ...


class LogChannel:
    """One structured ``follow_up_notification`` event per message (the default channel)."""

    name: str = "log"
    resend_when_unknown: bool = True  # a second log line harms nobody

    def carries(self, kind: str) -> bool:
        """Every kind."""
        return True

    def send(self, message: Message) -> Delivery:
        """Write the event; facts only, never a token."""
        fields = {
            **message.facts,
            "kind": message.kind,
            "subject": message.subject,
            "text": message.text,
            "delivery": message.key,
        }
        log.info("follow_up_notification", **fields)
        return Delivery("logged")

    def close(self) -> None:
        """Nothing to release."""


class WebhookChannel:
    """``POST`` signed JSON to the provider's URL, with bounded quick retries.

    Body: ``{"id", "kind", "subject", "text", "facts", "sent_at"}``. Headers:
    ``X-Coexist-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>`` and
    ``X-Coexist-Delivery: <id>``; ``id`` is the same on every attempt of a notification, so
    the receiver can drop copies. Connection errors, 5xx and 429 are retried up to
    ``max_attempts`` times with jittered exponential backoff; other 4xx are permanent.
    """

    name: str = "webhook"
    #: The same idempotency key goes out again; the provider deduplicates on it.
    resend_when_unknown: bool = True

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_wait: float = 5.0,
        http: httpx.Client | None = None,
        kinds: Iterable[str] | None = None,
    ) -> None:
        parsed = httpx.URL(url) if url else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"notify webhook URL must be an http(s) URL, got {url!r}")
        if not secret:
            raise ValueError("notify webhook needs a signing secret")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url = url
        self._secret = secret
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.kinds = frozenset(kinds) if kinds is not None else None
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "coexist/0.1"}
        )
        register_secret(secret)

    def carries(self, kind: str) -> bool:
        """Every kind unless ``kinds`` was given."""
        return self.kinds is None or kind in self.kinds

    def body(self, message: Message) -> bytes:
        """The exact bytes that are signed and sent."""
        payload = {
            "id": message.key,
            "kind": message.kind,
            "subject": message.subject,
            "text": message.text,
            "facts": message.facts,
            "sent_at": utcnow().isoformat(),
        }
        return json.dumps(payload, separators=(",", ":"), default=str).encode()

    def send(self, message: Message) -> Delivery:
        """POST the message, retrying connection errors, 5xx and 429 a bounded number of times."""
        body = self.body(message)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self._secret),
            DELIVERY_HEADER: message.key,
        }
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=self.backoff, max=self.max_wait),
            retry=retry_if_exception(self._quick_retryable),
            before_sleep=_log_webhook_retry,
            reraise=True,
        )
        delivery: Delivery = retrying(self._post, body, headers)
        return delivery

    def _quick_retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, TransientNotifyError):
            return False
        # A long Retry-After is Celery's job, not a reason to hold the worker.
        return exc.retry_after is None or exc.retry_after <= self.max_wait

    def _post(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        try:
            response = self._http.post(self.url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientNotifyError(
                f"could not reach the notify webhook: {type(exc).__name__}", maybe_sent=False
            ) from None
        except httpx.TransportError as exc:
            raise TransientNotifyError(
                f"no answer from the notify webhook: {type(exc).__name__}", maybe_sent=True
            ) from None
        status = response.status_code
        if response.is_success:
            return Delivery(f"HTTP {status}")
        detail = f"notify webhook answered HTTP {status}: {response.text[:200]!r}"
        if status == 429:
            raise TransientNotifyError(
                detail, maybe_sent=False, retry_after=_retry_after(response.headers)
            )
        if status >= 500:
            raise TransientNotifyError(detail, maybe_sent=True)
        raise PermanentNotifyError(detail)

    def close(self) -> None:
        """Close the HTTP client if this channel made it."""
        if self._owns_http:
            self._http.close()


def _retry_after(headers: httpx.Headers) -> float | None:
    raw = headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None


def _log_webhook_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "notify_webhook_retrying",
        attempt=state.attempt_number,
        sleep_seconds=round(state.upcoming_sleep, 3),
        error=str(exc),
    )


class WhatsAppTemplateChannel:
    """A template message from the provider's own number to the business's number.

    ``POST /{phone-number-id}/messages`` with the provider's system user token, body
    ``{"messaging_product": "whatsapp", "to": <digits>, "type": "template", "template":
    {"name", "language": {"code"}, "components": [{"type": "body", "parameters": [...]}]}}``.
    Each body parameter is a field of the message (``text``, ``subject``) or a fact's name,
    flattened to one line (Meta refuses newlines and tabs in parameters).

    Sent with ``retry=False``: a send is not idempotent (Meta has no idempotency key for
    messages), so a quick retry after a lost answer could deliver the message twice.
    """

    name: str = "whatsapp_template"
    #: A lost answer is never resent blindly: an operator checks the chat (module docstring).
    resend_when_unknown: bool = False

    def __init__(
        self,
        graph: GraphClient,
        *,
        phone_number_id: str,
        token: str,
        template_name: str,
        language: str = "en",
        parameters: Sequence[str] = ("text",),
        kinds: Iterable[str] = BUSINESS_KINDS,
    ) -> None:
        missing = [
            name
            for name, value in (
                ("phone_number_id", phone_number_id),
                ("token", token),
                ("template_name", template_name),
                ("language", language),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"whatsapp_template channel needs {', '.join(missing)}")
        self.graph = graph
        self.phone_number_id = phone_number_id
        self._token = token
        self.template_name = template_name
        self.language = language
        self.parameters = tuple(parameters)
        self.kinds = frozenset(kinds)
        register_secret(token)

    def carries(self, kind: str) -> bool:
        """Business-facing kinds by default: operator alerts never go to the business."""
        return kind in self.kinds

    def request_body(self, message: Message) -> dict[str, Any]:
        """The ``/messages`` JSON body for ``message``."""
        if not message.recipient:
            raise PermanentNotifyError(
                f"onboarding {message.facts.get('onboarding_id')} has no display phone number "
                "to send the template to"
            )
        template: dict[str, Any] = {"name": self.template_name, "language": {"code": self.language}}
        if self.parameters:
            template["components"] = [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": self._parameter(message, p)}
                        for p in self.parameters
                    ],
                }
            ]
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.recipient,
            "type": "template",
            "template": template,
        }

    @staticmethod
    def _parameter(message: Message, source: str) -> str:
        if source in ("text", "subject", "kind"):
            value: Any = getattr(message, source)
        else:
            value = message.facts.get(source, "")
        flat = " ".join(str(value if value is not None else "").split())
        if len(flat) > MAX_TEMPLATE_PARAMETER:
            flat = flat[: MAX_TEMPLATE_PARAMETER - 1].rstrip() + "…"
        return flat or "-"

    def send(self, message: Message) -> Delivery:
        """Send the template once; Meta's message id (``wamid``) is the reference."""
        body = self.request_body(message)
        try:
            answer = self.graph._request(
                "POST",
                f"{self.phone_number_id}/messages",
                token=self._token,
                json_body=body,
                retry=False,
            )
        except MalformedResponseError as exc:
            # A 2xx Meta may have acted on: not provably unsent.
            raise TransientNotifyError(str(exc), maybe_sent=True) from exc
        except TransientGraphError as exc:
            retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
            raise TransientNotifyError(
                str(exc), maybe_sent=exc.maybe_applied, retry_after=retry_after
            ) from exc
        except GraphError as exc:
            raise PermanentNotifyError(str(exc)) from exc
        messages = answer.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            raise TransientNotifyError(
                "Meta accepted the template send without a message id", maybe_sent=True
            )
        return Delivery(wamid)

    def close(self) -> None:
        """The Graph client belongs to the caller."""


# -- the notifier ------------------------------------------------------------------------


class Notifier:
    """Delivers follow-ups on its channels, recording each notification before it is sent."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        max_attempts: int = 5,
        retry_countdown: float = 60.0,
        max_countdown: float = 3600.0,
    ) -> None:
        names = [c.name for c in channels]
        if not names:
            raise ValueError("a notifier needs at least one channel")
        if len(set(names)) != len(names):
            raise ValueError(f"notify channels must be distinct, got {names}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.channels = list(channels)
        self.max_attempts = max_attempts
        self.retry_countdown = retry_countdown
        self.max_countdown = max_countdown

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        graph: GraphClient | None = None,
        *,
        http: httpx.Client | None = None,
    ) -> Notifier:
        """The channels ``COEX_NOTIFY_CHANNELS`` names; ValueError if one lacks its settings.

        Reads every ``notify_*`` field with a default, so it works before Settings has them.
        """
        raw = str(_setting(settings, "notify_channels", "log"))
        names = list(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
        if not names:
            raise ValueError("COEX_NOTIFY_CHANNELS is empty; name at least one channel (log)")
        unknown = [n for n in names if n not in CHANNEL_NAMES]
        if unknown:
            raise ValueError(
                f"unknown notify channel(s) {', '.join(unknown)} in COEX_NOTIFY_CHANNELS; "
                f"known: {', '.join(CHANNEL_NAMES)}"
            )
        channels: list[Channel] = []
        for name in names:
            if name == "log":
                channels.append(LogChannel())
            elif name == "webhook":
                channels.append(_webhook_from_settings(settings, http))
            else:
                channels.append(_whatsapp_from_settings(settings, graph))
        return cls(channels, max_attempts=int(_setting(settings, "notify_max_attempts", 5)))

    def close(self) -> None:
        """Close every channel."""
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- delivery ------------------------------------------------------------------------

    def deliver(self, session: Session, follow_up: FollowUp | int) -> list[Outcome]:
        """Send ``follow_up`` on every channel that carries its kind, once each. Commits.

        Returns one :class:`Outcome` per channel. Raises :class:`RetryLater` (state already
        committed) when a channel hit a transient error and has attempts left.
        """
        row = self._load(session, follow_up)
        if row is None:
            return []
        with structlog.contextvars.bound_contextvars(
            onboarding_id=row.onboarding_id, follow_up_id=row.id
        ):
            return self._deliver(session, row)

    def _deliver(self, session: Session, row: FollowUp) -> list[Outcome]:
        if row.status in (FollowUpStatus.CANCELLED, FollowUpStatus.ACKNOWLEDGED):
            log.info("follow_up_not_sent", status=row.status, kind=row.kind)
            return []
        if row.status == FollowUpStatus.SENT:
            # Sent on every channel it had; a channel configured since does not resend it.
            done = session.scalars(
                select(Notification).where(Notification.follow_up_id == row.id)
            ).all()
            log.info("follow_up_already_sent", channels=[n.channel for n in done])
            return [Outcome(n.channel, Result.ALREADY_SENT, n.attempts, n.reference) for n in done]
        channels = [c for c in self.channels if c.carries(row.kind)]
        if not channels:
            row.status = FollowUpStatus.CANCELLED.value
            row.last_error = f"no configured notify channel carries {row.kind} follow-ups"
            session.commit()
            log.warning("follow_up_not_sent", kind=row.kind, reason=row.last_error)
            return []
        onboarding = session.get_one(Onboarding, row.onboarding_id)
        alert = session.get(Alert, row.series) if row.kind == FollowUpKind.ALERT else None
        message = render(row, onboarding, alert=alert)
        outcomes = [self._deliver_one(session, row, message, channel) for channel in channels]
        self._settle(session, row, [c.name for c in channels], outcomes)
        retry = [o for o in outcomes if o.result is Result.RETRY]
        if retry:
            raise RetryLater(
                "; ".join(f"{o.channel}: {o.error}" for o in retry),
                self._countdown(retry),
            )
        return outcomes

    @staticmethod
    def _load(session: Session, follow_up: FollowUp | int) -> FollowUp | None:
        if isinstance(follow_up, FollowUp):
            session.refresh(follow_up)
            return follow_up
        row = session.get(FollowUp, follow_up, populate_existing=True)
        if row is None:
            log.warning("follow_up_missing", follow_up_id=follow_up)
        return row

    def _deliver_one(
        self, session: Session, follow_up: FollowUp, message: Message, channel: Channel
    ) -> Outcome:
        row, fresh = _record(session, follow_up.id, channel.name)
        if not fresh:
            decided = self._claim(session, row, channel)
            if decided is not None:
                return decided
        message = replace(message, key=f"coexist-notification-{row.id}")
        try:
            delivery = channel.send(message)
        except TransientNotifyError as exc:
            return self._transient(session, row, channel, exc)
        except PermanentNotifyError as exc:
            return _finish(session, row, N.FAILED, exc.message, attempted=True)
        row.status = N.SENT.value
        row.sent_at = utcnow()
        row.reference = delivery.reference[:256]
        row.last_error = None
        session.commit()
        log.info(
            "notification_sent",
            channel=channel.name,
            reference=row.reference,
            attempts=row.attempts,
        )
        return Outcome(channel.name, Result.SENT, row.attempts, row.reference, attempted=True)

    def _claim(self, session: Session, row: Notification, channel: Channel) -> Outcome | None:
        """Decide what to do with an existing row; None when this run claimed it to send."""
        status = N(row.status)
        if status is N.SENT:
            log.info("notification_already_sent", channel=channel.name, reference=row.reference)
            return Outcome(channel.name, Result.ALREADY_SENT, row.attempts, row.reference)
        if status is N.FAILED:
            return Outcome(channel.name, Result.FAILED, row.attempts, error=row.last_error)
        lost = status in (N.SENDING, N.UNKNOWN) and row.attempts > 0
        if lost and not channel.resend_when_unknown:
            reason = row.last_error if status is N.UNKNOWN else None
            return _finish(
                session,
                row,
                N.UNKNOWN,
                reason
                or "an earlier attempt was interrupted before its outcome was recorded; not "
                "resent, since the message may have been delivered",
            )
        if row.attempts >= self.max_attempts:
            return _finish(
                session,
                row,
                N.FAILED,
                f"gave up after {row.attempts} attempts: {row.last_error or 'outcome unknown'}",
            )
        claimed = session.execute(
            update(Notification)
            .where(
                Notification.id == row.id,
                Notification.status == row.status,
                Notification.attempts == row.attempts,
            )
            .values(status=N.SENDING.value, attempts=row.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        session.refresh(row)
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return Outcome(channel.name, Result.IN_FLIGHT, row.attempts)
        if lost:
            log.warning(
                "notification_resending",
                channel=channel.name,
                attempts=row.attempts,
                reason="an earlier attempt's outcome was lost; same idempotency key",
            )
        return None

    def _transient(
        self, session: Session, row: Notification, channel: Channel, exc: TransientNotifyError
    ) -> Outcome:
        if exc.maybe_sent and not channel.resend_when_unknown:
            return _finish(
                session,
                row,
                N.UNKNOWN,
                f"the message may have been delivered ({exc.message}); not resent",
                attempted=True,
            )
        if row.attempts >= self.max_attempts:
            return _finish(
                session,
                row,
                N.FAILED,
                f"gave up after {row.attempts} attempts: {exc.message}",
                attempted=True,
            )
        row.status = (N.UNKNOWN if exc.maybe_sent else N.PENDING).value
        row.last_error = exc.message
        session.commit()
        log.warning(
            "notification_retry",
            channel=channel.name,
            attempts=row.attempts,
            maybe_sent=exc.maybe_sent,
            error=exc.message,
        )
        return Outcome(
            channel.name,
            Result.RETRY,
            row.attempts,
            error=exc.message,
            attempted=True,
            retry_after=exc.retry_after,
        )

    def _settle(
        self, session: Session, follow_up: FollowUp, channels: list[str], outcomes: list[Outcome]
    ) -> None:
        """Fold the channels' rows into the follow-up's status, counts and error. Commits."""
        rows = session.scalars(
            select(Notification)
            .where(Notification.follow_up_id == follow_up.id, Notification.channel.in_(channels))
            .execution_options(populate_existing=True)
        ).all()
        sent = [r for r in rows if r.status == N.SENT]
        if any(o.attempted for o in outcomes):
            follow_up.attempts += 1
        follow_up.sent_count = len(sent)
        if sent and follow_up.sent_at is None:
            follow_up.sent_at = min(r.sent_at or utcnow() for r in sent)
        errors = [
            f"{o.channel}: {o.error}"
            for o in outcomes
            if o.error and o.result not in (Result.SENT, Result.ALREADY_SENT)
        ]
        open_ = (FollowUpStatus.SCHEDULED, FollowUpStatus.FAILED)
        pending = any(o.result in (Result.RETRY, Result.IN_FLIGHT) for o in outcomes)
        if follow_up.status in open_:
            if len(sent) == len(channels):
                follow_up.status = FollowUpStatus.SENT.value
            elif not pending and any(o.needs_attention for o in outcomes):
                follow_up.status = FollowUpStatus.FAILED.value
        follow_up.last_error = "; ".join(errors)[:4000] or None
        if follow_up.kind != FollowUpKind.ALERT:
            # Alerts about alerts would loop: an alert follow-up's own failure is only logged.
            for outcome in outcomes:
                if outcome.needs_attention:
                    raise_alert(
                        session,
                        follow_up.onboarding_id,
                        f"notification_{outcome.result.value}",
                        f"{follow_up.kind} follow-up {follow_up.id} on {outcome.channel}: "
                        f"{outcome.error}",
                        severity="error" if outcome.result is Result.UNKNOWN else "warning",
                    )
        session.commit()

    def _countdown(self, retry: list[Outcome]) -> float:
        hinted = [o.retry_after for o in retry if o.retry_after is not None]
        attempts = max(o.attempts for o in retry)
        backoff = self.retry_countdown * 2.0 ** max(0, attempts - 1)
        return float(min(self.max_countdown, max([backoff, *hinted])))


def _record(session: Session, follow_up_id: int, channel: str) -> tuple[Notification, bool]:
    """Get or create the (follow-up, channel) row; a new row is ``sending``, attempt 1.

    Committed before anything is sent: a redelivered job finds it and does not notify twice.
    True when this call created it.
    """
    now = utcnow()
    created = session.execute(
        insert_for(session, Notification.__table__)
        .values(
            follow_up_id=follow_up_id,
            channel=channel,
            status=N.SENDING.value,
            attempts=1,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["follow_up_id", "channel"])
        .returning(Notification.id)
    ).scalar_one_or_none()
    session.commit()
    row = session.scalars(
        select(Notification)
        .where(Notification.follow_up_id == follow_up_id, Notification.channel == channel)
        .execution_options(populate_existing=True)
    ).one()
    return row, created is not None


def _finish(
    session: Session,
    row: Notification,
    status: NotificationStatus,
    error: str,
    *,
    attempted: bool = False,
) -> Outcome:
    """Park ``row`` as ``failed`` or ``unknown`` with the reason (committed) and say so."""
    row.status = status.value
    row.last_error = error
    session.commit()
    event = "notification_unknown" if status is N.UNKNOWN else "notification_failed"
    log.error(event, channel=row.channel, attempts=row.attempts, error=error)
    result = Result.UNKNOWN if status is N.UNKNOWN else Result.FAILED
    return Outcome(row.channel, result, row.attempts, error=error, attempted=attempted)


def resolve(session: Session, follow_up_id: int, channel: str, *, delivered: bool) -> Notification:
    """An operator settles a notification that is ``unknown`` or ``failed``. Commits.

    ``delivered=True``: the business did get it (seen in its chat); it is ``sent`` and never
    sent again. ``delivered=False``: it did not; it goes back to ``pending`` with its attempts
    reset, so the next run sends it. Either way a ``failed`` follow-up is scheduled again, so
    the next run settles it.
    """
    row = session.scalars(
        select(Notification).where(
            Notification.follow_up_id == follow_up_id, Notification.channel == channel
        )
    ).one_or_none()
    if row is None:
        raise ValueError(f"follow-up {follow_up_id} has no {channel} notification")
    if row.status not in (N.UNKNOWN, N.FAILED):
        raise ValueError(
            f"follow-up {follow_up_id} on {channel} is {row.status}; only unknown or failed "
            "notifications are resolved by hand"
        )
    if delivered:
        row.status = N.SENT.value
        row.sent_at = utcnow()
        row.reference = "confirmed by an operator"
    else:
        row.status = N.PENDING.value
        row.attempts = 0
    follow_up = session.get_one(FollowUp, follow_up_id)
    if follow_up.status == FollowUpStatus.FAILED:
        follow_up.status = FollowUpStatus.SCHEDULED.value
    session.commit()
    log.info(
        "notification_resolved", follow_up_id=follow_up_id, channel=channel, delivered=delivered
    )
    return row


# -- settings ----------------------------------------------------------------------------


def _setting(settings: Any, name: str, default: Any) -> Any:
    value = getattr(settings, name, default)
    return default if value is None else value


def _secret(settings: Any, name: str) -> str:
    value = _setting(settings, name, "")
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _refuse_missing(channel: str, missing: list[str]) -> None:
    if missing:
        names = ", ".join(f"COEX_{m.upper()}" for m in missing)
        raise ValueError(f"notify channel {channel!r} is chosen but {names} is not set")


def _webhook_from_settings(settings: Any, http: httpx.Client | None) -> WebhookChannel:
    url = str(_setting(settings, "notify_webhook_url", ""))
    secret = _secret(settings, "notify_webhook_secret")
    _refuse_missing(
        "webhook",
        [n for n, v in (("notify_webhook_url", url), ("notify_webhook_secret", secret)) if not v],
    )
    return WebhookChannel(
        url,
        secret,
        timeout=float(_setting(settings, "notify_webhook_timeout", 10.0)),
        max_attempts=int(_setting(settings, "notify_webhook_max_attempts", 3)),
        http=http,
    )


def _whatsapp_from_settings(settings: Any, graph: GraphClient | None) -> WhatsAppTemplateChannel:
    values = {
        "notify_whatsapp_phone_number_id": str(
            _setting(settings, "notify_whatsapp_phone_number_id", "")
        ),
        "notify_whatsapp_token": _secret(settings, "notify_whatsapp_token"),
        "notify_whatsapp_template": str(_setting(settings, "notify_whatsapp_template", "")),
        "notify_whatsapp_language": str(_setting(settings, "notify_whatsapp_language", "en")),
    }
    _refuse_missing("whatsapp_template", [n for n, v in values.items() if not v])
    if graph is None:
        raise ValueError("notify channel 'whatsapp_template' needs the Graph client")
    parameters = str(_setting(settings, "notify_whatsapp_parameters", "text"))
    return WhatsAppTemplateChannel(
        graph,
        phone_number_id=values["notify_whatsapp_phone_number_id"],
        token=values["notify_whatsapp_token"],
        template_name=values["notify_whatsapp_template"],
        language=values["notify_whatsapp_language"],
        parameters=[p.strip() for p in parameters.split(",") if p.strip()],
    )
