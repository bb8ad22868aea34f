"""The beat sweep: what each open onboarding needs next, and what its deadline has decided.

Every minute (``coexist.sync.sweep``) the sweep looks at onboardings signed up in the last two
days and still open. It expires signup codes nobody exchanged (``code_expired``), says which
step each onboarding is due for (exchange, connect, sync; the caller enqueues them), raises the
deadline alert once ``sync_deadline_alert_share`` of the 24 h window has passed, and at the
deadline closes the window: syncs never sent are ``window_missed``, a history sync whose answer
was lost stays ``unknown`` for its webhooks to decide. Sync rows change state through
:mod:`.states`, the onboarding through :mod:`onboarding.states`. Onboardings leased by a
running step are left alone, except for the deadline.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from models import SYNC_DONE, Onboarding, OnboardingState, SyncRequest, SyncState, SyncType, utcnow
from onboarding.outcomes import Next
from onboarding.states import raise_alert, transition
from onboarding.sync import states as sync_states
from onboarding.sync.trigger import SYNC_STATES, alert_mark, settle

log = structlog.get_logger(__name__)

S = OnboardingState


def sweep(
    session: Session, *, settings: Settings, now: datetime | None = None
) -> dict[str, list[int]]:
    """Find onboardings whose steps stalled; say which step each needs next.

    Expires codes nobody exchanged, raises the deadline alert once a share of the window has
    passed, closes syncs whose window ended, and returns onboarding ids to (re)enqueue per
    step: ``{"exchange": [...], "connect": [...], "sync": [...]}``. Commits.
    """
    now = now or utcnow()
    due: dict[str, list[int]] = {Next.EXCHANGE: [], Next.CONNECT: [], Next.SYNC: []}
    open_states = [S.RECEIVED.value, S.TOKEN_EXCHANGED.value, *(s.value for s in SYNC_STATES)]
    onboardings = session.scalars(
        select(Onboarding)
        .where(
            Onboarding.state.in_(open_states),
            Onboarding.signup_completed_at > now - timedelta(days=2),
            Onboarding.erased_at.is_(None),  # erased: no step runs for it any more
        )
        .order_by(Onboarding.sync_deadline_at)
        .limit(5000)
    ).all()
    for onboarding in onboardings:
        step = _due_step(session, onboarding, settings, now)
        if step is not None:
            due[step].append(onboarding.id)
    session.commit()
    log.info("sweep_done", **{f"due_{k}": len(v) for k, v in due.items()})
    return due


def _due_step(
    session: Session, onboarding: Onboarding, settings: Settings, now: datetime
) -> Next | None:
    """The step one onboarding needs next, if any, after settling what its clock decided."""
    leased = onboarding.lease_until is not None and onboarding.lease_until > now
    if onboarding.state == S.RECEIVED:
        if leased:
            return None
        if now < onboarding.signup_completed_at + settings.code_ttl:
            return Next.EXCHANGE
        _expire_code(session, onboarding, now)
        return None
    pending = [r for r in onboarding.syncs if r.state not in SYNC_DONE]
    if not pending:
        settle(session, onboarding)
        return None
    if now >= onboarding.sync_deadline_at:
        _close_window(session, onboarding, pending, now)
        return None
    if now >= alert_mark(onboarding, settings):
        _deadline_near(session, onboarding, pending, now)
    if leased:
        return None
    if onboarding.state == S.TOKEN_EXCHANGED:
        connect_due = now - onboarding.state_changed_at > timedelta(seconds=30)
        return Next.CONNECT if connect_due else None
    if any(_sync_due(r, now, settings.sync_max_probes) for r in pending):
        return Next.SYNC
    return None


def _expire_code(session: Session, onboarding: Onboarding, now: datetime) -> None:
    """Nobody exchanged the signup code within its life: forget it, ``code_expired``."""
    onboarding.code_ciphertext = None
    onboarding.last_error = "the signup code was not exchanged within its life"
    transition(session, onboarding, S.CODE_EXPIRED, onboarding.last_error, at=now)
    raise_alert(
        session,
        onboarding.id,
        "code_expired",
        f"onboarding {onboarding.id}: {onboarding.last_error}",
        severity="error",
    )


def _deadline_near(
    session: Session, onboarding: Onboarding, pending: list[SyncRequest], now: datetime
) -> None:
    """The critical alert, once: syncs not yet requested late in the window."""
    left = onboarding.sync_deadline_at - now
    raise_alert(
        session,
        onboarding.id,
        "sync_deadline_near",
        f"onboarding {onboarding.id}: {', '.join(r.sync_type for r in pending)} not yet "
        f"requested with {_hours(left)} left in the 24 h window "
        f"(state {onboarding.state})",
        severity="critical",
    )


def _sync_due(row: SyncRequest, now: datetime, max_probes: int) -> bool:
    """Whether the trigger may try this row now (no live intent, probes left, backoff over)."""
    if row.state == SyncState.INTENT and row.lease_until and row.lease_until > now:
        return False
    if row.state == SyncState.UNKNOWN and row.ambiguous_attempts > max_probes:
        return False  # probes exhausted: an operator decides (retry --force resets the count)
    return row.next_attempt_at is None or row.next_attempt_at <= now


def _close_window(
    session: Session, onboarding: Onboarding, pending: list[SyncRequest], now: datetime
) -> None:
    """The deadline passed: unsent syncs are ``window_missed`` (the onboarding too, for
    history); a history sync whose answer was lost is left ``unknown`` for its webhooks."""
    for row in pending:
        if row.state == SyncState.PENDING:
            sync_states.move(row, SyncState.WINDOW_MISSED)
            row.last_error = "the 24 h window closed before the call was accepted"
    contacts = onboarding.sync(SyncType.CONTACTS)
    if contacts.state == SyncState.WINDOW_MISSED:
        raise_alert(
            session,
            onboarding.id,
            "sync_contacts_window_missed",
            f"onboarding {onboarding.id}: the contacts sync was not accepted within the window",
            severity="error",
        )
    history = onboarding.sync(SyncType.HISTORY)
    if history.state == SyncState.WINDOW_MISSED:
        if onboarding.state in (S.TOKEN_EXCHANGED, S.SUBSCRIBED, S.SYNCING):
            transition(
                session,
                onboarding,
                S.SYNC_WINDOW_MISSED,
                "the 24 h sync window closed before the history sync was requested",
                at=now,
            )
        raise_alert(
            session,
            onboarding.id,
            "sync_window_missed",
            f"onboarding {onboarding.id}: history sync window missed; the business must "
            "offboard and redo Embedded Signup",
            severity="critical",
        )
    elif history.state in (SyncState.UNKNOWN, SyncState.INTENT):
        sync_states.move(history, SyncState.UNKNOWN)
        history.lease_until = None
        if onboarding.state == S.SUBSCRIBED:
            transition(
                session,
                onboarding,
                S.SYNCING,
                "window closed with the history sync outcome unknown; waiting for history webhooks",
                at=now,
            )
        raise_alert(
            session,
            onboarding.id,
            "sync_history_unknown",
            f"onboarding {onboarding.id}: window closed and it is unknown whether Meta "
            "accepted the history sync; history webhooks will tell",
            severity="error",
        )
    else:
        settle(session, onboarding)


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"
