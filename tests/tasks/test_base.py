"""The task contract and the after-commit enqueue helper."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from structlog.testing import capture_logs

import tasks.followups
import tasks.ingest
import tasks.sending
import tasks.signup
import tasks.sync  # noqa: F401 - registers the tasks
from models import Database
from tasks.app import app
from tasks.base import enqueue_after_commit

OURS = sorted(name for name in app.tasks if name.startswith("coexist."))


#: Tasks Celery must never terminate halfway when the broker connection drops.
ACKED_ON_RECEIPT = {"coexist.signup.exchange_code"}


def test_every_task_states_the_same_reliability_contract() -> None:
    """Each coexist task acks late (but the code exchange), ignores results, has time limits and
    finite retries."""
    assert OURS == [
        "coexist.erase.run",
        "coexist.erase.sweep",
        "coexist.feed.push",
        "coexist.followups.deliver",
        "coexist.followups.schedule",
        "coexist.ingest.download_media",
        "coexist.ingest.drop_bodies",
        "coexist.ingest.lift_restrictions",
        "coexist.ingest.process_deliveries",
        "coexist.ingest.process_delivery",
        "coexist.ingest.redispatch",
        "coexist.ingest.wake_waiting",
        "coexist.ingest.watchdog",
        "coexist.reconcile.batch",
        "coexist.reconcile.release_overrides",
        "coexist.reconcile.sweep",
        "coexist.relay.forward",
        "coexist.send.send_message",
        "coexist.signup.exchange_code",
        "coexist.signup.resume",
        "coexist.sync.connect",
        "coexist.sync.request_syncs",
        "coexist.sync.sweep",
    ]
    for name in OURS:
        task = app.tasks[name]
        late = name not in ACKED_ON_RECEIPT
        assert task.acks_late is late, name
        assert task.reject_on_worker_lost is late, name
        assert task.ignore_result, name
        assert 0 < task.soft_time_limit < task.time_limit, name
        assert task.max_retries is not None, name
        assert task.retry_backoff, name


def test_tasks_route_to_their_queue() -> None:
    """Signup tasks go to the signup queue, sync tasks to sync."""
    router = app.amqp.router
    assert router.route({}, "coexist.signup.exchange_code")["queue"].name == "signup"
    assert router.route({}, "coexist.signup.resume")["queue"].name == "signup"
    assert router.route({}, "coexist.sync.connect")["queue"].name == "sync"
    assert router.route({}, "coexist.sync.request_syncs")["queue"].name == "sync"
    assert router.route({}, "coexist.ingest.process_delivery")["queue"].name == "ingest"
    assert router.route({}, "coexist.send.send_message")["queue"].name == "send"
    assert router.route({}, "coexist.reconcile.batch")["queue"].name == "followups"


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def apply_async(self, args: tuple[Any, ...]) -> None:
        self.sent.append(args)


def test_enqueue_waits_for_the_commit(db: Database) -> None:
    """A task enqueued inside a transaction is sent only when it commits."""
    recorder = Recorder()
    with db.sessionmaker() as session:
        session.execute(text("SELECT 1"))
        enqueue_after_commit(session, recorder, 7)  # type: ignore[arg-type]
        assert recorder.sent == []
        session.commit()
    assert recorder.sent == [(7,)]


def test_enqueue_is_dropped_on_rollback(db: Database) -> None:
    """A task enqueued in a transaction that rolls back is never sent."""
    recorder = Recorder()
    with db.sessionmaker() as session:
        session.execute(text("SELECT 1"))
        enqueue_after_commit(session, recorder, 7)  # type: ignore[arg-type]
        session.rollback()
        session.execute(text("SELECT 1"))
        session.commit()
    assert recorder.sent == []


def test_broker_failure_is_logged_not_raised() -> None:
    """If the broker is down, enqueueing logs enqueue_failed and returns: the committed row
    stays and the sweeper enqueues its step later."""

    class Down(Recorder):
        def apply_async(self, args: tuple[Any, ...]) -> None:
            raise ConnectionError("broker down")

    with capture_logs() as logs:
        enqueue_after_commit(None, Down(), 1)  # type: ignore[arg-type]
    assert [e["event"] for e in logs] == ["enqueue_failed"]
