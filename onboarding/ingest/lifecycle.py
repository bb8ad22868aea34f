"""Living with coexistence: ``account_update`` events move the onboarding's lifecycle.

Meta sends them to the app's default callback, never to overrides
(docs/meta.md#113-where-webhooks-go):

* ``PARTNER_REMOVED`` → ``disconnected``, keeping ``disconnection_info.reason`` and
  ``initiated_by`` (``PRIMARY_INACTIVITY``, ``COMPANION_INACTIVITY``, ``CHANGE_NUMBER``,
  ``USER_RE_REGISTERED``, ``BUSINESS_DOWNGRADE``, ``ACCOUNT_DISCONNECTED``...); data is kept.
* ``ACCOUNT_OFFBOARDED`` → ``reconnecting``: API sends pause until Meta reconnects.
* ``ACCOUNT_RECONNECTED`` → back to the state it left; companions must be relinked again.
* ``ACCOUNT_DELETED``, ``ACCOUNT_RESTRICTION``, ``ACCOUNT_VIOLATION``, ``DISABLED_UPDATE`` →
  sends paused, with the reason.
* ``PARTNER_ADDED``, ``PARTNER_APP_INSTALLED``, ``PARTNER_APP_UNINSTALLED`` → on the timeline.

Events are matched by WABA id (the entry's, or a nested ``waba_info.waba_id``), preferring the
onboarding whose number is ``value.phone_number``. Each carries the entry's ``time``: an event
older than the one that set the current lifecycle is stale and changes nothing, so
redelivered or reordered events never overwrite newer state. Every change is on the timeline.
A fresh signup for a disconnected number is a new onboarding with its own 24 h window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models import Onboarding, OnboardingState, utcnow
from onboarding.ingest.rows import Tally
from onboarding.meta.payloads import Change, digits
from onboarding.states import note, raise_alert, transition

log = structlog.get_logger(__name__)

S = OnboardingState
PAUSING_EVENTS = frozenset(
    {"ACCOUNT_DELETED", "ACCOUNT_RESTRICTION", "ACCOUNT_VIOLATION", "DISABLED_UPDATE"}
)
NOTED_EVENTS = frozenset({"PARTNER_ADDED", "PARTNER_APP_INSTALLED", "PARTNER_APP_UNINSTALLED"})
#: States an onboarding can be disconnected or offboarded from.
CONNECTED = frozenset(
    {
        S.TOKEN_EXCHANGED,
        S.SUBSCRIBED,
        S.SYNCING,
        S.SYNCED,
        S.HISTORY_DECLINED,
        S.SYNC_WINDOW_MISSED,
        S.FAILED,
        S.RECONNECTING,
    }
)


def waba_ids(change: Change) -> list[str]:
    """The WABA ids an ``account_update`` may be about: the entry's and ``waba_info``'s."""
    ids = [change.waba_id] if change.waba_id else []
    info = change.value.get("waba_info")
    if isinstance(info, dict):
        nested = info.get("waba_id")
        if isinstance(nested, int) and not isinstance(nested, bool):
            nested = str(nested)
        if isinstance(nested, str) and nested.isdigit() and nested not in ids:
            ids.append(nested)
    return ids


def find_for_event(session: Session, change: Change) -> Onboarding | None:
    """The newest onboarding of the event's WABA, preferring the one of its phone number."""
    ids = waba_ids(change)
    if not ids:
        return None
    candidates = list(
        session.scalars(
            select(Onboarding)
            .where(or_(*(Onboarding.waba_id == w for w in ids)))
            .order_by(Onboarding.id.desc())
            .limit(50)
        )
    )
    phone = digits(change.value.get("phone_number"))
    if phone:
        for onboarding in candidates:
            if digits(onboarding.display_phone_number) == phone:
                return onboarding
    return candidates[0] if candidates else None


def apply_account_update(session: Session, onboarding: Onboarding, change: Change) -> Tally:
    """Apply one ``account_update`` to ``onboarding`` (idempotent, fenced by entry time)."""
    tally = Tally()
    value = change.value
    event = value.get("event")
    if not isinstance(event, str) or not event or len(event) > 64:
        tally.reject("account_update without an event")
        return tally
    at = (
        datetime.fromtimestamp(change.entry_time, tz=UTC)
        if change.entry_time is not None and change.entry_time > 0
        else utcnow()
    )
    if onboarding.lifecycle_event_at is not None and at < onboarding.lifecycle_event_at:
        tally.counts["stale_events"] += 1
        log.info(
            "account_event_stale",
            onboarding_id=onboarding.id,
            lifecycle_event=event,
            current=onboarding.lifecycle_event,
        )
        session.commit()
        return tally
    if (
        onboarding.lifecycle_event == event
        and onboarding.lifecycle_event_at is not None
        and at == onboarding.lifecycle_event_at
    ):
        tally.counts["repeated_events"] += 1
        return tally
    state = OnboardingState(onboarding.state)
    if event == "PARTNER_REMOVED":
        _disconnected(session, onboarding, value, at, state)
    elif event == "ACCOUNT_OFFBOARDED":
        _offboarded(session, onboarding, at, state)
    elif event == "ACCOUNT_RECONNECTED":
        _reconnected(session, onboarding, at, state)
    elif event in PAUSING_EVENTS:
        _paused(session, onboarding, event, value, at)
    elif event in NOTED_EVENTS:
        note(onboarding, f"{event} ({_describe(value)})", at=at)
    else:
        tally.counts["unknown_events"] += 1
        note(onboarding, f"account_update {event} (not handled)", at=at)
        session.commit()
        return tally
    onboarding.lifecycle_event = event
    onboarding.lifecycle_event_at = at
    tally.counts[f"event_{event.lower()}"] += 1
    session.commit()
    log.info(
        "account_event_applied",
        onboarding_id=onboarding.id,
        lifecycle_event=event,
        state=onboarding.state,
    )
    return tally


def _describe(value: dict[str, Any]) -> str:
    parts = []
    for key in ("waba_info", "disconnection_info", "violation_info", "restriction_info"):
        item = value.get(key)
        if isinstance(item, dict):
            parts.append(", ".join(f"{k}={v}" for k, v in list(item.items())[:6]))
    return "; ".join(parts) or "no details"


def _disconnected(
    session: Session,
    onboarding: Onboarding,
    value: dict[str, Any],
    at: datetime,
    state: OnboardingState,
) -> None:
    info = value.get("disconnection_info")
    reason = initiated_by = None
    if isinstance(info, dict):
        reason = info.get("reason") if isinstance(info.get("reason"), str) else None
        who = info.get("initiated_by")
        initiated_by = who if isinstance(who, str) else None
    onboarding.lifecycle_reason = (reason or "UNSPECIFIED")[:64]
    onboarding.lifecycle_initiated_by = initiated_by[:16] if initiated_by else None
    onboarding.lifecycle_since = at
    cause = f"PARTNER_REMOVED: {onboarding.lifecycle_reason}" + (
        f" (initiated by {initiated_by})" if initiated_by else ""
    )
    if state in CONNECTED:
        transition(session, onboarding, S.DISCONNECTED, cause, at=at)
    else:
        note(onboarding, cause, at=at)
    raise_alert(
        session,
        onboarding.id,
        "disconnected",
        f"onboarding {onboarding.id}: Meta disconnected the business ({cause}); data is kept, "
        "a new Embedded Signup starts a new onboarding",
        severity="error",
    )


def _offboarded(
    session: Session, onboarding: Onboarding, at: datetime, state: OnboardingState
) -> None:
    if state is S.RECONNECTING:
        return
    cause = "ACCOUNT_OFFBOARDED: the Cloud API companion was offboarded; API sends paused"
    if state in CONNECTED:
        onboarding.resume_state = state.value
        onboarding.lifecycle_reason = None
        onboarding.lifecycle_since = at
        transition(session, onboarding, S.RECONNECTING, cause, at=at)
    else:
        note(onboarding, cause, at=at)


def _reconnected(
    session: Session, onboarding: Onboarding, at: datetime, state: OnboardingState
) -> None:
    cause = "ACCOUNT_RECONNECTED: back on the Cloud API; companions must be relinked"
    if state is S.RECONNECTING:
        target = OnboardingState(onboarding.resume_state or S.SYNCED.value)
        onboarding.resume_state = None
        onboarding.lifecycle_since = at
        transition(session, onboarding, target, cause, at=at)
    else:
        note(onboarding, cause, at=at)


def _paused(
    session: Session, onboarding: Onboarding, event: str, value: dict[str, Any], at: datetime
) -> None:
    onboarding.paused_reason = f"{event}: {_describe(value)}"[:2000]
    onboarding.paused_at = at
    note(onboarding, f"API sends paused by {event} ({_describe(value)})", at=at)
    raise_alert(
        session,
        onboarding.id,
        f"paused_{event.lower()}",
        f"onboarding {onboarding.id}: API sends paused by {event}",
        severity="error",
    )
