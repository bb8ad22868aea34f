"""Living with coexistence: ``account_update`` events move the onboarding's lifecycle.

Meta sends them to the app's default callback, never to overrides
(docs/meta.md#113-where-webhooks-go), and for every WABA shared with the partner
(docs/meta.md#116-acting-on-account_update):

* ``PARTNER_REMOVED`` → ``disconnected``, keeping ``disconnection_info.reason`` and
  ``initiated_by`` (``PRIMARY_INACTIVITY``, ``COMPANION_INACTIVITY``, ``CHANGE_NUMBER``,
  ``USER_RE_REGISTERED``, ``BUSINESS_DOWNGRADE``, ``ACCOUNT_DISCONNECTED``...); data is kept.
* ``ACCOUNT_OFFBOARDED`` → ``reconnecting``: API sends pause until Meta reconnects.
* ``ACCOUNT_RECONNECTED`` → back to the state it left; companions must be relinked again.
* ``DISABLED_UPDATE`` by ``ban_info.waba_ban_state``: ``DISABLE`` pauses sends, ``REINSTATE``
  lifts that pause, ``SCHEDULE_FOR_DISABLE`` warns (an alert naming ``waba_ban_date``); a
  missing or unknown state pauses, to be safe.
* ``ACCOUNT_RESTRICTION`` stops what its ``restriction_info[]`` restricts until each
  ``expiration`` (:mod:`onboarding.pauses`).
* ``ACCOUNT_DELETED``, ``ACCOUNT_VIOLATION`` → sends paused, with the reason.
* ``PARTNER_ADDED``, ``PARTNER_APP_INSTALLED``, ``PARTNER_APP_UNINSTALLED`` → on the timeline.

Events are keyed on ``value.waba_info.waba_id`` where present (the entry id of a PARTNER_*
event is often the partner's business portfolio), else on the entry id, preferring the
onboarding whose number is ``value.phone_number``; one for a WABA coexist has no onboarding of
is recorded and not applied (:func:`unmatched_note`). Each carries the entry's ``time``: an
event older than the one that set the current lifecycle is stale and changes nothing, so
redelivered or reordered events never overwrite newer state, and so is one dated before the
onboarding's signup (it was about an earlier onboarding of the WABA). Every change is on the
timeline. A fresh signup for a disconnected number is a new onboarding with its own 24 h
window. Pauses and restrictions are written by :mod:`onboarding.pauses` only. Each applied
event writes its feed event in the same transaction (``account.disconnected``,
``account.reconnecting``, ``account.reconnected``; pauses write ``account.paused`` and
``account.resumed``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Onboarding, OnboardingState, utcnow
from onboarding import pauses
from onboarding.feed.events import EventType, emit
from onboarding.ingest.rows import Tally
from onboarding.meta.payloads import Change, digits
from onboarding.states import note, raise_alert, resolve_alert, transition

log = structlog.get_logger(__name__)

S = OnboardingState
PAUSING_EVENTS = frozenset({"ACCOUNT_DELETED", "ACCOUNT_VIOLATION"})
NOTED_EVENTS = frozenset({"PARTNER_ADDED", "PARTNER_APP_INSTALLED", "PARTNER_APP_UNINSTALLED"})
#: Events Meta sends while the Embedded Signup finishes: dated up to this long before coexist
#: received the signup, they still belong to it.
SIGNUP_EVENTS = frozenset({"PARTNER_ADDED", "PARTNER_APP_INSTALLED"})
SIGNUP_EVENT_SLACK = timedelta(hours=1)
DISABLE_SCHEDULED_ALERT = "disable_scheduled"
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


def _id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 32:
        return value
    return None


def event_waba_id(change: Change) -> str | None:
    """The WABA an ``account_update`` is about: ``value.waba_info.waba_id`` where the event
    has ``waba_info`` (PARTNER_* events, whose entry id is often the partner's business
    portfolio), else the entry's id."""
    info = change.value.get("waba_info")
    if isinstance(info, dict):
        return _id(info.get("waba_id"))
    return change.waba_id


def find_for_event(session: Session, change: Change) -> Onboarding | None:
    """The newest onboarding of the event's WABA, preferring the one of its phone number."""
    waba_id = event_waba_id(change)
    if waba_id is None:
        return None
    candidates = list(
        session.scalars(
            select(Onboarding)
            .where(Onboarding.waba_id == waba_id)
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


def unmatched_note(change: Change) -> str:
    """What an ``account_update`` for a WABA without an onboarding was, and why it was not
    applied (the inbox summary an operator reads)."""
    event = change.value.get("event")
    name = event[:64] if isinstance(event, str) and event else "account_update"
    return (
        f"{name} for WABA {event_waba_id(change) or 'unknown'}: coexist has no onboarding of "
        "this WABA and received no signup for it (Meta sends account_update for every WABA "
        "shared with the partner); recorded, not applied"
    )


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
        if change.entry_time is not None
        else utcnow()
    )
    stale = _staleness(onboarding, event, at, dated=change.entry_time is not None)
    if stale is not None:
        tally.counts["stale_events"] += 1
        tally.notes.append(stale)
        log.info(
            "account_event_stale",
            onboarding_id=onboarding.id,
            lifecycle_event=event,
            current=onboarding.lifecycle_event,
            why=stale,
        )
        return tally
    if (
        onboarding.lifecycle_event == event
        and onboarding.lifecycle_event_at is not None
        and at == onboarding.lifecycle_event_at
    ):
        tally.counts["repeated_events"] += 1
        return tally
    apply = _APPLY.get(event)
    if apply is None:
        tally.counts["unknown_events"] += 1
        note(onboarding, f"account_update {event} (not handled)", at=at)
        session.commit()
        return tally
    apply(session, onboarding, event, value, at, tally)
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


def _staleness(onboarding: Onboarding, event: str, at: datetime, *, dated: bool) -> str | None:
    """Why the event must change nothing (None if it applies)."""
    if dated:
        signup = onboarding.signup_completed_at
        slack = SIGNUP_EVENT_SLACK if event in SIGNUP_EVENTS else timedelta(0)
        if at < signup - slack:
            return (
                f"{event} dated {at.isoformat()} is before this onboarding's signup "
                f"({signup.isoformat()}): it was about an earlier onboarding; not applied"
            )
    if onboarding.lifecycle_event_at is not None and at < onboarding.lifecycle_event_at:
        return (
            f"{event} dated {at.isoformat()} is older than {onboarding.lifecycle_event} "
            f"({onboarding.lifecycle_event_at.isoformat()}); not applied"
        )
    return None


def _describe(value: dict[str, Any]) -> str:
    parts = []
    for key in ("waba_info", "disconnection_info", "violation_info", "ban_info"):
        item = value.get(key)
        if isinstance(item, dict):
            parts.append(", ".join(f"{k}={v}" for k, v in list(item.items())[:6]))
    return "; ".join(parts) or "no details"


def _disconnected(
    session: Session,
    onboarding: Onboarding,
    event: str,
    value: dict[str, Any],
    at: datetime,
    tally: Tally,
) -> None:
    state = OnboardingState(onboarding.state)
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
    emit(
        session,
        EventType.ACCOUNT_DISCONNECTED,
        onboarding,
        {"event": event, "reason": onboarding.lifecycle_reason, "initiated_by": initiated_by},
        occurred_at=at,
    )
    raise_alert(
        session,
        onboarding.id,
        "disconnected",
        f"onboarding {onboarding.id}: Meta disconnected the business ({cause}); data is kept, "
        "a new Embedded Signup starts a new onboarding",
        severity="error",
    )


def _offboarded(
    session: Session,
    onboarding: Onboarding,
    event: str,
    value: dict[str, Any],
    at: datetime,
    tally: Tally,
) -> None:
    state = OnboardingState(onboarding.state)
    if state is S.RECONNECTING:
        return
    cause = "ACCOUNT_OFFBOARDED: the Cloud API companion was offboarded; API sends paused"
    if state in CONNECTED:
        onboarding.resume_state = state.value
        onboarding.lifecycle_reason = None
        onboarding.lifecycle_since = at
        if transition(session, onboarding, S.RECONNECTING, cause, at=at):
            emit(
                session,
                EventType.ACCOUNT_RECONNECTING,
                onboarding,
                {"event": event, "resume_state": state.value},
                occurred_at=at,
            )
    else:
        note(onboarding, cause, at=at)


def _reconnected(
    session: Session,
    onboarding: Onboarding,
    event: str,
    value: dict[str, Any],
    at: datetime,
    tally: Tally,
) -> None:
    cause = "ACCOUNT_RECONNECTED: back on the Cloud API; companions must be relinked"
    if OnboardingState(onboarding.state) is S.RECONNECTING:
        target = OnboardingState(onboarding.resume_state or S.SYNCED.value)
        onboarding.resume_state = None
        onboarding.lifecycle_since = at
        if transition(session, onboarding, target, cause, at=at):
            emit(
                session,
                EventType.ACCOUNT_RECONNECTED,
                onboarding,
                {"event": event, "state": target.value},
                occurred_at=at,
            )
    else:
        note(onboarding, cause, at=at)


def _paused(
    session: Session,
    onboarding: Onboarding,
    event: str,
    value: dict[str, Any],
    at: datetime,
    tally: Tally,
) -> None:
    pauses.pause(session, onboarding, event, _describe(value), at=at)


def _ban_update(
    session: Session,
    onboarding: Onboarding,
    event: str,
    value: dict[str, Any],
    at: datetime,
    tally: Tally,
) -> None:
    """``DISABLED_UPDATE``: what ``ban_info.waba_ban_state`` says
    (docs/meta.md#116-acting-on-account_update)."""
    info = value.get("ban_info")
    info = info if isinstance(info, dict) else {}
    state = info.get("waba_ban_state")
    date = info.get("waba_ban_date")
    when = date[:64] if isinstance(date, str) and date else "no date given"
    if state == "REINSTATE":
        cause = "DISABLED_UPDATE: the WABA was reinstated"
        if not pauses.lift(
            session, onboarding, cause, at=at, paused_by=frozenset({"DISABLED_UPDATE"})
        ):
            note(onboarding, f"{cause}; no ban pause to lift", at=at)
        resolve_alert(session, onboarding.id, DISABLE_SCHEDULED_ALERT)
    elif state == "SCHEDULE_FOR_DISABLE":
        note(onboarding, f"DISABLED_UPDATE: the WABA is scheduled to be disabled ({when})", at=at)
        raise_alert(
            session,
            onboarding.id,
            DISABLE_SCHEDULED_ALERT,
            f"onboarding {onboarding.id}: Meta scheduled the WABA to be disabled on {when}; "
            "sends go on until then",
            reopen=True,
        )
    elif state == "DISABLE":
        pauses.pause(session, onboarding, event, f"the WABA was disabled ({when})", at=at)
    else:
        shown = str(state)[:64] if state is not None else "missing"
        pauses.pause(
            session,
            onboarding,
            event,
            f"waba_ban_state {shown} is not one coexist knows: paused to be safe",
            at=at,
        )


def _restricted(
    session: Session,
    onboarding: Onboarding,
    event: str,
    value: dict[str, Any],
    at: datetime,
    tally: Tally,
) -> None:
    found, refused = pauses.parse_restrictions(value)
    for reason in refused:
        tally.reject(reason)
    if not found:  # nothing readable: restrict everything, and say so
        found = [pauses.Restriction(pauses.UNSPECIFIED, None)]
    pauses.restrict(session, onboarding, found, at=at)


def _noted(
    session: Session,
    onboarding: Onboarding,
    event: str,
    value: dict[str, Any],
    at: datetime,
    tally: Tally,
) -> None:
    note(onboarding, f"{event} ({_describe(value)})", at=at)


Apply = Callable[[Session, Onboarding, str, dict[str, Any], datetime, Tally], None]
#: What each known event does; others are noted on the timeline as not handled.
_APPLY: dict[str, Apply] = {
    "PARTNER_REMOVED": _disconnected,
    "ACCOUNT_OFFBOARDED": _offboarded,
    "ACCOUNT_RECONNECTED": _reconnected,
    "DISABLED_UPDATE": _ban_update,
    "ACCOUNT_RESTRICTION": _restricted,
    **dict.fromkeys(PAUSING_EVENTS, _paused),
    **dict.fromkeys(NOTED_EVENTS, _noted),
}
