"""Where each message of a generated history sits: its phase, thread, direction and age.

A :class:`HistoryLayout` is arithmetic on the global message index ``g`` (newest first), so any
chunk can be built alone (see :mod:`.history` for the layout's rules): the phases share the
messages by ``phase_weights``, bursts of :data:`BURST` messages visit the threads in a seeded
permutation, and the ``dormant_thread_share`` of threads last in that permutation get no burst
in the 30 days before onboarding.
"""

from __future__ import annotations

import math
import random
from typing import Final

from onboarding.sandbox.identities import RECENT_CONTACT_DAYS
from onboarding.sandbox.profile import SECONDS_PER_DAY, HistoryPlan, HistoryProfile

HISTORY_WINDOW_DAYS: Final = 180.0
"""Meta syncs the 180 days before onboarding; older messages are the generator's extras."""
MEDIA_FOLLOWUP_DAYS: Final = 14.0
"""Media sent within this many days of onboarding gets a late-media message with the media id."""
PHASE_DAYS: Final = ((0.0, 1.0), (1.0, 90.0), (90.0, 180.0))
"""Phase 0, 1 and 2 as days before onboarding (docs/meta.md#42-history-phases-chunks-and-progress).
"""
BURST: Final = 4
"""Consecutive messages of one thread before the history moves to another thread."""


def affine(count: int, rng: random.Random) -> tuple[int, int]:
    """A multiplier coprime to ``count`` and an offset: ``(a * i + b) % count`` permutes."""
    if count <= 1:
        return 1, 0
    multiplier = rng.randrange(1, count) | 1
    while math.gcd(multiplier, count) != 1:
        multiplier = multiplier % count + 1
    return multiplier, rng.randrange(count)


def _spread(total: int, weights: tuple[float, ...]) -> tuple[int, ...]:
    """Split ``total`` by ``weights`` with the largest-remainder method (ties: first wins)."""
    weight_sum = sum(weights)
    if total == 0 or weight_sum <= 0:
        return tuple(0 for _ in weights)
    raw = [total * weight / weight_sum for weight in weights]
    counts = [math.floor(value) for value in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return tuple(counts)


class HistoryLayout:
    """The phases, threads and ages of one history's messages, computed, never stored."""

    def __init__(self, profile: HistoryProfile, setup: random.Random) -> None:
        """Lay out ``profile``'s history; ``setup`` (seeded) draws the thread permutation."""
        self.profile = profile
        total = profile.message_count
        self.threads = max(profile.threads, 1)
        groups = round(profile.threads * profile.group_thread_share)
        self.group_threads = min(groups, max(profile.threads - 1, 0)) if total else 0
        self._mult, self._add = affine(self.threads, setup)
        self._inverse = pow(self._mult, -1, self.threads)
        beyond = 0
        if profile.days > HISTORY_WINDOW_DAYS:
            beyond = min(round(total * profile.beyond_window_share), total)
        span = min(profile.days, HISTORY_WINDOW_DAYS)
        self._ranges = tuple((start, min(end, span)) for start, end in PHASE_DAYS)
        weights = tuple(
            weight if end > start else 0.0
            for weight, (start, end) in zip(profile.phase_weights, self._ranges, strict=True)
        )
        if sum(weights) <= 0:  # only empty-range weights were set: fall back to the ranges
            weights = tuple(max(end - start, 0.0) for start, end in self._ranges)
        p0, p1, p2 = _spread(total - beyond, weights)
        self._in_window = (p0, p1, p2)
        self.offsets = (0, p0, p0 + p1)
        self.plan = HistoryPlan(
            total_messages=total,
            beyond_window=beyond,
            phase_messages=(p0, p1, p2 + beyond),
            chunk_size=profile.chunk_size,
        )
        dormant = round(self.threads * profile.dormant_thread_share)
        self._active = max(self.threads - dormant, 1)
        self._recent_count = self._count_recent()

    def is_group(self, slot: int) -> bool:
        """Whether thread ``slot`` is a group chat (the last slots are)."""
        return slot >= self.threads - self.group_threads

    def slot(self, index: int) -> int:
        """The thread of message ``index``: bursts visit the threads in a seeded order; in the
        recent stretch (30 days) the dormant threads, last in that order, are skipped."""
        span = self._active if index < self._recent_count else self.threads
        rank = (index // BURST) % span
        return (self._mult * rank + self._add) % self.threads

    def outgoing(self, index: int) -> bool:
        """Whether message ``index`` is business-sent: direction alternates in each thread."""
        sequence = (index // (BURST * self.threads)) * BURST + index % BURST
        return sequence % 2 == 0

    def recent(self, slot: int) -> bool:
        """Whether thread ``slot`` has a message in the recent stretch (see :meth:`slot`).

        A thread that is not recent certainly has no message within 30 days of onboarding.
        """
        rank = (self._inverse * (slot - self._add)) % self.threads
        return rank < self._active and rank * BURST < self._recent_count

    def previous_in_thread(self, index: int) -> int | None:
        """The previous (older) message of the same thread, if the history has one."""
        recent = index < self._recent_count
        span = self._active if recent else self.threads
        target = index + (1 if (index + 1) % BURST else 1 + BURST * (span - 1))
        if recent and target >= self._recent_count:
            return None  # the thread's previous message is before the recent stretch
        return target if target < self.plan.total_messages else None

    def timestamp(self, phase: int, position: int, onboarded_at: float, rng: random.Random) -> int:
        """The Unix time of the message at ``position`` of ``phase`` (one draw of ``rng``)."""
        jitter = min(max(rng.random(), 1e-6), 1 - 1e-6)
        in_window = self._in_window[phase]
        if position < in_window:
            low, high = self._ranges[phase]
            age = low + (position + jitter) / in_window * (high - low)
        else:
            beyond = self.plan.beyond_window
            extra = position - in_window
            age = HISTORY_WINDOW_DAYS + (extra + jitter) / beyond * (
                self.profile.days - HISTORY_WINDOW_DAYS
            )
        return math.floor(onboarded_at - max(age * SECONDS_PER_DAY, 1.0))

    def may_have_followups(self, phase: int, chunk_order: int) -> bool:
        """Whether the chunk reaches into the 14-day media window (decided without building)."""
        start_position = (chunk_order - 1) * self.plan.chunk_size
        in_window = self._in_window[phase]
        if start_position >= in_window:
            return False
        low, high = self._ranges[phase]
        youngest_age = low + start_position / in_window * (high - low)
        return youngest_age < MEDIA_FOLLOWUP_DAYS

    def _min_age_days(self, index: int) -> float:
        """A lower bound of message ``index``'s age in days (its timestamp jitter aside)."""
        phase = next(p for p in (2, 1, 0) if index >= self.offsets[p])
        position = index - self.offsets[phase]
        if position >= self._in_window[phase]:
            return HISTORY_WINDOW_DAYS
        low, high = self._ranges[phase]
        return low + position / self._in_window[phase] * (high - low)

    def _count_recent(self) -> int:
        """Messages from the newest up to the last that may be within 30 days of onboarding,
        rounded up to whole bursts."""
        total = self.plan.total_messages
        low, high = 0, total
        while low < high:  # ages rise with the index: find the first one 30 days old
            middle = (low + high) // 2
            if self._min_age_days(middle) < RECENT_CONTACT_DAYS:
                low = middle + 1
            else:
                high = middle
        return min(-(-low // BURST) * BURST, total)
