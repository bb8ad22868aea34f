"""Queue ``feed``: push the event feed to the provider's receiver (beat, every few seconds).

Its own queue so that a push run never waits behind a backlog of history chunks on ``ingest``
(the feed's lag would be that backlog); runs are short (``COEX_FEED_PUSH_BUDGET_SECONDS``),
one at a time (:func:`onboarding.feed.push.exclusive`), and beat's ticks expire rather than
pile up, so the queue holds a message or two at most.
"""

from __future__ import annotations

from onboarding.feed import push as feed_push
from onboarding.runtime import current
from tasks.app import app
from tasks.base import coexist_task, enqueue_after_commit


@coexist_task("coexist.feed.push", soft_time_limit=60, time_limit=75, max_retries=0)
def push() -> None:
    """Beat: deliver the pending batches within the budget; again at once if more are left."""
    rt = current()
    if not rt.settings.feed_webhook_url:
        return
    with feed_push.FeedWebhook.from_settings(rt.settings) as receiver:
        report = feed_push.deliver(rt.db, receiver, feed_push.Policy.from_settings(rt.settings))
    if report.more and not app.conf.task_always_eager:
        enqueue_after_commit(None, push)
