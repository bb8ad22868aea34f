"""The log, signed webhook and WhatsApp template channels, each delivering through the notifier."""

from __future__ import annotations

import socket

import httpx
import pytest
import structlog
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from config.logging import REDACTED, scrub_text
from models import Alert, Database, FollowUp, FollowUpStatus, Onboarding
from onboarding.followups.channels import (
    LogChannel,
    TransientNotifyError,
    WebhookChannel,
    WhatsAppTemplateChannel,
)
from onboarding.followups.notifier import Notifier, Result
from onboarding.followups.render import render
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import RetryLater
from onboarding.sandbox import Sandbox
from tests.onboarding.followups.helpers import (
    PROVIDER_NUMBER_ID,
    PROVIDER_TOKEN,
    SECRET,
    FakeMessages,
    K,
    Receiver,
    add_follow_up,
    deliver,
    follow_up,
    interrupted,
    notification,
)

# -- log channel -------------------------------------------------------------------------------


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


# -- webhook channel ---------------------------------------------------------------------------


def test_webhook_body_is_signed_per_standard_webhooks(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """The provider verifies each request with standardwebhooks and the whsec_ secret."""
    deliver(db, Notifier([webhook]), relink)
    [request] = receiver.requests
    assert Webhook(SECRET).verify(request.body, request.headers) == request.json
    assert request.headers["webhook-id"] == request.json["id"]
    assert request.json["kind"] == "companion_relink"
    assert request.json["facts"]["onboarding_id"] == follow_up(db, relink).onboarding_id
    assert set(request.json) == {"id", "kind", "subject", "text", "facts", "sent_at"}


def test_webhook_500_is_retried_then_delivered(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """A 500 is retried at once with the same webhook-id, and the next 200 counts as delivered."""
    receiver.statuses = [500]
    [outcome] = deliver(db, Notifier([webhook]), relink)
    assert outcome.result is Result.SENT
    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == first.json["id"]
    assert Webhook(SECRET).verify(second.body, second.headers) == second.json
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


def test_webhook_interrupted_attempt_is_resent_with_the_same_key(
    db: Database, relink: int, receiver: Receiver, webhook: WebhookChannel
) -> None:
    """A crash between record and send is resent with the idempotency key the provider saw."""
    row_id = interrupted(db, relink, "webhook")
    [outcome] = deliver(db, Notifier([webhook]), relink)
    assert outcome.result is Result.SENT
    [request] = receiver.requests
    assert request.headers["webhook-id"] == f"coexist-notification-{row_id}"
    assert notification(db, relink, "webhook").attempts == 2


def test_webhook_secret_that_is_not_whsec_is_refused() -> None:
    """A secret that is not whsec_ and base64 is refused when the channel is built."""
    with pytest.raises(ValueError, match="must start with 'whsec_'"):
        WebhookChannel("https://provider.example/coexist", "notify-webhook-secret-0123456789")


def test_webhook_secret_is_masked_in_logs(receiver: Receiver, webhook: WebhookChannel) -> None:
    """The signing secret is registered for log redaction."""
    assert scrub_text(f"secret is {SECRET}") == f"secret is {REDACTED}"


# -- WhatsApp template channel -----------------------------------------------------------------


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
