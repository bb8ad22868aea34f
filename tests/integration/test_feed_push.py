"""Push delivery on the real stack: a Celery worker on the ``feed`` queue pushes the feed from
PostgreSQL to a receiver on 127.0.0.1 that verifies every request with ``standardwebhooks``.
Nothing is lost, reordered or skipped whatever the receiver does, and two deliverers never
send at once."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from benchmarks._harness import (
    BrokerClient,
    ManagedProcess,
    StackConfig,
    free_port,
    start_worker,
)
from models import Alert, Database, FeedCursor
from onboarding.feed import push
from onboarding.feed.events import EventType, emit_for
from onboarding.feed.log import Cursor, read
from onboarding.sandbox import SandboxServer
from tests.onboarding.feed.receiver import SECRET, FeedReceiver

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def push_port() -> int:
    """Where the feed worker pushes; a receiver is started there only when a test wants one."""
    return free_port()


@pytest.fixture(scope="module")
def feed_worker(
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    db: Database,
    broker: BrokerClient,
    tmp_path_factory: pytest.TempPathFactory,
    push_port: int,
) -> Iterator[ManagedProcess]:
    """A prefork worker on ``feed`` pushing to 127.0.0.1:push_port with quick retries."""
    config = dataclasses.replace(
        stack_config,
        overrides={
            **stack_config.overrides,
            "feed_webhook_url": f"http://127.0.0.1:{push_port}/feed",
            "feed_webhook_secret": SECRET,
            "feed_webhook_batch_size": "20",
            "feed_webhook_timeout": "2",
            "feed_webhook_max_attempts": str(MAX_ATTEMPTS),
            "feed_webhook_backoff_seconds": "0.05",
            "feed_webhook_backoff_max_seconds": "0.3",
            "feed_push_budget_seconds": "5",
        },
    )
    logs = tmp_path_factory.mktemp("feed-worker-logs")
    process = start_worker(
        config, sandbox_server.url, Path(logs), broker=broker, queues=("feed",), concurrency=2
    )
    with process:
        yield process


def write(db: Database, first: int, count: int, per_transaction: int = 10) -> None:
    for start in range(first, first + count, per_transaction):
        with db.session() as session:
            for n in range(start, min(start + per_transaction, first + count)):
                emit_for(session, EventType.MESSAGES_STORED, None, {"source": "live", "n": n})


def feed_ids(db: Database) -> list[int]:
    """Every readable event's id, in feed order."""
    ids: list[int] = []
    cursor = Cursor()
    with db.sessionmaker() as session:
        while page := read(session, cursor, 1000).events:
            ids += [e["id"] for e in page]
            cursor = Cursor.decode(page[-1]["cursor"])
    return ids


def push_row(db: Database) -> FeedCursor | None:
    with db.sessionmaker() as session:
        return session.get(FeedCursor, push.CURSOR_NAME)


def push_alerts(db: Database) -> list[Alert]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(Alert).where(Alert.kind == push.ALERT_KIND)))


def kick_until(
    broker: BrokerClient, done: Callable[[], bool], *, what: str, timeout: float = 60
) -> None:
    """Send coexist.feed.push every 0.2 s (beat's job) until ``done()``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        broker.send("coexist.feed.push")
        time.sleep(0.2)


def assert_in_order_without_gaps(receiver: FeedReceiver, expected: list[int]) -> None:
    """Acknowledged batches carry exactly the feed, in order; a batch sent more than once
    always went out under the same webhook-id with the same body."""
    assert receiver.delivered_ids() == expected
    assert all(r.verified for r in receiver.requests)
    bodies: dict[str, set[bytes]] = defaultdict(set)
    carriers: dict[int, set[str]] = defaultdict(set)
    for request in receiver.requests:
        bodies[request.webhook_id].add(request.body)
        for event in request.events:
            carriers[event["id"]].add(request.webhook_id)
    assert all(len(b) == 1 for b in bodies.values())
    assert all(len(ids) == 1 for ids in carriers.values())


#: How long the receiver stays down while events keep coming.
DOWN_SECONDS = 60


def test_a_receiver_down_for_a_minute_gets_every_event_in_order_once_it_is_up(
    db: Database, broker: BrokerClient, feed_worker: ManagedProcess, push_port: int
) -> None:
    """For a minute nothing listens while events keep coming: push fails, is marked failing
    and raises the alert, and keeps trying; once the receiver is up it gets every event in
    feed order with no gap, and the alert is resolved."""
    write(db, 0, 150)
    kick_until(
        broker,
        lambda: (row := push_row(db)) is not None and row.failing_since is not None,
        what="push marked failing while the receiver is down",
    )
    assert len(push_alerts(db)) == 1
    down_until = time.monotonic() + DOWN_SECONDS
    written = 150
    while time.monotonic() < down_until:  # beat keeps kicking; events keep coming
        write(db, written, 5)
        written += 5
        broker.send("coexist.feed.push")
        time.sleep(0.5)
    row = push_row(db)
    assert row is not None
    assert row.failing_since is not None
    assert (row.tx, row.event_id) == (0, 0)  # nothing acknowledged, nothing skipped
    with FeedReceiver(port=push_port) as receiver:
        # The feed grows while it is pushed: the push's own alert is in it, raised and resolved.
        kick_until(
            broker,
            lambda: receiver.delivered_ids() == feed_ids(db),
            what="every event delivered",
        )
        assert_in_order_without_gaps(receiver, feed_ids(db))
        types = [e["type"] for r in receiver.requests if r.status == 200 for e in r.events]
        assert {"alert.raised", "alert.resolved"} <= set(types)
        stored = [e for r in receiver.requests if r.status == 200 for e in r.events]
        assert len([e for e in stored if e["type"] == "messages.stored"]) == written
    row = push_row(db)
    assert row is not None
    assert (row.failing_since, row.attempts) == (None, 0)
    [alert] = push_alerts(db)
    assert alert.acknowledged_at is not None


def test_a_receiver_failing_a_third_of_requests_loses_nothing(
    db: Database, broker: BrokerClient, feed_worker: ManagedProcess, push_port: int
) -> None:
    """With 30 % of requests answered 500 at random while events keep coming, every event
    arrives, in order; copies only ever repeat a batch under its webhook-id."""
    writer = threading.Thread(target=write, args=(db, 0, 400, 7))
    with FeedReceiver(port=push_port, fail_share=0.3, seed=11) as receiver:
        writer.start()
        kick_until(broker, lambda: not writer.is_alive(), what="the writer")
        writer.join()
        kick_until(
            broker,
            lambda: receiver.delivered_ids() == feed_ids(db),
            what="every event delivered",
            timeout=120,
        )
        assert_in_order_without_gaps(receiver, feed_ids(db))
        assert any(r.status == 500 for r in receiver.requests)


def test_two_deliverers_at_once_never_interleave(db: Database, stack_config: StackConfig) -> None:
    """Two processes' worth of deliverers (separate engines) running together: the receiver
    never has two requests in flight, and gets the feed once, in order."""
    write(db, 0, 300)
    expected = feed_ids(db)
    policy = push.Policy(batch_size=10, budget=0.3)
    reports: list[push.Report] = []
    with FeedReceiver(delay=0.01) as receiver:

        def deliverer() -> None:
            own = Database(stack_config.database_url)
            try:
                with push.FeedWebhook(receiver.url, SECRET, timeout=5) as webhook:
                    deadline = time.monotonic() + 60
                    while len(receiver.delivered_ids()) < len(expected):
                        assert time.monotonic() < deadline
                        reports.append(push.deliver(own, webhook, policy))
            finally:
                own.dispose()

        threads = [threading.Thread(target=deliverer) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert receiver.most_at_once == 1
        assert_in_order_without_gaps(receiver, expected)
    assert any(r.busy for r in reports)
