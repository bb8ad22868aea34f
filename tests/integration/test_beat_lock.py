"""Beat's lock on the real Redis: of two beat processes one fires the schedule, and the other
takes over when the first dies; a lock lost with a Redis restart is taken again."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from benchmarks._harness import ManagedProcess, StackConfig, start_beat
from onboarding.sandbox import SandboxServer
from tasks.beat import LOCK_KEY, BeatLock

pytestmark = pytest.mark.integration

#: Seconds the lock lives unrenewed in the two-beat test (the setting's minimum).
LOCK_TIMEOUT = 10
SENT = "Sending due task resume-signups"


@pytest.fixture
def client(stack_config: StackConfig) -> redis.Redis:
    return redis.Redis.from_url(stack_config.broker_url)


def test_one_lock_holder_at_a_time(client: redis.Redis) -> None:
    """Of two beats, the first to ask holds the lock and keeps it by renewing it."""
    first, second = BeatLock(client, 5), BeatLock(client, 5)
    assert first.hold()
    assert not second.hold()
    assert first.hold()
    first.release()
    assert second.hold()
    assert not first.hold()


def test_a_lock_left_to_expire_passes_to_the_other_beat(client: redis.Redis) -> None:
    """A beat that stopped renewing (hung, cut off) loses the lock after its timeout, and
    knows it on its next loop."""
    stuck, standby = BeatLock(client, 0.5), BeatLock(client, 0.5)
    assert stuck.hold()
    time.sleep(0.7)
    assert standby.hold()
    assert not stuck.hold()


def test_a_lock_emptied_by_a_redis_restart_is_taken_again(client: redis.Redis) -> None:
    """Redis keeps nothing across a restart: the holder's next loop takes the lock again."""
    holder = BeatLock(client, 5)
    assert holder.hold()
    client.delete(LOCK_KEY)  # what a restart without persistence leaves
    assert holder.hold()
    assert client.get(LOCK_KEY) == holder.token.encode()


def test_an_unreachable_redis_holds_nothing() -> None:
    """A beat that cannot reach Redis fires nothing rather than guess."""
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert not BeatLock(gone, 5).hold()


def sends(process: ManagedProcess) -> int:
    return process.log_tail(2000, max_bytes=1024 * 1024).count(SENT)


def test_two_beat_processes_fire_each_schedule_once(
    stack_config: StackConfig, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    """Two beats run at once: only one sends the 5-second signup resume; when it is killed,
    the other takes over within the lock's timeout."""
    config = dataclasses.replace(
        stack_config,
        overrides={**stack_config.overrides, "beat_lock_timeout": str(LOCK_TIMEOUT)},
    )
    with (
        start_beat(config, sandbox_server.url, tmp_path / "one") as one,
        start_beat(config, sandbox_server.url, tmp_path / "two") as two,
    ):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sends(one) + sends(two) < 3:
            time.sleep(0.5)
        counts = (sends(one), sends(two))
        assert sorted(counts)[0] == 0, counts
        assert sorted(counts)[1] >= 3, counts
        active, standby = (one, two) if counts[0] else (two, one)
        pid = active.pid
        assert pid is not None
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        killed_at = time.monotonic()
        while time.monotonic() < killed_at + LOCK_TIMEOUT + 15 and sends(standby) == 0:
            time.sleep(0.5)
        assert sends(standby) > 0, standby.log_tail()
        assert time.monotonic() - killed_at <= LOCK_TIMEOUT + 15
