"""Payloads, a manual clock and a bucket whose Redis is down, shared by the outbound tests."""

from __future__ import annotations

import redis

from onboarding.outbound.throttle import LocalTokenBucket

TO = "16505551234"
TEXT = {"to": TO, "type": "text", "text": {"body": "Your order ships tomorrow"}}
BSUID = "US.13491208655302741918"
"""Meta's example business-scoped user id (docs/meta.md#111-business-scoped-user-ids-and-usernames).
"""
TEXT_TO_BSUID = {"recipient": BSUID, "type": "text", "text": {"body": "Your order ships tomorrow"}}
TEMPLATE = {
    "to": TO,
    "type": "template",
    "template": {"name": "order_update", "language": {"code": "en_US"}},
}


class RedisDown(LocalTokenBucket):
    """A bucket whose Redis is unreachable."""

    def try_acquire(self, phone_number_id: str, *, rate: float | None = None) -> float:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


class Clock:
    """A clock that moves only when slept on, for the bucket and the ledger."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
