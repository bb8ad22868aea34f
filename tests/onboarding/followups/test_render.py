"""What a follow-up says: the relink and heartbeat reminders' words and an alert's message."""

from __future__ import annotations

from models import Database, FollowUp, Onboarding
from onboarding.followups.render import render
from tests.onboarding.followups.helpers import K, add_follow_up


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
