"""The send ledger: Meta's per-number sliding-second throughput and the accepted sends."""

from __future__ import annotations

import pytest

from onboarding.sandbox.records import SentMessage
from onboarding.sandbox.throughput import SendLedger, check_throughput


def test_a_number_gets_its_limit_per_sliding_second() -> None:
    """Up to the limit is admitted; one more in the same second is refused and counted."""
    ledger = SendLedger(2)

    assert [ledger.admit("n1", 100.0 + i / 10) for i in range(3)] == [True, True, False]
    assert ledger.rejections("n1") == 1
    assert ledger.admit("n1", 101.05)


def test_numbers_have_their_own_windows_and_limits() -> None:
    """One number's sends and its own limit leave the others alone."""
    ledger = SendLedger(1)
    ledger.set_limit("fast", 3)

    assert [ledger.admit("fast", 5.0) for _ in range(3)] == [True, True, True]
    assert ledger.admit("slow", 5.0)
    assert not ledger.admit("slow", 5.5)
    assert ledger.limit_for("fast") == 3.0
    ledger.set_limit("fast", None)
    assert ledger.limit_for("fast") == 1.0
    assert ledger.rejections() == 1


def test_accepted_sends_are_listed_oldest_first_per_number() -> None:
    """Recorded sends come back in order, all or one number's."""
    ledger = SendLedger(20)
    first = SentMessage("n1", "15550001", "wamid.a", "text", 1.0)
    second = SentMessage("n2", "15550002", "wamid.b", "template", 2.0)
    ledger.record(first)
    ledger.record(second)

    assert ledger.sent() == [first, second]
    assert ledger.sent("n2") == [second]
    assert ledger.sent_count() == 2


@pytest.mark.parametrize("limit", [0, 0.5, float("inf"), float("nan"), True, "20"])
def test_a_limit_is_a_finite_number_of_at_least_one(limit: object) -> None:
    """Below one, not finite or not a number is a ValueError."""
    with pytest.raises(ValueError, match="message throughput"):
        check_throughput(limit)  # type: ignore[arg-type]
