"""The send guard: in memory without a Redis broker, on Redis with one, built once."""

from __future__ import annotations

from config import Settings
from models import Database
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outbound.guard import guard_for
from onboarding.outbound.ledger import LocalSendLedger, RedisSendLedger
from onboarding.outbound.throttle import LocalTokenBucket, TokenBucket
from onboarding.runtime import Runtime


def test_guard_is_in_memory_without_a_redis_broker(rt: Runtime) -> None:
    """With the in-memory broker (demo, tests) the guard is the in-process bucket and ledger,
    built once per runtime."""
    guard = guard_for(rt)

    assert isinstance(guard.throttle, LocalTokenBucket)
    assert isinstance(guard.ledger, LocalSendLedger)
    assert guard_for(rt) is guard


def test_guard_uses_redis_when_the_broker_is_redis(
    settings: Settings, db: Database, cipher: TokenCipher, graph: GraphClient
) -> None:
    """With a Redis broker the guard's bucket and ledger live in Redis, at the configured rate."""
    redis_settings = settings.model_copy(
        update={"broker_url": "redis://127.0.0.1:6379/14", "throughput_per_number": 5}
    )
    runtime = Runtime(settings=redis_settings, db=db, cipher=cipher, graph=graph)

    guard = guard_for(runtime)

    assert isinstance(guard.throttle, TokenBucket)
    assert guard.throttle.default_rate == 5
    assert isinstance(guard.ledger, RedisSendLedger)
