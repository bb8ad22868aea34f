"""The sync request's state machine: the one writer of ``SyncRequest.state``.

Every change of a sync row's state goes through here: :func:`move` for a change decided on the
row in hand, :func:`claim` and :func:`accept` for the two compare-and-sets on the stored row
(the trigger's intent before the call, and Meta's yes after it). A move the table does not allow
raises :class:`InvalidSyncTransitionError`; a move to the state the row is in changes nothing.

========================  ===============================================================
from                      to
========================  ===============================================================
``pending``               ``intent`` (claimed), ``requested``, ``window_missed``
``intent``                ``pending`` (certainly not sent), ``unknown`` (answer lost),
                          ``requested``, ``failed``, ``window_missed``
``unknown``               ``intent`` (a probe), ``requested``, ``window_missed``
``requested``             ``stalled``
``stalled``               ``requested``
``failed``                ``pending`` (operator retry)
any                       ``completed``, ``completed_with_gaps``, ``declined``
========================  ===============================================================

Entering ``requested``, ``completed``, ``completed_with_gaps``, ``declined``, ``stalled`` or
``window_missed`` writes its feed event (``sync.<state>``) in the transaction of the change;
the other states are coexist's own bookkeeping and tell the feed nothing.

The last line is Meta's word: history webhooks that finish or decline the sync are only sent
for a request Meta accepted, so they settle the row whatever the trigger believed. An expired
``intent`` is claimed again (``intent`` → ``intent``) by :func:`claim` only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, object_session

from models import SyncRequest, SyncState, utcnow
from onboarding.feed.events import EventType, emit_for

P = SyncState

#: States whose call has no answer yet: nothing sent, in flight, or the answer lost.
UNANSWERED = frozenset({P.PENDING, P.INTENT, P.UNKNOWN})
#: What Meta's history webhooks may say at any time.
VERDICTS = frozenset({P.COMPLETED, P.COMPLETED_WITH_GAPS, P.DECLINED})

#: Allowed moves (a state to itself is no move).
TRANSITIONS: dict[SyncState, frozenset[SyncState]] = {
    P.PENDING: frozenset({P.INTENT, P.REQUESTED, P.WINDOW_MISSED}) | VERDICTS,
    P.INTENT: frozenset({P.PENDING, P.UNKNOWN, P.REQUESTED, P.FAILED, P.WINDOW_MISSED}) | VERDICTS,
    P.UNKNOWN: frozenset({P.INTENT, P.REQUESTED, P.WINDOW_MISSED}) | VERDICTS,
    P.REQUESTED: frozenset({P.STALLED}) | VERDICTS,
    P.STALLED: frozenset({P.REQUESTED}) | VERDICTS,
    P.FAILED: frozenset({P.PENDING}) | VERDICTS,
    P.WINDOW_MISSED: VERDICTS,
    P.DECLINED: VERDICTS,
    P.COMPLETED: VERDICTS,
    P.COMPLETED_WITH_GAPS: VERDICTS,
}


#: The feed event of each state a provider hears of.
EVENTS: dict[SyncState, EventType] = {
    P.REQUESTED: EventType.SYNC_REQUESTED,
    P.COMPLETED: EventType.SYNC_COMPLETED,
    P.COMPLETED_WITH_GAPS: EventType.SYNC_COMPLETED_WITH_GAPS,
    P.DECLINED: EventType.SYNC_DECLINED,
    P.STALLED: EventType.SYNC_STALLED,
    P.WINDOW_MISSED: EventType.SYNC_WINDOW_MISSED,
}


class InvalidSyncTransitionError(RuntimeError):
    """The sync request's state machine does not allow this move."""


def move(row: SyncRequest, to: SyncState, **details: Any) -> bool:
    """Move ``row`` to ``to`` (not committed); False if it is there already.

    The feed event of ``to`` (:data:`EVENTS`), if it has one, is written in the session of
    ``row`` with ``details`` in its body (a row in no session has no transaction to write
    to). Raises :class:`InvalidSyncTransitionError` for a move :data:`TRANSITIONS` does not
    allow.
    """
    current = SyncState(row.state)
    if to is current:
        return False
    if to not in TRANSITIONS[current]:
        raise InvalidSyncTransitionError(
            f"{row.sync_type} sync of onboarding {row.onboarding_id}: {current} -> {to} not allowed"
        )
    row.state = to.value
    session = object_session(row)
    if session is not None:
        _tell(session, row, to, details)
    return True


def _tell(session: Session, row: SyncRequest, to: SyncState, details: dict[str, Any]) -> None:
    """Write the feed event of ``row`` entering ``to`` (not committed)."""
    event = EVENTS.get(to)
    if event is None:
        return
    body: dict[str, Any] = {"sync_type": row.sync_type}
    if to is P.REQUESTED:
        body["request_id"] = row.request_id
    emit_for(session, event, row.onboarding_id, {**body, **details})


def confirm_accepted(row: SyncRequest, how: str, *, requested_at: datetime | None = None) -> None:
    """Webhooks of this sync arrived, so Meta accepted it: an unanswered call was a yes.

    Only an :data:`UNANSWERED` row changes (to ``requested``, lease released, ``how`` noted);
    ``requested_at`` is recorded if given and none is. Not committed.
    """
    if SyncState(row.state) not in UNANSWERED:
        return
    move(row, P.REQUESTED)
    row.lease_until = None
    if requested_at is not None:
        row.requested_at = row.requested_at or requested_at
    row.last_error = how


def revive(row: SyncRequest) -> None:
    """A ``stalled`` sync that hears from Meta again is ``requested`` again (not committed)."""
    if row.state == P.STALLED:
        move(row, P.REQUESTED)


def claim(
    session: Session,
    row: SyncRequest,
    previous: SyncState,
    *,
    ambiguous_attempts: int,
    now: datetime,
    lease_until: datetime,
) -> bool:
    """Record the intent to call, atomically, before anything is sent. Commits.

    A compare-and-set on the stored state and attempt count: False if another worker moved
    the row meanwhile. Either way the row is refreshed.
    """
    if previous is not P.INTENT and P.INTENT not in TRANSITIONS[previous]:
        raise InvalidSyncTransitionError(f"{row.sync_type} sync: {previous} cannot be claimed")
    claimed = session.execute(
        update(SyncRequest)
        .where(
            SyncRequest.id == row.id,
            SyncRequest.state == previous.value,
            SyncRequest.attempts == row.attempts,
        )
        .values(
            state=P.INTENT.value,
            attempts=row.attempts + 1,
            ambiguous_attempts=ambiguous_attempts,
            intent_at=now,
            lease_until=lease_until,
            next_attempt_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(row)
    return claimed.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def accept(session: Session, row: SyncRequest, request_id: str | None) -> None:
    """Meta accepted the call: record its request id, and ``requested`` if still unanswered.

    Webhooks may have been ingested while the answer was on its way (the sync is already
    completed or declined): that is kept, only Meta's request id is recorded. Commits and
    refreshes the row.
    """
    session.execute(
        update(SyncRequest)
        .where(SyncRequest.id == row.id)
        .values(request_id=request_id, requested_at=utcnow(), lease_until=None)
        .execution_options(synchronize_session=False)
    )
    answered = session.execute(
        update(SyncRequest)
        .where(SyncRequest.id == row.id, SyncRequest.state.in_([s.value for s in UNANSWERED]))
        .values(state=P.REQUESTED.value, last_error=None)
        .execution_options(synchronize_session=False)
    )
    if answered.rowcount == 1:  # type: ignore[attr-defined]
        emit_for(
            session,
            EventType.SYNC_REQUESTED,
            row.onboarding_id,
            {"sync_type": row.sync_type, "request_id": request_id},
        )
    session.commit()
    session.refresh(row)
