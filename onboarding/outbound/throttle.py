"""The throughput guard: a token bucket per business phone number, shared by every worker.

Meta caps what one number may send through the Cloud API: 20 messages per second for a
coexistence number (docs/meta.md#91-throughput-20-messages-per-second); over that, a send is
refused with ``130429``. Every worker that sends for a number takes a token from that number's
bucket first, so together they stay under the cap:

* :class:`TokenBucket` keeps the buckets in Redis and takes a token with one Lua script, so
  the refill and the take are atomic across every worker process and host. The script reads
  the time with Redis ``TIME``: all workers share one clock, whatever their own clocks say.
* :class:`LocalTokenBucket` is the same bucket in this process's memory, for the embedded demo
  and the unit tests (one process, no Redis). Same interface, same arithmetic.

Rates are per number: an override (``set_rate``, kept in the Redis hash
``coexist:throttle:overrides``) wins over the default (``throughput_per_number``, 20), and a
caller may also pass a rate for one call.

How the bucket is shaped, and why not "burst = rate"
----------------------------------------------------
A bucket holds at most ``burst`` tokens and refills at ``rate * (1 - headroom)`` tokens per
second. Meta does not document how it counts; the sandbox counts a number's accepted sends in
any sliding second, the strictest reading of "20 per second". Against that:

* a bucket of ``burst = rate`` tokens lets ``rate`` sends out at once and another ``rate`` in
  the following second: twice the limit in the first second, and ``130429`` for the surplus;
* a bucket refilling at exactly ``rate`` paces sends exactly ``1/rate`` apart when they take
  the token, but they reach Meta a few milliseconds later, by varying amounts; whenever the
  21st is a little quicker than the 1st, 21 land in one second.

So the defaults are ``burst = 1`` and ``headroom = 5 %``: in any window of ``1 + j`` seconds at
most ``1 + 0.95 * rate * (1 + j)`` tokens are taken, which stays at or under ``rate`` for any
arrival jitter ``j`` under ~50 ms at 20/s. The price is 5 % of throughput, and no start-up burst
(which matters little: a burst is at most one second's worth of messages).
``benchmarks/throughput_guard.py`` measures the shapes (``--burst``, ``--headroom``), with
arrival jitter if asked (``--jitter-ms``). Pass ``burst=None`` for ``burst = rate``.

A bucket left alone expires (``ttl``, at least twice its refill time); an absent bucket is full,
which is exactly what it would have refilled to, so expiry loses nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import redis

DEFAULT_RATE: Final = 20.0
"""Messages per second per number: Meta's throughput for coexistence numbers (docs/meta.md §9.1)."""
DEFAULT_BURST: Final = 1.0
DEFAULT_HEADROOM: Final = 0.05
DEFAULT_TTL: Final = 60.0
DEFAULT_PREFIX: Final = "coexist:throttle"
MAX_RATE: Final = 10_000.0
MAX_SLEEP: Final = 5.0
"""The longest single sleep :meth:`acquire` takes, whatever the bucket says."""

# KEYS[1] the number's bucket (a hash: tokens, ts in microseconds), KEYS[2] the overrides hash.
# ARGV: phone_number_id, default rate, rate for this call ("" = override or default),
# burst ("" = the rate), headroom, minimum ttl in milliseconds.
# Returns the wait in whole milliseconds: 0 when a token was taken.
_ACQUIRE_LUA: Final = """
local rate = tonumber(ARGV[3])
if not rate then
  rate = tonumber(redis.call('HGET', KEYS[2], ARGV[1])) or tonumber(ARGV[2])
end
local burst = tonumber(ARGV[4]) or rate
local fill = rate * (1 - tonumber(ARGV[5])) / 1000000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if not tokens or not ts then
  tokens, ts = burst, now
elseif now > ts then
  tokens, ts = tokens + (now - ts) * fill, now
end
if tokens > burst then
  tokens = burst
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / fill / 1000)
end
-- Formatted by hand: Lua's default number format keeps 14 digits, and ts has 16.
redis.call('HSET', KEYS[1], 'tokens', string.format('%.9f', tokens),
           'ts', string.format('%.0f', ts))
-- Kept at least twice as long as a full refill, so expiry only ever forgets a full bucket.
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[6]), math.ceil(2 * burst / fill / 1000)))
return wait
"""


class Throttle(Protocol):
    """What a sender needs from a throughput guard."""

    def try_acquire(self, phone_number_id: str, *, rate: float | None = None) -> float:
        """Take a token now and return 0.0, or take nothing and return the seconds to wait."""
        ...

    def acquire(self, phone_number_id: str, timeout: float, *, rate: float | None = None) -> bool:
        """Take a token, sleeping at most ``timeout`` seconds in all; False if none came."""
        ...

    def rate_for(self, phone_number_id: str) -> float:
        """The rate that applies to the number: its override, else the default."""
        ...

    def set_rate(self, phone_number_id: str, rate: float) -> None:
        """Override the number's rate (messages per second) for every worker."""
        ...

    def clear_rate(self, phone_number_id: str) -> None:
        """Drop the number's override: the default applies again."""
        ...


def check_rate(rate: float) -> float:
    """``rate`` as a float, or ``ValueError`` unless it is a number in (0, MAX_RATE]."""
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise ValueError(f"rate must be a number, got {rate!r}")
    value = float(rate)
    if not math.isfinite(value) or not 0 < value <= MAX_RATE:
        raise ValueError(f"rate must be in (0, {MAX_RATE:g}] messages per second, got {rate!r}")
    return value


def check_number(phone_number_id: str) -> str:
    """The phone number id, or ``ValueError`` unless it is a Graph id (digits)."""
    if not isinstance(phone_number_id, str) or not phone_number_id.isdigit():
        raise ValueError(f"not a phone number id: {str(phone_number_id)[:32]!r}")
    return phone_number_id


@dataclass(frozen=True, slots=True)
class Shape:
    """How a bucket fills: ``burst`` tokens at most (None = the rate), refilled at
    ``rate * (1 - headroom)`` per second."""

    burst: float | None = DEFAULT_BURST
    headroom: float = DEFAULT_HEADROOM

    def __post_init__(self) -> None:
        """Reject a burst under one token (nothing could ever be taken) or a bad headroom."""
        if self.burst is not None and not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"burst must be at least 1 token, got {self.burst!r}")
        if not 0 <= self.headroom < 1:
            raise ValueError(f"headroom must be in [0, 1), got {self.headroom!r}")

    def capacity(self, rate: float) -> float:
        """Tokens the bucket holds when full."""
        return rate if self.burst is None else self.burst

    def fill(self, rate: float) -> float:
        """Tokens added per second."""
        return rate * (1 - self.headroom)


class _Bucket:
    """What both buckets share: the default rate, the shape, and the sleeping ``acquire``."""

    def __init__(
        self,
        *,
        default_rate: float,
        shape: Shape,
        sleep: Callable[[float], None] | None,
        monotonic: Callable[[], float] | None,
    ) -> None:
        self.default_rate = check_rate(default_rate)
        self.shape = shape
        self._sleep = sleep or _sleep
        self._monotonic = monotonic or _monotonic

    def try_acquire(self, phone_number_id: str, *, rate: float | None = None) -> float:
        raise NotImplementedError

    def acquire(self, phone_number_id: str, timeout: float, *, rate: float | None = None) -> bool:
        """Take a token, sleeping what the bucket says (each sleep at most ``MAX_SLEEP``).

        Never sleeps past ``timeout`` seconds in all: when the wait would end after it, returns
        False at once, so a caller can reschedule instead of holding its worker.
        """
        deadline = self._monotonic() + max(0.0, timeout)
        while True:
            wait = self.try_acquire(phone_number_id, rate=rate)
            if wait <= 0:
                return True
            remaining = deadline - self._monotonic()
            if wait > remaining:
                return False
            self._sleep(min(wait, MAX_SLEEP))


class TokenBucket(_Bucket):
    """Per-number token buckets in Redis, atomic across every worker (see the module doc).

    ``client`` is any ``redis.Redis``; keys are ``{prefix}:{phone_number_id}`` and the
    overrides hash ``{prefix}:overrides`` (tests pass their own prefix). Needs Redis 5 or later
    (``TIME`` inside a script that writes); on Redis Cluster both keys of a call must share a
    slot, which these names do not ensure.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        default_rate: float = DEFAULT_RATE,
        shape: Shape | None = None,
        prefix: str = DEFAULT_PREFIX,
        ttl: float = DEFAULT_TTL,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            default_rate=default_rate, shape=shape or Shape(), sleep=sleep, monotonic=monotonic
        )
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        self._client = client
        self.prefix = prefix
        self.overrides_key = f"{prefix}:overrides"
        self.ttl = ttl
        self._script = client.register_script(_ACQUIRE_LUA)

    def key(self, phone_number_id: str) -> str:
        """The Redis key of the number's bucket."""
        return f"{self.prefix}:{check_number(phone_number_id)}"

    def try_acquire(self, phone_number_id: str, *, rate: float | None = None) -> float:
        """Take a token now and return 0.0, or take nothing and return the seconds until one
        is there (another worker may take it first: call again then)."""
        explicit = "" if rate is None else repr(check_rate(rate))
        burst = "" if self.shape.burst is None else repr(self.shape.burst)
        wait_ms: Any = self._script(
            keys=[self.key(phone_number_id), self.overrides_key],
            args=[
                phone_number_id,
                repr(self.default_rate),
                explicit,
                burst,
                repr(self.shape.headroom),
                math.ceil(self.ttl * 1000),
            ],
        )
        return int(wait_ms) / 1000.0

    def rate_for(self, phone_number_id: str) -> float:
        """The number's override, else the default."""
        raw: Any = self._client.hget(self.overrides_key, check_number(phone_number_id))
        return float(raw) if raw is not None else self.default_rate

    def set_rate(self, phone_number_id: str, rate: float) -> None:
        """Override the number's rate for every worker (kept until :meth:`clear_rate`)."""
        self._client.hset(self.overrides_key, check_number(phone_number_id), repr(check_rate(rate)))

    def clear_rate(self, phone_number_id: str) -> None:
        """Drop the number's override."""
        self._client.hdel(self.overrides_key, check_number(phone_number_id))

    def reset(self, phone_number_id: str) -> None:
        """Forget the number's bucket (it is full again); the override stays."""
        self._client.delete(self.key(phone_number_id))


@dataclass(slots=True)
class _LocalState:
    tokens: float
    at: float


class LocalTokenBucket(_Bucket):
    """The same buckets in this process's memory: for the embedded demo (no Redis) and tests.

    Only correct when every sender runs in this process. ``clock`` (seconds, monotonic) and
    ``sleep`` are injectable so tests need not wait.
    """

    def __init__(
        self,
        *,
        default_rate: float = DEFAULT_RATE,
        shape: Shape | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(
            default_rate=default_rate, shape=shape or Shape(), sleep=sleep, monotonic=clock
        )
        self._clock = clock or _monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, _LocalState] = {}
        self._overrides: dict[str, float] = {}

    def try_acquire(self, phone_number_id: str, *, rate: float | None = None) -> float:
        """Take a token now and return 0.0, or take nothing and return the seconds to wait."""
        check_number(phone_number_id)
        with self._lock:
            applied = check_rate(rate) if rate is not None else self._rate(phone_number_id)
            capacity = self.shape.capacity(applied)
            fill = self.shape.fill(applied)
            now = self._clock()
            state = self._buckets.get(phone_number_id)
            if state is None:
                state = self._buckets[phone_number_id] = _LocalState(capacity, now)
            elif now > state.at:
                state.tokens, state.at = state.tokens + (now - state.at) * fill, now
            state.tokens = min(state.tokens, capacity)
            if state.tokens >= 1:
                state.tokens -= 1
                return 0.0
            # Whole milliseconds, rounded up, as the Redis bucket answers.
            return math.ceil((1 - state.tokens) / fill * 1000) / 1000.0

    def _rate(self, phone_number_id: str) -> float:
        return self._overrides.get(phone_number_id, self.default_rate)

    def rate_for(self, phone_number_id: str) -> float:
        """The number's override, else the default."""
        check_number(phone_number_id)
        with self._lock:
            return self._rate(phone_number_id)

    def set_rate(self, phone_number_id: str, rate: float) -> None:
        """Override the number's rate in this process."""
        value = check_rate(rate)
        with self._lock:
            self._overrides[check_number(phone_number_id)] = value

    def clear_rate(self, phone_number_id: str) -> None:
        """Drop the number's override."""
        with self._lock:
            self._overrides.pop(check_number(phone_number_id), None)


def _sleep(seconds: float) -> None:
    """``time.sleep``, looked up at call time."""
    time.sleep(seconds)


def _monotonic() -> float:
    """``time.monotonic``, looked up at call time."""
    return time.monotonic()
