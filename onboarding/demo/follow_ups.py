"""What the demo's business is told, and when: the follow-ups beat schedules after the signup.

In production, beat's ``schedule-follow-ups`` job runs every minute. The demo runs that job once,
in-process, when the flow has ended: it schedules the companion-relink series (the first one due
at once, then after 1 and 3 days by default) and the app-open heartbeat series (10 and 12 days
after the last app activity), and sends what is due now on the configured channels (the log, by
default). Nothing waits for the days to pass: the later reminders stay ``scheduled`` with their
due dates, and the first heartbeat reminder's text is rendered with the product's clock set to
its due date, a simulated passage of time that the output says it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from models import FollowUp, FollowUpKind, Notification, Onboarding, utcnow
from onboarding.feed.events import iso
from onboarding.followups.render import render
from onboarding.runtime import Runtime
from tasks.followups import schedule as schedule_follow_ups


@dataclass(frozen=True, slots=True)
class Reminder:
    """One reminder scheduled for the business: when it is due and what became of it."""

    kind: str
    step: int
    due_at: datetime
    status: str
    #: Channels it was sent on so far (empty until it is due).
    sent_on: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "step": self.step,
            "due_at": iso(self.due_at),
            "status": self.status,
            "sent_on": list(self.sent_on),
        }


@dataclass(frozen=True, slots=True)
class Told:
    """A reminder's words, as the business reads them, and the instant they are read at."""

    kind: str
    subject: str
    text: str
    at: datetime
    #: Whether ``at`` is a simulated future instant (the product's clock moved to the due date).
    simulated: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "text": self.text,
            "at": iso(self.at),
            "simulated": self.simulated,
        }


@dataclass(frozen=True, slots=True)
class BusinessFollowUps:
    """The relink and heartbeat reminders, the first one sent, and a heartbeat's words."""

    relink: tuple[Reminder, ...]
    heartbeat: tuple[Reminder, ...]
    alerts: int
    first: Told | None
    heartbeat_text: Told | None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``coexist demo --json`` under ``follow_ups``."""
        return {
            "relink": [r.to_dict() for r in self.relink],
            "heartbeat": [r.to_dict() for r in self.heartbeat],
            "alerts": self.alerts,
            "first_reminder": self.first.to_dict() if self.first else None,
            "first_heartbeat_reminder": (
                self.heartbeat_text.to_dict() if self.heartbeat_text else None
            ),
            "notes": list(self.notes),
        }


def run_beat_follow_ups(rt: Runtime, onboarding_id: int) -> BusinessFollowUps:
    """Run beat's ``schedule-follow-ups`` job once (in-process) and read what it scheduled."""
    schedule_follow_ups.delay()  # eager: schedules, then delivers what is due now
    now = utcnow()
    with rt.db.sessionmaker() as session:
        onboarding = session.get(Onboarding, onboarding_id)
        if onboarding is None:
            raise LookupError(f"no onboarding {onboarding_id}")
        rows = session.scalars(
            select(FollowUp)
            .where(FollowUp.onboarding_id == onboarding_id)
            .order_by(FollowUp.due_at, FollowUp.id)
        ).all()
        channels: dict[int, list[str]] = {}
        for follow_up_id, channel in session.execute(
            select(Notification.follow_up_id, Notification.channel)
            .join(FollowUp, FollowUp.id == Notification.follow_up_id)
            .where(FollowUp.onboarding_id == onboarding_id, Notification.status == "sent")
            .order_by(Notification.id)
        ):
            channels.setdefault(follow_up_id, []).append(channel)

        def reminders(kind: FollowUpKind) -> tuple[Reminder, ...]:
            return tuple(
                Reminder(r.kind, r.step, r.due_at, r.status, tuple(channels.get(r.id, ())))
                for r in rows
                if r.kind == kind.value
            )

        reminder_kinds = (FollowUpKind.COMPANION_RELINK.value, FollowUpKind.APP_OPEN.value)
        first_row = next((r for r in rows if r.kind in reminder_kinds), None)
        first = None
        if first_row is not None:
            rendered = render(first_row, onboarding, now=first_row.due_at)
            first = Told(
                first_row.kind,
                rendered.subject,
                rendered.text,
                first_row.due_at,
                first_row.due_at > now,
            )
        heartbeat_row = next((r for r in rows if r.kind == FollowUpKind.APP_OPEN.value), None)
        heartbeat_text = None
        if heartbeat_row is not None:
            # Simulated: the text as the product's clock would render it on the due date.
            rendered = render(heartbeat_row, onboarding, now=heartbeat_row.due_at)
            heartbeat_text = Told(
                heartbeat_row.kind,
                rendered.subject,
                rendered.text,
                heartbeat_row.due_at,
                heartbeat_row.due_at > now,
            )
        return BusinessFollowUps(
            relink=reminders(FollowUpKind.COMPANION_RELINK),
            heartbeat=reminders(FollowUpKind.APP_OPEN),
            alerts=sum(1 for r in rows if r.kind == FollowUpKind.ALERT.value),
            first=first,
            heartbeat_text=heartbeat_text,
            notes=(
                "beat's schedule-follow-ups job ran once, in-process, at the end of the flow",
                "the first heartbeat reminder's text is rendered with the clock set to its due "
                "date: a simulated passage of time, nothing waited",
            ),
        )
