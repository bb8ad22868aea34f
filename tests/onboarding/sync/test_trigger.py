"""The one-shot sync trigger: each sync requested once, lost answers probed, the window kept."""

from __future__ import annotations

from datetime import timedelta

from freezegun import freeze_time

from config import Settings
from models import Database, Onboarding, OnboardingState, SyncState, SyncType, utcnow
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next
from onboarding.sandbox import Faults, Sandbox
from onboarding.sync import sweep as sweeper
from tests.onboarding.sync.helpers import accepted, alerts, load, run_syncs

S = OnboardingState
CONTACTS, HISTORY = SyncType.CONTACTS, SyncType.HISTORY


def test_contacts_then_history_are_requested_once_each(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A subscribed onboarding requests contacts then history, stores request ids, and syncs."""
    assert run_syncs(db, graph, settings, cipher, subscribed) is None
    onboarding = load(db, subscribed)
    assert onboarding.state == S.SYNCING
    assert accepted(sandbox) == ["smb_app_state_sync", "history"]
    ids = {s.sync_type: s.request_id for s in sandbox.accepted_syncs()}
    for t in SyncType:
        row = onboarding.sync(t)
        assert row.state == SyncState.REQUESTED
        assert row.request_id == ids[t.value]
        assert row.attempts == 1


def test_running_the_trigger_again_sends_nothing(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A redelivered trigger task is harmless: requested syncs are never sent again."""
    run_syncs(db, graph, settings, cipher, subscribed)
    run_syncs(db, graph, settings, cipher, subscribed)
    assert sandbox.call_counts()["smb_app_data"] == 2


def test_lost_answer_is_probed_and_2593107_confirms_it(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A response dropped after Meta applied the call becomes unknown; the probe's 2593107
    then marks it requested, and Meta accepted exactly one call."""
    sandbox.set_faults(Faults.only("smb_app_data", drop_after_apply=1.0, seed=3))
    retry = run_syncs(db, graph, settings, cipher, subscribed)
    assert retry is not None
    contacts = load(db, subscribed).sync(CONTACTS)
    assert contacts.state == SyncState.UNKNOWN
    assert contacts.ambiguous_attempts == 1
    sandbox.set_faults(None)
    with freeze_time(utcnow() + timedelta(minutes=10)):
        assert run_syncs(db, graph, settings, cipher, subscribed) is None
    onboarding = load(db, subscribed)
    assert onboarding.sync(CONTACTS).state == SyncState.REQUESTED
    assert onboarding.sync(CONTACTS).request_id is None
    assert onboarding.sync(HISTORY).state == SyncState.REQUESTED
    assert accepted(sandbox) == ["smb_app_state_sync", "history"]


def test_5xx_that_did_not_apply_is_probed_and_accepted(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A 5xx on smb_app_data is treated as maybe-applied; the probe gets it accepted."""
    sandbox.set_faults(Faults.only("smb_app_data", error_5xx=1.0, seed=3))
    retry = run_syncs(db, graph, settings, cipher, subscribed)
    assert retry is not None
    assert load(db, subscribed).sync(CONTACTS).state == SyncState.UNKNOWN
    sandbox.set_faults(None)
    with freeze_time(utcnow() + timedelta(minutes=10)):
        run_syncs(db, graph, settings, cipher, subscribed)
    contacts = load(db, subscribed).sync(CONTACTS)
    assert contacts.state == SyncState.REQUESTED
    assert contacts.request_id is not None
    assert accepted(sandbox) == ["smb_app_state_sync", "history"]


def test_throttled_call_backs_off_and_contacts_stay_first(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A throttled contacts call goes back to pending with a backoff, and history waits."""
    sandbox.set_faults(Faults.only("smb_app_data", throttle=1.0, seed=3))
    retry = run_syncs(db, graph, settings, cipher, subscribed)
    assert retry is not None
    assert retry.countdown >= 1
    onboarding = load(db, subscribed)
    assert onboarding.sync(CONTACTS).state == SyncState.PENDING
    assert onboarding.sync(CONTACTS).next_attempt_at is not None
    assert onboarding.sync(HISTORY).attempts == 0
    sandbox.set_faults(None)
    # Before the backoff has passed, nothing is sent.
    assert run_syncs(db, graph, settings, cipher, subscribed) is not None
    assert sandbox.call_counts()["smb_app_data"] == 1
    with freeze_time(utcnow() + timedelta(minutes=10)):
        assert run_syncs(db, graph, settings, cipher, subscribed) is None
    assert accepted(sandbox) == ["smb_app_state_sync", "history"]


def test_history_goes_ahead_of_stuck_contacts_after_the_alert_mark(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """Contacts may not hold the precious history sync past the alert share of the window."""
    sandbox.set_faults(Faults.only("smb_app_data", throttle=1.0, seed=3))
    run_syncs(db, graph, settings, cipher, subscribed)
    sandbox.set_faults(None)
    onboarding = load(db, subscribed)
    with db.session() as session:
        row = session.get_one(Onboarding, subscribed).sync(CONTACTS)
        row.next_attempt_at = onboarding.sync_deadline_at  # contacts keeps backing off
    with freeze_time(onboarding.signup_completed_at + timedelta(hours=13)):
        run_syncs(db, graph, settings, cipher, subscribed)
    onboarding = load(db, subscribed)
    assert onboarding.sync(HISTORY).state == SyncState.REQUESTED
    assert onboarding.state == S.SYNCING
    assert onboarding.sync(CONTACTS).state == SyncState.PENDING


def test_2593107_without_a_lost_answer_fails_the_sync(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """If Meta says already requested but coexist never lost an answer, it is a failure."""
    onboarding = load(db, subscribed)
    token = cipher.decrypt(onboarding.token_ciphertext or b"")
    graph.request_sync(onboarding.phone_number_id or "", token, "smb_app_state_sync")
    run_syncs(db, graph, settings, cipher, subscribed)
    onboarding = load(db, subscribed)
    assert onboarding.sync(CONTACTS).state == SyncState.FAILED
    assert "2593107" in (onboarding.sync(CONTACTS).last_error or "")
    assert onboarding.sync(HISTORY).state == SyncState.REQUESTED
    assert onboarding.state == S.SYNCING
    assert "sync_contacts_failed" in alerts(db, subscribed)


def test_2593108_marks_the_window_missed(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """When Meta says the 24 h have passed, both syncs are window_missed and an alert is raised."""
    sandbox.advance_clock(24 * 3600 + 60)
    run_syncs(db, graph, settings, cipher, subscribed)
    onboarding = load(db, subscribed)
    assert onboarding.state == S.SYNC_WINDOW_MISSED
    assert onboarding.sync(CONTACTS).state == SyncState.WINDOW_MISSED
    assert "sync_window_missed" in alerts(db, subscribed)
    assert accepted(sandbox) == []


def test_nothing_is_sent_after_the_deadline(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """Past coexist's own deadline no call is made at all."""
    onboarding = load(db, subscribed)
    with freeze_time(onboarding.sync_deadline_at + timedelta(seconds=1)):
        run_syncs(db, graph, settings, cipher, subscribed)
    assert sandbox.call_counts().get("smb_app_data", 0) == 0
    assert load(db, subscribed).state == S.SYNC_WINDOW_MISSED


def test_probes_are_bounded_then_an_operator_is_alerted(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """After sync_max_probes lost answers the sync stays unknown and an alert asks for help."""
    sandbox.set_faults(Faults.only("smb_app_data", error_5xx=1.0, seed=3))
    now = utcnow()
    for i in range(settings.sync_max_probes + 3):
        with freeze_time(now + timedelta(minutes=5 * i)):
            run_syncs(db, graph, settings, cipher, subscribed)
    contacts = load(db, subscribed).sync(CONTACTS)
    assert contacts.state == SyncState.UNKNOWN
    assert contacts.attempts == settings.sync_max_probes + 1
    assert "sync_contacts_unknown" in alerts(db, subscribed)


def test_a_live_intent_is_left_alone(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """While another worker's call is in flight (live lease), nothing is sent."""
    with db.session() as session:
        row = session.get_one(Onboarding, subscribed).sync(CONTACTS)
        row.state = SyncState.INTENT.value
        row.attempts = 1
        row.lease_until = utcnow() + timedelta(minutes=1)
    run_syncs(db, graph, settings, cipher, subscribed)
    assert sandbox.call_counts().get("smb_app_data", 0) == 0


def test_an_intent_left_by_a_dead_worker_is_probed(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A worker that died mid-call leaves an intent; once its lease expires the next attempt
    is a probe, and Meta's 2593107 confirms the call went through."""
    onboarding = load(db, subscribed)
    token = cipher.decrypt(onboarding.token_ciphertext or b"")
    graph.request_sync(onboarding.phone_number_id or "", token, "smb_app_state_sync")
    with db.session() as session:
        row = session.get_one(Onboarding, subscribed).sync(CONTACTS)
        row.state = SyncState.INTENT.value
        row.attempts = 1
        row.lease_until = utcnow() - timedelta(seconds=1)
    run_syncs(db, graph, settings, cipher, subscribed)
    contacts = load(db, subscribed).sync(CONTACTS)
    assert contacts.state == SyncState.REQUESTED
    assert contacts.ambiguous_attempts == 1
    assert accepted(sandbox).count("smb_app_state_sync") == 1


def test_exactly_one_acceptance_per_type_under_heavy_faults(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """With 30 % 5xx, throttling and dropped answers, Meta accepts each type exactly once."""
    sandbox.set_faults(
        Faults.from_dict(
            {
                "seed": 11,
                "rules": {
                    "smb_app_data": {"error_5xx": 0.3, "throttle": 0.2, "drop_after_apply": 0.3}
                },
            }
        )
    )
    now = utcnow()
    for i in range(200):
        with freeze_time(now + timedelta(minutes=i)):
            run_syncs(db, graph, settings, cipher, subscribed)
        if load(db, subscribed).state != S.SUBSCRIBED:
            break
    onboarding = load(db, subscribed)
    assert onboarding.state == S.SYNCING
    assert sorted(accepted(sandbox)) == ["history", "smb_app_state_sync"]


def test_contacts_left_behind_are_still_requested_after_history_completes(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A contacts sync whose answer was lost keeps being probed after the onboarding synced."""
    sandbox.set_faults(Faults.only("smb_app_data", error_5xx=1.0, seed=3))
    run_syncs(db, graph, settings, cipher, subscribed)  # contacts: lost answer
    sandbox.set_faults(None)
    with db.session() as session:  # history accepted and its webhooks completed it
        onboarding = session.get_one(Onboarding, subscribed)
        onboarding.sync(HISTORY).state = SyncState.COMPLETED.value
        onboarding.state = S.SYNCED.value
    later = utcnow() + timedelta(minutes=30)
    with db.session() as session:
        due = sweeper.sweep(session, settings=settings, now=later)
    assert subscribed in due[Next.SYNC]
    with freeze_time(later):
        run_syncs(db, graph, settings, cipher, subscribed)
    assert load(db, subscribed).sync(CONTACTS).state == SyncState.REQUESTED
    assert accepted(sandbox) == ["smb_app_state_sync"]


def test_an_erased_onboarding_requests_no_sync_and_the_sweep_passes_it_over(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """Once its data is being erased, a subscribed onboarding sends no ``smb_app_data`` and
    beat's sweep hands out no step for it."""
    with db.session() as session:
        session.get_one(Onboarding, subscribed).erased_at = utcnow()
    assert run_syncs(db, graph, settings, cipher, subscribed) is None
    assert sandbox.call_counts().get("smb_app_data", 0) == 0
    assert load(db, subscribed).state == S.SUBSCRIBED
    with db.session() as session:
        due = sweeper.sweep(session, settings=settings)
    assert subscribed not in due[Next.SYNC]
