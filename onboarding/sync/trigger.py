"""The one-shot sync trigger: ``POST /{phone-number-id}/smb_app_data``, contacts then history.

Each sync type may be requested once per onboarding, within 24 h of signup (2593107 and
2593108 otherwise), and a missed window cannot be repaired without the business redoing signup.
So every attempt follows the same discipline:

1. claim the sync row with a compare-and-set that records the *intent* (state ``intent``,
   attempt counted, lease taken) and commit, before anything is sent;
2. send once, never retried inside the client;
3. record the outcome: ``requested`` (with Meta's ``request_id``); back to ``pending`` when
   the call certainly did not apply (throttled, not sent); ``unknown`` when the answer was lost
   (dropped connection, 5xx, or a worker that died mid-call, seen as an expired ``intent``).

An ``unknown`` sync is never re-sent blindly: the next attempt is a *probe* whose 2593107 answer
means "the earlier call was accepted" (``requested``). Probes are bounded by
``sync_max_probes``; after that an operator decides (``coexist onboardings retry --force``).
2593107 with no earlier ambiguous attempt means someone else already used the sync: ``failed``.
2593108 means the window closed: ``window_missed`` and the onboarding ``sync_window_missed``.
"""

from __future__ import annotations

import enum
import random
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config import Settings
from config.logging import bind, register_secret
from models import (
    SYNC_ACCEPTED,
    SYNC_DONE,
    Onboarding,
    OnboardingState,
    SyncRequest,
    SyncState,
    SyncType,
    utcnow,
)
from models.crypto import TokenCipher
from onboarding.meta.errors import (
    PermanentGraphError,
    RateLimitedError,
    SyncAlreadyRequestedError,
    SyncWindowClosedError,
    TokenInvalidError,
    TransientGraphError,
)
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next, RetryLater
from onboarding.states import fail, raise_alert, transition

log = structlog.get_logger(__name__)

S = OnboardingState
SYNC_ORDER = (SyncType.CONTACTS, SyncType.HISTORY)
ACTIVE_STATES = (S.SUBSCRIBED, S.SYNCING)
#: States in which a sync row may still need its call: contacts can be left behind when the
#: history sync finished (or was declined) first.
SYNC_STATES = (S.SUBSCRIBED, S.SYNCING, S.SYNCED, S.HISTORY_DECLINED)


class Attempt(enum.StrEnum):
    DONE = "done"  # the row is settled (requested, failed, missed...)
    BUSY = "busy"  # another worker holds it
    WAIT = "wait"  # not yet: backoff, or blocked by the previous sync type
    GAVE_UP = "gave_up"  # probes exhausted: operator needed


def request_syncs(
    session: Session,
    graph: GraphClient,
    *,
    settings: Settings,
    cipher: TokenCipher,
    onboarding_id: int,
) -> Next | None:
    """Request contacts sync, then history sync, each once, inside the window.

    Raises :class:`RetryLater` when a sync must be tried again (state already saved).
    """
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        log.warning("onboarding_missing", onboarding_id=onboarding_id, step="sync")
        return None
    bind(
        onboarding_id=onboarding.id,
        waba_id=onboarding.waba_id,
        phone_number_id=onboarding.phone_number_id,
    )
    if onboarding.state not in SYNC_STATES:
        return None
    token = cipher.decrypt(onboarding.token_ciphertext or b"")
    register_secret(token)
    retry: RetryLater | None = None
    for sync_type in SYNC_ORDER:
        if onboarding.state not in SYNC_STATES:
            break
        if sync_type is SyncType.HISTORY and not _history_may_go(onboarding, settings):
            break
        try:
            _attempt(session, graph, settings, onboarding, onboarding.sync(sync_type), token)
        except RetryLater as exc:
            retry = exc
            if sync_type is SyncType.CONTACTS and not _history_may_go(onboarding, settings):
                break
    settle(session, onboarding)
    session.commit()
    if retry is not None:
        raise retry
    return None


def _history_may_go(onboarding: Onboarding, settings: Settings) -> bool:
    """Contacts first (Meta's order), but never let contacts hold history past the alert mark."""
    contacts = onboarding.sync(SyncType.CONTACTS)
    if contacts.state not in (SyncState.PENDING, SyncState.INTENT):
        return True
    return utcnow() >= _alert_mark(onboarding, settings)


def _alert_mark(onboarding: Onboarding, settings: Settings) -> datetime:
    window = onboarding.sync_deadline_at - onboarding.signup_completed_at
    return onboarding.signup_completed_at + window * settings.sync_deadline_alert_share


def _attempt(
    session: Session,
    graph: GraphClient,
    settings: Settings,
    onboarding: Onboarding,
    row: SyncRequest,
    token: str,
    *,
    force: bool = False,
) -> Attempt:
    """One guarded ``smb_app_data`` call for one sync row."""
    sync_type = row.type
    now = utcnow()
    if row.state in SYNC_DONE:
        return Attempt.DONE
    if now >= onboarding.sync_deadline_at:
        _window_closed(session, onboarding, row, "the 24 h sync window closed before the call")
        return Attempt.DONE
    previous = SyncState(row.state)
    if previous is SyncState.INTENT and row.lease_until and row.lease_until > now:
        return Attempt.BUSY
    if row.next_attempt_at and row.next_attempt_at > now and not force:
        raise RetryLater(f"{sync_type.label}: backing off", _seconds_until(row.next_attempt_at))
    ambiguous_before = row.ambiguous_attempts + (1 if previous is SyncState.INTENT else 0)
    if ambiguous_before > settings.sync_max_probes and not force:
        if previous is SyncState.INTENT:
            row.state = SyncState.UNKNOWN.value
            row.ambiguous_attempts = ambiguous_before
            row.lease_until = None
        raise_alert(
            session,
            onboarding.id,
            f"sync_{sync_type.label}_unknown",
            f"onboarding {onboarding.id}: {sync_type.value} sync outcome unknown after "
            f"{ambiguous_before} lost answers; check and run `coexist onboardings retry "
            f"{onboarding.id} --force` to probe again",
            severity="error",
        )
        return Attempt.GAVE_UP
    probing = previous in (SyncState.INTENT, SyncState.UNKNOWN)

    # 1. Record intent, atomically, before anything is sent.
    claimed = session.execute(
        update(SyncRequest)
        .where(
            SyncRequest.id == row.id,
            SyncRequest.state == previous.value,
            SyncRequest.attempts == row.attempts,
        )
        .values(
            state=SyncState.INTENT.value,
            attempts=row.attempts + 1,
            ambiguous_attempts=ambiguous_before,
            intent_at=now,
            lease_until=now + timedelta(seconds=settings.step_lease_seconds),
            next_attempt_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(row)
        return Attempt.BUSY
    session.refresh(row)
    log.info(
        "sync_intent_recorded",
        sync_type=sync_type.value,
        attempt=row.attempts,
        probe=probing,
    )

    # 2. Send, once.
    try:
        request_id = graph.request_sync(onboarding.phone_number_id or "", token, sync_type.value)
    except SyncAlreadyRequestedError as exc:
        if probing:
            _requested(
                session,
                onboarding,
                row,
                None,
                "2593107 after a lost answer: the earlier call was accepted",
            )
        else:
            _failed(
                session,
                onboarding,
                row,
                f"Meta says {sync_type.value} was already requested, and not by coexist: {exc}",
            )
        return Attempt.DONE
    except SyncWindowClosedError as exc:
        _window_closed(session, onboarding, row, f"Meta refused the call: {exc}")
        return Attempt.DONE
    except TransientGraphError as exc:
        row.lease_until = None
        row.last_error = str(exc)
        if exc.maybe_applied:
            row.state = SyncState.UNKNOWN.value
            row.ambiguous_attempts += 1
            wait = min(60.0, 2.0**row.ambiguous_attempts) * random.uniform(0.5, 1.0)
            log.warning("sync_outcome_unknown", sync_type=sync_type.value, **exc.log_fields())
        else:
            row.state = (SyncState.UNKNOWN if probing else SyncState.PENDING).value
            wait = _throttle_wait(exc, row.attempts)
            log.info("sync_not_sent", sync_type=sync_type.value, **exc.log_fields())
        wait = min(wait, max(1.0, _seconds_until(onboarding.sync_deadline_at) / 2))
        row.next_attempt_at = utcnow() + timedelta(seconds=wait)
        session.commit()
        raise RetryLater(f"{sync_type.label}: {exc.message}", wait) from exc
    except PermanentGraphError as exc:
        _failed(session, onboarding, row, str(exc), token_dead=isinstance(exc, TokenInvalidError))
        return Attempt.DONE
    _requested(session, onboarding, row, request_id, "accepted by Meta")
    return Attempt.DONE


def _throttle_wait(exc: TransientGraphError, attempts: int) -> float:
    if isinstance(exc, RateLimitedError) and exc.retry_after:
        return min(exc.retry_after, 900.0)
    return min(300.0, 2.0 ** min(attempts, 8)) * random.uniform(0.5, 1.0)


def _seconds_until(at: datetime) -> float:
    return max(0.0, (at - utcnow()).total_seconds())


def _requested(
    session: Session,
    onboarding: Onboarding,
    row: SyncRequest,
    request_id: str | None,
    how: str,
) -> None:
    # Webhooks may have been ingested while the answer was on its way (the sync is already
    # completed or declined): keep that, only record Meta's request id.
    session.execute(
        update(SyncRequest)
        .where(SyncRequest.id == row.id)
        .values(request_id=request_id, requested_at=utcnow(), lease_until=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(SyncRequest)
        .where(
            SyncRequest.id == row.id,
            SyncRequest.state.in_(
                [s.value for s in (SyncState.INTENT, SyncState.UNKNOWN, SyncState.PENDING)]
            ),
        )
        .values(state=SyncState.REQUESTED.value, last_error=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(row)
    session.refresh(onboarding, ["state", "state_changed_at"])
    log.info("sync_requested", sync_type=row.sync_type, request_id=request_id, how=how)


def _failed(
    session: Session,
    onboarding: Onboarding,
    row: SyncRequest,
    error: str,
    *,
    token_dead: bool = False,
) -> None:
    row.state = SyncState.FAILED.value
    row.lease_until = None
    row.last_error = error
    raise_alert(
        session,
        onboarding.id,
        f"sync_{row.type.label}_failed",
        f"onboarding {onboarding.id}: {row.sync_type} sync failed: {error}",
        severity="error",
    )
    if token_dead and onboarding.state in ACTIVE_STATES:
        fail(session, onboarding, "sync", f"business token rejected: {error}")
    session.commit()
    log.error("sync_failed", sync_type=row.sync_type, error=error)


def _window_closed(session: Session, onboarding: Onboarding, row: SyncRequest, why: str) -> None:
    row.state = SyncState.WINDOW_MISSED.value
    row.lease_until = None
    row.last_error = why
    raise_alert(
        session,
        onboarding.id,
        "sync_window_missed",
        f"onboarding {onboarding.id}: {row.sync_type} sync not requested within the window "
        f"({why}); the business must offboard and redo Embedded Signup",
        severity="critical",
    )
    session.commit()
    log.error("sync_window_missed", sync_type=row.sync_type, why=why)


def settle(session: Session, onboarding: Onboarding) -> None:
    """Move the onboarding according to its sync rows (not committed)."""
    if onboarding.state not in ACTIVE_STATES:
        return
    history = onboarding.sync(SyncType.HISTORY)
    state = SyncState(history.state)
    if state in SYNC_ACCEPTED and onboarding.state == S.SUBSCRIBED:
        contacts = onboarding.sync(SyncType.CONTACTS)
        transition(
            session,
            onboarding,
            S.SYNCING,
            f"history sync requested (request_id {history.request_id or 'confirmed by 2593107'}); "
            f"contacts sync {contacts.state}",
        )
    if state in (SyncState.COMPLETED, SyncState.COMPLETED_WITH_GAPS) and (
        onboarding.state == S.SYNCING
    ):
        # History webhooks finished before this onboarding got here (early deliveries).
        transition(session, onboarding, S.SYNCED, f"history sync already {state.value}")
    elif state is SyncState.DECLINED and onboarding.state in ACTIVE_STATES:
        transition(session, onboarding, S.HISTORY_DECLINED, history.last_error or "declined")
    elif state is SyncState.WINDOW_MISSED:
        transition(session, onboarding, S.SYNC_WINDOW_MISSED, history.last_error or "window closed")
    elif state is SyncState.FAILED and onboarding.state in ACTIVE_STATES:
        fail(session, onboarding, "sync", history.last_error or "history sync failed")


# -- the beat sweeper ----------------------------------------------------------------------


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
        )
        .order_by(Onboarding.sync_deadline_at)
        .limit(5000)
    ).all()
    for onboarding in onboardings:
        leased = onboarding.lease_until is not None and onboarding.lease_until > now
        if onboarding.state == S.RECEIVED:
            if leased:
                continue
            if now >= onboarding.signup_completed_at + settings.code_ttl:
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
            else:
                due[Next.EXCHANGE].append(onboarding.id)
            continue
        pending = [r for r in onboarding.syncs if r.state not in SYNC_DONE]
        if not pending:
            settle(session, onboarding)
            continue
        if now >= onboarding.sync_deadline_at:
            _close_window(session, onboarding, pending, now)
            continue
        if now >= _alert_mark(onboarding, settings):
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
        if leased:
            continue
        if onboarding.state == S.TOKEN_EXCHANGED:
            if now - onboarding.state_changed_at > timedelta(seconds=30):
                due[Next.CONNECT].append(onboarding.id)
        elif any(_sync_due(r, now, settings.sync_max_probes) for r in pending):
            due[Next.SYNC].append(onboarding.id)
    session.commit()
    log.info("sweep_done", **{f"due_{k}": len(v) for k, v in due.items()})
    return due


def _sync_due(row: SyncRequest, now: datetime, max_probes: int) -> bool:
    if row.state == SyncState.INTENT and row.lease_until and row.lease_until > now:
        return False
    if row.state == SyncState.UNKNOWN and row.ambiguous_attempts > max_probes:
        return False  # probes exhausted: an operator decides (retry --force resets the count)
    return row.next_attempt_at is None or row.next_attempt_at <= now


def _close_window(
    session: Session, onboarding: Onboarding, pending: list[SyncRequest], now: datetime
) -> None:
    for row in pending:
        if row.state == SyncState.PENDING:
            row.state = SyncState.WINDOW_MISSED.value
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
        history.state = SyncState.UNKNOWN.value
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
