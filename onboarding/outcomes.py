"""What a domain step tells its caller: go on to another step, or try again later.

Domain functions never import Celery. They return a :class:`Next` step for the task layer to
enqueue after commit, or raise :class:`RetryLater` when the same step must run again.
"""

from __future__ import annotations

import enum


class Next(enum.StrEnum):
    EXCHANGE = "exchange"
    CONNECT = "connect"
    SYNC = "sync"


class RetryLater(Exception):  # noqa: N818 - reads as an instruction, not an error
    """Run this step again in ``countdown`` seconds (state was saved before raising)."""

    def __init__(self, reason: str, countdown: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.countdown = max(0.0, countdown)
