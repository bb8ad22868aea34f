"""The deadline sweep: steps due, the deadline alert, missed windows, expired codes."""

from __future__ import annotations

from datetime import timedelta

from freezegun import freeze_time
from sqlalchemy import select

from config import Settings
from models import Alert, Database, Onboarding, OnboardingState, SyncState, SyncType, utcnow
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next
from onboarding.sandbox import Faults, Sandbox
from onboarding.sync import sweep as sweeper
from tests.onboarding.helpers import signup
from tests.onboarding.sync.helpers import alerts, load, run_syncs

S = OnboardingState
CONTACTS, HISTORY = SyncType.CONTACTS, SyncType.HISTORY


def test_sweeper_lists_due_syncs_and_alerts_near_the_deadline(
    db: Database, sandbox: Sandbox, settings: Settings, subscribed: int
) -> None:
    """Past the alert share of the window, unrequested syncs raise one alert and are due."""
    onboarding = load(db, subscribed)
    with db.session() as session:
        due = sweeper.sweep(
            session, settings=settings, now=onboarding.signup_completed_at + timedelta(hours=1)
        )
    assert due[Next.SYNC] == [subscribed]
    assert alerts(db, subscribed) == set()
    for hours in (13, 14):
        with db.session() as session:
            sweeper.sweep(
                session,
                settings=settings,
                now=onboarding.signup_completed_at + timedelta(hours=hours),
            )
    assert alerts(db, subscribed) == {"sync_deadline_near"}
    with db.sessionmaker() as session:
        rows = session.scalars(select(Alert).where(Alert.kind == "sync_deadline_near")).all()
        assert len(rows) == 1
        assert "left in the 24 h window" in rows[0].message


def test_sweeper_closes_the_window(db: Database, settings: Settings, subscribed: int) -> None:
    """Once the window has closed, pending syncs are window_missed and the onboarding too."""
    onboarding = load(db, subscribed)
    with db.session() as session:
        due = sweeper.sweep(
            session, settings=settings, now=onboarding.sync_deadline_at + timedelta(minutes=1)
        )
    assert due[Next.SYNC] == []
    onboarding = load(db, subscribed)
    assert onboarding.state == S.SYNC_WINDOW_MISSED
    assert onboarding.sync(HISTORY).state == SyncState.WINDOW_MISSED
    assert "sync_window_missed" in alerts(db, subscribed)


def test_sweeper_expires_codes_nobody_exchanged(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> None:
    """A signup whose code was never exchanged (no worker) ends code_expired after 30 s."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
    with db.session() as session:
        due = sweeper.sweep(session, settings=settings)
    assert due[Next.EXCHANGE] == [onboarding.id]
    with db.session() as session:
        sweeper.sweep(session, settings=settings, now=utcnow() + timedelta(seconds=31))
    row = load(db, onboarding.id)
    assert row.state == S.CODE_EXPIRED
    assert row.code_ciphertext is None


def test_sweeper_leaves_history_unknown_at_the_deadline_waiting_for_webhooks(
    db: Database, settings: Settings, subscribed: int
) -> None:
    """A history sync whose answer was lost is not declared missed: its webhooks may come."""
    with db.session() as session:
        onboarding = session.get_one(Onboarding, subscribed)
        onboarding.sync(CONTACTS).state = SyncState.REQUESTED.value
        onboarding.sync(HISTORY).state = SyncState.UNKNOWN.value
        deadline = onboarding.sync_deadline_at
    with db.session() as session:
        sweeper.sweep(session, settings=settings, now=deadline + timedelta(minutes=1))
    onboarding = load(db, subscribed)
    assert onboarding.state == S.SYNCING
    assert onboarding.sync(HISTORY).state == SyncState.UNKNOWN
    assert "sync_history_unknown" in alerts(db, subscribed)


def test_sweeper_leaves_syncs_whose_probes_ran_out_to_an_operator(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """Once probes are exhausted the sweeper stops re-firing the sync every minute."""
    sandbox.set_faults(Faults.only("smb_app_data", error_5xx=1.0, seed=3))
    start = utcnow()
    for i in range(settings.sync_max_probes + 3):
        with freeze_time(start + timedelta(minutes=5 * i)):
            run_syncs(db, graph, settings, cipher, subscribed)
    with db.session() as session:
        due = sweeper.sweep(session, settings=settings, now=start + timedelta(hours=1))
    assert subscribed not in due[Next.SYNC]
