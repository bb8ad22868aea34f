"""The notifier: each notification recorded before it is sent, sent once, settled by operators."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import structlog
from freezegun import freeze_time
from sqlalchemy import select

from models import Alert, Database, FollowUp, FollowUpStatus, Notification
from onboarding.followups.channels import LogChannel, WebhookChannel, WhatsAppTemplateChannel
from onboarding.followups.notifier import Notifier, Result, resolve
from onboarding.outcomes import RetryLater
from tests.onboarding.followups.helpers import (
    SECRET,
    FakeMessages,
    Receiver,
    deliver,
    follow_up,
    interrupted,
)


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
