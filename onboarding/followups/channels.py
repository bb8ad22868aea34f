"""The channels a follow-up goes out on, each delivering one rendered follow-up once.

* ``log`` (:class:`LogChannel`) — one structured event, ``follow_up_notification``, with the
  facts.
* ``webhook`` (:class:`WebhookChannel`) — ``POST`` of JSON to the provider's URL, signed per
  Standard Webhooks with ``COEX_NOTIFY_WEBHOOK_SECRET`` (:mod:`onboarding.webhook_signing`):
  ``webhook-id`` is the notification's idempotency key, the same on every attempt. Connection
  errors, 5xx and 429 get a few quick retries; any other 4xx is permanent.
* ``whatsapp_template`` (:class:`WhatsAppTemplateChannel`) — a template message through the
  Cloud API, from the provider's own number to the business's number (``POST
  /{phone-number-id}/messages``). Business-facing follow-ups only: operator alerts never go to
  the business.

A channel's ``send`` fails only with :class:`TransientNotifyError` (saying whether the message
may have gone out anyway) or :class:`PermanentNotifyError`; its ``resend_when_unknown`` tells
the notifier whether an attempt whose outcome was lost may be sent again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from config.logging import register_secret
from models import FollowUpKind, utcnow
from onboarding.followups.render import RenderedFollowUp
from onboarding.meta.errors import (
    GraphError,
    MalformedResponseError,
    RateLimitedError,
    TransientGraphError,
)
from onboarding.meta.graph import GraphClient
from onboarding.outbound.payload import messages_body
from onboarding.webhook_signing import Signer

log = structlog.get_logger(__name__)

#: Meta caps a template's body at 1,024 characters; a parameter is kept well inside it.
MAX_TEMPLATE_PARAMETER: Final = 900
#: Follow-ups meant for the business itself (operator alerts are not).
BUSINESS_KINDS: Final = frozenset(
    {FollowUpKind.COMPANION_RELINK.value, FollowUpKind.APP_OPEN.value}
)


# -- errors and proof ----------------------------------------------------------------------


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


# -- channels ------------------------------------------------------------------------------


class Channel(Protocol):
    """Where a message goes. ``send`` raises :class:`NotifyError` subclasses only."""

    #: The ``Notification.channel`` value.
    name: str
    #: Whether an attempt whose outcome was lost may be sent again (see :mod:`.notifier`).
    resend_when_unknown: bool

    def carries(self, kind: str) -> bool:
        """Whether this channel sends follow-ups of ``kind``."""
        ...

    def send(self, message: RenderedFollowUp) -> Delivery:
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

    def send(self, message: RenderedFollowUp) -> Delivery:
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

    Body: ``{"id", "kind", "subject", "text", "facts", "sent_at"}``, signed per Standard
    Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) with a ``whsec_``
    secret. ``webhook-id`` is the body's ``id``, the same on every attempt of a notification,
    so the receiver can drop copies. Connection errors, 5xx and 429 are retried up to
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
        self._signer = Signer(secret)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url = url
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.kinds = frozenset(kinds) if kinds is not None else None
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "coexist/0.1"}
        )

    def carries(self, kind: str) -> bool:
        """Every kind unless ``kinds`` was given."""
        return self.kinds is None or kind in self.kinds

    def body(self, message: RenderedFollowUp) -> bytes:
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

    def send(self, message: RenderedFollowUp) -> Delivery:
        """POST the message, retrying connection errors, 5xx and 429 a bounded number of times."""
        body = self.body(message)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=self.backoff, max=self.max_wait),
            retry=retry_if_exception(self._quick_retryable),
            before_sleep=_log_webhook_retry,
            reraise=True,
        )
        delivery: Delivery = retrying(self._post, message.key, body)
        return delivery

    def _quick_retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, TransientNotifyError):
            return False
        # A long Retry-After is Celery's job, not a reason to hold the worker.
        return exc.retry_after is None or exc.retry_after <= self.max_wait

    def _post(self, key: str, body: bytes) -> Delivery:
        # Signed per attempt: the timestamp is the attempt's, the id the notification's.
        headers = {"Content-Type": "application/json", **self._signer.headers(key, body.decode())}
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

    ``POST /{phone-number-id}/messages`` (:meth:`GraphClient.send_message
    <onboarding.meta.graph.GraphClient.send_message>`) with the provider's system user token,
    the body built by :func:`~onboarding.outbound.payload.messages_body`: ``type`` ``template``,
    ``template`` ``{"name", "language": {"code"}, "components": [{"type": "body", "parameters":
    [...]}]}``. Each body parameter is a field of the message (``text``, ``subject``) or a
    fact's name, flattened to one line (Meta refuses newlines and tabs in parameters).

    Never retried inside the client: a send is not idempotent (Meta has no idempotency key for
    messages), so a quick retry after a lost answer could deliver the message twice.
    """

    name: str = "whatsapp_template"
    #: A lost answer is never resent blindly: an operator checks the chat (see :mod:`.notifier`).
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

    def request_body(self, message: RenderedFollowUp) -> dict[str, Any]:
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
        return messages_body(message.recipient, "template", template)

    @staticmethod
    def _parameter(message: RenderedFollowUp, source: str) -> str:
        if source in ("text", "subject", "kind"):
            value: Any = getattr(message, source)
        else:
            value = message.facts.get(source, "")
        flat = " ".join(str(value if value is not None else "").split())
        if len(flat) > MAX_TEMPLATE_PARAMETER:
            flat = flat[: MAX_TEMPLATE_PARAMETER - 1].rstrip() + "…"
        return flat or "-"

    def send(self, message: RenderedFollowUp) -> Delivery:
        """Send the template once; Meta's message id (``wamid``) is the reference."""
        body = self.request_body(message)
        try:
            wamid = self.graph.send_message(self.phone_number_id, self._token, body)
        except MalformedResponseError as exc:
            # A 2xx Meta may have acted on (no message id in it): not provably unsent.
            raise TransientNotifyError(str(exc), maybe_sent=True) from exc
        except TransientGraphError as exc:
            retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
            raise TransientNotifyError(
                str(exc), maybe_sent=exc.maybe_applied, retry_after=retry_after
            ) from exc
        except GraphError as exc:
            raise PermanentNotifyError(str(exc)) from exc
        return Delivery(wamid)

    def close(self) -> None:
        """The Graph client belongs to the caller."""
