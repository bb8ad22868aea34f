"""The in-memory idempotency ledger: its TTL, who may release a key, keys per onboarding."""

from __future__ import annotations

from onboarding.outbound.ledger import ClaimState, LocalSendLedger
from tests.onboarding.outbound.helpers import Clock


def test_local_ledger_forgets_keys_after_its_ttl() -> None:
    """A key is free again once the ledger's TTL has passed."""
    clock = Clock()
    ledger = LocalSendLedger(ttl=60, clock=clock)
    ledger.claim(1, "k")
    clock.now += 61

    assert ledger.claim(1, "k").state is ClaimState.NEW


def test_only_the_owner_releases_a_key() -> None:
    """Releasing with another owner's token leaves the intent in place."""
    ledger = LocalSendLedger()
    claim = ledger.claim(1, "k")

    ledger.release(1, "k", "someone-else")
    assert ledger.claim(1, "k").state is ClaimState.INTENT
    ledger.release(1, "k", claim.owner or "")
    assert ledger.claim(1, "k").state is ClaimState.NEW


def test_keys_are_per_onboarding() -> None:
    """The same key for two onboardings is two sends."""
    ledger = LocalSendLedger()
    ledger.claim(1, "k")

    assert ledger.claim(2, "k").state is ClaimState.NEW


def test_a_sent_key_remembers_the_address_it_went_to() -> None:
    """Once sent, the key answers which field addressed the person and its value."""
    ledger = LocalSendLedger()
    ledger.claim(1, "k")

    ledger.mark_sent(1, "k", "wamid.HBgL1", 1.0, address=("recipient", "US.13491208655302741918"))

    claim = ledger.claim(1, "k")
    assert (claim.state, claim.address) == (
        ClaimState.SENT,
        ("recipient", "US.13491208655302741918"),
    )
