"""Operator actions behind ``coexist onboardings retry``: resume what failed, safely.

A retry puts the onboarding back on the step that failed, or re-opens its sync rows for the
trigger. It refuses (:class:`RetryRefusedError`, saying why) what could double a one-shot call
or cannot work any more: a sync that Meta may have accepted, without ``--force`` (which makes
the next call a probe), a dead signup code, a closed window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from config import Settings
from models import Onboarding, OnboardingState, SyncState, SyncType, utcnow
from onboarding.outcomes import Next
from onboarding.states import transition
from onboarding.sync import states as sync_states

S = OnboardingState


class RetryRefusedError(Exception):
    """The retry would be unsafe or pointless; the message says why."""


@dataclass(frozen=True)
class RetryPlan:
    step: Next
    message: str


def retry(
    session: Session,
    onboarding_id: int,
    *,
    settings: Settings,
    force: bool = False,
    phone_number_id: str | None = None,
) -> RetryPlan:
    """Put a stuck or failed onboarding back on its step. Commits; the caller enqueues."""
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        raise RetryRefusedError(f"no onboarding {onboarding_id}")
    now = utcnow()
    state = OnboardingState(onboarding.state)
    if phone_number_id is not None:
        if not phone_number_id.isdigit():
            raise RetryRefusedError("--phone-number-id must be a Graph id (digits)")
        if state not in (S.FAILED, S.TOKEN_EXCHANGED) or onboarding.failed_step not in (
            None,
            "connect",
        ):
            raise RetryRefusedError("--phone-number-id only applies before the app is subscribed")
        onboarding.phone_number_id = phone_number_id

    if state is S.FAILED:
        step = onboarding.failed_step or "connect"
        if step == "exchange":
            if now >= onboarding.signup_completed_at + settings.code_ttl:
                raise RetryRefusedError(
                    "the signup code has died (30 s); the business must run Embedded Signup again"
                )
            plan = RetryPlan(Next.EXCHANGE, "code exchange resumed")
            to = S.RECEIVED
        elif step == "connect":
            plan, to = RetryPlan(Next.CONNECT, "connect resumed"), S.TOKEN_EXCHANGED
        else:
            _check_window(onboarding, now)
            _reopen_syncs(onboarding, force)
            history = onboarding.sync(SyncType.HISTORY)
            to = S.SYNCING if history.state == SyncState.REQUESTED else S.SUBSCRIBED
            plan = RetryPlan(Next.SYNC, "sync trigger resumed")
        onboarding.failed_step = None
        onboarding.last_error = None
        onboarding.lease_until = None
        transition(session, onboarding, to, f"operator retry: {plan.message}")
        session.commit()
        return plan

    if state is S.TOKEN_EXCHANGED:
        onboarding.lease_until = None
        session.commit()
        return RetryPlan(Next.CONNECT, "connect re-enqueued")
    if state in (S.SUBSCRIBED, S.SYNCING):
        _check_window(onboarding, now)
        reopened = _reopen_syncs(onboarding, force)
        session.commit()
        if not reopened:
            raise RetryRefusedError(
                "nothing to retry: both syncs are settled "
                f"(contacts {onboarding.sync(SyncType.CONTACTS).state}, "
                f"history {onboarding.sync(SyncType.HISTORY).state})"
            )
        return RetryPlan(Next.SYNC, f"sync trigger re-enqueued for {', '.join(reopened)}")
    raise RetryRefusedError(f"nothing to retry in state {state.value}")


def _check_window(onboarding: Onboarding, now: datetime) -> None:
    if now >= onboarding.sync_deadline_at:
        raise RetryRefusedError(
            "the 24 h sync window has closed; Meta refuses syncs now (2593108). The business "
            "must offboard and redo Embedded Signup"
        )


def _reopen_syncs(onboarding: Onboarding, force: bool) -> list[str]:
    """Sync rows the retry may send again; refuses maybe-accepted ones without ``force``."""
    reopened: list[str] = []
    for sync_type in SyncType:
        row = onboarding.sync(sync_type)
        state = SyncState(row.state)
        if state in (SyncState.PENDING,):
            row.next_attempt_at = None
            reopened.append(sync_type.label)
        elif state is SyncState.FAILED:
            sync_states.move(row, SyncState.PENDING)
            row.next_attempt_at = None
            reopened.append(sync_type.label)
        elif state in (SyncState.UNKNOWN, SyncState.INTENT):
            if not force:
                raise RetryRefusedError(
                    f"the {sync_type.label} sync may already have been accepted by Meta "
                    f"({state.value}); re-sending is a probe that Meta answers with 2593107 if "
                    "so. Pass --force to probe"
                )
            sync_states.move(row, SyncState.UNKNOWN)
            row.ambiguous_attempts = 0
            row.lease_until = None
            row.next_attempt_at = None
            reopened.append(sync_type.label)
    return reopened
