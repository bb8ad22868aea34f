"""The throughput guard and the send ledger on the real Redis, with processes competing.

Only Redis is needed (DB 14 by default, ``COEX_TEST_THROTTLE_REDIS_URL``), so this module
replaces the integration conftest's autouse ``_clean_stack`` (which would start PostgreSQL, a
worker and the web app) with one that cleans only its own keys: every test uses a fresh key
prefix and deletes what it made, never flushing the DB.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from benchmarks._harness import ServiceUnavailableError, check_redis
from onboarding.outbound.ledger import ClaimState, RedisSendLedger
from onboarding.outbound.throttle import Shape, TokenBucket

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("COEX_TEST_THROTTLE_REDIS_URL", "redis://127.0.0.1:6379/14")
NUMBER = "106540352242922"
RATE = 20.0
COMPETE_SECONDS = 3.0


@pytest.fixture(autouse=True)
def _clean_stack() -> None:
    """Overrides the conftest's: these tests need Redis only, not the whole stack."""


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    """A Redis client on the test DB; every test here fails, naming Redis, if it is down."""
    try:
        check_redis(REDIS_URL, hint="(set COEX_TEST_THROTTLE_REDIS_URL)")
    except ServiceUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    connection.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"coexist:test:{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def connect(client: redis.Redis) -> Iterator[Callable[[], redis.Redis]]:
    """More connections, as other workers would have; closed after the test."""
    made: list[redis.Redis] = []

    def new() -> redis.Redis:
        made.append(redis.Redis.from_url(REDIS_URL))
        return made[-1]

    yield new
    for connection in made:
        connection.close()


def compete(
    url: str, prefix: str, burst: float | None, headroom: float, seconds: float, ready: Any
) -> list[float]:
    """One competing worker (a spawned process): acquire tokens for ``seconds``, return when."""
    connection = redis.Redis.from_url(url)
    bucket = TokenBucket(
        connection, default_rate=RATE, shape=Shape(burst=burst, headroom=headroom), prefix=prefix
    )
    taken: list[float] = []
    ready.wait()
    end = time.time() + seconds
    while time.time() < end:
        if bucket.acquire(NUMBER, timeout=min(0.5, max(0.0, end - time.time()))):
            taken.append(time.time())
    connection.close()
    return taken


def run_two_workers(prefix: str, *, burst: float | None, headroom: float) -> list[float]:
    """Two spawned processes competing for one number; every acquisition time, sorted."""
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    try:
        ready = manager.Barrier(2)
        with context.Pool(2) as pool:
            args = (REDIS_URL, prefix, burst, headroom, COMPETE_SECONDS, ready)
            jobs = [pool.apply_async(compete, args) for _ in range(2)]
            results = [job.get(timeout=60) for job in jobs]
    finally:
        manager.shutdown()
    assert all(results), "each worker got tokens"
    return sorted(t for times in results for t in times)


def sliding_max(times: list[float], window: float = 1.0) -> int:
    """The most acquisitions in any half-open window of ``window`` seconds."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def per_second(times: list[float]) -> list[int]:
    """Acquisitions per whole second from the first one."""
    counts = [0] * (int(times[-1] - times[0]) + 1)
    for t in times:
        counts[int(t - times[0])] += 1
    return counts


def test_default_shape_keeps_every_second_under_the_rate(prefix: str) -> None:
    """Two processes competing for 3 s never take more than 20 tokens in any sliding second,
    and together reach at least 90 % of the 19/s the default headroom allows."""
    times = run_two_workers(prefix, burst=1.0, headroom=0.05)

    elapsed = times[-1] - times[0]
    assert sliding_max(times) <= RATE
    assert len(times) <= 1 + 0.95 * RATE * elapsed + 1
    assert len(times) >= 0.9 * 0.95 * RATE * elapsed


def test_burst_equal_to_rate_stays_within_the_bucket_bound(prefix: str) -> None:
    """With burst = rate and no headroom, two processes take at most rate * elapsed + burst in
    all, at most rate + burst in the first second and the rate in every later one (+1 for
    seconds measured on our clock rather than Redis's)."""
    times = run_two_workers(prefix, burst=None, headroom=0.0)

    elapsed = times[-1] - times[0]
    seconds = per_second(times)
    assert len(times) <= RATE * elapsed + RATE + 1
    assert seconds[0] <= 2 * RATE
    assert max(seconds[1:-1]) <= RATE + 1


def test_redis_bucket_answers_like_the_local_one(client: redis.Redis, prefix: str) -> None:
    """A fresh number gets one token, then a wait of ceil(1000 / 19) ms."""
    bucket = TokenBucket(client, prefix=prefix)

    assert bucket.try_acquire(NUMBER) == 0
    assert 0.045 <= bucket.try_acquire(NUMBER) <= 0.053


def test_refill_follows_redis_time(client: redis.Redis, prefix: str) -> None:
    """Half a second after a 20/s bucket (burst = rate) is drained, about ten tokens are back."""
    bucket = TokenBucket(client, prefix=prefix, shape=Shape(burst=None, headroom=0))
    while bucket.try_acquire(NUMBER) == 0:
        pass

    time.sleep(0.5)
    refilled = 0
    while bucket.try_acquire(NUMBER) == 0:
        refilled += 1

    assert 9 <= refilled <= 11


def test_override_is_seen_by_every_worker(
    client: redis.Redis, connect: Callable[[], redis.Redis], prefix: str
) -> None:
    """A rate set through one client applies to a bucket on another connection."""
    TokenBucket(client, prefix=prefix).set_rate(NUMBER, 5)
    other = TokenBucket(connect(), prefix=prefix)

    other.try_acquire(NUMBER)

    assert other.rate_for(NUMBER) == 5
    assert 0.2 <= other.try_acquire(NUMBER) <= 0.211


def test_cleared_override_restores_the_default(client: redis.Redis, prefix: str) -> None:
    """After clear_rate the number runs at the default again."""
    bucket = TokenBucket(client, prefix=prefix)
    bucket.set_rate(NUMBER, 5)

    bucket.clear_rate(NUMBER)

    assert bucket.rate_for(NUMBER) == 20
    assert client.hget(f"{prefix}:overrides", NUMBER) is None


def test_bucket_key_expires(client: redis.Redis, prefix: str) -> None:
    """A bucket's key carries a TTL, so idle numbers leave nothing behind."""
    bucket = TokenBucket(client, prefix=prefix, ttl=30)

    bucket.try_acquire(NUMBER)

    assert 0 < client.pttl(bucket.key(NUMBER)) <= 30_000


def test_slow_override_keeps_its_bucket_until_refilled(client: redis.Redis, prefix: str) -> None:
    """At 0.01/s a bucket takes 100 s to refill, so its key lives at least twice that."""
    bucket = TokenBucket(client, prefix=prefix, ttl=30)
    bucket.set_rate(NUMBER, 0.01)

    bucket.try_acquire(NUMBER)

    assert client.pttl(bucket.key(NUMBER)) > 200_000


def test_ledger_claims_a_key_once(connect: Callable[[], redis.Redis], prefix: str) -> None:
    """Eight threads claiming one key at once: exactly one holds it, the others see its intent."""
    ledgers = [RedisSendLedger(connect(), prefix=prefix) for _ in range(8)]
    barrier = threading.Barrier(len(ledgers))
    states: list[ClaimState] = []

    def claim(ledger: RedisSendLedger) -> None:
        barrier.wait()
        states.append(ledger.claim(7, "order-7").state)

    threads = [threading.Thread(target=claim, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(states) == sorted([ClaimState.NEW] + [ClaimState.INTENT] * 7)


def test_ledger_remembers_the_wamid(client: redis.Redis, prefix: str) -> None:
    """Once sent, the key answers its wamid and time, and expires with the ledger's TTL."""
    ledger = RedisSendLedger(client, prefix=prefix, ttl=3600)
    ledger.claim(7, "order-7")

    ledger.mark_sent(7, "order-7", "wamid.HBgL1", 1_780_000_000.0)

    claim = ledger.claim(7, "order-7")
    assert (claim.state, claim.wamid, claim.at) == (ClaimState.SENT, "wamid.HBgL1", 1_780_000_000.0)
    assert 0 < client.pttl(ledger.key(7, "order-7")) <= 3_600_000


def test_ledger_release_needs_the_owner(client: redis.Redis, prefix: str) -> None:
    """Only the claim's owner frees the key; anyone else's release leaves the intent."""
    ledger = RedisSendLedger(client, prefix=prefix)
    owner = ledger.claim(7, "order-7").owner
    assert owner is not None

    ledger.release(7, "order-7", "someone-else")
    assert ledger.claim(7, "order-7").state is ClaimState.INTENT
    ledger.release(7, "order-7", owner)
    assert ledger.claim(7, "order-7").state is ClaimState.NEW


def test_ledger_unknown_is_kept(client: redis.Redis, prefix: str) -> None:
    """A key marked unknown stays unknown: it is never handed out again."""
    ledger = RedisSendLedger(client, prefix=prefix)
    ledger.claim(7, "order-7")

    ledger.mark_unknown(7, "order-7")

    assert ledger.claim(7, "order-7").state is ClaimState.UNKNOWN


def test_ledger_remembers_the_address(client: redis.Redis, prefix: str) -> None:
    """Once sent, the key in Redis answers how the person was addressed (to or recipient)."""
    ledger = RedisSendLedger(client, prefix=prefix, ttl=3600)
    ledger.claim(7, "order-8")

    ledger.mark_sent(
        7, "order-8", "wamid.HBgL2", 1_780_000_000.0, address=("recipient", "US.1349120865530")
    )

    claim = ledger.claim(7, "order-8")
    assert (claim.wamid, claim.address) == ("wamid.HBgL2", ("recipient", "US.1349120865530"))
