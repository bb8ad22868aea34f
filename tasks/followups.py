"""Queue ``followups``: schedule reminders and alerts (beat), and send each one once."""

from __future__ import annotations

from onboarding.followups import schedule as followups
from onboarding.followups.notifier import Notifier
from onboarding.runtime import current
from tasks.base import coexist_task, enqueue_after_commit


@coexist_task("coexist.followups.schedule", soft_time_limit=50, time_limit=58, max_retries=0)
def schedule() -> None:
    """Beat, every minute: create due relink and app-open reminders and alert follow-ups."""
    rt = current()
    with rt.db.session() as session:
        due = followups.schedule(session, settings=rt.settings)
    for follow_up_id in due:
        enqueue_after_commit(None, deliver, follow_up_id)


@coexist_task("coexist.followups.deliver", soft_time_limit=120, time_limit=150, max_retries=8)
def deliver(follow_up_id: int) -> None:
    """Send one follow-up on every configured channel; a redelivered job never sends twice."""
    rt = current()
    with Notifier.from_settings(rt.settings, rt.graph) as notifier, rt.db.session() as session:
        notifier.deliver(session, follow_up_id)
