"""Follow-up schedules: relink series, app-open heartbeat, alerts; acks, resets and stops."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from models import FollowUp, FollowUpStatus, Notification, Onboarding, OnboardingState, utcnow
from onboarding.cli import app
from onboarding.followups import schedule as followups
from onboarding.runtime import Runtime
from onboarding.states import raise_alert, transition
from tasks.followups import deliver, schedule
from tests.conftest import ADMIN_TOKEN
from tests.onboarding.deliveries import Business

runner = CliRunner()

S = OnboardingState


def due_kinds(rt: Runtime, at: datetime) -> list[tuple[str, int]]:
    with rt.db.session() as session:
        ids = followups.schedule(session, settings=rt.settings, now=at)
        rows = session.scalars(select(FollowUp).where(FollowUp.id.in_(ids))).all()
        return sorted((r.kind, r.step) for r in rows)


def mark_sent(rt: Runtime, at: datetime) -> None:
    with rt.db.session() as session:
        for follow_up in session.scalars(
            select(FollowUp).where(FollowUp.status == "scheduled", FollowUp.due_at <= at)
        ):
            follow_up.status = FollowUpStatus.SENT.value


def test_relink_series_is_due_at_onboarding_then_after_one_and_three_days(
    rt: Runtime, business: Business
) -> None:
    """Relink reminders fall due at once, after 1 day and after 3 days."""
    start = utcnow()
    assert ("companion_relink", 0) in due_kinds(rt, start + timedelta(minutes=1))
    mark_sent(rt, start + timedelta(minutes=1))
    assert due_kinds(rt, start + timedelta(hours=23)) == []
    assert due_kinds(rt, start + timedelta(hours=25)) == [("companion_relink", 1)]
    mark_sent(rt, start + timedelta(hours=25))
    assert due_kinds(rt, start + timedelta(hours=73)) == [("companion_relink", 2)]


def test_acknowledging_a_relink_reminder_stops_the_series(rt: Runtime, business: Business) -> None:
    """Once the business says it relinked, no further relink reminder is sent."""
    start = utcnow()
    with rt.db.session() as session:
        [first] = followups.schedule(
            session, settings=rt.settings, now=start + timedelta(minutes=1)
        )
        followups.acknowledge(session, first)
    assert due_kinds(rt, start + timedelta(days=5)) == []
    with rt.db.sessionmaker() as session:
        statuses = sorted(
            r.status
            for r in session.scalars(select(FollowUp).where(FollowUp.kind == "companion_relink"))
        )
    assert statuses == ["acknowledged", "cancelled", "cancelled"]


def test_heartbeat_reminders_at_10_and_12_days_without_activity(
    rt: Runtime, business: Business
) -> None:
    """With no app activity, app-open reminders fall due at 10 and 12 days."""
    start = utcnow()
    mark_sent(rt, start + timedelta(days=4))  # relink series done
    due_kinds(rt, start + timedelta(days=4))
    mark_sent(rt, start + timedelta(days=4))
    assert due_kinds(rt, start + timedelta(days=9)) == []
    assert due_kinds(rt, start + timedelta(days=10, minutes=1)) == [("app_open_heartbeat", 0)]
    mark_sent(rt, start + timedelta(days=10, minutes=1))
    assert due_kinds(rt, start + timedelta(days=12, minutes=1)) == [("app_open_heartbeat", 1)]


def test_app_activity_resets_the_heartbeat(rt: Runtime, business: Business) -> None:
    """An echo (app activity) on day 8 moves the reminders to days 18 and 20."""
    start = utcnow()
    due_kinds(rt, start + timedelta(days=4))
    mark_sent(rt, start + timedelta(days=4))
    with rt.db.session() as session:
        session.get_one(Onboarding, business.onboarding_id).last_app_activity_at = (
            start + timedelta(days=8)
        )
    assert due_kinds(rt, start + timedelta(days=10, minutes=1)) == []
    assert due_kinds(rt, start + timedelta(days=18, minutes=1)) == [("app_open_heartbeat", 0)]


def test_disconnection_stops_every_reminder(rt: Runtime, business: Business) -> None:
    """A disconnected business gets no more relink or app-open reminders."""
    start = utcnow()
    due_kinds(rt, start)
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        transition(session, onboarding, S.DISCONNECTED, "PARTNER_REMOVED: PRIMARY_INACTIVITY")
    assert due_kinds(rt, start + timedelta(days=13)) == []
    with rt.db.sessionmaker() as session:
        assert {r.status for r in session.scalars(select(FollowUp))} == {"cancelled"}


def test_reconnection_starts_a_new_relink_series(rt: Runtime, business: Business) -> None:
    """After ACCOUNT_RECONNECTED, companions must be relinked again: a new series begins."""
    start = utcnow()
    with rt.db.session() as session:
        [first] = followups.schedule(
            session, settings=rt.settings, now=start + timedelta(minutes=1)
        )
        followups.acknowledge(session, first)
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        onboarding.lifecycle_event = "ACCOUNT_RECONNECTED"
        onboarding.lifecycle_since = start + timedelta(days=2)
    assert due_kinds(rt, start + timedelta(days=2, minutes=1)) == [("companion_relink", 0)]


def test_alerts_become_follow_ups_once(rt: Runtime, business: Business) -> None:
    """An operator alert is sent through the notifier once, and acknowledging it acks the alert."""
    with freeze_time(utcnow()), rt.db.session() as session:
        raise_alert(session, business.onboarding_id, "history_stalled", "stalled")
    now = utcnow() + timedelta(seconds=1)
    assert ("alert", 0) in due_kinds(rt, now)
    with rt.db.session() as session:
        alert_follow_up = session.scalars(select(FollowUp).where(FollowUp.kind == "alert")).one()
        followups.acknowledge(session, alert_follow_up.id)
    assert ("alert", 0) not in due_kinds(rt, now + timedelta(minutes=1))


def test_follow_ups_are_listed_and_acknowledged_by_cli_and_http(
    rt: Runtime, business: Business, web: TestClient
) -> None:
    """`follow-ups list --due --json`, `follow-ups ack` and POST /follow-ups/{id}/ack agree."""
    with rt.db.session() as session:
        followups.schedule(session, settings=rt.settings, now=utcnow() + timedelta(minutes=1))
    result = runner.invoke(app, ["follow-ups", "list", "--json"])
    rows = json.loads(result.stdout)
    relink = [r for r in rows if r["kind"] == "companion_relink"]
    assert [r["step"] for r in relink] == [0, 1, 2]
    assert "WhatsApp for Windows" in relink[0]["content"]["unsupported"]
    denied = web.post(f"/follow-ups/{relink[0]['id']}/ack")
    assert denied.status_code == 401
    acked = web.post(
        f"/follow-ups/{relink[0]['id']}/ack", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert acked.json()["status"] == "acknowledged"
    again = runner.invoke(app, ["follow-ups", "ack", str(relink[1]["id"])])
    assert again.exit_code == 1
    assert "cancelled" in again.output
    shown = web.get(
        f"/onboardings/{business.onboarding_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    assert {f["status"] for f in shown["follow_ups"] if f["kind"] == "companion_relink"} == {
        "acknowledged",
        "cancelled",
    }


def test_beat_schedules_and_delivers_each_follow_up_once(rt: Runtime, business: Business) -> None:
    """The beat job sends what is due through the notifier; running it again sends nothing."""
    with capture_logs() as logs:
        schedule.delay()
        schedule.delay()
    sent = [e for e in logs if e["event"] == "follow_up_notification"]
    assert len(sent) == 1
    with rt.db.sessionmaker() as session:
        relink = session.scalars(
            select(FollowUp).where(FollowUp.kind == "companion_relink", FollowUp.step == 0)
        ).one()
        assert relink.status == FollowUpStatus.SENT
        assert relink.sent_count == 1
        notifications = session.scalars(select(Notification)).all()
    assert [(n.channel, n.status) for n in notifications] == [("log", "sent")]
    with capture_logs() as logs:
        deliver.delay(relink.id)  # a redelivered job
    assert not [e for e in logs if e["event"] == "follow_up_notification"]


def test_beat_under_a_frozen_clock_sends_the_heartbeat_on_day_10_and_12(
    rt: Runtime, business: Business
) -> None:
    """With the clock moved day by day, the app-open reminders go out on days 10 and 12 only."""
    sent_on: list[int] = []
    with freeze_time(utcnow()) as clock:
        for day in range(15):
            with capture_logs() as logs:
                schedule.delay()
            kinds = [e["kind"] for e in logs if e["event"] == "follow_up_notification"]
            sent_on += [day] * kinds.count("app_open_heartbeat")
            clock.tick(timedelta(days=1))
    assert sent_on == [10, 12]
