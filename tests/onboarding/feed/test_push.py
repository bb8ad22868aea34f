"""Push delivery on the embedded database (SQLite), to a real receiver on 127.0.0.1 that
verifies every request with ``standardwebhooks``."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from config import Settings
from models import Alert, Database, FeedCursor, utcnow
from onboarding.feed import push
from onboarding.feed.events import EventType, emit_for
from onboarding.feed.log import Cursor, read
from onboarding.feed.push import FeedWebhook, Policy, RewindError, deliver, rewind, status
from tests.conftest import make_settings
from tests.onboarding.feed.receiver import SECRET, FeedReceiver

#: Quick retries, so a test can wait them out.
QUICK = Policy(batch_size=100, max_attempts=3, backoff=0.001, backoff_max=0.002, budget=30)


def write(db: Database, n: int, *, start: int = 0) -> None:
    """``n`` messages.stored events in one transaction."""
    with db.session() as session:
        for i in range(start, start + n):
            emit_for(
                session,
                EventType.MESSAGES_STORED,
                None,
                {"source": "history", "count": 1, "n": i},
            )


def feed_ids(db: Database) -> list[int]:
    with db.sessionmaker() as session:
        return [e["id"] for e in read(session, Cursor(), 1000).events]


def cursor(db: Database) -> FeedCursor:
    with db.sessionmaker() as session:
        return session.get_one(FeedCursor, push.CURSOR_NAME)


def alerts(db: Database) -> list[Alert]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(Alert).where(Alert.kind == push.ALERT_KIND)))


@pytest.fixture
def receiver() -> Iterator[FeedReceiver]:
    with FeedReceiver() as server:
        yield server


@pytest.fixture
def webhook(receiver: FeedReceiver) -> Iterator[FeedWebhook]:
    with FeedWebhook(receiver.url, SECRET, timeout=5) as client:
        yield client


def run(db: Database, webhook: push.Receiver, policy: Policy = QUICK) -> push.Report:
    """One delivery run, after any backoff the last failure asked for."""
    time.sleep(QUICK.backoff_max * 2)
    return deliver(db, webhook, policy)


# -- batches and the cursor ----------------------------------------------------------------


def test_batches_go_out_in_feed_order(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """250 events go out as batches of 100, 100 and 50, each verified, in the feed's order."""
    write(db, 250)
    report = run(db, webhook)
    assert (report.batches, report.events) == (3, 250)
    assert [len(r.events) for r in receiver.requests] == [100, 100, 50]
    assert all(r.verified for r in receiver.requests)
    assert receiver.delivered_ids() == feed_ids(db)
    assert report.cursor == receiver.requests[-1].events[-1]["cursor"]


def test_pushed_events_are_the_envelopes_the_pull_api_returns(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """Each pushed event parses to exactly the envelope GET /v1/events gives for it."""
    with db.session() as session:
        emit_for(session, EventType.SYNC_PROGRESS, None, {"phase": 1, "text": "é ✓", "n": None})
    write(db, 2)
    run(db, webhook)
    with db.sessionmaker() as session:
        pulled = read(session, Cursor(), 10).events
    assert receiver.requests[0].events == pulled


def test_webhook_id_names_the_batch_first_and_last_events(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """webhook-id is feed_<first cursor>_<last cursor> of the batch it carries."""
    write(db, 3)
    run(db, webhook)
    [request] = receiver.requests
    first, last = request.events[0]["cursor"], request.events[-1]["cursor"]
    assert request.webhook_id == f"feed_{first}_{last}"


def test_the_cursor_advances_only_after_a_2xx(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """A 500 leaves the cursor where it was and the batch pending, with the error recorded."""
    write(db, 5)
    receiver.statuses = [500]
    report = run(db, webhook)
    assert report.batches == 0
    assert report.error is not None
    assert "HTTP 500" in report.error
    row = cursor(db)
    assert (row.tx, row.event_id) == (0, 0)
    assert row.pending_event_id == feed_ids(db)[-1]
    assert row.attempts == 1
    assert "HTTP 500" in (row.last_error or "")


def test_a_retry_resends_the_same_batch_with_the_same_webhook_id(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """After a failure, the same events go out byte for byte under the same webhook-id, even
    though more events were written meanwhile; those follow in the next batch."""
    write(db, 5)
    receiver.statuses = [503]
    run(db, webhook)
    write(db, 3, start=5)
    run(db, webhook)
    failed, retried, following = receiver.requests
    assert retried.webhook_id == failed.webhook_id
    assert retried.body == failed.body
    assert retried.verified
    assert [e["data"]["n"] for e in following.events] == [5, 6, 7]
    assert receiver.delivered_ids() == feed_ids(db)


def test_a_run_waits_out_the_backoff_before_retrying(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """Right after a failure a run sends nothing and says how long to wait; once the wait has
    passed the batch goes out."""
    policy = Policy(max_attempts=8, backoff=10, backoff_max=60)
    write(db, 2)
    receiver.statuses = [500]
    with freeze_time(utcnow()) as clock:
        deliver(db, webhook, policy)
        waiting = deliver(db, webhook, policy)
        assert len(receiver.requests) == 1
        assert waiting.waiting is not None
        assert 5 <= waiting.waiting <= 10
        clock.tick(timedelta(seconds=10.1))
        assert deliver(db, webhook, policy).batches == 1
    assert len(receiver.requests) == 2


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    """The n-th wait is between half and all of backoff * 2^(n-1), never above the cap."""
    policy = Policy(backoff=1, backoff_max=30)
    for attempts, full in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (40, 30)]:
        wait = policy.wait("feed_0-1_0-9", attempts)
        assert full / 2 <= wait <= full
    assert policy.wait("feed_0-1_0-9", 3) == policy.wait("feed_0-1_0-9", 3)


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(
    db: Database, receiver: FeedReceiver
) -> None:
    """A request that times out counts as a failure; the cursor stays."""
    write(db, 1)
    receiver.delay = 0.5
    with FeedWebhook(receiver.url, SECRET, timeout=0.1) as slow:
        report = run(db, slow)
    assert report.error is not None
    assert "no answer in time" in report.error
    assert cursor(db).event_id == 0


def test_a_refused_connection_is_a_failed_attempt(db: Database) -> None:
    """Nothing listening at the URL: a failed attempt, the cursor stays."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write(db, 1)
    with FeedWebhook(f"http://127.0.0.1:{port}/feed", SECRET, timeout=1) as nowhere:
        report = run(db, nowhere)
    assert report.error is not None
    assert "could not reach the receiver" in report.error
    assert cursor(db).attempts == 1


def test_a_run_ends_when_its_budget_is_spent(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """With no budget left after the first batch, the run stops and says there may be more."""
    write(db, 150)
    report = run(db, webhook, Policy(batch_size=100, budget=0))
    assert (report.batches, report.more) == (1, True)
    assert run(db, webhook).events == 50


# -- failing, the alert, recovery ----------------------------------------------------------


def test_push_is_failing_after_the_bounded_attempts_with_an_alert(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """Below max_attempts failures nothing is raised; the max_attempts-th marks the cursor
    failing and raises one service-wide feed_push_failing alert."""
    write(db, 2)
    receiver.fail_share = 1.0
    for _ in range(QUICK.max_attempts - 1):
        run(db, webhook)
    assert cursor(db).failing_since is None
    assert alerts(db) == []
    run(db, webhook)
    row = cursor(db)
    assert row.failing_since is not None
    assert row.attempts == QUICK.max_attempts
    [alert] = alerts(db)
    assert alert.onboarding_id is None
    assert alert.acknowledged_at is None
    assert "HTTP 500" in alert.message


def test_a_failing_push_keeps_trying_and_resolves_the_alert_when_a_batch_succeeds(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """Failing does not stop delivery: once the receiver answers again the cursor moves on,
    the failing state is cleared and the alert resolved."""
    write(db, 2)
    receiver.fail_share = 1.0
    for _ in range(QUICK.max_attempts + 2):
        run(db, webhook)
    assert len(alerts(db)) == 1
    receiver.fail_share = 0.0
    report = run(db, webhook)
    assert report.events == 4  # the two, then the push's own alert raised and resolved
    row = cursor(db)
    assert (row.failing_since, row.last_error, row.attempts) == (None, None, 0)
    assert row.delivered_at is not None
    [alert] = alerts(db)
    assert alert.acknowledged_at is not None
    assert receiver.delivered_ids() == feed_ids(db)


# -- one deliverer -------------------------------------------------------------------------


class Reentrant:
    """A receiver that, while a batch is in flight, starts a second run on the same feed."""

    def __init__(self, db: Database, inner: FeedWebhook) -> None:
        self.db, self.inner = db, inner
        self.second: list[push.Report] = []

    def post(self, message_id: str, body: str) -> None:
        self.second.append(deliver(self.db, self.inner, QUICK))
        self.inner.post(message_id, body)


def test_a_second_deliverer_is_turned_away_while_one_runs(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """A run that starts while another holds the feed sends nothing and reports busy."""
    write(db, 3)
    outer = Reentrant(db, webhook)
    assert deliver(db, outer, QUICK).events == 3
    assert [r.busy for r in outer.second] == [True]
    assert [r.events for r in outer.second] == [0]
    assert len(receiver.requests) == 1


# -- rewind and status ---------------------------------------------------------------------


def test_rewind_redelivers_after_the_event_named(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """Rewound to the fifth event's cursor, delivery sends the sixth onwards again."""
    write(db, 8)
    run(db, webhook)
    ids = feed_ids(db)
    fifth = receiver.requests[0].events[4]["cursor"]
    with db.session() as session:
        moved = rewind(session, Cursor.decode(fifth))
    assert moved.ahead == 3
    run(db, webhook)
    assert [e["id"] for e in receiver.requests[-1].events] == ids[5:]


def test_rewind_refuses_a_place_no_event_has(db: Database) -> None:
    """A well-formed cursor that names no event of the feed is refused; nothing moves."""
    write(db, 2)
    with db.session() as session, pytest.raises(RewindError, match="no event"):
        rewind(session, Cursor(0, 999))
    with db.sessionmaker() as session:
        assert session.get(FeedCursor, push.CURSOR_NAME) is None


def test_rewind_clears_the_failing_state_and_resolves_the_alert(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """An operator's rewind drops the pending batch, the attempts and the failing state."""
    write(db, 2)
    receiver.fail_share = 1.0
    for _ in range(QUICK.max_attempts):
        run(db, webhook)
    with db.session() as session:
        rewind(session, Cursor())
    row = cursor(db)
    assert (row.pending_tx, row.attempts, row.failing_since, row.last_error) == (
        None,
        0,
        None,
        None,
    )
    [alert] = alerts(db)
    assert alert.acknowledged_at is not None


class RewindMidway:
    """A receiver that acknowledges a batch while an operator rewinds the cursor."""

    def __init__(self, db: Database, inner: FeedWebhook) -> None:
        self.db, self.inner = db, inner

    def post(self, message_id: str, body: str) -> None:
        with self.db.session() as session:
            rewind(session, Cursor())
        self.inner.post(message_id, body)


def test_a_rewind_during_a_request_is_not_overwritten(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """The run that sent the batch sees the cursor moved and stops; the rewind stands."""
    write(db, 4)
    report = deliver(db, RewindMidway(db, webhook), QUICK)
    assert report.batches == 0
    assert (cursor(db).tx, cursor(db).event_id) == (0, 0)
    assert run(db, webhook).events == 4


def test_status_reports_cursor_pending_batch_and_lag(
    db: Database, receiver: FeedReceiver, webhook: FeedWebhook
) -> None:
    """Status shows the cursor, the batch awaiting retry, the lag in events and in seconds
    (the age of the oldest undelivered event), and the last error."""
    settings = make_settings(feed_webhook_url=receiver.url, feed_webhook_secret=SECRET)
    with freeze_time(utcnow()) as clock:
        write(db, 3)
        deliver(db, webhook, Policy(batch_size=2))
        write(db, 4, start=3)
        clock.tick(timedelta(seconds=90))
        receiver.statuses = [500]
        deliver(db, webhook, Policy(batch_size=2))
        with db.sessionmaker() as session:
            state = status(session, settings)
    delivered = receiver.requests[1].events[-1]["cursor"]
    assert state["enabled"] is True
    assert state["url"] == receiver.url
    assert state["cursor"] == delivered
    assert state["lag_events"] == 4
    assert state["lag_seconds"] == 90.0
    assert state["pending"]["attempts"] == 1
    assert state["pending"]["webhook_id"] == receiver.requests[-1].webhook_id
    assert state["failing"] is False
    assert "HTTP 500" in state["last_error"]
    assert state["delivered_at"] is not None


def test_status_of_a_feed_never_pushed(db: Database, settings: Settings) -> None:
    """Before any run: push off, cursor at the start, everything in the feed is lag."""
    write(db, 2)
    with db.sessionmaker() as session:
        state = status(session, settings)
    assert state["enabled"] is False
    assert state["url"] is None
    assert (state["cursor"], state["lag_events"], state["pending"]) == ("0-0", 2, None)
