"""The throughput guard's bucket arithmetic, on the in-process bucket and a manual clock.

The Redis bucket runs the same arithmetic in Lua; tests/integration/test_throttle_redis.py
checks it on the real Redis, with processes competing.
"""

from __future__ import annotations

import math

import pytest

from onboarding.outbound.throttle import LocalTokenBucket, Shape

NUMBER = "106540352242922"
OTHER = "106540352242923"


class Clock:
    """A monotonic clock that moves only when slept on (or told to)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def bucket(
    clock: Clock, rate: float = 20.0, *, burst: float | None = 1.0, headroom: float = 0.05
) -> LocalTokenBucket:
    shape = Shape(burst=burst, headroom=headroom)
    return LocalTokenBucket(default_rate=rate, shape=shape, clock=clock, sleep=clock.sleep)


def take_all(guard: LocalTokenBucket, number: str = NUMBER) -> int:
    taken = 0
    while guard.try_acquire(number) == 0:
        taken += 1
    return taken


def test_fresh_bucket_gives_one_token_then_paces(clock: Clock) -> None:
    """By default a number gets one token at once, then one every 1 / (0.95 * rate) s."""
    guard = bucket(clock)

    assert guard.try_acquire(NUMBER) == 0
    assert guard.try_acquire(NUMBER) == pytest.approx(1 / 19, abs=0.001)


def test_wait_is_whole_milliseconds_rounded_up(clock: Clock) -> None:
    """The wait is in whole milliseconds, never shorter than the true wait."""
    guard = bucket(clock)
    guard.try_acquire(NUMBER)

    wait = guard.try_acquire(NUMBER)

    assert wait == math.ceil(1000 / 19) / 1000


def test_burst_equal_to_rate_gives_rate_tokens_at_once(clock: Clock) -> None:
    """With burst None (= rate) and no headroom, a full bucket gives 20 tokens at once."""
    guard = bucket(clock, burst=None, headroom=0)

    assert take_all(guard) == 20


def test_tokens_refill_with_elapsed_time(clock: Clock) -> None:
    """Half a second after draining a 20/s bucket, ten tokens are back."""
    guard = bucket(clock, burst=None, headroom=0)
    take_all(guard)

    clock.now += 0.5

    assert take_all(guard) == 10


def test_an_idle_bucket_never_holds_more_than_its_burst(clock: Clock) -> None:
    """An hour of idleness refills the bucket to its burst, not beyond."""
    guard = bucket(clock, burst=3)
    take_all(guard)

    clock.now += 3600

    assert take_all(guard) == 3


def test_long_run_stays_under_the_rate(clock: Clock) -> None:
    """Over 10 s of acquiring, at most burst + 0.95 * rate * 10 tokens are taken."""
    guard = bucket(clock)
    start, taken = clock(), 0
    while clock() - start < 10:
        if guard.acquire(NUMBER, timeout=1.0):
            taken += 1

    assert 180 <= taken <= 1 + 19 * 10


def test_buckets_are_per_number(clock: Clock) -> None:
    """A drained number does not slow another."""
    guard = bucket(clock)
    take_all(guard)

    assert guard.try_acquire(OTHER) == 0


def test_override_sets_the_numbers_rate(clock: Clock) -> None:
    """A number overridden to 5/s waits 1 / (0.95 * 5) s between tokens."""
    guard = bucket(clock)
    guard.set_rate(NUMBER, 5)
    guard.try_acquire(NUMBER)

    assert guard.rate_for(NUMBER) == 5
    assert guard.try_acquire(NUMBER) == pytest.approx(1 / 4.75, abs=0.001)
    assert guard.rate_for(OTHER) == 20


def test_clearing_the_override_restores_the_default(clock: Clock) -> None:
    """After clear_rate, the number runs at the default rate again."""
    guard = bucket(clock)
    guard.set_rate(NUMBER, 5)

    guard.clear_rate(NUMBER)

    assert guard.rate_for(NUMBER) == 20


def test_rate_passed_in_wins_over_the_override(clock: Clock) -> None:
    """A rate given for one call is used instead of the number's override."""
    guard = bucket(clock)
    guard.set_rate(NUMBER, 5)
    guard.try_acquire(NUMBER, rate=100)

    assert guard.try_acquire(NUMBER, rate=100) == pytest.approx(1 / 95, abs=0.001)


def test_lowering_the_rate_caps_a_full_bucket(clock: Clock) -> None:
    """With burst = rate, lowering a full 20/s bucket to 5/s leaves five tokens, not twenty."""
    guard = bucket(clock, burst=None, headroom=0)
    guard.try_acquire(NUMBER)

    guard.set_rate(NUMBER, 5)

    assert take_all(guard) == 5


def test_acquire_sleeps_the_wait_and_takes_the_token(clock: Clock) -> None:
    """acquire sleeps what the bucket says, then takes the token."""
    guard = bucket(clock)
    guard.try_acquire(NUMBER)

    assert guard.acquire(NUMBER, timeout=1.0)
    assert clock.sleeps == [math.ceil(1000 / 19) / 1000]


def test_acquire_gives_up_at_once_when_the_wait_is_too_long(clock: Clock) -> None:
    """A token further away than the timeout makes acquire return False without sleeping."""
    guard = bucket(clock, rate=1)
    guard.try_acquire(NUMBER)

    assert not guard.acquire(NUMBER, timeout=0.5)
    assert clock.sleeps == []


def test_acquire_with_no_timeout_takes_an_available_token(clock: Clock) -> None:
    """A timeout of zero still takes a token that is there."""
    assert bucket(clock).acquire(NUMBER, timeout=0)


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf, True, 20_000])
def test_unusable_rates_are_refused(clock: Clock, rate: float) -> None:
    """Rates that are not a positive finite number up to 10,000/s are a ValueError."""
    guard = bucket(clock)

    with pytest.raises(ValueError, match="rate"):
        guard.set_rate(NUMBER, rate)


def test_phone_number_id_must_be_digits(clock: Clock) -> None:
    """A phone number id that is not a Graph id is a ValueError, not a key."""
    with pytest.raises(ValueError, match="phone number id"):
        bucket(clock).try_acquire("12:34")


@pytest.mark.parametrize(("burst", "headroom"), [(0.5, 0.05), (1.0, 1.0), (1.0, -0.1)])
def test_unusable_shapes_are_refused(burst: float, headroom: float) -> None:
    """A burst under one token or a headroom outside [0, 1) is a ValueError."""
    with pytest.raises(ValueError, match=r"burst|headroom"):
        Shape(burst=burst, headroom=headroom)
