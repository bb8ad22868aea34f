"""The notifier: log, signed webhook and WhatsApp template channels, each notification once."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import structlog
from freezegun import freeze_time
from pydantic import SecretStr
from sqlalchemy import select

from config import Settings
from config.logging import REDACTED, scrub_text
from models import (
    Alert,
    Database,
    FollowUp,
    FollowUpKind,
    FollowUpStatus,
    Notification,
    Onboarding,
    OnboardingState,
    utcnow,
)
from models.crypto import TokenCipher
from onboarding.followups.notifier import (
    LogChannel,
    Notifier,
    Result,
    TransientNotifyError,
    WebhookChannel,
    WhatsAppTemplateChannel,
    render,
    resolve,
)
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import RetryLater
from onboarding.sandbox import Sandbox
from onboarding.signup.intake import SignupBody, accept_signup

SECRET = "notify-webhook-secret-0123456789"
PROVIDER_TOKEN = "EAAGprovider-system-user-token"
PROVIDER_NUMBER_ID = "109876543210987"
K = FollowUpKind

Handler = Callable[[httpx.Request], httpx.Response]


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def onboarding_id(db: Database, settings: Settings, cipher: TokenCipher) -> int:
    """A synced onboarding of +1 650-555-1234 whose app was last opened 11 days ago."""
    with db.session() as session:
        body = SignupBody.model_validate(
            {
                "code": "AQc",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                    "data": {"waba_id": "1"},
                },
            }
        )
        outcome = accept_signup(session, body, settings=settings, cipher=cipher)
        onboarding = session.get_one(Onboarding, outcome.onboarding_id)
        onboarding.phone_number_id = "106540352242922"
        onboarding.display_phone_number = "+1 650-555-1234"
        onboarding.verified_name = "Lucky Shrub"
        onboarding.state = OnboardingState.SYNCED.value
        onboarding.last_app_activity_at = utcnow() - timedelta(days=11, hours=2)
        return onboarding.id


def add_follow_up(
    db: Database, onboarding_id: int, kind: K = K.COMPANION_RELINK, **content: Any
) -> int:
    with db.session() as session:
        row = FollowUp(
            onboarding_id=onboarding_id,
            kind=kind.value,
            series=0,
            step=0,
            due_at=utcnow(),
            status=FollowUpStatus.SCHEDULED.value,
            content=content,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def relink(db: Database, onboarding_id: int) -> int:
    return add_follow_up(db, onboarding_id, K.COMPANION_RELINK, reason="onboarding")


def deliver(db: Database, notifier: Notifier, follow_up_id: int) -> list[Any]:
    with db.sessionmaker() as session:
        return notifier.deliver(session, follow_up_id)


def follow_up(db: Database, follow_up_id: int) -> FollowUp:
    with db.sessionmaker() as session:
        return session.get_one(FollowUp, follow_up_id)


def notification(db: Database, follow_up_id: int, channel: str) -> Notification:
    with db.sessionmaker() as session:
        return session.scalars(
            select(Notification).where(
                Notification.follow_up_id == follow_up_id, Notification.channel == channel
            )
        ).one()


def interrupted(db: Database, follow_up_id: int, channel: str) -> int:
    """Leave the state a worker that died between record and answer leaves; its row id."""
    with db.session() as session:
        row = Notification(
            follow_up_id=follow_up_id,
            channel=channel,
            status="sending",
            attempts=1,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row.id


# -- a real HTTP receiver for the webhook channel ------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """The provider's endpoint on 127.0.0.1: records requests, answers scripted statuses."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    #: Extra response headers, for every answer.
    headers: dict[str, str] = field(default_factory=dict)

    def answer(self) -> int:
        return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            reply = b'{"ok":true}'
            self.send_response(state.answer())
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/coexist/notifications"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def webhook(receiver: Receiver) -> Iterator[WebhookChannel]:
    channel = WebhookChannel(receiver.url, SECRET, max_attempts=3, backoff=0.001, max_wait=0.01)
    yield channel
    channel.close()


# -- a Graph API answering like Meta's /messages ---------------------------------------------


@dataclass
class FakeMessages:
    """``POST /{phone-number-id}/messages`` in Meta's shapes; records what it was sent."""

    errors: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.errors:
            status, error = self.errors.pop(0)
            return httpx.Response(status, json={"error": {"fbtrace_id": "AbCdEf123", **error}})
        to = json.loads(request.content)["to"]
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.X{len(self.requests)}"}],
            },
        )

    def sent(self, n: int = 0) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.requests[n].content)
        return data


@pytest.fixture
def meta() -> FakeMessages:
    return FakeMessages()


@pytest.fixture
def whatsapp(meta: FakeMessages) -> Iterator[WhatsAppTemplateChannel]:
    graph = GraphClient(
        app_id="1", app_secret="s", transport=httpx.MockTransport(meta), max_wait=0.001
    )
    yield WhatsAppTemplateChannel(
        graph,
        phone_number_id=PROVIDER_NUMBER_ID,
        token=PROVIDER_TOKEN,
        template_name="coexist_reminder",
        language="en_US",
    )
    graph.close()


# -- rendering -----------------------------------------------------------------------------


def test_relink_text_names_the_companions_that_work_and_those_that_do_not(
    db: Database, relink: int
) -> None:
    """A relink reminder says how to relink, which companions work, and not Windows or WearOS."""
    with db.sessionmaker() as session:
        row = session.get_one(FollowUp, relink)
        message = render(row, session.get_one(Onboarding, row.onboarding_id))
    assert "Linked devices" in message.text
    assert "WhatsApp Web" in message.text
    assert "These do not: WhatsApp for Windows, WearOS" in message.text
    assert message.recipient == "16505551234"
    assert message.facts["phone_number_id"] == "106540352242922"
    assert message.facts["follow_up_id"] == relink


def test_heartbeat_text_counts_days_since_the_app_was_last_opened(
    db: Database, onboarding_id: int
) -> None:
    """A heartbeat reminder gives the days without app activity and the days left before 14."""
    follow_up_id = add_follow_up(db, onboarding_id, K.APP_OPEN, days_without_activity=10)
    with db.sessionmaker() as session:
        row = session.get_one(FollowUp, follow_up_id)
        message = render(row, session.get_one(Onboarding, onboarding_id))
    assert "has not been opened for 11 days" in message.text
    assert "about 3 days left" in message.text
    assert message.facts["days_until_disconnect"] == 3


def test_alert_text_is_the_alert_message(db: Database, onboarding_id: int) -> None:
    """An operator alert's text is the alert's message; its kind and severity are facts."""
    follow_up_id = add_follow_up(
        db,
        onboarding_id,
        K.ALERT,
        alert_kind="sync_deadline_near",
        severity="warning",
        message="history sync not requested; 6 h left",
    )
    with db.sessionmaker() as session:
        row = session.get_one(FollowUp, follow_up_id)
        message = render(row, session.get_one(Onboarding, onboarding_id))
    assert message.text == "history sync not requested; 6 h left"
    assert "sync_deadline_near" in message.subject
    assert message.facts["alert_kind"] == "sync_deadline_near"


# -- log channel ---------------------------------------------------------------------------


def test_log_channel_emits_one_event_with_the_facts(db: Database, relink: int) -> None:
    """The default channel writes one follow_up_notification event carrying the facts."""
    with structlog.testing.capture_logs() as logs:
        [outcome] = deliver(db, Notifier([LogChannel()]), relink)
    [event] = [e for e in logs if e["event"] == "follow_up_notification"]
    assert event["follow_up_id"] == relink
    assert event["waba_id"] == "1"
    assert event["kind"] == "companion_relink"
    assert outcome.result is Result.SENT
    assert follow_up(db, relink).status == FollowUpStatus.SENT


# -- webhook channel -----------------------------------------------------------------------


def test_webhook_body_is_signed_with_the_secret(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """The provider can check X-Coexist-Signature as the HMAC-SHA256 of the raw body."""
    deliver(db, Notifier([webhook]), relink)
    [request] = receiver.requests
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-coexist-signature"] == f"sha256={expected}"
    assert request.headers["x-coexist-delivery"] == request.json["id"]
    assert request.json["kind"] == "companion_relink"
    assert request.json["facts"]["onboarding_id"] == follow_up(db, relink).onboarding_id
    assert set(request.json) == {"id", "kind", "subject", "text", "facts", "sent_at"}


def test_webhook_500_is_retried_then_delivered(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """A 500 is retried at once with the same key, and the next 200 counts as delivered."""
    receiver.statuses = [500]
    [outcome] = deliver(db, Notifier([webhook]), relink)
    assert outcome.result is Result.SENT
    assert len(receiver.requests) == 2
    assert receiver.requests[0].json["id"] == receiver.requests[1].json["id"]
    assert notification(db, relink, "webhook").reference == "HTTP 200"


def test_webhook_gives_up_after_max_attempts(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """Quick retries stop after max_attempts with a transient error that may have been sent."""
    receiver.statuses = [500, 503, 502, 200]
    with db.sessionmaker() as session:
        row = session.get_one(FollowUp, relink)
        message = render(row, session.get_one(Onboarding, row.onboarding_id))
    with pytest.raises(TransientNotifyError) as caught:
        webhook.send(message)
    assert len(receiver.requests) == 3
    assert caught.value.maybe_sent is True


def test_webhook_400_is_permanent(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """A 4xx other than 429 is not retried; the notification and follow-up fail with it."""
    receiver.statuses = [400]
    [outcome] = deliver(db, Notifier([webhook]), relink)
    assert outcome.result is Result.FAILED
    assert len(receiver.requests) == 1
    assert notification(db, relink, "webhook").status == "failed"
    assert "HTTP 400" in (follow_up(db, relink).last_error or "")
    assert follow_up(db, relink).status == FollowUpStatus.FAILED


def test_unreachable_webhook_is_retried_later_as_not_sent(db: Database, relink: int) -> None:
    """A refused connection surely sent nothing: the row is pending and RetryLater is raised."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = WebhookChannel(f"http://127.0.0.1:{port}/", SECRET, max_attempts=2, max_wait=0.01)
    try:
        with pytest.raises(RetryLater):
            deliver(db, Notifier([channel]), relink)
    finally:
        channel.close()
    assert notification(db, relink, "webhook").status == "pending"
    assert follow_up(db, relink).status == FollowUpStatus.SCHEDULED


def test_webhook_failing_every_run_fails_after_the_notifier_attempts(
    db: Database, onboarding_id: int, relink: int, receiver: Receiver
) -> None:
    """Across runs the attempts are bounded too; then failed with the reason and an alert."""
    receiver.statuses = [500] * 10
    channel = WebhookChannel(receiver.url, SECRET, max_attempts=1)
    notifier = Notifier([channel], max_attempts=2)
    with pytest.raises(RetryLater):
        deliver(db, notifier, relink)
    [outcome] = deliver(db, notifier, relink)
    channel.close()
    assert outcome.result is Result.FAILED
    assert "gave up after 2 attempts" in (outcome.error or "")
    assert follow_up(db, relink).status == FollowUpStatus.FAILED
    with db.sessionmaker() as session:
        alert = session.scalars(select(Alert).where(Alert.onboarding_id == onboarding_id)).one()
    assert alert.kind == "notification_failed"


def test_webhook_429_with_a_long_retry_after_is_left_to_the_task_retry(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """A long Retry-After is not waited for in the worker: RetryLater carries it instead."""
    receiver.statuses = [429]
    receiver.headers = {"Retry-After": "120"}
    with pytest.raises(RetryLater) as caught:
        deliver(db, Notifier([webhook], retry_countdown=5), relink)
    assert caught.value.countdown == 120
    assert len(receiver.requests) == 1
    assert notification(db, relink, "webhook").status == "pending"


def test_delivering_a_follow_up_twice_notifies_once(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """A redelivered job finds the sent notification and sends nothing."""
    notifier = Notifier([webhook])
    deliver(db, notifier, relink)
    [again] = deliver(db, notifier, relink)
    assert again.result is Result.ALREADY_SENT
    assert len(receiver.requests) == 1
    assert follow_up(db, relink).sent_count == 1
    assert follow_up(db, relink).attempts == 1


def test_webhook_interrupted_attempt_is_resent_with_the_same_key(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """A crash between record and send is resent with the idempotency key the provider saw."""
    row_id = interrupted(db, relink, "webhook")
    [outcome] = deliver(db, Notifier([webhook]), relink)
    assert outcome.result is Result.SENT
    [request] = receiver.requests
    assert request.headers["x-coexist-delivery"] == f"coexist-notification-{row_id}"
    assert notification(db, relink, "webhook").attempts == 2


def test_webhook_secret_is_masked_in_logs(receiver: Receiver, webhook: WebhookChannel) -> None:
    """The signing secret is registered for log redaction."""
    assert scrub_text(f"secret is {SECRET}") == f"secret is {REDACTED}"


# -- WhatsApp template channel -------------------------------------------------------------


def test_whatsapp_template_is_sent_from_the_provider_number_to_the_business(
    db: Database, relink: int, meta: FakeMessages, whatsapp: WhatsAppTemplateChannel
) -> None:
    """POST /{provider number}/messages with the template shape; Meta's wamid is the reference."""
    [outcome] = deliver(db, Notifier([whatsapp]), relink)
    [request] = meta.requests
    assert request.url.path == f"/v25.0/{PROVIDER_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {PROVIDER_TOKEN}"
    body = meta.sent()
    assert body["messaging_product"] == "whatsapp"
    assert body["to"] == "16505551234"
    assert body["type"] == "template"
    assert body["template"]["name"] == "coexist_reminder"
    assert body["template"]["language"] == {"code": "en_US"}
    [component] = body["template"]["components"]
    [parameter] = component["parameters"]
    assert component["type"] == "body"
    assert parameter["type"] == "text"
    assert "WearOS" in parameter["text"]
    assert "\n" not in parameter["text"]
    assert outcome.reference == "wamid.X1"
    assert notification(db, relink, "whatsapp_template").reference == "wamid.X1"


@pytest.mark.parametrize(
    ("status", "code"), [(400, 131047), (400, 100), (400, 132001)], ids=["131047", "100", "132001"]
)
def test_whatsapp_permanent_graph_error_fails_without_retry(
    db: Database,
    relink: int,
    meta: FakeMessages,
    whatsapp: WhatsAppTemplateChannel,
    status: int,
    code: int,
) -> None:
    """A permanent Graph error fails the notification at once, with Meta's code in the reason."""
    meta.errors = [
        (status, {"message": f"(#{code}) refused", "type": "OAuthException", "code": code})
    ]
    [outcome] = deliver(db, Notifier([whatsapp]), relink)
    assert outcome.result is Result.FAILED
    assert f"code={code}" in (outcome.error or "")
    assert len(meta.requests) == 1


def test_whatsapp_unknown_error_is_not_resent(
    db: Database, relink: int, meta: FakeMessages, whatsapp: WhatsAppTemplateChannel
) -> None:
    """Code 1 with HTTP 500 may have been applied: unknown, never resent, an operator alerted."""
    meta.errors = [
        (500, {"message": "An unknown error occurred", "type": "OAuthException", "code": 1})
    ]
    notifier = Notifier([whatsapp])
    [outcome] = deliver(db, notifier, relink)
    [again] = deliver(db, notifier, relink)
    assert outcome.result is Result.UNKNOWN
    assert outcome.needs_attention
    assert again.result is Result.UNKNOWN
    assert len(meta.requests) == 1
    assert notification(db, relink, "whatsapp_template").status == "unknown"
    assert follow_up(db, relink).status == FollowUpStatus.FAILED


def test_whatsapp_answer_without_a_message_id_is_unknown(
    db: Database, relink: int, meta: FakeMessages, whatsapp: WhatsAppTemplateChannel
) -> None:
    """A 2xx without Meta's message id may still have been sent: unknown, not resent."""

    def no_id(request: httpx.Request) -> httpx.Response:
        meta.requests.append(request)
        return httpx.Response(200, json={"messaging_product": "whatsapp", "messages": []})

    whatsapp.graph = GraphClient(app_id="1", app_secret="s", transport=httpx.MockTransport(no_id))
    with whatsapp.graph:
        [outcome] = deliver(db, Notifier([whatsapp]), relink)
    assert outcome.result is Result.UNKNOWN
    assert "without a message id" in (outcome.error or "")
    assert len(meta.requests) == 1


def test_whatsapp_interrupted_attempt_is_marked_unknown_and_not_sent(
    db: Database,
    onboarding_id: int,
    relink: int,
    meta: FakeMessages,
    whatsapp: WhatsAppTemplateChannel,
) -> None:
    """A crash between record and send leaves WhatsApp unknown: an alert, not a second message."""
    interrupted(db, relink, "whatsapp_template")
    [outcome] = deliver(db, Notifier([whatsapp]), relink)
    assert outcome.result is Result.UNKNOWN
    assert meta.requests == []
    assert notification(db, relink, "whatsapp_template").status == "unknown"
    with db.sessionmaker() as session:
        alert = session.scalars(select(Alert).where(Alert.onboarding_id == onboarding_id)).one()
    assert alert.kind == "notification_unknown"


def test_whatsapp_throttled_send_is_retried_later(
    db: Database, relink: int, meta: FakeMessages, whatsapp: WhatsAppTemplateChannel
) -> None:
    """A rate-limited send surely did not go out: RetryLater, then the next run sends it."""
    meta.errors = [(400, {"message": "Rate limit hit", "type": "OAuthException", "code": 130429})]
    notifier = Notifier([whatsapp])
    with pytest.raises(RetryLater):
        deliver(db, notifier, relink)
    assert notification(db, relink, "whatsapp_template").status == "pending"
    [outcome] = deliver(db, notifier, relink)
    assert outcome.result is Result.SENT
    assert len(meta.requests) == 2
    assert follow_up(db, relink).status == FollowUpStatus.SENT


def test_operator_alerts_do_not_go_to_the_business(
    db: Database, onboarding_id: int, meta: FakeMessages, whatsapp: WhatsAppTemplateChannel
) -> None:
    """The WhatsApp channel carries business reminders only; an alert goes to the log."""
    alert = add_follow_up(db, onboarding_id, K.ALERT, alert_kind="stalled", message="stalled")
    outcomes = deliver(db, Notifier([LogChannel(), whatsapp]), alert)
    assert [o.channel for o in outcomes] == ["log"]
    assert meta.requests == []
    assert follow_up(db, alert).status == FollowUpStatus.SENT


def test_operator_confirming_an_unknown_send_settles_it_as_sent(
    db: Database, relink: int, meta: FakeMessages, whatsapp: WhatsAppTemplateChannel
) -> None:
    """Once an operator saw the message in the chat, the follow-up is sent and nothing resent."""
    interrupted(db, relink, "whatsapp_template")
    notifier = Notifier([whatsapp])
    deliver(db, notifier, relink)
    with db.sessionmaker() as session:
        resolve(session, relink, "whatsapp_template", delivered=True)
    [outcome] = deliver(db, notifier, relink)
    assert outcome.result is Result.ALREADY_SENT
    assert meta.requests == []
    assert follow_up(db, relink).status == FollowUpStatus.SENT


def test_operator_saying_an_unknown_send_was_lost_sends_it_again(
    db: Database, relink: int, meta: FakeMessages, whatsapp: WhatsAppTemplateChannel
) -> None:
    """When the operator found no message in the chat, the next run sends it."""
    interrupted(db, relink, "whatsapp_template")
    notifier = Notifier([whatsapp])
    deliver(db, notifier, relink)
    with db.sessionmaker() as session:
        resolve(session, relink, "whatsapp_template", delivered=False)
    [outcome] = deliver(db, notifier, relink)
    assert outcome.result is Result.SENT
    assert len(meta.requests) == 1


# -- the notifier --------------------------------------------------------------------------


def test_every_channel_sent_makes_the_follow_up_sent(
    db: Database,
    relink: int,
    receiver: Receiver,
    webhook: WebhookChannel,
    meta: FakeMessages,
    whatsapp: WhatsAppTemplateChannel,
) -> None:
    """With three channels the follow-up is sent once each has delivered."""
    with freeze_time("2026-05-04 10:00:00"):
        outcomes = deliver(db, Notifier([LogChannel(), webhook, whatsapp]), relink)
    assert [o.result for o in outcomes] == [Result.SENT] * 3
    row = follow_up(db, relink)
    assert row.status == FollowUpStatus.SENT
    assert row.sent_count == 3
    assert row.sent_at == datetime(2026, 5, 4, 10, tzinfo=UTC)
    assert row.last_error is None


def test_cancelled_follow_up_is_not_sent(db: Database, relink: int) -> None:
    """A follow-up cancelled before its job ran notifies nobody and records nothing."""
    with db.session() as session:
        session.get_one(FollowUp, relink).status = FollowUpStatus.CANCELLED.value
    with structlog.testing.capture_logs() as logs:
        assert deliver(db, Notifier([LogChannel()]), relink) == []
    assert not [e for e in logs if e["event"] == "follow_up_notification"]
    with db.sessionmaker() as session:
        assert session.scalars(select(Notification)).all() == []


# -- settings ------------------------------------------------------------------------------


def notify_settings(**values: Any) -> SimpleNamespace:
    return SimpleNamespace(**values)


def test_from_settings_defaults_to_the_log_channel() -> None:
    """Without notify settings the notifier logs."""
    notifier = Notifier.from_settings(notify_settings())
    assert [c.name for c in notifier.channels] == ["log"]


def test_from_settings_builds_the_chosen_channels(graph: GraphClient) -> None:
    """Each chosen channel is built from its settings, in the order named."""
    settings = notify_settings(
        notify_channels="webhook, whatsapp_template,log",
        notify_webhook_url="https://provider.example/coexist",
        notify_webhook_secret=SecretStr(SECRET),
        notify_whatsapp_phone_number_id=PROVIDER_NUMBER_ID,
        notify_whatsapp_token=SecretStr(PROVIDER_TOKEN),
        notify_whatsapp_template="coexist_reminder",
    )
    with Notifier.from_settings(settings, graph) as notifier:
        assert [c.name for c in notifier.channels] == ["webhook", "whatsapp_template", "log"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"notify_channels": "webhook"}, "COEX_NOTIFY_WEBHOOK_URL, COEX_NOTIFY_WEBHOOK_SECRET"),
        (
            {"notify_channels": "webhook", "notify_webhook_url": "https://p.example/x"},
            "COEX_NOTIFY_WEBHOOK_SECRET is not set",
        ),
        (
            {
                "notify_channels": "whatsapp_template",
                "notify_whatsapp_phone_number_id": PROVIDER_NUMBER_ID,
                "notify_whatsapp_token": SecretStr(PROVIDER_TOKEN),
            },
            "COEX_NOTIFY_WHATSAPP_TEMPLATE is not set",
        ),
        ({"notify_channels": "log,sms"}, "unknown notify channel(s) sms"),
        ({"notify_channels": " , "}, "COEX_NOTIFY_CHANNELS is empty"),
    ],
    ids=["webhook-nothing", "webhook-no-secret", "whatsapp-no-template", "unknown", "empty"],
)
def test_from_settings_refuses_a_channel_without_its_settings(
    values: dict[str, Any], message: str, graph: GraphClient
) -> None:
    """A chosen channel whose settings are missing is refused with their names."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Notifier.from_settings(notify_settings(**values), graph)


def test_from_settings_refuses_whatsapp_without_a_graph_client() -> None:
    """The WhatsApp channel needs the Graph client it sends through."""
    settings = notify_settings(
        notify_channels="whatsapp_template",
        notify_whatsapp_phone_number_id=PROVIDER_NUMBER_ID,
        notify_whatsapp_token=SecretStr(PROVIDER_TOKEN),
        notify_whatsapp_template="coexist_reminder",
    )
    with pytest.raises(ValueError, match="needs the Graph client"):
        Notifier.from_settings(settings)


def test_whatsapp_template_reaches_the_sandbox_as_a_template_message(
    db: Database, relink: int, sandbox: Sandbox, graph: GraphClient
) -> None:
    """Against the Meta sandbox, the reminder is accepted as one template message from the
    provider's own number, and a second delivery sends nothing."""
    provider = sandbox.add_business("Provider", 1, coexistence=False)
    number = provider.phone_number_ids[0]
    token = sandbox.issue_token(provider.id)
    registered = sandbox.handle(
        httpx.Request(
            "POST",
            f"https://graph.facebook.com/v25.0/{number}/register",
            headers={"Authorization": f"Bearer {token}"},
            json={"messaging_product": "whatsapp", "pin": "123456"},
        )
    )
    assert registered.status_code == 200
    channel = WhatsAppTemplateChannel(
        graph, phone_number_id=number, token=token, template_name="relink_reminder"
    )
    notifier = Notifier([channel])
    deliver(db, notifier, relink)
    deliver(db, notifier, relink)
    sent = sandbox.sent_messages(number)
    assert len(sent) == 1
    assert follow_up(db, relink).status == "sent"
    assert notification(db, relink, "whatsapp_template").reference == sent[0].wamid
