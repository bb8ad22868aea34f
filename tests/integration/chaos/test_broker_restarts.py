"""Chaos: Redis SIGKILLed and restarted 20 times in a row under the workers' feet.

A private stack (its own Redis, the urgent worker, a prefork ingest worker and the web app) is
kept busy with a stream of cheap tasks on both workers' queues, as beat sends them. Redis is
killed each time both workers hold a message delivered and not yet acknowledged, so that the
kill lands in the middle of a task and its acknowledgement. Celery 5.7 collects the broken
connection and then closes it; with kombu's own transport, that second close (or the late
acknowledgement) raised an ``AttributeError`` and the worker exited for good (see
``config/broker.py``). Afterwards both worker processes must still be alive, and a whole
onboarding started after the last restart (signup and syncs on the urgent worker, its webhooks
and media on the ingest worker) must be consumed within a bounded wait.

The test prints one ``figures`` line (JSON) with what it measured; ``pytest -rP`` shows it.
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from kombu.exceptions import KombuError

from benchmarks._harness import BrokerClient, ManagedProcess, StackConfig
from config.celery import URGENT_QUEUES
from models import Database, InboxStatus
from onboarding.sandbox import Sandbox, SandboxServer
from tests.integration._flow import (
    DELIVERY,
    ECHOES,
    PROFILE,
    callback,
    finished_signup,
    inbox,
    oracle_for,
    settled,
    start_onboarding,
)
from tests.integration.chaos._report import figures
from tests.integration.chaos._stack import BROKER_DB, PrivateStack, private_stack

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

KILLS = 20
#: How long Redis stays down each time (the worker's next reconnect attempt is 2 s later).
REDIS_DOWN_SECONDS = 0.3
#: Tasks flow for a random time in this range after both workers are back, before the kill.
FLOW_SECONDS = (0.05, 0.25)
#: The stream of cheap tasks: one for each worker every this many seconds, which keeps each
#: worker busy without filling its prefetch (a full worker has no BRPOP in flight).
SEND_EVERY = 0.02
#: How long to wait, before a kill, for both workers to be in the middle of a task.
MID_ACK_WAIT = 3.0
#: Bounded waits: a worker back after a restart, the last batch consumed.
RECONNECT_TIMEOUT = 20.0
FINAL_BATCH_TIMEOUT = 45.0
#: Cheap tasks (no pending rows, no onboarding yet), one on each worker's queues.
STREAM = ("coexist.sync.sweep", "coexist.ingest.redispatch")
WORKERS = ("urgent", "ingest")


class TaskStream:
    """A thread sending :data:`STREAM` through its own Celery client until stopped."""

    def __init__(self, config: StackConfig, graph_url: str) -> None:
        self.client = BrokerClient(config.settings(graph_url))
        self.sent = 0
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-stream", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for task in STREAM:
                    self.client.send(task)
                    self.sent += 1
            except (OSError, redis.RedisError, KombuError):
                self.refused += 1  # Redis is down: the publish retries gave up
            self._stop.wait(SEND_EVERY)

    def __enter__(self) -> TaskStream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10.0)
        self.client.close()


def unacked(stack: PrivateStack) -> Counter[str]:
    """Messages delivered and not yet acknowledged, per worker (none while Redis is down)."""
    client = stack.redis.client(BROKER_DB)
    try:
        entries = client.hvals("unacked")
    except redis.RedisError:
        return Counter()
    finally:
        client.close()
    queues = (json.loads(entry)[2] for entry in entries)  # [message, exchange, routing key]
    return Counter("urgent" if queue in URGENT_QUEUES else "ingest" for queue in queues)


def mid_acknowledgement(stack: PrivateStack) -> bool:
    """Wait (bounded) until each worker holds an unacknowledged message and still consumes.

    Each worker's prefetch is its concurrency (multiplier 1): with one of its messages
    unacknowledged, it is running a task (or acknowledging it) and its BRPOP is in flight.
    """
    deadline = time.monotonic() + MID_ACK_WAIT
    while time.monotonic() < deadline:
        if unacked(stack) == Counter(urgent=1, ingest=1):
            return True
        time.sleep(0.002)
    return False


def reconnected(stack: PrivateStack) -> None:
    """Wait until both workers answer a remote-control ping; fail at once if one exited."""
    for worker in WORKERS:
        stack.workers[worker].wait_until(
            functools.partial(stack.broker.ping, stack.node(worker)),
            what=f"the {worker} worker to reconnect to Redis",
            timeout=RECONNECT_TIMEOUT,
            interval=0.05,
        )


def log_count(process: ManagedProcess, event_prefix: str) -> int:
    """How many log events of ``process`` start with ``event_prefix``."""
    text = process.log_path.read_text(encoding="utf-8", errors="replace")
    return text.count(f'"event": "{event_prefix}')


def test_workers_survive_redis_killed_twenty_times_mid_acknowledgement(
    sandbox: Sandbox,
    db: Database,
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    tmp_path: Path,
) -> None:
    """Redis killed 20 times mid-acknowledgement: both workers live and consume new work."""
    began = time.monotonic()
    overrides = {"media_store": str(tmp_path / "media")}
    pick = random.Random(53)
    cycles: list[float] = []
    reconnects: list[float] = []
    kills_mid_ack = 0
    with private_stack(
        stack_config, sandbox_server.url, tmp_path, overrides=overrides, ingest_concurrency=2
    ) as stack:
        workers = {name: stack.workers[name] for name in WORKERS}
        with TaskStream(stack.config, sandbox_server.url) as stream:
            for _ in range(KILLS):
                cycle_began = time.monotonic()
                time.sleep(pick.uniform(*FLOW_SECONDS))
                kills_mid_ack += mid_acknowledgement(stack)
                stack.redis.kill()
                time.sleep(REDIS_DOWN_SECONDS)
                restarted = time.monotonic()
                stack.redis.start()
                reconnected(stack)
                reconnects.append(time.monotonic() - restarted)
                cycles.append(time.monotonic() - cycle_began)
        streamed = (stream.sent, stream.refused)

        # A fresh batch after the last restart: a whole onboarding, live webhooks and media.
        batch_began = time.monotonic()
        dispatcher = sandbox.configure_webhooks(
            callback_url=callback(stack.web), profile=PROFILE, echoes=ECHOES, delivery=DELIVERY
        )
        onboarding_id = start_onboarding(stack.api, finished_signup(sandbox))
        detail = settled(
            stack.api, db, onboarding_id, dispatcher, stack.broker, timeout=FINAL_BATCH_TIMEOUT
        )
        batch_seconds = time.monotonic() - batch_began
        alive = [name for name, process in workers.items() if process.running]
        unrecoverable = {name: log_count(p, "Unrecoverable error") for name, p in workers.items()}
        acks_lost = {name: log_count(p, "Couldn't ack") for name, p in workers.items()}
        losses = {
            name: log_count(p, "consumer: Connection to broker lost") for name, p in workers.items()
        }

    assert alive == list(WORKERS)
    assert kills_mid_ack >= KILLS // 2, f"only {kills_mid_ack} kills landed mid-acknowledgement"
    assert unrecoverable == {"urgent": 0, "ingest": 0}
    assert losses == {"urgent": KILLS, "ingest": KILLS}  # every kill hit both workers, connected
    assert detail["state"] == "synced"
    assert detail["counts"] == oracle_for(sandbox, detail, PROFILE, echoes=ECHOES)
    assert set(inbox(db)) == {InboxStatus.PROCESSED.value}
    figures(
        "broker_restarts",
        kills=KILLS,
        redis_down_seconds=REDIS_DOWN_SECONDS,
        kill_cycle_seconds_mean=round(statistics.mean(cycles), 2),
        kill_cycle_seconds_max=round(max(cycles), 2),
        reconnect_seconds_max=round(max(reconnects), 2),
        kills_with_both_workers_mid_acknowledgement=kills_mid_ack,
        tasks_streamed=streamed[0],
        sends_refused_while_down=streamed[1],
        connection_losses_logged=losses,
        acks_lost_with_redis=acks_lost,
        workers_alive=len(alive),
        last_batch_deliveries=sum(inbox(db).values()),
        last_batch_consumed_seconds=round(batch_seconds, 2),
        test_seconds=round(time.monotonic() - began, 1),
    )
