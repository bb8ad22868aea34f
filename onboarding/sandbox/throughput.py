"""Meta's per-number send throughput, and the record of the sends the sandbox accepted.

Each number may have at most ``message_throughput`` (20) sends accepted in any sliding second;
a :class:`SendLedger` admits or refuses each send (refusals are counted) and remembers the
accepted ones, the oldest forgotten beyond :data:`MAX_SENT_RECORDS`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

from onboarding.sandbox.records import SentMessage

MESSAGE_THROUGHPUT: Final = 20.0
"""Sends per number accepted in any sliding second: Meta's limit for coexistence numbers."""
THROUGHPUT_WINDOW: Final = 1.0
MAX_SENT_RECORDS: Final = 200_000
"""Accepted sends remembered for :meth:`SendLedger.sent` (the oldest are forgotten)."""


def check_throughput(limit: float) -> float:
    """A sends-per-second limit, or ``ValueError`` unless it is a finite number >= 1."""
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise ValueError(f"message throughput must be a number, got {limit!r}")
    if not math.isfinite(limit) or limit < 1:
        raise ValueError(f"message throughput must be at least 1 per second, got {limit!r}")
    return float(limit)


class SendLedger:
    """Sliding-second send windows, per-number limits, refusals and accepted sends."""

    def __init__(self, default_limit: float) -> None:
        """Accept ``default_limit`` sends per sliding second from a number without its own."""
        self.default_limit = default_limit
        self._sent: deque[SentMessage] = deque(maxlen=MAX_SENT_RECORDS)
        self._windows: dict[str, deque[float]] = {}
        self._limits: dict[str, float] = {}
        self._rejections: dict[str, int] = {}

    def admit(self, phone_number_id: str, now: float) -> bool:
        """Take a slot in the number's sliding second, or count a refusal and return False."""
        window = self._windows.setdefault(phone_number_id, deque())
        while window and window[0] <= now - THROUGHPUT_WINDOW:
            window.popleft()
        if len(window) >= self.limit_for(phone_number_id):
            self._rejections[phone_number_id] = self._rejections.get(phone_number_id, 0) + 1
            return False
        window.append(now)
        return True

    def record(self, sent: SentMessage) -> None:
        """Remember an accepted send."""
        self._sent.append(sent)

    def sent(self, phone_number_id: str | None = None) -> list[SentMessage]:
        """The accepted sends, oldest first, optionally for one number."""
        return [
            sent
            for sent in self._sent
            if phone_number_id is None or sent.phone_number_id == phone_number_id
        ]

    def sent_count(self) -> int:
        """How many accepted sends are remembered."""
        return len(self._sent)

    def rejections(self, phone_number_id: str | None = None) -> int:
        """How many sends were refused, optionally for one number."""
        if phone_number_id is not None:
            return self._rejections.get(phone_number_id, 0)
        return sum(self._rejections.values())

    def set_limit(self, phone_number_id: str, limit: float | None) -> None:
        """Give a number its own limit (``None``: back to the default)."""
        if limit is None:
            self._limits.pop(phone_number_id, None)
        else:
            self._limits[phone_number_id] = check_throughput(limit)

    def limit_for(self, phone_number_id: str) -> float:
        """The sends per sliding second accepted from this number."""
        return self._limits.get(phone_number_id, self.default_limit)
