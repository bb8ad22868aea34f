"""Operator retry: resume what failed, refuse what could double a one-shot call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time

from config import Settings
from models import Database, Onboarding, OnboardingState, SyncState, SyncType, utcnow
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next
from onboarding.sandbox import Sandbox
from onboarding.states import fail
from onboarding.sync import retry as admin
from onboarding.sync.retry import RetryRefusedError
from tests.onboarding.helpers import signup

S = OnboardingState


def test_failed_connect_is_resumed(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> None:
    """A failed connect goes back to token_exchanged and the connect step is planned."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
        onboarding.state = S.TOKEN_EXCHANGED.value
        fail(session, onboarding, "connect", "several numbers")
    with db.session() as session:
        plan = admin.retry(
            session, onboarding.id, settings=settings, phone_number_id="106540352242922"
        )
    assert plan.step is Next.CONNECT
    with db.sessionmaker() as session:
        row = session.get_one(Onboarding, onboarding.id)
        assert row.state == S.TOKEN_EXCHANGED
        assert row.phone_number_id == "106540352242922"
        assert row.transitions[-1].cause.startswith("operator retry")


def test_failed_exchange_after_30_seconds_is_refused(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> None:
    """A code exchange cannot be retried once the code has died."""
    with freeze_time("2026-11-26 10:00:00") as clock:
        with db.session() as session:
            onboarding = signup(session, sandbox, settings, cipher)
            fail(session, onboarding, "exchange", "boom")
        clock.tick(timedelta(seconds=40))
        with db.session() as session, pytest.raises(RetryRefusedError, match="30 s"):
            admin.retry(session, onboarding.id, settings=settings)


def test_unknown_sync_needs_force(db: Database, settings: Settings, subscribed: int) -> None:
    """A sync whose outcome was lost is only probed again with --force."""
    with db.session() as session:
        session.get_one(Onboarding, subscribed).sync(SyncType.HISTORY).state = "unknown"
    with db.session() as session, pytest.raises(RetryRefusedError, match="--force"):
        admin.retry(session, subscribed, settings=settings)
    with db.session() as session:
        plan = admin.retry(session, subscribed, settings=settings, force=True)
    assert plan.step is Next.SYNC
    with db.sessionmaker() as session:
        row = session.get_one(Onboarding, subscribed).sync(SyncType.HISTORY)
        assert row.state == SyncState.UNKNOWN
        assert row.ambiguous_attempts == 0


def test_retry_is_refused_after_the_window(
    db: Database, settings: Settings, subscribed: int
) -> None:
    """No sync is ever re-sent after the 24 h window, force or not."""
    with db.sessionmaker() as session:
        deadline = session.get_one(Onboarding, subscribed).sync_deadline_at
    with (
        freeze_time(deadline + timedelta(seconds=1)),
        db.session() as session,
        pytest.raises(RetryRefusedError, match="window has closed"),
    ):
        admin.retry(session, subscribed, settings=settings, force=True)


def test_settled_syncs_have_nothing_to_retry(
    db: Database,
    settings: Settings,
    subscribed: int,
    graph: GraphClient,
) -> None:
    """Once both syncs are requested, retry says there is nothing to do."""
    with db.session() as session:
        onboarding = session.get_one(Onboarding, subscribed)
        for t in SyncType:
            onboarding.sync(t).state = SyncState.REQUESTED.value
        onboarding.state = S.SYNCING.value
    with db.session() as session, pytest.raises(RetryRefusedError, match="nothing to retry"):
        admin.retry(session, subscribed, settings=settings)
    assert utcnow() < onboarding.sync_deadline_at
