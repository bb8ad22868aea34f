"""The feed push task: thin over onboarding.feed.push, off without a receiver URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models import FeedCursor
from onboarding.feed.events import EventType, emit_for
from onboarding.feed.push import CURSOR_NAME
from onboarding.runtime import Runtime
from tasks import feed as feed_tasks
from tests.conftest import make_settings
from tests.onboarding.feed.receiver import SECRET, FeedReceiver


@pytest.fixture
def receiver() -> Iterator[FeedReceiver]:
    with FeedReceiver() as server:
        yield server


def write(rt: Runtime, n: int) -> None:
    with rt.db.session() as session:
        for i in range(n):
            emit_for(session, EventType.SYNC_PROGRESS, None, {"n": i})


def test_push_delivers_the_feed_to_the_configured_receiver(
    rt: Runtime, receiver: FeedReceiver
) -> None:
    """With COEX_FEED_WEBHOOK_URL set, one run delivers every pending event, signed."""
    rt.settings = make_settings(
        database_url=rt.settings.database_url,
        feed_webhook_url=receiver.url,
        feed_webhook_secret=SECRET,
        feed_webhook_batch_size=2,
    )
    write(rt, 5)
    feed_tasks.push.delay()
    assert [len(r.events) for r in receiver.requests] == [2, 2, 1]
    assert all(r.verified for r in receiver.requests)


def test_push_does_nothing_without_a_receiver_url(rt: Runtime) -> None:
    """Push is off by default: the task returns without touching the feed's cursors."""
    write(rt, 2)
    feed_tasks.push.delay()
    with rt.db.sessionmaker() as session:
        assert session.get(FeedCursor, CURSOR_NAME) is None
