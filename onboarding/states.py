"""State changes, operator alerts and step leases: the bookkeeping every step shares.

:func:`transition` is the one writer of ``Onboarding.state`` (the table is ``models.TRANSITIONS``);
a sync request's state has its own machine and writer, :mod:`onboarding.sync.states`. Each
state change and each alert raised or resolved writes its feed event in the caller's
transaction (``onboarding.state_changed``, ``alert.raised``, ``alert.resolved``); a timeline
:func:`note` writes none.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from models import TRANSITIONS, Alert, Onboarding, OnboardingState, Transition, utcnow
from onboarding.feed.events import EventType, emit, emit_for

log = structlog.get_logger(__name__)


class InvalidTransitionError(RuntimeError):
    """The state machine does not allow this move."""


def transition(
    session: Session,
    onboarding: Onboarding,
    to: OnboardingState,
    cause: str,
    *,
    at: datetime | None = None,
) -> bool:
    """Move ``onboarding`` to ``to`` and record it on the timeline (not committed).

    The move is a compare-and-set on the stored state: if another worker moved the
    onboarding meanwhile, nothing is written, the object is refreshed, and False returned.
    """
    current = OnboardingState(onboarding.state)
    if to == current:
        return False
    if to not in TRANSITIONS[current]:
        raise InvalidTransitionError(f"onboarding {onboarding.id}: {current} -> {to} not allowed")
    at = at or utcnow()
    if onboarding.id is not None:
        moved = session.execute(
            update(Onboarding)
            .where(Onboarding.id == onboarding.id, Onboarding.state == current.value)
            .values(state=to.value, state_changed_at=at)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            session.refresh(onboarding, ["state", "state_changed_at"])
            log.info(
                "onboarding_transition_lost",
                onboarding_id=onboarding.id,
                wanted=to.value,
                now=onboarding.state,
            )
            return False
        set_committed_value(onboarding, "state", to.value)
        set_committed_value(onboarding, "state_changed_at", at)
        emit(
            session,
            EventType.ONBOARDING_STATE_CHANGED,
            onboarding,
            {"from": current.value, "to": to.value, "cause": cause},
            occurred_at=at,
        )
    else:  # not stored yet: it has no id for an event (its creation tells of it)
        onboarding.state = to.value
        onboarding.state_changed_at = at
    onboarding.transitions.append(
        Transition(at=at, from_state=current.value, to_state=to.value, cause=cause)
    )
    log.info(
        "onboarding_state_changed",
        onboarding_id=onboarding.id,
        from_state=current.value,
        to_state=to.value,
        cause=cause,
    )
    return True


def note(onboarding: Onboarding, cause: str, *, at: datetime | None = None) -> None:
    """Put an event on the timeline without a state change (not committed)."""
    state = onboarding.state
    onboarding.transitions.append(
        Transition(at=at or utcnow(), from_state=state, to_state=state, cause=cause)
    )


def fail(session: Session, onboarding: Onboarding, step: str, error: str) -> None:
    """Park the onboarding in ``failed`` for an operator, remembering the step to resume."""
    onboarding.last_error = error
    onboarding.failed_step = step
    transition(session, onboarding, OnboardingState.FAILED, f"{step} failed: {error}")
    raise_alert(
        session,
        onboarding.id,
        "onboarding_failed",
        f"onboarding {onboarding.id} failed at {step}: {error}",
        severity="error",
    )


def raise_alert(
    session: Session,
    onboarding_id: int | None,
    kind: str,
    message: str,
    severity: str = "warning",
    *,
    reopen: bool = False,
) -> bool:
    """Record an alert once per (onboarding, kind); True if it is new. Flushes, not commits.

    With ``reopen``, an alert of that kind closed earlier (:func:`resolve_alert`) is replaced
    by a new one: the condition came back, and the new alert is notified like any other.
    """
    existing = session.scalar(
        select(Alert).where(Alert.onboarding_id == onboarding_id, Alert.kind == kind)
    )
    if existing is not None:
        if not (reopen and existing.acknowledged_at is not None):
            return False
        session.delete(existing)
        session.flush()
    try:
        with session.begin_nested():
            session.add(
                Alert(
                    onboarding_id=onboarding_id,
                    kind=kind,
                    severity=severity,
                    message=message,
                    raised_at=utcnow(),
                )
            )
    except IntegrityError:
        return False  # raised concurrently by another worker
    emit_for(
        session,
        EventType.ALERT_RAISED,
        onboarding_id,
        {"kind": kind, "severity": severity, "message": message},
    )
    log.warning(
        "alert_raised", onboarding_id=onboarding_id, kind=kind, severity=severity, alert=message
    )
    return True


def resolve_alert(
    session: Session, onboarding_id: int | None, kind: str, *, at: datetime | None = None
) -> bool:
    """Close the open alert of this kind (its condition is over); True if one was open.
    ``onboarding_id`` None: a service-wide alert. Not committed."""
    alert = session.scalar(
        select(Alert).where(
            Alert.onboarding_id == onboarding_id,
            Alert.kind == kind,
            Alert.acknowledged_at.is_(None),
        )
    )
    if alert is None:
        return False
    alert.acknowledged_at = at or utcnow()
    alert_resolved(session, alert)
    log.info("alert_resolved", onboarding_id=onboarding_id, kind=kind)
    return True


def alert_resolved(session: Session, alert: Alert) -> None:
    """The ``alert.resolved`` event of an alert just closed (not committed)."""
    emit_for(
        session,
        EventType.ALERT_RESOLVED,
        alert.onboarding_id,
        {"kind": alert.kind, "severity": alert.severity, "message": alert.message},
        occurred_at=alert.acknowledged_at,
    )


def claim(session: Session, onboarding: Onboarding, seconds: float) -> bool:
    """Take the onboarding's step lease (committed); False if another worker holds it."""
    now = utcnow()
    result = session.execute(
        update(Onboarding)
        .where(
            Onboarding.id == onboarding.id,
            Onboarding.state == onboarding.state,
            or_(Onboarding.lease_until.is_(None), Onboarding.lease_until < now),
        )
        .values(lease_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.refresh(onboarding)
    return True


def release(onboarding: Onboarding) -> None:
    """Give the step lease back (takes effect with the caller's commit)."""
    onboarding.lease_until = None
