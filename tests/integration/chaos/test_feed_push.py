"""Chaos: the worker pushing the feed is SIGKILLed in the middle of a request.

The killed worker's advisory lock dies with its database connection, so the next worker takes
over at once; the batch that was in flight is still pending (its end was committed before it
was sent) and goes out again under the same webhook-id, with the same body. The receiver may
have stored it already (it answered, to a closed socket): that copy is the at-least-once
duplicate, and it is recognisable by its webhook-id.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks._harness import BrokerClient, StackConfig, free_port, poll_until, start_worker
from models import Database, FeedCursor
from onboarding.feed import push
from onboarding.feed.events import EventType, emit_for
from onboarding.feed.log import Cursor, latest, read
from onboarding.sandbox import SandboxServer
from tests.onboarding.feed.receiver import SECRET, FeedReceiver

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def kick_until(broker: BrokerClient, done: Callable[[], bool], what: str) -> None:
    """Send coexist.feed.push every 0.2 s (beat's job) until ``done()``."""
    deadline = time.monotonic() + 60
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within 60 s")
        broker.send("coexist.feed.push")
        time.sleep(0.2)


def test_a_worker_killed_mid_request_leaves_the_batch_to_be_sent_again(
    db: Database,
    broker: BrokerClient,
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    tmp_path: Path,
) -> None:
    """SIGKILL during a request: a new worker resends that batch (same webhook-id, same body)
    and then the rest; once copies are dropped by webhook-id, the receiver has the feed in
    order with no gap."""
    port = free_port()
    config = dataclasses.replace(
        stack_config,
        overrides={
            **stack_config.overrides,
            "feed_webhook_url": f"http://127.0.0.1:{port}/feed",
            "feed_webhook_secret": SECRET,
            "feed_webhook_batch_size": "20",
            "feed_webhook_timeout": "10",
        },
    )
    with db.session() as session:
        for n in range(60):
            emit_for(session, EventType.MESSAGES_STORED, None, {"source": "live", "n": n})
    with db.sessionmaker() as session:
        expected = [e["id"] for e in read(session, Cursor(), 1000).events]
    with FeedReceiver(port=port, delay=3.0) as receiver:
        first = start_worker(
            config, sandbox_server.url, tmp_path / "first", broker=broker, queues=("feed",)
        )
        with first:
            kick_until(broker, lambda: receiver.in_flight > 0, "a request in flight")
            assert first.pid is not None
            os.killpg(first.pid, signal.SIGKILL)
            poll_until(lambda: first.running, lambda r: not r, what="the kill", timeout=10)
        receiver.delay = 0.0
        second = start_worker(
            config, sandbox_server.url, tmp_path / "second", broker=broker, queues=("feed",)
        )
        with second:
            kick_until(broker, lambda: all_acknowledged(db), "every batch acknowledged")
    cut, *rest = receiver.requests
    again = [r for r in rest if r.webhook_id == cut.webhook_id]
    assert again
    assert all(r.body == cut.body for r in again)
    seen: set[str] = set()
    delivered: list[int] = []
    for request in receiver.acknowledged():
        if request.webhook_id not in seen:
            seen.add(request.webhook_id)
            delivered += [e["id"] for e in request.events]
    assert delivered == expected


def all_acknowledged(db: Database) -> bool:
    """The push cursor stands at the feed's last event with nothing pending."""
    with db.sessionmaker() as session:
        row = session.get(FeedCursor, push.CURSOR_NAME)
        end = latest(session)
    return row is not None and row.pending_tx is None and Cursor(row.tx, row.event_id) == end
