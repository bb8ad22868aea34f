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

The sync rows change state through :mod:`.states`; :func:`settle` moves the onboarding as its
history sync settles. The deadline sweep (:mod:`.sweep`) re-fires what stalled.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import structlog
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
from onboarding.outcomes import RetryLater
from onboarding.states import fail, raise_alert, transition
from onboarding.sync import states as sync_states

log = structlog.get_logger(__name__)

S = OnboardingState
SYNC_ORDER = (SyncType.CONTACTS, SyncType.HISTORY)
ACTIVE_STATES = (S.SUBSCRIBED, S.SYNCING)
#: States in which a sync row may still need its call: contacts can be left behind when the
#: history sync finished (or was declined) first.
SYNC_STATES = (S.SUBSCRIBED, S.SYNCING, S.SYNCED, S.HISTORY_DECLINED)


def request_syncs(
    session: Session,
    graph: GraphClient,
    *,
    settings: Settings,
    cipher: TokenCipher,
    onboarding_id: int,
) -> None:
    """Request contacts sync, then history sync, each once, inside the window.

    Raises :class:`RetryLater` when a sync must be tried again (state already saved).
    """
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        log.warning("onboarding_missing", onboarding_id=onboarding_id, step="sync")
        return
    bind(
        onboarding_id=onboarding.id,
        waba_id=onboarding.waba_id,
        phone_number_id=onboarding.phone_number_id,
    )
    if onboarding.state not in SYNC_STATES:
        return
    if onboarding.erased_at is not None:
        log.info("onboarding_erased", step="sync")
        return
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


def _history_may_go(onboarding: Onboarding, settings: Settings) -> bool:
    """Contacts first (Meta's order), but never let contacts hold history past the alert mark."""
    contacts = onboarding.sync(SyncType.CONTACTS)
    if contacts.state not in (SyncState.PENDING, SyncState.INTENT):
        return True
    return utcnow() >= alert_mark(onboarding, settings)


def alert_mark(onboarding: Onboarding, settings: Settings) -> datetime:
    """When the deadline alert is due: ``sync_deadline_alert_share`` of the window gone."""
    window = onboarding.sync_deadline_at - onboarding.signup_completed_at
    return onboarding.signup_completed_at + window * settings.sync_deadline_alert_share


def _attempt(
    session: Session,
    graph: GraphClient,
    settings: Settings,
    onboarding: Onboarding,
    row: SyncRequest,
    token: str,
) -> None:
    """One guarded ``smb_app_data`` call for one sync row (state saved as it goes).

    Raises :class:`RetryLater` when the row must wait (backoff, or an answer that did not
    come); returns when it is settled, held by another worker, or left to an operator.
    """
    sync_type = row.type
    now = utcnow()
    if row.state in SYNC_DONE:
        return
    if now >= onboarding.sync_deadline_at:
        _window_closed(session, onboarding, row, "the 24 h sync window closed before the call")
        return
    previous = SyncState(row.state)
    if previous is SyncState.INTENT and row.lease_until and row.lease_until > now:
        return
    if row.next_attempt_at and row.next_attempt_at > now:
        raise RetryLater(f"{sync_type.label}: backing off", _seconds_until(row.next_attempt_at))
    ambiguous_before = row.ambiguous_attempts + (1 if previous is SyncState.INTENT else 0)
    if ambiguous_before > settings.sync_max_probes:
        _probes_exhausted(session, onboarding, row, ambiguous_before)
        return
    probing = previous in (SyncState.INTENT, SyncState.UNKNOWN)

    # 1. Record intent, atomically, before anything is sent.
    if not sync_states.claim(
        session,
        row,
        previous,
        ambiguous_attempts=ambiguous_before,
        now=now,
        lease_until=now + timedelta(seconds=settings.step_lease_seconds),
    ):
        return
    log.info(
        "sync_intent_recorded",
        sync_type=sync_type.value,
        attempt=row.attempts,
        probe=probing,
    )
    # 2. Send, once; 3. record the outcome.
    _send(session, graph, onboarding, row, token, probing=probing)


def _probes_exhausted(
    session: Session, onboarding: Onboarding, row: SyncRequest, ambiguous: int
) -> None:
    """Too many lost answers: the row is ``unknown`` and an operator is alerted (not committed)."""
    if row.state == SyncState.INTENT:
        sync_states.move(row, SyncState.UNKNOWN)
        row.ambiguous_attempts = ambiguous
        row.lease_until = None
    sync_type = row.type
    raise_alert(
        session,
        onboarding.id,
        f"sync_{sync_type.label}_unknown",
        f"onboarding {onboarding.id}: {sync_type.value} sync outcome unknown after "
        f"{ambiguous} lost answers; check and run `coexist onboardings retry "
        f"{onboarding.id} --force` to probe again",
        severity="error",
    )


def _send(
    session: Session,
    graph: GraphClient,
    onboarding: Onboarding,
    row: SyncRequest,
    token: str,
    *,
    probing: bool,
) -> None:
    """The call itself, once, and its outcome recorded. Raises :class:`RetryLater` when the
    call did not apply or its answer was lost."""
    sync_type = row.type
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
        return
    except SyncWindowClosedError as exc:
        _window_closed(session, onboarding, row, f"Meta refused the call: {exc}")
        return
    except TransientGraphError as exc:
        wait = _unanswered(session, onboarding, row, exc, probing=probing)
        raise RetryLater(f"{sync_type.label}: {exc.message}", wait) from exc
    except PermanentGraphError as exc:
        _failed(session, onboarding, row, str(exc), token_dead=isinstance(exc, TokenInvalidError))
        return
    _requested(session, onboarding, row, request_id, "accepted by Meta")


def _unanswered(
    session: Session,
    onboarding: Onboarding,
    row: SyncRequest,
    exc: TransientGraphError,
    *,
    probing: bool,
) -> float:
    """A transient failure: ``unknown`` if the call may have applied (or was a probe), else
    back to ``pending``; the backoff is recorded and returned. Commits."""
    sync_type = row.type
    row.lease_until = None
    row.last_error = str(exc)
    if exc.maybe_applied:
        sync_states.move(row, SyncState.UNKNOWN)
        row.ambiguous_attempts += 1
        wait = min(60.0, 2.0**row.ambiguous_attempts) * random.uniform(0.5, 1.0)
        log.warning("sync_outcome_unknown", sync_type=sync_type.value, **exc.log_fields())
    else:
        sync_states.move(row, SyncState.UNKNOWN if probing else SyncState.PENDING)
        wait = _throttle_wait(exc, row.attempts)
        log.info("sync_not_sent", sync_type=sync_type.value, **exc.log_fields())
    wait = min(wait, max(1.0, _seconds_until(onboarding.sync_deadline_at) / 2))
    row.next_attempt_at = utcnow() + timedelta(seconds=wait)
    session.commit()
    return wait


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
    """Meta accepted the call (or a probe proved it had). Commits."""
    sync_states.accept(session, row, request_id)
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
    """Meta refused for good: the row ``failed``, an alert, and the onboarding ``failed`` if
    the business token is dead. Commits."""
    sync_states.move(row, SyncState.FAILED)
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
    """The 24 h window closed before Meta accepted: ``window_missed``, a critical alert. Commits."""
    sync_states.move(row, SyncState.WINDOW_MISSED)
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
