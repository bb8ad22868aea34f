"""Beat's scheduler: Celery's own, firing only while it holds a lock in Redis.

A rolling deploy, or a beat process on a second host, must not fire every schedule twice. So
beat fires only while it holds ``coexist:beat:lock`` in the broker's Redis: a key set with
``NX`` and a time to live (``COEX_BEAT_LOCK_TIMEOUT``), renewed on every loop (beat loops at
least three times per timeout). A second beat finds the key taken and waits, checking again
every few seconds; it takes over at most one timeout after the first one died or lost Redis.

Why not keep the schedule itself in Redis. coexist runs Redis without persistence (a restart
empties it; beat's sweeps re-dispatch what that loses): a scheduler that keeps its entries or its
lock only in Redis stops firing, or exits, when Redis restarts. This one keeps Celery's schedule
file, and a lock that vanished with a Redis restart is simply taken again. A beat that cannot
reach Redis fires nothing (it could not send the tasks anyway) and tries again on its next loop.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import redis
import structlog
from celery.beat import PersistentScheduler

log = structlog.get_logger(__name__)

#: The key the holding beat keeps in the broker's Redis.
LOCK_KEY = "coexist:beat:lock"
#: Renew the lock only if this process still holds it: extend its time to live, else 0.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
#: Release the lock only if this process holds it.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class BeatLock:
    """One beat's hold on :data:`LOCK_KEY`: taken with ``NX``, renewed only by its holder."""

    def __init__(self, client: redis.Redis, timeout: float, key: str = LOCK_KEY) -> None:
        self.client = client
        self.key = key
        self.timeout_ms = int(timeout * 1000)
        self.token = uuid.uuid4().hex
        self.held = False

    def hold(self) -> bool:
        """Renew the lock if held, else try to take it; whether this beat holds it now."""
        was_held = self.held
        try:
            if self.held and self.client.eval(_RENEW, 1, self.key, self.token, self.timeout_ms):
                return True
            self.held = bool(self.client.set(self.key, self.token, nx=True, px=self.timeout_ms))
        except redis.RedisError as exc:
            self.held = False
            log.warning("beat_lock_unreachable", error=type(exc).__name__)
            return False
        if self.held:
            log.info("beat_lock_acquired", key=self.key)
        elif was_held:
            log.warning("beat_lock_lost", key=self.key)
        return self.held

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(redis.RedisError):  # else it expires by itself
            self.client.eval(_RELEASE, 1, self.key, self.token)


class LockedScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's file-backed scheduler, firing only while its :class:`BeatLock` is held.

    Configured by ``beat_scheduler = "config.beat:LockedScheduler"`` and the app settings
    ``coexist_beat_lock_url`` and ``coexist_beat_lock_timeout`` (config/celery.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conf = self.app.conf
        timeout = float(conf.coexist_beat_lock_timeout)
        client = redis.Redis.from_url(
            conf.coexist_beat_lock_url, socket_timeout=5, socket_connect_timeout=5
        )
        self.lock = BeatLock(client, timeout)
        #: Seconds between two looks at a lock held by another beat.
        self.wait_interval = max(1.0, min(5.0, timeout / 3))

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.lock.hold():
            return self.wait_interval
        return min(float(super().tick(*args, **kwargs)), self.wait_interval)

    def close(self) -> None:
        self.lock.release()
        super().close()
