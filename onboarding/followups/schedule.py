"""Follow-ups: what the business must do to stay connected, scheduled and sent once.

* Companion relink: Meta unlinks WhatsApp Web/Desktop and other companions at onboarding (and
  again after a reconnection). A series of reminders (``COEX_RELINK_REMINDER_HOURS``, by default
  at once, after 1 day and after 3 days) runs until the business acknowledges one; a new series
  starts after ``ACCOUNT_RECONNECTED``.
* App-open heartbeat: Meta disconnects a coexistence number whose Business app has not been
  opened for about 14 days (``PRIMARY_INACTIVITY``). Reminders fall due when no app activity
  (an app echo) has been seen for ``COEX_HEARTBEAT_REMINDER_DAYS`` (10 and 12); new activity
  starts a new series, and a disconnection stops them all.
* Alerts raised by the pipeline (deadline near, window missed, stalled or declined history,
  disconnected...) go out through the same notifier.

:func:`schedule` is the beat job's domain: idempotent (unique (onboarding, kind, series, step)),
it creates what is missing, cancels what no longer applies, and returns the due follow-ups.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from config import Settings
from models import (
    Alert,
    FollowUp,
    FollowUpKind,
    FollowUpStatus,
    Onboarding,
    OnboardingState,
    utcnow,
)
from onboarding.feed.events import EventType, emit_for, iso
from onboarding.followups.rules import (
    INACTIVITY_DISCONNECT_DAYS,
    SUPPORTED_COMPANIONS,
    UNSUPPORTED_COMPANIONS,
)
from onboarding.states import alert_resolved
from onboarding.store import insert_for

log = structlog.get_logger(__name__)

S = OnboardingState
K = FollowUpKind
#: Onboardings that get reminders: their number is connected to coexist.
ACTIVE = (S.SYNCING, S.SYNCED, S.HISTORY_DECLINED, S.SYNC_WINDOW_MISSED)


class FollowUpError(ValueError):
    """The operator action cannot be done; the message says why."""


def schedule(session: Session, *, settings: Settings, now: datetime | None = None) -> list[int]:
    """Create missing follow-ups, cancel stale ones, return the ids due now. Commits."""
    now = now or utcnow()
    onboardings = session.scalars(
        select(Onboarding)
        .where(Onboarding.state.in_([s.value for s in ACTIVE]), Onboarding.erased_at.is_(None))
        .options(selectinload(Onboarding.transitions))  # relink_basis reads them
        .limit(10_000)
    ).all()
    rows: list[dict[str, Any]] = []
    for onboarding in onboardings:
        rows += _relink_rows(onboarding, settings, now)
        rows += _heartbeat_rows(onboarding, settings, now)
    _cancel_outdated_heartbeats(session, onboardings)
    rows += _alert_rows(session, now)
    if rows:
        stmt = insert_for(session, FollowUp.__table__).on_conflict_do_nothing(
            index_elements=["onboarding_id", "kind", "series", "step"]
        )
        created = session.execute(
            stmt.returning(
                FollowUp.id,
                FollowUp.onboarding_id,
                FollowUp.kind,
                FollowUp.series,
                FollowUp.step,
                FollowUp.due_at,
            ),
            rows,
        ).all()
        for row in created:
            emit_for(
                session,
                EventType.FOLLOW_UP_SCHEDULED,
                row.onboarding_id,
                {
                    "follow_up_id": row.id,
                    "kind": row.kind,
                    "series": row.series,
                    "step": row.step,
                    "due_at": iso(row.due_at),
                },
            )
    _cancel_for_disconnected(session, now)
    session.commit()
    due = list(
        session.scalars(
            select(FollowUp.id)
            .where(
                FollowUp.status == FollowUpStatus.SCHEDULED.value,
                FollowUp.due_at <= now,
            )
            .order_by(FollowUp.due_at)
            .limit(1000)
        )
    )
    log.info("follow_ups_scheduled", created_candidates=len(rows), due=len(due))
    return due


def _row(
    onboarding_id: int,
    kind: K,
    series: int,
    step: int,
    due_at: datetime,
    content: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    return {
        "onboarding_id": onboarding_id,
        "kind": kind.value,
        "series": series,
        "step": step,
        "due_at": due_at,
        "status": FollowUpStatus.SCHEDULED.value,
        "attempts": 0,
        "sent_count": 0,
        "content": content,
        "created_at": now,
    }


def relink_basis(onboarding: Onboarding) -> tuple[int, datetime, str]:
    """The relink series of the onboarding's latest connection: (series, start, why)."""
    if onboarding.lifecycle_event == "ACCOUNT_RECONNECTED" and onboarding.lifecycle_since:
        start = onboarding.lifecycle_since
        return int(start.timestamp()), start, "reconnected"
    subscribed = next(
        (t.at for t in onboarding.transitions if t.to_state == S.SUBSCRIBED.value),
        onboarding.signup_completed_at,
    )
    return 0, subscribed, "onboarding"


def _relink_rows(onboarding: Onboarding, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    series, start, why = relink_basis(onboarding)
    content = {
        "reason": why,
        "supported": list(SUPPORTED_COMPANIONS),
        "unsupported": list(UNSUPPORTED_COMPANIONS),
    }
    return [
        _row(
            onboarding.id,
            K.COMPANION_RELINK,
            series,
            step,
            start + timedelta(hours=hours),
            content,
            now,
        )
        for step, hours in enumerate(settings.relink_reminder_hours)
    ]


def _heartbeat_series(onboarding: Onboarding) -> tuple[int, datetime]:
    """The app-open series counts from the last app activity (or the signup)."""
    basis = onboarding.last_app_activity_at or onboarding.signup_completed_at
    return int(basis.timestamp()), basis


def _cancel_outdated_heartbeats(session: Session, onboardings: Sequence[Onboarding]) -> None:
    """App activity since: reminders counted from an older activity no longer apply."""
    current = {o.id: _heartbeat_series(o)[0] for o in onboardings}
    scheduled = session.execute(
        select(FollowUp.id, FollowUp.onboarding_id, FollowUp.series).where(
            FollowUp.kind == K.APP_OPEN.value,
            FollowUp.status == FollowUpStatus.SCHEDULED.value,
        )
    ).all()
    outdated = [
        id_
        for id_, onboarding_id, series in scheduled
        if onboarding_id in current and series < current[onboarding_id]
    ]
    if outdated:
        session.execute(
            update(FollowUp)
            .where(FollowUp.id.in_(outdated))
            .values(status=FollowUpStatus.CANCELLED.value, last_error="app activity since")
        )


def _heartbeat_rows(
    onboarding: Onboarding, settings: Settings, now: datetime
) -> list[dict[str, Any]]:
    series, basis = _heartbeat_series(onboarding)
    return [
        _row(
            onboarding.id,
            K.APP_OPEN,
            series,
            step,
            basis + timedelta(days=days),
            {
                "days_without_activity": days,
                "last_activity_at": basis.isoformat(),
                "disconnect_after_days": INACTIVITY_DISCONNECT_DAYS,
            },
            now,
        )
        for step, days in enumerate(settings.heartbeat_reminder_days)
    ]


def _alert_rows(session: Session, now: datetime) -> list[dict[str, Any]]:
    alerts = session.scalars(
        select(Alert).where(
            Alert.acknowledged_at.is_(None),
            Alert.onboarding_id.is_not(None),
            Alert.raised_at > now - timedelta(days=7),
            Alert.onboarding_id.not_in(
                select(Onboarding.id).where(Onboarding.erased_at.is_not(None))
            ),
        )
    ).all()
    return [
        _row(
            alert.onboarding_id or 0,
            K.ALERT,
            alert.id,
            0,
            alert.raised_at,
            {"alert_kind": alert.kind, "severity": alert.severity, "message": alert.message},
            now,
        )
        for alert in alerts
    ]


def _cancel_for_disconnected(session: Session, now: datetime) -> None:
    gone = select(Onboarding.id).where(Onboarding.state == S.DISCONNECTED.value)
    session.execute(
        update(FollowUp)
        .where(
            FollowUp.status == FollowUpStatus.SCHEDULED.value,
            FollowUp.kind != K.ALERT.value,
            FollowUp.onboarding_id.in_(gone),
        )
        .values(status=FollowUpStatus.CANCELLED.value, last_error="disconnected")
    )


def acknowledge(session: Session, follow_up_id: int, *, now: datetime | None = None) -> FollowUp:
    """The business (or an operator) did what the reminder asked: stop the series. Commits."""
    now = now or utcnow()
    follow_up = session.get(FollowUp, follow_up_id)
    if follow_up is None:
        raise FollowUpError(f"no follow-up {follow_up_id}")
    if follow_up.status == FollowUpStatus.ACKNOWLEDGED:
        return follow_up
    if follow_up.status == FollowUpStatus.CANCELLED:
        raise FollowUpError(f"follow-up {follow_up_id} was cancelled ({follow_up.last_error})")
    follow_up.status = FollowUpStatus.ACKNOWLEDGED.value
    follow_up.acknowledged_at = now
    session.execute(
        update(FollowUp)
        .where(
            FollowUp.onboarding_id == follow_up.onboarding_id,
            FollowUp.kind == follow_up.kind,
            FollowUp.series == follow_up.series,
            FollowUp.status == FollowUpStatus.SCHEDULED.value,
        )
        .values(status=FollowUpStatus.CANCELLED.value, last_error="acknowledged")
    )
    if follow_up.kind == K.ALERT.value:
        alert = session.get(Alert, follow_up.series)
        if alert is not None and alert.acknowledged_at is None:
            alert.acknowledged_at = now
            alert_resolved(session, alert)
    emit_for(
        session,
        EventType.FOLLOW_UP_ACKNOWLEDGED,
        follow_up.onboarding_id,
        {"follow_up_id": follow_up.id, "kind": follow_up.kind, "series": follow_up.series},
        occurred_at=now,
    )
    session.commit()
    log.info("follow_up_acknowledged", follow_up_id=follow_up.id, kind=follow_up.kind)
    return follow_up
