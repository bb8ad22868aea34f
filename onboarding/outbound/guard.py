"""What a process sends with: the per-number throttle and the idempotency ledger, together.

:func:`guard_for` builds the guard once per :class:`~onboarding.runtime.Runtime` and keeps it
in :attr:`Runtime.send_guard <onboarding.runtime.Runtime.send_guard>` (tests put their own
there). Building it does not connect: a Redis that is down fails the first send, not this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from onboarding.outbound.ledger import LocalSendLedger, RedisSendLedger, SendLedger
from onboarding.outbound.throttle import LocalTokenBucket, Throttle, TokenBucket

if TYPE_CHECKING:
    from onboarding.runtime import Runtime

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, slots=True)
class SendGuard:
    """The throughput guard and the idempotency ledger a process sends with."""

    throttle: Throttle
    ledger: SendLedger


def guard_for(runtime: Runtime) -> SendGuard:
    """The process's guard, built once per runtime: on the broker's Redis when the broker is
    Redis (shared by every worker), else in memory (embedded demo, eager tests)."""
    if runtime.send_guard is not None:
        return runtime.send_guard
    settings = runtime.settings
    rate = float(settings.throughput_per_number)
    if settings.broker_url.startswith(REDIS_SCHEMES):
        client = redis.Redis.from_url(
            settings.broker_url, socket_connect_timeout=5, socket_timeout=5
        )
        guard = SendGuard(TokenBucket(client, default_rate=rate), RedisSendLedger(client))
    else:
        guard = SendGuard(LocalTokenBucket(default_rate=rate), LocalSendLedger())
    runtime.send_guard = guard
    return guard
